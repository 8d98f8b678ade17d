"""The campaign summary in the terminal (rich): per call, per vendor, per country, and the headline lines.

Printed after the flow table when an audit covers more than one capture; reads `summary.campaign` only.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.campaign import CALL_COLUMNS
from analyzer.pipeline import Audit
from analyzer.report.escape import terminal

STYLE = {"violation": "bold red", "unknown": "yellow", "ok": "green", "unchecked": ""}


def _t(value: object, style: str = "") -> Text:
    return Text(terminal(value), style=style)


def _list(values: list) -> Text:
    return _t(",".join(values) or "-")


def render(audit: Audit, console: Console) -> None:
    camp = audit.summary.get("campaign")
    if not camp:
        return
    console.print(
        Text(
            f"campaign: {camp['calls']} calls, {camp['calls_with_violations']} with violations", style="bold"
        )
    )
    calls = Table(header_style="bold", pad_edge=False, title="per call", title_justify="left")
    for col in CALL_COLUMNS:
        calls.add_column(
            col, overflow="fold", justify="right" if col in ("flows", "servers", "violations") else "left"
        )
    for c in camp["per_capture"]:
        calls.add_row(
            _t(c["capture"]),
            _t(c["verdict"], STYLE.get(c["verdict"], "")),
            str(c["flows"]),
            str(c["servers"]),
            _list(c["countries"]),
            _list(c["key_exchange_countries"]),
            _list(c["vendors"]),
            str(c["violations"]),
        )
    console.print(calls)
    vendors = Table(header_style="bold", pad_edge=False, title="per vendor", title_justify="left")
    for col in (
        "vendor",
        "calls",
        "flows",
        "servers",
        "countries",
        "calls w/ key exch.",
        "calls w/ violations",
    ):
        vendors.add_column(col, overflow="fold")
    for v in camp["per_vendor"]:
        vendors.add_row(
            _t(v["vendor"]),
            str(v["calls"]),
            str(v["flows"]),
            str(v["servers"]),
            _list(v["countries"]),
            str(v["key_exchange_calls"]),
            str(v["violation_calls"]),
        )
    console.print(vendors)
    countries = Table(header_style="bold", pad_edge=False, title="per country", title_justify="left")
    for col in ("country", "calls", "flows", "servers", "bytes", "calls w/ key exch.", "calls w/ violations"):
        countries.add_column(col, overflow="fold")
    for c in camp["per_country"]:
        style = "red" if c["violations"] else ""
        countries.add_row(
            _t(f"{c['cc']} {c['name'] or ''}".strip(), style),
            str(c["calls"]),
            str(c["flows"]),
            str(c["servers"]),
            str(c["bytes"]),
            str(c["key_exchange_calls"]),
            str(c["violation_calls"]),
        )
    console.print(countries)
    for st in camp["statements"]:
        console.print(_t(st["text"], "bold red" if st["violation"] else ""))
