"""JSON (schema 1) and CSV renderings of an Audit."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import TextIO

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


CHUNK_ROWS = 4096  # flows converted at a time: bounds the per-cell strings of a big report


def _column_chunks(df: pd.DataFrame) -> Iterator[tuple[list[bool], list[list]]]:
    """The flows CHUNK_ROWS at a time, column by column as Python values (`tolist`: numbers are Python
    numbers), with which columns are numeric. Column-wise access avoids a dict per row."""
    numeric = [pd.api.types.is_numeric_dtype(t) for t in df.dtypes]
    for start in range(0, len(df), CHUNK_ROWS):
        part = df.iloc[start:start + CHUNK_ROWS]
        yield numeric, [part.iloc[:, i].tolist() for i in range(part.shape[1])]


def _clean_column(values: list, numeric: bool) -> list:
    """`_clean` over one column; numeric columns only need their NaN / NA turned into None."""
    if numeric:
        return [None if v is pd.NA or (type(v) is float and math.isnan(v)) else v for v in values]
    return [_clean(v) for v in values]


def flow_records(audit: Audit) -> list[dict]:
    """One dict per flow with JSON-safe values (what `_clean` makes of `to_dict(orient="records")`)."""
    cols = list(audit.flows.columns)
    out = []
    for numeric, columns in _column_chunks(audit.flows):
        cleaned = [_clean_column(c, n) for c, n in zip(columns, numeric, strict=True)]
        out += [dict(zip(cols, values, strict=True)) for values in zip(*cleaned, strict=True)]
    return out


def document(audit: Audit, flows: object = None) -> dict:
    """The JSON document: documented in the README, versioned by `schema`."""
    return {
        "schema": SCHEMA,
        "tool": {"name": "callaudit", "version": __version__},
        "captures": [c.as_dict() for c in audit.captures],
        "geoip": audit.geoip,
        "warnings": audit.summary.get("warnings", []),
        "policy": audit.policy.as_dict() if audit.policy else None,
        "summary": audit.summary,
        "flows": flow_records(audit) if flows is None else flows,
        "attribution": ATTRIBUTION,
    }


# --- JSON text of the flows, exactly as json.dumps(indent=2, ensure_ascii=False) writes it --------------


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _key(key: object) -> str:
    """A dict key as json writes it (keys that are not text are converted, as the json module does)."""
    if isinstance(key, str):
        return encode_basestring(key)
    if isinstance(key, float):
        return encode_basestring(_float_text(key))
    if key is True or key is False or key is None:
        return encode_basestring(json.dumps(key))
    if isinstance(key, int):
        return encode_basestring(int.__repr__(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _raw(value: object, indent: str) -> str:
    """`value` as json.dumps(indent=2) writes it at the nesting level whose line break is `indent`."""
    if isinstance(value, str):
        return encode_basestring(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float_text(value)
    inner = indent + "  "
    if isinstance(value, list | tuple):
        return ("[" + inner + ("," + inner).join([_raw(v, inner) for v in value]) + indent + "]") if value else "[]"
    if isinstance(value, dict):
        return ("{" + inner + ("," + inner).join([f"{_key(k)}: {_raw(v, inner)}" for k, v in value.items()])
                + indent + "}") if value else "{}"
    return json.dumps(value)  # not serialisable: the TypeError json.dumps(document) would raise


def _json_cell(value: object, indent: str) -> str:
    """`_raw(_clean(value))`: NaN / NA as null, numpy scalars as Python ones, lists cleaned inside."""
    if type(value) is str:
        return encode_basestring(value)
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, list | tuple):
        inner = indent + "  "
        return ("[" + inner + ("," + inner).join([_json_cell(v, inner) for v in value]) + indent + "]") if value else "[]"
    if hasattr(value, "item") and not isinstance(value, str):
        return _raw(value.item(), indent)  # type: ignore[attr-defined]
    return _raw(value, indent)


_CELL_INDENT = "\n      "  # flows are the third level of the document


def _numeric_text(value: object) -> str:
    if value is None or value is pd.NA:
        return "null"
    if type(value) is float:
        return "null" if math.isnan(value) else _float_text(value)
    return _raw(value, _CELL_INDENT)


def _encode_column(values: list, numeric: bool) -> list[str]:
    if numeric:
        # a numeric column holds one type: when it is int or float, with no NA, NaN or infinity, the
        # text of every cell is its repr (mapped in C); anything else goes cell by cell
        fast = {int: int.__repr__, float: float.__repr__}.get(type(values[0])) if values else None
        if fast is not None:
            try:
                text = list(map(fast, values))
            except TypeError:  # pd.NA among them
                text = None
            if text is not None and "nan" not in text and "inf" not in text and "-inf" not in text:
                return text
        return [int.__repr__(v) if type(v) is int else _numeric_text(v) for v in values]
    return [encode_basestring(v) if type(v) is str else _json_cell(v, _CELL_INDENT) for v in values]


def write_json(audit: Audit, out: TextIO) -> None:
    """The JSON document, written as `json.dumps(document(audit), indent=2, ensure_ascii=False)` would,
    byte for byte; flows are encoded a chunk of columns at a time instead of cell by cell through the
    pure-Python indenting encoder, and never held as one string (a 100k-flow report is ~150 MB)."""
    marker = f"@flows-{id(audit):x}@"
    head, _, tail = json.dumps(document(audit, marker), indent=2, ensure_ascii=False).rpartition(
        encode_basestring(marker))
    cols = list(audit.flows.columns)
    out.write(head)
    if not len(audit.flows):
        out.write("[]")
    elif not cols:
        out.write("[\n" + ",\n".join(["    {}"] * len(audit.flows)) + "\n  ]")
    else:
        row = "    {\n" + ",\n".join(f"      {_key(c).replace('%', '%%')}: %s" for c in cols) + "\n    }"
        sep = "[\n"
        for numeric, columns in _column_chunks(audit.flows):
            text = [_encode_column(c, n) for c, n in zip(columns, numeric, strict=True)]
            out.write(sep + ",\n".join([row % values for values in zip(*text, strict=True)]))
            sep = ",\n"
        out.write("\n  ]")
    out.write(tail + "\n")


def to_json(audit: Audit) -> str:
    out = io.StringIO()
    write_json(audit, out)
    return out.getvalue()


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


def write_csv(audit: Audit, out: TextIO) -> None:
    """One row per flow; list cells joined with spaces; every string cell neutralised.

    The frame accounting of each capture comes first as `#` comment lines (Zeek style: pandas reads
    the table with `comment="#"`), so a CSV report never loses count of what was skipped.
    Rows are converted and written a chunk of columns at a time.
    """
    out.writelines(f"# {line}\r\n" for line in accounting_lines(audit))
    writer = csv.writer(out)
    writer.writerow(list(audit.flows.columns))
    for numeric, columns in _column_chunks(audit.flows):
        cells = [[csv_cell(_cell(v)) for v in _clean_column(c, n)] for c, n in zip(columns, numeric, strict=True)]
        writer.writerows(zip(*cells, strict=True))


def to_csv(audit: Audit) -> str:
    out = io.StringIO()
    write_csv(audit, out)
    return out.getvalue()
