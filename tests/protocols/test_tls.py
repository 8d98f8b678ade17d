"""protocols/tls.py: SNI across segments, certificate names, handshake frame numbers, and the hellos: version,
key shares (post-quantum or not), Encrypted Client Hello, HelloRetryRequest."""

from __future__ import annotations

import pytest

from analyzer.pipeline import analyze_capture
from analyzer.protocols import tls
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


def test_negotiated_version_and_key_shares():
    [r] = [r for r in rows("ndpi_tls_2_reasms.pcapng") if r["proto"] == "tcp"]
    assert r["details"]["tls_version"] == "TLS 1.3 (Facebook draft 26)"  # tshark: 0xfb1a in frame 4
    [meet] = [r for r in rows("ndpi_google_meet.pcapng") if r["proto"] == "tcp"]
    d = meet["details"]
    assert (d["tls_version"], d["key_share_offered"], d["key_share_selected"]) == ("TLS 1.3", ["x25519"], "x25519")
    assert d["alpn"] == ["h2", "http/1.1"] and "post_quantum" not in d


def test_encrypted_client_hello_keeps_the_outer_sni_but_says_so():
    [r] = rows("ndpi_tls_ech.pcapng")
    assert (r["server_name"], r["server_name_source"]) == ("performance.radar.cloudflare.com", "sni")
    assert r["details"]["ech"] is True
    [finding] = r["findings"]
    assert "frame 4" in finding and "client-facing server" in finding and "performance.radar" in finding
    zeek = [r for r in rows("zeek_tls13-ech.pcap") if r["details"].get("ech")]
    assert [r["key_frames"] for r in zeek] == [[7, 9], [39, 41]]  # tshark: the hellos of two connections


def test_hello_retry_request_and_the_second_client_hello():
    [r] = [r for r in rows("zeek_tls_hrr.pcap") if r["key_exchange"]]
    d = r["details"]
    assert d["hrr"] is True and d["key_share_offered"] == ["secp224r1"] and d["key_share_selected"] == "secp256r1"
    # tshark (with out-of-order reassembly): ClientHello 4, HRR 6, second ClientHello 8 after a
    # ChangeCipherSpec, ServerHello 11
    assert r["key_frames"] == [4, 6, 8, 11]
    assert any("HelloRetryRequest in frame 6" in f and "secp256r1" in f and "frame 8" in f for f in r["findings"])


def tcp_handshake(tmp_path, client_records: bytes, server_records: bytes):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from tests.conftest import write_pcap

    c, s = ("10.0.0.5", 50001), ("203.0.113.7", 443)

    def seg(src, dst, seq, data, flags="PA"):
        return bytes(Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], seq=seq,
                                                                 flags=flags) / data)

    frames = [seg(c, s, 99, b"", "S"), seg(s, c, 499, b"", "SA"), seg(c, s, 100, client_records),
              seg(s, c, 500, server_records)]
    [r] = analyze_capture(write_pcap(tmp_path / "hello.pcap", frames))[1]
    return r


def record(message: bytes, ctype: int = 22) -> bytes:
    return bytes([ctype, 3, 3]) + len(message).to_bytes(2, "big") + message


@pytest.mark.parametrize("chosen, selected", [(0x11EC, "X25519MLKEM768"), (0x1D, None)])
def test_post_quantum_hybrid_offered_and_selected_or_not(tmp_path, chosen, selected):
    from tests.protocols.test_quic import hello_bytes, server_hello_bytes

    r = tcp_handshake(tmp_path, record(hello_bytes(b"pq.example")), record(server_hello_bytes(chosen)))
    d = r["details"]
    assert d["key_share_offered"] == ["X25519MLKEM768", "x25519"]
    assert d["post_quantum"] == {"offered": ["X25519MLKEM768"], "selected": selected}
    assert r["key_frames"] == [3, 4]
    [finding] = r["findings"]
    if selected:
        assert "X25519MLKEM768 selected by the server (ServerHello in frame 4)" in finding
    else:
        assert "server selected x25519 (frame 4)" in finding and "not quantum-resistant" in finding


def test_encrypted_records_after_change_cipher_spec_are_not_read_as_hellos(tmp_path):
    from tests.protocols.test_quic import hello_bytes, server_hello_bytes

    fake = bytes([1]) + (36).to_bytes(3, "big") + bytes(36)  # encrypted Finished that starts like a hello
    server = record(server_hello_bytes(0x1D)) + record(b"\x01", 20) + record(fake)
    r = tcp_handshake(tmp_path, record(hello_bytes(b"a.example")), server)
    assert r["key_frames"] == [3, 4] and "hrr" not in r["details"]


def test_server_hello_parser_bounds():
    from tests.protocols.test_quic import server_hello_bytes

    sh = server_hello_bytes(0x11EC)
    assert tls.server_hello(sh)["group"] == 0x11EC
    with pytest.raises(ValueError):
        tls.server_hello(sh[:30])
    lying = bytearray(sh)
    lying[-38:-36] = b"\xff\xff"  # the key_share extension's length, now past the message: the walk stops
    out = tls.server_hello(bytes(lying))
    assert out["version"] == 0x0304 and out["group"] is None
    hrr = sh[:6] + tls.HRR_RANDOM + sh[38:]
    assert tls.server_hello(hrr)["hrr"] is True


def test_names():
    assert tls.version_name(0x0304) == "TLS 1.3" and tls.version_name(0x7F1C) == "TLS 1.3 (draft 28)"
    assert tls.version_name(0xFEFD) == "DTLS 1.2" and tls.version_name(0x5A5A) == "GREASE"
    assert tls.group_name(0x6399) == "X25519Kyber768Draft00" and tls.group_name(0x11EB) == "SecP256r1MLKEM768"
    assert tls.group_name(0x1234) == "0x1234" and tls.is_grease(0xDADA) and not tls.is_grease(0x1D1D)


def test_fast_client_hello_parser_agrees_with_scapy_on_every_shared_hello():
    from analyzer.protocols import tls
    from tests.conftest import messages_passed_to

    hellos = messages_passed_to(tls, "client_hello")  # TLS over TCP and inside QUIC
    assert len(hellos) >= 25
    for message in hellos:
        assert tls._client_hello_fast(message) == tls.client_hello_scapy(message)


def test_fast_client_hello_parser_agrees_with_scapy_on_generated_hellos():
    from hypothesis import assume, given, settings
    from hypothesis import strategies as st
    from scapy.layers.tls.extensions import (
        ProtocolName,
        ServerName,
        TLS_Ext_ALPN,
        TLS_Ext_ServerName,
        TLS_Ext_SupportedGroups,
        TLS_Ext_SupportedVersion_CH,
    )
    from scapy.layers.tls.handshake import TLSClientHello

    from analyzer.protocols import tls

    @settings(max_examples=150, deadline=None)
    @given(st.binary(min_size=1, max_size=80), st.lists(st.binary(min_size=1, max_size=12), max_size=4),
           st.lists(st.integers(0, 0xFFFF), max_size=6), st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=4),
           st.sampled_from([b"", bytes(range(32))]))
    def check(sni, alpn, groups, versions, session):
        ext = [TLS_Ext_ServerName(servernames=[ServerName(servername=sni)]),
               TLS_Ext_SupportedGroups(groups=groups), TLS_Ext_SupportedVersion_CH(versions=versions)]
        if alpn:
            ext.append(TLS_Ext_ALPN(protocols=[ProtocolName(protocol=p) for p in alpn]))
        message = bytes(TLSClientHello(sid=session, ext=ext))
        try:
            reference = tls.client_hello_scapy(message)
        except Exception:  # noqa: BLE001 - scapy's builder writes hellos its parser rejects
            assume(False)
        try:
            fast = tls._client_hello_fast(message)
        except ValueError:  # declined: client_hello() hands it to scapy, nothing to compare
            assume(False)
        assert fast == reference

    check()


def test_hellos_the_fast_walk_declines_go_to_scapy(monkeypatch):
    import pytest

    from analyzer.protocols import tls

    calls = []
    monkeypatch.setattr(tls, "client_hello_scapy", lambda m: calls.append(m) or {"sni": "from-scapy"})
    truncated = b"\x01\x00\x00\x26\x03\x03" + b"\x00" * 32 + b"\x00\x00"
    with pytest.raises(ValueError):
        tls._client_hello_fast(truncated)
    assert tls.client_hello(truncated) == {"sni": "from-scapy"} and calls == [truncated]


def test_message_frames_are_those_carrying_its_first_and_last_byte():
    """Random record layouts over random segments: each message's frames, checked byte by byte."""
    import random

    from analyzer.protocols import frame_at

    rnd = random.Random(4)
    for _ in range(500):
        msgs = b"".join(bytes([rnd.choice([1, 2, 11])]) + (k := rnd.randrange(0, 300)).to_bytes(3, "big")
                        + rnd.randbytes(k) for _ in range(rnd.randrange(1, 4)))
        stream, where, i = b"", [], 0  # where[j]: the stream offset of handshake byte j
        while i < len(msgs):
            piece = msgs[i:i + rnd.randrange(1, 200)]
            where += range(len(stream) + 5, len(stream) + 5 + len(piece))
            stream += b"\x16\x03\x03" + len(piece).to_bytes(2, "big") + piece
            i += len(piece)
        marks, off, frame = [], 0, 10
        while off < len(stream):
            marks.append((off, frame))
            off, frame = off + rnd.randrange(1, 400), frame + rnd.randrange(1, 3)
        pos = 0
        for mtype, message, frames in tls.handshake_messages(stream, marks):
            assert mtype == message[0]
            first, last = where[pos], where[pos + len(message) - 1]
            assert frames == sorted({frame_at(marks, first), frame_at(marks, last)})
            pos += len(message)
