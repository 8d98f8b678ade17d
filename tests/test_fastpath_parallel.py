"""fastpath's two-process reading of big pcaps: the second half, read in a forked process and joined, gives
exactly the table, counts and warnings of reading the file in one process, wherever the split falls."""

from __future__ import annotations

import struct
from dataclasses import astuple

import numpy as np
import pytest

from analyzer import fastpath, flows, forked
from analyzer.capture import CaptureStats
from tests.conftest import shared_captures

PCAPS = [p for p in shared_captures() if p.suffix == ".pcap"]
BIGGEST = max(PCAPS, key=lambda p: p.stat().st_size)


@pytest.fixture
def two_cores(monkeypatch):
    """Every pcap counts as big, and there are two cores (the split is real: a forked process)."""
    monkeypatch.setattr(fastpath, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(forked, "cores", lambda: 2)


def sampling(monkeypatch, **values) -> None:
    """Set sampling limits (SAMPLE_BYTES_TOTAL, SAMPLE_PACKETS, ...) in flows and in fastpath, which copies them."""
    for name, value in values.items():
        for module in (flows, fastpath):
            monkeypatch.setattr(module, name, value)


def read(path, parallel: bool):
    stats = CaptureStats(str(path))
    table = fastpath.read_table(path, stats, parallel=parallel)
    return [(key, astuple(f)) for key, f in table.flows.items()], table.sampled_total, table.unsampled, stats.as_dict()


def boundaries(path) -> list[int]:
    """Record offsets of a little-endian microsecond pcap, walked one by one."""
    data = path.read_bytes()
    out, off = [], 24
    while off + 16 <= len(data):
        out.append(off)
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
    return out


@pytest.mark.parametrize("path", PCAPS, ids=lambda p: p.name)
def test_two_halves_read_the_same_as_one_pass(path, two_cores):
    assert read(path, True) == read(path, False)


@pytest.mark.parametrize("where", [0.01, 0.3, 0.5, 0.77, 0.999])
def test_any_record_boundary_gives_the_same_result(where, two_cores, monkeypatch):
    offsets = boundaries(BIGGEST)
    at = offsets[int(where * (len(offsets) - 1))]
    monkeypatch.setattr(fastpath, "_split_point", lambda *_a: at)
    joined = []
    real = fastpath.FastTable.absorb
    monkeypatch.setattr(fastpath.FastTable, "absorb", lambda self, *a: joined.append(True) or real(self, *a))
    assert read(BIGGEST, True) == read(BIGGEST, False)
    assert joined  # the second half was really read in the other process and joined


@pytest.mark.parametrize("shift", [1, 7, 16])
def test_a_wrong_guess_is_refuted_and_read_on_in_order(shift, two_cores, monkeypatch):
    offsets = boundaries(BIGGEST)
    monkeypatch.setattr(fastpath, "_split_point", lambda *_a: offsets[len(offsets) // 2] + shift)
    assert read(BIGGEST, True) == read(BIGGEST, False)


def test_a_capture_cut_short_numbers_its_warning_from_the_start(two_cores, tmp_path):
    cut = tmp_path / "cut.pcap"
    data = BIGGEST.read_bytes()
    cut.write_bytes(data[:boundaries(BIGGEST)[-3] + 30])  # the third-last record loses its payload
    one, two = read(cut, False), read(cut, True)
    assert two == one
    assert any("frame" in w for w in one[3]["warnings"])


@pytest.mark.parametrize("share", [0.3, 0.7])
def test_a_sample_budget_spent_across_the_split_reads_on_in_order(share, two_cores, monkeypatch):
    budget = int(read(BIGGEST, False)[1] * share)  # a share of what the capture would keep
    sampling(monkeypatch, SAMPLE_BYTES_TOTAL=budget)
    one, two = read(BIGGEST, False), read(BIGGEST, True)
    assert one[2] > 0  # the budget was reached
    assert two == one


@pytest.mark.parametrize(("packets", "nbytes"), [(3, 1 << 20), (1000, 1500), (5, 700)])
def test_per_flow_caps_reached_across_the_split_join_exactly(packets, nbytes, two_cores, monkeypatch):
    """Flows whose packet or byte cap is reached only in the second part: the join keeps exactly the samples
    a one-process read keeps (what the first part kept counts against the cap)."""
    sampling(monkeypatch, SAMPLE_PACKETS=packets, SAMPLE_BYTES=nbytes)
    offsets = boundaries(BIGGEST)
    monkeypatch.setattr(fastpath, "_split_point", lambda *_a: offsets[len(offsets) // 3])
    joined = []
    real = fastpath.FastTable.absorb
    monkeypatch.setattr(fastpath.FastTable, "absorb", lambda self, *a: joined.append(real(self, *a)) or joined[-1])
    assert read(BIGGEST, True) == read(BIGGEST, False)
    assert joined == [True]


def test_a_second_part_past_the_budget_by_itself_is_given_up(two_cores, monkeypatch):
    """absorb would refuse it: the other process stops reading once it passes the budget and sends no table,
    and this process reads on, with the one-pass result."""
    one_pass = read(BIGGEST, False)
    budget = one_pass[1] // 10
    sampling(monkeypatch, SAMPLE_BYTES_TOTAL=budget)
    offsets = boundaries(BIGGEST)
    monkeypatch.setattr(fastpath, "_split_point", lambda *_a: offsets[len(offsets) // 4])
    monkeypatch.setattr(fastpath, "BATCH", 64)  # it gives up between batches
    sent = []
    real = forked.Worker.result
    monkeypatch.setattr(forked.Worker, "result", lambda self: sent.append(real(self)) or sent[-1])
    assert read(BIGGEST, True) == read(BIGGEST, False)
    table, part = sent[0]
    assert table is None
    assert 0 < part.frames < len(offsets) - len(offsets) // 4  # given up before the end


def test_a_failed_second_process_is_replaced_by_reading_on(two_cores, monkeypatch):
    """If the forked reader dies (killed, out of memory), this process reads the second half itself."""
    import os

    real = fastpath._read_pcap

    def dying(buf, v, stats, decoder, fast, *fmt, start=24, stop=None):
        if start != 24 and os.getpid() != parent:
            os._exit(9)  # the child, reading the second half
        return real(buf, v, stats, decoder, fast, *fmt, start=start, stop=stop)

    parent = os.getpid()
    monkeypatch.setattr(fastpath, "_read_pcap", dying)
    assert read(BIGGEST, True) == read(BIGGEST, False)


def test_progress_reaches_the_end_of_the_file(two_cores):
    seen = []
    fastpath.read_table(BIGGEST, CaptureStats(str(BIGGEST)), parallel=True,
                        progress=lambda _path, frames, offset, _done: seen.append((frames, offset)))
    assert seen[-1] == (read(BIGGEST, False)[3]["frames"], BIGGEST.stat().st_size)


def test_a_hash_naming_another_flow_is_a_collision():
    """absorb checks every known hash against the key of the flow it names, as add does."""
    import copy

    path = PCAPS[0]
    table, handle = fastpath._read(path, CaptureStats(str(path)), str(path), None)
    handle.close()
    assert table.g.n >= 2
    other = copy.deepcopy(table)
    other.known_gid = other.known_gid[::-1].copy()  # each hash now names another flow
    with pytest.raises(fastpath._Collision):
        table.absorb(other, 1000)


def test_colliding_hashes_fall_back_to_the_exact_slow_path(monkeypatch):
    """With one hash per transport, flows collide across batches: read_flows redoes the capture packet by
    packet and still gives the one true table."""
    path = min(PCAPS, key=lambda p: p.stat().st_size)
    want = read(path, False)
    monkeypatch.setattr(fastpath, "BATCH", 1)
    monkeypatch.setattr(fastpath, "_mix", lambda tag, *_words: tag.astype(np.uint64))
    calls = []
    real = fastpath.FastTable._same_keys
    monkeypatch.setattr(fastpath.FastTable, "_same_keys", lambda self, *a: calls.append(1) or real(self, *a))
    got = read(path, False)
    assert calls and got[0] == want[0] and got[3] == want[3]


def splittable(path) -> bool:
    """Would the big-pcap reader split this file at its middle?"""
    from analyzer.capture import _open_bytes, pcap_header

    stats = CaptureStats(str(path))
    buf, handle = _open_bytes(path, stats)
    try:
        if bytes(buf[:4]) not in fastpath.PCAP_MAGICS:
            return False
        fmt = pcap_header(buf, stats)
        return fastpath._split_point(fastpath._Views(buf, fmt[0]), buf, *fmt) > 0
    finally:
        buf.close()
        handle.close()


def reaped(worker) -> bool:
    """Has the read-ahead's process been ended and waited for (no zombie left behind)?"""
    return worker.pid is None


@pytest.mark.parametrize("path", PCAPS, ids=lambda p: p.name)
def test_a_read_ahead_gives_the_one_pass_result(path, two_cores, monkeypatch):
    """The second part, read by a process started before anything else, joins exactly as `_read_halves`'."""
    joined = []
    real = fastpath.FastTable.absorb
    monkeypatch.setattr(fastpath.FastTable, "absorb", lambda self, *a: joined.append(True) or real(self, *a))
    ahead = fastpath.read_ahead(path)
    if ahead is None:  # only where reading it in two halves is refused too (pcapng inside, no boundary found)
        assert not splittable(path)
        return
    stats = CaptureStats(str(path))
    table = fastpath.read_table(path, stats, stats.path, parallel=True, ahead=ahead)
    got = [(key, astuple(f)) for key, f in table.flows.items()], table.sampled_total, table.unsampled, stats.as_dict()
    assert reaped(ahead.worker)
    assert got == read(path, False)
    assert joined or stats.fragments  # joined, unless IP fragments cross the split (then read on in order)


def test_a_read_ahead_gives_the_larger_part_to_the_early_process(two_cores, monkeypatch):
    size = BIGGEST.stat().st_size
    monkeypatch.setattr(fastpath, "READ_AHEAD_LEAD", size // 5)
    ahead = fastpath.read_ahead(BIGGEST)
    try:
        assert 0.25 * size <= ahead.at < 0.45 * size  # about (size - lead) / 2, on a record boundary
        assert ahead.at in boundaries(BIGGEST)
    finally:
        ahead.close()
    assert reaped(ahead.worker)


def test_a_read_ahead_of_another_file_is_ended_and_not_used(two_cores):
    other = PCAPS[0] if PCAPS[0] != BIGGEST else PCAPS[1]
    ahead = fastpath.read_ahead(other)
    stats = CaptureStats(str(BIGGEST))
    table = fastpath.read_table(BIGGEST, stats, stats.path, ahead=ahead)
    assert reaped(ahead.worker)
    assert [(key, astuple(f)) for key, f in table.flows.items()] == read(BIGGEST, False)[0]


def test_a_file_changed_since_the_read_ahead_is_read_afresh(two_cores, tmp_path):
    """A capture replaced after the read-ahead began (same name, other bytes) is read again, in one pass."""
    path = tmp_path / "c.pcap"
    data = BIGGEST.read_bytes()
    path.write_bytes(data)
    ahead = fastpath.read_ahead(path)
    cut = data[:boundaries(BIGGEST)[len(boundaries(BIGGEST)) // 3]]
    (tmp_path / "new.pcap").write_bytes(cut)
    (tmp_path / "new.pcap").replace(path)  # shorter: the forked reader's part is not in this file any more
    stats = CaptureStats(str(path))
    table = fastpath.read_table(path, stats, stats.path, ahead=ahead)
    assert reaped(ahead.worker)
    assert ahead.claim(path, stats.path) is None
    expect = tmp_path / "expect.pcap"
    expect.write_bytes(cut)
    ref = read(expect, False)
    assert [(key, astuple(f)) for key, f in table.flows.items()] == ref[0]
    assert stats.frames == ref[3]["frames"]


@pytest.mark.parametrize("path", [
    PCAPS[0].parent / "MANIFEST.md",  # not a capture: left to the usual reader, which reports it
    next(p for p in shared_captures() if p.suffix == ".pcapng"),  # pcapng: read in one process
])
def test_no_read_ahead_for_what_is_not_a_pcap(path, two_cores):
    assert fastpath.read_ahead(path) is None


def test_no_read_ahead_for_a_small_pcap_or_one_core(monkeypatch):
    assert fastpath.read_ahead(BIGGEST) is None  # below PARALLEL_BYTES
    monkeypatch.setattr(fastpath, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(forked, "cores", lambda: 1)
    assert fastpath.read_ahead(BIGGEST) is None


def test_no_read_ahead_for_a_gzipped_pcap(two_cores, tmp_path, monkeypatch):
    """Not decompressed to be read ahead (and then again to be read): the usual reader does it once."""
    import gzip

    from analyzer import capture

    path = tmp_path / "c.pcap.gz"
    path.write_bytes(gzip.compress(BIGGEST.read_bytes()))
    monkeypatch.setattr(capture, "_gunzip", lambda *_a: pytest.fail("decompressed for a read-ahead"))
    assert fastpath.read_ahead(path) is None
