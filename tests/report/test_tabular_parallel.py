"""report/tabular.py: JSON and CSV made on two processes (a forked child makes every other chunk) are
byte for byte the sequential text, whatever the number of chunks and wherever the last one ends."""

from __future__ import annotations

import dataclasses
import io
import os

import pandas as pd
import pytest

from analyzer import forked
from analyzer.geo import GeoLookup
from analyzer.pipeline import Audit, analyze
from analyzer.report import tabular
from tests.conftest import shared_captures
from tests.report import test_tabular_cells as cells

WRITERS = {"json": tabular.to_json, "csv": tabular.to_csv}
PARALLEL_CHUNKS = tabular.PARALLEL_CHUNKS


def slow(fmt: str, audit: Audit) -> str:
    """The reference, cell by cell through the standard library (no chunks, no forks)."""
    if fmt == "json":
        return cells.slow_json(audit)
    return "".join(f"# {line}\r\n" for line in tabular.accounting_lines(audit)) + cells.slow_csv(audit)


@pytest.fixture(scope="module")
def captured() -> Audit:
    """A real report: every shared capture (a few hundred flows, every column filled by some flow)."""
    with GeoLookup() as geo:
        return analyze(shared_captures(), geo, None)


def rows_of(audit: Audit, rows: int) -> Audit:
    return dataclasses.replace(audit, flows=audit.flows.iloc[:rows].reset_index(drop=True))


@pytest.fixture
def chunk_makers(monkeypatch, tmp_path):
    """Two cores whatever the machine, and a child from two chunks on; `read()` gives {first row of a chunk:
    pid of the process that made it} for the chunks made since the last read (the child logs to a file)."""
    monkeypatch.setattr(forked, "cores", lambda: 2)
    monkeypatch.setattr(tabular, "PARALLEL_CHUNKS", 2)
    log = tmp_path / "chunks.log"
    original = tabular._chunked

    def chunked(df, column, missing):
        starts, chunk = original(df, column, missing)

        def logged(start: int) -> list[list]:
            with open(log, "a") as fh:
                fh.write(f"{start} {os.getpid()}\n")
            return chunk(start)

        return starts, logged

    monkeypatch.setattr(tabular, "_chunked", chunked)

    def read() -> dict[int, int]:
        lines = log.read_text().split() if log.exists() else []
        log.unlink(missing_ok=True)
        made = {int(s): int(p) for s, p in zip(lines[::2], lines[1::2], strict=True)}
        assert len(made) == len(lines) // 2, "a chunk was made twice"
        return made

    return read


def sequential(write, audit: Audit, monkeypatch) -> str:
    with monkeypatch.context() as mp:
        mp.setattr(tabular, "PARALLEL_CHUNKS", 10**9)
        return write(audit)


def assert_split(made: dict[int, int], chunk: int, rows: int) -> None:
    """Every chunk made once; with two chunks or more, the odd ones in another process."""
    starts = list(range(0, rows, chunk))
    assert sorted(made) == starts
    forking = len(starts) >= tabular.PARALLEL_CHUNKS
    assert [made[s] != os.getpid() for s in starts] == [forking and i % 2 == 1 for i in range(len(starts))]


# rows, chunk: one chunk (exactly full, or not), the last chunk ending on the last row (2 or 3 chunks), an
# odd and an even number of chunks with a short last one (of 1 row), one row per chunk, many chunks
SHAPES = [(12, 12), (12, 20), (12, 6), (12, 4), (11, 4), (13, 4), (9, 1), (None, 7), (None, 64)]


@pytest.mark.parametrize("fmt", list(WRITERS))
@pytest.mark.parametrize(("rows", "chunk"), SHAPES)
def test_two_processes_write_the_sequential_bytes(fmt, rows, chunk, captured, chunk_makers, monkeypatch):
    audit = rows_of(captured, rows or len(captured.flows))
    rows = len(audit.flows)
    write = WRITERS[fmt]
    reference = slow(fmt, audit)
    assert len(reference) > 1000 and reference.count(audit.flows.loc[rows - 1, "uid"]) >= 1
    assert write(audit) == reference  # one chunk of the default size
    chunk_makers()
    monkeypatch.setattr(tabular, "CHUNK_ROWS", chunk)
    monkeypatch.setattr(tabular, "TEXT_ROWS", 3)  # JSON texts end inside chunks too
    alone = sequential(write, audit, monkeypatch)
    assert all(pid == os.getpid() for pid in chunk_makers().values())
    both = write(audit)
    assert_split(chunk_makers(), chunk, rows)
    assert alone == reference
    assert both.encode("utf-8") == reference.encode("utf-8")


@pytest.mark.parametrize("chunk", [1, 3, 5])
@pytest.mark.parametrize("fmt", list(WRITERS))
def test_cells_that_print_differently_keep_their_text_in_the_child(fmt, chunk, chunk_makers, monkeypatch):
    audit = cells.audit_of(cells.frame())  # True / 1 / 1.0, 0.0 / -0.0, NaN, pd.NA, numpy scalars, ...
    monkeypatch.setattr(tabular, "CHUNK_ROWS", chunk)
    both = WRITERS[fmt](audit)
    assert_split(chunk_makers(), chunk, len(audit.flows))
    assert both == slow(fmt, audit)


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_small_reports_are_made_here(fmt, captured, chunk_makers, monkeypatch):
    """Below PARALLEL_CHUNKS chunks a fork costs more than it saves: all chunks are made in this process."""
    monkeypatch.setattr(tabular, "PARALLEL_CHUNKS", PARALLEL_CHUNKS)
    assert PARALLEL_CHUNKS >= 2
    for chunks in (PARALLEL_CHUNKS - 1, PARALLEL_CHUNKS):
        audit = rows_of(captured, 3 * chunks)
        monkeypatch.setattr(tabular, "CHUNK_ROWS", 3)
        assert WRITERS[fmt](audit) == slow(fmt, audit)
        assert_split(chunk_makers(), 3, 3 * chunks)


def test_lone_surrogate_from_the_child_is_kept(chunk_makers, monkeypatch):
    """Text the child pickles comes back unchanged, even when it is not valid UTF-8."""
    df = pd.DataFrame({"uid": ["C0", "C1", "C2", "C3"], "name": cells.objects("a", "b", "bad \udcff", "\ud800")})
    audit = cells.audit_of(df)
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 2)
    for fmt, write in WRITERS.items():
        both = write(audit)
        assert chunk_makers()[2] != os.getpid(), fmt
        assert both == sequential(write, audit, monkeypatch), fmt
        chunk_makers()
        assert "\udcff" in both and "\ud800" in both, fmt


def test_error_in_the_child_is_raised_here(chunk_makers, monkeypatch):
    audit = cells.audit_of(pd.DataFrame({"uid": ["C0", "C1", "C2", "C3"],
                                         "bad": cells.objects({"a": 1}, None, {"a": 2}, {"a": object()})}))
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 2)
    with pytest.raises(TypeError):
        tabular.to_json(audit)
    assert chunk_makers()[2] != os.getpid()


class Writes(io.StringIO):
    """Records the length and flow count of each text written."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def write(self, s: str) -> int:
        self.sizes.append((len(s), s.count('\n      "uid": ')))
        return super().write(s)


def test_json_flows_are_written_a_few_hundred_rows_at_a_time(captured, chunk_makers, monkeypatch):
    """No text of a whole chunk (~6 MB on a big report), in either process: memory stays bounded."""
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 64)
    monkeypatch.setattr(tabular, "TEXT_ROWS", 8)
    out = Writes()
    tabular.write_json(captured, out)
    assert_split(chunk_makers(), 64, len(captured.flows))
    assert sum(n for _, n in out.sizes) == len(captured.flows)
    assert max(n for _, n in out.sizes) == 8
    assert out.getvalue() == slow("json", captured)
