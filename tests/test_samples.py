"""The bundled samples and the README's quick start: the first command shows a CN key-exchange violation."""

from __future__ import annotations

import re

from analyzer.geo import GeoLookup
from analyzer.jurisdiction import policy_from_expect
from analyzer.pipeline import analyze
from analyzer.report.evidence import of_flow
from tests.conftest import ROOT, SAMPLES


def quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)
    return block.strip().splitlines()


def test_readme_quick_start_has_exactly_two_commands():
    install_and_run, install_and_test = quick_start()
    assert install_and_run.startswith("pip install . && callaudit audit pcaps/")
    assert "pytest" in install_and_test and "[test]" in install_and_test
    sample = install_and_run.split("callaudit audit ", 1)[1].split()[0]
    assert (ROOT / sample).is_file()


def test_zoom_sample_key_exchange_in_cn_is_the_violation():
    with GeoLookup() as geo:
        audit = analyze([SAMPLES / "zoom_call.pcap"], geo, policy_from_expect("US,CA"))
    bad = audit.flows[audit.flows["verdict"] == "violation"]
    assert len(bad) == 1
    row = next(bad.itertuples(index=False))
    assert (row.resp_h, row.resp_cc, row.key_exchange, row.server_name) == (
        "52.81.100.10", "CN", "tls", "zoomcnbj01mmr.cloud.zoom.us")
    assert row.key_frames == [38, 53, 55]  # pcaps/README.md: ClientHello 38, ServerHello.. 53, CKE 55
    assert of_flow(row).frames_filter == "frame.number in {38, 53, 55}"
    assert audit.summary["key_exchange_violations"] == 1
    assert set(audit.summary["countries"]) == {"US", "CA", "CN"}
    assert audit.captures[0].frames == audit.captures[0].decoded == 303


def test_relay_sample_reaches_germany():
    with GeoLookup() as geo:
        audit = analyze([SAMPLES / "webrtc_relay.pcapng"], geo, policy_from_expect("US,CA"))
    assert "DE" in audit.summary["violating_countries"]
