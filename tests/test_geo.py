"""Tests for analyzer/geo.py: layouts told apart by metadata, priority, normalisation, local scope, errors."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from analyzer.errors import CallauditError
from analyzer.geo import (
    EMBEDDED_ASN,
    EMBEDDED_DB,
    GeoDatabase,
    GeoInfo,
    GeoLookup,
    SearchPath,
    _is_local_addr,
    _is_local_fast,
    _listed_anycast,
    _local_runs,
    _parse,
    anycast_list,
    discover,
    is_local,
    normalize,
)

TEST_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "geoip-test-data"
COUNTRY = TEST_DATA / "GeoIP2-Country-Test.mmdb"
CITY = TEST_DATA / "GeoIP2-City-Test.mmdb"
ASN = TEST_DATA / "GeoLite2-ASN-Test.mmdb"
ISP = TEST_DATA / "GeoIP2-ISP-Test.mmdb"
INVALID = TEST_DATA / "GeoIP2-City-Test-Invalid-Node-Count.mmdb"

needs_test_data = pytest.mark.skipif(not COUNTRY.exists(), reason="shared geoip-test-data not present")


def write_mmdb(path: Path, db_type: str, records: dict[str, dict]) -> Path:
    """A small IPv6 MMDB (IPv4 aliased) with the given networks and records."""
    writer = MMDBWriter(ip_version=6, database_type=db_type, ipv4_compatible=True)
    for network, record in records.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="module")
def embedded() -> GeoLookup:
    geo = GeoLookup()
    yield geo
    geo.close()


# --- embedded DB-IP country database -------------------------------------------------------------


def test_embedded_database_metadata(embedded: GeoLookup) -> None:
    db, asn = embedded.databases
    assert db.path == str(EMBEDDED_DB)
    assert db.layout == "flat-country"
    assert db.embedded is True
    assert db.attribution == "IP Geolocation by DB-IP (https://db-ip.com)"
    assert db.build_date == "2026-06-01"
    assert db.as_dict() == {
        "path": db.path, "name": db.name, "type": db.type, "layout": "flat-country",
        "build_date": db.build_date, "embedded": True, "attribution": db.attribution, "found_by": "embedded",
        "answers": ["country"], "age_days": db.age_days, "stale": db.stale,
    }
    assert (asn.path, asn.layout, asn.type, asn.answers) == (str(EMBEDDED_ASN), "geoip2-asn", "GeoLite2-ASN", ("asn",))
    assert asn.build_date == "2026-06-17" and "RouteViews" in asn.attribution and "DB-IP" in asn.attribution
    assert embedded.roles() == {"country": "dbip-country.mmdb", "registered": None, "asn": "asn.mmdb",
                                "city": None, "anycast": None}


@pytest.mark.parametrize(
    ("ip", "cc"),
    [("8.8.8.8", "US"), ("52.81.100.10", "CN"), ("::ffff:8.8.8.8", "US"), ("2002:808:808::1", "US"),
     ("64:ff9b::808:808", "US")],
)
def test_embedded_lookup(embedded: GeoLookup, ip: str, cc: str) -> None:
    info = embedded.lookup(ip)
    assert info.scope == "public"
    assert info.cc == cc
    assert info.registered_cc is None and info.asn is not None  # the embedded ASN data answers
    assert info.db == "dbip-country.mmdb"
    assert info.db_date == embedded.databases[0].build_date
    assert info.sources == (("DB-IP", cc),) and info.agree is True


def test_lookup_is_cached(embedded: GeoLookup) -> None:
    assert embedded.lookup("8.8.8.8") is embedded.lookup("8.8.8.8")


@pytest.mark.parametrize(
    "ip",
    ["192.168.1.1", "10.1.2.3", "172.16.0.1", "127.0.0.1", "100.64.0.1", "169.254.1.1", "fe80::1",
     "224.0.0.1", "239.255.255.250", "ff02::1", "2001:db8::1", "192.0.2.1", "198.51.100.7", "203.0.113.9",
     "0.0.0.0", "::", "::1", "255.255.255.255", "240.0.0.1", "fd12:3456::1", "::ffff:192.168.1.1"],
)
def test_local_addresses_are_never_looked_up(ip: str) -> None:
    assert is_local(ip)

    class Boom(GeoLookup):
        def _locate(self, addr: object) -> GeoInfo:
            raise AssertionError("local address was looked up")

    geo = Boom(embedded=False)
    assert geo.lookup(ip) == GeoInfo(scope="local")


@pytest.mark.parametrize("ip", ["8.8.8.8", "52.81.100.10", "2a00:1450:4001::1", "::ffff:8.8.8.8"])
def test_public_addresses(ip: str) -> None:
    assert not is_local(ip)


@pytest.mark.parametrize("bad", ["not-an-ip", "1.2.3.4.5", "", "300.1.1.1"])
def test_bad_address_is_a_user_error(embedded: GeoLookup, bad: str) -> None:
    with pytest.raises(CallauditError, match="not an IP address"):
        embedded.lookup(bad)
    with pytest.raises(CallauditError):
        is_local(bad)


def test_no_databases_answers_nothing() -> None:
    geo = GeoLookup(embedded=False)
    assert geo.databases == []
    assert geo.lookup("8.8.8.8") == GeoInfo(scope="public", is_anycast=True,
                                             anycast_source="anycast.toml prefix 8.8.8.0/24")
    assert geo.lookup("52.81.100.10") == GeoInfo(scope="public", is_anycast=False)
    assert geo.lookup("52.81.100.10").agree is None


# --- MaxMind test databases --------------------------------------------------------------------


@needs_test_data
def test_maxmind_layouts_classified_by_metadata() -> None:
    geo = GeoLookup([COUNTRY, CITY, ASN, ISP], embedded=False)
    assert [db.layout for db in geo.databases] == ["geoip2-country", "geoip2-city", "geoip2-asn", "geoip2-isp"]
    assert [db.type for db in geo.databases] == ["GeoIP2-Country", "GeoIP2-City", "GeoLite2-ASN", "GeoIP2-ISP"]
    assert {db.build_date for db in geo.databases} == {"2026-02-04"}
    assert not any(db.embedded for db in geo.databases)
    geo.close()


@needs_test_data
def test_country_database_gives_registered_country() -> None:
    geo = GeoLookup([COUNTRY], embedded=False)
    assert geo.lookup("81.2.69.142") == GeoInfo(
        "public", "GB", "US", None, None, "GeoIP2-Country-Test.mmdb", "2026-02-04", is_anycast=False,
        sources=(("GeoIP2-Country", "GB"),),
    )
    assert (geo.lookup("2.125.160.216").cc, geo.lookup("2.125.160.216").registered_cc) == ("GB", "FR")
    assert geo.lookup("::ffff:81.2.69.142").cc == "GB"
    assert geo.lookup("2002:5102:458e::1").cc == "GB"
    assert geo.lookup("81.2.69.141") == GeoInfo(scope="public", is_anycast=False)  # not found: no answer
    geo.close()


@needs_test_data
def test_city_database_uses_city_method() -> None:
    geo = GeoLookup([CITY], embedded=False)
    info = geo.lookup("81.2.69.142")
    assert (info.cc, info.registered_cc, info.db) == ("GB", "US", "GeoIP2-City-Test.mmdb")
    geo.close()


@needs_test_data
def test_asn_and_isp_databases() -> None:
    geo = GeoLookup([ASN], embedded=False)
    assert geo.lookup("1.128.0.1") == GeoInfo("public", asn=1221, org="Telstra Pty Ltd", is_anycast=False)
    assert geo.lookup("12.81.96.1") == GeoInfo("public", asn=7018, org=None, is_anycast=False)
    assert geo.lookup("27.192.0.1").org == "CNCGROUP China169 Backbone"
    geo.close()
    geo = GeoLookup([ISP], embedded=False)
    assert (geo.lookup("149.101.100.1").asn, geo.lookup("1.128.0.1").asn) == (6167, 1221)
    geo.close()


@needs_test_data
def test_priority_user_databases_first_embedded_last() -> None:
    geo = GeoLookup([ASN, COUNTRY])
    assert [db.embedded for db in geo.databases] == [False, False, True, True]
    info = geo.lookup("81.2.69.142")
    assert (info.cc, info.registered_cc, info.db) == ("GB", "US", "GeoIP2-Country-Test.mmdb")
    info = geo.lookup("1.128.0.1")  # not in the country test DB: the embedded DB answers the country
    assert (info.cc, info.db, info.asn, info.org) == ("AU", "dbip-country.mmdb", 1221, "Telstra Pty Ltd")
    geo.close()


@needs_test_data
def test_folder_of_databases(tmp_path: Path) -> None:
    (tmp_path / "b.mmdb").write_bytes(COUNTRY.read_bytes())
    (tmp_path / "a.mmdb").write_bytes(ASN.read_bytes())
    (tmp_path / "notes.txt").write_text("not a database")
    geo = GeoLookup([tmp_path], embedded=False)
    assert [db.name for db in geo.databases] == ["a.mmdb", "b.mmdb"]
    geo.close()


# --- other layouts built with mmdb-writer ------------------------------------------------------


def test_flat_country_layout_is_classified_by_records_not_name(tmp_path: Path) -> None:
    path = write_mmdb(
        tmp_path / "GeoIP2-City.mmdb",  # misleading name on purpose
        "ip-location-db-country",
        {"1.2.3.0/24": {"country_code": "FR"}, "2a01::/16": {"country_code": "DE"}},
    )
    geo = GeoLookup([path])
    assert geo.databases[0].layout == "flat-country"
    assert geo.databases[0].type == "ip-location-db-country"
    assert geo.lookup("1.2.3.4").cc == "FR"
    assert geo.lookup("1.2.3.4").db == "GeoIP2-City.mmdb"
    assert geo.lookup("::ffff:1.2.3.4").cc == "FR"
    assert geo.lookup("2a01::5").cc == "DE"
    assert geo.lookup("8.8.8.8").db == "dbip-country.mmdb"  # falls through to the embedded DB
    geo.close()


def test_ipinfo_lite_layout(tmp_path: Path) -> None:
    record = {"asn": "AS15169", "as_name": "Google LLC", "as_domain": "google.com", "country_code": "US",
              "country": "United States", "continent_code": "NA", "continent": "North America"}
    path = write_mmdb(tmp_path / "lite.mmdb", "ipinfo lite.mmdb", {"8.8.8.0/24": record})
    geo = GeoLookup([path], embedded=False)
    [db] = geo.databases
    assert db.layout == "ipinfo-lite"
    assert db.attribution is not None and "IPinfo" in db.attribution
    assert geo.lookup("8.8.8.8") == GeoInfo("public", "US", None, 15169, "Google LLC", "lite.mmdb", db.build_date,
                                            is_anycast=True, anycast_source="anycast.toml prefix 8.8.8.0/24",
                                            sources=(("ipinfo lite.mmdb", "US"),))
    geo.close()


def test_dbip_city_layout_without_registered_country(tmp_path: Path) -> None:
    record = {"city": {"names": {"en": "Paris"}}, "continent": {"code": "EU"},
              "country": {"iso_code": "FR", "names": {"en": "France"}}, "location": {"latitude": 48.8}}
    path = write_mmdb(tmp_path / "city.mmdb", "DBIP-City-Lite", {"1.2.3.0/24": record})
    geo = GeoLookup([path], embedded=False)
    assert geo.databases[0].layout == "dbip-city"
    assert geo.databases[0].attribution == "IP Geolocation by DB-IP (https://db-ip.com)"
    info = geo.lookup("1.2.3.4")
    assert (info.cc, info.registered_cc) == ("FR", None)
    geo.close()


def test_asn_answer_from_a_later_database(tmp_path: Path) -> None:
    country = write_mmdb(tmp_path / "c.mmdb", "cc", {"1.2.3.0/24": {"country_code": "FR"}})
    lite = write_mmdb(tmp_path / "l.mmdb", "lite", {"1.2.3.0/24": {"country_code": "BE", "asn": "AS64500",
                                                                   "as_name": "Example"}})
    geo = GeoLookup([country, lite], embedded=False)
    info = geo.lookup("1.2.3.4")
    assert (info.cc, info.db, info.asn, info.org) == ("FR", "c.mmdb", 64500, "Example")
    geo.close()


# --- errors a user can cause -------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CallauditError, match="not found: .*nope.mmdb"):
        GeoLookup([tmp_path / "nope.mmdb"])


def test_folder_without_databases(tmp_path: Path) -> None:
    with pytest.raises(CallauditError, match=f"no .mmdb files in GeoIP folder {tmp_path}"):
        GeoLookup([tmp_path])


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "fake.mmdb"
    path.write_text("hello")
    with pytest.raises(CallauditError, match="fake.mmdb") as err:
        GeoLookup([path])
    assert "\n" not in str(err.value)


@needs_test_data
def test_corrupt_database() -> None:
    with pytest.raises(CallauditError, match="GeoIP2-City-Test-Invalid-Node-Count.mmdb") as err:
        GeoLookup([INVALID])
    assert "\n" not in str(err.value)


@needs_test_data
def test_database_without_country_or_asn() -> None:
    with pytest.raises(CallauditError, match="MaxMind-DB-test-ipv4-24.mmdb.*neither country nor ASN"):
        GeoLookup([TEST_DATA / "MaxMind-DB-test-ipv4-24.mmdb"])


def test_geodatabase_is_frozen() -> None:
    db = GeoDatabase("p", "n", "t", "flat-country", "2026-01-01", False, None)
    with pytest.raises(AttributeError):
        db.name = "x"  # type: ignore[misc]


# --- every database answers: registered, represented, anycast, city, agreement ---------------------


@needs_test_data
def test_registered_differs_from_located_and_represented_country() -> None:
    geo = GeoLookup([COUNTRY], embedded=False)
    info = geo.lookup("2.125.160.216")
    assert (info.cc, info.registered_cc) == ("GB", "FR")
    info = geo.lookup("202.196.224.1")
    assert (info.cc, info.registered_cc, info.represented_cc, info.represented_type) == ("PH", "PH", "US", "military")
    geo.close()


@needs_test_data
def test_anycast_flag_from_the_database() -> None:
    geo = GeoLookup([COUNTRY], embedded=False)
    info = geo.lookup("214.1.1.1")
    assert info.cc is None and info.is_anycast is True
    assert info.anycast_source == "GeoIP2-Country-Test.mmdb is_anycast"
    assert geo.lookup("81.2.69.142").is_anycast is False
    geo.close()


@needs_test_data
def test_city_database_gives_point_and_accuracy() -> None:
    geo = GeoLookup([CITY], embedded=False)
    info = geo.lookup("81.2.69.142")
    assert (round(info.lat, 2), round(info.lon, 2), info.accuracy_km) == (51.51, -0.09, 10.0)
    assert geo.lookup("89.160.20.112").accuracy_km == 76
    assert "city" in geo.databases[0].answers
    geo.close()


@needs_test_data
def test_user_asn_database_takes_precedence_over_embedded_and_org_filled_from_same_asn(tmp_path: Path) -> None:
    geo = GeoLookup([ASN])
    assert geo.lookup("1.0.0.1").org == "Google Inc."  # the test DB, not the embedded Cloudflare
    assert geo.lookup("1.0.0.1").asn == 15169
    info = geo.lookup("12.81.96.1")  # no organisation in the user's DB: the embedded one names AS7018
    assert info.asn == 7018 and info.org is not None and "AT&T" in info.org
    geo.close()


def test_embedded_asn_is_readable_by_geoip2() -> None:
    import geoip2.database

    with geoip2.database.Reader(str(EMBEDDED_ASN)) as reader:
        response = reader.asn("1.1.1.1")
        assert (response.autonomous_system_number, response.autonomous_system_organization) == (
            13335, "Cloudflare, Inc.")
        assert reader.asn("2001:4860:4860::8888").autonomous_system_number == 15169
    assert EMBEDDED_ASN.stat().st_size < 15_000_000


def test_disagreement_between_databases(tmp_path: Path) -> None:
    dbip = write_mmdb(tmp_path / "dbip.mmdb", "DBIP-Country-Lite",
                      {"5.6.7.0/24": {"country": {"iso_code": "CN"}}})
    lite = write_mmdb(tmp_path / "lite.mmdb", "GeoLite2-Country",
                      {"5.6.7.0/24": {"country": {"iso_code": "HK"}, "registered_country": {"iso_code": "CN"}}})
    geo = GeoLookup([dbip, lite], embedded=False)
    assert [db.layout for db in geo.databases] == ["dbip-country", "geoip2-country"]
    info = geo.lookup("5.6.7.8")
    assert (info.cc, info.registered_cc, info.db) == ("CN", "CN", "dbip.mmdb")
    assert info.agree is False
    assert info.disagreement() == "DBIP-Country-Lite says CN, GeoLite2-Country says HK"
    geo.close()


def test_flat_city_and_dbip_city_coordinates(tmp_path: Path) -> None:
    flat = write_mmdb(tmp_path / "flat.mmdb", "ip-location-db-city",
                      {"5.6.7.0/24": {"country_code": "DE", "city": "Berlin", "latitude": 52.5, "longitude": 13.4}})
    geo = GeoLookup([flat], embedded=False)
    info = geo.lookup("5.6.7.8")
    assert (geo.databases[0].layout, info.cc, info.lat, info.lon, info.accuracy_km) == (
        "flat-city", "DE", 52.5, 13.4, None)
    geo.close()


# --- discovery and freshness --------------------------------------------------------------------


@needs_test_data
def test_discovery_order_env_then_conf_then_system(tmp_path: Path) -> None:
    env_dir, conf_dir, sys_dir = (tmp_path / n for n in ("env", "conf", "sys"))
    for d, db in ((env_dir, ASN), (conf_dir, COUNTRY), (sys_dir, CITY)):
        d.mkdir()
        (d / db.name).write_bytes(db.read_bytes())
    (sys_dir / ASN.name).write_bytes(ASN.read_bytes())  # same name elsewhere: a different file, kept
    conf = tmp_path / "GeoIP.conf"
    conf.write_text(f"# geoipupdate\nAccountID 0\nDatabaseDirectory {conf_dir}  # comment\n")
    search = SearchPath(env={"GEOIPUPDATE_DB_DIR": str(env_dir), "GEOIPUPDATE_CONF_FILE": str(conf)},
                        conf_files=(str(tmp_path / "missing.conf"),), dirs=(str(sys_dir), str(tmp_path / "no")))
    found = [(p.parent.name, p.name, how) for p, how in discover(search)]
    assert found == [
        ("env", ASN.name, "GEOIPUPDATE_DB_DIR"), ("conf", COUNTRY.name, f"DatabaseDirectory in {conf}"),
        ("sys", CITY.name, str(sys_dir)), ("sys", ASN.name, str(sys_dir)),
    ]
    geo = GeoLookup([], embedded=False, search=search)
    assert [db.found_by for db in geo.databases][:2] == ["GEOIPUPDATE_DB_DIR", f"DatabaseDirectory in {conf}"]
    geo.close()
    assert discover(SearchPath()) == []


@needs_test_data
def test_discovered_broken_database_is_skipped_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "broken.mmdb").write_bytes(INVALID.read_bytes())
    (tmp_path / "country.mmdb").write_bytes(COUNTRY.read_bytes())
    geo = GeoLookup([], embedded=False, search=SearchPath(dirs=(str(tmp_path),)))
    assert [db.name for db in geo.databases] == ["country.mmdb"]
    assert len(geo.warnings) == 1 and "broken.mmdb" in geo.warnings[0]
    geo.close()


@needs_test_data
def test_given_database_is_not_loaded_twice_when_also_discovered() -> None:
    geo = GeoLookup([COUNTRY], embedded=False, search=SearchPath(dirs=(str(TEST_DATA),)))
    names = [db.name for db in geo.databases]
    assert names.count(COUNTRY.name) == 1 and geo.databases[0].found_by == "--geoip"
    geo.close()


def test_freshness_with_injected_today(tmp_path: Path) -> None:
    from datetime import date

    geo = GeoLookup(today=date(2026, 7, 31))  # 60 days after the DB-IP build: not yet stale
    db, asn = geo.databases
    assert (db.age_days, db.stale, asn.age_days, asn.stale) == (60, False, 44, False)
    assert geo.freshness_warnings() == []
    geo.close()
    geo = GeoLookup(today=date(2026, 11, 25))
    assert (geo.databases[0].age_days, geo.databases[0].stale) == (177, True)
    assert geo.freshness_warnings(used_only=True) == []  # nothing looked up yet
    geo.lookup("52.81.100.10")
    [warning, _] = geo.freshness_warnings(used_only=True)
    assert warning.startswith("GeoIP database dbip-country.mmdb was built 2026-06-01, 177 days ago")
    assert geo.databases[0].as_dict()["stale"] is True
    geo.close()


# --- fast paths: the same answers as the slow ones ------------------------------------------------


def _probes(edges: list[int], bits: int, seed: int) -> list[int]:
    """Every run edge, the address before it, and random addresses."""
    rnd = random.Random(seed)
    probes = {e + d for e in edges for d in (-1, 0, 1)} | {rnd.getrandbits(bits) for _ in range(3000)}
    return sorted(p for p in probes if 0 <= p < 1 << bits)


@pytest.mark.parametrize(("version", "bits"), [(4, 32), (6, 128)])
def test_local_runs_answer_as_the_scope_properties(version: int, bits: int) -> None:
    runs = _local_runs(version)
    assert runs is not None
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    for ip in _probes(runs[0], bits, version):
        addr = normalize(make(ip))
        assert _is_local_fast(addr) == _is_local_addr(addr), addr


@pytest.mark.parametrize(("version", "bits"), [(4, 32), (6, 128)])
def test_listed_anycast_by_runs_names_the_first_listed_prefix(version: int, bits: int) -> None:
    nets = [n for n in anycast_list()[0] if n.version == version]
    edges = sorted({int(n.network_address) for n in nets} | {int(n.broadcast_address) + 1 for n in nets})
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    for ip in _probes(edges, bits, version + 10):
        addr = make(ip)
        first = next((f"anycast.toml prefix {n}" for n in nets if addr in n), None)
        assert _listed_anycast(addr, None) == first, addr


@pytest.mark.parametrize("text", ["8.8.8.8", " 8.8.8.8\n", "0.0.0.0", "2001:db8::1", "2001:DB8::1", "2001:db8:0:0::1",
                                  "::ffff:1.2.3.4", "::1.2.3.4", "::", "fe80::1%eth0"])
def test_parse_answers_as_ipaddress(text: str) -> None:
    parsed = _parse(text)
    assert (parsed, str(parsed), type(parsed)) == (ipaddress.ip_address(text.strip()),
                                                   str(ipaddress.ip_address(text.strip())),
                                                   type(ipaddress.ip_address(text.strip())))


@pytest.mark.parametrize("bad", ["01.2.3.4", "1.2.3", "1.2.3.4/32", "1:2:3:4:5:6:7:8:9", "1.2.3.4\x00", "１.２.３.４"])
def test_parse_rejects_what_ipaddress_rejects(bad: str) -> None:
    with pytest.raises(CallauditError):
        _parse(bad)


class _Records:
    """A stand-in reader: records by address text, with value types mmdb-writer would merge."""

    def __init__(self, records: dict[str, dict]) -> None:
        self.records = records

    def get(self, addr: object) -> dict | None:
        return self.records.get(str(addr))

    def close(self) -> None:
        pass


def test_addresses_of_one_record_share_one_answer_and_each_counts(tmp_path: Path) -> None:
    path = write_mmdb(tmp_path / "c.mmdb", "cc", {"1.2.3.0/24": {"country_code": "FR"}})
    with GeoLookup([path], embedded=False) as geo:
        first, second = geo.lookup("1.2.3.4"), geo.lookup("1.2.3.5")
        assert first is second and first.cc == "FR"
        assert geo.usage() == {str(path): 2}
        source = geo._sources[0]
        source._raw.close()
        source._raw = _Records({"1.2.4.1": {"country_code": "DE", "asn": 64500},
                                "1.2.4.2": {"country_code": "DE", "asn": 64500.0},  # equal, but not read alike
                                "1.2.4.3": {"country_code": "DE", "asn": 64500}})
        assert [geo.lookup(f"1.2.4.{i}").asn for i in (1, 2, 3)] == [64500, None, 64500]
        assert geo.usage() == {str(path): 5}
