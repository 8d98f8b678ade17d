"""protocols/tls.py: SNI across segments, certificate names, handshake frame numbers."""

from __future__ import annotations

from analyzer.pipeline import analyze_capture
from tests.conftest import CAPTURES


def rows(name):
    return analyze_capture(CAPTURES / name)[1]


def test_sni_and_key_exchange_frames_in_zoom_capture():
    by_name = {r["server_name"]: r for r in rows("ndpi_zoom.pcap") if r["server_name_source"] == "sni"}
    r = by_name["zoomfrn99mmr.zoom.us"]
    assert r["key_exchange"] == "tls" and r["resp_h"] == "109.94.160.99"
    assert 284 in r["key_frames"]  # tshark: frame 284 is the ClientHello
    assert r["service"] == "tls"


def test_hellos_in_a_stream_with_reassembled_records():
    [r] = [r for r in rows("ndpi_tls_2_reasms.pcapng") if r["proto"] == "tcp"]
    assert r["server_name"] == "i.instagram.com" and r["server_name_source"] == "sni"
    assert r["key_frames"] == [2, 4]  # tshark: ClientHello in frame 2, ServerHello in frame 4


def test_certificate_names_from_tls12_when_no_sni():
    certs = [r for r in rows("ndpi_webex.pcap") if r["server_name_source"] == "cert"]
    assert certs, "webex servers without SNI must be named from their certificates"
    assert any("webex" in r["server_name"] for r in certs)


def test_one_sided_capture_still_marks_key_exchange():
    [r] = rows("ndpi_tls_1.3_unidirectional_client.pcapng")
    assert (r["server_name"], r["key_exchange"]) == ("www.google.com", "tls")


def test_client_hello_split_out_of_order_with_retransmission(tmp_path):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName
    from scapy.layers.tls.handshake import TLSClientHello
    from scapy.layers.tls.record import TLS

    from tests.conftest import write_pcap

    hello = bytes(TLS(msg=[TLSClientHello(ext=[TLS_Ext_ServerName(servernames=[ServerName(
        servername=b"zoomcnbj01mmr.cloud.zoom.us")])])]))
    c, s = ("10.0.0.5", 50000), ("52.81.100.10", 8443)  # TLS on a non-standard port: found anyway

    def seg(seq, data, flags="PA"):
        return bytes(Ether() / IP(src=c[0], dst=s[0]) / TCP(sport=c[1], dport=s[1], seq=seq, flags=flags) / data)

    base = 1000
    parts = [hello[:20], hello[20:50], hello[50:]]
    frames = [seg(base - 1, b"", "S"), seg(base + 50, parts[2]), seg(base, parts[0]), seg(base, parts[0]),
              seg(base + 20, parts[1])]
    [r] = analyze_capture(write_pcap(tmp_path / "split.pcap", frames))[1]
    assert (r["server_name"], r["server_name_source"], r["key_exchange"]) == (
        "zoomcnbj01mmr.cloud.zoom.us", "sni", "tls")
    assert r["key_frames"] == [2, 3]  # starts in frame 3, ends in frame 2 (sent first, out of order)
