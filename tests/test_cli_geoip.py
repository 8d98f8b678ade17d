"""The `callaudit geoip` command and the GeoIP options of `audit`, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from tests.conftest import CAPTURES, GEOIP_TEST, SAMPLES

needs_test_data = pytest.mark.skipif(not (GEOIP_TEST / "GeoIP2-Country-Test.mmdb").exists(),
                                     reason="shared geoip-test-data not present")


def run(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], capture_output=True, text=True, check=False,
                          timeout=120, env=env)


def fresh_db(path: Path) -> Path:
    """A database built just now (mmdb-writer stamps the current time): never stale."""
    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
    writer.insert_network(IPSet(["52.81.0.0/16"]),
                          {"country": {"iso_code": "HK"}, "registered_country": {"iso_code": "CN"}})
    writer.to_db_file(str(path))
    return path


@needs_test_data
def test_geoip_lists_databases_roles_and_answers(tmp_path: Path) -> None:
    fresh = fresh_db(tmp_path / "fresh.mmdb")
    r = run("geoip", "--geoip", GEOIP_TEST / "GeoIP2-City-Test.mmdb", "--geoip", fresh, "--format", "json",
            "202.196.224.1", "52.81.100.10")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    dbs = doc["databases"]
    assert [d["name"] for d in dbs] == ["GeoIP2-City-Test.mmdb", "fresh.mmdb", "dbip-country.mmdb", "asn.mmdb"]
    assert [d["found_by"] for d in dbs] == ["--geoip", "--geoip", "embedded", "embedded"]
    assert [d["stale"] for d in dbs] == [True, False, True, True]
    assert dbs[0]["age_days"] > 60 and dbs[1]["age_days"] == 0
    assert doc["roles"] == {"country": "GeoIP2-City-Test.mmdb", "registered": "GeoIP2-City-Test.mmdb",
                            "asn": "asn.mmdb", "city": "GeoIP2-City-Test.mmdb", "anycast": "GeoIP2-City-Test.mmdb"}
    assert len(doc["warnings"]) == 3 and all("older than 60 days" in w for w in doc["warnings"])
    ph, cn = doc["lookups"]
    assert (ph["cc"], ph["represented_cc"], ph["represented_type"]) == ("PH", "US", "military")
    assert (cn["cc"], cn["registered_cc"], cn["agree"]) == ("HK", "CN", False)
    assert cn["sources"] == {"GeoLite2-Country": "HK", "DB-IP": "CN"}


@needs_test_data
def test_geoip_terminal_and_discovery_through_environment(tmp_path: Path) -> None:
    (tmp_path / "GeoLite2-ASN.mmdb").write_bytes((GEOIP_TEST / "GeoLite2-ASN-Test.mmdb").read_bytes())
    env = {**__import__("os").environ, "GEOIPUPDATE_DB_DIR": str(tmp_path)}
    r = run("geoip", "1.128.0.1", env=env)
    assert r.returncode == 0, r.stderr
    assert "GEOIPUPDATE_DB_DIR" in r.stdout and "GeoLite2-ASN.mmdb" in r.stdout
    assert "asn: GeoLite2-ASN.mmdb" in r.stdout and "Telstra" in r.stdout and "STALE" in r.stdout
    r = run("geoip", "--no-discover", "1.128.0.1", env=env)
    assert "GeoLite2-ASN.mmdb" not in r.stdout


def test_corrupt_database_is_one_line_exit_2() -> None:
    r = run("geoip", "--geoip", GEOIP_TEST / "GeoIP2-City-Test-Invalid-Node-Count.mmdb")
    assert r.returncode == 2
    assert r.stderr.startswith("callaudit: error: cannot read GeoIP database") and r.stderr.count("\n") == 1


@needs_test_data
def test_audit_json_has_geo_columns_freshness_and_warnings(tmp_path: Path) -> None:
    r = run("audit", SAMPLES / "zoom_call.pcap", "--expect", "US", "--vantage", "US", "--format", "json",
            "--geoip", fresh_db(tmp_path / "fresh.mmdb"))
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["geoip"][0]["stale"] is False and doc["geoip"][1]["stale"] is True
    assert doc["warnings"] and all("older than 60 days" in w for w in doc["warnings"])
    cn = next(f for f in doc["flows"] if f["resp_h"] == "52.81.100.10")
    assert (cn["resp_cc"], cn["resp_registered_cc"], cn["geo_agree"]) == ("HK", "CN", False)
    assert cn["geo_sources"] == {"GeoLite2-Country": "HK", "DB-IP": "CN"}
    assert "databases disagree: GeoLite2-Country says HK, DB-IP says CN" in cn["reason"]
    assert cn["resp_asn"] == 55960 and cn["location_check"] in ("consistent", "implausible", "impossible")
    for column in ("resp_represented_cc", "resp_lat", "resp_lon", "resp_accuracy_km", "is_anycast", "rtt_source",
                   "location_reason"):
        assert column in cn


@needs_test_data
def test_audit_require_registered(tmp_path: Path) -> None:
    fresh = fresh_db(tmp_path / "fresh.mmdb")
    args = ("audit", SAMPLES / "zoom_call.pcap", "--format", "json", "--geoip", fresh)
    doc = json.loads(run(*args, "--expect", "US,HK").stdout)
    assert next(f for f in doc["flows"] if f["resp_h"] == "52.81.100.10")["verdict"] != "violation"
    doc = json.loads(run(*args, "--expect", "US,HK", "--require-registered").stdout)
    flow = next(f for f in doc["flows"] if f["resp_h"] == "52.81.100.10")
    assert flow["verdict"] == "violation" and "registered country CN (China)" in flow["reason"]
    assert doc["policy"]["require_registered"] is True
    r = run("audit", SAMPLES / "zoom_call.pcap", "--require-registered")
    assert r.returncode == 2 and "needs --expect or --policy" in r.stderr


@pytest.mark.parametrize(("vantage", "message"), [("XX", "unknown country code"), ("10.0.0.1", "private")])
def test_bad_vantage(vantage: str, message: str) -> None:
    r = run("audit", CAPTURES / "ndpi_zoom.pcap", "--vantage", vantage)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1
