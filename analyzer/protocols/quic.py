"""QUIC Initial packets (RFC 9000/9001; v2, RFC 9369; drafts 22-34; Facebook mvfst): the TLS hellos inside.

Initial packets are encrypted with keys anyone can derive from the Destination Connection ID of the client's
first Initial (RFC 9001 §5.2), so a passive observer reads the ClientHello (SNI, ALPN, key shares) and the
ServerHello. Per datagram, coalesced long-header packets are walked by their Length fields; header
protection is removed (AES-ECB over a ciphertext sample), the payload opened with AES-128-GCM (the tag
proves the keys right), the frames parsed, and CRYPTO data placed by offset, so a ClientHello split over
several Initials, out of order or retransmitted, comes out whole. As in Wireshark's packet-quic.c, each
Initial is tried against the connection's candidate DCIDs (the client's first one, a Retry's Source
Connection ID, its own) with client and server keys: the keys that open a packet say which side sent it.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field
from functools import lru_cache

from analyzer.protocols import Facts, FlowView, tls

V1, V2 = 0x00000001, 0x6B3343CF
SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
SALT_DRAFT22 = bytes.fromhex("7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a")
SALT_DRAFT23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")  # drafts 23-28
SALT_DRAFT29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")  # drafts 29-32
# Facebook mvfst versions and the IETF draft each follows (Wireshark's quic_draft_version()).
MVFST = {0xFACEB001: 22, 0xFACEB002: 27, 0xFACEB00E: 27}
# Long-header packet types by the two type bits; v2 rotates them (RFC 9369 §3.2).
TYPES_V1 = ("initial", "0rtt", "handshake", "retry")
TYPES_V2 = ("retry", "initial", "0rtt", "handshake")
PADDING, PING, ACK, ACK_ECN, CRYPTO, CLOSE, CLOSE_APP = 0x00, 0x01, 0x02, 0x03, 0x06, 0x1C, 0x1D
MAX_PACKETS_PER_DATAGRAM = 8
MAX_INITIALS = 64  # Initial packets tried per flow: bounds the work a hostile capture can cause
MAX_CANDIDATES = 4
MAX_CRYPTO = 64 * 1024  # highest CRYPTO offset kept: ClientHellos are a few KiB, even with ML-KEM shares
MAX_SPANS = 512


class Malformed(ValueError):
    """A QUIC field runs past its packet or datagram."""


def draft(version: int) -> int | None:
    """The IETF draft number a version follows, or None."""
    if version >> 8 == 0xFF0000:
        return version & 0xFF
    return MVFST.get(version)


def initial_salt(version: int) -> bytes | None:
    """The Initial salt of a version, or None when this module cannot read its Initials (gQUIC, unknown)."""
    if version == V1:
        return SALT_V1
    if version == V2:
        return SALT_V2
    d = draft(version)
    if d is None or d < 22 or d > 34:
        return None
    return SALT_DRAFT22 if d == 22 else SALT_DRAFT23 if d <= 28 else SALT_DRAFT29 if d <= 32 else SALT_V1


def expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """TLS 1.3 HKDF-Expand-Label with an empty context (RFC 8446 §7.1)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def initial_secret(version: int, dcid: bytes) -> bytes:
    """HKDF-Extract(initial_salt, DCID)."""
    from cryptography.hazmat.primitives import hashes, hmac

    salt = initial_salt(version)
    if salt is None:
        raise ValueError(f"no Initial salt known for QUIC version 0x{version:08x}")
    h = hmac.HMAC(salt, hashes.SHA256())
    h.update(dcid)
    return h.finalize()


@lru_cache(maxsize=256)
def initial_keys(version: int, dcid: bytes, server: bool) -> tuple[bytes, bytes, bytes]:
    """(AEAD key, IV, header-protection key) of one side's Initial packets (RFC 9001 §5.2, RFC 9369 §3.3)."""
    secret = expand_label(initial_secret(version, dcid), b"server in" if server else b"client in", 32)
    prefix = b"quicv2 " if version == V2 else b"quic "
    return (expand_label(secret, prefix + b"key", 16), expand_label(secret, prefix + b"iv", 12),
            expand_label(secret, prefix + b"hp", 16))


def varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(value, next position) of a QUIC variable-length integer (RFC 9000 §16)."""
    if pos >= len(buf):
        raise Malformed("varint past the end")
    n = 1 << (buf[pos] >> 6)
    if pos + n > len(buf):
        raise Malformed("varint past the end")
    value = buf[pos] & 0x3F
    for b in buf[pos + 1:pos + n]:
        value = (value << 8) | b
    return value, pos + n


def decode_pn(largest: int, truncated: int, bits: int) -> int:
    """The full packet number from its truncated form and the largest one seen (RFC 9000 §A.3)."""
    expected = largest + 1
    win = 1 << bits
    hwin, mask = win // 2, win - 1
    candidate = (expected & ~mask) | truncated
    if candidate <= expected - hwin and candidate < (1 << 62) - win:
        return candidate + win
    if candidate > expected + hwin and candidate >= win:
        return candidate - win
    return candidate


@dataclass(slots=True)
class LongHeader:
    """One long-header packet inside a datagram: `pn_offset` and `end` delimit its protected part."""

    kind: str  # "initial", "0rtt", "handshake", "retry", "vn"
    version: int
    dcid: bytes
    scid: bytes
    start: int
    pn_offset: int
    end: int
    token: bytes = b""


def long_header(data: bytes, off: int) -> LongHeader | None:
    """The long-header packet at `off`, or None if none starts there (short header, padding).

    Raises Malformed when a length field points past the datagram.
    """
    if off + 7 > len(data) or not data[off] & 0x80:
        return None
    first = data[off]
    version = int.from_bytes(data[off + 1:off + 5], "big")
    pos = off + 5
    dcid = data[pos + 1:pos + 1 + data[pos]]
    pos += 1 + data[pos]
    if pos >= len(data):
        raise Malformed("connection IDs past the datagram")
    scid = data[pos + 1:pos + 1 + data[pos]]
    pos += 1 + data[pos]
    if pos > len(data):
        raise Malformed("connection IDs past the datagram")
    if version == 0:
        return LongHeader("vn", 0, dcid, scid, off, pos, len(data))
    if initial_salt(version) is None or len(dcid) > 20 or len(scid) > 20:
        return None  # a version this module does not read (or not QUIC at all)
    kind = (TYPES_V2 if version == V2 else TYPES_V1)[(first >> 4) & 3]
    if kind == "retry":  # token, then a 16-byte integrity tag, to the end of the datagram
        return LongHeader(kind, version, dcid, scid, off, pos, len(data), data[pos:len(data) - 16])
    token = b""
    if kind == "initial":
        tlen, pos = varint(data, pos)
        token = data[pos:pos + tlen]
        pos += tlen
    length, pos = varint(data, pos)
    if pos + length > len(data):
        raise Malformed(f"{kind} packet length {length} runs past the datagram")
    return LongHeader(kind, version, dcid, scid, off, pos, pos + length, token)


def open_initial(data: bytes, pkt: LongHeader, keys: tuple[bytes, bytes, bytes],
                 largest: int = -1) -> tuple[int, bytes] | None:
    """(packet number, plaintext payload) if these keys open the packet, else None."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key, iv, hp = keys
    sample_at = pkt.pn_offset + 4
    if sample_at + 16 > pkt.end:
        return None
    encryptor = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = encryptor.update(data[sample_at:sample_at + 16]) + encryptor.finalize()
    first = data[pkt.start] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    pn_bytes = bytes(b ^ m for b, m in zip(data[pkt.pn_offset:pkt.pn_offset + pn_len], mask[1:1 + pn_len]))
    pn = decode_pn(largest, int.from_bytes(pn_bytes, "big"), 8 * pn_len)
    header = bytes([first]) + data[pkt.start + 1:pkt.pn_offset] + pn_bytes
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    try:
        return pn, AESGCM(key).decrypt(nonce, data[pkt.pn_offset + pn_len:pkt.end], header)
    except (InvalidTag, ValueError):
        return None


def frames(payload: bytes):
    """Yield (type, value) for the frames an Initial may carry: CRYPTO (offset, data), CONNECTION_CLOSE
    (error code, reason), PING and ACK (None). PADDING is skipped.

    Raises Malformed on a truncated frame or a frame type not allowed in Initial packets.
    """
    pos, n = 0, len(payload)
    while pos < n:
        if payload[pos] == PADDING:
            pos = n - len(payload[pos:].lstrip(b"\x00"))
            continue
        ftype, pos = varint(payload, pos)
        if ftype == PING:
            yield ftype, None
        elif ftype in (ACK, ACK_ECN):
            _largest, pos = varint(payload, pos)
            _delay, pos = varint(payload, pos)
            count, pos = varint(payload, pos)
            _first, pos = varint(payload, pos)
            for _ in range(min(count, n)):  # each range takes at least two bytes: truncation raises
                _gap, pos = varint(payload, pos)
                _len, pos = varint(payload, pos)
            if ftype == ACK_ECN:
                for _ in range(3):
                    _count, pos = varint(payload, pos)
            yield ftype, None
        elif ftype == CRYPTO:
            offset, pos = varint(payload, pos)
            length, pos = varint(payload, pos)
            if pos + length > n:
                raise Malformed("CRYPTO frame runs past the packet")
            yield ftype, (offset, payload[pos:pos + length])
            pos += length
        elif ftype in (CLOSE, CLOSE_APP):
            code, pos = varint(payload, pos)
            if ftype == CLOSE:
                _frame_type, pos = varint(payload, pos)
            rlen, pos = varint(payload, pos)
            if pos + rlen > n:
                raise Malformed("CONNECTION_CLOSE reason runs past the packet")
            yield ftype, (code, payload[pos:pos + rlen])
            pos += rlen
        else:
            raise Malformed(f"frame type 0x{ftype:x} is not allowed in an Initial packet")


class CryptoStream:
    """One side's Initial CRYPTO bytes placed by offset (first copy wins), remembering which frame gave which."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.spans: list[tuple[int, int, int]] = []  # disjoint (start, end, frame), sorted

    def add(self, offset: int, data: bytes, frame: int) -> None:
        end = offset + len(data)
        if not data or end > MAX_CRYPTO or len(self.spans) >= MAX_SPANS:
            return
        gaps, cur = [], offset
        for s, e, _f in self.spans:
            if e <= cur:
                continue
            if s >= end:
                break
            if s > cur:
                gaps.append((cur, s))
            cur = max(cur, e)
            if cur >= end:
                break
        if cur < end:
            gaps.append((cur, end))
        if len(self.buf) < end:
            self.buf.extend(bytes(end - len(self.buf)))
        for a, b in gaps:
            self.buf[a:b] = data[a - offset:b - offset]
            bisect.insort(self.spans, (a, b, frame))

    def prefix(self) -> bytes:
        """The bytes from offset 0 up to the first gap."""
        cur = 0
        for s, e, _f in self.spans:
            if s > cur:
                break
            cur = max(cur, e)
        return bytes(self.buf[:cur])

    def frames(self, start: int, end: int) -> list[int]:
        """Frames that supplied bytes of [start, end)."""
        return sorted({f for s, e, f in self.spans if s < end and e > start})


@dataclass
class Connection:
    """What the Initials of one UDP flow showed so far."""

    dcids: list[bytes] = field(default_factory=list)  # candidates for key derivation, most recent first
    version: int | None = None
    streams: tuple[CryptoStream, CryptoStream] = field(default_factory=lambda: (CryptoStream(), CryptoStream()))
    largest: list[int] = field(default_factory=lambda: [-1, -1])
    opened: list[list[int]] = field(default_factory=lambda: [[], []])  # frames of decrypted Initials per side
    tried: int = 0
    undecrypted: int = 0
    retries: list[int] = field(default_factory=list)
    vn_versions: list[int] = field(default_factory=list)
    close: dict | None = None

    def candidate(self, dcid: bytes) -> None:
        if dcid in self.dcids:
            self.dcids.remove(dcid)
        self.dcids.insert(0, dcid)
        del self.dcids[MAX_CANDIDATES:]

    def datagram(self, frame: int, data: bytes, facts: Facts) -> None:
        off = 0
        for _ in range(MAX_PACKETS_PER_DATAGRAM):
            try:
                pkt = long_header(data, off)
            except Malformed:
                facts.malformed += 1
                return
            if pkt is None:
                return
            if pkt.kind == "vn":
                body = data[pkt.pn_offset:]
                self.vn_versions += [v for (v,) in struct.iter_unpack("!I", body[:len(body) // 4 * 4][:64])
                                     if v not in self.vn_versions]
                return
            if pkt.kind == "retry":
                self.retries.append(frame)
                self.candidate(pkt.scid)  # the client's next Initial derives its keys from this ID
                return
            if pkt.kind == "initial":
                self.initial(frame, data, pkt, facts)
            off = pkt.end

    def initial(self, frame: int, data: bytes, pkt: LongHeader, facts: Facts) -> None:
        if self.tried >= MAX_INITIALS:
            return
        self.tried += 1
        cands = self.dcids + ([pkt.dcid] if pkt.dcid not in self.dcids else [])
        for dcid in cands:
            for server in (False, True):
                opened = open_initial(data, pkt, initial_keys(pkt.version, dcid, server), self.largest[server])
                if opened is None:
                    continue
                pn, payload = opened
                if dcid not in self.dcids:
                    self.candidate(dcid)
                self.version = pkt.version
                self.largest[server] = max(self.largest[server], pn)
                self.opened[server].append(frame)
                try:
                    for ftype, value in frames(payload):
                        if ftype == CRYPTO:
                            self.streams[server].add(value[0], value[1], frame)
                        elif ftype in (CLOSE, CLOSE_APP) and self.close is None:
                            self.close = {"frame": frame, "by": "server" if server else "client",
                                          "error": value[0], "reason": tls.text(value[1][:200])}
                except Malformed:
                    facts.malformed += 1
                return
        self.undecrypted += 1


HINT_BYTES = frozenset(range(0xC0, 0x100))  # long headers: `client_hint` says nothing otherwise


def client_hint(payload: bytes, sport: int, dport: int) -> bool | None:
    """A client's first Initial opens with client keys from its own DCID; Retry and Version Negotiation
    packets come from servers."""
    if len(payload) < 7 or payload[0] < 0xC0:
        return None
    try:
        pkt = long_header(payload, 0)
    except Malformed:
        return None
    if pkt is None:
        return None
    if pkt.kind in ("retry", "vn"):
        return False
    if pkt.kind != "initial":
        return None
    try:
        if open_initial(payload, pkt, initial_keys(pkt.version, pkt.dcid, False)) is not None:
            return True
    except Exception:  # noqa: BLE001 - hostile bytes never decide a role
        return None
    return True if dport == 443 and sport != 443 and len(payload) >= 1200 else None


def _messages(data: bytes) -> list[tuple[int, int, int]]:
    """(type, start, end) of the complete handshake messages at the start of a CRYPTO stream."""
    out, pos = [], 0
    while pos + 4 <= len(data) and len(out) < tls.MAX_MESSAGES:
        end = pos + 4 + int.from_bytes(data[pos + 1:pos + 4], "big")
        if end > len(data):
            break
        out.append((data[pos], pos, end))
        pos = end
    return out


PROTOS = frozenset({"udp"})  # `inspect` learns nothing from flows of other transports


def inspect(view: FlowView, facts: Facts) -> None:
    if view.proto != "udp":
        return
    conn: Connection | None = None
    for s in view.samples:
        p = s.payload
        if len(p) < 7 or not p[0] & 0x80 or (p[1:5] != b"\0\0\0\0" and initial_salt(
                int.from_bytes(p[1:5], "big")) is None):
            continue
        if conn is None:
            conn = Connection()
        conn.datagram(s.frame, p, facts)
    if conn is None or conn.version is None:
        return
    facts.add_service("quic")
    facts.details["quic_version"] = f"0x{conn.version:08x}"
    if conn.retries:
        facts.details["quic_retry_frames"] = conn.retries
    if conn.vn_versions:
        facts.details["quic_server_versions"] = [f"0x{v:08x}" for v in conn.vn_versions]
    if conn.close:
        facts.details["quic_close"] = conn.close
    parsed: list[list[tuple[dict, list[int]]]] = [[], []]
    key_frames: list[int] = []
    for server in (False, True):
        stream = conn.streams[server]
        data = stream.prefix()
        for mtype, start, end in _messages(data):
            if mtype not in (tls.CLIENT_HELLO, tls.SERVER_HELLO):
                continue
            carried = stream.frames(start, end)
            key_frames += carried
            try:
                if mtype == tls.CLIENT_HELLO and not server:
                    parsed[0].append((tls.client_hello(data[start:end]), carried))
                elif mtype == tls.SERVER_HELLO and server:
                    parsed[1].append((tls.server_hello(data[start:end]), carried))
            except Exception:  # noqa: BLE001 - hostile or unusual bytes: counted, never fatal
                facts.malformed += 1
    if not parsed[0]:  # ClientHello incomplete in the capture: the Initials that carried its pieces
        key_frames += [f for s, e, f in conn.streams[0].spans]
    tls.describe(facts, parsed[0], parsed[1])
    if key_frames:  # Initials with only ACKs carry no key exchange
        facts.mark_key_exchange("quic", key_frames)
