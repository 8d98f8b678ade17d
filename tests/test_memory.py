"""memory.give_back: safe to call at any time, and it does give freed heap memory back on glibc."""

from __future__ import annotations

import pytest

from analyzer import memory


def _anon_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))


def test_give_back_releases_freed_small_allocations():
    if memory._trim() is None:
        pytest.skip("no malloc_trim in this C library")
    memory.give_back()
    before = _anon_kb()
    junk = [bytearray(2000) for _ in range(40_000)]  # ~80 MB of heap chunks, below the mmap threshold
    del junk[:-1]  # the last one keeps the heap's top in use: only trimming inside the heap helps
    freed = _anon_kb()
    memory.give_back()
    assert freed - _anon_kb() > 40_000  # > 40 MB handed back
    assert _anon_kb() - before < 20_000
