"""DNS: answers (A, AAAA and the CNAME chains leading to them) name the servers a call talks to."""

from __future__ import annotations

import struct

from analyzer.protocols import Facts, FlowView

PORTS = frozenset({53, 5353, 5355})
MAX_CHAIN = 16  # CNAME hops followed before a chain is treated as a loop


def text(raw: bytes | str) -> str:
    """A DNS name as text without its trailing dot; undecodable bytes stay visible as \\x escapes."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="backslashreplace")
    return raw.rstrip(".")


def client_hint(payload: bytes, sport: int, dport: int) -> bool | None:
    if (sport in PORTS or dport in PORTS) and len(payload) >= 12 and (sport not in PORTS or dport not in PORTS
                                                                       or sport == dport):
        return not payload[2] & 0x80  # QR bit clear: a query, sent by the client
    return None


def _messages(view: FlowView) -> list[tuple[int, bytes]]:
    """(frame, DNS message) pairs: one per UDP datagram, or split from the TCP stream's length prefixes."""
    if view.proto == "udp":
        return [(s.frame, s.payload) for s in view.samples]
    from analyzer.protocols import frame_at

    out = []
    for from_orig in (True, False):
        data, marks = view.stream(from_orig)
        off = 0
        while off + 2 <= len(data):
            (n,) = struct.unpack_from("!H", data, off)
            if n == 0 or off + 2 + n > len(data):
                break
            out.append((frame_at(marks, off), data[off + 2:off + 2 + n]))
            off += 2 + n
    return out


def answers(message: bytes) -> list[tuple[str, str]]:
    """(address, name asked for) for every A/AAAA answer of a DNS response, following CNAME chains."""
    from scapy.layers.dns import DNS

    dns = DNS(message)
    if not dns.qr:
        return []
    qnames = [text(q.qname) for q in (dns.qd or [])]
    cname: dict[str, str] = {}
    addrs: list[tuple[str, str]] = []
    for rr in dns.an or []:
        name = text(rr.rrname)
        if rr.type == 5:  # CNAME
            cname[name.lower()] = text(rr.rdata)
        elif rr.type in (1, 28) and isinstance(rr.rdata, str):
            addrs.append((rr.rdata, name))
    out = []
    for addr, name in addrs:
        asked = name
        for q in qnames:  # the name the application asked for, if the chain from it reaches this record
            hop = q
            for _ in range(MAX_CHAIN):
                if hop.lower() == name.lower():
                    asked = q
                    break
                nxt = cname.get(hop.lower())
                if nxt is None:
                    break
                hop = nxt
        out.append((addr, asked))
    return out


def inspect(view: FlowView, facts: Facts) -> None:
    if view.resp_p not in PORTS and view.orig_p not in PORTS:
        return
    found = False
    for frame, message in _messages(view):
        if len(message) < 12:
            continue
        try:
            pairs = answers(message)
        except Exception:  # scapy raises many types on hostile bytes; count, never crash
            facts.malformed += 1
            continue
        found = True
        facts.dns_answers.extend((addr, name, frame) for addr, name in pairs)
    if found or view.samples:
        facts.add_service("dns")
