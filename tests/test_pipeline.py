"""pipeline: memory-saving representations that must not change what a report says."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyzer import pipeline
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


def test_number_columns_are_arrays_and_rows_are_python_values():
    path = CAPTURES / "ndpi_zoom.pcap"
    _, cols = pipeline.capture_columns(path, split=False)
    assert isinstance(cols["orig_bytes"], np.ndarray) and cols["orig_bytes"].dtype == np.int64
    _, rows = pipeline.analyze_capture(path)
    assert rows and all(type(r["orig_bytes"]) is int and type(r["first_ts"]) is float for r in rows)
    assert [r["orig_bytes"] for r in rows] == cols["orig_bytes"].tolist()
