"""Campaigns: every shared capture as one call, summarised per call, vendor and country; saved and re-read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analyzer import campaign
from analyzer.cli import expand
from analyzer.jurisdiction import policy_from_expect
from analyzer.pipeline import analyze
from tests.conftest import CAPTURES, SAMPLES, shared_captures

POLICY = "US,CA,EU"


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analyzer", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def shared(geo):
    return analyze(shared_captures(), geo, policy_from_expect(POLICY))


def test_one_row_per_call_with_its_own_verdict(shared):
    camp = shared.summary["campaign"]
    paths = [str(p) for p in shared_captures()]
    assert camp["calls"] == len(paths) >= 30
    assert [c["capture"] for c in camp["per_capture"]] == paths
    flows = shared.flows
    for c in camp["per_capture"]:
        mine = flows[flows["capture"] == c["capture"]]
        assert c["flows"] == len(mine)
        assert (c["verdict"] == "violation") == bool((mine["verdict"] == "violation").any())
        public = mine[mine["resp_scope"] == "public"]
        assert c["servers"] == public["resp_h"].nunique()
        assert c["countries"] == sorted(public["resp_cc"].dropna().unique())
    assert (
        camp["calls_with_violations"] == flows.loc[flows["verdict"] == "violation", "capture"].nunique() > 0
    )


def test_key_exchange_lines_count_calls(shared):
    """Each "key exchange reached XX in N of M calls" is checked against the flows directly."""
    flows = shared.flows
    kx = flows[flows["key_exchange"].notna() & (flows["resp_scope"] == "public")]
    lines = [s for s in shared.summary["campaign"]["statements"] if s["kind"] == "key_exchange"]
    assert {s["cc"] for s in lines} == set(kx["resp_cc"].dropna())
    for s in lines:
        calls = kx.loc[kx["resp_cc"] == s["cc"], "capture"].nunique()
        assert (s["calls"], s["of"]) == (calls, len(shared.captures))
        assert s["text"].startswith(f"key exchange reached {s['cc']} (") and s["text"].endswith(
            f" in {calls} of {len(shared.captures)} calls"
        )
        bad = kx[(kx["resp_cc"] == s["cc"]) & (kx["verdict"] == "violation")]
        assert s["violation"] == (len(bad) > 0)
    [policy_line] = [s for s in shared.summary["campaign"]["statements"] if s["kind"] == "policy"]
    assert policy_line["calls"] == shared.summary["campaign"]["calls_with_violations"]


def test_per_country_and_vendor_add_up(shared):
    camp = shared.summary["campaign"]
    public = shared.flows[shared.flows["resp_scope"] == "public"]
    located = public[public["resp_cc"].notna()]
    assert sum(c["flows"] for c in camp["per_country"]) == len(located)
    assert sum(c["bytes"] for c in camp["per_country"]) == int(
        (located["orig_bytes"] + located["resp_bytes"]).sum()
    )
    assert [c["bytes"] for c in camp["per_country"]] == sorted(
        (c["bytes"] for c in camp["per_country"]), reverse=True
    )
    assert sum(v["flows"] for v in camp["per_vendor"]) == len(public)
    for v in camp["per_vendor"]:
        mine = public[public["vendor"].fillna("unattributed") == v["vendor"]]
        assert v["calls"] == mine["capture"].nunique()


def test_a_call_without_flows_still_counts(geo, tmp_path):
    from tests.conftest import write_pcap

    empty = write_pcap(tmp_path / "silent.pcap", [b"\x00" * 14])  # one non-IP frame: no flows
    audit = analyze([SAMPLES / "zoom_call.pcap", empty], geo, policy_from_expect("US,CA"))
    camp = audit.summary["campaign"]
    assert camp["calls"] == 2
    assert camp["per_capture"][1] | {} == {
        **camp["per_capture"][1],
        "flows": 0,
        "verdict": "ok",
        "servers": 0,
    }
    assert "key exchange reached CN (China) in 1 of 2 calls" in [s["text"] for s in camp["statements"]]


def test_without_policy_nothing_is_called_a_violation(geo):
    flows = analyze([SAMPLES / "zoom_call.pcap"], geo, None).flows
    camp = campaign.summarize(flows, [str(SAMPLES / "zoom_call.pcap")], checked=False)
    assert camp["per_capture"][0]["verdict"] == "unchecked"
    assert all(s["kind"] == "key_exchange" and not s["violation"] for s in camp["statements"])


def test_globs_are_expanded_even_when_the_shell_did_not():
    pattern = CAPTURES / "ndpi_quic*.pcap*"
    assert expand([pattern]) == sorted(CAPTURES.glob("ndpi_quic*.pcap*"))
    assert len(expand([Path(str(CAPTURES / "**" / "zeek_*.pcap"))])) == len(
        list(CAPTURES.glob("zeek_*.pcap"))
    )


def test_cli_campaign_to_parquet_then_summarize_without_the_captures(shared, tmp_path):
    saved = tmp_path / "campaign.parquet"
    r = run("audit", CAPTURES, "--expect", POLICY, "--format", "parquet", "--out", saved)
    assert r.returncode == 1, r.stderr
    assert r.stderr == ""  # no progress bar: stderr is not a terminal here
    # pandas reads the file back identically, after the documented normalisation (tests/report/test_columnar.py)
    from tests.report.test_columnar import normalised

    back = normalised(pd.read_parquet(saved), saved)
    expected = shared.flows
    pd.testing.assert_frame_equal(back, expected)

    js = run("summarize", saved, "--format", "json")
    assert js.returncode == 1, js.stderr
    doc = json.loads(js.stdout)
    assert doc["summary"] == json.loads(json.dumps(shared.summary))
    assert len(doc["captures"]) == len(shared.captures)
    text = run("summarize", saved)
    assert "campaign: " in text.stdout and " of " in text.stdout
    assert any(line.startswith("key exchange reached") for line in text.stdout.splitlines())
    page = tmp_path / "campaign.html"
    h = run("summarize", saved, "--format", "html", "--out", page)
    assert (
        h.returncode == 1
        and page.read_text().count('<article class="evidence"') == shared.summary["violations"]
    )


def test_parquet_needs_an_output_file():
    r = run("audit", SAMPLES / "zoom_call.pcap", "--format", "parquet")
    assert r.returncode == 2 and "give --out" in r.stderr
