"""A self-contained HTML report: verdict, evidence, map, timeline, bytes per country, flows, data sources.

One file that opens offline: inline CSS, inline SVG, one small inline script (sorting; the page is
complete without it), and a Content-Security-Policy that forbids loading anything else, so even a
string that escaped escaping could not fetch or run. Every value from a capture goes through `_e`.
"""

from __future__ import annotations

import base64
import hashlib
import math
from datetime import UTC, datetime
from html import escape

import pandas as pd

from analyzer import __version__
from analyzer.campaign import CALL_COLUMNS
from analyzer.jurisdiction import country_name
from analyzer.pipeline import Audit
from analyzer.report import evidence, worldmap
from analyzer.report.escape import terminal
from analyzer.report.tabular import ATTRIBUTION

VERDICT_COLOUR = {
    "violation": "#d62728",
    "unknown": "#f0a30a",
    "ok": "#2ca02c",
    "unchecked": "#1f77b4",
    "local": "#9a9a9a",
}
VERDICT_TINT = {"violation": "#f3b3b3", "unknown": "#f7dca0", "ok": "#b5dcb0", "unchecked": "#b8d0ea"}
VERDICT_RANK = {"violation": 0, "unknown": 1, "ok": 2, "unchecked": 2, "local": 3}
# country colours: no pure red or green, which mean "violation" and "ok" elsewhere in the report
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#9c755f",
    "#ff9da7",
    "#a0cbe8",
    "#d37295",
    "#86bcb6",
    "#bab0ac",
    "#5b5ea6",
)
TIMELINE_ROWS = 400

CSS = """
:root{color-scheme:light;--red:#d62728;--green:#2ca02c;--ink:#1d2228;--mute:#5b6570;--line:#dde3e9}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);
background:#f6f8fa}
main{max-width:1240px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}h3{font-size:15px;margin:0 0 6px}
.sub{color:var(--mute)}
section.card,.evidence{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 18px;
margin:12px 0}
.verdict{border-left:8px solid var(--green)}.verdict.violation{border-left-color:var(--red)}
.verdict.unchecked{border-left-color:#1f77b4}
.verdict .big{font-size:24px;font-weight:700}.verdict.violation .big{color:var(--red)}
.verdict ul{margin:8px 0 0;padding-left:20px}
.stmt-violation{color:var(--red);font-weight:600}
.evidence{border-left:6px solid var(--red)}
.evidence dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:8px 0 0}
.evidence dt{color:var(--mute)}.evidence dd{margin:0}
code{font:12.5px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;background:#f1f3f5;border-radius:4px;
padding:1px 5px}
code.filter{user-select:all;display:inline-block;background:#1d2228;color:#e8f0f8;padding:3px 8px}
svg{display:block;width:100%;height:auto}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;color:var(--mute);font-size:12.5px;margin-top:8px}
.legend svg{display:inline-block;width:12px;height:12px;vertical-align:-1px;margin-right:4px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:12.5px}
th,td{border-bottom:1px solid var(--line);padding:4px 7px;text-align:left;vertical-align:top}
th{background:#eef1f4;position:sticky;top:0;cursor:pointer;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.v-violation td:first-child{color:var(--red);font-weight:700}
tr.v-ok td:first-child{color:var(--green)}tr.v-unknown td:first-child{color:#b07800}
tr.v-local td{color:var(--mute)}
.scroll{overflow-x:auto;max-height:720px;overflow-y:auto;border:1px solid var(--line);border-radius:8px}
.kx{font-weight:600;color:#6b2fa0}
footer{color:var(--mute);font-size:12px;margin:30px 0 10px}
"""

SCRIPT = """(function(){
document.querySelectorAll("table.sortable").forEach(function(t){
 var hs=t.tHead.rows[0].cells;
 Array.prototype.forEach.call(hs,function(th,i){
  th.tabIndex=0;
  function go(){
   var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),asc=th.getAttribute("aria-sort")!=="ascending";
   Array.prototype.forEach.call(hs,function(h){h.removeAttribute("aria-sort");});
   th.setAttribute("aria-sort",asc?"ascending":"descending");
   function key(r){var c=r.cells[i],v=c.getAttribute("data-v");return v===null?c.textContent:parseFloat(v);}
   rows.sort(function(x,y){var a=key(x),c=key(y),d=(typeof a==="number"&&typeof c==="number")?a-c:
    String(a).localeCompare(String(c));return asc?d:-d;});
   rows.forEach(function(r){b.appendChild(r);});
  }
  th.addEventListener("click",go);
  th.addEventListener("keydown",function(ev){if(ev.key==="Enter"){go();}});
 });
});
})();"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (
    f"default-src 'none'; style-src {_hash(CSS)}; script-src {_hash(SCRIPT)}; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)


def _missing(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _e(value: object, empty: str = "–") -> str:
    """Text for HTML (also inside attributes): control and bidi characters shown as escapes, then escaped."""
    if _missing(value):
        return empty
    return escape(terminal(value), quote=True)


def _size(n: object) -> str:
    if _missing(n):
        return "–"
    n = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _cc(cc: object) -> str:
    if _missing(cc):
        return "–"
    name = country_name(str(cc))
    return f"{_e(cc)} ({_e(name)})" if name else _e(cc)


def _swatch(colour: str) -> str:
    return (
        f'<svg viewBox="0 0 12 12" aria-hidden="true"><rect width="12" height="12" rx="2" fill="{colour}"/>'
        "</svg>"
    )


def _country_colours(audit: Audit) -> dict[str, str]:
    ranked = [c["cc"] for c in audit.summary.get("campaign", {}).get("per_country", [])]
    return {cc: PALETTE[i % len(PALETTE)] for i, cc in enumerate(ranked)}


def _flow_colour(row: object, colours: dict[str, str]) -> str:
    if row.resp_scope == "local":
        return VERDICT_COLOUR["local"]
    return colours.get(row.resp_cc, "#7f7f7f") if isinstance(row.resp_cc, str) else "#7f7f7f"


def _server(row: object) -> str:
    port = "" if _missing(row.resp_p) else f":{int(row.resp_p)}"
    return f"{_e(row.resp_h)}{port}/{_e(row.proto)}"


def _name(row: object) -> str:
    if _missing(row.server_name):
        return "–"
    return f'{_e(row.server_name)} <span class="sub">({_e(row.server_name_source)})</span>'


# ---------------------------------------------------------------- sections


def _verdict(audit: Audit) -> str:
    s = audit.summary
    camp = s.get("campaign", {})
    if audit.policy is None:
        cls, big = "unchecked", "No policy given: flows were not judged"
    elif s.get("violations"):
        cls, big = "violation", "Policy violated"
    else:
        cls, big = "ok", "No violations"
    lines = []
    if audit.policy is not None:
        kx = s.get("key_exchange_violations", 0)
        where = ", ".join(_cc(c) for c in s.get("violating_countries", [])) or "–"
        lines.append(
            f'<li><span class="violations">{s.get("violations", 0)}</span> of {s.get("flows", 0)} flows '
            "broke "
            f"the policy <code>{_e(audit.policy.source)}</code>; "
            f'<span class="kx-violations">{kx}</span> of them carried a key exchange '
            f"(of {s.get('key_exchange_flows', 0)} key-exchange flows). Countries: {where}.</li>"
        )
    lines.append(
        f"<li>{s.get('flows', 0)} flows, {s.get('servers', 0)} public servers in "
        f"{len(s.get('countries', []))} countries: "
        f"{', '.join(_cc(c) for c in s.get('countries', [])) or '–'}"
        f" — {len(audit.captures)} capture{'s' if len(audit.captures) != 1 else ''}.</li>"
    )
    for st in camp.get("statements", []) if len(audit.captures) > 1 else []:
        cls_st = ' class="stmt-violation"' if st.get("violation") else ""
        lines.append(f"<li{cls_st}>{_e(st['text'])}</li>")
    return (
        f'<section id="verdict" class="card verdict {cls}" data-verdict="{cls}" '
        f'data-violations="{int(s.get("violations", 0))}" '
        f'data-key-exchange-violations="{int(s.get("key_exchange_violations", 0))}">'
        f'<div class="big">{big}</div><ul>{"".join(lines)}</ul></section>'
    )


def _evidence(audit: Audit) -> str:
    bad = audit.flows[audit.flows["verdict"] == "violation"]
    if bad.empty:
        return ""
    multi = len(audit.captures) > 1
    cards = []
    for row in bad.itertuples(index=False):
        ev = evidence.of_flow(row)
        kx = (
            f'<span class="kx">key exchange {_e(row.key_exchange)}</span> · '
            if not _missing(row.key_exchange)
            else ""
        )
        items = [
            ("server", f'<span class="server">{_server(row)}</span> {_name(row)}'),
            (
                "country",
                _cc(row.resp_cc)
                + (f" · AS{int(row.resp_asn)} {_e(row.resp_org, '')}" if not _missing(row.resp_asn) else ""),
            ),
            ("GeoIP", f"{_e(row.geo_db)} (built {_e(row.geo_db_date)})"),
            ("client", f"{_e(row.orig_h)}" + ("" if _missing(row.orig_p) else f":{int(row.orig_p)}")),
            ("capture", f"<code>{_e(row.capture)}</code> · flow <code>{_e(row.uid)}</code>"),
            ("frames", " ".join(str(f) for f in ev.frames) or "–"),
        ]
        if ev.key_frames:
            items.append(("key-exchange frames", " ".join(map(str, ev.key_frames))))
        if ev.flow_filter:
            items.append(
                ("Wireshark: the flow", f'<code class="filter" data-kind="flow">{_e(ev.flow_filter)}</code>')
            )
        if ev.frames_filter:
            label = "Wireshark: key exchange" if ev.key_frames else "Wireshark: the frames"
            items.append((label, f'<code class="filter" data-kind="frames">{_e(ev.frames_filter)}</code>'))
        for finding in row.findings if isinstance(row.findings, list) else []:
            items.append(("finding", _e(finding)))
        dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
        where = f" in {_e(row.capture)}" if multi else ""
        cards.append(
            f'<article class="evidence" id="ev-{_e(row.uid)}" data-server="{_e(row.resp_h)}" '
            f'data-uid="{_e(row.uid)}"><h3>{kx}{_e(row.reason)}{where}</h3><dl>{dl}</dl></article>'
        )
    return (
        f'<h2 id="evidence">Evidence ({len(cards)} violation{"s" if len(cards) != 1 else ""})</h2>'
        + "".join(cards)
    )


def _vantage(audit: Audit) -> worldmap.Marker | None:
    """The capture point, when the audit knows it (summary `vantage` with lat/lon or a country)."""
    v = audit.summary.get("vantage")
    if not isinstance(v, dict):
        return None
    lat, lon = v.get("lat"), v.get("lon")
    if _missing(lat) or _missing(lon) or lat is None or lon is None:
        point = worldmap.centre(v.get("cc"))
        if point is None:
            return None
        lat, lon = point
    label = str(v.get("cc") or "vantage")
    title = f"vantage {v.get('label') or ''} {v.get('cc') or ''} ({v.get('source') or 'capture point'})"
    return worldmap.Marker(float(lat), float(lon), "#1d2228", title, label)


def _map(audit: Audit) -> str:
    df = audit.flows
    public = df[df["resp_scope"] == "public"] if len(df) else df
    places: dict[tuple[float, float], list] = {}
    for row in public.itertuples(index=False):
        lat, lon = getattr(row, "resp_lat", None), getattr(row, "resp_lon", None)
        if _missing(lat) or _missing(lon) or lat is None or lon is None:
            point = worldmap.centre(row.resp_cc if isinstance(row.resp_cc, str) else None)
            if point is None:
                continue
            lat, lon = point
        places.setdefault((round(float(lat), 2), round(float(lon), 2)), []).append(row)
    markers, fill = [], {}
    for (lat, lon), rows in places.items():
        worst = min((r.verdict for r in rows), key=lambda v: VERDICT_RANK.get(v, 2))
        servers = sorted({r.resp_h for r in rows})
        ccs = sorted({r.resp_cc for r in rows if isinstance(r.resp_cc, str)})
        names = sorted({r.server_name for r in rows if isinstance(r.server_name, str)})
        title = (
            f"{', '.join(ccs)}: {len(servers)} server{'s' if len(servers) != 1 else ''} ({worst}) — "
            + ", ".join(servers[:8])
            + (" …" if len(servers) > 8 else "")
            + (" — " + ", ".join(names[:6]) if names else "")
        )
        markers.append(
            worldmap.Marker(
                lat,
                lon,
                VERDICT_COLOUR.get(worst, "#7f7f7f"),
                terminal(title),
                ",".join(ccs),
                4.5 + 1.5 * math.sqrt(len(servers)),
            )
        )
        for cc in ccs:
            if (
                VERDICT_RANK.get(worst, 2) < VERDICT_RANK.get(fill.get(cc, ("", "ok"))[1], 2)
                or cc not in fill
            ):
                fill[cc] = (VERDICT_TINT.get(worst, "#cccccc"), worst)
    country_fill = {cc: tint for cc, (tint, _) in fill.items()}
    if audit.policy is not None:
        for cc in audit.policy.expected:
            country_fill.setdefault(cc, "#e2eedf")
    markers.sort(key=lambda m: m.colour == VERDICT_COLOUR["violation"])  # violations drawn last, on top
    vantage = _vantage(audit)
    legend = "".join(
        f"<span>{_swatch(VERDICT_COLOUR[v])}{v}</span>" for v in ("violation", "unknown", "ok", "unchecked")
    )
    if audit.policy is not None:
        legend += f"<span>{_swatch('#e2eedf')}expected country</span>"
    note = "" if vantage else "<span>vantage unknown: no line from the capture point</span>"
    where = (
        "Markers stand at the located position when a database gives one, otherwise at the country's "
        "centre; one marker per place."
    )
    return (
        '<h2 id="map">Where the servers are</h2><section class="card">'
        f"{worldmap.svg(markers, vantage, country_fill)}"
        f'<div class="legend">{legend}{note}<span>{where}</span></div></section>'
    )


def _timeline(audit: Audit, colours: dict[str, str]) -> str:
    df = audit.flows
    timed = df[df["first_ts"].notna()] if len(df) else df
    if timed.empty:
        return ""
    shown = timed.sort_values(["capture", "first_ts"]).head(TIMELINE_ROWS)
    left, width, row_h, top = 300, 680, 15, 22
    groups = list(shown.groupby("capture", sort=False))
    height = top + sum((len(g) + 2) * row_h for _, g in groups) + 10
    out = [
        (
            f'<svg class="timeline" viewBox="0 0 {left + width + 20} {height}" role="img" '
            'aria-label="Timeline of flows" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" '
            'font-size="11">'
        )
    ]
    y = top
    for capture, g in groups:
        t0, t1 = float(g["first_ts"].min()), float(g["last_ts"].max())
        span = max(t1 - t0, 1e-3)
        try:
            start = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        except (ValueError, OverflowError, OSError):  # a crafted capture's timestamp beyond the calendar
            start = f"{t0:.0f} s after 1970"
        out.append(
            f'<text x="0" y="{y}" font-weight="700" fill="#1d2228">{_e(capture)} '
            f'<tspan font-weight="400" fill="#5b6570">from {start}, {span:.1f} s</tspan></text>'
        )
        for k in range(5):
            x = left + width * k / 4
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y + 4}" y2="{y + (len(g) + 1) * row_h}" '
                'stroke="#dde3e9"/>'
                f'<text x="{x:.1f}" y="{y + (len(g) + 1) * row_h + 10}" text-anchor="middle" fill="#5b6570" '
                f'font-size="9">{span * k / 4:.1f} s</text>'
            )
        y += 6
        for row in g.itertuples(index=False):
            x = left + (float(row.first_ts) - t0) / span * width
            w = max(2.0, (float(row.last_ts) - float(row.first_ts)) / span * width)
            colour = _flow_colour(row, colours)
            label = row.server_name if isinstance(row.server_name, str) else row.resp_h
            label = terminal(label)
            label = label if len(label) <= 44 else label[:43] + "…"
            bad = row.verdict == "violation"
            title = (
                f"{row.resp_h}:{'' if _missing(row.resp_p) else int(row.resp_p)}/{row.proto} "
                f"{row.resp_cc if isinstance(row.resp_cc, str) else row.resp_scope} {row.verdict}"
                f"{' — key exchange ' + row.key_exchange if isinstance(row.key_exchange, str) else ''} — "
                f"{_size(row.orig_bytes)} out, {_size(row.resp_bytes)} in, frame {row.first_frame}"
            )
            cc = (
                row.resp_cc
                if isinstance(row.resp_cc, str)
                else ("local" if row.resp_scope == "local" else "?")
            )
            out.append(
                f'<g class="flow" data-uid="{_e(row.uid)}"><title>{_e(title)}</title>'
                f'<text x="{left - 8}" y="{y + 10}" text-anchor="end" '
                f'fill="{"#d62728" if bad else "#1d2228"}">'
                f'{escape(label)} <tspan fill="#5b6570">{_e(cc)}</tspan></text>'
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 5}" rx="2" fill="{colour}"'
                + (' stroke="#d62728" stroke-width="2"' if bad else "")
                + "/>"
            )
            if isinstance(row.key_exchange, str):
                cx, cy = x, y + 2 + (row_h - 5) / 2
                out.append(
                    f'<path class="kx-mark" d="M{cx:.1f},{cy - 6:.1f}l6,6l-6,6l-6,-6z" fill="#6b2fa0" '
                    f'stroke="#fff" stroke-width="1"/>'
                )
            out.append("</g>")
            y += row_h
        y += row_h + 12
    out.append("</svg>")
    legend = [f"<span>{_swatch(c)}{_e(cc)}</span>" for cc, c in colours.items()]
    legend.append(f"<span>{_swatch(VERDICT_COLOUR['local'])}local</span>")
    legend.append(
        '<span><svg viewBox="0 0 12 12" aria-hidden="true"><path d="M6,0l6,6l-6,6l-6,-6z" '
        'fill="#6b2fa0"/></svg>key exchange</span>'
    )
    legend.append(
        f'<span><svg viewBox="0 0 12 12" aria-hidden="true"><rect x="1" y="1" width="10" height="10" '
        f'fill="none" stroke="{VERDICT_COLOUR["violation"]}" stroke-width="2"/></svg>violation</span>'
    )
    more = len(timed) - len(shown)
    note = f"<span>{more} more flows in the table</span>" if more > 0 else ""
    untimed = len(df) - len(timed)
    if untimed:
        note += (
            f"<span>{untimed} endpoint{'s' if untimed != 1 else ''} revealed inside other flows "
            "(no packets of their own) are in the table</span>"
        )
    return (
        f'<h2 id="timeline">Timeline (one bar per flow, coloured by country)</h2><section class="card">'
        f'{"".join(out)}<div class="legend">{"".join(legend)}{note}</div></section>'
    )


def _bytes(audit: Audit, colours: dict[str, str]) -> str:
    rows = audit.summary.get("campaign", {}).get("per_country", [])
    if not rows:
        return ""
    top = max(r["bytes"] for r in rows) or 1
    left, width, row_h = 220, 640, 22
    out = [
        (
            f'<svg class="bytes" viewBox="0 0 {left + width + 130} {len(rows) * row_h + 6}" role="img" '
            'aria-label="Bytes per country" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" '
            'font-size="12">'
        )
    ]
    for i, r in enumerate(rows):
        y = i * row_h + 3
        w = max(1.0, r["bytes"] / top * width)
        bad = r["violations"] > 0
        name = f"{r['cc']} {r['name'] or ''}".strip()
        weight = ' font-weight="700"' if bad else ""
        out.append(
            f'<g class="country" data-cc="{_e(r["cc"])}"><title>{_e(name)}: {r["flows"]} flows, '
            f"{r['servers']} servers, {r['violations']} violations</title>"
            f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" fill="{"#d62728" if bad else "#1d2228"}"'
            f"{weight}>{_e(name)}</text>"
            f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row_h - 6}" rx="2" '
            f'fill="{colours.get(r["cc"], "#7f7f7f")}"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 14}" fill="#1d2228">{_size(r["bytes"])}'
            f"{' · violation' if bad else ''}</text></g>"
        )
    out.append("</svg>")
    return f'<h2 id="bytes">Bytes per country</h2><section class="card">{"".join(out)}</section>'


def _table(
    headers: list[str],
    rows: list[list[tuple[str, object]]],
    cls: str = "",
    row_cls: list[str] | None = None,
    table_id: str = "",
) -> str:
    """A sortable table; each cell is (html, sort value or None); numeric sort values right-align."""
    head = "".join(f'<th scope="col">{h}</th>' for h in headers)
    body = []
    for i, cells in enumerate(rows):
        tds = []
        for html_text, key in cells:
            if key is None:
                tds.append(f"<td>{html_text}</td>")
            else:
                tds.append(f'<td class="num" data-v="{key}">{html_text}</td>')
        rc = f' class="{row_cls[i]}"' if row_cls else ""
        body.append(f"<tr{rc}>{''.join(tds)}</tr>")
    tid = f' id="{table_id}"' if table_id else ""
    return (
        f'<div class="scroll"><table class="sortable {cls}"{tid}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _num(value: object) -> tuple[str, object]:
    return ("–", -1) if _missing(value) else (f"{int(value):,}", int(value))


def _flows(audit: Audit) -> str:
    multi = len(audit.captures) > 1
    headers = [
        "verdict",
        "key exchange",
        "server",
        "name",
        "country",
        "ASN / org",
        "vendor",
        "bytes out",
        "bytes in",
        "pkts out",
        "pkts in",
        "first frame",
        "duration",
        "reason",
    ] + (["capture"] if multi else [])
    rows, classes = [], []
    for row in audit.flows.itertuples(index=False):
        org = "–" if _missing(row.resp_asn) else f"AS{int(row.resp_asn)} {_e(row.resp_org, '')}"
        cc = _cc(row.resp_cc) if isinstance(row.resp_cc, str) else _e(row.resp_scope)
        cells = [
            (_e(row.verdict), None),
            (
                f'<span class="kx">{_e(row.key_exchange)}</span>'
                if isinstance(row.key_exchange, str)
                else "–",
                None,
            ),
            (_server(row), None),
            (_name(row), None),
            (cc, None),
            (org, None),
            (_e(row.vendor), None),
            (_size(row.orig_bytes), -1 if _missing(row.orig_bytes) else int(row.orig_bytes)),
            (_size(row.resp_bytes), -1 if _missing(row.resp_bytes) else int(row.resp_bytes)),
            _num(row.orig_pkts),
            _num(row.resp_pkts),
            _num(row.first_frame),
            ("–", -1) if _missing(row.duration) else (f"{float(row.duration):.2f} s", float(row.duration)),
            (_e(row.reason), None),
        ]
        if multi:
            cells.append((_e(row.capture), None))
        rows.append(cells)
        classes.append(f"v-{_e(row.verdict)}")
    return f'<h2 id="flows">Flows ({len(rows)})</h2>' + _table(headers, rows, "flows", classes, "flow-table")


def _campaign(audit: Audit) -> str:
    camp = audit.summary.get("campaign", {})
    if len(audit.captures) < 2 or not camp:
        return ""
    calls = [
        [
            (_e(c["capture"]), None),
            (_e(c["verdict"]), None),
            _num(c["flows"]),
            _num(c["servers"]),
            (", ".join(_e(x) for x in c["countries"]) or "–", None),
            (", ".join(_e(x) for x in c["key_exchange_countries"]) or "–", None),
            (", ".join(_e(x) for x in c["vendors"]) or "–", None),
            _num(c["violations"]),
            _num(c["key_exchange_violations"]),
        ]
        for c in camp["per_capture"]
    ]
    vendors = [
        [
            (_e(v["vendor"]), None),
            _num(v["calls"]),
            _num(v["flows"]),
            _num(v["servers"]),
            (_size(v["bytes"]), v["bytes"]),
            (", ".join(_e(x) for x in v["countries"]) or "–", None),
            _num(v["key_exchange_calls"]),
            _num(v["violation_calls"]),
        ]
        for v in camp["per_vendor"]
    ]
    countries = [
        [
            (_cc(c["cc"]), None),
            _num(c["calls"]),
            _num(c["flows"]),
            _num(c["servers"]),
            (_size(c["bytes"]), c["bytes"]),
            _num(c["key_exchange_calls"]),
            _num(c["violation_calls"]),
        ]
        for c in camp["per_country"]
    ]
    return (
        f'<h2 id="campaign">Campaign: {camp["calls"]} calls, '
        f"{camp['calls_with_violations']} with violations</h2>"
        + "<h3>Per call</h3>"
        + _table(
            [*CALL_COLUMNS, "key-exchange violations"],
            calls,
            "calls",
            [f"v-{_e(c['verdict'])}" for c in camp["per_capture"]],
        )
        + "<h3>Per vendor</h3>"
        + _table(
            [
                "vendor",
                "calls",
                "flows",
                "servers",
                "bytes",
                "countries",
                "calls with key exchange",
                "calls with violations",
            ],
            vendors,
        )
        + "<h3>Per country</h3>"
        + _table(
            [
                "country",
                "calls",
                "flows",
                "servers",
                "bytes",
                "calls with key exchange there",
                "calls with violations there",
            ],
            countries,
        )
    )


def _sources(audit: Audit) -> str:
    p = audit.policy
    if p is None:
        policy = "<p>No policy: give <code>--expect</code> or <code>--policy</code> to judge the flows.</p>"
    else:
        kx = (
            ", ".join(_e(c) for c in sorted(p.key_exchange))
            if p.key_exchange is not None
            else "same as expected"
        )
        policy = (
            f'<dl class="policy"><dt>source</dt><dd><code>{_e(p.source)}</code></dd>'
            f"<dt>expected</dt><dd>{', '.join(_e(c) for c in sorted(p.expected)) or 'any not denied'}</dd>"
            f"<dt>key exchange</dt><dd>{kx}</dd>"
            f"<dt>deny</dt><dd>{', '.join(_e(c) for c in sorted(p.deny)) or '–'}</dd></dl>"
        )
    dbs = [
        [
            (_e(db.get("name")), None),
            (_e(db.get("type")), None),
            (_e(db.get("build_date")), None),
            ("embedded" if db.get("embedded") else "yours", None),
            (_e(db.get("attribution")), None),
        ]
        for db in audit.geoip
    ]
    caps = [
        [
            (_e(c.path), None),
            (_e(c.format), None),
            (_e("/".join(c.link_types)), None),
            _num(c.frames),
            _num(c.decoded),
            (", ".join(f"{_e(k)} {v}" for k, v in sorted(c.skipped.items())) or "none", None),
            ("<br>".join(_e(w) for w in c.warnings) or "–", None),
        ]
        for c in audit.captures
    ]
    return (
        '<h2 id="sources">Policy, GeoIP data and captures</h2><section class="card"><h3>Policy</h3>'
        + policy
        + "<h3>GeoIP databases</h3>"
        + _table(["database", "type", "built", "", "attribution"], dbs)
        + f'<p class="attribution">{_e(ATTRIBUTION)}</p><h3>Captures</h3>'
        + _table(["capture", "format", "link types", "frames", "decoded", "skipped", "warnings"], caps)
        + "</section>"
    )


def render(audit: Audit) -> str:
    """The whole report as one HTML document (UTF-8)."""
    colours = _country_colours(audit)
    title = "callaudit report — " + (
        audit.captures[0].path if len(audit.captures) == 1 else f"{len(audit.captures)} captures"
    )
    dbs = ", ".join(_e(db.get("name")) + " " + _e(db.get("build_date")) for db in audit.geoip)
    body = "".join(
        [
            (
                f'<header><h1>{_e(title)}</h1><div class="sub">callaudit {escape(__version__)} · policy '
                f"{_e(audit.policy.source) if audit.policy else 'none'} · "
                f"GeoIP {dbs or 'none'}"
                "</div></header>"
            ),
            _verdict(audit),
            _evidence(audit),
            _map(audit),
            _timeline(audit, colours),
            _bytes(audit, colours),
            _campaign(audit),
            _flows(audit),
            _sources(audit),
            (
                "<footer>Made offline by callaudit; this page loads nothing from the network. "
                f"{_e(ATTRIBUTION)}.</footer>"
            ),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main><script>{SCRIPT}</script></body></html>\n"
    )
