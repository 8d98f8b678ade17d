"""protocols/dtls.py: hellos, use_srtp, fragment reassembly, DTLS 1.3 and CIDs, on real captures and built bytes."""

from __future__ import annotations

import struct

import pytest

from analyzer.pipeline import analyze_capture
from analyzer.protocols import Facts, FlowView, Sample, dtls
from tests.conftest import CAPTURES


def rows(name):
    return analyze_capture(CAPTURES / name)[1]


def flow(name, resp_h, resp_p):
    [r] = [r for r in rows(name) if (r["resp_h"], r["resp_p"]) == (resp_h, resp_p) and r["proto"] == "udp"]
    return r


def test_fragmented_certificate_reassembled_discord():
    # tshark: ClientHello 21/22 (use_srtp 0x0001), ServerHello + Certificate fragments (offsets 0..1526) in 23,
    # Certificate rest + ServerKeyExchange in 24 ("Reassembled", CN *.discord.gg), ClientKeyExchange in 25
    r = flow("ndpi_dtls_certificate_fragments.pcap", "104.153.87.149", 50001)
    assert r["key_exchange"] == "dtls-srtp" and r["key_frames"] == [21, 22, 23, 24, 25]
    assert (r["server_name"], r["server_name_source"]) == ("*.discord.gg", "cert")
    assert r["details"]["srtp_profile"] == "SRTP_AES128_CM_HMAC_SHA1_80" and r["details"]["srtp_profile_id"] == 1
    assert r["details"]["dtls_version"] == "DTLS 1.2" and r["service"].startswith("dtls")


def test_dtls10_cookie_exchange_and_certificate_across_records():
    # tshark: CH 1, HelloVerifyRequest 2, CH (cookie) 3, ServerHello + Certificate (1308 + 239 bytes) in 4-5
    r = flow("ndpi_dtls_certificate_fragments.pcap", "35.210.59.134", 44443)
    assert r["key_exchange"] == "dtls" and r["key_frames"] == [1, 3, 4, 6]
    assert r["details"]["dtls_cookie_exchange"] is True and r["details"]["dtls_version"] == "DTLS 1.0"
    assert "*.opera-mini.net" in r["server_name"] or r["server_name"] == "*.samsungmax.com"
    r2 = flow("ndpi_dtls2.pcap", "212.32.214.39", 61457)
    assert (r2["key_exchange"], r2["key_frames"], r2["server_name"]) == (
        "dtls", [1, 3, 4, 5], "*.relay.ros.rockstargames.com")


def test_zeek_dtls12_fragmented_hello_and_certificate_no_srtp():
    # tshark: ClientHello split over frames 1-2 and 4-5, Certificate over 6-10, ServerKeyExchange 10-12, CKE 13
    r = flow("zeek_tls_dtls1_2.pcap", "165.227.57.17", 4400)
    assert r["key_exchange"] == "dtls" and r["key_frames"] == [1, 2, 4, 5, 6, 10, 11, 12, 13]
    assert "srtp_offered" not in r["details"] and r["server_name"] is None  # its certificate has no CN


def test_dtls13_with_connection_ids():
    by_port = {x["orig_p"]: x for x in rows("zeek_tls_dtls13-cid.pcap")}
    r = by_port[57488]  # tshark frame 5: ServerHello with supported_versions 0xfefc
    assert r["details"]["dtls_version"] == "DTLS 1.3" and r["details"]["dtls_connection_id"] is True
    assert r["details"]["dtls_encrypted_records"] > 0 and r["key_frames"] == [4, 5, 6, 7]
    assert r["key_exchange"] == "dtls"


def test_use_srtp_offer_and_choice():
    r = flow("ndpi_stun_dtls_rtp.pcapng", "142.250.82.76", 19305)
    # tshark: frame 3 offers 0x0001,0x0008,0x0007; frame 4 ServerHello chooses 0x0008 (AEAD_AES_256_GCM)
    assert r["details"]["srtp_profile"] == "SRTP_AEAD_AES_256_GCM" and r["details"]["srtp_profile_id"] == 8
    assert r["key_exchange"] == "dtls-srtp" and r["service"].startswith("stun,dtls")
    zoom = flow("ndpi_stun.pcap", "134.224.90.111", 8801)  # only a ClientHello (frame 198): offered, not chosen
    assert zoom["key_exchange"] == "dtls-srtp" and zoom["key_frames"] == [198]
    assert zoom["details"]["srtp_offered"] == ["SRTP_AEAD_AES_128_GCM", "SRTP_AEAD_AES_256_GCM",
                                               "SRTP_AES128_CM_HMAC_SHA1_80", "SRTP_AES128_CM_HMAC_SHA1_32"]
    assert "srtp_profile" not in zoom["details"]


def test_dtls_inside_gtp_tunnel():
    r = flow("ndpi_dtls.pcap", "157.240.16.128", 3478)  # Messenger via GTP-U; tshark ClientHellos 3-5
    assert r["key_exchange"] == "dtls-srtp" and r["key_frames"] == [3, 4, 5]


# --- built bytes: fragment order, NULL profile, hostile headers ------------------------------------------

def record(body: bytes, ctype: int = 22, version: int = 0xFEFD, epoch: int = 0, seq: int = 0) -> bytes:
    return struct.pack("!BHH", ctype, version, epoch) + seq.to_bytes(6, "big") + struct.pack("!H", len(body)) + body


def fragment(mtype: int, msg: bytes, mseq: int, off: int, n: int) -> bytes:
    return bytes([mtype]) + len(msg).to_bytes(3, "big") + struct.pack("!H", mseq) + off.to_bytes(3, "big") + \
        n.to_bytes(3, "big") + msg[off:off + n]


def hello(client: bool, srtp: list[int], sni: str | None = None) -> bytes:
    ext = b""
    if srtp:
        profiles = b"".join(struct.pack("!H", p) for p in srtp)
        value = struct.pack("!H", len(profiles)) + profiles + b"\0"
        ext += struct.pack("!HH", 14, len(value)) + value
    if sni:
        name = sni.encode()
        value = struct.pack("!HBH", len(name) + 3, 0, len(name)) + name
        ext += struct.pack("!HH", 0, len(value)) + value
    body = struct.pack("!H", 0xFEFD) + bytes(32) + b"\0"
    body += b"\0" + struct.pack("!HH", 2, 0xC02B) + b"\x01\x00" if client else struct.pack("!HB", 0xC02B, 0)
    return body + struct.pack("!H", len(ext)) + ext


def run(datagrams: list[tuple[int, bool, bytes]]) -> Facts:
    facts = Facts()
    dtls.inspect(FlowView("udp", 50000, 443, [Sample(f, 0.0, o, 0, d) for f, o, d in datagrams]), facts)
    return facts


def test_out_of_order_fragments_and_null_profile_finding():
    ch = hello(True, [0x0005, 0x0001], sni="media.example.net")
    sh = hello(False, [0x0005])
    parts = [fragment(1, ch, 0, 40, len(ch) - 40), fragment(1, ch, 0, 0, 40)]  # second half first
    facts = run([(1, True, record(parts[0])), (2, True, record(parts[1])), (3, False, record(fragment(2, sh, 0, 0,
                                                                                                     len(sh))))])
    assert facts.key_exchange == "dtls-srtp" and facts.key_frames == [1, 2, 3]
    assert (facts.server_name, facts.server_name_source) == ("media.example.net", "sni")
    assert facts.details["srtp_offered"] == ["SRTP_NULL_HMAC_SHA1_80", "SRTP_AES128_CM_HMAC_SHA1_80"]
    assert facts.details["srtp_profile"] == "SRTP_NULL_HMAC_SHA1_80"
    assert any("not encrypted" in f for f in facts.findings)


def test_incomplete_hello_is_not_a_key_exchange():
    ch = hello(True, [1])
    facts = run([(1, True, record(fragment(1, ch, 0, 0, 30)))])
    assert facts.services == ["dtls"] and facts.key_exchange is None


def test_client_hint():
    ch = record(fragment(1, hello(True, []), 0, 0, len(hello(True, []))))
    assert dtls.client_hint(ch, 50000, 443) is True
    assert dtls.client_hint(record(fragment(2, hello(False, []), 0, 0, 40)), 443, 50000) is False
    assert dtls.client_hint(record(b"\x01" * 30, epoch=1), 50000, 443) is None  # encrypted epoch


@pytest.mark.parametrize("junk", [
    record(b"\x01\xff\xff\xff\x00\x00\x00\x00\x00\xff\xff\xff"),  # fragment longer than the message cap
    record(bytes([1, 0, 0, 10, 0, 0, 0, 0, 8, 0, 0, 5]) + b"abcde"),  # offset + length beyond the message
    record(bytes([1, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 5]) + b"\xff" * 5),  # complete but nonsense hello
    b"\x16\xfe\xfd" + bytes(8) + b"\xff\xff",  # record length beyond the datagram
    b"\x3f" + b"\x00" * 5,  # DTLS 1.3 unified header with a CID of unknown length
    record(bytes([11, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 8]) + bytes([0, 0, 5, 0, 0, 2, 0x30, 0])),  # bad certificate
])
def test_hostile_records_never_crash(junk):
    facts = run([(1, True, junk), (2, False, junk * 3)])
    assert facts.key_exchange is None
