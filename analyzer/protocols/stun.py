"""STUN and TURN (RFC 5389/8489, RFC 5766/8656, classic RFC 3489, Microsoft MS-TURN) on any port.

What matters for a jurisdiction audit: the client's public address (XOR-MAPPED-ADDRESS, the vantage), the
relays TURN allocates (XOR-RELAYED-ADDRESS) and the peers it forwards to (XOR-PEER-ADDRESS): those become
endpoints with their own rows even when the capture host never sends them a packet. Relayed payloads
(Send/Data indications, ChannelData) are demultiplexed and DTLS inside them is handed to the DTLS parser:
a relayed call's DTLS-SRTP key exchange travels there. Over TCP, messages are walked in the reassembled
stream with plain TURN framing or RFC 4571 length prefixes (ICE-TCP). scapy's STUN layer knows only
Binding and none of the TURN attributes, so the 20-byte header and the TLVs are read here with `struct`.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from analyzer.protocols import Facts, FlowView, demux, dtls, frame_at

MAGIC = 0x2112A442
MAGIC_BYTES = MAGIC.to_bytes(4, "big")
MS_TURN_COOKIE = b"\x72\xc6\x4b\xc6"  # value of MS-TURN's MAGIC-COOKIE attribute ([MS-TURN] 2.2.2.14)
HEADER = struct.Struct("!HHI12s")

METHODS = {0x001: "binding", 0x002: "shared-secret", 0x003: "allocate", 0x004: "refresh", 0x006: "send",
           0x007: "data", 0x008: "create-permission", 0x009: "channel-bind", 0x00A: "connect",
           0x00B: "connection-bind", 0x00C: "connection-attempt"}
TURN_METHODS = frozenset([0x003, 0x004, 0x006, 0x007, 0x008, 0x009, 0x00A, 0x00B, 0x00C])
BINDING, ALLOCATE, SEND, DATA_METHOD = 0x001, 0x003, 0x006, 0x007
MS_SEND = 0x004  # MS-TURN reuses method 4 (RFC Refresh) for its Send request
CLASSES = ("request", "indication", "success", "error")
REQUEST, INDICATION, SUCCESS, ERROR = 0, 1, 2, 3
# RFC 3489 message types (no magic cookie): Binding / Shared Secret request, response, error response.
CLASSIC_TYPES = frozenset([0x0001, 0x0101, 0x0111, 0x0002, 0x0102, 0x0112])

MAPPED_ADDRESS, USERNAME, MESSAGE_INTEGRITY, ERROR_CODE = 0x0001, 0x0006, 0x0008, 0x0009
MS_MAGIC_COOKIE, DESTINATION_ADDRESS, XOR_PEER_ADDRESS, DATA = 0x000F, 0x0011, 0x0012, 0x0013
REALM, XOR_RELAYED_ADDRESS, REQUESTED_TRANSPORT, XOR_MAPPED_ADDRESS = 0x0014, 0x0016, 0x0019, 0x0020
XOR_MAPPED_ADDRESS_OLD, SOFTWARE = 0x8020, 0x8022  # 0x8020: pre-RFC 5389 code point, still used by MS-TURN
ZOOM_MAPPED_ADDRESS = 0x0103  # Zoom's classic-STUN reply carries the reflexive address under this type

STUN_PORTS = frozenset([3478, 3479, 3480, 3481, 5349, *range(19302, 19310)])
MAX_ATTRS = 64
MAX_ENDPOINTS = 64  # per flow: a hostile capture could list thousands of peers
MAX_STREAM_MESSAGES = 4096
MAX_TEXT = 256


@dataclass(slots=True)
class Message:
    """One STUN message: type, transaction, attributes (type, value) in wire order."""

    mtype: int
    cookie: bytes
    txid: bytes
    attrs: list[tuple[int, bytes]]
    classic: bool
    ms_turn: bool

    @property
    def method(self) -> int:
        t = self.mtype
        return (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80)

    @property
    def cls(self) -> int:
        return ((self.mtype >> 4) & 1) | ((self.mtype >> 7) & 2)

    @property
    def name(self) -> str:
        if self.classic and self.mtype not in (0x0001, 0x0101, 0x0111):
            return f"classic 0x{self.mtype:04x}"
        if self.ms_turn and self.method == MS_SEND:
            return f"ms-send {CLASSES[self.cls]}"
        if self.method not in METHODS:  # a vendor's own type (WhatsApp 0x0800-0x0805): its class bits mean nothing
            return f"type 0x{self.mtype:04x}"
        return f"{METHODS[self.method]} {CLASSES[self.cls]}"


def _walk(body: bytes, pad: bool) -> tuple[list[tuple[int, bytes]], bool]:
    out, pos = [], 0
    while pos + 4 <= len(body) and len(out) < MAX_ATTRS:
        atype, length = struct.unpack_from("!HH", body, pos)
        value = body[pos + 4:pos + 4 + length]
        if len(value) < length:
            return out, False
        out.append((atype, value))
        pos += 4 + length + ((-length % 4) if pad else 0)
    return out, pos == len(body)


def parse(data: bytes) -> Message | None:
    """A whole STUN message (header length must match), or None when the bytes are not STUN.

    Attributes are padded to 4 bytes (RFC 5389 §15); MS-TURN does not pad, so an unpadded walk is tried
    when the padded one does not end exactly at the message end.
    """
    if len(data) < 20 or data[0] & 0xC0:
        return None
    mtype, length, cookie, txid = HEADER.unpack_from(data)
    if 20 + length != len(data):
        return None
    classic = cookie != MAGIC
    if classic and (mtype not in CLASSIC_TYPES or length % 4):
        return None
    attrs, whole = _walk(data[20:], pad=True)
    if not whole and not classic:
        attrs, whole = _walk(data[20:], pad=False)
    if not whole and (classic or not attrs):
        return None
    ms_turn = bool(attrs) and attrs[0] == (MS_MAGIC_COOKIE, MS_TURN_COOKIE)
    return Message(mtype, data[4:8], txid, attrs, classic, ms_turn)


def looks_like_stun(payload: bytes) -> bool:
    """Cheap check: first two bits zero, the magic cookie, a length that fits."""
    return len(payload) >= 20 and not payload[0] & 0xC0 and payload[4:8] == MAGIC_BYTES and \
        20 + ((payload[2] << 8) | payload[3]) <= len(payload)


def address(value: bytes, xor_key: bytes | None) -> tuple[str, int] | None:
    """(address, port) of a (XOR-)MAPPED-ADDRESS-style value; XOR with cookie + transaction id (RFC 8489 §14.2)."""
    if len(value) < 8 or value[1] not in (1, 2):
        return None
    size = 4 if value[1] == 1 else 16
    if len(value) < 4 + size:
        return None
    port = int.from_bytes(value[2:4], "big")
    raw = value[4:4 + size]
    if xor_key is not None:
        port ^= MAGIC >> 16
        raw = bytes(a ^ b for a, b in zip(raw, xor_key))
    return socket.inet_ntop(socket.AF_INET if size == 4 else socket.AF_INET6, raw), port


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}


def text(raw: bytes) -> str:
    """Attribute text for reports: undecodable bytes and control characters backslash-escaped."""
    return raw[:MAX_TEXT].decode("utf-8", errors="backslashreplace").translate(_CONTROL)


def client_hint(payload: bytes, sport: int, dport: int) -> bool | None:
    """The request sender is the client; on a well-known STUN/TURN port the port says who the server is
    (a TURN server also sends ICE checks, which would otherwise make it look like the client)."""
    msg = parse(payload)
    if msg is None and len(payload) > 22 and int.from_bytes(payload[:2], "big") == len(payload) - 2:
        msg = parse(payload[2:])  # RFC 4571 framing
    if msg is None:
        return None
    if sport in STUN_PORTS and dport not in STUN_PORTS:
        return False
    if dport in STUN_PORTS and sport not in STUN_PORTS:
        return True
    if msg.classic:
        return {0x0001: True, 0x0101: False, 0x0111: False}.get(msg.mtype)
    if msg.method not in METHODS:
        return None
    if msg.cls == REQUEST:
        return True
    if msg.cls in (SUCCESS, ERROR):
        return False
    return {SEND: True, DATA_METHOD: False}.get(msg.method)


class _Flow:
    """What one flow's STUN/TURN messages add up to."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.handshake = dtls.Handshake()
        self.transport = "udp"  # of the relay allocation: REQUESTED-TRANSPORT says when it is TCP (RFC 6062)
        self.types: list[int] = []
        self.attrs: set[int] = set()
        self.names: list[str] = []
        self.software: list[str] = []
        self.relayed: dict[str, int] = {}
        self.channels: set[int] = set()
        self.seen = False
        self.turn = False
        self.endpoints: dict[tuple[str, int], dict] = {(e["h"], e["p"]): e for e in facts.endpoints}

    def message(self, msg: Message, frame: int, from_orig: bool) -> None:
        self.seen = True
        if msg.mtype not in self.types and len(self.types) < 64:
            self.types.append(msg.mtype)
        if msg.name not in self.names and len(self.names) < 64:
            self.names.append(msg.name)
        method, cls = msg.method, msg.cls
        turn = not msg.classic and (method in TURN_METHODS or msg.ms_turn)
        self.turn |= turn
        via = "turn" if turn else "stun"
        xor_key = msg.cookie + msg.txid
        d = self.facts.details
        for atype, value in msg.attrs:
            self.attrs.add(atype)
            if atype == SOFTWARE:
                if (sw := text(value.rstrip(b"\0"))) not in self.software and len(self.software) < 4:
                    self.software.append(sw)
            elif atype == REALM:
                d.setdefault("realm", text(value))
            elif atype == REQUESTED_TRANSPORT and value[:1] == b"\x06":
                self.transport = "tcp"
            elif msg.classic and cls == SUCCESS and atype == MAPPED_ADDRESS or \
                    msg.classic and msg.mtype == 0x0002 and atype == ZOOM_MAPPED_ADDRESS:
                self.mapped(address(value, None), frame, from_orig, f"0x{atype:04x}")
            elif msg.classic:
                continue
            elif atype in (XOR_MAPPED_ADDRESS, XOR_MAPPED_ADDRESS_OLD) and cls == SUCCESS:
                self.mapped(address(value, xor_key), frame, from_orig, f"0x{atype:04x}")
            elif atype == MAPPED_ADDRESS and msg.ms_turn and method == ALLOCATE and cls == SUCCESS:
                self.endpoint(address(value, None), "relay", frame, via)  # MS-TURN: the allocated address
            elif atype == MAPPED_ADDRESS and method == BINDING and cls == SUCCESS:
                self.mapped(address(value, None), frame, from_orig, "0x0001")
            elif atype == XOR_RELAYED_ADDRESS and method == ALLOCATE and cls == SUCCESS:
                self.endpoint(address(value, xor_key), "relay", frame, via)
            elif atype == XOR_PEER_ADDRESS and cls != ERROR:
                # MS-TURN's 0x0012 is REMOTE-ADDRESS, not XOR-ed
                self.endpoint(address(value, None if msg.ms_turn else xor_key), "peer", frame, via)
            elif atype == DESTINATION_ADDRESS and msg.ms_turn:
                self.endpoint(address(value, None), "peer", frame, via)
            elif atype == DATA and (method in (SEND, DATA_METHOD) or msg.ms_turn):
                self.payload(value, frame, from_orig)

    def mapped(self, addr: tuple[str, int] | None, frame: int, from_orig: bool, attr: str) -> None:
        """The requester's public address as the responder saw it; kept for the flow's originator only."""
        if addr and not from_orig and "mapped_address" not in self.facts.details:
            self.facts.details["mapped_address"] = {"h": addr[0], "p": addr[1], "frame": frame, "attr": attr}

    def endpoint(self, addr: tuple[str, int] | None, role: str, frame: int, via: str) -> None:
        """A relay or peer the messages name; the earliest frame is its evidence (TCP directions are
        walked one after the other, so a later-numbered frame may be seen first)."""
        if not addr or addr[1] == 0 or addr[0] in ("0.0.0.0", "::"):
            return
        if (known := self.endpoints.get(addr)) is not None:
            known["frame"] = min(known["frame"], frame)
            if role == "relay":
                known["role"] = "relay"
            return
        if len(self.endpoints) >= MAX_ENDPOINTS:
            return
        self.endpoints[addr] = {"h": addr[0], "p": addr[1], "proto": self.transport, "role": role,
                                "frame": frame, "via": via}
        self.facts.endpoints.append(self.endpoints[addr])

    def payload(self, inner: bytes, frame: int, from_orig: bool) -> None:
        """Application data a TURN relay carries (Send/Data DATA attribute or ChannelData)."""
        kind = demux.kind(inner) or "other"
        self.relayed[kind] = self.relayed.get(kind, 0) + 1
        if kind == demux.DTLS:
            self.handshake.feed(inner, frame, from_orig)

    def datagram(self, payload: bytes, frame: int, from_orig: bool) -> None:
        kind = demux.kind(payload)
        if _stun_datagram(payload, kind):
            msg = parse(payload)
            if msg is not None:
                self.message(msg, frame, from_orig)
            elif looks_like_stun(payload):
                self.facts.malformed += 1
        elif kind == demux.TURN_CHANNEL and self.seen:  # ChannelData only after TURN spoke on this flow
            cd = demux.channel_data(payload)
            if cd is not None and len(payload) - cd[2] < 4:
                self.channel(cd, frame, from_orig)

    def channel(self, cd: tuple[int, bytes, int], frame: int, from_orig: bool) -> None:
        self.turn = True
        if len(self.channels) < 64:
            self.channels.add(cd[0])
        self.payload(cd[1], frame, from_orig)

    def stream(self, data: bytes, marks: list[tuple[int, int]], framed: bool, from_orig: bool) -> None:
        """STUN / ChannelData messages of one TCP direction (`_framing` says which): plain TURN framing or
        RFC 4571 prefixes."""
        off = 0
        for _ in range(MAX_STREAM_MESSAGES):
            if off + 4 > len(data):
                break
            if framed:
                size = int.from_bytes(data[off:off + 2], "big")
                body = data[off + 2:off + 2 + size]
                if len(body) < size:
                    break
                frame = frame_at(marks, off + 1 + size)
                msg = parse(body)
                if msg is not None:
                    self.message(msg, frame, from_orig)
                elif demux.kind(body) == demux.DTLS:
                    self.handshake.feed(body, frame, from_orig)
                off += 2 + size
            elif data[off + 4:off + 8] == MAGIC_BYTES and not data[off] & 0xC0:
                size = 20 + int.from_bytes(data[off + 2:off + 4], "big")
                if off + size > len(data):
                    break
                msg = parse(data[off:off + size])
                if msg is None:
                    self.facts.malformed += 1
                    break
                self.message(msg, frame_at(marks, off + size - 1), from_orig)
                off += size
            elif (cd := demux.channel_data(data[off:off + 4 + 0xFFFF + 3], stream=True)) is not None:
                if off + 4 + len(cd[1]) > len(data):
                    break
                self.channel(cd, frame_at(marks, off + 3 + len(cd[1])), from_orig)
                off += cd[2]
            else:
                break

    def finish(self) -> None:
        if not self.seen:
            return
        f, d = self.facts, self.facts.details
        f.add_service("stun")
        if self.turn:
            f.add_service("turn")
        d["stun_types"] = self.types
        d["stun_messages"] = self.names
        d["stun_attributes"] = sorted(self.attrs)
        if self.software:
            d["software"] = self.software
        if self.channels:
            d["turn_channels"] = sorted(self.channels)
        if self.relayed:
            d["turn_payloads"] = dict(sorted(self.relayed.items()))
        self.handshake.apply(f)


def _stun_datagram(payload: bytes, kind: str | None) -> bool:
    """Is this datagram read as STUN? RFC 7983 gives STUN only first bytes 0-3, but vendor methods above
    0x0FF (WhatsApp's 0x0800-0x0805) start with 4-63: the magic cookie and an exact length identify them."""
    return kind == demux.STUN or payload[4:8] == MAGIC_BYTES and payload[0] < 0x40


def inspect(view: FlowView, facts: Facts) -> None:
    if view.proto == "udp":
        # nothing before a flow's first STUN datagram counts (ChannelData only after TURN spoke): most
        # flows have none, and are left at that
        first = next((i for i, s in enumerate(view.samples)
                      if s.payload and _stun_datagram(s.payload, demux.kind(s.payload))), None)
        if first is None:
            return
        flow = _Flow(facts)
        for s in view.samples[first:]:
            if s.payload:
                flow.datagram(s.payload, s.frame, s.from_orig)
    else:
        flow = None
        for from_orig in (True, False):  # most TCP flows are neither: no state is built for them
            data, marks = view.stream(from_orig)
            framed = _framing(data)
            if framed is not None:
                flow = flow or _Flow(facts)
                flow.stream(data, marks, framed, from_orig)
        if flow is None:
            return
    flow.finish()


def _framing(data: bytes) -> bool | None:
    """How a TCP stream carries STUN: with RFC 4571 length prefixes (True), plainly (False), or not (None)."""
    if len(data) >= 22 and parse(data[2:2 + int.from_bytes(data[:2], "big")]) is not None:
        return True
    return False if looks_like_stun(data) else None
