"""Hostile and broken captures: never crash, never hang, never lose count (issue 7).

Every shared capture is damaged in several ways (byte flips, truncation, header damage, absurd lengths)
and read in-process; a sample goes through the CLI in a subprocess with a timeout. Each must end as a
one-line `CallauditError` (exit 2) or as a report whose frames == decoded + sum(skipped by reason).
"""

from __future__ import annotations

import gzip
import json
import random
import re
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from analyzer import capture, fastpath, flows
from analyzer.capture import CaptureStats, read_capture
from analyzer.errors import CallauditError
from analyzer.pipeline import analyze_capture
from analyzer.protocols import Facts, FlowView, Sample
from tests.conftest import CAPTURES, manifest_counts, shared_captures, write_pcap, write_pcapng
from tests.fuzz.targets import check_rows, check_stats

CAPS = shared_captures()
PCAPNG = b"\x0a\x0d\x0d\x0a"


def cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analyzer", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def first_record(data: bytes) -> tuple[int, str]:
    """(offset of the first packet record or block, byte order) of a pcap or pcapng file."""
    if data[:4] != PCAPNG:
        return 24, "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    e = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    off = 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from(e + "II", data, off)
        if btype in (2, 3, 6):
            return off, e
        off += blen
    raise AssertionError("no packet block")


def last_record(data: bytes) -> int:
    """Offset of the last packet record (pcap) or block (pcapng)."""
    off, e = first_record(data)
    last = off
    while off + 12 <= len(data):
        if data[:4] == PCAPNG:
            btype, blen = struct.unpack_from(e + "II", data, off)
            last = off if btype in (2, 3, 6) else last
            off += blen
        else:
            last = off
            off += 16 + struct.unpack_from(e + "I", data, off + 8)[0]
    return last


def variants(data: bytes, seed: str) -> list[tuple[str, bytes]]:
    """Damaged copies of one capture: what a crashed tcpdump, a bad disk or an attacker leave behind."""
    rng = random.Random(seed)
    first, e = first_record(data)
    out = []
    flipped = bytearray(data)
    for _ in range(24):  # byte flips anywhere after the file header
        flipped[rng.randrange(first, len(data))] ^= 1 << rng.randrange(8)
    out.append(("flip-24", bytes(flipped)))
    body = bytearray(data)
    for i in rng.sample(range(first, len(data)), min(len(data) - first, len(data) // 50)):
        body[i] = rng.randrange(256)  # 2% of the bytes replaced
    out.append(("scramble-2pc", bytes(body)))
    header = bytearray(data)
    for i in rng.sample(range(4, min(first, 64)), 6):  # header damage, magic kept
        header[i] ^= 0xFF
    out.append(("header-damage", bytes(header)))
    out.append(("cut-last-byte", data[:-1]))
    out.append(("cut-in-last-record", data[: last_record(data) + 20]))
    out.append(("cut-half", data[: len(data) // 2]))
    out.append(("cut-in-first-record", data[: first + 5]))
    out.append(("header-only", data[:first]))
    big = bytearray(data)
    if data[:4] == PCAPNG:
        struct.pack_into(e + "I", big, first + 4, 0x80000000)  # a packet block claiming 2 GiB
        zero = bytearray(data)
        struct.pack_into(e + "I", zero, first + 4, 0)  # a block length of 0 would loop forever
        odd = bytearray(data)
        struct.pack_into(e + "I", odd, first + 4, struct.unpack_from(e + "I", data, first + 4)[0] + 1)
        out += [("block-length-0", bytes(zero)), ("block-length-unaligned", bytes(odd))]
    else:
        struct.pack_into(e + "I", big, first + 8, 0x80000000)  # a record claiming a 2 GiB packet
        snap = bytearray(data)
        struct.pack_into(e + "I", snap, 16, 0xFFFFFFFF)  # snap length field absurd
        out.append(("snaplen-4g", bytes(snap)))
    out.append(("record-2gb", bytes(big)))
    mid = last_record(data)
    out.append(("last-record-2gb", data[: mid + 4] + b"\xff\xff\xff\x7f" * 4 + data[mid + 20 :]))
    out.append(("gzip-cut", gzip.compress(data, compresslevel=1, mtime=0)[: len(data) // 3]))
    return out


def check_capture(path: Path) -> CaptureStats | None:
    try:
        stats, rows = analyze_capture(path)
    except CallauditError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    check_stats(stats)
    check_rows(rows)
    return stats


@pytest.mark.parametrize("path", CAPS, ids=lambda p: p.name)
def test_damaged_variants_of_every_shared_capture(tmp_path, path):
    data = path.read_bytes()
    for name, damaged in variants(data, path.name):
        target = tmp_path / f"{name}.pcap"
        target.write_bytes(damaged)
        start = time.monotonic()
        stats = check_capture(target)
        assert time.monotonic() - start < 60, name
        if name in ("record-2gb", "block-length-0", "block-length-unaligned"):
            assert stats is not None and stats.frames == 1 and stats.decoded == 0, (name, stats)
            assert stats.skipped == {"damaged-record": 1} and stats.warnings
        if name == "cut-in-last-record":
            assert stats is not None and stats.frames == manifest_counts()[path.name], name
            assert stats.skipped["truncated-record"] == 1 and stats.warnings


def test_every_shared_capture_is_varied():
    assert len(CAPS) == len(manifest_counts()) and all(
        len(variants(p.read_bytes(), p.name)) >= 12 for p in CAPS
    )


# Subprocess sample: the real CLI, every output format, with a timeout (a hang fails the test).
SAMPLE = [
    (CAPS[i % len(CAPS)], name, fmt)
    for i, (name, fmt) in enumerate(
        [
            ("flip-24", "json"),
            ("cut-in-last-record", "json"),
            ("record-2gb", "csv"),
            ("header-damage", "terminal"),
            ("gzip-cut", "json"),
            ("scramble-2pc", "csv"),
            ("last-record-2gb", "terminal"),
            ("cut-in-first-record", "json"),
        ],
        start=5,
    )
]


def accounting_from(fmt: str, stdout: str) -> list[tuple[int, int, int]]:
    """(frames, decoded, sum of skipped) per capture, parsed from one output format."""
    if fmt == "json":
        return [
            (c["frames"], c["decoded"], sum(c["skipped"].values())) for c in json.loads(stdout)["captures"]
        ]
    out = []
    for m in re.finditer(r"frames (\d+), decoded (\d+), skipped ([^\r\n]*)", stdout):
        skipped = (
            0
            if m.group(3).strip() == "none"
            else sum(int(n) for n in re.findall(r"[a-z-]+ (\d+)", m.group(3)))
        )
        out.append((int(m.group(1)), int(m.group(2)), skipped))
    return out


@pytest.mark.parametrize("path, variant, fmt", SAMPLE, ids=lambda v: getattr(v, "name", v))
def test_cli_on_damaged_capture_exits_cleanly(tmp_path, path, variant, fmt):
    damaged = dict(variants(path.read_bytes(), path.name))[variant]
    target = tmp_path / f"{variant}.pcap"
    target.write_bytes(damaged)
    r = cli("audit", target, "--format", fmt, "--expect", "EU")
    assert r.returncode in (0, 1, 2) and "Traceback" not in r.stderr
    if r.returncode == 2:
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("callaudit: error: ")
        assert "internal error" not in r.stderr
        return
    assert r.stderr == ""
    [(frames, decoded, skipped)] = accounting_from(fmt, r.stdout)
    assert frames == decoded + skipped > 0


def test_truncated_last_record_is_counted_and_the_rest_analysed_via_cli_json(tmp_path):
    path = CAPTURES / "ndpi_tls_2_reasms.pcapng"
    data = path.read_bytes()
    whole = json.loads(cli("audit", path, "--format", "json").stdout)
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[:-3])
    r = cli("audit", cut, "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    [cap], [full] = doc["captures"], whole["captures"]
    assert cap["frames"] == full["frames"] == manifest_counts()[path.name]
    assert cap["skipped"] == {**full["skipped"], "truncated-record": 1}
    assert cap["decoded"] == full["decoded"] - 1 and cap["warnings"]
    assert [f["server_name"] for f in doc["flows"]] == [f["server_name"] for f in whole["flows"]]
    assert "i.instagram.com" in [f["server_name"] for f in doc["flows"]]


def test_truncated_last_record_in_every_output_format(tmp_path):
    data = (CAPTURES / "zeek_tls_hrr.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-7])
    for fmt in ("json", "csv", "terminal"):
        r = cli("audit", cut, "--format", fmt)
        assert r.returncode == 0, r.stderr
        assert accounting_from(fmt, r.stdout) == [(19, 18, 1)], fmt
        assert "truncated-record" in r.stdout and "cut short" in r.stdout, fmt
    r = cli("audit", cut, "--format", "html")
    assert r.returncode == 0, r.stderr
    assert re.search(
        r'data-v="19">19</td><td class="num" data-v="18">18</td><td>truncated-record 1</td>', r.stdout
    )
    out = tmp_path / "cut.parquet"
    r = cli("audit", cut, "--format", "parquet", "--out", out)
    assert r.returncode == 0, r.stderr
    import pyarrow.parquet as pq

    [cap] = json.loads(pq.read_schema(out).metadata[b"callaudit"])["captures"]
    assert (cap["frames"], cap["decoded"], cap["skipped"]) == (19, 18, {"truncated-record": 1})


# ---- resource limits -------------------------------------------------------------------------------------


def _gzip_bomb(path: Path, gib: int = 10) -> Path:
    """~10 MB inflating to `gib` GiB of zeros after a pcap header: repeated gzip members, made in a second."""
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    member = gzip.compress(b"\0" * (64 << 20), compresslevel=9, mtime=0)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(header, mtime=0))
        fh.writelines(member for _ in range(gib * 16))
    return path


def test_gzip_bomb_is_one_line_error_fast_without_memory_blowup(tmp_path):
    bomb = _gzip_bomb(tmp_path / "bomb.pcap.gz")
    assert bomb.stat().st_size < 12_000_000
    start = time.monotonic()
    r = cli("audit", bomb, "--format", "json", timeout=120)
    took = time.monotonic() - start
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "gzip bomb" in r.stderr and "internal error" not in r.stderr
    assert took < 60, took
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert peak_mib < 1024, peak_mib  # streamed to a temporary file, never held in memory


def test_gzip_time_cap(tmp_path, monkeypatch):
    path = write_pcap(tmp_path / "slow.pcap", [b"\0" * 60] * 2000, gz=True)
    monkeypatch.setattr(capture, "GZIP_MAX_SECONDS", -1.0)
    with pytest.raises(CallauditError, match="exceeded"):
        list(read_capture(path, CaptureStats(str(path))))


def test_gzip_cut_mid_stream_keeps_what_was_read(tmp_path):
    frames = [
        bytes(Ether() / IP(src="10.0.0.1", dst="8.8.8.8") / UDP(sport=5, dport=53) / (b"x" * i))
        for i in range(400)
    ]
    full = write_pcap(tmp_path / "a.pcap", frames).read_bytes()
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(gzip.compress(full, mtime=0)[:-4000])
    stats = CaptureStats(str(path))
    pkts = list(read_capture(path, stats))
    check_stats(stats)
    assert 0 < len(pkts) < 400 and any("gzip stream damaged" in w for w in stats.warnings)


def test_global_sample_budget_is_counted(tmp_path, monkeypatch):
    frames = [
        bytes(
            Ether()
            / IP(src="10.0.0.1", dst=f"8.8.{i // 250}.{i % 250}")
            / UDP(sport=40000, dport=3478)
            / (b"s" * 1000)
        )
        for i in range(300)
    ]
    path = write_pcap(tmp_path / "many.pcap", frames)
    monkeypatch.setattr(flows, "SAMPLE_BYTES_TOTAL", 100_000)
    monkeypatch.setattr(
        fastpath, "SAMPLE_BYTES_TOTAL", 100_000
    )  # the vectorised reader keeps the same budget
    stats, rows = analyze_capture(path)
    assert len(rows) == 300 and stats.decoded == 300
    assert any("sample budget" in w and "200 payload packets" in w for w in stats.warnings), stats.warnings


def test_sample_memory_is_bounded_per_capture():
    per_flow = 2 * (flows.SAMPLE_PACKETS * capture.MAX_RECORD)
    assert flows.SAMPLE_BYTES_TOTAL <= 1 << 30 < 100_000 * per_flow


# ---- absurd lengths inside captures and protocols --------------------------------------------------------


def _blocks(*blocks: bytes) -> bytes:
    shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    out = struct.pack("<II", 0x0A0D0D0A, 28) + shb + struct.pack("<I", 28)
    return out + b"".join(blocks)


@pytest.mark.parametrize("blen", [0, 4, 8, 13, 30, 0xFFFFFFFC])
def test_pcapng_block_length_that_would_loop_stops(tmp_path, blen):
    idb = struct.pack("<II", 1, 20) + struct.pack("<HHI", 1, 0, 0) + struct.pack("<I", 20)
    bad = struct.pack("<II", 6, blen) + b"\0" * 64
    path = tmp_path / "loop.pcapng"
    path.write_bytes(_blocks(idb, bad))
    for read in (read_packets, read_fast):
        start = time.monotonic()
        stats, pkts = read(path)
        assert pkts == 0 and time.monotonic() - start < 1, read
        check_stats(stats)
        assert stats.frames == 1 and stats.skipped == {"damaged-record": 1} and stats.warnings, read


def read_packets(path: Path) -> tuple[CaptureStats, int]:
    stats = CaptureStats(str(path))
    return stats, len(list(read_capture(path, stats)))


def read_fast(path: Path) -> tuple[CaptureStats, int]:
    """The vectorised reader the pipeline uses: packets counted from its flow table."""
    stats = CaptureStats(str(path))
    table = fastpath.read_table(path, stats, str(path))
    return stats, sum(sum(f.pkts) for f in table.flows.values())


@pytest.mark.parametrize("blen", [0, 12, 13])
def test_pcapng_non_packet_block_with_bad_length_stops(tmp_path, blen):
    path = tmp_path / "idb.pcapng"
    path.write_bytes(_blocks(struct.pack("<III", 1, blen, blen)))
    stats = CaptureStats(str(path))
    assert list(read_capture(path, stats)) == []
    assert stats.frames == 0 and stats.warnings


def test_record_header_claiming_2gb_packet(tmp_path):
    udp = bytes(IP(src="10.0.0.1", dst="8.8.8.8") / UDP(sport=1, dport=2) / b"ok")
    path = write_pcap(tmp_path / "big.pcap", [udp, udp, udp], linktype=101)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 24 + 2 * (16 + len(udp)) + 8, 2 << 30)
    path.write_bytes(bytes(data))
    for read in (read_packets, read_fast):
        stats, pkts = read(path)
        assert pkts == 2, read
        assert stats.skipped == {"damaged-record": 1} and "claims 2147483648 bytes" in stats.warnings[0], read


def _dns_response(name_bytes: bytes) -> bytes:
    """A DNS response with one question and one A answer whose owner name is `name_bytes` (raw wire form)."""
    header = struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0)
    question = b"\x04loop\x00" + struct.pack("!HH", 1, 1)
    answer = name_bytes + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([1, 2, 3, 4])
    return header + question + answer


# The answer's owner name starts at offset 22 (12-byte header, 6-byte question name, type and class).
LOOPS = {
    "self": _dns_response(b"\xc0\x16"),  # a pointer to itself
    "label-then-self": _dns_response(b"\x01a\xc0\x16"),  # a label, then a pointer back to its own start
    "long-chain": _dns_response(b"\x01a" * 60 + b"\xc0\x16"),
    "two-names": struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0)
    + b"\xc0\x12\x00\x01\x00\x01"  # question -> answer
    + b"\xc0\x0c"
    + struct.pack("!HHIH", 1, 1, 60, 4)
    + bytes([1, 2, 3, 4]),  # answer -> question
}


@pytest.mark.parametrize("name", LOOPS)
def test_dns_compression_loop_ends(name):
    from analyzer.protocols import dns

    msg = LOOPS[name]
    start = time.monotonic()
    try:
        pairs = dns.answers(msg)
    except Exception:  # noqa: BLE001 - scapy may refuse the message; it must not loop
        pairs = []
    assert time.monotonic() - start < 2
    assert all(isinstance(a, str) for a, _ in pairs)
    facts = Facts()
    dns.inspect(FlowView("udp", 40000, 53, [Sample(1, 0.0, False, 0, msg)]), facts)
    assert facts.services == ["dns"]


def test_dns_compression_loop_through_cli_is_quiet(tmp_path):
    """scapy logs 'DNS decompression loop detected': the report must not gain stray stderr lines."""
    msg = LOOPS["two-names"]  # scapy logs "DNS decompression loop detected" for this one
    frames = [
        bytes(
            Ether()
            / IP(src="10.0.0.1", dst="9.9.9.9")
            / UDP(sport=40000, dport=53)
            / DNS(rd=1, qd=DNSQR(qname="loop"))
        ),
        bytes(Ether() / IP(src="9.9.9.9", dst="10.0.0.1") / UDP(sport=53, dport=40000) / msg),
    ]
    path = write_pcap(tmp_path / "loop.pcap", frames)
    r = cli("audit", path, "--format", "json")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert json.loads(r.stdout)["captures"][0]["decoded"] == 2


def _client_hello(ext_len_delta: int) -> bytes:
    """A TLS record holding a ClientHello whose extensions length is off by `ext_len_delta`."""
    sni = b"example.org"
    ext = struct.pack("!HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
    body = b"\x03\x03" + b"\0" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += struct.pack("!H", len(ext) + ext_len_delta) + ext
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


@pytest.mark.parametrize("delta", [0, 1, 200, 0xFFFF - 24])
def test_tls_extension_length_past_the_record(delta):
    from analyzer.protocols import tls

    record = _client_hello(delta)
    for cut in (len(record), len(record) - 5):  # also with the record itself cut short
        facts = Facts()
        view = FlowView("tcp", 50000, 443, [Sample(1, 0.0, True, 1000, record[:cut])])
        tls.inspect(view, facts)
        assert facts.server_name in (None, "example.org")
        if delta == 0 and cut == len(record):
            assert facts.server_name == "example.org"


def test_tls_record_length_past_the_stream():
    from analyzer.protocols import tls

    data = b"\x16\x03\x01\xff\xff\x01\xff\xff\xff" + b"\0" * 40
    facts = Facts()
    tls.inspect(FlowView("tcp", 50000, 443, [Sample(1, 0.0, True, 1, data)]), facts)
    assert facts.server_name is None


def test_quic_length_past_the_datagram():
    quic = pytest.importorskip("analyzer.protocols.quic")
    dcid = bytes(range(8))
    # Initial, v1, DCID 8 bytes, SCID 0, token length 0, Length 16383 (2-byte varint) but 40 bytes follow.
    datagram = (
        b"\xc3" + struct.pack("!I", 1) + b"\x08" + dcid + b"\x00" + b"\x00" + b"\x7f\xff" + b"\xaa" * 40
    )
    with pytest.raises(quic.Malformed):
        quic.long_header(datagram, 0)
    facts = Facts()
    view = FlowView(
        "udp", 50000, 443, [Sample(1, 0.0, True, 0, datagram), Sample(2, 0.1, False, 0, datagram)]
    )
    quic.inspect(view, facts)
    assert quic.client_hint(datagram, 50000, 443) in (None, True, False)
    for cut in range(7, len(datagram), 3):
        quic.inspect(FlowView("udp", 50000, 443, [Sample(1, 0.0, True, 0, datagram[:cut])]), Facts())


def test_gzip_ratio_cap_applies_above_the_minimum(tmp_path, monkeypatch):
    monkeypatch.setattr(capture, "GZIP_MIN_CAP", 1 << 20)
    path = tmp_path / "x.pcap.gz"
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    path.write_bytes(gzip.compress(header + b"\0" * (8 << 20), mtime=0))
    with pytest.raises(CallauditError, match="gzip bomb"):
        list(read_capture(path, CaptureStats(str(path))))


def test_file_names_with_odd_bytes_in_every_format(tmp_path):
    import os

    folder = tmp_path / "odd"
    folder.mkdir()
    name = os.fsdecode(b"cap\xff\x1b[31m\xe2\x80\xae=cmd.pcap")
    (folder / name).write_bytes((CAPTURES / "zeek_tls_hrr.pcap").read_bytes())
    for fmt in ("json", "csv", "terminal"):
        r = subprocess.run(
            [sys.executable, "-m", "analyzer", "audit", str(folder), "--format", fmt],
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        out = r.stdout.decode("utf-8")  # valid UTF-8, nothing dropped
        assert "\x1b" not in out, fmt
        if fmt == "json":  # JSON keeps the text exactly (control characters as \\u escapes)
            doc = json.loads(out)
            assert doc["captures"][0]["path"].endswith("cap\\xff\x1b[31m\u202e=cmd.pcap")
            assert doc["flows"][0]["capture"] == doc["captures"][0]["path"]
        else:  # terminal and CSV show reordering and control characters as visible escapes
            assert "\u202e" not in out and "cap\\xff\\x1b[31m\\u202e=cmd.pcap" in out, fmt
    r = subprocess.run(
        [sys.executable, "-m", "analyzer", "audit", str(folder / (name + ".missing"))],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 2 and b"\x1b" not in r.stderr and len(r.stderr.splitlines()) == 1


def test_damage_helpers_find_records():
    """The damage helpers above find records in both formats (guards the test itself)."""
    for p in (CAPTURES / "ndpi_zoom.pcap", CAPTURES / "ndpi_sip.pcap"):
        data = p.read_bytes()
        assert first_record(data)[0] < last_record(data) < len(data)


def test_synthetic_pcapng_variants(tmp_path):
    udp = bytes(Ether() / IP(src="10.0.0.1", dst="8.8.8.8") / UDP(sport=1, dport=53) / (b"q" * 20))
    tcp = bytes(Ether() / IP(src="10.0.0.1", dst="8.8.8.8") / TCP(sport=1, dport=443, flags="S"))
    path = write_pcapng(tmp_path / "s.pcapng", [(0, udp), (0, tcp)] * 5, [1])
    for name, damaged in variants(path.read_bytes(), "synthetic"):
        target = tmp_path / f"{name}.pcapng"
        target.write_bytes(damaged)
        check_capture(target)


def test_policy_and_geoip_file_names_with_odd_bytes(tmp_path):
    import os

    policy = tmp_path / os.fsdecode(b"pol\xff\x1b.toml")
    policy.write_text('expected = ["US"]\n')
    mmdb = tmp_path / os.fsdecode(b"geo\xff.mmdb")
    mmdb.write_bytes((Path(capture.__file__).parent / "data" / "geoip" / "dbip-country.mmdb").read_bytes())
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "analyzer",
            "audit",
            str(CAPTURES / "zeek_tls_hrr.pcap"),
            "--policy",
            str(policy),
            "--geoip",
            str(mmdb),
            "--format",
            "json",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout.decode("utf-8"))
    assert doc["policy"]["source"].endswith("pol\\xff\x1b.toml")
    assert doc["geoip"][0]["name"] == "geo\\xff.mmdb"


def test_undissectable_messages_are_counted_in_the_flow(tmp_path):
    """A DNS response the dissectors cannot read is reported as malformed_messages, not dropped."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from analyzer.pipeline import analyze_capture
    from tests.conftest import write_pcap

    broken = b"\x00\x01\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + b"\x3fabc"  # label runs past the end
    frame = bytes(Ether() / IP(src="8.8.8.8", dst="10.0.0.5") / UDP(sport=53, dport=40000) / broken)
    [row] = analyze_capture(write_pcap(tmp_path / "bad-dns.pcap", [frame]))[1]
    assert row["details"]["malformed_messages"] == 1
