"""protocols/sip.py: dialogs, SDP media endpoints tied to RTP flows, SDES/MIKEY/fingerprint keying, hostile SDP."""

from __future__ import annotations

import base64

from analyzer.pipeline import analyze_capture
from analyzer.protocols import Facts, FlowView, Sample, sip
from tests.conftest import CAPTURES, write_pcap

KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVzcyBlbmNyeXB0aW9u"


def rows(name):
    return analyze_capture(CAPTURES / name)[1]


def test_ndpi_sip_calls_methods_and_media():
    rs = rows("ndpi_sip.pcap")
    sigs = [r for r in rs if r["service"] == "sip"]
    calls = {c for r in sigs for c in r["details"]["sip_call_ids"]}
    assert "105090259-446faf7a@192.168.1.2" in calls and "11894297-4432a9f8@192.168.1.2" in calls
    methods, statuses = {}, {}
    for r in sigs:
        for k, v in r["details"]["sip_methods"].items():
            methods[k] = methods.get(k, 0) + v
        for k, v in r["details"]["sip_statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    # tshark -z sip,stat: INVITE 11, ACK 7, REGISTER 18, CANCEL 11; 100 x7, 401 x14, 407 x3
    assert methods == {"INVITE": 11, "ACK": 7, "REGISTER": 18, "CANCEL": 11}
    assert (statuses["100"], statuses["401"], statuses["407"], statuses["200"]) == (7, 14, 3, 3)
    [srv] = [r for r in sigs if r["resp_h"] == "212.242.33.35"]
    offers = {(m["addr"], m["port"]) for m in srv["details"]["sdp_media"]}
    assert ("192.168.1.2", 30000) in offers and ("212.242.33.36", 40392) in offers
    assert any("plain RTP/AVP" in f for f in srv["findings"])
    [media] = [r for r in rs if r["resp_p"] == 40392 and r["orig_p"] is not None]
    assert media["service"] == "rtp" and media["details"]["sip_call_id"] == "11894297-4432a9f8@192.168.1.2"
    [rtcp] = [r for r in rs if r["resp_p"] == 40393]
    assert rtcp["details"]["sip_call_id"] == "11894297-4432a9f8@192.168.1.2"  # RTCP on port + 1


def test_fax_call_t38_and_audio():
    rs = rows("ndpi_FAX-Call-t38-CA-TDM-SIP-FB-1.pcap")
    media = [m for r in rs if r["service"] == "sip" for m in r["details"].get("sdp_media", [])]
    # tshark: the T.38 re-INVITE offers "m=image 0 UDPTL t38" (declined, port 0): no endpoint for it
    assert {m["media"] for m in media} == {"audio"}
    assert {m["port"] for m in media} == {16756, 15580, 5002}
    linked = [r for r in rs if (r["details"] or {}).get("sip_call_id") and "rtp" in (r["service"] or "")]
    assert linked


def invite(sdp: str, call_id: str = "a84b4c76e66710@pc33.example.com") -> bytes:
    body = sdp.replace("\n", "\r\n").encode()
    head = ("INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776\r\n"
            "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\nTo: Bob <sip:bob@biloxi.example.com>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 314159 INVITE\r\nUser-Agent: Linphone/5.2\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


SDES_SDP = f"""v=0
o=alice 2890844526 2890844526 IN IP4 203.0.113.5
s=-
c=IN IP4 203.0.113.5
t=0 0
m=audio 49170 RTP/SAVP 0 8
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4
a=rtpmap:0 PCMU/8000
"""


def test_sdes_keys_in_cleartext_sdp(tmp_path):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    rtp = bytes.fromhex("8000") + (1).to_bytes(2, "big") + bytes(4) + (0xCAFE).to_bytes(4, "big") + bytes(160)
    frames = [bytes(Ether() / IP(src="203.0.113.5", dst="198.51.100.7") / UDP(sport=5060, dport=5060)
                    / invite(SDES_SDP))]
    for i in range(5):
        pkt = bytearray(rtp)
        pkt[2:4] = (i + 1).to_bytes(2, "big")
        frames.append(bytes(Ether() / IP(src="198.51.100.9", dst="203.0.113.5") / UDP(sport=7078, dport=49170)
                            / bytes(pkt)))
    rs = analyze_capture(write_pcap(tmp_path / "sdes.pcap", frames))[1]
    [sig] = [r for r in rs if r["service"] == "sip"]
    assert sig["key_exchange"] == "sdes" and sig["key_frames"] == [1]
    [finding] = [f for f in sig["findings"] if "SRTP keys" in f]
    assert finding == f"SRTP keys travelled in cleartext SDP (frame 1): AES_CM_128_HMAC_SHA1_80 inline:{KEY[:4]}…"
    assert KEY[:5] not in repr(rs)  # the key never appears beyond its first four characters
    assert sig["details"]["sip_user_agents"] == ["Linphone/5.2"]
    [media] = [r for r in rs if 49170 in (r["resp_p"], r["orig_p"]) and r["orig_p"] is not None]
    assert media["service"] == "srtp" and media["details"]["sip_call_id"] == "a84b4c76e66710@pc33.example.com"


def test_veon_sdes_call_has_no_visible_sdp():
    # tshark -Y "sip || sdp" shows nothing: the SDES offer travelled inside TLS to 52.4.5.187:443
    rs = rows("veon_WebRTC_OPUS_Turn_SDES_Call_1.pcap")
    assert not any(r["service"] and "sip" in r["service"] for r in rs)


def test_fingerprint_and_mikey():
    mikey = base64.b64encode(bytes([1, 0, 0, 0]) + bytes(40)).decode()  # version 1, Initiator's PSK
    sdp = ("v=0\nc=IN IP6 2001:db8::5\nm=audio 5004 UDP/TLS/RTP/SAVPF 111\na=fingerprint:sha-256 AB:CD:EF\n"
           f"m=video 0 RTP/SAVP 96\na=key-mgmt:mikey {mikey}\n")
    facts = Facts()
    sip.inspect(FlowView("udp", 5060, 5060, [Sample(9, 0.0, True, 0, invite(sdp))]), facts)
    assert facts.details["dtls_fingerprint"] == "sha-256 AB:CD:EF"
    assert facts.key_exchange == "mikey" and facts.details["mikey"] == "Initiator's PSK"
    assert [(e["h"], e["p"]) for e in facts.endpoints] == [("2001:db8::5", 5004)]  # port 0: declined


def test_hostile_sdp_lines():
    sdp = ("v=0\nc=IN IP4 999.1.1.1\nm=audio 99999999 RTP/AVP\nm=audio x RTP/AVP 0\nc=IN\na=crypto:1\n"
           "a=crypto:1 X inline\na=key-mgmt:mikey !!!!\nm=\n" + "a=x\n" * 10000 + "c=IN IP4 10.0.0.1\n")
    facts = Facts()
    samples = [Sample(1, 0.0, True, 0, invite(sdp)), Sample(2, 0.0, True, 0, b"INVITE \xff\x00 SIP/2.0\r\n\r\n"),
               Sample(3, 0.0, False, 0, b"SIP/2.0 200\r\nCall-ID\r\nContent-Length: -5\r\n\r\nv=0\nm=audio")]
    sip.inspect(FlowView("udp", 5060, 5060, samples), facts)
    assert facts.endpoints == [] and facts.malformed >= 1
    assert "sip" in facts.services
    tcp = Facts()
    sip.inspect(FlowView("tcp", 40000, 5060, [Sample(1, 0.0, True, 1, invite(sdp)[:300])]), tcp)
