"""Terminal rendering with rich: violations first, key exchange highlighted, a one-line summary."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.pipeline import Audit
from analyzer.report import evidence
from analyzer.report.escape import terminal
from analyzer.report.tabular import ATTRIBUTION

STYLE = {"violation": "bold red", "unknown": "yellow", "ok": "green", "local": "dim", "unchecked": "",
         "suspect": "bold yellow", "anycast": "cyan"}


def _t(value: object, style: str = "") -> Text:
    """A cell from data: never markup, control characters escaped."""
    if value is None or (not isinstance(value, (list, str)) and pd.isna(value)):
        return Text("-", style="dim")
    return Text(terminal(value), style=style)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _evidence(audit: Audit, console: Console) -> None:
    """For each violation: the flow, the reason and the packets that show it."""
    bad = audit.flows[audit.flows["verdict"] == "violation"]
    if bad.empty:
        return
    console.print(Text("evidence", style="bold"))
    for row in bad.itertuples(index=False):
        ev = evidence.of_flow(row)
        kx = f" key exchange {row.key_exchange}" if isinstance(row.key_exchange, str) else ""
        console.print(Text.assemble(
            "  ", (row.uid, "bold"), f" {row.orig_h} -> {row.resp_h}:{row.resp_p}/{row.proto}{kx}: ",
            _t(row.reason, "red"), "\n    wireshark: ", (ev.frames_filter or "-", "cyan"),
            "\n    flow: ", (ev.flow_filter or "-", "cyan"), f"  (capture {terminal(row.capture)})"))


def render(audit: Audit, console: Console, limit: int | None = None) -> None:
    for c in audit.captures:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(c.skipped.items())) or "none"
        line = Text.assemble(("capture ", "bold"), _t(c.path), f"  {c.format} {'/'.join(c.link_types)}  "
                             f"frames {c.frames}, decoded {c.decoded}, skipped {skipped}")
        console.print(line)
        for w in c.warnings:
            console.print(Text.assemble(("  warning: ", "yellow"), _t(w)))
    for db in audit.geoip:
        age = f", {db['age_days']} days old" if db.get("age_days") is not None else ""
        console.print(Text.assemble(("geoip ", "bold"), _t(db["name"]), f"  {db['type']}  built {db['build_date']}{age}",
                                    ("  STALE", "yellow") if db.get("stale") else "",
                                    f"  answered {db['answered']}" if "answered" in db else ""))
    for w in audit.summary.get("warnings", []):
        console.print(Text.assemble(("  warning: ", "yellow"), _t(w)))
    policy = audit.policy.source if audit.policy else "none (verdicts unchecked; give --expect or --policy)"
    console.print(Text.assemble(("policy ", "bold"), _t(policy)))

    table = Table(show_lines=False, header_style="bold", pad_edge=False)
    for col in ("verdict", "key exch.", "server", "name", "cc", "asn / org", "vendor", "bytes out/in",
                "pkts out/in", "frame", "reason"):
        table.add_column(col, overflow="fold")
    df = audit.flows if limit is None else audit.flows.head(limit)
    for row in df.itertuples(index=False):
        kx = row.key_exchange if isinstance(row.key_exchange, str) else None
        style = STYLE.get(row.verdict, "")
        org = None
        if not pd.isna(row.resp_asn):
            org = f"AS{int(row.resp_asn)}" + (f" {row.resp_org}" if isinstance(row.resp_org, str) else "")
        name = row.server_name if isinstance(row.server_name, str) else None
        table.add_row(
            _t(row.verdict, style), _t(kx, "bold magenta" if kx else ""),
            _t(f"{row.resp_h} {row.proto}/{row.resp_p}"),
            _t(f"{name} ({row.server_name_source})" if name else None),
            _t(row.resp_cc if isinstance(row.resp_cc, str) else (row.resp_scope if row.resp_scope == "local" else None)),
            _t(org), _t(row.vendor if isinstance(row.vendor, str) else None),
            Text(f"{_size(row.orig_bytes)} / {_size(row.resp_bytes)}"),
            Text(f"{row.orig_pkts} / {row.resp_pkts}"), Text(str(row.first_frame)),
            _t(row.reason if isinstance(row.reason, str) else None, style),
        )
    console.print(table)
    if limit is not None and len(audit.flows) > limit:
        console.print(Text(f"... {len(audit.flows) - limit} more flows (use --all, or --format json)", style="dim"))
    _evidence(audit, console)
    s = audit.summary
    style = "bold red" if s.get("violations") else "bold green"
    console.print(Text(
        f"{_n(s['flows'], 'flow')}, {_n(s['servers'], 'server')}, countries {','.join(s['countries']) or '-'}, "
        f"{_n(s['violations'], 'violation')}, {_n(s['key_exchange_violations'], 'key-exchange violation')}",
        style=style))
    console.print(Text(ATTRIBUTION, style="dim"))
