"""DNS: answers (A, AAAA and the CNAME chains leading to them) name the servers a call talks to."""

from __future__ import annotations

import socket
import struct

from analyzer.protocols import Facts, FlowView

PORTS = frozenset({53, 5353, 5355})
HINT_PORTS = PORTS  # `client_hint` says nothing unless a port is one of these
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
    """(address, name asked for) for every A/AAAA answer of a DNS response, following CNAME chains.

    A strict `struct` walk reads well-formed messages (scapy costs ~0.2 ms a message and 0.25 s to import,
    and a busy resolver flow has thousands); what it declines goes to scapy's DNS layer, which
    tests/protocols/test_dns.py also uses as the oracle for the walk.
    """
    try:
        parsed = _parse_fast(message)
    except (ValueError, IndexError, struct.error):
        parsed = _parse_scapy(message)
    if parsed is None:
        return []
    return _resolve(*parsed)


def _resolve(qnames: list[str], records: list[tuple[str, int, str]]) -> list[tuple[str, str]]:
    cname: dict[str, str] = {}
    addrs: list[tuple[str, str]] = []
    for name, rtype, rdata in records:
        if rtype == 5:
            cname[name.lower()] = rdata
        elif rtype in (1, 28):
            addrs.append((rdata, name))
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


def _name(m: bytes, pos: int) -> tuple[str, int]:
    """A (possibly compressed) name at `pos`, and the position after it; pointer loops raise ValueError."""
    labels: list[bytes] = []
    end = None
    jumps = 0
    while True:
        n = m[pos]
        if n >= 0xC0:
            if pos + 1 >= len(m):
                raise ValueError("truncated pointer")
            if end is None:
                end = pos + 2
            target = ((n & 0x3F) << 8) | m[pos + 1]
            jumps += 1
            if jumps > 64 or target >= len(m):  # bounded: a pointer loop ends here
                raise ValueError("compression loop")
            pos = target
        elif n >= 0x40:
            raise ValueError("unknown label type")
        elif n == 0:
            pos += 1
            break
        else:
            if pos + 1 + n > len(m):
                raise ValueError("truncated label")
            labels.append(m[pos + 1:pos + 1 + n])
            pos += 1 + n
            if len(labels) > 127:
                raise ValueError("name too long")
    return text(b".".join(labels)), (end if end is not None else pos)


def _parse_fast(m: bytes) -> tuple[list[str], list[tuple[str, int, str]]] | None:
    """Questions and answer records of a response, or None for a query."""
    if len(m) < 12:
        raise ValueError("short header")
    _id, flags, qd, an = struct.unpack_from("!HHHH", m)
    if not flags & 0x8000:
        return None
    pos = 12
    qnames = []
    for _ in range(qd):
        name, pos = _name(m, pos)
        if pos + 4 > len(m):
            raise ValueError("truncated question")
        qnames.append(name)
        pos += 4
    records = []
    for _ in range(an):
        name, pos = _name(m, pos)
        if pos + 10 > len(m):
            raise ValueError("truncated record")
        rtype, _cls, _ttl, rdlen = struct.unpack_from("!HHIH", m, pos)
        pos += 10
        if pos + rdlen > len(m):
            raise ValueError("record data past the message")
        if rtype == 1 and rdlen == 4:
            records.append((name, 1, socket.inet_ntop(socket.AF_INET, m[pos:pos + 4])))
        elif rtype == 28 and rdlen == 16:
            records.append((name, 28, socket.inet_ntop(socket.AF_INET6, m[pos:pos + 16])))
        elif rtype == 5:
            target, after = _name(m, pos)
            if after != pos + rdlen:
                raise ValueError("CNAME length mismatch")
            records.append((name, 5, target))
        elif rtype in (1, 28):
            raise ValueError("address of the wrong size")
        pos += rdlen
    return qnames, records


def _parse_scapy(message: bytes) -> tuple[list[str], list[tuple[str, int, str]]] | None:
    """The same facts dissected by scapy's DNS layer: the fallback and the reference for the fast walk."""
    from scapy.layers.dns import DNS

    dns = DNS(message)
    if not dns.qr:
        return None
    qnames = [text(q.qname) for q in (dns.qd or [])]
    records = []
    for rr in dns.an or []:
        if rr.type == 5:
            records.append((text(rr.rrname), 5, text(rr.rdata)))
        elif rr.type in (1, 28) and isinstance(rr.rdata, str):
            records.append((text(rr.rrname), rr.type, rr.rdata))
    return qnames, records


def inspect(view: FlowView, facts: Facts) -> None:
    if view.resp_p not in PORTS and view.orig_p not in PORTS:
        return
    found = False
    for frame, message in _messages(view):
        if len(message) < 12:
            continue
        try:
            pairs = answers(message)
        except Exception:  # noqa: BLE001 - scapy raises many types on hostile bytes; count, never crash
            facts.malformed += 1
            continue
        found = True
        facts.dns_answers.extend((addr, name, frame) for addr, name in pairs)
    if found or view.samples:
        facts.add_service("dns")
