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
    monkeypatch.setattr(flows, "SAMPLE_BYTES_TOTAL", budget)
    monkeypatch.setattr(fastpath, "SAMPLE_BYTES_TOTAL", budget)
    one, two = read(BIGGEST, False), read(BIGGEST, True)
    assert one[2] > 0  # the budget was reached
    assert two == one


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
