"""report/tabular.py: texts made once per distinct cell stay exact where equal values print differently
(True == 1 == 1.0, 0.0 == -0.0, {1: x} and {"1": x}, [nan] and [None], numpy scalars, pd.NA)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest

from analyzer.pipeline import Audit
from analyzer.report import tabular
from analyzer.report.escape import csv_cell


def objects(*values: object) -> pd.Series:
    return pd.Series(list(values), dtype=object)


def frame() -> pd.DataFrame:
    nan = float("nan")
    return pd.DataFrame({
        "uid": [f"C{i}" for i in range(8)],
        "numbers": objects(True, 1, 1.0, np.int64(1), None, False, 0, nan),
        "ints_bools": objects(1, True, 0, False, 1, True, None, 0),
        "zeros": objects(0.0, -0.0, 0.0, nan, nan, 1.5, -0.0, None),
        "words_and_nan": objects("a", nan, "a", "=1", nan, "b", "-x", "a"),
        "lists": objects([1, 2], (1, 2), [1.0, 2], [True, 2], [nan], [None], [], [np.int64(3)]),
        "int_lists": objects([1, 2], [], [3], [1, 2], [], [-4], [2**70], []),
        "str_lists": objects(["a", "b"], [], ["=x"], ["a", "b"], ["\u202e"], [], ["a"], ["b", "a"]),
        "mixed_lists": objects([1, "1"], ["1", 1], [1, "1"], [], [True], [1], ["1"], [1, "1"]),
        "nested": objects([[1]], [[1.0]], [{"a": 1}], [{"a": True}], [], [[]], [(1,)], [[nan]]),
        "dicts": objects({1: "a"}, {"1": "a"}, {"a": 1}, {"a": 1.0}, {"a": True}, {"a": -0.0}, {}, {"a": 1}),
        "sorted_keys": objects({"10": 1, "9": 2}, {10: 1, 9: 2}, {"9": 2, "10": 1}, None, {}, None,
                               {"b": [1, {"c": nan}]}, {"b": [1, {"c": None}]}),
        "na_objects": objects(pd.NA, None, "x", 1, np.bool_(True), nan, np.float64(2.5), "x"),
        "text": pd.array(["a", None, "a", "=1", "b", None, "a", "\u202eb"], dtype="string"),
        "count": pd.array([1, None, 1, 2, 2**62, None, 1, -1], dtype="Int64"),
        "flag": pd.array([True, None, False, True, True, None, False, True], dtype="boolean"),
        "real": [0.0, -0.0, float("inf"), -float("inf"), nan, 1e-7, 0.1, 2.0],
    })


def audit_of(df: pd.DataFrame) -> Audit:
    return Audit(captures=[], geoip=[], policy=None, flows=df, summary={"flows": len(df)})


def slow_json(audit: Audit) -> str:
    records = [{k: tabular._clean(v) for k, v in row.items()} for row in audit.flows.to_dict(orient="records")]
    return json.dumps(tabular.document(audit, records), indent=2, ensure_ascii=False) + "\n"


def slow_csv(audit: Audit) -> str:
    """The reference: every cell through `_clean`, `_cell` and `csv_cell` on its own."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(list(audit.flows.columns))
    for row in audit.flows.to_dict(orient="records"):
        writer.writerow([csv_cell(tabular._cell(tabular._clean(v))) for v in row.values()])
    return out.getvalue()


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_json_cells_that_compare_equal_keep_their_own_text(chunk, monkeypatch):
    monkeypatch.setattr(tabular, "CHUNK_ROWS", chunk)
    audit = audit_of(frame())
    assert tabular.to_json(audit) == slow_json(audit)


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_csv_cells_that_compare_equal_keep_their_own_text(chunk, monkeypatch):
    monkeypatch.setattr(tabular, "CHUNK_ROWS", chunk)
    audit = audit_of(frame())
    assert tabular.to_csv(audit) == slow_csv(audit)


@pytest.mark.parametrize("column", list(frame().columns))
def test_each_column_alone(column):
    audit = audit_of(frame()[[column]])
    assert tabular.to_json(audit) == slow_json(audit)
    assert tabular.to_csv(audit) == slow_csv(audit)


def test_records_keep_their_values():
    audit = audit_of(frame())
    expected = [{k: tabular._clean(v) for k, v in row.items()} for row in audit.flows.to_dict(orient="records")]
    assert repr(tabular.flow_records(audit)) == repr(expected)


def test_unserialisable_cell_still_raises():
    audit = audit_of(pd.DataFrame({"uid": ["C1", "C2"], "bad": objects({"a": 1}, {"a": object()})}))
    with pytest.raises(TypeError):
        tabular.to_json(audit)
