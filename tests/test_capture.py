"""capture.py: formats, link types, IP versions, fragments, and exact accounting of every frame."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from analyzer.capture import CaptureStats, read_capture
from analyzer.errors import CallauditError
from tests.conftest import CAPTURES, manifest_counts, shared_captures, write_pcap, write_pcapng

UDP4 = bytes(IP(src="10.0.0.1", dst="93.184.216.34") / UDP(sport=5000, dport=3478) / Raw(b"x" * 20))
TCP6 = bytes(IPv6(src="2001:db8::1", dst="2606:4700::1") / TCP(sport=40000, dport=443, flags="S"))


def read(path, **kw):
    stats = CaptureStats(str(path))
    pkts = list(read_capture(path, stats))
    assert stats.frames == stats.decoded + sum(stats.skipped.values())
    return stats, pkts


@pytest.mark.parametrize("path", shared_captures(), ids=lambda p: p.name)
def test_every_shared_capture_is_accounted_for(path):
    stats, pkts = read(path)
    assert stats.frames == manifest_counts()[path.name]
    assert stats.decoded == len(pkts) > 0
    assert set(stats.skipped) <= {"non-ip", "not-tcp-udp"}  # real captures: nothing truncated or malformed


def test_format_comes_from_magic_not_name():
    assert read(CAPTURES / "ndpi_zoom.pcap")[0].format == "pcapng"
    assert read(CAPTURES / "ndpi_sip.pcap")[0].format == "pcap"


@pytest.mark.parametrize("name, linktype", [
    ("ndpi_quic-v2.pcapng", "LINUX_SLL"), ("zeek_quic_interop_quic-go_handshake.pcap", "PPP"),
    ("veon_wifi-tcp_to_3g.pcap", "RAW"), ("ndpi_sip.pcap", "ETHERNET"),
])
def test_shared_link_types(name, linktype):
    assert read(CAPTURES / name)[0].link_types == [linktype]


def test_qinq_pppoe_and_gtp_tunnels_are_decoded():
    _, pkts = read(CAPTURES / "ndpi_dns.pcap")  # eth / vlan / vlan / pppoes / ppp / ip
    assert any(p.src == bytes([82, 178, 113, 245]) or p.dst == bytes([82, 178, 113, 245]) for p in pkts)
    _, pkts = read(CAPTURES / "ndpi_zoom.pcap")  # Zoom media inside GTP-U over QinQ
    inner = bytes([193, 122, 35, 237])
    assert sum(1 for p in pkts if inner in (p.src, p.dst) and 8801 in (p.sport, p.dport)) == 81


def test_ipv4_fragments_join_their_flow(tmp_path):
    big = Ether() / IP(src="10.0.0.1", dst="8.8.8.8", id=7) / UDP(sport=1234, dport=53) / Raw(b"a" * 3000)
    frames = [bytes(f) for f in fragment(big, fragsize=1000)]
    stats, pkts = read(write_pcap(tmp_path / "frag.pcap", frames))
    assert stats.fragments == len(frames) == len(pkts) >= 3
    assert {(p.sport, p.dport) for p in pkts} == {(1234, 53)}


def test_ipv6_extension_headers_and_fragment(tmp_path):
    pkt = Ether() / IPv6(src="2001:db8::1", dst="2606:4700::1") / IPv6ExtHdrHopByHop() / \
        IPv6ExtHdrFragment(offset=0, m=0, id=5) / UDP(sport=5353, dport=19302) / Raw(b"hi")
    later = Ether() / IPv6(src="2001:db8::1", dst="2606:4700::9") / IPv6ExtHdrFragment(offset=100, id=9, nh=17) / Raw(b"z")
    stats, pkts = read(write_pcap(tmp_path / "v6.pcap", [bytes(pkt), bytes(later)]))
    assert (pkts[0].sport, pkts[0].dport, pkts[0].payload) == (5353, 19302, b"hi")
    assert stats.skipped == {"fragment-without-first": 1}


@pytest.mark.parametrize("linktype, frame", [
    (0, struct.pack("<I", 2) + UDP4), (0, struct.pack("<I", 30) + TCP6), (108, struct.pack("!I", 2) + UDP4),
    (101, UDP4), (12, TCP6), (228, UDP4), (229, TCP6), (9, b"\xff\x03\x00\x21" + UDP4),
    (113, b"\x00\x00\x00\x01\x00\x06" + b"\0" * 8 + b"\x08\x00" + UDP4),
    (276, b"\x86\xdd" + b"\0" * 18 + TCP6),
    (1, bytes(Ether(type=0x88A8) / Dot1Q(vlan=5) / Dot1Q(vlan=7) / IP(UDP4))),
])
def test_link_types(tmp_path, linktype, frame):
    stats, pkts = read(write_pcap(tmp_path / "lt.pcap", [frame], linktype=linktype))
    assert stats.decoded == 1, stats.skipped
    assert pkts[0].dport in (3478, 443)


def test_unsupported_link_type_is_counted(tmp_path):
    stats, pkts = read(write_pcap(tmp_path / "x.pcap", [UDP4, UDP4], linktype=147))
    assert pkts == [] and stats.skipped == {"unsupported-link-type": 2}


@pytest.mark.parametrize("opts", [{"nano": True}, {"big": True}, {"gz": True}, {"nano": True, "big": True}])
def test_pcap_variants(tmp_path, opts):
    stats, pkts = read(write_pcap(tmp_path / "v.bin", [UDP4] * 3, linktype=101, **opts))
    assert stats.decoded == 3
    assert pkts[1].ts == pytest.approx(1_700_000_000.01, abs=1e-6)
    assert ("-ns" in stats.format) == bool(opts.get("nano")) and stats.format.startswith(
        "gzip+" if opts.get("gz") else "pcap")


def test_pcapng_interfaces_resolution_and_unknown_blocks(tmp_path):
    eth = bytes(Ether() / IP(UDP4))
    path = write_pcapng(tmp_path / "multi", [(0, eth), (1, UDP4), (0, bytes(Ether() / ARP()))], [1, 101],
                        tsresol=9)
    stats, pkts = read(path)
    assert stats.link_types == ["ETHERNET", "RAW"]
    assert (stats.frames, stats.decoded, dict(stats.skipped)) == (3, 2, {"non-ip": 1})
    assert pkts[1].ts == pytest.approx(1_700_000_000.01, abs=1e-6)


def test_bad_checksums_are_kept(tmp_path):
    pkt = Ether() / IP(src="10.0.0.1", dst="1.2.3.4", chksum=0xDEAD) / UDP(sport=1, dport=2, chksum=0xBEEF) / b"q"
    _, pkts = read(write_pcap(tmp_path / "c.pcap", [bytes(pkt)]))
    assert len(pkts) == 1 and pkts[0].payload == b"q"


def test_truncated_last_record_counted_rest_analysed(tmp_path):
    path = write_pcap(tmp_path / "t.pcap", [UDP4] * 4, linktype=101)
    path.write_bytes(path.read_bytes()[:-10])
    stats, pkts = read(path)
    assert (stats.frames, len(pkts), dict(stats.skipped)) == (4, 3, {"truncated-record": 1})
    assert stats.warnings


def test_huge_record_length_stops_cleanly(tmp_path):
    path = write_pcap(tmp_path / "h.pcap", [UDP4] * 2, linktype=101)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 24 + 16 + len(UDP4) + 8, 2_000_000_000)
    path.write_bytes(bytes(data))
    stats, pkts = read(path)
    assert (stats.frames, len(pkts), dict(stats.skipped)) == (2, 1, {"damaged-record": 1})


def test_snaplen_cut_frames_keep_wire_length(tmp_path):
    frame = bytes(Ether() / IP(src="10.0.0.1", dst="1.2.3.4") / UDP(sport=1, dport=2) / (b"p" * 500))
    _, pkts = read(write_pcap(tmp_path / "s.pcap", [frame[:64]]))
    assert pkts[0].length == 500 and len(pkts[0].payload) == 64 - 42


@pytest.mark.parametrize("content, message", [
    (b"", "empty"), (b"hello world, not a capture", "not a pcap"), (b"\x1f\x8b\x08\x00garbage", "gzip"),
])
def test_not_a_capture_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(CallauditError, match=message):
        read(path)


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(CallauditError, match="cannot open"):
        read(tmp_path / "nope.pcap")
