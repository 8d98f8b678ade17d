"""forked.ordered_map: results in the items' order whoever computed them; a child's error is raised here."""

from __future__ import annotations

import os

import pytest

from analyzer import forked


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(forked, "cores", lambda: 2)


def test_results_come_in_order_from_both_processes(two_cores):
    me = os.getpid()
    out = list(forked.ordered_map(lambda i: (i * i, os.getpid() == me), range(7)))
    assert [v for v, _ in out] == [i * i for i in range(7)]
    assert [here for _, here in out] == [i % 2 == 0 for i in range(7)]


def test_without_split_everything_runs_here(two_cores):
    me = os.getpid()
    assert list(forked.ordered_map(lambda i: os.getpid() == me, range(4), split=False)) == [True] * 4


def test_an_error_in_the_child_is_raised_in_the_parent(two_cores):
    def fn(i: int) -> int:
        if i == 3:
            raise ValueError("bad item 3")
        return i

    with pytest.raises(ValueError, match="bad item 3"):
        list(forked.ordered_map(fn, range(6)))


def test_stopping_early_ends_the_child(two_cores):
    it = forked.ordered_map(lambda i: i, range(100))
    assert next(it) == 0
    it.close()  # the child, blocked writing its next result, is ended and reaped


def test_the_child_runs_ahead_while_the_parent_is_busy(two_cores):
    """The widened pipe takes the child's next results while the parent still works on its own item."""
    import time

    def fn(i: int) -> tuple[float, bytes]:
        if i == 0:
            time.sleep(0.5)  # the parent's first item: meanwhile the child does items 1, 3 and 5
        return time.monotonic(), bytes(100_000)

    done = [at for at, _ in forked.ordered_map(fn, range(6))]
    parent_first = done[0]
    assert all(done[i] < parent_first for i in (1, 3, 5))  # 300 KB: past a default 64 KiB pipe


def test_widen_is_harmless_where_it_cannot(monkeypatch):
    r, w = os.pipe()
    try:
        monkeypatch.setattr(forked, "PIPE_BYTES", 1 << 30)  # above the system limit: refused, and ignored
        forked._widen(w)
        os.write(w, b"x")
        assert os.read(r, 1) == b"x"
    finally:
        os.close(r)
        os.close(w)
