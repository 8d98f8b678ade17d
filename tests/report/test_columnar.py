"""Parquet and JSON Lines: what pandas and jq users get, and reading a saved audit back."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analyzer.errors import CallauditError
from analyzer.jurisdiction import policy_from_expect
from analyzer.pipeline import STRING_STORAGE, analyze
from analyzer.report import columnar
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def samples(geo):
    return analyze(
        [SAMPLES / "zoom_call.pcap", SAMPLES / "webrtc_relay.pcapng"], geo, policy_from_expect("US,CA")
    )


def normalised(df: pd.DataFrame, path) -> pd.DataFrame:
    """What `pd.read_parquet` gives, in the pipeline's types, using the schema metadata (README: Parquet):
    Arrow lists arrive as numpy arrays (-> lists); `json_columns` are JSON text (-> dicts); columns that
    were Python objects (`dtypes` says "object") arrive as typed columns (-> objects, None for missing);
    text arrives in Arrow storage (-> STRING_STORAGE)."""
    meta = json.loads(pq.read_schema(path).metadata[b"callaudit"])
    df = df.copy()
    for col in meta["list_columns"]:
        df[col] = [v.tolist() for v in df[col]]
    for col in meta["json_columns"]:
        df[col] = [json.loads(v) if isinstance(v, str) else None for v in df[col]]
    rest = [
        c
        for c, t in meta["dtypes"].items()
        if t == "object" and c not in meta["list_columns"] + meta["json_columns"]
    ]
    for col in rest:
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    text = pd.StringDtype(STRING_STORAGE, na_value=float("nan"))  # text as the pipeline stores it
    df.columns = df.columns.astype(text)
    for col in df.columns:
        if isinstance(df[col].dtype, pd.StringDtype):
            df[col] = df[col].astype(text)
    return df


def test_parquet_reads_back_identically_with_plain_pandas(samples, tmp_path):
    path = tmp_path / "flows.parquet"
    columnar.write_parquet(samples, path)
    pd.testing.assert_frame_equal(normalised(pd.read_parquet(path), path), samples.flows)
    schema = pq.read_schema(path)
    assert pa.types.is_list(schema.field("key_frames").type)
    assert schema.field("key_frames").type.value_type == pa.int64()
    assert pa.types.is_list(schema.field("findings").type)
    assert schema.field("findings").type.value_type == pa.string()
    assert pa.types.is_string(schema.field("details").type) or pa.types.is_large_string(
        schema.field("details").type
    )


def test_saved_audit_is_the_same_audit(samples, tmp_path):
    path = tmp_path / "flows.parquet"
    columnar.write_parquet(samples, path)
    back = columnar.read_parquet([path])
    pd.testing.assert_frame_equal(back.flows, samples.flows)
    assert [c.as_dict() for c in back.captures] == [c.as_dict() for c in samples.captures]
    assert back.geoip == samples.geoip
    assert back.policy == samples.policy
    assert back.summary == samples.summary


def test_several_files_of_one_campaign_and_mismatched_policies(geo, tmp_path):
    pol = policy_from_expect("US,CA")
    a = analyze([SAMPLES / "zoom_call.pcap"], geo, pol)
    b = analyze([SAMPLES / "webrtc_relay.pcapng"], geo, pol)
    columnar.write_parquet(a, tmp_path / "a.parquet")
    columnar.write_parquet(b, tmp_path / "b.parquet")
    both = columnar.read_parquet([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    assert both.summary["campaign"]["calls"] == 2
    assert both.summary["violations"] == a.summary["violations"] + b.summary["violations"]
    columnar.write_parquet(analyze([SAMPLES / "zoom_call.pcap"], geo, None), tmp_path / "c.parquet")
    with pytest.raises(CallauditError, match="different policies"):
        columnar.read_parquet([tmp_path / "a.parquet", tmp_path / "c.parquet"])


def test_foreign_or_damaged_parquet_is_refused(tmp_path):
    path = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(path)
    with pytest.raises(CallauditError, match="not written by callaudit"):
        columnar.read_parquet([path])
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 not really")
    with pytest.raises(CallauditError, match="not a readable Parquet file"):
        columnar.read_parquet([junk])


def test_jsonl_one_flow_per_line(samples):
    lines = columnar.to_jsonl(samples).splitlines()
    assert len(lines) == len(samples.flows)
    recs = [json.loads(line) for line in lines]
    assert [r["uid"] for r in recs] == list(samples.flows["uid"])
    assert {r["capture"] for r in recs} == {c.path for c in samples.captures}
    first = recs[0]
    assert first["verdict"] == "violation" and isinstance(first["key_frames"], list)
    assert isinstance(first["details"], dict)


def test_jsonl_line_breaks_in_strings_stay_inside_their_line(samples):
    flows = samples.flows.copy()
    flows.loc[0, "server_name"] = "evil\nname\u2028x"
    audit = type(samples)(samples.captures, samples.geoip, samples.policy, flows, samples.summary)
    lines = columnar.to_jsonl(audit).split("\n")
    assert len([x for x in lines if x]) == len(flows)
    assert json.loads(lines[0])["server_name"] == "evil\nname\u2028x"
