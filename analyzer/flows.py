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

import numpy as np

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


@dataclass
class FlowColumns:
    """A batch of flows as columns, in order of first frame: what `FlowTable.flows` holds as Flow objects.

    An address is (family 4/6, high and low 64 bits); pair columns are (flows, 2) arrays indexed by side;
    side 0 is the lower (address, port) endpoint; -1 marks a missing SYN or SYN/ACK. Samples are columns
    too, grouped by flow (`counts` per flow) in frame order.
    """

    fam: np.ndarray
    proto: np.ndarray
    ahi: np.ndarray
    alo: np.ndarray
    ap: np.ndarray
    bhi: np.ndarray
    blo: np.ndarray
    bp: np.ndarray
    first_frame: np.ndarray
    first_ts: np.ndarray
    last_ts: np.ndarray
    syn_from: np.ndarray
    syn_ts: np.ndarray
    synack_from: np.ndarray
    synack_ts: np.ndarray
    cap: np.ndarray
    bytecap: np.ndarray
    pkts: np.ndarray
    bytes: np.ndarray
    ip_bytes: np.ndarray
    sampled: np.ndarray
    sampled_bytes: np.ndarray
    counts: np.ndarray
    frame: np.ndarray
    ts: np.ndarray
    side: np.ndarray
    seq: np.ndarray
    payload: list[bytes]

    @classmethod
    def from_table(cls, table: FlowTable) -> FlowColumns:
        """The columns of a FlowTable's flows (sorted by first frame)."""
        flows = sorted(table.flows.values(), key=lambda f: f.first_frame)
        samples = [s for f in flows for s in f.samples]

        def col(get, dtype) -> np.ndarray:
            return np.array([get(f) for f in flows], dtype).reshape(-1)

        def end(k: int, part: int, dtype) -> np.ndarray:
            return col(lambda f: _split(f.ends[k][0])[part], dtype)

        def pair(name: str) -> np.ndarray:
            return np.array([getattr(f, name) for f in flows], np.int64).reshape(-1, 2)

        return cls(
            end(0, 0, np.int64), col(lambda f: f.proto, np.int64), end(0, 1, np.uint64), end(0, 2, np.uint64),
            col(lambda f: f.ends[0][1], np.int64), end(1, 1, np.uint64), end(1, 2, np.uint64),
            col(lambda f: f.ends[1][1], np.int64), col(lambda f: f.first_frame, np.int64),
            col(lambda f: f.first_ts, np.float64), col(lambda f: f.last_ts, np.float64),
            col(lambda f: _or(f.syn_from, -1), np.int64), col(lambda f: _or(f.syn_ts, 0.0), np.float64),
            col(lambda f: _or(f.synack_from, -1), np.int64), col(lambda f: _or(f.synack_ts, 0.0), np.float64),
            col(lambda f: f.cap, np.int64), col(lambda f: f.bytecap, np.int64), pair("pkts"), pair("bytes"),
            pair("ip_bytes"), pair("sampled"), pair("sampled_bytes"), col(lambda f: len(f.samples), np.int64),
            *(np.array([s[k] for s in samples], dtype) for k, dtype in enumerate((np.int64, np.float64, np.int64,
                                                                                   np.int64))),
            [s[4] for s in samples])

    def to_table(self, capture: str) -> FlowTable:
        """The FlowTable these columns stand for (its flows in this order)."""
        table = FlowTable(capture)
        a, b = _addresses(self.fam, self.ahi, self.alo, raw=True), _addresses(self.fam, self.bhi, self.blo, raw=True)
        rows = list(zip(self.frame.tolist(), self.ts.tolist(), self.side.tolist(), self.seq.tolist(), self.payload,
                        strict=True))
        at = 0
        cols = [c.tolist() for c in (self.proto, self.ap, self.bp, self.first_frame, self.first_ts, self.last_ts,
                                     self.syn_from, self.syn_ts, self.synack_from, self.synack_ts, self.cap,
                                     self.bytecap, self.counts)]
        pairs = [c.tolist() for c in (self.pkts, self.bytes, self.ip_bytes, self.sampled, self.sampled_bytes)]
        for i, (proto, ap, bp, ff, fts, lts, synf, synts, sakf, sakts, cap, bytecap, count) in enumerate(
                zip(*cols, strict=True)):
            ends = ((a[i], ap), (b[i], bp))
            table.flows[(proto, ends[0], ends[1])] = Flow(
                proto, ends, ff, fts, lts, pairs[0][i], pairs[1][i], pairs[2][i], synf if synf >= 0 else None,
                sakf if sakf >= 0 else None, synts if synf >= 0 else None, sakts if sakf >= 0 else None,
                rows[at:at + count], pairs[3][i], pairs[4][i], cap, bytecap)
            at += count
        return table


def _or(value, default):
    return default if value is None else value


def _split(raw: bytes) -> tuple[int, int, int]:
    """(family, high 64 bits, low 64 bits) of a raw 4- or 16-byte address."""
    if len(raw) == 4:
        return 4, 0, int.from_bytes(raw, "big")
    return 6, int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")


def _addresses(fam: np.ndarray, hi: np.ndarray, lo: np.ndarray, raw: bool = False) -> list:
    """Text (or raw bytes) of each (family, high, low) address; each distinct address converted once."""
    if len(fam) and (fam == 4).all():  # IPv4 only: the low bits are the address
        low_uniq, inv = np.unique(lo, return_inverse=True)
        uniq = [(4, 0, low) for low in low_uniq.tolist()]
    else:
        key = np.stack([fam.astype(np.uint64), hi, lo], axis=1) if len(fam) else np.zeros((0, 3), np.uint64)
        uniq, inv = np.unique(key, axis=0, return_inverse=True)
        uniq = uniq.tolist()
    out = []
    for f, h, low in uniq:
        b = low.to_bytes(4, "big") if f == 4 else h.to_bytes(8, "big") + low.to_bytes(8, "big")
        out.append(b if raw else addr_str(b))
    return [out[i] for i in inv.reshape(-1).tolist()]


def _guess_role(proto: int, ports: tuple[int, int], samples: list[tuple], first_frame: int,
                is_local: tuple[bool, bool]) -> tuple[int, str]:
    """The originator's side of a flow without a SYN or SYN/ACK, and the evidence for it."""
    side = client_direction(proto, ports[0], ports[1], samples)
    if side is not None:
        return side, "protocol"
    known = [p in SERVER_PORTS for p in ports]
    if known[0] != known[1]:
        return (1 if known[0] else 0), "port"
    low = [p < 1024 for p in ports]
    if low[0] != low[1]:
        return (1 if low[0] else 0), "port"
    if is_local[0] != is_local[1]:
        return (0 if is_local[0] else 1), "local-host"
    first_side = next((s[2] for s in samples if s[0] == first_frame), 0)
    return first_side, "first-packet"


def make_uid(capture: str, proto: str, orig: tuple[str, int], resp: tuple[str, int], first_frame: int) -> str:
    """Stable flow id in Zeek's style: the same capture always gives the same uids."""
    return make_uids(capture, [proto], [orig], [resp], [first_frame])[0]


def make_uids(capture: str, protos: list[str], origs: list[tuple[str, int]], resps: list[tuple[str, int]],
              first_frames: list[int]) -> list[str]:
    """`make_uid` of many flows: "C" and the base-62 digits (least significant first) of a 96-bit BLAKE2b
    digest of the flow's key, without the leading zero digits; the digits are found with numpy."""
    digests = b"".join([hashlib.blake2b(f"{capture}|{p}|{o[0]}|{o[1]}|{r[0]}|{r[1]}|{f}".encode(),
                                        digest_size=12).digest()
                        for p, o, r, f in zip(protos, origs, resps, first_frames, strict=True)])
    limbs = np.frombuffer(digests, ">u4").reshape(-1, 3).astype(np.uint64)  # the digest in 32-bit limbs
    pairs = np.empty((len(limbs), 9), np.int64)  # 3844**9 > 2**96: nine two-digit steps
    for step in range(9):
        rem = np.zeros(len(limbs), np.uint64)
        for j in range(3):  # long division by 3844 = 62 * 62
            cur = (rem << np.uint64(32)) | limbs[:, j]
            limbs[:, j], rem = cur // np.uint64(3844), cur % np.uint64(3844)
        pairs[:, step] = rem
    text = _PAIR_CODES[pairs].tobytes().decode("ascii")
    return ["C" + text[i:i + 18].rstrip("0") for i in range(0, len(text), 18)]


_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# the two digits of r < 3844, r % 62 first, as ASCII codes
_PAIR_CODES = np.array([[ord(lo), ord(hi)] for hi in _ALPHABET for lo in _ALPHABET], np.uint8)
FLOW_KEYS = ("uid", "proto", "orig_h", "orig_p", "resp_h", "resp_p", "first_frame", "first_ts", "last_ts",
             "duration", "orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes", "orig_ip_bytes", "resp_ip_bytes",
             "tcp_rtt_ms", "role_evidence")


def finish_columns(fc: FlowColumns, capture_id: str, local: str | None,
                   host: bytes | None) -> tuple[dict[str, list | np.ndarray], list[list[Sample]]]:
    """Decide roles of a batch of flows: their FLOW_KEYS as columns (ports, frames, times and counters as
    numpy arrays), and each flow's samples with `from_orig` set. `host`: the capture's own host, used when `local` is not
    given."""
    local_raw = socket.inet_pton(socket.AF_INET6 if ":" in local else socket.AF_INET, local) if local else host
    n = len(fc.proto)
    o = np.where(fc.syn_from >= 0, fc.syn_from, np.where(fc.synack_from >= 0, 1 - fc.synack_from, -1))
    how = ["tcp-syn" if s >= 0 else "tcp-synack" for s in fc.syn_from.tolist()]
    frame, ts, side, seq = fc.frame.tolist(), fc.ts.tolist(), fc.side.tolist(), fc.seq.tolist()
    bounds = np.concatenate([[0], np.cumsum(fc.counts)]).tolist()
    rest = np.flatnonzero(o < 0)
    if len(rest):  # no SYN seen: the payloads, ports or the capture's host say who the client is
        if local_raw is None:
            loc_a = loc_b = np.zeros(n, bool)
        else:
            lf, lh, ll = _split(local_raw)
            loc_a = (fc.fam == lf) & (fc.ahi == lh) & (fc.alo == ll)
            loc_b = (fc.fam == lf) & (fc.bhi == lh) & (fc.blo == ll)
        for i, proto, ap, bp, ff, la, lb in zip(rest.tolist(), *(c[rest].tolist() for c in (
                fc.proto, fc.ap, fc.bp, fc.first_frame, loc_a, loc_b)), strict=True):
            lo, hi = bounds[i], bounds[i + 1]
            raw = list(zip(frame[lo:hi], ts[lo:hi], side[lo:hi], seq[lo:hi], fc.payload[lo:hi], strict=True))
            o[i], how[i] = _guess_role(proto, (ap, bp), raw, ff, (la, lb))
    from_orig = (fc.side == np.repeat(o, fc.counts)).tolist()
    every = list(map(Sample, frame, ts, from_orig, seq, fc.payload))
    samples = [every[bounds[i]:bounds[i + 1]] for i in range(n)]
    a, b = _addresses(fc.fam, fc.ahi, fc.alo), _addresses(fc.fam, fc.bhi, fc.blo)
    first = o == 0
    orig_h = [x if f else y for x, y, f in zip(a, b, first.tolist(), strict=True)]
    resp_h = [y if f else x for x, y, f in zip(a, b, first.tolist(), strict=True)]
    orig_p, resp_p = np.where(first, fc.ap, fc.bp), np.where(first, fc.bp, fc.ap)
    proto = ["tcp" if p == 6 else "udp" for p in fc.proto.tolist()]
    first_ts, last_ts = fc.first_ts.tolist(), fc.last_ts.tolist()
    cols: dict[str, list | np.ndarray] = {
        "uid": make_uids(capture_id, proto, list(zip(orig_h, orig_p.tolist())), list(zip(resp_h, resp_p.tolist())),
                         fc.first_frame.tolist()),
        "proto": proto, "orig_h": orig_h, "orig_p": orig_p, "resp_h": resp_h, "resp_p": resp_p,
        "first_frame": fc.first_frame.copy(), "first_ts": fc.first_ts.copy(), "last_ts": fc.last_ts.copy(),
        # Python's correctly rounded round(), not numpy's
        "duration": np.array([round(z - f, 6) for f, z in zip(first_ts, last_ts, strict=True)], np.float64),
    }
    rows = np.arange(n)
    for name, col in (("pkts", fc.pkts), ("bytes", fc.bytes), ("ip_bytes", fc.ip_bytes)):
        cols[f"orig_{name}"], cols[f"resp_{name}"] = col[rows, o], col[rows, 1 - o]
    timed = (fc.syn_from >= 0) & (fc.synack_from >= 0) & (fc.synack_ts >= fc.syn_ts)
    rtt = [None] * n
    for i, syn, sak in zip(np.flatnonzero(timed).tolist(), fc.syn_ts[timed].tolist(), fc.synack_ts[timed].tolist(),
                           strict=True):
        rtt[i] = round((sak - syn) * 1000, 3)
    cols["tcp_rtt_ms"], cols["role_evidence"] = rtt, how
    return cols, samples


def finish(table: FlowTable, capture_id: str, local: str | None = None,
           host: bytes | None = None) -> list[FlowRecord]:
    """Decide roles and turn the table into records, in order of first appearance. `host`: the capture's
    own host when `table` holds only some of its flows (default: `table.local_host()`)."""
    cols, samples = finish_columns(FlowColumns.from_table(table), capture_id, local,
                                   host if host is not None else table.local_host())
    fields = [c.tolist() if isinstance(c := cols[k], np.ndarray) else c  # FlowRecord's order, after uid and capture
              for k in FLOW_KEYS if k != "duration"]
    return [FlowRecord(row[0], capture_id, *row[1:], s) for *row, s in zip(*fields, samples, strict=True)]
