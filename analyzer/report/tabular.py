"""JSON (schema 1) and CSV renderings of an Audit."""

from __future__ import annotations

import csv
import io
import json
import math

import pandas as pd

from analyzer import __version__
from analyzer.pipeline import SCHEMA, Audit
from analyzer.report.escape import csv_cell, terminal

ATTRIBUTION = "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0"


def _clean(value: object) -> object:
    """JSON-safe scalars: NaN/NA become null, numpy numbers become Python numbers."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (list, tuple, str)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def flow_records(audit: Audit) -> list[dict]:
    return [{k: _clean(v) for k, v in row.items()} for row in audit.flows.to_dict(orient="records")]


def document(audit: Audit) -> dict:
    """The JSON document: documented in the README, versioned by `schema`."""
    return {
        "schema": SCHEMA,
        "tool": {"name": "callaudit", "version": __version__},
        "captures": [c.as_dict() for c in audit.captures],
        "geoip": audit.geoip,
        "warnings": audit.summary.get("warnings", []),
        "policy": audit.policy.as_dict() if audit.policy else None,
        "summary": audit.summary,
        "flows": flow_records(audit),
        "attribution": ATTRIBUTION,
    }


def to_json(audit: Audit) -> str:
    return json.dumps(document(audit), indent=2, ensure_ascii=False) + "\n"


def _cell(value: object) -> object:
    if isinstance(value, list):
        return " ".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
    return "" if value is None else value


def accounting_lines(audit: Audit) -> list[str]:
    """Per capture: frames == decoded + skipped by reason, and its warnings; one escaped line each."""
    lines = []
    for c in audit.captures:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(c.skipped.items())) or "none"
        lines.append(f"capture {terminal(c.path)} {c.format}: frames {c.frames}, decoded {c.decoded}, "
                     f"skipped {skipped}")
        lines += [f"warning: {terminal(w)}" for w in c.warnings]
    return lines


def to_csv(audit: Audit) -> str:
    """One row per flow; list cells joined with spaces; every string cell neutralised.

    The frame accounting of each capture comes first as `#` comment lines (Zeek style: pandas reads
    the table with `comment="#"`), so a CSV report never loses count of what was skipped.
    """
    out = io.StringIO()
    out.writelines(f"# {line}\r\n" for line in accounting_lines(audit))
    cols = list(audit.flows.columns)
    writer = csv.writer(out)
    writer.writerow(cols)
    for rec in flow_records(audit):
        writer.writerow([csv_cell(_cell(rec[c])) for c in cols])
    return out.getvalue()
