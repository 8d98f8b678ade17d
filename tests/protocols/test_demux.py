"""protocols/demux.py: RFC 7983 / RFC 9443 first-byte ranges and TURN ChannelData framing, on real packets."""

from __future__ import annotations

import pytest

from analyzer.capture import CaptureStats, read_capture
from analyzer.protocols import demux
from tests.conftest import CAPTURES


@pytest.mark.parametrize(("first", "kind"), [
    (0, "stun"), (3, "stun"), (4, None), (15, None), (16, "zrtp"), (19, "zrtp"), (20, "dtls"), (63, "dtls"),
    (64, "turn-channel"), (79, "turn-channel"), (80, "quic"), (127, "quic"), (128, "rtp"), (191, "rtp"),
    (192, "quic"), (255, "quic"),
])
def test_range_boundaries(first, kind):
    assert demux.kind(bytes([first, 0, 0, 0])) == kind


def test_empty_payload_has_no_kind():
    assert demux.kind(b"") is None


def test_channel_data_udp_and_tcp_padding():
    msg = bytes.fromhex("40030005") + b"hello" + b"\0\0\0" + b"next"
    assert demux.channel_data(msg) == (0x4003, b"hello", 9)  # UDP: no padding required
    assert demux.channel_data(msg, stream=True) == (0x4003, b"hello", 12)  # TCP: padded to 4
    assert demux.channel_data(bytes.fromhex("40030010") + b"short") is None  # length beyond the bytes
    assert demux.channel_data(bytes.fromhex("50000001") + b"x") is None  # 0x5000: not a channel number


def frames(name: str, wanted: set[int]) -> dict[int, bytes]:
    return {p.frame: p.payload for p in read_capture(CAPTURES / name, CaptureStats(name)) if p.frame in wanted}


def test_real_bundled_flow_demultiplexes_like_tshark():
    # tshark (ndpi_stun.pcap, one 5-tuple 192.168.12.169:49153 <-> 142.250.82.99:3478): 162 STUN Binding,
    # 164 DTLS ClientHello, 189 SRTP PT 111; 110 ChannelData on the Facebook TURN flow.
    got = frames("ndpi_stun.pcap", {110, 162, 164, 189})
    assert {f: demux.kind(p) for f, p in got.items()} == {110: "turn-channel", 162: "stun", 164: "dtls",
                                                          189: "rtp"}
    channel, data, used = demux.channel_data(got[110])
    assert channel == 0x4003 and used == len(got[110]) and data  # tshark: ChannelNumber=0x4003 bound in frame 104
