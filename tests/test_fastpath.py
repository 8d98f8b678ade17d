"""fastpath.py: the vectorised reader builds exactly the flow table of the per-packet path and of scapy."""

from __future__ import annotations

import struct
from dataclasses import astuple

import numpy as np
import pytest
import scapy.contrib.gtp  # noqa: F401  (binds GTP-U on UDP 2152 so scapy sees the inner packet)
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import PcapReader

from analyzer import fastpath, flows
from analyzer.capture import CaptureStats, read_capture
from analyzer.flows import FlowTable
from tests.conftest import shared_captures, write_pcap, write_pcapng

EXT = (IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment)


def per_packet(path) -> tuple[CaptureStats, FlowTable]:
    stats = CaptureStats(str(path))
    table = FlowTable(str(path))
    for pkt in read_capture(path, stats):
        table.add(pkt)
    return stats, table


def fast(path) -> tuple[CaptureStats, FlowTable]:
    stats = CaptureStats(str(path))
    return stats, fastpath.read_table(path, stats)


def assert_same(path) -> FlowTable:
    (s1, a), (s2, b) = per_packet(path), fast(path)
    assert s2.as_dict() == s1.as_dict()
    assert s2.frames == s2.decoded + sum(s2.skipped.values())
    assert list(b.flows) == list(a.flows)  # same flows, in the same order
    for key, flow in a.flows.items():
        assert astuple(b.flows[key]) == astuple(flow), key  # counters, first frame, roles' evidence, samples
    assert (b.sampled_total, b.unsampled) == (a.sampled_total, a.unsampled)
    return b


@pytest.mark.parametrize("path", shared_captures(), ids=lambda p: p.name)
def test_same_table_as_the_per_packet_path(path):
    assert_same(path)


def scapy_flows(path) -> dict[tuple, list]:
    """A slow, independent reference: scapy's own layers (GTP-U, PPPoE, QinQ, SLL, IP-in-IP included)."""
    out: dict[tuple, list] = {}
    frag_ports: dict[tuple, tuple[int, int]] = {}
    with PcapReader(str(path)) as reader:
        for frame, pkt in enumerate(reader, 1):
            # exact types: an ICMP error quotes a packet as IPerror/UDPerror (subclasses), not a flow's packet
            ips = [layer for layer in pkt.iterpayloads() if type(layer) in (IP, IPv6)]
            if not ips:
                continue
            ip = ips[-1]
            if isinstance(ip, IP):
                wire, ip_len, l4 = ip.len - ip.ihl * 4, ip.len, ip.payload
                frag = bool(ip.flags.MF) or ip.frag > 0
                first, fkey = ip.frag == 0, (ip.src, ip.dst, ip.id, ip.proto)
                proto = ip.proto
            else:
                wire, ip_len, l4, frag, first, fkey = ip.plen, ip.plen + 40, ip.payload, False, True, None
                proto = ip.nh
                while isinstance(l4, EXT):
                    wire -= len(l4) - len(l4.payload)
                    proto = l4.nh
                    if isinstance(l4, IPv6ExtHdrFragment):
                        frag, first, fkey = True, l4.offset == 0, (ip.src, ip.dst, l4.id, l4.nh)
                    l4 = l4.payload
            if proto not in (6, 17):
                continue
            if frag and not first:
                if fkey not in frag_ports:
                    continue
                sport, dport = frag_ports[fkey]
                length = wire
            elif type(l4) is TCP:
                sport, dport, length = l4.sport, l4.dport, wire - l4.dataofs * 4
            elif type(l4) is UDP:
                sport, dport = l4.sport, l4.dport
                length = l4.len - 8 if not frag and 8 <= l4.len <= wire else wire - 8
            else:
                continue
            if frag:
                frag_ports[fkey] = (sport, dport)
            a, b = (ip.src, sport), (ip.dst, dport)
            side = 0 if (_raw(ip.src), sport) <= (_raw(ip.dst), dport) else 1
            key = (proto, *((a, b) if side == 0 else (b, a)))
            f = out.setdefault(key, [frame, [0, 0], [0, 0], [0, 0]])
            f[1][side] += 1
            f[2][side] += length
            f[3][side] += ip_len
    return out


def _raw(addr: str) -> bytes:
    import socket

    return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)


@pytest.mark.parametrize("path", shared_captures(), ids=lambda p: p.name)
def test_same_flows_and_counters_as_scapy(path):
    _, table = fast(path)
    ours = {(f.proto, (flows.addr_str(f.ends[0][0]), f.ends[0][1]), (flows.addr_str(f.ends[1][0]), f.ends[1][1])):
            [f.first_frame, f.pkts, f.bytes, f.ip_bytes] for f in table.flows.values()}
    theirs = scapy_flows(path)
    assert ours.keys() == theirs.keys()
    assert ours == theirs


def test_vlan_sll_raw_and_v6_take_the_fast_path(tmp_path):
    udp = IP(src="10.0.0.1", dst="52.1.1.1") / UDP(sport=5000, dport=8801) / Raw(b"\x05" * 40)
    tcp6 = IPv6(src="2001:db8::1", dst="2606:4700::1") / TCP(sport=40000, dport=443, flags="S")
    frames = [bytes(Ether() / udp), bytes(Ether() / Dot1Q(vlan=3) / udp), bytes(Ether() / tcp6),
              bytes(Ether(type=0x88A8) / Dot1Q(vlan=5) / Dot1Q(vlan=7) / tcp6)]
    table = assert_same(write_pcap(tmp_path / "e.pcap", frames))
    assert sum(sum(f.pkts) for f in table.flows.values()) == 4
    assert_same(write_pcap(tmp_path / "r.pcap", [bytes(udp), bytes(tcp6)], linktype=101))
    assert_same(write_pcap(tmp_path / "n.pcap", [bytes(udp)] * 3, linktype=101, nano=True, big=True))
    sll = b"\x00\x00\x00\x01\x00\x06" + b"\0" * 8 + b"\x08\x00" + bytes(udp)
    assert_same(write_pcapng(tmp_path / "s.pcapng", [(0, sll), (1, bytes(Ether() / tcp6))], [113, 1], tsresol=9))


def test_odd_frames_fall_back_and_are_counted_alike(tmp_path):
    udp = IP(src="10.0.0.1", dst="52.1.1.1", options=b"\x01" * 4) / UDP(sport=5000, dport=53) / Raw(b"q" * 30)
    frames = [bytes(Ether() / udp), bytes(Ether() / udp)[:30], bytes(Ether() / udp)[:45], b"\x00" * 10,
              bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2", flags="MF") / UDP(sport=1, dport=2) / Raw(b"x" * 8)),
              bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2", frag=1) / Raw(b"y" * 8)),
              bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=2152, dport=2152) / Raw(b"\x30\xff" + b"\0" * 6)),
              bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2", ihl=4)), bytes(Ether(type=0x0806) / Raw(b"a" * 28))]
    assert_same(write_pcap(tmp_path / "odd.pcap", frames * 3))


@pytest.mark.parametrize("cut", [1, 7, 16, 20, 33])
def test_damaged_files_stop_where_the_per_packet_path_stops(tmp_path, cut):
    udp = bytes(Ether() / IP(src="10.0.0.1", dst="52.1.1.1") / UDP(sport=5000, dport=8801) / Raw(b"z" * 50))
    path = write_pcap(tmp_path / "d.pcap", [udp] * 50)
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[:-cut]))
    assert_same(path)
    struct.pack_into("<I", data, 24 + 20 * (16 + len(udp)) + 8, 3_000_000)  # an absurd record length
    path.write_bytes(bytes(data))
    assert_same(path)


def test_lockstep_index_matches_a_sequential_walk_on_many_records(tmp_path, monkeypatch):
    """Small regions and segments so that many chains, guesses and refuted guesses are exercised."""
    monkeypatch.setattr(fastpath, "REGION_BYTES", 1 << 18)
    monkeypatch.setattr(fastpath, "MIN_SEGMENT", 4096)
    monkeypatch.setattr(fastpath, "SYNC_WINDOW", 1024)
    monkeypatch.setattr(fastpath, "BATCH", 97)
    rng = np.random.default_rng(5)
    frames = []
    for i in range(3000):
        size = int(rng.integers(0, 1400))
        payload = bytes(rng.integers(0, 4, size, dtype=np.uint8))  # mostly zero bytes: many false guesses
        frames.append(bytes(Ether() / IP(src="10.0.0.1", dst=f"52.1.{i % 7}.1") / UDP(sport=5000 + i % 11, dport=443)
                            / Raw(payload)))
    assert_same(write_pcap(tmp_path / "many.pcap", frames))


def test_sample_budget_is_spent_in_frame_order(tmp_path, monkeypatch):
    monkeypatch.setattr(flows, "SAMPLE_BYTES_TOTAL", 1000)
    monkeypatch.setattr(fastpath, "SAMPLE_BYTES_TOTAL", 1000)
    frames = [bytes(Ether() / IP(src="10.0.0.1", dst=f"52.1.{i % 5}.1") / UDP(sport=5000, dport=443)
                    / Raw(b"p" * (30 + i))) for i in range(60)]
    table = assert_same(write_pcap(tmp_path / "b.pcap", frames))
    assert table.unsampled > 0


@given(st.binary(max_size=300), st.lists(st.integers(0, 320), max_size=20), st.sampled_from([1, 4, 8, 80, 96]),
       st.sampled_from(["<", ">"]))
def test_views_read_what_slicing_reads(data, starts, nbytes, endian):
    """Byte windows and 4-byte integers at any offset, near and past the end (zeros there), as slices say."""
    v = fastpath._Views(data, endian)
    at = np.array(starts, np.int64)
    w = v.window(at, nbytes)
    assert w.shape == (len(starts), (nbytes + 7) // 8 * 8) and w.dtype == np.uint8
    for row, s in zip(w, starts, strict=True):
        assert bytes(row) == (data[s:s + w.shape[1]] + bytes(w.shape[1]))[:w.shape[1]]
    inside = [s for s in starts if s + 4 <= len(data)]
    assert v.u32(np.array(inside, np.int64)).tolist() == [struct.unpack_from(endian + "I", data, s)[0] for s in inside]


def test_trim_keeps_every_flow_and_leaves_room_to_grow_again():
    g = fastpath._Grow()
    g.grow(3)
    for k in g.cols:
        g.cols[k][:6] = np.arange(6, dtype=g.cols[k].dtype) + 1
    before = {k: v.copy() for k, v in g.cols.items()}
    g.trim()
    assert {k: len(v) for k, v in g.cols.items()} == {k: 6 if k in g.PAIRS else 3 for k in g.cols}
    assert all(np.array_equal(g.cols[k], before[k][:len(g.cols[k])]) for k in g.cols)
    g.grow(5)  # more flows after all (a joined second half): the trimmed columns grow again, defaults after
    spec = g.SPEC
    assert all(np.array_equal(g.cols[k][:3], before[k][:3]) and (g.cols[k][3:] == spec[k][1]).all() for k in spec)
    assert all(np.array_equal(g.cols[k][:6], before[k][:6]) and not g.cols[k][6:].any() for k in g.PAIRS)
