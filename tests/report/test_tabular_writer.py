"""report/tabular.py: the column-wise JSON writer gives exactly the text json.dumps(indent=2) gives."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from analyzer.pipeline import Audit
from analyzer.report import tabular


def slow_json(audit: Audit) -> str:
    """The reference: one dict per row through `_clean`, then the standard library's indenting encoder."""
    records = [{k: tabular._clean(v) for k, v in row.items()} for row in audit.flows.to_dict(orient="records")]
    return json.dumps(tabular.document(audit, records), indent=2, ensure_ascii=False) + "\n"


def frame() -> pd.DataFrame:
    df = pd.DataFrame({
        "uid": ["C1", "C2", "C3", "C4"],
        "text": ["plain", None, "quote \" backslash \\ tab \t ünï \u2028", "%s %d {}"],
        "count": pd.array([1, None, 3, 2**40], dtype="Int64"),
        "whole": np.array([0, -1, 7, 2**62], dtype=np.int64),
        "real": [1.5, float("nan"), 1e-7, 123456789.125],
        "edge": [math.inf, -math.inf, 0.1, -0.0],
        "flag": [True, False, True, False],
        "mixed": [True, None, np.bool_(False), np.int64(5)],
        "frames": [[1, 2], [], (3, float("nan")), [np.int64(4), [5, None]]],
        "details": [{"a": 1, "nested": {"b": [1, "x"], "c": {}}}, {}, {1: "int key", 2.5: "float key"},
                    {"nan": float("nan"), "t": (1, 2), None: True}],
        "maybe": [None, float("nan"), pd.NA, "x"],
    })
    df["text"] = df["text"].astype("str")
    return df


def audit_of(df: pd.DataFrame) -> Audit:
    return Audit(captures=[], geoip=[], policy=None, flows=df, summary={"flows": len(df), "text": "%s"})


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_same_text_as_json_dumps(chunk, monkeypatch):
    monkeypatch.setattr(tabular, "CHUNK_ROWS", chunk)
    audit = audit_of(frame())
    assert tabular.to_json(audit) == slow_json(audit)


@pytest.mark.parametrize("df", [frame().iloc[0:0], pd.DataFrame(index=range(2)), frame()[["real"]],
                                frame()[["count"]], frame()[["flag"]]], ids=["empty", "no-columns", "real",
                                                                             "count", "flag"])
def test_same_text_for_odd_frames(df):
    audit = audit_of(df)
    assert tabular.to_json(audit) == slow_json(audit)


def test_records_are_the_cleaned_rows():
    audit = audit_of(frame())
    expected = [{k: tabular._clean(v) for k, v in row.items()} for row in audit.flows.to_dict(orient="records")]
    got = tabular.flow_records(audit)
    assert json.dumps(got, sort_keys=False, default=str) == json.dumps(expected, sort_keys=False, default=str)
