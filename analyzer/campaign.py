"""Campaign summary: many test calls (one capture each) summarised together.

A measurement campaign asks "in how many calls did the key exchange reach CN?", not "which flows did";
so everything here counts calls (captures), with flows, servers and bytes alongside.
"""

from __future__ import annotations

import pandas as pd

from analyzer.jurisdiction import country_name

CAPTURE_VERDICT_ORDER = ("violation", "unknown", "ok", "unchecked")
# The per-call table's headings, shared by the terminal and HTML renderers.
CALL_COLUMNS = ("capture", "verdict", "flows", "servers", "countries", "key exchange in", "vendors", "violations")


def _calls(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per group of `by`: calls, flows, servers, bytes, key-exchange flows/calls and violations."""
    kx = df["key_exchange"].notna()
    viol = df["verdict"] == "violation"
    work = df.assign(
        _bytes=(df["orig_bytes"].fillna(0) + df["resp_bytes"].fillna(0)).astype("int64"),
        _kx=kx,
        _kx_capture=df["capture"].where(kx),
        _viol=viol,
        _viol_capture=df["capture"].where(viol),
        _kx_viol=kx & viol,
    )
    return work.groupby(by, sort=False).agg(
        calls=("capture", "nunique"),
        flows=("uid", "size"),
        servers=("resp_h", "nunique"),
        bytes=("_bytes", "sum"),
        key_exchange_flows=("_kx", "sum"),
        key_exchange_calls=("_kx_capture", "nunique"),
        violations=("_viol", "sum"),
        violation_calls=("_viol_capture", "nunique"),
        key_exchange_violations=("_kx_viol", "sum"),
    )


def _ints(record: dict) -> dict:
    return {k: int(v) if hasattr(v, "item") else v for k, v in record.items()}


# the columns this module reads: selected first, so group-bys and filters copy only these
_COLUMNS = ["capture", "uid", "resp_scope", "resp_h", "resp_cc", "key_exchange", "vendor", "verdict",
            "orig_bytes", "resp_bytes"]


def _per_capture(df: pd.DataFrame, captures: list[str], checked: bool) -> list[dict]:
    out = []
    groups = dict(tuple(df.groupby("capture", sort=False))) if len(df) else {}
    for path in captures:
        g = groups.get(path, df.iloc[0:0])
        public = g[g["resp_scope"] == "public"]
        verdicts = set(g["verdict"].dropna().unique())  # not per element: 0.07 s on 100k arrow strings
        verdict = next((v for v in CAPTURE_VERDICT_ORDER if v in verdicts), "ok" if checked else "unchecked")
        if verdict == "unchecked" and checked:
            verdict = "ok"
        viol = g[g["verdict"] == "violation"]
        kx = public[public["key_exchange"].notna()]
        out.append(
            {
                "capture": path,
                "verdict": verdict,
                "flows": len(g),
                "servers": int(public["resp_h"].nunique()),
                "countries": sorted(public["resp_cc"].dropna().unique().tolist()),
                "key_exchange_countries": sorted(kx["resp_cc"].dropna().unique().tolist()),
                "vendors": sorted(g["vendor"].dropna().unique().tolist()),
                "violations": len(viol),
                "key_exchange_violations": int(viol["key_exchange"].notna().sum()),
                "bytes": int((g["orig_bytes"].fillna(0) + g["resp_bytes"].fillna(0)).sum()),
            }
        )
    return out


def _statements(per_country: list[dict], per_capture: list[dict], checked: bool) -> list[dict]:
    """Plain sentences, each with the numbers it states so JSON users need not parse the text."""
    calls = len(per_capture)
    plural = "call" if calls == 1 else "calls"
    out = []
    if checked:
        broke = sum(c["verdict"] == "violation" for c in per_capture)
        out.append(
            {
                "kind": "policy",
                "cc": None,
                "calls": broke,
                "of": calls,
                "violation": broke > 0,
                "text": f"{broke} of {calls} {plural} broke the policy",
            }
        )
    ranked = sorted(per_country, key=lambda c: (-c["violation_calls"], -c["key_exchange_calls"], c["cc"]))
    for c in ranked:
        label = f"{c['cc']} ({c['name']})" if c["name"] else c["cc"]
        if c["key_exchange_calls"]:
            out.append(
                {
                    "kind": "key_exchange",
                    "cc": c["cc"],
                    "calls": c["key_exchange_calls"],
                    "of": calls,
                    "violation": c["key_exchange_violations"] > 0,
                    "text": f"key exchange reached {label} in {c['key_exchange_calls']} of {calls} {plural}",
                }
            )
    for c in ranked:
        label = f"{c['cc']} ({c['name']})" if c["name"] else c["cc"]
        if c["violation_calls"]:
            out.append(
                {
                    "kind": "traffic",
                    "cc": c["cc"],
                    "calls": c["violation_calls"],
                    "of": calls,
                    "violation": True,
                    "text": f"traffic to {label} broke the policy in {c['violation_calls']} of {calls} "
                    f"{plural}",
                }
            )
    return out


def summarize(flows: pd.DataFrame, captures: list[str], checked: bool) -> dict:
    """The campaign summary: per capture, per vendor, per country, and "reached CN in 3 of 40 calls" lines.

    `captures` lists every capture read, so a call with no flows still counts in "N of M calls";
    `checked` says whether a policy judged the flows (otherwise no call can break it).
    """
    flows = flows[[c for c in _COLUMNS if c in flows.columns]]
    per_capture = _per_capture(flows, captures, checked)
    public = flows[flows["resp_scope"] == "public"] if len(flows) else flows
    per_country: list[dict] = []
    per_vendor: list[dict] = []
    if len(public):
        located = public[public["resp_cc"].notna()]
        if len(located):
            table = _calls(located, "resp_cc").sort_values(["bytes", "flows"], ascending=False)
            for cc, row in table.iterrows():
                per_country.append(_ints({"cc": cc, "name": country_name(cc), **row.to_dict()}))
        vendors = public.assign(vendor=public["vendor"].fillna("unattributed"))
        table = _calls(vendors, "vendor").sort_values(["calls", "flows"], ascending=False)
        countries = vendors.groupby("vendor")["resp_cc"].agg(lambda s: sorted(s.dropna().unique().tolist()))
        for vendor, row in table.iterrows():
            per_vendor.append(_ints({"vendor": vendor, **row.to_dict(), "countries": countries[vendor]}))
    return {
        "calls": len(captures),
        "calls_with_violations": sum(c["verdict"] == "violation" for c in per_capture),
        "per_capture": per_capture,
        "per_vendor": per_vendor,
        "per_country": per_country,
        "statements": _statements(per_country, per_capture, checked),
    }
