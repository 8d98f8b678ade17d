#!/usr/bin/env python3
"""Regenerate the bundled sample captures in pcaps/ reproducibly.

    python pcaps/make_samples.py            # writes pcaps/zoom_call.pcap and pcaps/webrtc_relay.pcapng
    python pcaps/make_samples.py --out DIR  # writes them somewhere else

Everything is deterministic: a fixed PRNG seed per sample, fixed timestamps from 2026-11-02 14:00:00 UTC,
certificates and key shares derived from fixed labels, ECDSA signatures made with RFC 6979 deterministic
nonces. No value comes from the clock or the OS random source, so two runs give byte-identical files
(check with `sha256sum pcaps/*.pcap*`). pcaps/README.md describes what each file holds.

All payloads that would be encrypted on a real call (TLS application data, Zoom media, SRTP) are seeded
random bytes. Headers, handshakes, DNS, STUN/TURN and certificates are well-formed and decode in Wireshark.
Requires scapy >= 2.5 and cryptography >= 42 (for `ecdsa_deterministic`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import random
import struct
import zlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.x509.oid import NameOID
from scapy.compat import raw
from scapy.layers.dns import DNS, DNSQR, DNSRR, dns_compress
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.tls.all import (
    TLS,
    ProtocolName,
    ServerName,
    TLS13ServerHello,
    TLS_Ext_ALPN,
    TLS_Ext_ExtendedMasterSecret,
    TLS_Ext_KeyShare_CH,
    TLS_Ext_KeyShare_SH,
    TLS_Ext_PSKKeyExchangeModes,
    TLS_Ext_RenegotiationInfo,
    TLS_Ext_ServerName,
    TLS_Ext_SessionTicket,
    TLS_Ext_SignatureAlgorithms,
    TLS_Ext_SupportedGroups,
    TLS_Ext_SupportedPointFormat,
    TLS_Ext_SupportedVersion_CH,
    TLS_Ext_SupportedVersion_SH,
    TLSCertificate,
    TLSClientHello,
    TLSServerHello,
    TLSServerHelloDone,
)
from scapy.layers.tls.cert import Cert
from scapy.layers.tls.keyexchange_tls13 import KeyShareEntry
from scapy.utils import EDecimal, PcapWriter

HERE = Path(__file__).resolve().parent
T0 = int(dt.datetime(2026, 11, 2, 14, 0, 0, tzinfo=dt.UTC).timestamp())  # 1793628000
MS = 1000  # the timeline is kept in integer microseconds; MS converts milliseconds to it


def us(seconds: float) -> int:
    """Seconds (relative to T0) -> integer microseconds, rounded once, so no float drift reaches the file."""
    return round(seconds * 1_000_000)


# --------------------------------------------------------------------------------------------------------
# Deterministic key material and certificates
# --------------------------------------------------------------------------------------------------------


def _scalar(label: str) -> int:
    return int.from_bytes(hashlib.sha256(b"callaudit-sample-key:" + label.encode()).digest(), "big") >> 8


def ec_key(label: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(_scalar(label), ec.SECP256R1())


def x25519_pub(rng: random.Random) -> bytes:
    priv = x25519.X25519PrivateKey.from_private_bytes(rng.randbytes(32))
    return priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ecdsa_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))


def self_signed(
    key: ec.EllipticCurvePrivateKey,
    cn: str,
    sans: list[str],
    serial: int,
    org: str | None,
    not_before: dt.datetime,
    days: int,
) -> bytes:
    """A self-signed X.509 certificate (DER). Fixed key, serial and dates + RFC 6979 signing = same bytes."""
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs = [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        ] + attrs
    name = x509.Name(attrs)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False
        )
    cert = builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    return cert.public_bytes(serialization.Encoding.DER)


# --------------------------------------------------------------------------------------------------------
# Capture assembly: packets are collected with integer-microsecond times, sorted, then written
# --------------------------------------------------------------------------------------------------------


class Capture:
    def __init__(self, host_mac: str, gw_mac: str, host_ip: str):
        self.host_mac, self.gw_mac, self.host_ip = host_mac, gw_mac, host_ip
        self.items: list[tuple[int, int, Ether, str | None]] = []
        self.notes: dict[str, int] = {}  # label -> index into items (resolved to frame numbers after sorting)

    def add(self, t: int, ip_pkt, note: str | None = None, comment: str | None = None) -> None:
        outbound = ip_pkt[IP].src == self.host_ip
        eth = (
            Ether(src=self.host_mac, dst=self.gw_mac)
            if outbound
            else Ether(src=self.gw_mac, dst=self.host_mac)
        )
        pkt = eth / ip_pkt
        self.items.append((t, len(self.items), pkt, comment))
        if note:
            self.notes[note] = len(self.items) - 1

    def sorted(self) -> list[tuple[int, Ether, str | None, int]]:
        order = sorted(self.items, key=lambda it: (it[0], it[1]))
        return [(t, pkt, comment, idx) for t, idx, pkt, comment in order]

    def frames_of_notes(self) -> dict[str, int]:
        pos = {idx: n for n, (_t, _p, _c, idx) in enumerate(self.sorted(), start=1)}
        return {label: pos[idx] for label, idx in self.notes.items()}


def finish(pkt: Ether) -> bytes:
    """Serialise with scapy computing lengths and checksums."""
    return raw(pkt)


def write_pcap(cap: Capture, path: Path) -> int:
    w = PcapWriter(str(path), linktype=1, sync=False)
    n = 0
    for t, pkt, _comment, _idx in cap.sorted():
        # an exact decimal pkt.time (not a float), so the stored microseconds are exactly the timeline's
        pkt.time = EDecimal(T0 * 1_000_000 + t) / 1_000_000
        w.write(pkt)
        n += 1
    w.close()
    return n


def write_pcapng(cap: Capture, path: Path, ifname: str, app: str) -> int:
    """pcapng by hand (SHB, IDB with if_name/if_tsresol, EPBs with optional comments), byte for byte."""

    def opt(code: int, value: bytes) -> bytes:
        return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)

    def block(btype: int, body: bytes) -> bytes:
        total = 12 + len(body)
        return struct.pack("<II", btype, total) + body + struct.pack("<I", total)

    end = struct.pack("<HH", 0, 0)
    out = [
        block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opt(4, app.encode()) + end),
        block(1, struct.pack("<HHI", 1, 0, 262144) + opt(2, ifname.encode()) + opt(9, b"\x06") + end),
    ]
    n = 0
    for t, pkt, comment, _idx in cap.sorted():
        data = finish(pkt)
        ts = T0 * 1_000_000 + t
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
        body += data + b"\0" * (-len(data) % 4)
        if comment:
            body += opt(1, comment.encode()) + end
        out.append(block(6, body))
        n += 1
    path.write_bytes(b"".join(out))
    return n


# --------------------------------------------------------------------------------------------------------
# TCP with realistic ISNs, options, timestamps, seq/ack bookkeeping
# --------------------------------------------------------------------------------------------------------

C, S = 0, 1  # client side, server side


class TcpFlow:
    def __init__(
        self,
        cap: Capture,
        rng: random.Random,
        cip: str,
        cport: int,
        sip: str,
        sport: int,
        server_ttl: int,
        server_mss: int = 1440,
    ):
        self.cap, self.rng = cap, rng
        self.addr = {C: (cip, cport), S: (sip, sport)}
        self.nxt = {C: rng.getrandbits(32), S: rng.getrandbits(32)}
        self.ipid = {C: rng.getrandbits(16), S: rng.getrandbits(16)}
        self.tsbase = {C: rng.getrandbits(31), S: rng.getrandbits(31)}
        self.last_tsval = {C: 0, S: 0}
        self.ttl = {C: 64, S: server_ttl}
        self.win = {C: 2048, S: 501}  # after window scaling (client wscale 6, server wscale 9)
        self.mss = min(1460, server_mss) - 12  # minus the 12-byte timestamp option

    def _ts(self, side: int, t: int) -> tuple[int, int]:
        tsval = (self.tsbase[side] + t // MS) & 0xFFFFFFFF
        self.last_tsval[side] = tsval
        return tsval, self.last_tsval[1 - side]

    def seg(
        self,
        side: int,
        t: int,
        flags: str,
        payload: bytes = b"",
        note: str | None = None,
        options=None,
        window: int | None = None,
    ) -> None:
        other = 1 - side
        (src, sport), (dst, dport) = self.addr[side], self.addr[other]
        if options is None:
            tsval, tsecr = self._ts(side, t)
            options = [("NOP", None), ("NOP", None), ("Timestamp", (tsval, tsecr))]
        tcp = TCP(
            sport=sport,
            dport=dport,
            seq=self.nxt[side],
            ack=self.nxt[other] if "A" in flags else 0,
            flags=flags,
            window=self.win[side] if window is None else window,
            options=options,
        )
        ip = IP(src=src, dst=dst, ttl=self.ttl[side], id=self.ipid[side], flags="DF")
        self.ipid[side] = (self.ipid[side] + 1) & 0xFFFF
        self.cap.add(t, ip / tcp / payload if payload else ip / tcp, note=note)
        self.nxt[side] = (self.nxt[side] + len(payload) + ("S" in flags) + ("F" in flags)) & 0xFFFFFFFF

    def handshake(self, t: int, rtt: int) -> int:
        tsval, _ = self._ts(C, t)
        self.seg(
            C,
            t,
            "S",
            window=65535,
            options=[
                ("MSS", 1460),
                ("NOP", None),
                ("WScale", 6),
                ("NOP", None),
                ("NOP", None),
                ("Timestamp", (tsval, 0)),
                ("SAckOK", b""),
                ("EOL", None),
            ],
        )
        t += rtt
        tsval, tsecr = self._ts(S, t)
        self.seg(
            S,
            t,
            "SA",
            window=65160,
            options=[
                ("MSS", self.mss + 12),
                ("SAckOK", b""),
                ("Timestamp", (tsval, tsecr)),
                ("NOP", None),
                ("WScale", 9),
            ],
        )
        t += 150
        self.seg(C, t, "A")
        return t

    def send(self, side: int, t: int, data: bytes, note: str | None = None, gap: int = 60) -> int:
        """Send `data` as MSS-sized segments (PSH on the last); returns the time of the last one."""
        chunks = [data[i : i + self.mss] for i in range(0, len(data), self.mss)]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            self.seg(side, t, "PA" if last else "A", chunk, note=note if i == 0 else None)
            if not last:
                t += gap
        return t

    def ack(self, side: int, t: int) -> int:
        self.seg(side, t, "A")
        return t

    def close(self, side: int, t: int, rtt: int) -> int:
        self.seg(side, t, "FA")
        t += rtt
        self.seg(1 - side, t, "FA")
        t += 120
        self.seg(side, t, "A")
        return t


# --------------------------------------------------------------------------------------------------------
# TLS records
# --------------------------------------------------------------------------------------------------------


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def hs_msg(mtype: int, body: bytes) -> bytes:
    return struct.pack("!B", mtype) + len(body).to_bytes(3, "big") + body


CHROME_LIKE_CIPHERS = [
    0x1301,
    0x1302,
    0x1303,
    0xC02B,
    0xC02F,
    0xC02C,
    0xC030,
    0xCCA9,
    0xCCA8,
    0xC013,
    0xC014,
    0x009C,
    0x009D,
    0x002F,
    0x0035,
]
SIG_ALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def client_hello(rng: random.Random, sni: str, alpn: list[bytes]) -> tuple[bytes, bytes, bytes]:
    """A TLS 1.3-capable ClientHello record (offers 1.3 and 1.2) built with scapy.

    Returns (record, client random, legacy session id)."""
    rnd, sid = rng.randbytes(32), rng.randbytes(32)
    ch = TLSClientHello(
        version=0x0303,
        gmt_unix_time=int.from_bytes(rnd[:4], "big"),
        random_bytes=rnd[4:],
        sid=sid,
        ciphers=CHROME_LIKE_CIPHERS,
        comp=[0],
        ext=[
            TLS_Ext_ServerName(servernames=[ServerName(servername=sni.encode())]),
            TLS_Ext_ExtendedMasterSecret(),
            TLS_Ext_RenegotiationInfo(),
            TLS_Ext_SupportedGroups(groups=[29, 23, 24]),
            TLS_Ext_SupportedPointFormat(ecpl=[0]),
            TLS_Ext_SessionTicket(),
            TLS_Ext_ALPN(protocols=[ProtocolName(protocol=p) for p in alpn]),
            TLS_Ext_SignatureAlgorithms(sig_algs=SIG_ALGS),
            TLS_Ext_KeyShare_CH(client_shares=[KeyShareEntry(group=29, key_exchange=x25519_pub(rng))]),
            TLS_Ext_PSKKeyExchangeModes(kxmodes=[1]),
            TLS_Ext_SupportedVersion_CH(versions=[0x0304, 0x0303]),
        ],
    )
    return raw(TLS(type=22, version=0x0301, msg=[ch])), rnd, sid


def server_hello13(rng: random.Random, sid: bytes) -> bytes:
    sh = TLS13ServerHello(
        version=0x0303,
        random_bytes=rng.randbytes(32),
        sid=sid,
        cipher=0x1301,
        comp=0,
        ext=[
            TLS_Ext_SupportedVersion_SH(version=0x0304),
            TLS_Ext_KeyShare_SH(server_share=KeyShareEntry(group=29, key_exchange=x25519_pub(rng))),
        ],
    )
    return raw(TLS(type=22, version=0x0303, msg=[sh]))


def server_flight12(
    rng: random.Random, client_random: bytes, cert_der: bytes, key: ec.EllipticCurvePrivateKey
) -> bytes:
    """ServerHello + Certificate + ServerKeyExchange (ECDHE x25519, real ECDSA signature) + ServerHelloDone,
    in one handshake record as many TLS 1.2 servers send it."""
    srv_random = rng.randbytes(32)
    sh = TLSServerHello(
        version=0x0303,
        gmt_unix_time=int.from_bytes(srv_random[:4], "big"),
        random_bytes=srv_random[4:],
        sid=rng.randbytes(32),
        cipher=0xC02B,
        comp=0,
        ext=[
            TLS_Ext_RenegotiationInfo(),
            TLS_Ext_ExtendedMasterSecret(),
            TLS_Ext_SupportedPointFormat(ecpl=[0]),
            TLS_Ext_ALPN(protocols=[ProtocolName(protocol=b"http/1.1")]),
        ],
    )
    params = struct.pack("!BHB", 3, 29, 32) + x25519_pub(rng)
    sig = ecdsa_sign(key, client_random + srv_random + params)
    ske = hs_msg(12, params + struct.pack("!HH", 0x0403, len(sig)) + sig)
    msgs = raw(sh) + raw(TLSCertificate(certs=[Cert(cert_der)])) + ske + raw(TLSServerHelloDone())
    return record(22, msgs)


def client_finish12(rng: random.Random) -> bytes:
    """ClientKeyExchange + ChangeCipherSpec + encrypted Finished (AES-GCM: 8 nonce + 16 + 16 tag)."""
    cke = hs_msg(16, b"\x20" + x25519_pub(rng))
    return record(22, cke) + record(20, b"\x01") + record(22, rng.randbytes(40))


def server_finish12(rng: random.Random) -> bytes:
    return record(20, b"\x01") + record(22, rng.randbytes(40))


def app_data(rng: random.Random, plaintext_len: int, tls13: bool) -> bytes:
    """An encrypted application-data record (GCM; 1.2 adds an 8-byte explicit nonce, 1.3 a type byte)."""
    overhead = 17 if tls13 else 24
    return record(23, rng.randbytes(plaintext_len + overhead))


# --------------------------------------------------------------------------------------------------------
# DNS, STUN/TURN, RTP helpers
# --------------------------------------------------------------------------------------------------------


def dns_pair(
    cap: Capture,
    rng: random.Random,
    t: int,
    rtt: int,
    client: str,
    resolver: str,
    qname: str,
    answers: list[tuple[str, str, int, str]],
    note: str | None = None,
) -> int:
    """Query + response. answers: (rrname, type, ttl, rdata). Returns response time."""
    qid, sport = rng.getrandbits(16), rng.randrange(49152, 65535)
    q = DNS(id=qid, rd=1, qd=[DNSQR(qname=qname, qtype="A")])
    r = DNS(
        id=qid,
        qr=1,
        rd=1,
        ra=1,
        qd=[DNSQR(qname=qname, qtype="A")],
        an=[DNSRR(rrname=n, type=ty, ttl=ttl, rdata=rd) for n, ty, ttl, rd in answers],
    )
    cap.add(
        t,
        IP(src=client, dst=resolver, id=rng.getrandbits(16)) / UDP(sport=sport, dport=53) / q,
        note=(note + "-q") if note else None,
    )
    t += rtt
    cap.add(
        t,
        IP(src=resolver, dst=client, id=rng.getrandbits(16), ttl=64, flags="DF")
        / UDP(sport=53, dport=sport)
        / dns_compress(r),
        note=(note + "-r") if note else None,
    )
    return t


STUN_COOKIE = 0x2112A442


def stun_attr(atype: int, value: bytes) -> bytes:
    return struct.pack("!HH", atype, len(value)) + value + b"\0" * (-len(value) % 4)


def xor_addr(ip: str, port: int) -> bytes:
    a = bytes(int(x) for x in ip.split("."))
    xa = bytes(b ^ c for b, c in zip(a, STUN_COOKIE.to_bytes(4, "big")))
    return struct.pack("!BBH", 0, 1, port ^ (STUN_COOKIE >> 16)) + xa


def plain_addr(ip: str, port: int) -> bytes:
    return struct.pack("!BBH", 0, 1, port) + bytes(int(x) for x in ip.split("."))


def stun_msg(
    mtype: int, tid: bytes, attrs: list[bytes], integrity_key: bytes | None = None, fingerprint: bool = True
) -> bytes:
    """RFC 5389 message; MESSAGE-INTEGRITY (HMAC-SHA1) and FINGERPRINT (CRC-32 ^ 0x5354554e) are real."""
    body = b"".join(attrs)
    if integrity_key is not None:
        hdr = struct.pack("!HHI", mtype, len(body) + 24, STUN_COOKIE) + tid
        body += stun_attr(0x0008, hmac.new(integrity_key, hdr + body, hashlib.sha1).digest())
    if fingerprint:
        hdr = struct.pack("!HHI", mtype, len(body) + 8, STUN_COOKIE) + tid
        crc = (zlib.crc32(hdr + body) ^ 0x5354554E) & 0xFFFFFFFF
        body += stun_attr(0x8028, struct.pack("!I", crc))
    return struct.pack("!HHI", mtype, len(body), STUN_COOKIE) + tid + body


def rtp(pt: int, seq: int, ts: int, ssrc: int, marker: bool = False, ext: bytes = b"") -> bytes:
    b0 = 0x80 | (0x10 if ext else 0)
    return struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + ext


# --------------------------------------------------------------------------------------------------------
# Sample 1: zoom_call.pcap
# --------------------------------------------------------------------------------------------------------

ZOOM = {
    "laptop": "192.168.1.23",
    "gateway": "192.168.1.1",
    "public": "73.15.20.10",
    "web": "170.114.52.2",  # zoom.us                          US
    "api": "170.114.10.77",  # us04web.zoom.us -> CNAME          US
    "cn": "52.81.100.10",  # zoomcnbj01mmr.cloud.zoom.us       CN (AWS cn-north-1, Beijing)
    "ca": "99.79.20.10",  # zoomyul01zc.cloud.zoom.us         CA (AWS ca-central-1)
    "mmr": "144.195.12.10",  # zoomsjc144-195-12-10mmr.zoom.us   US (media router: STUN 3478, media 8801)
}


def make_zoom(out: Path) -> dict:
    rng = random.Random(20201102)
    z = ZOOM
    cap = Capture("a4:83:e7:3c:5e:17", "74:ac:b9:11:2a:c4", z["laptop"])
    laptop, gw = z["laptop"], z["gateway"]
    start = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    web_key, cn_key = ec_key("*.zoom.us"), ec_key("*.cloud.zoom.us")
    web_cert = self_signed(
        web_key,
        "*.zoom.us",
        ["*.zoom.us", "zoom.us"],
        0x0A5C0DE5A11E0001,
        "callaudit sample fixture (not Zoom)",
        start,
        365,
    )
    cn_cert = self_signed(
        cn_key,
        "*.cloud.zoom.us",
        ["*.cloud.zoom.us"],
        0x0A5C0DE5A11E0002,
        "callaudit sample fixture (not Zoom)",
        start,
        365,
    )

    # --- 0.000 DNS zoom.us, then TLS 1.3 to the web front end (kept open: websocket pings, closed at the end)
    t = dns_pair(
        cap, rng, us(0.000), 19 * MS, laptop, gw, "zoom.us", [("zoom.us", "A", 60, z["web"])], note="dns-web"
    )
    web = TcpFlow(cap, rng, laptop, 52611, z["web"], 443, server_ttl=52)
    rtt = 22 * MS
    t = web.handshake(t + 2 * MS, rtt)
    ch, _, sid = client_hello(rng, "zoom.us", [b"h2", b"http/1.1"])
    t = web.send(C, t + 300, ch, note="web-ch")
    t += rtt
    web.ack(S, t)
    t = web.send(
        S, t + 1500, server_hello13(rng, sid) + record(20, b"\x01") + app_data(rng, 3180, True), note="web-sh"
    )
    t = web.ack(C, t + 80)
    t = web.send(C, t + 900, record(20, b"\x01") + app_data(rng, 36, True) + app_data(rng, 412, True))
    t += rtt
    t = web.send(S, t, app_data(rng, 233, True) + app_data(rng, 233, True))
    t = web.send(S, t + 4 * MS, app_data(rng, 1830, True))
    web.ack(C, t + 100)
    for ping in (10.0, 20.0):  # websocket keep-alives
        t = web.send(C, us(ping), app_data(rng, 24, True))
        t = web.send(S, t + rtt, app_data(rng, 24, True))
        web.ack(C, t + 90)

    # --- 0.350 DNS us04web.zoom.us (CNAME chain), TLS 1.2 with a visible certificate, join API call
    t = dns_pair(
        cap,
        rng,
        us(0.350),
        21 * MS,
        laptop,
        gw,
        "us04web.zoom.us",
        [
            ("us04web.zoom.us", "CNAME", 300, "us04web.cloud.zoom.us"),
            ("us04web.cloud.zoom.us", "A", 60, z["api"]),
        ],
        note="dns-api",
    )
    api = TcpFlow(cap, rng, laptop, 52614, z["api"], 443, server_ttl=51)
    rtt = 24 * MS
    t = api.handshake(t + 2 * MS, rtt)
    ch, crand, _ = client_hello(rng, "us04web.zoom.us", [b"http/1.1"])
    t = api.send(C, t + 250, ch, note="api-ch")
    t += rtt
    api.ack(S, t)
    t = api.send(S, t + 1200, server_flight12(rng, crand, web_cert, web_key), note="api-sh")
    t = api.ack(C, t + 80)
    t = api.send(C, t + 700, client_finish12(rng))
    t = api.send(S, t + rtt, server_finish12(rng))
    t = api.send(C, t + 300, app_data(rng, 734, False))
    t = api.send(S, t + rtt + 38 * MS, app_data(rng, 2210, False))
    api.ack(C, t + 100)
    api.close(C, us(4.200), rtt)

    # --- 1.100 DNS + TLS 1.2 key exchange with the Beijing server: the jurisdiction violation
    t = dns_pair(
        cap,
        rng,
        us(1.100),
        34 * MS,
        laptop,
        gw,
        "zoomcnbj01mmr.cloud.zoom.us",
        [("zoomcnbj01mmr.cloud.zoom.us", "A", 60, z["cn"])],
        note="dns-cn",
    )
    cn = TcpFlow(cap, rng, laptop, 52619, z["cn"], 443, server_ttl=41, server_mss=1400)
    rtt = 186 * MS
    t = cn.handshake(t + 2 * MS, rtt)
    ch, crand, _ = client_hello(rng, "zoomcnbj01mmr.cloud.zoom.us", [b"http/1.1"])
    t = cn.send(C, t + 250, ch, note="cn-ch")
    t += rtt
    cn.ack(S, t)
    t = cn.send(S, t + 900, server_flight12(rng, crand, cn_cert, cn_key), note="cn-sh")
    t = cn.ack(C, t + 80)
    t = cn.send(C, t + 650, client_finish12(rng), note="cn-cke")
    t = cn.send(S, t + rtt, server_finish12(rng))
    t = cn.send(C, t + 300, app_data(rng, 188, False))  # the meeting-key request
    t = cn.send(S, t + rtt + 9 * MS, app_data(rng, 356, False))
    cn.ack(C, t + 100)
    cn.close(C, t + 400 * MS, rtt)

    # --- 1.300 DNS + TLS 1.3 to the Canadian zone controller (kept open, pings, closed at the end)
    t = dns_pair(
        cap,
        rng,
        us(1.300),
        27 * MS,
        laptop,
        gw,
        "zoomyul01zc.cloud.zoom.us",
        [("zoomyul01zc.cloud.zoom.us", "A", 60, z["ca"])],
        note="dns-ca",
    )
    ca = TcpFlow(cap, rng, laptop, 52622, z["ca"], 443, server_ttl=47)
    rtt = 48 * MS
    t = ca.handshake(t + 2 * MS, rtt)
    ch, _, sid = client_hello(rng, "zoomyul01zc.cloud.zoom.us", [b"http/1.1"])
    t = ca.send(C, t + 250, ch, note="ca-ch")
    t += rtt
    ca.ack(S, t)
    t = ca.send(
        S, t + 1100, server_hello13(rng, sid) + record(20, b"\x01") + app_data(rng, 2960, True), note="ca-sh"
    )
    t = ca.ack(C, t + 80)
    t = ca.send(C, t + 800, record(20, b"\x01") + app_data(rng, 36, True) + app_data(rng, 290, True))
    t = ca.send(S, t + rtt, app_data(rng, 233, True) + app_data(rng, 512, True))
    ca.ack(C, t + 100)
    for ping in (12.0, 24.0):
        t = ca.send(C, us(ping), app_data(rng, 40, True))
        t = ca.send(S, t + rtt, app_data(rng, 40, True))
        ca.ack(C, t + 90)

    # --- 2.400 DNS for the media router; STUN binding on 3478 (same local port as the media)
    t = dns_pair(
        cap,
        rng,
        us(2.400),
        18 * MS,
        laptop,
        gw,
        "zoomsjc144-195-12-10mmr.zoom.us",
        [("zoomsjc144-195-12-10mmr.zoom.us", "A", 60, z["mmr"])],
        note="dns-mmr",
    )
    mport, nat_port, mrtt = 56432, 61212, 21 * MS
    ipid = {C: rng.getrandbits(16), S: rng.getrandbits(16)}

    def udp(side: int, tt: int, dport: int, payload: bytes, note: str | None = None) -> None:
        if side == C:
            ip = IP(src=laptop, dst=z["mmr"], id=ipid[C]) / UDP(sport=mport, dport=dport)
        else:
            ip = IP(src=z["mmr"], dst=laptop, id=ipid[S], ttl=53) / UDP(sport=dport, dport=mport)
        ipid[side] = (ipid[side] + 1) & 0xFFFF
        cap.add(tt, ip / payload, note=note)

    for i, st in enumerate((2.440, 15.000)):
        tid = rng.randbytes(12)
        udp(C, us(st), 3478, stun_msg(0x0001, tid, []), note=f"stun{i}-req")
        udp(
            S,
            us(st) + mrtt,
            3478,
            stun_msg(
                0x0101,
                tid,
                [
                    stun_attr(0x0020, xor_addr(z["public"], nat_port)),
                    stun_attr(0x0001, plain_addr(z["public"], nat_port)),
                    stun_attr(0x8022, b"callaudit sample STUN 1.0"),
                ],
            ),
            note=f"stun{i}-resp",
        )

    # --- 2.500 .. 5.500 media on UDP 8801: SFU header (0x05) + media header (0x0f audio, 0x10 video) + RTP
    sess = {C: rng.randbytes(4), S: rng.randbytes(4)}
    inner_pad = {C: rng.randbytes(8), S: rng.randbytes(8)}
    oseq = {C: rng.getrandbits(16), S: rng.getrandbits(16)}
    a_seq = {C: rng.getrandbits(16), S: rng.getrandbits(16)}
    a_ts = {C: rng.getrandbits(32), S: rng.getrandbits(32)}
    a_ssrc = {C: 0x01000401, S: 0x01000801}  # Zoom SSRCs are small, participant-derived numbers
    v_seq = {C: rng.getrandbits(16), S: rng.getrandbits(16)}
    v_ts = {C: rng.getrandbits(32), S: rng.getrandbits(32)}
    v_ssrc = {C: 0x01000402, S: 0x01000802}
    z_seq = {C: rng.getrandbits(16), S: rng.getrandbits(16)}
    frame_no = {C: 0, S: 0}

    def outer(side: int) -> bytes:
        oseq[side] = (oseq[side] + 1) & 0xFFFF
        return struct.pack("!BH4sB", 0x05, oseq[side], sess[side], 0x00 if side == C else 0x04)

    def zinner(side: int, mtype: int, ts: int) -> bytes:
        z_seq[side] = (z_seq[side] + 1) & 0xFFFF
        return struct.pack("!B8sHI", mtype, inner_pad[side], z_seq[side], ts & 0xFFFFFFFF)

    media_start, media_end = us(2.500), us(5.500)
    first = {C: True, S: True}
    for tick in range(media_start, media_end, 40 * MS):  # audio: 40 ms frames, 48 kHz clock, PT 112
        for side, skew in ((C, 0), (S, mrtt // 2 + 3 * MS)):
            tt = tick + skew
            a_seq[side] = (a_seq[side] + 1) & 0xFFFF
            a_ts[side] = (a_ts[side] + 1920) & 0xFFFFFFFF
            body = (
                outer(side)
                + zinner(side, 0x0F, a_ts[side])
                + rng.randbytes(4)
                + rtp(112, a_seq[side], a_ts[side], a_ssrc[side], marker=first[side])
                + rng.randbytes(rng.randrange(58, 112))
            )
            note = f"media-audio-{'up' if side == C else 'down'}" if first[side] else None
            first[side] = False
            udp(side, tt, 8801, body, note=note)
    vfirst = {C: True, S: True}
    for tick in range(media_start + 17 * MS, media_end, 200 * MS):  # video: 5 fps thumbnails, 90 kHz, PT 98
        for side, skew in ((C, 0), (S, mrtt // 2 + 7 * MS)):
            frame_no[side] += 1
            v_ts[side] = (v_ts[side] + 18000) & 0xFFFFFFFF
            npk = 2
            for k in range(npk):
                v_seq[side] = (v_seq[side] + 1) & 0xFFFF
                hdr = (
                    outer(side)
                    + zinner(side, 0x10, v_ts[side])
                    + rng.randbytes(5)
                    + struct.pack("!BHB", 0x02, frame_no[side], npk)
                )
                body = (
                    hdr
                    + rtp(98, v_seq[side], v_ts[side], v_ssrc[side], marker=(k == npk - 1))
                    + rng.randbytes(rng.randrange(880, 1100))
                )
                note = f"media-video-{'up' if side == C else 'down'}" if vfirst[side] else None
                vfirst[side] = False
                udp(side, tick + skew + k * 300, 8801, body, note=note)
    for st in (3.5, 5.0):  # RTCP sender reports (media type 0x21, RTCP at offset 16 of the media header)
        for side, skew in ((C, 0), (S, mrtt // 2)):
            sr = struct.pack(
                "!BBHIIIIII",
                0x80,
                200,
                6,
                a_ssrc[side],
                rng.getrandbits(32),
                rng.getrandbits(32),
                a_ts[side],
                rng.getrandbits(16),
                rng.getrandbits(20),
            )
            body = outer(side) + struct.pack("!B8sHIB", 0x21, inner_pad[side], 0, 0, 0) + sr
            udp(side, us(st) + skew + 5 * MS, 8801, body)

    # --- teardown at the end of the 30 s call
    web.close(C, us(29.400), 22 * MS)
    ca.close(C, us(29.420), 48 * MS)

    path = out / "zoom_call.pcap"
    n = write_pcap(cap, path)
    return {"path": path, "packets": n, "frames": cap.frames_of_notes()}


# --------------------------------------------------------------------------------------------------------
# Sample 2: webrtc_relay.pcapng
# --------------------------------------------------------------------------------------------------------

RELAY = {
    "host": "192.168.0.105",
    "gateway": "192.168.0.1",
    "public": "24.6.120.45",  # US home network
    "relay": "18.192.120.5",  # turn-fra1.relay.example.net  DE (AWS eu-central-1)
    "relayed_port": 52011,
    "peer": "91.64.10.20",
    "peer_port": 61890,  # remote participant's public address (only inside attributes)
}


def dtls_record(ctype: int, epoch: int, seq: int, body: bytes) -> bytes:
    return (
        struct.pack("!BHH", ctype, 0xFEFD, epoch)
        + seq.to_bytes(6, "big")
        + struct.pack("!H", len(body))
        + body
    )


def dtls_hs(mtype: int, mseq: int, body: bytes) -> bytes:
    n = len(body).to_bytes(3, "big")
    return struct.pack("!B", mtype) + n + struct.pack("!H", mseq) + b"\0\0\0" + n + body


def dtls_ext(etype: int, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


def make_relay(out: Path) -> dict:
    rng = random.Random(20261102)
    r = RELAY
    host, relay = r["host"], r["relay"]
    cap = Capture("3c:22:fb:90:41:7d", "b0:be:76:5a:21:08", host)
    lport, rport, rtt, prtt = 50744, 3478, 104 * MS, 176 * MS
    ipid = {C: rng.getrandbits(16), S: rng.getrandbits(16)}

    def udp(side: int, tt: int, payload: bytes, note: str | None = None, comment: str | None = None) -> None:
        if side == C:
            ip = IP(src=host, dst=relay, id=ipid[C]) / UDP(sport=lport, dport=rport)
        else:
            ip = IP(src=relay, dst=host, id=ipid[S], ttl=44) / UDP(sport=rport, dport=lport)
        ipid[side] = (ipid[side] + 1) & 0xFFFF
        cap.add(tt, ip / payload, note=note, comment=comment)

    t = dns_pair(
        cap,
        rng,
        us(0.000),
        23 * MS,
        host,
        r["gateway"],
        "turn-fra1.relay.example.net",
        [("turn-fra1.relay.example.net", "A", 300, relay)],
        note="dns-relay",
    )

    # TURN long-term credentials (TURN REST style username), key = MD5(username:realm:password)
    username, realm, password = b"1793714400:callaudit", b"relay.example.net", b"callaudit-sample-secret"
    key = hashlib.md5(username + b":" + realm + b":" + password).digest()
    nonce = rng.randbytes(16).hex().encode()
    software = stun_attr(0x8022, b"Coturn-4.6.2 'Gorst'")
    req_transport = stun_attr(0x0019, bytes([17, 0, 0, 0]))
    auth = [stun_attr(0x0006, username), stun_attr(0x0014, realm), stun_attr(0x0015, nonce)]
    peer = stun_attr(0x0012, xor_addr(r["peer"], r["peer_port"]))

    t += 7 * MS
    tid = rng.randbytes(12)
    udp(C, t, stun_msg(0x0003, tid, [req_transport], fingerprint=False), note="alloc1")
    t += rtt
    udp(
        S,
        t,
        stun_msg(
            0x0113,
            tid,
            [
                stun_attr(0x0009, struct.pack("!HBB", 0, 4, 1) + b"Unauthorized"),
                stun_attr(0x0015, nonce),
                stun_attr(0x0014, realm),
                software,
            ],
        ),
        note="alloc401",
    )
    t += 2 * MS
    tid = rng.randbytes(12)
    udp(
        C,
        t,
        stun_msg(0x0003, tid, [req_transport] + auth, integrity_key=key, fingerprint=False),
        note="alloc2",
    )
    t += rtt
    udp(
        S,
        t,
        stun_msg(
            0x0103,
            tid,
            [
                stun_attr(0x0016, xor_addr(relay, r["relayed_port"])),
                stun_attr(0x0020, xor_addr(r["public"], 38211)),
                stun_attr(0x000D, struct.pack("!I", 600)),
                software,
            ],
            integrity_key=key,
        ),
        note="alloc-ok",
    )

    t += 2 * MS
    tid = rng.randbytes(12)
    udp(C, t, stun_msg(0x0008, tid, [peer] + auth, integrity_key=key, fingerprint=False), note="perm")
    t += rtt
    udp(S, t, stun_msg(0x0108, tid, [software], integrity_key=key), note="perm-ok")

    t += 1 * MS
    tid = rng.randbytes(12)
    udp(
        C,
        t,
        stun_msg(
            0x0009,
            tid,
            [stun_attr(0x000C, struct.pack("!HH", 0x4000, 0)), peer] + auth,
            integrity_key=key,
            fingerprint=False,
        ),
        note="bind",
    )
    t += rtt
    udp(S, t, stun_msg(0x0109, tid, [software], integrity_key=key), note="bind-ok")

    def chan(payload: bytes) -> bytes:
        return struct.pack("!HH", 0x4000, len(payload)) + payload

    # ICE connectivity check with the peer, through the channel (short-term credentials)
    t += 3 * MS
    ice_pwd = b"callauditSampleIcePassword0"
    tid = rng.randbytes(12)
    udp(
        C,
        t,
        chan(
            stun_msg(
                0x0001,
                tid,
                [
                    stun_attr(0x0006, b"Hq7f:b3Zx"),
                    stun_attr(0x0024, struct.pack("!I", 0x00FFFFFF)),
                    stun_attr(0x802A, rng.randbytes(8)),
                    stun_attr(0x0025, b""),
                ],
                integrity_key=ice_pwd,
            )
        ),
        note="ice-req",
    )
    t += prtt
    udp(
        S,
        t,
        chan(
            stun_msg(
                0x0101, tid, [stun_attr(0x0020, xor_addr(relay, r["relayed_port"]))], integrity_key=ice_pwd
            )
        ),
        note="ice-resp",
    )

    # DTLS 1.2 handshake through ChannelData; local side is the DTLS client
    start = dt.datetime(2026, 11, 1, 14, 0, tzinfo=dt.UTC)
    ckey, skey = ec_key("webrtc-local"), ec_key("webrtc-remote")
    ccert = self_signed(ckey, "WebRTC", [], 0x3F1A22C0D4E5B601, None, start, 30)
    scert = self_signed(skey, "WebRTC", [], 0x5E0B77A1C2D3E402, None, start, 30)
    crand, srand = rng.randbytes(32), rng.randbytes(32)
    exts = (
        dtls_ext(0x0017, b"")
        + dtls_ext(0xFF01, b"\x00")
        + dtls_ext(0x000A, struct.pack("!HHHH", 6, 29, 23, 24))
        + dtls_ext(0x000B, b"\x01\x00")
        + dtls_ext(
            0x000D, struct.pack("!H", 2 * len(SIG_ALGS)) + struct.pack(f"!{len(SIG_ALGS)}H", *SIG_ALGS)
        )
        + dtls_ext(0x000E, struct.pack("!HHHHHB", 8, 0x0007, 0x0008, 0x0001, 0x0002, 0))
    )  # use_srtp
    ciphers = [0xC02B, 0xC02F, 0xCCA9, 0xCCA8, 0xC009, 0xC013, 0xC00A, 0xC014]
    ch_body = (
        struct.pack("!H", 0xFEFD)
        + crand
        + b"\x00"
        + b"\x00"
        + struct.pack("!H", 2 * len(ciphers))
        + struct.pack(f"!{len(ciphers)}H", *ciphers)
        + b"\x01\x00"
        + struct.pack("!H", len(exts))
        + exts
    )
    ch = dtls_hs(1, 0, ch_body)
    t += 5 * MS
    udp(
        C,
        t,
        chan(dtls_record(22, 0, 0, ch)),
        note="dtls-ch",
        comment="DTLS 1.2 ClientHello with use_srtp, inside TURN ChannelData 0x4000",
    )

    sh_exts = (
        dtls_ext(0x0017, b"")
        + dtls_ext(0xFF01, b"\x00")
        + dtls_ext(0x000B, b"\x01\x00")
        + dtls_ext(0x000E, struct.pack("!HHB", 2, 0x0001, 0))
    )
    sh = dtls_hs(
        2,
        0,
        struct.pack("!H", 0xFEFD)
        + srand
        + b"\x20"
        + rng.randbytes(32)
        + struct.pack("!HB", 0xC02B, 0)
        + struct.pack("!H", len(sh_exts))
        + sh_exts,
    )
    cert_list = len(scert).to_bytes(3, "big") + scert
    cert = dtls_hs(11, 1, len(cert_list).to_bytes(3, "big") + cert_list)
    params = struct.pack("!BHB", 3, 29, 32) + x25519_pub(rng)
    sig = ecdsa_sign(skey, crand + srand + params)
    ske = dtls_hs(12, 2, params + struct.pack("!HH", 0x0403, len(sig)) + sig)
    creq = dtls_hs(13, 3, b"\x02\x01\x40" + struct.pack("!HHH", 4, 0x0403, 0x0401) + b"\x00\x00")
    shd = dtls_hs(14, 4, b"")
    t += prtt
    udp(
        S,
        t,
        chan(b"".join(dtls_record(22, 0, i, m) for i, m in enumerate((sh, cert, ske, creq, shd)))),
        note="dtls-sh",
        comment="DTLS ServerHello (use_srtp SRTP_AES128_CM_HMAC_SHA1_80) + Certificate + "
        "ServerKeyExchange + CertificateRequest + ServerHelloDone",
    )

    ccert_list = len(ccert).to_bytes(3, "big") + ccert
    c_cert = dtls_hs(11, 1, len(ccert_list).to_bytes(3, "big") + ccert_list)
    cke = dtls_hs(16, 2, b"\x20" + x25519_pub(rng))
    csig = ecdsa_sign(ckey, ch + sh + cert + ske + creq + shd + c_cert + cke)
    cv = dtls_hs(15, 3, struct.pack("!HH", 0x0403, len(csig)) + csig)
    t += 4 * MS
    udp(
        C,
        t,
        chan(
            dtls_record(22, 0, 1, c_cert)
            + dtls_record(22, 0, 2, cke)
            + dtls_record(22, 0, 3, cv)
            + dtls_record(20, 0, 4, b"\x01")
            + dtls_record(22, 1, 0, rng.randbytes(48))
        ),
        note="dtls-cke",
    )
    t += prtt
    udp(
        S, t, chan(dtls_record(20, 0, 5, b"\x01") + dtls_record(22, 1, 0, rng.randbytes(48))), note="dtls-fin"
    )

    # SRTP audio (Opus PT 111, 48 kHz, 20 ms) through the channel, both directions, with RTP header extensions
    seq = {C: rng.getrandbits(16), S: rng.getrandbits(16)}
    ts = {C: rng.getrandbits(32), S: rng.getrandbits(32)}
    ssrc = {C: rng.getrandbits(32), S: rng.getrandbits(32)}
    twcc = {C: rng.getrandbits(16), S: rng.getrandbits(16)}
    media_start = t + 6 * MS
    for i in range(40):
        for side, skew in ((C, 0), (S, prtt // 2 + 11 * MS)):
            seq[side] = (seq[side] + 1) & 0xFFFF
            ts[side] = (ts[side] + 960) & 0xFFFFFFFF
            twcc[side] = (twcc[side] + 1) & 0xFFFF
            ext = struct.pack("!HHBBBH3x", 0xBEDE, 2, 0x10, 0x80 | rng.randrange(20, 60), 0x51, twcc[side])
            pkt = (
                rtp(111, seq[side], ts[side], ssrc[side], marker=(i == 0), ext=ext)
                + rng.randbytes(rng.randrange(60, 110))
                + rng.randbytes(10)
            )  # payload + 80-bit auth tag
            udp(
                side,
                media_start + i * 20 * MS + skew,
                chan(pkt),
                note=f"rtp-{'up' if side == C else 'down'}" if i == 0 else None,
            )

    # deallocate: Refresh with LIFETIME 0
    t = media_start + 40 * 20 * MS + 200 * MS
    tid = rng.randbytes(12)
    udp(
        C,
        t,
        stun_msg(
            0x0004,
            tid,
            [stun_attr(0x000D, struct.pack("!I", 0))] + auth,
            integrity_key=key,
            fingerprint=False,
        ),
        note="refresh0",
    )
    udp(
        S,
        t + rtt,
        stun_msg(0x0104, tid, [stun_attr(0x000D, struct.pack("!I", 0)), software], integrity_key=key),
        note="refresh0-ok",
    )

    path = out / "webrtc_relay.pcapng"
    n = write_pcapng(cap, path, "en0", "callaudit pcaps/make_samples.py")
    return {"path": path, "packets": n, "frames": cap.frames_of_notes()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: pcaps/)")
    ap.add_argument("--frames", action="store_true", help="print the frame number of each labelled packet")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for result in (make_zoom(args.out), make_relay(args.out)):
        p = result["path"]
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        print(f"{p}  {result['packets']} packets  {p.stat().st_size} bytes  sha256 {digest}")
        if args.frames:
            for label, frame in sorted(result["frames"].items(), key=lambda kv: kv[1]):
                print(f"    frame {frame:4d}  {label}")


if __name__ == "__main__":
    main()
