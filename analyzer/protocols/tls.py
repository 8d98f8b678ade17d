"""TLS over TCP: the hellos (SNI, ALPN, version, key shares, ECH, HelloRetryRequest), certificate names
(TLS <= 1.2) and the handshake frames.

Records are walked by their 5-byte headers across the reassembled stream, handshake messages are
reassembled across records, and scapy's TLS layer dissects the ClientHello. The ServerHello is read with
`struct`: scapy's TLS 1.3 ServerHello dissection runs key-exchange post-processing that raises on a
HelloRetryRequest. `client_hello` and `server_hello` (TLS's 4-byte message header) are shared with QUIC;
`describe` takes parsed hellos from any transport.

Encrypted Client Hello: the flow keeps `server_name_source == "sni"` and gets `details["ech"] = True` plus
a finding, rather than a new name source. Browsers send GREASE ECH to every server (Chrome's ClientHello to
meet.google.com carries one), and GREASE is built to look like real ECH on the wire, so a separate source
would wrongly demote real names; the finding says the name may be the client-facing server's public name.
"""

from __future__ import annotations

import struct
from bisect import bisect_right

from analyzer.protocols import Facts, FlowView, frame_at

HANDSHAKE = 22
CLIENT_HELLO, SERVER_HELLO, CERTIFICATE, SERVER_KEY_EXCHANGE, CLIENT_KEY_EXCHANGE = 1, 2, 11, 12, 16
KEY_MESSAGES = {CLIENT_HELLO, SERVER_HELLO, SERVER_KEY_EXCHANGE, CLIENT_KEY_EXCHANGE}
MAX_MESSAGES = 64
EXT_SUPPORTED_VERSIONS, EXT_KEY_SHARE, EXT_ALPN, EXT_ECH = 43, 51, 16, 0xFE0D
# RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest.
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
# IANA TLS Supported Groups (names as the registry writes them).
GROUPS = {
    0x0015: "secp224r1", 0x0016: "secp256k1", 0x0017: "secp256r1", 0x0018: "secp384r1", 0x0019: "secp521r1",
    0x001A: "brainpoolP256r1", 0x001B: "brainpoolP384r1", 0x001C: "brainpoolP512r1", 0x001D: "x25519",
    0x001E: "x448", 0x001F: "brainpoolP256r1tls13", 0x0020: "brainpoolP384r1tls13",
    0x0021: "brainpoolP512r1tls13", 0x0029: "curveSM2", 0x0100: "ffdhe2048", 0x0101: "ffdhe3072",
    0x0102: "ffdhe4096", 0x0103: "ffdhe6144", 0x0104: "ffdhe8192", 0x0200: "MLKEM512", 0x0201: "MLKEM768",
    0x0202: "MLKEM1024", 0x11EB: "SecP256r1MLKEM768", 0x11EC: "X25519MLKEM768", 0x11ED: "SecP384r1MLKEM1024",
    0x6399: "X25519Kyber768Draft00", 0x639A: "SecP256r1Kyber768Draft00",
}
# Groups whose shared secret resists a quantum computer: hybrids (classic + ML-KEM/Kyber) and pure ML-KEM.
POST_QUANTUM = frozenset({0x0200, 0x0201, 0x0202, 0x11EB, 0x11EC, 0x11ED, 0x6399, 0x639A})


HINT_BYTES = frozenset({HANDSHAKE})  # `client_hint` says nothing unless the payload starts so


def client_hint(payload: bytes, sport: int, dport: int) -> bool | None:
    if len(payload) > 5 and payload[0] == HANDSHAKE and payload[1] == 3 and payload[5] in (1, 2):
        return payload[5] == CLIENT_HELLO
    return None


def text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values (0x0a0a, 0x1a1a, ...): noise a client adds, never negotiated."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def group_name(group: int) -> str:
    return GROUPS.get(group, f"0x{group:04x}")


def version_name(version: int) -> str:
    """Wireshark's names for (D)TLS versions, drafts included, e.g. 0x0304 -> "TLS 1.3"."""
    names = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3",
             0xFEFF: "DTLS 1.0", 0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3", 0x0100: "DTLS 1.0 (OpenSSL pre 0.9.8f)"}
    if version in names:
        return names[version]
    if version >> 8 == 0x7F:
        return f"TLS 1.3 (draft {version & 0xFF})"
    if version >> 8 == 0xFB:  # Facebook's experimental TLS 1.3 (Fizz), e.g. 0xfb1a
        return f"TLS 1.3 (Facebook draft {version & 0xFF})"
    return "GREASE" if is_grease(version) else f"0x{version:04x}"


def _hello_record(content: bytes) -> bool:
    """Is this record exactly one plaintext hello? (Only those may follow a TLS 1.3 ChangeCipherSpec.)"""
    return (len(content) >= 6 and content[0] in (CLIENT_HELLO, SERVER_HELLO)
            and 4 + int.from_bytes(content[1:4], "big") == len(content) and content[4] == 3)


def handshake_messages(data: bytes, marks: list[tuple[int, int]]) -> list[tuple[int, bytes, list[int]]]:
    """(type, message body, frames that carried it) for the handshake messages at the start of a stream.

    After a ChangeCipherSpec the handshake is encrypted, except in TLS 1.3's middlebox-compatibility mode,
    where a second ClientHello (after a HelloRetryRequest) or the ServerHello still follows in the clear:
    such records are kept only when they hold exactly one well-formed hello.
    """
    contents: list[bytes] = []
    pieces: list[tuple[int, int]] = []  # (offset in hs, offset in stream) per record fragment
    size = off = 0
    after_ccs = False
    while off + 5 <= len(data):
        ctype, major, length = data[off], data[off + 1], data[off + 3] << 8 | data[off + 4]
        if ctype not in (20, 21, 22, 23) or major != 3:
            break
        if ctype == HANDSHAKE:
            content = data[off + 5:off + 5 + length]
            if after_ccs and not _hello_record(content):
                break
            pieces.append((size, off + 5))
            contents.append(content)
            size += len(content)
        elif ctype == 20:
            after_ccs = True
        elif ctype == 23:  # application data: the handshake is over, or encrypted
            break
        off += 5 + length
    hs = bytes(contents[0]) if len(contents) == 1 else b"".join(contents)  # one record: no copy (bytes of bytes)
    piece_starts = [p[0] for p in pieces]

    def frame_of(h: int) -> int:
        """The frame that carried byte `h` of the handshake messages."""
        i = bisect_right(piece_starts, h) - 1
        base = pieces[i] if i >= 0 else (0, 0)
        return frame_at(marks, base[1] + h - base[0])

    out = []
    pos = 0
    while pos + 4 <= len(hs) and len(out) < MAX_MESSAGES:
        mtype = hs[pos]
        mlen = int.from_bytes(hs[pos + 1:pos + 4], "big")
        if pos + 4 + mlen > len(hs):
            break
        first, last = frame_of(pos), frame_of(pos + 3 + mlen)
        out.append((mtype, hs[pos:pos + 4 + mlen], [first] if first == last else sorted((first, last))))
        pos += 4 + mlen
    return out


def client_hello(message: bytes) -> dict:
    """SNI, ALPN, offered versions, groups and key shares, and ECH from a ClientHello.

    A busy network has a ClientHello per flow, and scapy's dissection costs ~1 ms each (plus 0.3 s to
    import its TLS layer), so a strict `struct` walk reads well-formed hellos; anything it declines goes
    to scapy's TLS layer, which tests/protocols/test_tls.py also uses as the oracle for this parser.
    """
    try:
        return _client_hello_fast(message)
    except (ValueError, IndexError, struct.error):
        return client_hello_scapy(message)


def _client_hello_fast(message: bytes) -> dict:
    """Strict parse: any length that does not add up raises ValueError (the caller then asks scapy)."""
    m = memoryview(message)
    if len(m) < 4 or m[0] != CLIENT_HELLO:
        raise ValueError("not a ClientHello")
    end = min(len(m), 4 + int.from_bytes(m[1:4], "big"))
    pos = 4 + 2 + 32  # legacy_version, random
    if pos + 1 > end:
        raise ValueError("truncated")
    version = struct.unpack_from("!H", m, 4)[0]
    pos += 1 + m[pos]  # session id
    if pos + 2 > end:
        raise ValueError("truncated")
    pos += 2 + struct.unpack_from("!H", m, pos)[0]  # cipher suites
    if pos + 1 > end:
        raise ValueError("truncated")
    pos += 1 + m[pos]  # compression methods
    out: dict = {"sni": None, "alpn": [], "versions": [], "groups": [], "key_shares": [], "ech": None,
                 "version": version}
    if pos > end:
        raise ValueError("truncated")
    if pos == end:
        return out
    if pos + 2 > end:
        raise ValueError("truncated")
    ext_end = pos + 2 + struct.unpack_from("!H", m, pos)[0]
    if ext_end > end:
        raise ValueError("extensions past the message")
    pos += 2
    while pos < ext_end:
        if pos + 4 > ext_end:
            raise ValueError("truncated extension header")
        etype, elen = struct.unpack_from("!HH", m, pos)
        pos += 4
        if pos + elen > ext_end:
            raise ValueError("extension past the message")
        ext = m[pos:pos + elen]
        pos += elen
        if etype == 0:
            names = _vector(ext, 2)
            entries = []
            while names:  # name_type (1) + opaque name<1..2^16-1>
                if len(names) < 3:
                    raise ValueError("truncated server name")
                n = struct.unpack_from("!H", names, 1)[0]
                if 3 + n > len(names):
                    raise ValueError("server name past its list")
                entries.append(bytes(names[3:3 + n]))
                names = names[3 + n:]
            if entries:
                out["sni"] = text(entries[0])
        elif etype == EXT_ALPN:
            out["alpn"] = [text(bytes(p)) for p in _items(_vector(ext, 2), 1)]
        elif etype == EXT_SUPPORTED_VERSIONS:
            out["versions"] = _u16s(_vector(ext, 1))
        elif etype == 10:  # supported_groups
            out["groups"] = [g for g in _u16s(_vector(ext, 2)) if not is_grease(g)]
        elif etype == EXT_KEY_SHARE:
            shares, groups = _vector(ext, 2), []
            while shares:
                if len(shares) < 4:
                    raise ValueError("truncated key share")
                group, n = struct.unpack_from("!HH", shares)
                if 4 + n > len(shares):
                    raise ValueError("key share past its list")
                groups.append(group)
                shares = shares[4 + n:]
            out["key_shares"] = [g for g in groups if not is_grease(g)]
        elif etype == EXT_ECH:  # ECHClientHello: type 0 outer (what a client sends), 1 inner
            out["ech"] = {0: "outer", 1: "inner"}.get(ext[0], "unknown") if elen else "unknown"
    return out


def _vector(data: memoryview, width: int) -> memoryview:
    """The body of a TLS vector with a `width`-byte length prefix that must fill `data` exactly."""
    if len(data) < width:
        raise ValueError("truncated vector")
    n = int.from_bytes(data[:width], "big")
    if width + n != len(data):
        raise ValueError("vector length does not match its extension")
    return data[width:]


def _items(data: memoryview, width: int) -> list[memoryview]:
    out = []
    while data:
        n = int.from_bytes(data[:width], "big")
        if len(data) < width or width + n > len(data):
            raise ValueError("item past its list")
        out.append(data[width:width + n])
        data = data[width + n:]
    return out


def _u16s(data: memoryview) -> list[int]:
    if len(data) % 2:
        raise ValueError("odd length")
    return list(struct.unpack(f"!{len(data) // 2}H", data))


def client_hello_scapy(message: bytes) -> dict:
    """The same facts dissected by scapy's TLS layer: the fallback and the reference for the fast walk."""
    from scapy.layers.tls.handshake import TLSClientHello

    ch = TLSClientHello(message)
    out: dict = {"sni": None, "alpn": [], "versions": [], "groups": [], "key_shares": [], "ech": None}
    for ext in ch.ext or []:
        name = type(ext).__name__
        if getattr(ext, "servernames", None):
            out["sni"] = text(ext.servernames[0].servername)
        elif getattr(ext, "protocols", None) and name == "TLS_Ext_ALPN":
            out["alpn"] = [text(p.protocol) for p in ext.protocols]
        elif name == "TLS_Ext_SupportedVersion_CH":
            out["versions"] = list(ext.versions or [])
        elif name == "TLS_Ext_SupportedGroups":
            out["groups"] = [g for g in ext.groups or [] if not is_grease(g)]
        elif name == "TLS_Ext_KeyShare_CH":
            out["key_shares"] = [e.group for e in ext.client_shares or [] if not is_grease(e.group)]
        elif ext.type == EXT_ECH:  # ECHClientHello: type 0 outer (what a client sends), 1 inner
            val = bytes(getattr(ext, "val", b"") or b"")
            out["ech"] = {0: "outer", 1: "inner"}.get(val[0], "unknown") if val else "unknown"
    out["version"] = ch.version
    return out


def server_hello(message: bytes) -> dict:
    """Negotiated version, selected key-share group, cipher suite and HelloRetryRequest flag of a ServerHello.

    Raises ValueError on a truncated message; extensions that would run past the message end the walk.
    """
    body = memoryview(message)[4:]
    if len(body) < 38:
        raise ValueError("ServerHello too short")
    legacy = struct.unpack_from("!H", body, 0)[0]
    random = bytes(body[2:34])
    pos = 35 + body[34]
    if pos + 3 > len(body):
        raise ValueError("ServerHello truncated before its cipher suite")
    cipher = struct.unpack_from("!H", body, pos)[0]
    pos += 3  # cipher suite, compression method
    out: dict = {"legacy_version": legacy, "version": legacy, "hrr": random == HRR_RANDOM, "group": None,
                 "cipher": cipher, "alpn": None}
    end = len(body)
    if pos + 2 <= end:
        end = min(end, pos + 2 + struct.unpack_from("!H", body, pos)[0])
        pos += 2
    while pos + 4 <= end:
        etype, elen = struct.unpack_from("!HH", body, pos)
        pos += 4
        if pos + elen > end:
            break  # an extension length past the message: stop, keep what was read
        ext = body[pos:pos + elen]
        if etype == EXT_SUPPORTED_VERSIONS and elen >= 2:
            out["version"] = struct.unpack_from("!H", ext)[0]
        elif etype == EXT_KEY_SHARE and elen >= 2:  # HRR: selected_group; ServerHello: KeyShareEntry
            out["group"] = struct.unpack_from("!H", ext)[0]
        elif etype == EXT_ALPN and elen >= 3 and 3 + ext[2] <= elen:  # TLS <= 1.2: the server's choice
            out["alpn"] = text(bytes(ext[3:3 + ext[2]]))
        pos += elen
    return out


def describe(facts: Facts, clients: list[tuple[dict, list[int]]], servers: list[tuple[dict, list[int]]]) -> None:
    """Record what the hellos say: names, versions, key shares (post-quantum or not), ECH, HelloRetryRequest.

    `clients` and `servers` are (parsed hello, frames that carried it) in stream order.
    """
    d = facts.details
    if clients:
        first, ch_frames = clients[0]
        if first["sni"]:
            facts.set_name(first["sni"], "sni")
        d.setdefault("tls_client_version", first["version"])
        if first["alpn"]:
            d["alpn"] = first["alpn"]
        if first["key_shares"]:
            d["key_share_offered"] = [group_name(g) for g in first["key_shares"]]
        if first["ech"]:
            d["ech"] = True
            shown = f"'{first['sni']}'" if first["sni"] else "(none)"
            facts.findings.append(
                f"Encrypted Client Hello offered (frame {ch_frames[0]}): if the server accepts it the real "
                f"server name is hidden, and the outer SNI {shown} names the client-facing server, not "
                f"necessarily the destination (GREASE ECH looks the same on the wire)")
    hrrs = [(sh, fr) for sh, fr in servers if sh["hrr"]]
    real = [(sh, fr) for sh, fr in servers if not sh["hrr"]]
    if hrrs:
        sh, fr = hrrs[0]
        d["hrr"] = True
        asked = group_name(sh["group"]) if sh["group"] is not None else "another key share"
        retry = f"; the client's second ClientHello is in frame {clients[1][1][0]}" if len(clients) > 1 else ""
        facts.findings.append(f"HelloRetryRequest in frame {fr[0]}: the server asked for {asked}{retry}")
    if real:
        sh, fr = real[0]
        d["tls_version"] = version_name(sh["version"])
        if sh["group"] is not None:
            d["key_share_selected"] = group_name(sh["group"])
        if sh["alpn"]:
            d["alpn_selected"] = sh["alpn"]
    offered: list[int] = []
    for ch, _fr in clients:
        for g in ch["key_shares"] + ch["groups"]:
            if g in POST_QUANTUM and g not in offered:
                offered.append(g)
    chosen = real[0][0]["group"] if real else None
    if chosen in POST_QUANTUM:
        d["post_quantum"] = {"offered": [group_name(g) for g in offered], "selected": group_name(chosen)}
        facts.findings.append(f"post-quantum key exchange {group_name(chosen)} selected by the server "
                              f"(ServerHello in frame {real[0][1][0]})")
    elif offered:
        d["post_quantum"] = {"offered": [group_name(g) for g in offered], "selected": None}
        names = ", ".join(group_name(g) for g in offered)
        if chosen is not None:
            outcome = (f" but the server selected {group_name(chosen)} (frame {real[0][1][0]}): "
                       f"these session keys are not quantum-resistant")
        else:
            outcome = "; the server's choice was not captured"
        facts.findings.append(f"client offered post-quantum key exchange {names} (frame {clients[0][1][0]})"
                              f"{outcome}")


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


PROTOS = frozenset({"tcp"})  # `inspect` learns nothing from flows of other transports


def inspect(view: FlowView, facts: Facts) -> None:
    if view.proto != "tcp":
        return
    seen_hello = False
    key_frames: list[int] = []
    clients: list[tuple[dict, list[int]]] = []
    servers: list[tuple[dict, list[int]]] = []
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
                    clients.append((client_hello(message), frames))
                elif mtype == SERVER_HELLO and not from_orig:
                    seen_hello = True
                    servers.append((server_hello(message), frames))
                elif mtype == CERTIFICATE and not from_orig and not facts.cert_names:
                    facts.cert_names = certificate_names(message)
                    if facts.cert_names:
                        facts.set_name(facts.cert_names[0], "cert")
            except Exception:  # noqa: BLE001 - hostile or unusual bytes: counted, never fatal
                facts.malformed += 1
    if seen_hello:
        facts.add_service("tls")
        describe(facts, clients, servers)
        facts.mark_key_exchange("tls", key_frames)
