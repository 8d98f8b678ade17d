"""pipeline: memory-saving representations that must not change what a report says."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyzer import pipeline
from analyzer.geo import GeoLookup
from tests.conftest import CAPTURES


def test_equal_simple_details_share_one_object_and_types_stay_apart():
    same: dict = {}
    a = pipeline._shared({"tls_version": "TLS 1.3", "tls_client_version": 771}, same)
    b = pipeline._shared({"tls_version": "TLS 1.3", "tls_client_version": 771}, same)
    assert a is b
    assert pipeline._shared({"flag": True}, same) is not pipeline._shared({"flag": 1}, same)
    assert pipeline._shared({"flag": True}, same)["flag"] is True
    assert pipeline._shared({"a": 1, "b": 2}, same) is not pipeline._shared({"b": 2, "a": 1}, same)  # key order kept
    lists = {"alpn": ["h2"]}
    assert pipeline._shared(lists, same) is lists and pipeline._shared({"alpn": ["h2"]}, same) is not lists


def test_repeated_names_and_empty_lists_become_one_object_each_with_the_same_values():
    def another(text: str) -> str:  # an equal string that is another object, as each batch of flows makes
        return text.encode().decode()

    cols = {"orig_h": ["10.0.0.1", another("10.0.0.1"), "10.0.0.2"], "resp_h": ["1.1.1.1", None, "1.1.1.1"],
            "server_name": [None, "a.example", another("a.example")], "findings": [[], ["note"], []],
            "key_frames": [[], [], [4, 5]], "uid": ["C1", "C2", "C3"]}
    assert cols["orig_h"][0] is not cols["orig_h"][1]
    before = {k: [list(v) if isinstance(v, list) else v for v in col] for k, col in cols.items()}
    same: dict = {}
    pipeline._share_repeats(cols, same)
    assert cols == before
    assert cols["orig_h"][0] is cols["orig_h"][1] and cols["server_name"][1] is cols["server_name"][2]
    assert cols["resp_h"][1] is None
    assert cols["findings"][0] is cols["findings"][2] and cols["key_frames"][0] is cols["key_frames"][1]
    assert cols["findings"][0] is not cols["key_frames"][0]  # one empty list per column
    assert cols["findings"][1] == ["note"] and cols["key_frames"][2] == [4, 5]
    # the next batch of the same capture shares the objects kept from the first
    later = {"orig_h": [another("10.0.0.2")], "resp_h": [another("1.1.1.1")], "server_name": [None],
             "findings": [[]], "key_frames": [[]]}
    pipeline._share_repeats(later, same)
    assert later["orig_h"][0] is cols["orig_h"][2] and later["resp_h"][0] is cols["resp_h"][0]
    assert later["findings"][0] is cols["findings"][0] and later["key_frames"][0] is cols["key_frames"][0]


def test_sort_matches_sort_values_with_ties_in_input_order():
    rng = np.random.default_rng(3)
    n = 500
    df = pd.DataFrame({
        "verdict": rng.choice(["violation", "ok", "unknown", "local", "suspect", "odd"], n),
        "key_exchange": rng.choice(["tls", None], n),
        "orig_bytes": pd.array(rng.integers(0, 3, n), "Int64"), "resp_bytes": pd.array(rng.integers(0, 3, n), "Int64"),
        "capture": rng.choice(["b.pcap", "a.pcap"], n), "first_frame": pd.array(rng.integers(0, 5, n), "Int64"),
        "row": np.arange(n),
    })
    want = df.assign(_v=df["verdict"].map(pipeline.VERDICT_ORDER).fillna(2), _k=df["key_exchange"].isna(),
                     _b=-(df["orig_bytes"] + df["resp_bytes"]))
    want = want.sort_values(["_v", "_k", "_b", "capture", "first_frame"]).drop(columns=["_v", "_k", "_b"])
    assert pipeline._sorted(df)["row"].tolist() == want["row"].tolist()


def test_small_and_big_frames_are_sorted_alike(monkeypatch):
    """Below TAKE_ROWS one df.take, from it on the column-at-a-time `_taken`: the same table either way."""
    with GeoLookup() as geo:
        audit = pipeline.analyze([CAPTURES / "ndpi_zoom.pcap"], geo, None)
    unsorted = audit.flows.sample(frac=1, random_state=1).reset_index(drop=True)
    assert len(unsorted) < pipeline.TAKE_ROWS
    small = pipeline._sorted(unsorted.copy(deep=False))
    monkeypatch.setattr(pipeline, "TAKE_ROWS", 0)
    big = pipeline._sorted(unsorted.copy(deep=False))
    pd.testing.assert_frame_equal(small, big)
    assert [str(t) for t in small.dtypes] == [str(t) for t in big.dtypes]


def test_taken_equals_take_for_every_column_kind_and_empties_the_input():
    with pd.option_context("mode.string_storage", pipeline.STRING_STORAGE):
        df = pd.DataFrame({
            "text": ["a", None, "c", "d"], "count": pd.array([1, None, 3, 4], "Int64"), "ts": [0.5, 1.5, np.nan, 2.0],
            "lists": [[1], [], [2, 3], []], "none": [None] * 4, "flag": [True, None, False, True],
        }, index=[7, 3, 5, 1])
    order = np.array([2, 0, 3, 1])
    want = df.take(order).reset_index(drop=True)
    got = pipeline._taken(df, order)
    pd.testing.assert_frame_equal(got, want)
    assert [str(t) for t in got.dtypes] == [str(t) for t in want.dtypes]
    assert got["lists"][0] is want["lists"][0]  # cells are the same objects, only the order changes
    assert df.columns.empty


def test_number_columns_are_arrays_and_rows_are_python_values():
    path = CAPTURES / "ndpi_zoom.pcap"
    _, cols = pipeline.capture_columns(path, split=False)
    assert isinstance(cols["orig_bytes"], np.ndarray) and cols["orig_bytes"].dtype == np.int64
    _, rows = pipeline.analyze_capture(path)
    assert rows and all(type(r["orig_bytes"]) is int and type(r["first_ts"]) is float for r in rows)
    assert [r["orig_bytes"] for r in rows] == cols["orig_bytes"].tolist()
