"""flows.py: bidirectional aggregation, roles from SYN / protocol / ports / local host, RTT, stable uids."""

from __future__ import annotations

from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from analyzer.capture import read_capture
from analyzer.flows import FlowTable, finish
from tests.conftest import CAPTURES, write_pcap


def flows_of(path, local=None):
    table = FlowTable(str(path))
    for p in read_capture(path):
        table.add(p)
    return finish(table, str(path), local)


def eth(pkt):
    return bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02") / pkt)


def test_syn_sender_is_orig_and_rtt_is_measured(tmp_path):
    # the client uses a low port and the server a high one: only the SYN tells them apart
    frames = [eth(IP(src="10.0.0.5", dst="52.1.1.1") / TCP(sport=999, dport=40000, flags="S")),
              eth(IP(src="52.1.1.1", dst="10.0.0.5") / TCP(sport=40000, dport=999, flags="SA")),
              eth(IP(src="10.0.0.5", dst="52.1.1.1") / TCP(sport=999, dport=40000, flags="A") / Raw(b"abc"))]
    [f] = flows_of(write_pcap(tmp_path / "syn.pcap", frames))
    assert (f.orig_h, f.orig_p, f.resp_h, f.resp_p, f.role_evidence) == ("10.0.0.5", 999, "52.1.1.1", 40000, "tcp-syn")
    assert (f.orig_pkts, f.resp_pkts, f.orig_bytes, f.resp_bytes) == (2, 1, 3, 0)
    assert f.rtt_ms == 10.0  # the test writer spaces frames 10 ms apart
    assert f.first_frame == 1


def test_dns_query_sender_is_orig_even_when_the_response_comes_first(tmp_path):
    q = DNS(id=1, rd=1, qd=DNSQR(qname="zoom.us"))
    frames = [eth(IP(src="8.8.8.8", dst="10.0.0.5") / UDP(sport=53, dport=53) / DNS(id=1, qr=1, qd=q.qd)),
              eth(IP(src="10.0.0.5", dst="8.8.8.8") / UDP(sport=53, dport=53) / q)]
    [f] = flows_of(write_pcap(tmp_path / "dns.pcap", frames))
    assert (f.orig_h, f.resp_h, f.role_evidence) == ("10.0.0.5", "8.8.8.8", "protocol")


def test_well_known_port_is_the_server(tmp_path):
    frames = [eth(IP(src="109.94.160.99", dst="192.168.1.2") / UDP(sport=8801, dport=50000) / Raw(b"\x05" * 30))]
    [f] = flows_of(write_pcap(tmp_path / "p.pcap", frames))
    assert (f.orig_h, f.resp_h, f.resp_p, f.role_evidence) == ("192.168.1.2", "109.94.160.99", 8801, "port")


def test_local_host_is_orig_when_nothing_else_says(tmp_path):
    frames = [eth(IP(src="1.2.3.4", dst="10.0.0.5") / UDP(sport=40000, dport=50000) / Raw(b"\xaa" * 30)),
              eth(IP(src="10.0.0.5", dst="5.6.7.8") / UDP(sport=50001, dport=40001) / Raw(b"\xaa" * 30))]
    path = write_pcap(tmp_path / "l.pcap", frames)
    flows = flows_of(path)
    assert [(f.orig_h, f.role_evidence) for f in flows] == [("10.0.0.5", "local-host")] * 2
    flows = flows_of(path, local="1.2.3.4")
    assert (flows[0].orig_h, flows[1].orig_h) == ("1.2.3.4", "10.0.0.5")  # 2nd: neither side local
    assert flows[1].role_evidence == "first-packet"


def test_uids_are_stable_and_unique():
    path = CAPTURES / "ndpi_teams.pcap"
    a, b = flows_of(path), flows_of(path)
    assert [f.uid for f in a] == [f.uid for f in b]
    assert len({f.uid for f in a}) == len(a) and all(f.uid.startswith("C") for f in a)


def test_real_capture_counters_and_roles():
    flows = {(f.resp_h, f.resp_p, f.first_frame): f for f in flows_of(CAPTURES / "ndpi_zoom.pcap")}
    media = flows[("109.94.160.99", 8801, 386)]  # tshark: 10 frames ->, 175 frames <-
    assert (media.orig_h, media.orig_pkts, media.resp_pkts, media.first_frame) == ("192.168.1.117", 10, 175, 386)
    [web] = [f for k, f in flows.items() if k[:2] == ("52.202.62.196", 443)]
    assert web.role_evidence == "tcp-syn" and web.rtt_ms is not None and web.rtt_ms > 0


def _uid_reference(capture, proto, orig, resp, first_frame):
    """The uid as big-integer arithmetic writes it: base 62 digits of the digest, least significant first."""
    import hashlib

    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    text = f"{capture}|{proto}|{orig[0]}|{orig[1]}|{resp[0]}|{resp[1]}|{first_frame}"
    digest = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=12).digest(), "big")
    out = ""
    while digest:
        digest, r = divmod(digest, 62)
        out += alphabet[r]
    return "C" + out


def test_vectorised_uids_equal_the_big_integer_reference():
    import random

    from analyzer.flows import make_uids

    rnd = random.Random(7)
    rows = [(rnd.choice(["tcp", "udp"]), (f"10.0.{rnd.randrange(256)}.{rnd.randrange(256)}", rnd.randrange(65536)),
             (f"2001:db8::{rnd.randrange(65536):x}", rnd.randrange(65536)), rnd.randrange(10 ** 9))
            for _ in range(5000)]
    got = make_uids("c.pcap", *(list(c) for c in zip(*rows, strict=True)))
    assert got == [_uid_reference("c.pcap", *r) for r in rows]
    assert len({len(u) for u in got}) > 1  # digests with leading zero digits are among them


def test_flow_columns_stand_for_the_same_table():
    """FlowColumns.from_table then to_table gives back every flow, counter and sample."""
    from dataclasses import astuple

    from analyzer.flows import FlowColumns

    for path in sorted(CAPTURES.glob("*.pcap*"))[:12]:
        table = FlowTable(str(path))
        for p in read_capture(path):
            table.add(p)
        back = FlowColumns.from_table(table).to_table(str(path))
        ordered = sorted(table.flows.items(), key=lambda kv: kv[1].first_frame)
        assert [(k, astuple(f)) for k, f in back.flows.items()] == [(k, astuple(f)) for k, f in ordered], path
