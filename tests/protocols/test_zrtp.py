"""protocols/zrtp.py: ZRTP messages built to RFC 6189's layout (§5.1 header, §5.2 Hello, §5.4 Commit)."""

from __future__ import annotations

import struct

from analyzer.pipeline import analyze_capture
from analyzer.protocols import Facts, FlowView, Sample, zrtp
from tests.conftest import write_pcap


def packet(seq: int, mtype: str, body: bytes) -> bytes:
    msg = b"PZ" + struct.pack("!H", (12 + len(body)) // 4) + mtype.ljust(8).encode() + body
    return struct.pack("!BBH", 0x10, 0, seq) + b"ZRTP" + struct.pack("!I", 0xDEADBEEF) + msg + b"\0\0\0\0"  # CRC


def hello() -> bytes:
    counts = (1 << 16) | (1 << 12) | (1 << 8) | (2 << 4) | 1  # hc=1 cc=1 ac=1 kc=2 sc=1
    return (b"1.10" + b"Zfone 3.0       " + bytes(32) + bytes(12) + struct.pack("!I", counts)
            + b"S256" + b"AES1" + b"HS32" + b"EC25" + b"DH3k" + b"B32 " + bytes(8))


def commit() -> bytes:
    return bytes(32) + bytes(12) + b"S256AES1HS80EC25B32 " + bytes(32) + bytes(8)


def test_hello_commit_dhpart_marks_zrtp():
    samples = [Sample(1, 0.0, True, 0, packet(1, "Hello", hello())), Sample(2, 0.0, False, 0, packet(1, "HelloACK", b"")),
               Sample(3, 0.0, True, 0, packet(2, "Commit", commit())),
               Sample(4, 0.0, False, 0, packet(2, "DHPart1", bytes(100))),
               Sample(5, 0.0, True, 0, packet(3, "DHPart2", bytes(100))),
               Sample(6, 0.0, False, 0, packet(3, "Confirm1", bytes(40)))]
    facts = Facts()
    zrtp.inspect(FlowView("udp", 5004, 5004, samples), facts)
    assert facts.key_exchange == "zrtp" and facts.key_frames == [3, 4, 5, 6]
    assert facts.details["zrtp_hello"] == {"version": "1.10", "client": "Zfone 3.0", "key_agreements": ["EC25", "DH3k"]}
    assert facts.details["zrtp_commit"]["key_agreement"] == "EC25" and facts.details["zrtp_commit"]["cipher"] == "AES1"
    assert facts.services == ["zrtp"] and "frames 3, 4, 5, 6" in facts.findings[0]


def test_zrtp_in_a_capture(tmp_path):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    frames = [bytes(Ether() / IP(src="192.0.2.1", dst="198.51.100.2") / UDP(sport=40000, dport=40000) / p)
              for p in (packet(1, "Hello", hello()), packet(2, "Commit", commit()))]
    [r] = analyze_capture(write_pcap(tmp_path / "zrtp.pcap", frames))[1]
    assert r["key_exchange"] == "zrtp" and r["key_frames"] == [2]


def test_not_zrtp_and_hostile_lengths():
    facts = Facts()
    bad = [b"\x10\x00\x00\x01ZRTP" + bytes(4) + b"PZ\xff\xffHello   ", b"\x10\x00\x00\x01ZRTP" + bytes(20),
           packet(1, "Hello", b"1.10"), packet(1, "Commit", b""), b"\x80" * 40]
    zrtp.inspect(FlowView("udp", 1, 2, [Sample(i, 0.0, True, 0, p) for i, p in enumerate(bad)]), facts)
    assert facts.key_exchange is None and facts.malformed == 2  # short Hello and short Commit
