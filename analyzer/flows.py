"""Bidirectional 5-tuple flows: counters per direction, client/server roles, handshake RTT.

Packets are aggregated under a canonical key (lower endpoint first); roles are decided once the capture
is read, from the strongest evidence available: the TCP SYN, then protocol evidence (who sent the DNS
query, the STUN request, the ClientHello), then well-known ports, then the capture's own host.
"""

from __future__ import annotations

import hashlib
import socket
from collections import Counter
from dataclasses import dataclass, field

from analyzer.capture import Packet
from analyzer.protocols import Sample, client_direction

# Known server ports: the side using one is the responder when the packets themselves do not say.
SERVER_PORTS = frozenset(
    [53, 80, 123, 443, 853, 1194, 3478, 3479, 3480, 3481, 5004, 5060, 5061, 5222, 5228, 5349, 8080, 8443,
     10000, 19302, 19303, 19304, 19305, 19306, 19307, 19308, 19309]
    + list(range(8801, 8811))
)
# Per direction, how many payload packets / bytes of a flow are kept for protocol dissection.
SAMPLE_PACKETS = 24
SAMPLE_BYTES = 64 * 1024
# Signalling ports where every message may carry facts (DNS answers, SIP dialogs): keep more.
BUSY_SAMPLE_PORTS = {53: 4096, 5353: 1024, 5355: 256, 5060: 2048}
BUSY_SAMPLE_BYTES = 1024 * 1024
# Across all flows of one capture: 100k flows x 24 samples x 64 KiB would be 150 GiB. Past this budget
# payloads are no longer kept (counted in `FlowTable.unsampled`); counters and roles are unaffected.
SAMPLE_BYTES_TOTAL = 512 * 1024 * 1024

TCP_SYN, TCP_ACK, TCP_RST, TCP_FIN = 0x02, 0x10, 0x04, 0x01


def addr_str(raw: bytes) -> str:
    """Text form of a raw 4- or 16-byte address (IPv4-mapped IPv6 stays as written on the wire)."""
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


@dataclass(slots=True)
class Flow:
    """A flow while the capture is read: side 0 is the lower (address, port) endpoint."""

    proto: int
    ends: tuple[tuple[bytes, int], tuple[bytes, int]]
    first_frame: int
    first_ts: float
    last_ts: float
    pkts: list[int] = field(default_factory=lambda: [0, 0])
    bytes: list[int] = field(default_factory=lambda: [0, 0])
    ip_bytes: list[int] = field(default_factory=lambda: [0, 0])
    syn_from: int | None = None  # side that sent a bare SYN
    synack_from: int | None = None
    syn_ts: float | None = None
    synack_ts: float | None = None
    samples: list[tuple[int, float, int, int, bytes]] = field(default_factory=list)
    sampled: list[int] = field(default_factory=lambda: [0, 0])  # packets kept per side
    sampled_bytes: list[int] = field(default_factory=lambda: [0, 0])
    cap: int = SAMPLE_PACKETS
    bytecap: int = SAMPLE_BYTES


class FlowTable:
    """Aggregates the packets of one capture into flows."""

    def __init__(self, capture: str) -> None:
        self.capture = capture
        self.flows: dict[tuple, Flow] = {}
        self.sampled_total = 0
        self.unsampled = 0  # payload packets a flow would have kept, refused by SAMPLE_BYTES_TOTAL

    def add(self, p: Packet) -> None:
        a, b = (p.src, p.sport), (p.dst, p.dport)
        side = 0 if a <= b else 1
        key = (p.proto, a, b) if side == 0 else (p.proto, b, a)
        flow = self.flows.get(key)
        if flow is None:
            busy = max(BUSY_SAMPLE_PORTS.get(p.sport, 0), BUSY_SAMPLE_PORTS.get(p.dport, 0))
            flow = self.flows[key] = Flow(p.proto, (key[1], key[2]), p.frame, p.ts, p.ts)
            if busy:
                flow.cap, flow.bytecap = busy, BUSY_SAMPLE_BYTES
        elif p.ts > flow.last_ts:
            flow.last_ts = p.ts
        elif p.ts < flow.first_ts:
            flow.first_ts = p.ts
        flow.pkts[side] += 1
        flow.bytes[side] += p.length
        flow.ip_bytes[side] += p.ip_length
        if p.proto == 6 and p.flags & TCP_SYN:
            if p.flags & TCP_ACK:
                if flow.synack_from is None:
                    flow.synack_from, flow.synack_ts = side, p.ts
            elif flow.syn_from is None:
                flow.syn_from, flow.syn_ts = side, p.ts
        if p.payload and flow.sampled[side] < flow.cap and flow.sampled_bytes[side] < flow.bytecap:
            if self.sampled_total >= SAMPLE_BYTES_TOTAL:
                self.unsampled += 1
                return
            self.sampled_total += len(p.payload)
            flow.sampled[side] += 1
            flow.sampled_bytes[side] += len(p.payload)
            flow.samples.append((p.frame, p.ts, side, p.seq, p.payload))

    def local_host(self) -> bytes | None:
        """The capture's own host: the address present in the most flows."""
        seen = Counter()
        for flow in self.flows.values():
            seen[flow.ends[0][0]] += 1
            seen[flow.ends[1][0]] += 1
        return seen.most_common(1)[0][0] if seen else None


@dataclass
class FlowRecord:
    """A finished flow with roles decided; `samples` are what protocol modules dissect."""

    uid: str
    capture: str
    proto: str
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    first_frame: int
    first_ts: float
    last_ts: float
    orig_pkts: int
    resp_pkts: int
    orig_bytes: int
    resp_bytes: int
    orig_ip_bytes: int
    resp_ip_bytes: int
    rtt_ms: float | None
    role_evidence: str
    samples: list[Sample]


def _role(flow: Flow, local: bytes | None) -> tuple[int, str]:
    """Which side (0 or 1) is the originator, and the evidence for it."""
    if flow.syn_from is not None:
        return flow.syn_from, "tcp-syn"
    if flow.synack_from is not None:
        return 1 - flow.synack_from, "tcp-synack"
    side = client_direction(flow.proto, flow.ends[0][1], flow.ends[1][1], flow.samples)
    if side is not None:
        return side, "protocol"
    ports = [flow.ends[0][1], flow.ends[1][1]]
    known = [p in SERVER_PORTS for p in ports]
    if known[0] != known[1]:
        return (1 if known[0] else 0), "port"
    low = [p < 1024 for p in ports]
    if low[0] != low[1]:
        return (1 if low[0] else 0), "port"
    if local is not None:
        if flow.ends[0][0] == local and flow.ends[1][0] != local:
            return 0, "local-host"
        if flow.ends[1][0] == local and flow.ends[0][0] != local:
            return 1, "local-host"
    first_side = next((s[2] for s in flow.samples if s[0] == flow.first_frame), 0)
    return first_side, "first-packet"


def make_uid(capture: str, proto: str, orig: tuple[str, int], resp: tuple[str, int], first_frame: int) -> str:
    """Stable flow id in Zeek's style: the same capture always gives the same uids."""
    text = f"{capture}|{proto}|{orig[0]}|{orig[1]}|{resp[0]}|{resp[1]}|{first_frame}"
    digest = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=12).digest(), "big")
    out = []  # base 62, least significant digit first, two digits a step (a 96-bit digest has <= 17)
    while digest:
        digest, r = divmod(digest, 3844)
        out.append(_PAIRS[r])
    return "C" + "".join(out).rstrip("0")  # the most significant digit is never 0


_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PAIRS = [lo + hi for hi in _ALPHABET for lo in _ALPHABET]  # _PAIRS[r]: r % 62 first, then r // 62


def finish(table: FlowTable, capture_id: str, local: str | None = None,
           host: bytes | None = None) -> list[FlowRecord]:
    """Decide roles and turn the table into records, in order of first appearance. `host`: the capture's
    own host when `table` holds only some of its flows (default: `table.local_host()`)."""
    local_raw = socket.inet_pton(socket.AF_INET6 if ":" in local else socket.AF_INET, local) if local else None
    if local_raw is None:
        local_raw = host if host is not None else table.local_host()
    records = []
    for flow in sorted(table.flows.values(), key=lambda f: f.first_frame):
        o, how = _role(flow, local_raw)
        r = 1 - o
        proto = "tcp" if flow.proto == 6 else "udp"
        orig = (addr_str(flow.ends[o][0]), flow.ends[o][1])
        resp = (addr_str(flow.ends[r][0]), flow.ends[r][1])
        rtt = None
        if flow.syn_ts is not None and flow.synack_ts is not None and flow.synack_ts >= flow.syn_ts:
            rtt = round((flow.synack_ts - flow.syn_ts) * 1000, 3)
        samples = [Sample(fr, ts, side == o, seq, data) for fr, ts, side, seq, data in flow.samples]
        records.append(FlowRecord(
            make_uid(capture_id, proto, orig, resp, flow.first_frame), capture_id, proto,
            orig[0], orig[1], resp[0], resp[1], flow.first_frame, flow.first_ts, flow.last_ts,
            flow.pkts[o], flow.pkts[r], flow.bytes[o], flow.bytes[r], flow.ip_bytes[o], flow.ip_bytes[r],
            rtt, how, samples))
    return records
