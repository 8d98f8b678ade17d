"""`callaudit geoip`: the databases in use and, for given addresses, what each one answers."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.geo import ROLES, STALE_DAYS, GeoLookup
from analyzer.report.escape import terminal


def document(geo: GeoLookup, addresses: list[str]) -> dict:
    """The JSON form: databases (with age and staleness), roles, warnings, and lookups."""
    lookups = []
    for address in addresses:
        info = geo.lookup(address)
        lookups.append({"address": address, **asdict(info), "sources": dict(info.sources), "agree": info.agree})
    return {
        "today": geo.today.isoformat(),
        "stale_after_days": STALE_DAYS,
        "databases": [db.as_dict() for db in geo.databases],
        "roles": geo.roles(),
        "warnings": geo.warnings + geo.freshness_warnings(),
        "lookups": lookups,
    }


def render_geoip(geo: GeoLookup, addresses: list[str], fmt: str = "terminal",
                 console: Console | None = None) -> None:
    doc = document(geo, addresses)
    if fmt == "json":
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    table = Table(header_style="bold", pad_edge=False)
    for col in ("#", "database", "found by", "type", "layout", "built", "age", "answers"):
        table.add_column(col, overflow="fold")
    for i, db in enumerate(doc["databases"], 1):
        age = Text(f"{db['age_days']} d" + (" STALE" if db["stale"] else ""),
                   style="yellow" if db["stale"] else "")
        table.add_row(str(i), Text(terminal(db["path"])), Text(terminal(db["found_by"])), Text(terminal(db["type"])),
                      db["layout"], db["build_date"], age, ", ".join(db["answers"]))
    console.print(table)
    roles = ", ".join(f"{role}: {doc['roles'][role] or '-'}" for role in ROLES)
    console.print(Text.assemble(("first answer ", "bold"), roles))
    for warning in doc["warnings"]:
        console.print(Text.assemble(("warning: ", "yellow"), terminal(warning)))
    for entry in doc["lookups"]:
        parts = [f"{k} {entry[k]}" for k in ("scope", "cc", "registered_cc", "represented_cc", "represented_type",
                                             "asn", "org", "lat", "lon", "accuracy_km", "anycast_source")
                 if entry.get(k) is not None]
        sources = ", ".join(f"{name} {cc}" for name, cc in entry["sources"].items()) or "none"
        agree = {True: "agree", False: "DISAGREE", None: "-"}[entry["agree"]]
        console.print(Text.assemble((terminal(entry["address"]), "bold"), ": ", terminal("; ".join(parts)),
                                    f"  countries by database: {terminal(sources)} ({agree})"))
