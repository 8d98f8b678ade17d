"""callaudit's flows and SNI names agree with what tshark shows on every shared capture."""

from __future__ import annotations

import pytest

from analyzer.pipeline import analyze_capture
from tests import tshark
from tests.conftest import shared_captures

pytestmark = pytest.mark.skipif(tshark.TSHARK is None, reason="tshark is not installed (apt-get install tshark)")


@pytest.mark.parametrize("path", shared_captures(), ids=lambda p: p.name)
def test_flows_and_names_match_tshark(path):
    stats, rows = analyze_capture(path)
    ours = {(r["proto"], *sorted([(r["orig_h"], r["orig_p"]), (r["resp_h"], r["resp_p"])])):
            r["orig_pkts"] + r["resp_pkts"] for r in rows
            if not r["role_evidence"].startswith("revealed-")}  # endpoints named in payloads carry no packets
    # tshark lists a GTP-U tunnel's outer conversation too; callaudit decapsulates it into the inner flow.
    theirs = {k: v for k, v in tshark.conversations(path).items() if not (k[1][1] == k[2][1] == 2152)}
    assert ours.keys() == theirs.keys()
    if stats.fragments:  # callaudit counts each IP fragment, tshark the reassembled datagram
        assert all(ours[k] >= theirs[k] for k in ours)
    else:
        assert ours == theirs
    our_sni: dict[str, set[str]] = {}
    for r in rows:
        if r["server_name_source"] == "sni" and (r["proto"] == "tcp" or "quic" in (r["service"] or "")):
            our_sni.setdefault(r["resp_h"], set()).add(r["server_name"])
    assert our_sni == tshark.sni(path)
