"""protocols/dns.py: A/AAAA answers and CNAME chains name the servers."""

from __future__ import annotations

from scapy.layers.dns import DNS, DNSQR, DNSRR

from analyzer.pipeline import analyze_capture
from analyzer.protocols import dns
from tests.conftest import CAPTURES, messages_passed_to


def test_cname_chain_attributes_address_to_the_name_asked_for():
    msg = bytes(DNS(id=7, qr=1, qd=DNSQR(qname="us04web.zoom.us"), an=[
        DNSRR(rrname="us04web.zoom.us", type="CNAME", rdata="zoom.edge.example.net"),
        DNSRR(rrname="zoom.edge.example.net", type="CNAME", rdata="e1.cdn.example.net"),
        DNSRR(rrname="e1.cdn.example.net", type="A", rdata="170.114.52.2"),
    ]))
    assert dns.answers(msg) == [("170.114.52.2", "us04web.zoom.us")]


def test_queries_give_no_answers_and_cname_loops_end():
    assert dns.answers(bytes(DNS(id=1, qd=DNSQR(qname="a.example")))) == []
    loop = bytes(DNS(id=1, qr=1, qd=DNSQR(qname="a.example"), an=[
        DNSRR(rrname="a.example", type="CNAME", rdata="b.example"),
        DNSRR(rrname="b.example", type="CNAME", rdata="a.example"),
        DNSRR(rrname="c.example", type="A", rdata="1.2.3.4")]))
    assert dns.answers(loop) == [("1.2.3.4", "c.example")]


def test_dns_names_flows_in_real_capture():
    rows = analyze_capture(CAPTURES / "ndpi_zoom.pcap")[1]
    media = [r for r in rows if r["resp_p"] == 8801 and r["resp_h"] == "109.94.160.99"]
    assert media and all(r["server_name"] == "zoomfrn99mmr.zoom.us" for r in media)
    assert all(r["server_name_source"] == "dns" for r in media)


def test_dns_over_qinq_pppoe():
    rows = analyze_capture(CAPTURES / "ndpi_dns.pcap")[1]
    assert any(r["service"] == "dns" and r["resp_h"] in ("82.178.158.181", "82.178.113.245") for r in rows)


def test_fast_walk_agrees_with_scapy_on_every_shared_dns_message():
    messages = messages_passed_to(dns, "answers")
    compared = 0
    for m in messages:
        try:
            fast = dns._parse_fast(m)
        except ValueError:
            continue
        assert fast == dns._parse_scapy(m), m.hex()
        compared += 1
    assert compared >= 80 and compared >= 0.9 * len(messages)


def test_fast_walk_agrees_with_scapy_on_generated_responses():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    # scapy takes some bytes in a name it builds as wire format (pointers, lengths): printable ones and
    # UTF-8 continuation bytes stay literal
    alphabet = [b for b in range(0x21, 0x7F) if b != 0x2E] + list(range(0x80, 0xC0))
    label = st.lists(st.sampled_from(alphabet), min_size=1, max_size=12).map(bytes)
    name = st.lists(label, min_size=1, max_size=4).map(lambda ls: b".".join(ls))

    @settings(max_examples=150, deadline=None)
    @given(name, st.lists(st.tuples(name, st.sampled_from(["A", "AAAA", "CNAME"]), name), max_size=5))
    def check(qname, records):
        an = []
        for rrname, rtype, target in records:
            rdata = {"A": "52.81.100.10", "AAAA": "2001:db8::1"}.get(rtype, target)
            an.append(DNSRR(rrname=rrname, type=rtype, rdata=rdata))
        message = bytes(DNS(id=1, qr=1, qd=DNSQR(qname=qname), an=an))
        assert dns._parse_fast(message) == dns._parse_scapy(message)

    check()


def test_compression_loop_is_declined_and_counted():
    loop = bytes.fromhex("0001 8180 0001 0001 0000 0000".replace(" ", "")) + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    import pytest

    with pytest.raises(ValueError):
        dns._parse_fast(loop)
