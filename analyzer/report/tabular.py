"""JSON (schema 1) and CSV renderings of an Audit."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterator
from contextlib import closing
from itertools import chain, repeat
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import TextIO

import pandas as pd
from pandas.api.extensions import ExtensionArray, ExtensionDtype

from analyzer import __version__, forked
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
TEXT_ROWS = 512  # flows per JSON text handed to `out` (~0.8 MB): no chunk-sized strings to fragment the heap
# from this many chunks a forked child makes every other one: forking the ~250 MB process and the copy-on-write
# faults that follow cost about one chunk's work (measured: no gain on JSON below 4 chunks, some on CSV)
PARALLEL_CHUNKS = 4


def _chunked(df: pd.DataFrame, column: Callable[[list, bool], list],
             missing: object) -> tuple[range, Callable[[int], list[list]]]:
    """The first row of each chunk of CHUNK_ROWS flows, and the function that makes a chunk's columns from
    its first row: `column(values, numeric)` of the Python values (`tolist`: numbers are Python numbers).
    Text, integer and boolean extension columns are factorised in C, per chunk, so `column` sees each
    distinct value of the chunk once, and their missing cells are `missing`. Chunks are independent."""
    series = [df.iloc[:, i] for i in range(df.shape[1])]
    numeric = [pd.api.types.is_numeric_dtype(s.dtype) for s in series]
    factorise = [isinstance(s.dtype, pd.StringDtype) or (isinstance(s.dtype, ExtensionDtype) and s.dtype.kind in "iub")
                 for s in series]  # not floats: 0.0 and -0.0 are one value to factorize
    rows = CHUNK_ROWS

    def chunk(start: int) -> list[list]:
        stop = start + rows
        return [_factorised(s.array[start:stop], column, n, missing) if f else column(s.iloc[start:stop].tolist(), n)
                for s, n, f in zip(series, numeric, factorise, strict=True)]

    return range(0, len(df), rows), chunk


def _column_chunks(df: pd.DataFrame, column: Callable[[list, bool], list], missing: object) -> Iterator[list[list]]:
    """The columns of each chunk in turn (see `_chunked`)."""
    starts, chunk = _chunked(df, column, missing)
    return map(chunk, starts)


def _write_chunks(out: TextIO, starts: range, texts: Callable[[int], list[str]]) -> None:
    """`texts(start)` of each chunk written in order; from PARALLEL_CHUNKS chunks on, a forked child makes
    every other chunk's texts (handed back through a pipe) while this process makes the rest and does all
    the writing."""
    with closing(forked.ordered_map(texts, starts, len(starts) >= PARALLEL_CHUNKS)) as chunks:
        for parts in chunks:
            out.writelines(parts)
            del parts  # not held while the next chunk is made or read


def _factorised(values: ExtensionArray, column: Callable[[list, bool], list], numeric: bool,
                missing: object) -> list:
    """`column` of the distinct values, spread back over the cells by their codes (no object per cell)."""
    codes, distinct = values.factorize()  # code -1: missing, the last item of `made`
    made = [*column(distinct.tolist(), numeric), missing]
    return list(map(made.__getitem__, codes.tolist()))


def _clean_column(values: list, numeric: bool) -> list:
    """`_clean` over one column; numeric columns only need their NaN / NA turned into None."""
    if numeric:
        return [None if v is pd.NA or (type(v) is float and math.isnan(v)) else v for v in values]
    return [_clean(v) for v in values]


def flow_records(audit: Audit) -> list[dict]:
    """One dict per flow with JSON-safe values (what `_clean` makes of `to_dict(orient="records")`)."""
    cols = list(audit.flows.columns)
    out = []
    for columns in _column_chunks(audit.flows, _clean_column, None):
        out += [dict(zip(cols, values, strict=True)) for values in zip(*columns, strict=True)]
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
        if not value:
            return "[]"
        inner = indent + "  "
        kinds = set(map(type, value))  # lists of frame numbers or of names: items mapped in C
        items = (map(int.__repr__, value) if kinds == {int} else map(encode_basestring, value) if kinds == {str}
                 else [_json_cell(v, inner) for v in value])
        return "[" + inner + ("," + inner).join(items) + indent + "]"
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


_FLOAT_WORDS = {"nan": "null", "inf": "Infinity", "-inf": "-Infinity"}  # the reprs JSON spells otherwise


def _encode_column(values: list, numeric: bool) -> list[str]:
    """The JSON text of each cell of a column, mapped in C over columns of one common type."""
    if numeric:
        kinds = set(map(type, values))
        if kinds == {int}:
            return list(map(int.__repr__, values))
        if kinds == {float}:
            text = list(map(float.__repr__, values))
            return list(map(_FLOAT_WORDS.get, text, text))
        return [int.__repr__(v) if type(v) is int else _numeric_text(v) for v in values]
    return _encode_objects(values)


_SCALARS = frozenset({str, type(None), bool, int, float})


def _own_keys(values: list, kinds: set[type]) -> bool:
    """Whether equal values of the column always have the same text, so values can key their texts: not
    when unhashable, nor when 1, 1.0 and True, or 0.0 and -0.0, could meet (NaNs are each their own key)."""
    return kinds <= _SCALARS and len(kinds & {bool, int, float}) <= 1 and not (float in kinds and 0.0 in values)


def _unserialisable(value: object) -> object:
    raise TypeError(type(value).__name__)


def _compact(values: list, sort_keys: bool = False) -> list[str] | None:
    """Each value as compact JSON, encoded in C; None if one is not JSON-native (numpy scalars, pd.NA).
    Equal texts mean equal structure, types and scalars: an exact key for whatever is made of the value."""
    if c_make_encoder is None:
        return None
    encode = c_make_encoder({}, _unserialisable, encode_basestring, None, ": ", ", ", sort_keys, False, True)
    try:
        return list(map("".join, map(encode, values, repeat(0))))
    except (TypeError, ValueError, RecursionError):  # the slow path raises or copes the way it always did
        return None


def _memoised(keys: list, values: list, make: Callable[[object], object]) -> list:
    """`make(value)` for each value, computed once per distinct key (cells repeat: geo per address, ...)."""
    made = {k: make(v) for k, v in dict(zip(keys, values, strict=True)).items()}
    return list(map(made.__getitem__, keys))


def _json_object(value: object) -> str:
    return _json_cell(value, _CELL_INDENT)


_FLAT = {int: int.__repr__, str: encode_basestring}  # list items whose text needs no cleaning or nesting


def _flat_lists(values: list) -> list[str] | None:
    """A column of lists of ints only (frame numbers) or of str only, encoded in C; else None."""
    kinds = set(map(type, chain.from_iterable(values)))
    if not kinds:
        return ["[]"] * len(values)
    encode = _FLAT.get(kinds.pop()) if len(kinds) == 1 else None
    if encode is None:
        return None
    inner = _CELL_INDENT + "  "
    text = list(map(f"[{inner}{{}}{_CELL_INDENT}]".format, map(f",{inner}".join, map(map, repeat(encode), values))))
    empty = f"[{inner}{_CELL_INDENT}]"  # what an empty list among them became
    return list(map({empty: "[]"}.get, text, text))


def _encode_objects(values: list) -> list[str]:
    """`_json_cell` of each value: mapped in C over text and flat lists, else once per distinct value."""
    kinds = set(map(type, values))
    if kinds == {str}:
        return list(map(encode_basestring, values))
    if kinds == {list} and (text := _flat_lists(values)) is not None:
        return text
    if _own_keys(values, kinds):
        return _memoised(values, values, _json_object)
    keys = _compact(values)
    if keys is not None:
        return _memoised(keys, values, _json_object)
    return [encode_basestring(v) if type(v) is str else _json_cell(v, _CELL_INDENT) for v in values]


def write_json(audit: Audit, out: TextIO) -> None:
    """The JSON document, written as `json.dumps(document(audit), indent=2, ensure_ascii=False)` would,
    byte for byte; flows are encoded a chunk of columns at a time instead of cell by cell through the
    pure-Python indenting encoder, and never held as one string (a 100k-flow report is ~150 MB); on big
    reports a forked child encodes every other chunk (`_write_chunks`)."""
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
        # a row is ",\n    {", key and cell per column, "\n    }": the pieces of a chunk's rows are laid out
        # in one list by strided slice assignment and joined; the very first row's comma becomes "["
        keys = [f",\n      {_key(c)}: " for c in cols]
        keys[0] = ",\n    {" + keys[0][1:]
        width = 2 * len(cols) + 1
        starts, chunk = _chunked(audit.flows, _encode_column, "null")

        def texts(start: int) -> list[str]:
            columns = chunk(start)
            rows = len(columns[0])
            pieces: list = [None] * (rows * width)
            for i, (key, column) in enumerate(zip(keys, columns, strict=True)):
                pieces[2 * i::width] = [key] * rows
                pieces[2 * i + 1::width] = column
            pieces[width - 1::width] = ["\n    }"] * rows
            if start == 0:
                pieces[0] = "[" + pieces[0][1:]
            step = TEXT_ROWS * width
            return ["".join(pieces[i:i + step]) for i in range(0, len(pieces), step)]

        _write_chunks(out, starts, texts)
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


def _csv_text(value: object) -> object:
    return csv_cell(_cell(_clean(value)))


def _csv_column(values: list, numeric: bool) -> list:
    """`csv_cell(_cell(...))` of the cleaned column, made once per distinct cell where that is exact."""
    kinds = set(map(type, values))
    if numeric:
        if kinds <= {int, bool} or (kinds == {float} and not any(map(math.isnan, values))):
            return values  # the csv module writes numbers as `csv_cell(_cell(v))` would leave them
        return [csv_cell(_cell(v)) for v in _clean_column(values, True)]
    if kinds == {str}:
        return list(map(csv_cell, values))
    if _own_keys(values, kinds):
        return _memoised(values, values, _csv_text)
    if kinds <= {dict, type(None)}:
        keys = _compact(values, sort_keys=True)  # = `_cell(v)`, except "{}" and "null" for "" ("" below)
        if keys is not None:
            return _memoised(keys, keys, lambda k: csv_cell(k) if k not in ("{}", "null") else "")
    if kinds == {list} and set(map(type, chain.from_iterable(values))) <= {int, str}:
        texts = list(map(" ".join, map(map, repeat(str), values)))  # `_cell`: nothing to clean inside
        return _memoised(texts, texts, csv_cell)
    return [csv_cell(_cell(v)) for v in _clean_column(values, False)]


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
    Rows are converted a chunk of columns at a time (on big reports, every other chunk in a forked child)
    and written in order.
    """
    out.writelines(f"# {line}\r\n" for line in accounting_lines(audit))
    csv.writer(out).writerow(list(audit.flows.columns))
    starts, chunk = _chunked(audit.flows, _csv_column, "")

    def texts(start: int) -> list[str]:
        rows = io.StringIO()  # no newline translation: the writer's own "\r\n" reach `out` as they did
        csv.writer(rows).writerows(zip(*chunk(start), strict=True))
        return [rows.getvalue()]

    _write_chunks(out, starts, texts)


def to_csv(audit: Audit) -> str:
    out = io.StringIO()
    write_csv(audit, out)
    return out.getvalue()
