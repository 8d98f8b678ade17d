"""TLS over TCP: the ClientHello's SNI, certificate names (TLS <= 1.2) and the handshake frames.

Records are walked by their 5-byte headers across the reassembled stream, handshake messages are
reassembled across records, and scapy's TLS layer dissects the hellos.
"""

from __future__ import annotations

import struct

from analyzer.protocols import Facts, FlowView, frame_at

HANDSHAKE = 22
CLIENT_HELLO, SERVER_HELLO, CERTIFICATE, SERVER_KEY_EXCHANGE, CLIENT_KEY_EXCHANGE = 1, 2, 11, 12, 16
KEY_MESSAGES = {CLIENT_HELLO, SERVER_HELLO, SERVER_KEY_EXCHANGE, CLIENT_KEY_EXCHANGE}
MAX_MESSAGES = 64


def client_hint(payload: bytes, sport: int, dport: int) -> bool | None:
    if len(payload) > 5 and payload[0] == HANDSHAKE and payload[1] == 3 and payload[5] in (1, 2):
        return payload[5] == CLIENT_HELLO
    return None


def text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


def handshake_messages(data: bytes, marks: list[tuple[int, int]]) -> list[tuple[int, bytes, list[int]]]:
    """(type, message body, frames that carried it) for the handshake messages at the start of a stream."""
    hs = bytearray()
    pieces: list[tuple[int, int]] = []  # (offset in hs, offset in stream) per record fragment
    off = 0
    while off + 5 <= len(data):
        ctype, major, _minor, length = data[off], data[off + 1], data[off + 2], struct.unpack_from(
            "!H", data, off + 3)[0]
        if ctype not in (20, 21, 22, 23) or major != 3:
            break
        if ctype == HANDSHAKE:
            pieces.append((len(hs), off + 5))
            hs += data[off + 5:off + 5 + length]
        elif ctype == 20 or ctype == 23:  # after ChangeCipherSpec the handshake is encrypted
            break
        off += 5 + length

    def stream_off(h: int) -> int:
        base = next((p for p in reversed(pieces) if p[0] <= h), (0, 0))
        return base[1] + h - base[0]

    out = []
    pos = 0
    while pos + 4 <= len(hs) and len(out) < MAX_MESSAGES:
        mtype = hs[pos]
        mlen = int.from_bytes(hs[pos + 1:pos + 4], "big")
        if pos + 4 + mlen > len(hs):
            break
        frames = sorted({frame_at(marks, stream_off(pos)), frame_at(marks, stream_off(pos + 3 + mlen))})
        out.append((mtype, bytes(hs[pos:pos + 4 + mlen]), frames))
        pos += 4 + mlen
    return out


def client_hello(message: bytes) -> dict:
    """SNI, ALPN and offered versions from a ClientHello (dissected by scapy)."""
    from scapy.layers.tls.handshake import TLSClientHello

    ch = TLSClientHello(message)
    out: dict = {"sni": None, "alpn": [], "versions": []}
    for ext in ch.ext or []:
        if getattr(ext, "servernames", None):
            out["sni"] = text(ext.servernames[0].servername)
        elif getattr(ext, "protocols", None) and type(ext).__name__ == "TLS_Ext_ALPN":
            out["alpn"] = [text(p.protocol) for p in ext.protocols]
        elif type(ext).__name__ == "TLS_Ext_SupportedVersion_CH":
            out["versions"] = list(ext.versions or [])
    out["version"] = ch.version
    return out


def certificate_names(message: bytes) -> list[str]:
    """Subject CN and DNS SAN names of the first (leaf) certificate of a Certificate message."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    body = message[4:]
    if len(body) < 6:
        return []
    first = int.from_bytes(body[3:6], "big")
    der = body[6:6 + first]
    cert = x509.load_der_x509_certificate(der)
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME) if isinstance(a.value, str)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [n for n in san.get_values_for_type(x509.DNSName) if n not in names]
    except x509.ExtensionNotFound:
        pass
    return names


def inspect(view: FlowView, facts: Facts) -> None:
    if view.proto != "tcp":
        return
    seen_hello = False
    key_frames: list[int] = []
    for from_orig in (True, False):
        data, marks = view.stream(from_orig)
        if len(data) < 6 or data[0] != HANDSHAKE or data[1] != 3:
            continue
        for mtype, message, frames in handshake_messages(data, marks):
            if mtype in KEY_MESSAGES:
                key_frames += frames
            try:
                if mtype == CLIENT_HELLO and from_orig:
                    seen_hello = True
                    hello = client_hello(message)
                    facts.details["tls_client_version"] = hello["version"]
                    if hello["alpn"]:
                        facts.details["alpn"] = hello["alpn"]
                    if hello["sni"]:
                        facts.set_name(hello["sni"], "sni")
                elif mtype == SERVER_HELLO and not from_orig:
                    seen_hello = True
                elif mtype == CERTIFICATE and not from_orig and not facts.cert_names:
                    facts.cert_names = certificate_names(message)
                    if facts.cert_names:
                        facts.set_name(facts.cert_names[0], "cert")
            except Exception:  # hostile or unusual bytes: counted, never fatal
                facts.malformed += 1
    if seen_hello:
        facts.add_service("tls")
        facts.mark_key_exchange("tls", key_frames)
