"""Protocol modules: each looks at the sampled payloads of one flow and adds facts to it.

A module offers `client_hint(payload, sport, dport) -> bool | None` (does this payload come from the
client?) for role decisions (`ROLE_HINTS = False` when it never says, `HINT_PORTS` when it only speaks
on those ports, `HINT_BYTES` when only about payloads starting with those bytes), `PROTOS` when it only
dissects flows of those transports, and `inspect(view, facts)` that dissects the flow's samples (with scapy where
scapy has the layer) and records names, services and key-exchange evidence with frame numbers.
"""

from __future__ import annotations

import importlib
from bisect import bisect_right
from dataclasses import dataclass, field
from operator import itemgetter

# Inspection order matters little: every module looks at every flow and returns quickly when it does not match.
MODULES = ("dns", "tls", "quic", "stun", "dtls", "zoom", "rtp", "sip", "zrtp")


@dataclass(slots=True)
class Sample:
    """One sampled payload of a flow; `from_orig` once roles are known."""

    frame: int
    ts: float
    from_orig: bool
    seq: int
    payload: bytes


@dataclass
class Facts:
    """What protocol dissection learned about one flow."""

    services: list[str] = field(default_factory=list)
    server_name: str | None = None
    server_name_source: str | None = None
    key_exchange: str | None = None
    key_frames: list[int] = field(default_factory=list)
    cert_names: list[str] = field(default_factory=list)
    dns_answers: list[tuple[str, str, int]] = field(default_factory=list)  # (address, query name, frame)
    details: dict = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)  # plain-language evidence, e.g. "SRTP keys in cleartext SDP"
    # Endpoints the payloads reveal without talking to them directly (TURN relays, STUN peers, SDP media):
    # {"h": address, "p": port, "proto": "udp"|"tcp", "role": "relay"|"peer"|"media", "frame": n, "via": "..."}
    endpoints: list[dict] = field(default_factory=list)
    malformed: int = 0  # samples a module recognised but could not dissect

    def add_service(self, name: str) -> None:
        if name not in self.services:
            self.services.append(name)

    def set_name(self, name: str, source: str) -> None:
        """Keep the strongest name: an SNI beats DNS, DNS beats a certificate name."""
        rank = {"sni": 0, "dns": 1, "cert": 2}
        if self.server_name is None or rank[source] < rank[self.server_name_source or "cert"]:
            self.server_name, self.server_name_source = name, source

    def mark_key_exchange(self, kind: str, frames: list[int]) -> None:
        if self.key_exchange is None:
            self.key_exchange = kind
        for f in frames:
            if f not in self.key_frames:
                self.key_frames.append(f)
        self.key_frames.sort()


@dataclass
class FlowView:
    """The part of a flow that protocol modules see."""

    proto: str  # "tcp" or "udp"
    orig_p: int
    resp_p: int
    samples: list[Sample]
    # streams already reassembled: several modules (tls, stun, dns, sip, rtp) ask for the same one
    _streams: dict = field(default_factory=dict, repr=False, compare=False)

    def stream(self, from_orig: bool, limit: int = 256 * 1024) -> tuple[bytes, list[tuple[int, int]]]:
        """Reassembled TCP bytes of one direction, and (stream offset, frame) where each segment starts.

        Segments are put in sequence order, retransmissions dropped, and the stream stops at the first gap.
        """
        done = self._streams.get((from_orig, limit))
        if done is None:
            done = self._streams[(from_orig, limit)] = self._reassemble(from_orig, limit)
        return done[0], list(done[1])

    def _reassemble(self, from_orig: bool, limit: int) -> tuple[bytes, list[tuple[int, int]]]:
        segs = [s for s in self.samples if s.from_orig == from_orig and s.payload]
        if not segs:
            return b"", []
        # the common case, in one pass: segments in frame order, each starting where the last ended
        parts, marks, size, expect = [], [], 0, segs[0].seq
        for s in segs:
            if s.seq != expect:
                break
            if size < limit:
                marks.append((size, s.frame))
                parts.append(s.payload)
                size += len(s.payload)
            expect = (expect + len(s.payload)) & 0xFFFFFFFF
        else:
            return b"".join(parts)[:limit], marks
        first = segs[0].seq  # signed distances from the first segment seen survive wraparound
        base = (first + min(((s.seq - first + 0x80000000) & 0xFFFFFFFF) - 0x80000000 for s in segs)) & 0xFFFFFFFF
        ordered = sorted(segs, key=lambda s: ((s.seq - base) & 0xFFFFFFFF, s.frame))
        out = bytearray()
        marks = []
        for s in ordered:
            rel = (s.seq - base) & 0xFFFFFFFF
            if rel > len(out):
                break  # gap: nothing after it can be trusted to be in order
            new = s.payload[len(out) - rel:]
            if new:
                marks.append((len(out), s.frame))
                out += new
            if len(out) >= limit:
                break
        return bytes(out[:limit]), marks


def frame_at(marks: list[tuple[int, int]], offset: int) -> int:
    """The frame that carried stream byte `offset`: that of the last mark at or before it (the first mark's
    before the first). `marks` are `stream`'s, in increasing stream offsets."""
    if not marks:
        return 0
    return marks[max(bisect_right(marks, offset, key=itemgetter(0)) - 1, 0)][1]


_LOADED: list = []
_HINTS: list[tuple] = []  # (client_hint, the ports it needs or None, the first bytes it needs or None)
_BY_PROTO: dict[str, list] = {}  # transport -> the modules whose `inspect` may learn something from it


def _modules() -> list:
    """The protocol modules, imported on first use (not at start-up) and then kept: an import_module call
    per module and flow cost seconds on captures with 100k flows."""
    if not _LOADED:
        _LOADED[:] = [importlib.import_module(f"analyzer.protocols.{name}") for name in MODULES]
        _HINTS[:] = [(mod.client_hint, getattr(mod, "HINT_PORTS", None), getattr(mod, "HINT_BYTES", None))
                     for mod in _LOADED if getattr(mod, "ROLE_HINTS", True)]
        _BY_PROTO.update({proto: [m for m in _LOADED if proto in getattr(m, "PROTOS", (proto,))]
                          for proto in ("tcp", "udp")})
    return _LOADED


def client_direction(proto: int, port0: int, port1: int, samples: list[tuple]) -> int | None:
    """Side (0/1) that the payloads show to be the client, or None when they do not say."""
    _modules()
    hints = [(hint, first) for hint, ports, first in _HINTS if ports is None or port0 in ports or port1 in ports]
    for _frame, _ts, side, _seq, payload in samples[:16]:
        sport, dport = (port0, port1) if side == 0 else (port1, port0)
        lead = payload[0] if payload else -1
        for hint, first in hints:
            if first is not None and lead not in first:
                continue
            said = hint(payload, sport, dport)
            if said is not None:
                return side if said else 1 - side
    return None


def inspect(view: FlowView) -> Facts:
    """Run every protocol module over one flow."""
    facts = Facts()
    _modules()
    for mod in _BY_PROTO.get(view.proto) or _LOADED:
        mod.inspect(view, facts)
    return facts
