"""protocols/rtp.py: RTP streams by SSRC, RTCP compound walks, SRTCP trailers, RFC 4571 framing."""

from __future__ import annotations

import random
import struct

from analyzer.pipeline import analyze_capture
from analyzer.protocols import Facts, FlowView, Sample, rtp
from tests.conftest import CAPTURES


def rows(name):
    return analyze_capture(CAPTURES / name)[1]


def streams(rs):
    return {s["ssrc"]: s for r in rs for s in (r["details"] or {}).get("rtp_streams", [])}


def test_rtp_streams_match_tshark_in_ndpi_rtp():
    rs = rows("ndpi_rtp.pcapng")
    got = streams(rs)
    # tshark -o rtp.heuristic_rtp:TRUE -d tcp.port==5000,rtp -z rtp,streams: six streams
    assert got[0xB80974D8]["pt"] == 111 and got[0x1646]["pt"] == 34
    assert {got[s]["pt"] for s in (0x001A757D, 0x001A7E73)} == {120} and got[0x001A759F]["pt"] == 101
    [tcp] = [r for r in rs if r["proto"] == "tcp" and r["resp_p"] == 5000]
    assert tcp["details"]["rtp_framing"] == "rfc4571" and tcp["service"] == "rtp"
    assert tcp["details"]["rtp_streams"][0]["pt"] == 8  # g711A over TCP, SSRC 0 as tshark shows


def test_rtcp_compound_packets_walked():
    [r] = rows("ndpi_rtcp_multiple_pkts_in_the_same_datagram.pcap")
    assert r["service"] == "rtcp"
    assert r["details"]["rtcp"] == {"sr": 3, "rr": 2, "sdes": 5}  # tshark: 5 compounds, each ends in SDES


def test_srtp_fixture_ssrcs():
    got = streams(rows("membrane_srtp.pcap"))
    assert set(got) == {3546707599, 1445851800}
    assert (got[3546707599]["pt"], got[1445851800]["pt"]) == (96, 127)


def test_sip_call_media_tied_to_call():
    rs = rows("voipshark_SIP-RTP-Normal_Call_two_parties.pcap")
    got = streams(rs)
    assert set(got) == {0x441BC0CF, 0x6D9F0DDF, 0x26738F8C, 0x00294823}  # tshark's four g711U streams
    media = [r for r in rs if r["service"] == "rtp"]
    assert len(media) == 2 and all(r["details"]["sip_call_id"] for r in media)


def test_random_bytes_with_rtp_first_byte_are_not_a_stream():
    rng = random.Random(7)
    samples = [Sample(i + 1, float(i), True, 0, bytes([0x80]) + rng.randbytes(99)) for i in range(24)]
    facts = Facts()
    rtp.inspect(FlowView("udp", 40000, 40002, samples), facts)
    assert "rtp_streams" not in facts.details and not facts.services


def test_srtcp_trailer_marks_flow_encrypted():
    sr = struct.pack("!BBHI", 0x80, 200, 6, 1234) + bytes(20)
    srtcp = sr + bytes(range(32)) + struct.pack("!I", 0x80000001) + bytes(10)  # E flag + index, 80-bit tag
    assert rtp.parse_rtcp(srtcp) == ([(200, 1234)], "srtcp")
    assert rtp.parse_rtcp(sr)[1] == "rtcp"
    facts = Facts()
    rtp.inspect(FlowView("udp", 40001, 40003, [Sample(5, 0.0, True, 0, srtcp)]), facts)
    assert facts.services == ["srtcp"] and "frame 5" in facts.findings[0]


def test_hostile_headers_do_not_crash():
    for data in (b"\x80", b"\x90\x00" + b"\xff" * 14, b"\xbf" * 12, b"\x80\xc8\xff\xff" + b"\0" * 4):
        rtp.parse_rtp(data)
        rtp.parse_rtcp(data)
    facts = Facts()
    rtp.inspect(FlowView("tcp", 1, 2, [Sample(1, 0.0, True, 0, b"\x00\x08\x80" + b"\xff" * 40)]), facts)
