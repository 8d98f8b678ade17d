"""GeoIP over MMDB files: which country (and network) answers for a server address.

User databases answer first, in the order given; the embedded DB-IP Country Lite answers last. Each file
is classified by its metadata and a sample record, never by its name, because the same file name is used
for very different layouts (MaxMind GeoIP2, DB-IP, ip-location-db, IPinfo Lite).
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import geoip2.database
import geoip2.errors
import maxminddb
import maxminddb.errors

from analyzer.errors import CallauditError

DATA_DIR = Path(__file__).resolve().parent / "data" / "geoip"
EMBEDDED_DB = DATA_DIR / "dbip-country.mmdb"

# Attribution that the licence of a database layout asks for, keyed by a substring of database_type.
_TYPE_ATTRIBUTION = {
    "DBIP": "IP Geolocation by DB-IP (https://db-ip.com)",
    "GeoLite2": "This product includes GeoLite2 data created by MaxMind, available from https://www.maxmind.com",
    "ipinfo": "IP address data powered by IPinfo (https://ipinfo.io)",
}

# Addresses that belong to no jurisdiction (IANA special-purpose registries, RFC 6890 and successors),
# listed explicitly so the answer does not depend on the Python version's idea of "private".
_LOCAL_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
        "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001:2::/48", "2001:db8::/32", "2001:10::/28",
        "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# geoip2 accepts a method only when this substring is in database_type (see geoip2.database.Reader).
_GEOIP2_METHOD = {
    "geoip2-country": ("country", "Country"),
    "geoip2-city": ("city", "City"),
    "dbip-city": ("city", "City"),
    "geoip2-asn": ("asn", "GeoLite2-ASN"),
    "geoip2-isp": ("isp", "GeoIP2-ISP"),
}

_SAMPLE_RECORDS = 32

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class GeoDatabase:
    """One MMDB file and what it can answer; carried into reports so every answer names its source."""

    path: str
    name: str
    type: str
    layout: str
    build_date: str
    embedded: bool
    attribution: str | None

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "name": self.name,
            "type": self.type,
            "layout": self.layout,
            "build_date": self.build_date,
            "embedded": self.embedded,
            "attribution": self.attribution,
        }


@dataclass(frozen=True)
class GeoInfo:
    """Where one address is: located and registered country, network, and which database said so."""

    scope: str
    cc: str | None = None
    registered_cc: str | None = None
    asn: int | None = None
    org: str | None = None
    db: str | None = None
    db_date: str | None = None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _parse(ip: str) -> Address:
    try:
        return ipaddress.ip_address(ip.strip() if isinstance(ip, str) else ip)
    except ValueError as err:
        raise CallauditError(f"not an IP address: {ip!r}") from err


def normalize(addr: Address) -> Address:
    """IPv4 hidden in IPv6 (mapped, 6to4, NAT64 64:ff9b::/96) as plain IPv4: flat DBs do not alias them."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.sixtofour is not None:
            return addr.sixtofour
        if addr in _NAT64:
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


def _is_local_addr(addr: Address) -> bool:
    if addr.is_multicast or addr.is_unspecified or addr.is_loopback or addr.is_link_local:
        return True
    if addr.is_reserved or addr.is_private or not addr.is_global:
        return True
    return any(addr.version == net.version and addr in net for net in _LOCAL_NETS)


def is_local(ip: str) -> bool:
    """True for addresses no jurisdiction owns (private, CGNAT, link-local, multicast, documentation, ...)."""
    return _is_local_addr(normalize(_parse(ip)))


def _iso_date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).date().isoformat()


def _sample_keys(reader: maxminddb.Reader) -> tuple[set[str], dict[str, Any]]:
    """Union of keys over the first records, and one record: enough to tell flat from nested layouts."""
    keys: set[str] = set()
    first: dict[str, Any] = {}
    it: Iterator = iter(reader)
    for _ in range(_SAMPLE_RECORDS):
        try:
            _, record = next(it)
        except StopIteration:
            break
        if isinstance(record, dict):
            keys.update(record)
            first = first or record
    return keys, first


def _classify(db_type: str, keys: set[str], sample: dict[str, Any]) -> str | None:
    country = sample.get("country")
    if "country_code" in keys or isinstance(country, str):
        return "ipinfo-lite" if {"asn", "as_name"} & keys else "flat-country"
    if {"country", "registered_country"} & keys:
        if "City" in db_type or {"city", "location"} & keys:
            if "DBIP" in db_type.upper() and "registered_country" not in keys:
                return "dbip-city"
            return "geoip2-city"
        return "geoip2-country"
    if "autonomous_system_number" in keys:
        return "geoip2-isp" if "isp" in keys or "ISP" in db_type else "geoip2-asn"
    return None


def _attribution(db_type: str, layout: str, description: str) -> str | None:
    text = f"{db_type} {description}"
    if layout == "ipinfo-lite":
        return _TYPE_ATTRIBUTION["ipinfo"]
    for marker, attribution in _TYPE_ATTRIBUTION.items():
        if marker.lower() in text.lower().replace("-", ""):
            return attribution
    return None


def _embedded_attribution() -> str | None:
    try:
        sources = tomllib.loads((DATA_DIR / "SOURCES.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    for entry in sources.values():
        if isinstance(entry, dict) and entry.get("file") == EMBEDDED_DB.name:
            return entry.get("attribution")
    return None


def _asn_number(value: Any) -> int | None:
    """IPinfo writes "AS15169", MaxMind writes 15169."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        digits = value.strip().upper().removeprefix("AS")
        return int(digits) if digits.isdigit() else None
    return None


def _iso(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("iso_code")
    return value.upper() if isinstance(value, str) and len(value) == 2 else None


@dataclass
class _Answer:
    cc: str | None = None
    registered_cc: str | None = None
    asn: int | None = None
    org: str | None = None


class _Source:
    """An open database plus the way to read its layout (geoip2 where it accepts the file, raw otherwise)."""

    def __init__(self, path: Path, embedded: bool) -> None:
        self.path = path
        try:
            self._raw = maxminddb.open_database(str(path))
        except (maxminddb.errors.InvalidDatabaseError, OSError, ValueError) as err:
            raise CallauditError(f"cannot read GeoIP database {path}: {_one_line(err)}") from err
        self._geoip2: geoip2.database.Reader | None = None
        try:
            meta = self._raw.metadata()
            keys, sample = _sample_keys(self._raw)
        except (maxminddb.errors.InvalidDatabaseError, ValueError) as err:
            self._raw.close()
            raise CallauditError(f"cannot read GeoIP database {path}: {_one_line(err)}") from err
        db_type = str(meta.database_type)
        self._ipv4_only = meta.ip_version == 4
        layout = _classify(db_type, keys, sample)
        if layout is None:
            self._raw.close()
            raise CallauditError(
                f"GeoIP database {path} (type {db_type!r}) has neither country nor ASN records"
            )
        method = _GEOIP2_METHOD.get(layout)
        if method is not None and method[1] in db_type:
            self._geoip2 = geoip2.database.Reader(str(path))
            self._method = method[0]
        description = meta.description.get("en", "") if isinstance(meta.description, dict) else ""
        self.info = GeoDatabase(
            path=str(path),
            name=path.name,
            type=db_type,
            layout=layout,
            build_date=_iso_date(int(meta.build_epoch)),
            embedded=embedded,
            attribution=_embedded_attribution() if embedded else _attribution(db_type, layout, description),
        )

    def answer(self, addr: Address) -> _Answer | None:
        if addr.version == 6 and self._ipv4_only:
            return None
        try:
            if self._geoip2 is not None:
                return self._answer_geoip2(addr)
            record = self._raw.get(addr)
        except geoip2.errors.AddressNotFoundError:
            return None
        except (maxminddb.errors.InvalidDatabaseError, ValueError) as err:
            raise CallauditError(f"cannot read GeoIP database {self.path}: {_one_line(err)}") from err
        if not isinstance(record, dict):
            return None
        return _Answer(
            cc=_iso(record.get("country_code")) or _iso(record.get("country")),
            registered_cc=_iso(record.get("registered_country")),
            asn=_asn_number(record.get("autonomous_system_number", record.get("asn"))),
            org=record.get("autonomous_system_organization") or record.get("as_name"),
        )

    def _answer_geoip2(self, addr: Address) -> _Answer:
        assert self._geoip2 is not None
        response = getattr(self._geoip2, self._method)(addr)
        if self._method in ("country", "city"):
            traits = response.traits
            return _Answer(
                cc=response.country.iso_code,
                registered_cc=response.registered_country.iso_code,
                asn=getattr(traits, "autonomous_system_number", None),
                org=getattr(traits, "autonomous_system_organization", None),
            )
        org = response.autonomous_system_organization
        if self._method == "isp":
            org = org or response.organization or response.isp
        return _Answer(asn=response.autonomous_system_number, org=org)

    def close(self) -> None:
        if self._geoip2 is not None:
            self._geoip2.close()
        self._raw.close()


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders as their *.mmdb files in name order, so the priority is predictable."""
    files: list[Path] = []
    for entry in paths:
        path = Path(entry).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".mmdb" and p.is_file())
            if not found:
                raise CallauditError(f"no .mmdb files in GeoIP folder {path}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CallauditError(f"GeoIP database not found: {path}")
    return files


class GeoLookup:
    """Answers GeoInfo for addresses from an ordered list of databases; one answer per address, cached."""

    def __init__(self, paths: Iterable[str | Path] = (), embedded: bool = True) -> None:
        self._sources: list[_Source] = []
        self._cache: dict[str, GeoInfo] = {}
        try:
            for path in _expand(paths):
                self._sources.append(_Source(path, embedded=False))
            if embedded:
                self._sources.append(_Source(EMBEDDED_DB, embedded=True))
        except CallauditError:
            self.close()
            raise
        self.databases: list[GeoDatabase] = [source.info for source in self._sources]

    def lookup(self, ip: str) -> GeoInfo:
        """Local addresses are never looked up; public ones take cc and ASN from the first DB that knows."""
        cached = self._cache.get(ip)
        if cached is not None:
            return cached
        addr = normalize(_parse(ip))
        info = GeoInfo(scope="local") if _is_local_addr(addr) else self._locate(addr)
        self._cache[ip] = info
        return info

    def _locate(self, addr: Address) -> GeoInfo:
        country: tuple[str | None, str | None, GeoDatabase] | None = None
        registered_only: str | None = None
        network: tuple[int | None, str | None] | None = None
        for source in self._sources:
            answer = source.answer(addr)
            if answer is None:
                continue
            if country is None and answer.cc:
                country = (answer.cc, answer.registered_cc, source.info)
            elif registered_only is None and answer.registered_cc:
                registered_only = answer.registered_cc
            if network is None and answer.asn is not None:
                network = (answer.asn, answer.org)
            if country is not None and network is not None:
                break
        asn, org = network or (None, None)
        if country is None:
            return GeoInfo(scope="public", registered_cc=registered_only, asn=asn, org=org)
        cc, registered_cc, db = country
        return GeoInfo("public", cc, registered_cc, asn, org, db.name, db.build_date)

    def close(self) -> None:
        for source in self._sources:
            source.close()
        self._sources = []
        self._cache.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
