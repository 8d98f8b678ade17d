"""fastpath.read_flows: flows handed on in bounded batches, payloads read back from the file, change nothing."""

from __future__ import annotations

import gzip
import shutil
from dataclasses import astuple

import pytest

from analyzer import fastpath, forked, pipeline
from analyzer.capture import CaptureStats
from tests.conftest import shared_captures

BUSIEST = max(shared_captures(), key=lambda p: p.stat().st_size)


@pytest.fixture
def tiny_batches(monkeypatch):
    """Batches of 3 flows or 2 KiB of samples, one pread per payload: every boundary gets crossed."""
    monkeypatch.setattr(fastpath, "BATCH_FLOWS", 3)
    monkeypatch.setattr(fastpath, "BATCH_SAMPLE_BYTES", 2048)
    monkeypatch.setattr(fastpath, "READ_GAP", 0)
    monkeypatch.setattr(fastpath, "READ_RUN", 1)


def batched(path) -> tuple[fastpath.FlowBatches, list]:
    """The batches, each as the FlowTable its columns stand for."""
    batches = fastpath.read_flows(path, CaptureStats(str(path)))
    try:
        return batches, [columns.to_table(str(path)) for columns in batches]
    finally:
        batches.close()


@pytest.mark.parametrize("path", shared_captures(), ids=lambda p: p.name)
def test_batches_hold_the_whole_table_in_first_frame_order(path, tiny_batches):
    whole = fastpath.read_table(path)
    batches, tables = batched(path)
    assert (batches.unsampled, batches.host) == (whole.unsampled, whole.local_host())
    flows = [(key, flow) for t in tables for key, flow in t.flows.items()]
    assert all(len(t.flows) <= 3 for t in tables)
    assert [f.first_frame for _, f in flows] == sorted(f.first_frame for f in whole.flows.values())
    assert {key: astuple(f) for key, f in flows} == {key: astuple(f) for key, f in whole.flows.items()}


def test_gzip_payloads_are_read_from_the_decompressed_file(tmp_path, tiny_batches):
    packed = tmp_path / (BUSIEST.name + ".gz")
    with open(BUSIEST, "rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    _, plain = batched(BUSIEST)
    _, unpacked = batched(packed)
    assert [astuple(f) for t in unpacked for f in t.flows.values()] == \
        [astuple(f) for t in plain for f in t.flows.values()]


@pytest.mark.parametrize("path", shared_captures()[:6], ids=lambda p: p.name)
def test_rows_do_not_depend_on_the_batch_size(path, monkeypatch):
    _, rows = pipeline.analyze_capture(path)
    monkeypatch.setattr(fastpath, "BATCH_FLOWS", 2)
    monkeypatch.setattr(fastpath, "BATCH_SAMPLE_BYTES", 1)
    _, small = pipeline.analyze_capture(path)
    assert small == rows


@pytest.mark.parametrize("path", shared_captures()[:6], ids=lambda p: p.name)
def test_rows_do_not_depend_on_the_forked_dissector(path, monkeypatch):
    """Small batches, dissected alternately by a forked child and this process, merge to the same columns."""
    monkeypatch.setattr(fastpath, "BATCH_FLOWS", 2)
    monkeypatch.setattr(fastpath, "BATCH_SAMPLE_BYTES", 1)
    monkeypatch.setattr(forked, "cores", lambda: 2)
    stats, alone = pipeline.capture_columns(path, split=False)
    split_stats, split = pipeline.capture_columns(path, split=True)
    assert {k: pipeline._as_list(v) for k, v in split.items()} == {k: pipeline._as_list(v) for k, v in alone.items()}
    assert (split_stats.frames, split_stats.warnings) == (stats.frames, stats.warnings)


@pytest.mark.parametrize("seed", range(12))
def test_host_is_the_busiest_address_first_seen_among_equals(tmp_path, seed):
    """`host` (numpy) picks what FlowTable.local_host (a Counter) picks, ties included; IPv4 and IPv6
    addresses with the same low bits stay apart."""
    import random

    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    from tests.conftest import write_pcap

    rnd = random.Random(seed)
    pool = ["10.0.0.1", "10.0.0.2", "0.0.0.1", "192.0.2.7", "::1", "::10.0.0.1", "2001:db8::1", "2001:db8::2"]
    frames = []
    for i in range(rnd.randrange(1, 14)):
        a, b = rnd.sample([h for h in pool if ":" in h] if rnd.random() < 0.5 else
                          [h for h in pool if ":" not in h], 2)
        ip = IPv6(src=a, dst=b) if ":" in a else IP(src=a, dst=b)
        frames.append(bytes(Ether() / ip / UDP(sport=1000 + i, dport=2000) / b"x"))
    path = write_pcap(tmp_path / "ties.pcap", frames)
    batches = fastpath.read_flows(path, CaptureStats(str(path)))
    batches.close()
    assert batches.host == fastpath.read_table(path).local_host()
