"""DTLS 1.0/1.2/1.3 handshakes: hellos, use_srtp (DTLS-SRTP, RFC 5764), certificates, key-exchange frames.

Records are read by their 13-byte headers (RFC 6347 §4.1), handshake fragments are reassembled by
message_seq/fragment_offset (certificates rarely fit one datagram), and DTLS 1.3 unified-header records
(first byte 001CSLEE, RFC 9147 §4) are recognised and counted but stay encrypted. scapy has no DTLS
layer, so the few fields that matter are read here; certificates go to the TLS module's X.509 reader.
The same parser runs over DTLS that a TURN relay carries (called from the STUN module).
"""

from __future__ import annotations

import struct

from analyzer.protocols import Facts, FlowView, demux

CCS, ALERT, HANDSHAKE, APP_DATA, HEARTBEAT, TLS12_CID, ACK = 20, 21, 22, 23, 24, 25, 26
CLIENT_HELLO, SERVER_HELLO, HELLO_VERIFY_REQUEST = 1, 2, 3
CERTIFICATE, SERVER_KEY_EXCHANGE, CLIENT_KEY_EXCHANGE = 11, 12, 16
KEY_MESSAGES = {CLIENT_HELLO, SERVER_HELLO, SERVER_KEY_EXCHANGE, CLIENT_KEY_EXCHANGE}
VERSIONS = {0xFEFF: "DTLS 1.0", 0x0100: "DTLS 1.0", 0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3"}
EXT_SERVER_NAME, EXT_USE_SRTP, EXT_ALPN, EXT_SUPPORTED_VERSIONS, EXT_COOKIE = 0, 14, 16, 43, 44
EXT_CONNECTION_ID = (53, 54)  # draft codepoint, RFC 9146

# IANA "DTLS-SRTP Protection Profiles" (RFC 5764 §4.1.2, RFC 7714 §14.2, RFC 8723, RFC 8269).
SRTP_PROFILES = {
    0x0001: "SRTP_AES128_CM_HMAC_SHA1_80", 0x0002: "SRTP_AES128_CM_HMAC_SHA1_32",
    0x0005: "SRTP_NULL_HMAC_SHA1_80", 0x0006: "SRTP_NULL_HMAC_SHA1_32",
    0x0007: "SRTP_AEAD_AES_128_GCM", 0x0008: "SRTP_AEAD_AES_256_GCM",
    0x0009: "DOUBLE_AEAD_AES_128_GCM_AEAD_AES_128_GCM", 0x000A: "DOUBLE_AEAD_AES_256_GCM_AEAD_AES_256_GCM",
    0x000B: "SRTP_ARIA_128_CTR_HMAC_SHA1_80", 0x000C: "SRTP_ARIA_128_CTR_HMAC_SHA1_32",
    0x000D: "SRTP_ARIA_256_CTR_HMAC_SHA1_80", 0x000E: "SRTP_ARIA_256_CTR_HMAC_SHA1_32",
    0x000F: "SRTP_AEAD_ARIA_128_GCM", 0x0010: "SRTP_AEAD_ARIA_256_GCM",
}
NULL_PROFILES = {0x0005, 0x0006}

RECORD = struct.Struct("!BHH6sH")  # content type, version, epoch, sequence number, length
FRAGMENT = struct.Struct("!B3sH3s3s")  # msg type, length, message_seq, fragment_offset, fragment_length
MAX_RECORDS = 32  # per datagram
MAX_MESSAGES = 64  # per handshake, both directions
MAX_MESSAGE_BYTES = 128 * 1024  # a certificate chain is a few KB; anything far larger is hostile


def profile_name(pid: int) -> str:
    return SRTP_PROFILES.get(pid, f"0x{pid:04x}")


def is_record(payload: bytes, off: int = 0) -> bool:
    """A plausible DTLS 1.0/1.2 record header at `off`: cheap enough for every packet."""
    if len(payload) < off + RECORD.size or not CCS <= payload[off] <= ACK:
        return False
    version = (payload[off + 1] << 8) | payload[off + 2]
    return version in VERSIONS and off + RECORD.size + ((payload[off + 11] << 8) | payload[off + 12]) <= len(payload)


HINT_BYTES = frozenset({HANDSHAKE})  # `client_hint` says nothing unless the payload starts so


def client_hint(payload: bytes, sport: int, dport: int) -> bool | None:
    """The ClientHello sender is the client; ServerHello / HelloVerifyRequest come from the server."""
    if len(payload) > 25 and payload[0] == HANDSHAKE and is_record(payload) and \
            payload[3] == payload[4] == 0:  # epoch 0: hellos travel in clear
        if payload[13] == CLIENT_HELLO:
            return True
        if payload[13] in (SERVER_HELLO, HELLO_VERIFY_REQUEST):
            return False
    return None


class _Reader:
    """Bounds-checked reads over one handshake body; any overrun raises ValueError."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vec(self, n: int) -> bytes:
        return self.take(self.uint(n))

    def left(self) -> int:
        return len(self.data) - self.pos


def _extensions(r: _Reader) -> list[tuple[int, bytes]]:
    if r.left() < 2:
        return []
    block = _Reader(r.vec(2))
    out = []
    while block.left() >= 4 and len(out) < 128:
        etype = block.uint(2)
        out.append((etype, block.vec(2)))
    return out


def _profiles(value: bytes) -> list[int]:
    r = _Reader(value)
    raw = r.vec(2)
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw) - 1, 2)]


def parse_hello(body: bytes, client: bool) -> dict:
    """Version, SNI, ALPN, offered/chosen SRTP profiles and supported_versions of a Client/ServerHello."""
    r = _Reader(body)
    out: dict = {"version": r.uint(2), "sni": None, "alpn": [], "srtp": [], "versions": [], "cid": False}
    r.take(32)  # random
    r.vec(1)  # session id
    if client:
        r.vec(1)  # cookie (DTLS only)
        r.vec(2)  # cipher suites
        r.vec(1)  # compression methods
    else:
        out["cipher_suite"] = r.uint(2)
        r.uint(1)
    for etype, value in _extensions(r):
        v = _Reader(value)
        if etype == EXT_SERVER_NAME and client and len(value) > 5:
            v.uint(2)
            if v.uint(1) == 0:
                out["sni"] = v.vec(2).decode("utf-8", errors="backslashreplace")
        elif etype == EXT_USE_SRTP:
            out["srtp"] = _profiles(value)
        elif etype == EXT_ALPN and value:
            names = _Reader(v.vec(2))
            while names.left() and len(out["alpn"]) < 16:
                out["alpn"].append(names.vec(1).decode("utf-8", errors="backslashreplace"))
        elif etype == EXT_SUPPORTED_VERSIONS and value:
            if client:
                raw = v.vec(1)
                out["versions"] = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw) - 1, 2)]
            else:
                out["versions"] = [v.uint(2)]
        elif etype in EXT_CONNECTION_ID:
            out["cid"] = True
    return out


class _Message:
    """One handshake message being reassembled from its fragments."""

    __slots__ = ("buf", "done", "frames", "from_orig", "mask", "mtype")

    def __init__(self, mtype: int, length: int, from_orig: bool) -> None:
        self.mtype, self.from_orig = mtype, from_orig
        self.buf = bytearray(length)
        self.mask = bytearray(length)
        self.frames: list[int] = []
        self.done = False


class Handshake:
    """The handshake of one DTLS association (both directions), fed datagram by datagram in frame order."""

    def __init__(self) -> None:
        self.messages: dict[tuple[bool, int, int], _Message] = {}
        self.complete: list[_Message] = []
        self.unified = 0  # DTLS 1.3 unified-header (encrypted) records
        self.cid_records = 0
        self.handshake_records = 0

    def feed(self, datagram: bytes, frame: int, from_orig: bool) -> bool:
        """Read the records of one datagram; False when it does not start with a DTLS record."""
        off, n, seen = 0, 0, False
        while off < len(datagram) and n < MAX_RECORDS:
            n += 1
            first = datagram[off]
            if first & 0xE0 == 0x20:  # RFC 9147 unified header: 001C SLEE
                self.unified += 1
                seen = True
                if first & 0x10:  # a connection ID of negotiated (unknown here) length: cannot walk on
                    self.cid_records += 1
                    break
                if not first & 0x04:  # no length field: the record fills the datagram
                    break
                hdr = 1 + (2 if first & 0x08 else 1)
                if off + hdr + 2 > len(datagram):
                    break
                off += hdr + 2 + int.from_bytes(datagram[off + hdr:off + hdr + 2], "big")
                continue
            if not is_record(datagram, off):
                break
            ctype, _version, epoch, _seq, length = RECORD.unpack_from(datagram, off)
            body = datagram[off + RECORD.size:off + RECORD.size + length]
            seen = True
            if ctype == TLS12_CID:
                self.cid_records += 1
                break  # RFC 9146 record: the CID length is negotiated, the header cannot be walked further
            if ctype == HANDSHAKE and epoch == 0:
                self.handshake_records += 1
                self._fragments(body, frame, from_orig)
            off += RECORD.size + length
        return seen

    def _fragments(self, body: bytes, frame: int, from_orig: bool) -> None:
        pos = 0
        while pos + FRAGMENT.size <= len(body):
            mtype, length, mseq, foff, flen = FRAGMENT.unpack_from(body, pos)
            length, foff, flen = (int.from_bytes(x, "big") for x in (length, foff, flen))
            data = body[pos + FRAGMENT.size:pos + FRAGMENT.size + flen]
            pos += FRAGMENT.size + flen
            if len(data) < flen or foff + flen > length or length > MAX_MESSAGE_BYTES:
                return  # damaged or hostile fragment header: stop reading this record
            key = (from_orig, mseq, mtype)
            msg = self.messages.get(key)
            if msg is None:
                if len(self.messages) >= MAX_MESSAGES:
                    return
                msg = self.messages[key] = _Message(mtype, length, from_orig)
            elif len(msg.buf) != length:
                continue  # a different message under a reused sequence number: keep the first
            if frame not in msg.frames:
                msg.frames.append(frame)
            if msg.done:
                continue  # retransmission of a message already whole
            msg.buf[foff:foff + flen] = data
            msg.mask[foff:foff + flen] = b"\x01" * flen
            if 0 not in msg.mask:
                msg.done = True
                self.complete.append(msg)

    def apply(self, facts: Facts) -> None:
        """Turn what was reassembled into services, names, key-exchange kind, frames and details."""
        if not self.messages:
            if self.unified or self.cid_records:
                facts.details["dtls_encrypted_records"] = self.unified + self.cid_records
            return
        facts.add_service("dtls")
        key_frames = sorted({f for m in self.messages.values() if m.mtype in KEY_MESSAGES for f in m.frames})
        client = server = None
        for msg in self.complete:
            try:
                if msg.mtype == CLIENT_HELLO and client is None:
                    client = parse_hello(bytes(msg.buf), client=True)
                elif msg.mtype == SERVER_HELLO and server is None:
                    server = parse_hello(bytes(msg.buf), client=False)
                elif msg.mtype == HELLO_VERIFY_REQUEST:
                    facts.details["dtls_cookie_exchange"] = True
                elif msg.mtype == CERTIFICATE and not facts.cert_names:
                    self._certificate(bytes(msg.buf), facts)
            except (ValueError, IndexError, struct.error):  # hostile or unusual bytes: counted, never fatal
                facts.malformed += 1
        self._details(client, server, facts)
        if client is None and server is None:
            return  # fragments of hellos never completed: the kind of exchange is unknown
        offered = (client or {}).get("srtp") or []
        chosen = (server or {}).get("srtp") or []
        facts.mark_key_exchange("dtls-srtp" if offered or chosen else "dtls", key_frames)

    @staticmethod
    def _certificate(body: bytes, facts: Facts) -> None:
        from analyzer.protocols.tls import certificate_names

        try:
            names = certificate_names(bytes([CERTIFICATE]) + len(body).to_bytes(3, "big") + body)
        except Exception:  # noqa: BLE001 - hostile DER makes cryptography raise types of its own
            facts.malformed += 1
            return
        facts.cert_names = names
        # WebRTC certificates carry made-up subjects ("WebRTC", random strings): only host names name a server
        host = next((n for n in names if "." in n and " " not in n), None)
        if host:
            facts.set_name(host, "cert")

    def _details(self, client: dict | None, server: dict | None, facts: Facts) -> None:
        d = facts.details
        if client:
            if client["sni"]:
                facts.set_name(client["sni"], "sni")
            if client["srtp"]:
                d["srtp_offered"] = [profile_name(p) for p in client["srtp"]]
            if client["alpn"]:
                d.setdefault("alpn", client["alpn"])
            offered = client["versions"] or [client["version"]]
            d.setdefault("dtls_client_versions", [VERSIONS.get(v, f"0x{v:04x}") for v in offered])
        if server:
            version = server["versions"][0] if server["versions"] else server["version"]
            d["dtls_version"] = VERSIONS.get(version, f"0x{version:04x}")
            if server["srtp"]:
                pid = server["srtp"][0]
                d["srtp_profile"], d["srtp_profile_id"] = profile_name(pid), pid
                if pid in NULL_PROFILES:
                    facts.findings.append(f"DTLS-SRTP chose {profile_name(pid)}: media is authenticated but "
                                          "not encrypted")
        if (client and client["cid"]) or (server and server["cid"]) or self.cid_records:
            d["dtls_connection_id"] = True
        if self.unified:
            d["dtls_encrypted_records"] = self.unified


PROTOS = frozenset({"udp"})  # `inspect` learns nothing from flows of other transports


def inspect(view: FlowView, facts: Facts) -> None:
    if view.proto != "udp":
        return
    hs = Handshake()
    for s in view.samples:
        if demux.kind(s.payload) == demux.DTLS:
            hs.feed(s.payload, s.frame, s.from_orig)
    hs.apply(facts)
