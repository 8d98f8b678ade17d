"""protocols/dns.py: A/AAAA answers and CNAME chains name the servers."""

from __future__ import annotations

from scapy.layers.dns import DNS, DNSQR, DNSRR

from analyzer.pipeline import analyze_capture
from analyzer.protocols import dns
from tests.conftest import CAPTURES


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
