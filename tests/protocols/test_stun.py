"""protocols/stun.py: RFC 5769 test vectors, then STUN/TURN facts from real captures checked against tshark."""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib

import pytest

from analyzer.geo import GeoLookup
from analyzer.jurisdiction import policy_from_expect
from analyzer.pipeline import analyze, analyze_capture
from analyzer.protocols import stun
from tests.conftest import CAPTURES, write_pcap

# RFC 5769 §2.1-2.4, typed in from the RFC; the FINGERPRINT and MESSAGE-INTEGRITY checks below prove the typing.
REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae" "802200105354554e207465737420636c69656e74"
    "002400046e0001ff" "80290008932ff9b151263b36" "000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2" "80280004e57a3bcf")
IPV4_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae" "8022000b7465737420766563746f7220"
    "002000080001a147e112a643" "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7" "80280004c07d4c96")
IPV6_RESPONSE = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae" "8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed41" "80280004c8fb0b4c")
LONG_TERM_REQUEST = bytes.fromhex(
    "000100602112a44278ad3433c6ad72c029da412e" "00060012e3839ee38388e383aae38383e382afe382b90000"
    "0015001c662f2f3439396b39353464364f4c33346f4c39465354767936347341" "0014000b6578616d706c652e6f726700"
    "00080014f67024656dd64a3e02b8e0712e85c9a28ca89666")
SHORT_TERM_PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"


def integrity_ok(msg: bytes, key: bytes) -> bool:
    """RFC 5389 §15.4: HMAC-SHA1 over the message up to MESSAGE-INTEGRITY, length covering it."""
    parsed = stun.parse(msg)
    pos = 20
    for atype, value in parsed.attrs:
        if atype == stun.MESSAGE_INTEGRITY:
            head = msg[:2] + struct.pack("!H", pos + 24 - 20) + msg[4:pos]
            return hmac.compare_digest(hmac.new(key, head, hashlib.sha1).digest(), value)
        pos += 4 + len(value) + (-len(value) % 4)
    return False


def fingerprint_ok(msg: bytes) -> bool:
    return struct.unpack("!I", msg[-4:])[0] == zlib.crc32(msg[:-8]) ^ 0x5354554E


@pytest.mark.parametrize("msg", [REQUEST, IPV4_RESPONSE, IPV6_RESPONSE])
def test_rfc5769_vectors_are_typed_correctly(msg):
    assert fingerprint_ok(msg) and integrity_ok(msg, SHORT_TERM_PASSWORD)


def test_rfc5769_sample_request():
    m = stun.parse(REQUEST)
    assert (m.method, m.cls, m.name, m.classic) == (stun.BINDING, stun.REQUEST, "binding request", False)
    assert [t for t, _ in m.attrs] == [0x8022, 0x0024, 0x8029, 0x0006, 0x0008, 0x8028]
    assert stun.text(dict(m.attrs)[stun.SOFTWARE]) == "STUN test client"
    assert stun.client_hint(REQUEST, 50000, 40000) is True


@pytest.mark.parametrize(("msg", "expected"), [
    (IPV4_RESPONSE, ("192.0.2.1", 32853)),
    (IPV6_RESPONSE, ("2001:db8:1234:5678:11:2233:4455:6677", 32853)),
])
def test_rfc5769_xor_mapped_address(msg, expected):
    m = stun.parse(msg)
    assert m.name == "binding success"
    assert stun.address(dict(m.attrs)[stun.XOR_MAPPED_ADDRESS], m.cookie + m.txid) == expected
    assert stun.client_hint(msg, 40000, 50000) is False


def test_rfc5769_long_term_credentials():
    m = stun.parse(LONG_TERM_REQUEST)
    attrs = dict(m.attrs)
    assert attrs[stun.USERNAME].decode() == "\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9"
    assert stun.text(attrs[stun.REALM]) == "example.org"
    assert attrs[0x0015] == b"f//499k954d6OL34oL9FSTvy64sA"
    # long-term key: MD5(username ":" realm ":" SASLprep(password)), password "The<SHY>M<a>tr<IX>x" -> TheMatrIX
    key = hashlib.md5(attrs[stun.USERNAME] + b":example.org:TheMatrIX").digest()
    assert integrity_ok(LONG_TERM_REQUEST, key)


def test_not_stun():
    assert stun.parse(b"") is None
    assert stun.parse(REQUEST[:-1]) is None  # length field no longer matches
    assert stun.parse(b"\x80" + REQUEST[1:]) is None  # top bits must be zero
    assert stun.parse(bytes(20)) is None  # classic look-alike with type 0 is not a STUN type
    hostile = REQUEST[:20] + b"\x80\x22\xff\xff" + bytes(84)  # attribute longer than the message
    assert stun.parse(hostile) is None


def test_vectors_through_the_pipeline_set_the_vantage(tmp_path):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    c, s = ("10.0.0.5", 50000), ("198.51.100.7", 40000)  # no well-known port: the messages decide the roles
    frames = [bytes(Ether() / IP(src=s[0], dst=c[0]) / UDP(sport=s[1], dport=c[1]) / IPV4_RESPONSE),
              bytes(Ether() / IP(src=c[0], dst=s[0]) / UDP(sport=c[1], dport=s[1]) / REQUEST)]
    [r] = analyze_capture(write_pcap(tmp_path / "v.pcap", frames))[1]
    assert (r["orig_h"], r["resp_h"], r["role_evidence"], r["service"]) == (c[0], s[0], "protocol", "stun")
    assert r["details"]["mapped_address"] == {"h": "192.0.2.1", "p": 32853, "frame": 1, "attr": "0x0020"}
    assert r["details"]["software"] == ["test vector", "STUN test client"]
    assert r["key_exchange"] is None


def rows(name):
    return analyze_capture(CAPTURES / name)[1]


def by_flow(rs, proto, orig_p, resp_h, resp_p):
    [r] = [r for r in rs if (r["proto"], r["orig_p"], r["resp_h"], r["resp_p"]) == (proto, orig_p, resp_h, resp_p)]
    return r


def revealed(rs):
    return {(r["resp_h"], r["resp_p"]): r for r in rs if r["role_evidence"].startswith("revealed-")}


def test_signal_turn_relays_peers_and_vantage():
    rs = rows("ndpi_stun_signal.pcapng")
    r = by_flow(rs, "udp", 47204, "35.158.183.167", 3478)
    # tshark: frame 8 Binding Success XOR-MAPPED-ADDRESS 93.47.225.19:11889; frame 22 Allocate Success
    # XOR-RELAYED-ADDRESS 35.158.183.167:54498; REALM signal.org
    assert r["details"]["mapped_address"] == {"h": "93.47.225.19", "p": 11889, "frame": 8, "attr": "0x0020"}
    assert r["service"] == "stun,turn" and r["details"]["realm"] == "signal.org"
    assert r["key_exchange"] is None  # TURN credentials are not a media key exchange
    found = revealed(rs)
    relay = found[("35.158.183.167", 54498)]
    assert (relay["role_evidence"], relay["first_frame"], relay["service"]) == ("revealed-relay", 22, "turn")
    # tshark: frame 108/109 CreatePermission XOR-PEER-ADDRESS 18.195.131.143:52463 (the far side's relay)
    peer = found[("18.195.131.143", 52463)]
    assert peer["role_evidence"] == "revealed-peer" and peer["first_frame"] in (108, 109)
    # 18.195.131.143:61156 is also talked to directly (ICE checks): no duplicate revealed row
    assert ("18.195.131.143", 61156) not in found


def test_signal_relay_in_germany_violates_a_us_policy():
    audit = analyze([CAPTURES / "ndpi_stun_signal.pcapng"], GeoLookup(), policy_from_expect("US"))
    df = audit.flows
    relay = df[(df["resp_h"] == "18.195.131.143") & df["role_evidence"].str.startswith("revealed-")]
    assert len(relay) and set(relay["resp_cc"]) == {"DE"} and set(relay["verdict"]) == {"violation"}
    allocated = df[(df["resp_h"] == "35.158.183.167") & (df["role_evidence"] == "revealed-relay")]
    assert len(allocated) and set(allocated["verdict"]) == {"violation"}


def test_turn_over_tcp_rfc4571_and_plain_framing_and_ipv6():
    rs = rows("ndpi_stun.pcap")
    # RFC 4571 framed STUN over TCP (10.77.110.51:41588 -> :42000); tshark frame 5 XOR-MAPPED 10.77.110.51:41588
    framed = by_flow(rs, "tcp", 41588, "10.206.50.239", 42000)
    assert framed["details"]["mapped_address"]["frame"] == 5 and framed["service"] == "stun"
    # plain TURN framing over TCP to coturn; frame 151 carries two CreatePermission requests in one segment
    coturn = by_flow(rs, "tcp", 37257, "87.47.100.17", 3478)
    assert coturn["details"]["software"] == ["Coturn-4.5.0.5 'dan Eider'"]
    assert coturn["details"]["mapped_address"] == {"h": "5.37.217.126", "p": 37257, "frame": 149, "attr": "0x0020"}
    found = revealed(rs)
    assert found[("66.55.92.16", 40576)]["role_evidence"] == "revealed-relay"
    assert found[("66.55.92.16", 40576)]["first_frame"] == 149
    assert found[("5.162.130.14", 16947)]["first_frame"] == 151 and found[("127.0.0.1", 38763)]["first_frame"] == 151
    # IPv6 Binding with a plain MAPPED-ADDRESS (tshark frame 26)
    v6 = by_flow(rs, "udp", 56880, "2a38:e156:8167:a333:face:b00c:0:24d9", 3478)
    assert v6["details"]["mapped_address"]["h"] == "2001:1670:c:eb04:70af:f67f:8e49:f603"


def test_channel_data_and_facebook_turn():
    r = by_flow(rows("ndpi_stun.pcap"), "udp", 38123, "31.13.86.54", 40003)
    d = r["details"]
    assert d["realm"] == "turner.facebook" and d["turn_channels"] == [0x4003]  # tshark: ChannelBind 0x4003
    assert d["turn_payloads"]["rtp"] >= 1 and d["turn_payloads"]["stun"] >= 1
    assert {"channel-bind success", "create-permission error", "data indication"} <= set(d["stun_messages"])
    assert d["mapped_address"] == {"h": "93.47.226.1", "p": 11162, "frame": 70, "attr": "0x0020"}


def test_dtls_inside_turn_send_and_data_indications_over_tcp():
    rs = rows("ndpi_stun_dtls_rtp.pcapng")
    r = by_flow(rs, "tcp", 50221, "142.250.82.249", 3478)
    # tshark (dtls_stun heuristic): ClientHello in Send indication frame 59, ServerHello (use_srtp 0x0001) in
    # Data indication frame 63; the client offered 0x0001, 0x0008, 0x0007
    assert r["service"] == "stun,turn,dtls" and r["key_exchange"] == "dtls-srtp"
    assert r["key_frames"] == [59, 63]
    assert r["details"]["srtp_profile"] == "SRTP_AES128_CM_HMAC_SHA1_80"
    assert r["details"]["srtp_offered"] == ["SRTP_AES128_CM_HMAC_SHA1_80", "SRTP_AEAD_AES_256_GCM",
                                            "SRTP_AEAD_AES_128_GCM"]
    found = revealed(rs)
    assert found[("10.13.0.62", 15530)]["role_evidence"] == "revealed-relay"  # frame 48 XOR-RELAYED-ADDRESS
    assert found[("10.13.0.50", 1259)]["first_frame"] == 50  # frame 50 Data indication XOR-PEER-ADDRESS


def test_teams_ms_turn_relays_and_peer():
    rs = rows("ndpi_teams.pcap")
    r = by_flow(rs, "udp", 50016, "52.114.250.123", 3478)
    # tshark frame 1275: MS-TURN Allocate success, MAPPED-ADDRESS 52.114.250.141:3480 (the allocation),
    # XOR-MAPPED-ADDRESS (0x8020) 80.181.206.72:57543
    assert r["details"]["mapped_address"] == {"h": "80.181.206.72", "p": 57543, "frame": 1275, "attr": "0x8020"}
    assert r["details"]["realm"].startswith("\\x02N\\xcb")  # binary realm, escaped
    found = revealed(rs)
    assert found[("52.114.250.141", 3480)]["first_frame"] == 1275
    assert found[("52.114.250.137", 3480)]["first_frame"] == 1298
    # tshark frame 1413: MS-TURN Send with DESTINATION-ADDRESS 93.71.110.205:16332 (a direct flow exists too)
    send = by_flow(rs, "udp", 50016, "52.114.250.141", 3478)
    assert "ms-send request" in send["details"]["stun_messages"]
    assert 0x8070 in {a for x in rs for a in x["details"].get("stun_attributes", [])}  # Teams' vendor attribute


def test_turn_server_ice_check_does_not_flip_roles():
    r = by_flow(rows("ndpi_teams.pcap"), "udp", 50036, "52.114.252.21", 3480)  # tshark 1421: request from :3480
    assert r["orig_h"] == "192.168.1.6" and r["role_evidence"] == "protocol"


def test_coturn_channel_data_with_srtp_and_whatsapp_allocations():
    rs = rows("veon_WebRTC_OPUS_Turn_SDES_Call_1.pcap")
    r = by_flow(rs, "udp", 53403, "54.175.233.40", 3478)
    assert r["details"]["software"][0] == "Coturn-4.4.5.4 'Ardee West'"
    assert r["details"]["mapped_address"]["h"] == "79.173.86.242"  # tshark frame 48
    assert revealed(rs)[("54.175.233.40", 59281)]["first_frame"] == 72  # frame 72 XOR-RELAYED-ADDRESS
    wa = by_flow(rows("ndpi_stun_wa_call.pcapng"), "udp", 46652, "157.240.203.62", 3478)
    assert wa["details"]["mapped_address"] == {"h": "93.35.171.3", "p": 61494, "frame": 13, "attr": "0x0020"}


def test_classic_stun_zoom():
    r = by_flow(rows("ndpi_zoom.pcap"), "udp", 23903, "162.255.37.14", 3478)
    # tshark: classic STUN 0x0001 / 0x0002 with attribute 0x0103 = 00 01 ff75 50b4dcef
    assert r["details"]["mapped_address"] == {"h": "80.180.220.239", "p": 65397, "frame": 60, "attr": "0x0103"}
    assert r["details"]["stun_types"] == [0x0001, 0x0002]


@pytest.mark.parametrize("junk", [b"\x00\x01\x00\x08\x21\x12\xa4\x42" + bytes(12) + b"\x00\x13\xff\xff",
                                  b"\x40\x00\xff\xff", bytes(range(256)), b"\x00\x03"])
def test_hostile_payloads_never_crash(tmp_path, junk):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    frames = [bytes(Ether() / IP(src="10.0.0.5", dst="198.51.100.7") / UDP(sport=50000, dport=3478) / p)
              for p in (REQUEST, junk, IPV4_RESPONSE[:-3], junk * 3)]
    [r] = analyze_capture(write_pcap(tmp_path / "j.pcap", frames))[1]
    assert r["service"].startswith("stun")


def test_whatsapp_vendor_message_types_outside_rfc7983_range():
    # tshark does not call these STUN (first byte 0x08): frames 47/48 carry 0801/0802 with the magic cookie
    r = by_flow(rows("ndpi_stun_wa_call.pcapng"), "udp", 46652, "93.57.123.227", 3478)
    assert {0x0801, 0x0802} <= set(r["details"]["stun_types"])
    assert "type 0x0801" in r["details"]["stun_messages"]
    raw = bytes.fromhex("080200002112a44270758b44c723a74ed1934a3b")  # frame 48, from the relay
    assert stun.parse(raw).name == "type 0x0802"
    assert stun.client_hint(raw, 40000, 50000) is None  # its class bits say "request": not believed
