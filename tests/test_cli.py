"""The CLI end to end: exit codes 0/1/2, one-line errors, every output format, `python -m analyzer`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from tests.conftest import CAPTURES, GEOIP_TEST


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=120, **kw)


def test_violation_exit_1_with_json_evidence(tmp_path):
    out = tmp_path / "r.json"
    r = run("audit", CAPTURES / "ndpi_zoom.pcap", "--expect", "US,CA", "--format", "json", "--out", out)
    assert r.returncode == 1, r.stderr
    doc = json.loads(out.read_text())
    assert doc["schema"] == 1
    [cap] = doc["captures"]
    assert cap["frames"] == cap["decoded"] + sum(cap["skipped"].values()) == 781
    assert doc["geoip"][0]["build_date"] and doc["geoip"][0]["embedded"]
    flows = doc["flows"]
    assert flows[0]["verdict"] == "violation"  # violations first
    nl = [f for f in flows if f["server_name"] == "zoomfrn99mmr.zoom.us" and f["key_exchange"] == "tls"]
    assert nl and nl[0]["resp_cc"] == "NL" and "NL (Netherlands)" in nl[0]["reason"]
    assert nl[0]["key_frames"] and nl[0]["first_frame"] >= 1 and nl[0]["geo_db"] == "dbip-country.mmdb"
    assert doc["summary"]["key_exchange_violations"] >= 1
    required = {"uid", "capture", "proto", "orig_h", "orig_p", "resp_h", "resp_p", "service", "server_name",
                "server_name_source", "vendor", "key_exchange", "key_frames", "first_frame", "first_ts",
                "last_ts", "orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes", "rtt_ms", "resp_cc",
                "resp_registered_cc", "resp_asn", "resp_org", "geo_db", "verdict", "reason"}
    assert required <= set(flows[0])


def test_clean_exit_0_and_unchecked_without_policy():
    r = run("audit", CAPTURES / "ndpi_google_meet.pcapng", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert {f["verdict"] for f in json.loads(r.stdout)["flows"]} == {"unchecked"}
    r = run("audit", CAPTURES / "ndpi_google_meet.pcapng", "--expect", "US")
    assert r.returncode == 0 and "0 violations" in r.stdout


def test_policy_file_key_exchange_rule(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('expected = ["US", "NL", "FR", "DE", "IT", "HR"]\nkey_exchange = ["US"]\n')
    r = run("audit", CAPTURES / "ndpi_zoom.pcap", "--policy", policy, "--format", "json")
    assert r.returncode == 1
    bad = [f for f in json.loads(r.stdout)["flows"] if f["verdict"] == "violation"]
    assert bad and all(f["key_exchange"] for f in bad) and all("key exchange" in f["reason"] for f in bad)


def test_csv_output_has_every_flow():
    r = run("audit", CAPTURES / "ndpi_zoom.pcap", "--format", "csv")
    assert r.stdout.startswith("# capture ") and "frames 781, decoded " in r.stdout.splitlines()[0]
    rows = list(csv.DictReader(line for line in io.StringIO(r.stdout) if not line.startswith("#")))
    assert len(rows) == 32 and rows[0]["uid"].startswith("C")


def test_terminal_output_lists_servers_and_summary():
    r = run("audit", CAPTURES / "ndpi_zoom.pcap", "--expect", "US,CA", env={"COLUMNS": "250", "PATH": ""})
    assert r.returncode == 1
    assert "zoomfrn99mmr.zoom.us" in r.stdout and "key-exchange violations" in r.stdout
    assert "DB-IP" in r.stdout and "2026-06-01" in r.stdout


def test_folder_of_captures(tmp_path):
    r = run("audit", CAPTURES, "--format", "json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and len(doc["captures"]) == 37


def test_user_geoip_database_answers_first():
    r = run("audit", CAPTURES / "ndpi_zoom.pcap", "--geoip", GEOIP_TEST / "GeoLite2-ASN-Test.mmdb",
            "--format", "json")
    doc = json.loads(r.stdout)
    assert [d["name"] for d in doc["geoip"]] == ["GeoLite2-ASN-Test.mmdb", "dbip-country.mmdb", "asn.mmdb"]


@pytest.mark.parametrize("args, message", [
    (["audit", "missing.pcap"], "no such file"),
    (["audit", CAPTURES / "MANIFEST.md"], "not a pcap"),
    (["audit", CAPTURES / "ndpi_zoom.pcap", "--expect", "US,XX"], "XX"),
    (["audit", CAPTURES / "ndpi_zoom.pcap", "--geoip", GEOIP_TEST / "GeoIP2-City-Test-Invalid-Node-Count.mmdb"],
     "Invalid"),
    (["audit", CAPTURES / "ndpi_zoom.pcap", "--format", "xml"], "xml"),
    (["audit", CAPTURES / "ndpi_zoom.pcap", "--local", "not-an-ip"], "not an IP"),
    (["audit", CAPTURES / "ndpi_zoom.pcap", "--policy", "nope.toml"], "nope.toml"),
])
def test_errors_are_one_line_exit_2(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and message.lower() in r.stderr.lower(), r.stderr
    assert "Traceback" not in r.stderr


def test_console_script_entry_point_is_declared():
    import tomllib
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["callaudit"] == "analyzer.cli:main"
    assert meta["project"]["name"] == "callaudit"


def test_one_big_pcap_is_read_ahead_with_the_same_report(tmp_path, monkeypatch):
    """`audit` of one big pcap starts reading its second part before importing the rest (`read_ahead`); the
    report is the one a plain read gives, and the early process is ended and reaped."""
    from typer.testing import CliRunner

    from analyzer import cli, fastpath, forked

    monkeypatch.setattr(fastpath, "PARALLEL_BYTES", 0)  # every pcap counts as big
    monkeypatch.setattr(forked, "cores", lambda: 2)
    started = []
    real = fastpath.read_ahead
    monkeypatch.setattr(fastpath, "read_ahead", lambda path: started.append(real(path)) or started[-1])
    claimed = []
    claim = fastpath.ReadAhead.claim
    monkeypatch.setattr(fastpath.ReadAhead, "claim", lambda self, *a: claimed.append(claim(self, *a)) or claimed[-1])
    capture = CAPTURES / "voipshark_SIP-RTP-Normal_Call_two_parties.pcap"
    args = ["audit", str(capture), "--expect", "US", "--format", "json", "--no-discover"]
    ahead = CliRunner().invoke(cli.app, [*args, "--out", str(tmp_path / "ahead.json")])
    assert started and started[0] is not None and started[0].worker.pid is None  # begun, then reaped
    assert claimed and claimed[0] is not None  # and its part used by the audit
    monkeypatch.setattr(fastpath, "read_ahead", lambda _path: None)
    plain = CliRunner().invoke(cli.app, [*args, "--out", str(tmp_path / "plain.json")])
    assert ahead.exit_code == plain.exit_code and ahead.exit_code in (0, 1), ahead.output
    assert (tmp_path / "ahead.json").read_bytes() == (tmp_path / "plain.json").read_bytes()


def test_a_read_ahead_is_ended_when_the_options_are_refused(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from analyzer import cli, fastpath, forked

    monkeypatch.setattr(fastpath, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(forked, "cores", lambda: 2)
    started = []
    real = fastpath.read_ahead
    monkeypatch.setattr(fastpath, "read_ahead", lambda path: started.append(real(path)) or started[-1])
    capture = CAPTURES / "voipshark_SIP-RTP-Normal_Call_two_parties.pcap"
    r = CliRunner().invoke(cli.app, ["audit", str(capture), "--local", "not-an-address"])
    assert isinstance(r.exception, cli.CallauditError)
    assert started[0] is not None and started[0].worker.pid is None and started[0].handle is None


def _main(monkeypatch, *args) -> int:
    """`cli.main` as the console script runs it (the early read-ahead happens there, not in `app`)."""
    from analyzer import cli

    monkeypatch.setattr(sys, "argv", ["callaudit", *map(str, args)])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return done.value.code


@pytest.fixture
def spied_read_ahead(monkeypatch):
    """Every pcap counts as big, two cores; the read-aheads started and whether each was used."""
    from analyzer import fastpath, forked

    monkeypatch.setattr(fastpath, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(forked, "cores", lambda: 2)
    started, claimed, callers = [], [], []
    real, claim = fastpath.read_ahead, fastpath.ReadAhead.claim

    def read_ahead(path):
        callers.append(sys._getframe(1).f_code.co_name)
        started.append(real(path))
        return started[-1]

    monkeypatch.setattr(fastpath, "read_ahead", read_ahead)
    monkeypatch.setattr(fastpath.ReadAhead, "claim", lambda self, *a: claimed.append(claim(self, *a)) or claimed[-1])
    return started, claimed, callers


BIG = CAPTURES / "voipshark_SIP-RTP-Normal_Call_two_parties.pcap"


def test_main_starts_the_read_ahead_before_parsing_and_audit_uses_it(tmp_path, monkeypatch, spied_read_ahead):
    started, claimed, callers = spied_read_ahead
    code = _main(monkeypatch, "audit", BIG, "--expect", "US", "--format", "json", "--no-discover",
                 "--out", tmp_path / "early.json")
    assert callers == ["_read_ahead_early"] and started[0] is not None  # by main; audit took it, started none
    assert claimed and claimed[0] is not None and started[0].worker.pid is None
    plain = run("audit", BIG, "--expect", "US", "--format", "json", "--no-discover", "--out", tmp_path / "plain.json")
    assert code == plain.returncode
    assert (tmp_path / "early.json").read_bytes() == (tmp_path / "plain.json").read_bytes()


def test_an_early_read_ahead_of_another_selection_is_ended(tmp_path, monkeypatch, spied_read_ahead):
    """Two captures (the big pcap and a folder): the guess from the arguments is wrong, and not used."""
    started, claimed, callers = spied_read_ahead
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "z.pcap").write_bytes((CAPTURES / "zeek_tls_hrr.pcap").read_bytes())
    code = _main(monkeypatch, "audit", BIG, folder, "--format", "json", "--no-discover", "--out", tmp_path / "r.json")
    assert code == 0
    assert callers == ["_read_ahead_early"]  # and none by audit: two captures
    assert started[0] is not None and started[0].worker.pid is None  # ended, reaped
    assert not any(claimed)
    assert {f["capture"] for f in json.loads((tmp_path / "r.json").read_text())["flows"]} == {
        str(BIG), str(folder / "z.pcap")}


def test_an_early_read_ahead_is_ended_when_audit_never_runs(monkeypatch, spied_read_ahead, capsys):
    started, _claimed, _callers = spied_read_ahead
    assert _main(monkeypatch, "audit", BIG, "--format", "nonsense") == 2  # a usage error
    assert started[0] is not None and started[0].worker.pid is None and started[0].handle is None
    assert "nonsense" in capsys.readouterr().err


def test_the_early_guess_never_opens_a_fifo(tmp_path, monkeypatch, spied_read_ahead):
    """A named pipe among the arguments is neither opened (that would block) nor read from (bytes lost)."""
    import os
    import threading

    from analyzer import cli

    fifo = tmp_path / "live.pcap"
    os.mkfifo(fifo)
    guess = threading.Thread(target=cli._read_ahead_early, args=(["audit", str(fifo), str(BIG)],), daemon=True)
    guess.start()
    guess.join(timeout=10)
    assert not guess.is_alive()
    early = cli._EARLY.pop()
    try:
        assert early.path == BIG  # the one regular capture file
    finally:
        early.close()
