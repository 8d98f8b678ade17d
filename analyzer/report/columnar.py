"""Parquet and JSON Lines renderings, for pandas, DuckDB and jq users; and reading a saved Parquet back.

Parquet keeps lists as lists (`key_frames`, `findings`); `details` (a different shape per protocol) is a
JSON string. The schema metadata (key `callaudit`) holds what a report needs besides the flows: capture
stats, GeoIP databases and the policy, so `callaudit summarize` re-renders a campaign without the captures.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analyzer import __version__, campaign
from analyzer.capture import CaptureStats
from analyzer.errors import CallauditError
from analyzer.jurisdiction import Policy
from analyzer.pipeline import SCHEMA, STRING_STORAGE, Audit, summarize
from analyzer.report.tabular import ATTRIBUTION, flow_records

META_KEY = b"callaudit"
JSON_COLUMNS = ("details", "geo_sources")  # keys vary per row: stored as JSON text, not a struct
LIST_COLUMNS = ("key_frames", "findings")


def to_jsonl(audit: Audit) -> str:
    """One JSON object per flow and line (each names its capture); `jq -c 'select(.verdict=="violation")'`."""
    return "".join(json.dumps(rec, ensure_ascii=False, sort_keys=False) + "\n" for rec in flow_records(audit))


def _kinds(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Object columns holding lists (stored as Arrow lists) and dicts (stored as JSON text)."""
    lists, dicts = [], []
    for col in df.columns:
        if df[col].dtype != object:
            continue
        values = [v for v in df[col] if v is not None and v is not pd.NA]
        if col in LIST_COLUMNS or (values and all(isinstance(v, (list, tuple)) for v in values)):
            lists.append(col)
        elif col in JSON_COLUMNS or (values and all(isinstance(v, dict) for v in values)):
            dicts.append(col)
    return lists, dicts


def _meta(audit: Audit, lists: list[str], dicts: list[str]) -> dict:
    return {
        "schema": SCHEMA,
        "tool": {"name": "callaudit", "version": __version__},
        "captures": [c.as_dict() for c in audit.captures],
        "geoip": audit.geoip,
        "policy": audit.policy.as_dict() if audit.policy else None,
        "attribution": ATTRIBUTION,
        "summary": audit.summary,  # parts not recomputable from the flows (GeoIP warnings, vantage)
        # what pandas cannot tell from Arrow types alone, to give the same DataFrame back
        "list_columns": lists,
        "json_columns": dicts,
        "dtypes": {c: str(t) for c, t in audit.flows.dtypes.items()},
    }


def to_table(audit: Audit) -> pa.Table:
    """The flows as an Arrow table, with the rest of the audit in the schema metadata."""
    df = audit.flows.copy()
    lists, dicts = _kinds(df)
    for col in dicts:
        df[col] = [
            None if v is None or v is pd.NA else json.dumps(v, ensure_ascii=False, sort_keys=True)
            for v in df[col]
        ]
    for col in lists:  # a list column of all-empty lists still needs an element type
        df[col] = [list(v) if isinstance(v, (list, tuple)) else [] for v in df[col]]
    table = pa.Table.from_pandas(df, preserve_index=False)
    for name, kind in (("key_frames", pa.list_(pa.int64())), ("findings", pa.list_(pa.string()))):
        if name in table.column_names:
            i = table.column_names.index(name)
            table = table.set_column(i, pa.field(name, kind), table.column(i).cast(kind))
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps(_meta(audit, lists, dicts), ensure_ascii=False).encode()
    return table.replace_schema_metadata(meta)


def write_parquet(audit: Audit, path: Path) -> None:
    try:
        pq.write_table(to_table(audit), path, compression="zstd")
    except OSError as exc:
        raise CallauditError(f"cannot write {path}: {exc}") from None


def _flows(table: pa.Table, meta: dict) -> pd.DataFrame:
    with pd.option_context("mode.string_storage", STRING_STORAGE):  # text stored as `analyze` stores it
        df = table.to_pandas()
    lists = meta.get("list_columns", list(LIST_COLUMNS))
    dicts = meta.get("json_columns", list(JSON_COLUMNS))
    for col in lists:
        if col in df:
            df[col] = [[] if v is None else v.tolist() for v in df[col]]  # numpy arrays -> Python lists
    for col in dicts:
        if col in df:
            df[col] = [json.loads(v) if isinstance(v, str) else None for v in df[col]]
    for col, dtype in meta.get("dtypes", {}).items():
        if (
            dtype == "object"
            and col in df
            and col not in lists
            and col not in dicts
            and df[col].dtype != object
        ):
            values = df[col].astype(object)  # Python objects with None, as the pipeline holds them
            df[col] = values.where(df[col].notna(), None)
    return df


def read_parquet(paths: list[Path]) -> Audit:
    """A saved audit (one file, or several of one campaign judged by the same policy) as an Audit again."""
    frames, captures, geoip, policies, stored = [], [], [], [], []
    for path in paths:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise CallauditError(f"{path}: not a readable Parquet file: {exc}") from None
        raw = (table.schema.metadata or {}).get(META_KEY)
        if raw is None:
            raise CallauditError(
                f"{path}: not written by callaudit (no '{META_KEY.decode()}' schema metadata)"
            )
        try:
            meta = json.loads(raw)
        except ValueError as exc:
            raise CallauditError(f"{path}: damaged callaudit metadata: {exc}") from None
        if meta.get("schema") != SCHEMA:
            raise CallauditError(
                f"{path}: schema {meta.get('schema')!r}, this callaudit reads schema {SCHEMA}"
            )
        frames.append(_flows(table, meta))
        for c in meta["captures"]:
            captures.append(CaptureStats(**{**c, "skipped": Counter(c["skipped"])}))
        geoip += [db for db in meta["geoip"] if db not in geoip]
        policies.append(meta["policy"])
        stored.append(meta.get("summary") or {})
    if any(p != policies[0] for p in policies[1:]):
        raise CallauditError("these files were judged by different policies; summarise them separately")
    pol = policies[0]
    policy = (
        None
        if pol is None
        else Policy(
            frozenset(pol["expected"]),
            None if pol["key_exchange"] is None else frozenset(pol["key_exchange"]),
            frozenset(pol["deny"]),
            pol["source"],
        )
    )
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    summary = summarize(df)
    summary["campaign"] = campaign.summarize(df, [c.path for c in captures], policy is not None)
    for key, value in _merged(stored).items():
        summary.setdefault(key, value)
    return Audit(captures, geoip, policy, df, summary)


def _merged(summaries: list[dict]) -> dict:
    """Summary parts the flows cannot give back, over several files: counts add, lists join, the rest
    (e.g. the vantage) stays only where every file agrees."""
    out: dict = {}
    for key in dict.fromkeys(k for s in summaries for k in s):
        values = [s[key] for s in summaries if key in s]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            out[key] = sum(values)
        elif all(isinstance(v, dict) and all(isinstance(x, int) for x in v.values()) for v in values):
            total: dict = {}
            for v in values:
                for k, n in v.items():
                    total[k] = total.get(k, 0) + n
            out[key] = total
        elif all(isinstance(v, list) for v in values):
            joined = [x for v in values for x in v]
            out[key] = [x for i, x in enumerate(joined) if x not in joined[:i]]
        else:
            out[key] = values[0] if all(v == values[0] for v in values) else None
    return out
