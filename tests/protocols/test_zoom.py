"""protocols/zoom.py: server and P2P media encapsulation, the session handshake, Zoom's classic STUN."""

from __future__ import annotations

import random

from analyzer.pipeline import analyze_capture
from analyzer.protocols import Facts, FlowView, Sample, zoom
from tests.conftest import CAPTURES


def rows(name):
    return analyze_capture(CAPTURES / name)[1]


def test_server_flows_in_ndpi_zoom():
    rs = rows("ndpi_zoom.pcap")
    srv = [r for r in rs if r["resp_h"] == "109.94.160.99" and r["resp_p"] == 8801]
    assert srv and all("zoom" in r["service"] for r in srv)
    assert max(r["orig_pkts"] + r["resp_pkts"] for r in srv) == 185  # as the MANIFEST counts
    first = min(srv, key=lambda r: r["first_frame"])
    assert first["details"]["zoom_handshake_frames"][:2] == [386, 395]  # 0x01 token echoed by 0x02
    rtcp = [r for r in srv if "zoom_media" in r["details"]]
    assert rtcp[0]["details"]["zoom_media"] == {"rtcp": 1}  # frame 689: 0x22 with an RTCP SR inside
    [gtp] = [r for r in rs if r["resp_h"] == "193.122.35.237"]  # inside GTP-U
    assert gtp["service"] == "zoom" and gtp["details"]["zoom_encapsulation"] == "server"


def test_classic_stun_reveals_public_address():
    rs = rows("ndpi_zoom.pcap")
    stun = [r for r in rs if (r["details"] or {}).get("zoom_stun")]
    assert {r["resp_p"] for r in stun} == {3478, 3479}
    assert stun[0]["details"]["zoom_mapped_address"] == "80.180.220.239:65397"
    assert any("frames 34" in f for f in stun[0]["findings"])


def test_p2p_media_types_and_ssrcs():
    rs = rows("ndpi_zoom_p2p.pcapng")
    [p2p] = [r for r in rs if r["resp_h"] == "192.168.1.226" and r["resp_p"] == 46757]
    d = p2p["details"]
    assert d["zoom_encapsulation"] == "p2p" and set(d["zoom_media"]) == {"audio", "video"}
    assert 0x01000802 in d["zoom_ssrcs"]  # audio SSRC at offset 19 of the 0x0f header (frame 85)


def test_princeton_trace_server_and_p2p():
    rs = rows("princeton_zoom_test.pcap")
    media = {}
    for r in rs:
        for kind in (r["details"] or {}).get("zoom_media", {}):
            media.setdefault(kind, set()).add(r["details"]["zoom_encapsulation"])
    assert media == {"video": {"server", "p2p"}, "audio": {"server"}}


def test_random_datagrams_are_not_zoom():
    rng = random.Random(3)
    samples = [Sample(i + 1, 0.0, i % 2 == 0, 0, bytes([rng.choice([0x0F, 0x10, 0x05])]) + rng.randbytes(120))
               for i in range(40)]
    for ports in ((50000, 50002), (50000, 8801)):
        facts = Facts()
        zoom.inspect(FlowView("udp", *ports, samples), facts)
        assert "zoom" not in facts.services


def test_truncated_headers_do_not_crash():
    for data in (b"\x05", b"\x05" + b"\x0f" * 8, b"\x10" * 21, b"\x00\x02\x00\x0c" + b"\0" * 16 + b"\x01\x03\x00\x08"):
        zoom.parse_media(data)
        zoom.server_inner(data)
        zoom.stun(data)
