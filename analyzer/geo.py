"""GeoIP over MMDB files: where a server address is located, where its network is registered, who runs it.

Every database answers; none is trusted alone. User databases (given with --geoip or found where
geoipupdate puts them) come first in priority order, the embedded DB-IP country and ip-location-db ASN data
last. The located country is the first database's answer, and every database's country answer is kept so
that a disagreement is visible. Each file is classified by its metadata and a sample of records, never by
its name, because the same name is used for very different layouts (MaxMind, DB-IP, ip-location-db, IPinfo).
"""

from __future__ import annotations

import bisect
import ipaddress
import os
import socket
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Self

import maxminddb
import maxminddb.errors

from analyzer.capture import path_text
from analyzer.errors import CallauditError

DATA_DIR = Path(__file__).resolve().parent / "data" / "geoip"
EMBEDDED_DB = DATA_DIR / "dbip-country.mmdb"
EMBEDDED_ASN = DATA_DIR / "asn.mmdb"
EMBEDDED = (EMBEDDED_DB, EMBEDDED_ASN)
ANYCAST_FILE = Path(__file__).resolve().parent / "data" / "anycast.toml"
STALE_DAYS = 60

# Where geoipupdate and distributions put databases, in the order they are searched (see `SearchPath`).
CONF_FILES = ("/etc/GeoIP.conf", "/usr/local/etc/GeoIP.conf")
SYSTEM_DIRS = ("/usr/share/GeoIP", "/var/lib/GeoIP", "/usr/local/share/GeoIP")

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
# the same networks as (version, network, mask) integers: `addr in net` for each cost ~20 us per address
_LOCAL_RANGES = {v: tuple((int(n.network_address), int(n.netmask)) for n in _LOCAL_NETS if n.version == v)
                 for v in (4, 6)}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# What each layout can answer; "registered" only where the layout has registered_country.
_ANSWERS = {
    "geoip2-country": ("country", "registered", "represented", "anycast"),
    "geoip2-city": ("country", "registered", "represented", "anycast", "city"),
    "geoip2-enterprise": ("country", "registered", "represented", "anycast", "city", "asn"),
    "dbip-country": ("country",),
    "dbip-city": ("country", "city"),
    "flat-country": ("country",),
    "flat-city": ("country", "city"),
    "ipinfo-lite": ("country", "asn"),
    "geoip2-asn": ("asn",),
    "geoip2-isp": ("asn",),
}
ROLES = ("country", "registered", "asn", "city", "anycast")

_SAMPLE_RECORDS = 32
ANSWER_CACHE = 100_000  # distinct flat records whose reading is remembered per database (countries, ASNs)

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
    found_by: str = "--geoip"
    age_days: int | None = None
    answers: tuple[str, ...] = ()

    @property
    def stale(self) -> bool:
        return self.age_days is not None and self.age_days > STALE_DAYS

    @property
    def label(self) -> str:
        """How reasons name it: "DB-IP" for the embedded country data, else the database type."""
        if self.embedded:
            return "DB-IP" if "country" in self.answers else "ip-location-db ASN"
        return self.type

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "name": self.name,
            "type": self.type,
            "layout": self.layout,
            "build_date": self.build_date,
            "embedded": self.embedded,
            "attribution": self.attribution,
            "found_by": self.found_by,
            "answers": list(self.answers),
            "age_days": self.age_days,
            "stale": self.stale,
        }


@dataclass(frozen=True)
class GeoInfo:
    """Where one address is, by every database: the first answer of each kind, and each country answer."""

    scope: str
    cc: str | None = None
    registered_cc: str | None = None
    asn: int | None = None
    org: str | None = None
    db: str | None = None
    db_date: str | None = None
    represented_cc: str | None = None
    represented_type: str | None = None
    lat: float | None = None
    lon: float | None = None
    accuracy_km: float | None = None
    is_anycast: bool | None = None
    anycast_source: str | None = None
    sources: tuple[tuple[str, str], ...] = ()  # (database label, country) for every database that answered

    @property
    def agree(self) -> bool | None:
        """True when every database with a country answer gives the same one; None without answers."""
        return len({cc for _, cc in self.sources}) <= 1 if self.sources else None

    def disagreement(self) -> str | None:
        """ "DB-IP says CN, GeoLite2-Country says HK", or None when they agree."""
        if self.agree is not False:
            return None
        return ", ".join(f"{label} says {cc}" for label, cc in self.sources)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _parse(ip: str) -> Address:
    if isinstance(ip, str):  # canonical text (all a capture yields) through the C parser: a tenth of the time
        text = ip.strip()
        family = socket.AF_INET6 if ":" in text else socket.AF_INET
        try:
            packed = socket.inet_pton(family, text)
        except (OSError, ValueError):  # ValueError: a NUL in the text
            packed = b""
        if packed and socket.inet_ntop(family, packed) == text:
            return ipaddress.IPv4Address(packed) if family == socket.AF_INET else ipaddress.IPv6Address(packed)
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
    ip = int(addr)
    return any(ip & mask == net for net, mask in _LOCAL_RANGES[addr.version])


def _networks(value: object) -> Iterator[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks (an address as its /32 or /128) in an ipaddress constant or a collection of them."""
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        yield value
    elif isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        yield ipaddress.ip_network(value)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _networks(item)


def _edges(nets: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network], version: int) -> list[int]:
    """Sorted first addresses of the runs over which membership in every one of `nets` is constant."""
    top = 1 << (32 if version == 4 else 128)
    return sorted(({0} | {int(n.network_address) for n in nets} | {int(n.broadcast_address) + 1 for n in nets})
                  - {top})


@cache
def _local_runs(version: int) -> tuple[list[int], list[bool]] | None:
    """`_is_local_addr` as runs (first address, answer) for normalized addresses, or None if unknown.

    The stdlib's scope properties and _LOCAL_NETS are memberships in networks (the constants of
    ipaddress), so the answer can only change at a network's edge: judged once per run, here, it
    follows this Python version's rules exactly at a bisect per address instead of ~10 us."""
    consts = getattr(ipaddress, "_IPv4Constants" if version == 4 else "_IPv6Constants", None)
    if consts is None:
        return None
    nets = [n for n in _LOCAL_NETS if n.version == version]
    nets += [n for v in vars(consts).values() for n in _networks(v) if n.version == version]
    if version == 4:
        nets.append(ipaddress.IPv4Network("100.64.0.0/10"))  # written inline in some versions' is_global
    else:  # what `normalize` maps to IPv4 is never asked: no run straddles it (nor newer versions' IPv4-mapped rules)
        nets += [_NAT64, ipaddress.IPv6Network("::ffff:0:0/96"), ipaddress.IPv6Network("2002::/16")]
    edges = _edges(nets, version)
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return edges, [_is_local_addr(make(e)) for e in edges]


def _is_local_fast(addr: Address) -> bool:
    """`_is_local_addr` for a normalized address, from the precomputed runs where there are any."""
    runs = _local_runs(addr.version)
    if runs is None:
        return _is_local_addr(addr)
    edges, answers = runs
    return answers[bisect.bisect_right(edges, int(addr)) - 1]


def is_local(ip: str) -> bool:
    """True for addresses no jurisdiction owns (private, CGNAT, link-local, multicast, documentation, ...)."""
    return _is_local_fast(normalize(_parse(ip)))


# --- discovery -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchPath:
    """Where to look for databases besides --geoip; injectable so tests never see a machine's real files."""

    env: Mapping[str, str] = field(default_factory=dict)
    conf_files: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()

    @classmethod
    def default(cls) -> SearchPath:
        """The conventional places; CALLAUDIT_GEOIP_SYSTEM_DIRS (os.pathsep-separated, may be empty)
        replaces the system GeoIP.conf files and folders, so test runs can exclude the machine's files."""
        override = os.environ.get("CALLAUDIT_GEOIP_SYSTEM_DIRS")
        if override is not None:
            dirs = tuple(d for d in override.split(os.pathsep) if d)
            return cls(env=dict(os.environ), conf_files=(), dirs=dirs)
        return cls(env=dict(os.environ), conf_files=CONF_FILES, dirs=SYSTEM_DIRS)


def _conf_directory(path: Path) -> str | None:
    """DatabaseDirectory from a geoipupdate GeoIP.conf (`Key value` lines, # comments)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.split("#", 1)[0].strip().partition(" ")
        if key == "DatabaseDirectory" and value.strip():
            return value.strip()
    return None


def discover(search: SearchPath) -> list[tuple[Path, str]]:
    """(database file, how it was found) in priority order: GEOIPUPDATE_DB_DIR, the DatabaseDirectory of
    the first GeoIP.conf ($GEOIPUPDATE_CONF_FILE, then the system ones), then the usual system folders."""
    places: list[tuple[str, str]] = []
    if search.env.get("GEOIPUPDATE_DB_DIR"):
        places.append((search.env["GEOIPUPDATE_DB_DIR"], "GEOIPUPDATE_DB_DIR"))
    confs = ([search.env["GEOIPUPDATE_CONF_FILE"]] if search.env.get("GEOIPUPDATE_CONF_FILE") else [])
    for conf in [*confs, *search.conf_files]:
        directory = _conf_directory(Path(conf))
        if directory:
            places.append((directory, f"DatabaseDirectory in {conf}"))
            break
    places += [(d, d) for d in search.dirs]
    found: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for directory, how in places:
        folder = Path(directory).expanduser()
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() == ".mmdb" and p.is_file()):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                found.append((path, how))
    return found


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


# --- anycast list ----------------------------------------------------------------------------------


@cache
def anycast_list() -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], frozenset[int]]:
    """Well-known anycast prefixes and ASNs from data/anycast.toml (used where no database has the flag)."""
    data = tomllib.loads(ANYCAST_FILE.read_text(encoding="utf-8"))
    nets = tuple(ipaddress.ip_network(entry["prefix"]) for entry in data.get("prefix", []))
    asns = frozenset(int(entry["asn"]) for entry in data.get("asn", []))
    return nets, asns


@cache
def _anycast_runs(version: int) -> tuple[list[int], list[str | None]]:
    """The anycast prefixes as runs (first address, reason of the first listed prefix holding it)."""
    nets = [n for n in anycast_list()[0] if n.version == version]
    edges = _edges(nets, version)
    make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return edges, [next((f"anycast.toml prefix {n}" for n in nets if make(e) in n), None) for e in edges]


def _listed_anycast(addr: Address, asn: int | None) -> str | None:
    edges, reasons = _anycast_runs(addr.version)
    listed = reasons[bisect.bisect_right(edges, int(addr)) - 1]
    if listed is not None:
        return listed
    _, asns = anycast_list()
    if asn is not None and asn in asns:
        return f"anycast.toml AS{asn}"
    return None


# --- one database ----------------------------------------------------------------------------------


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
    dbip = "DBIP" in db_type.upper()
    if "country_code" in keys or isinstance(country, str):
        if {"asn", "as_name"} & keys:
            return "ipinfo-lite"
        return "flat-city" if {"latitude", "city"} & keys else "flat-country"
    if {"country", "registered_country"} & keys:
        if "Enterprise" in db_type:
            return "geoip2-enterprise"
        if "City" in db_type or {"city", "location"} & keys:
            return "dbip-city" if dbip and "registered_country" not in keys else "geoip2-city"
        return "dbip-country" if dbip and "registered_country" not in keys else "geoip2-country"
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


def embedded_sources() -> dict[str, dict]:
    """SOURCES.toml: where each embedded file comes from (package, version, sha256, licence, attribution)."""
    try:
        data = tomllib.loads((DATA_DIR / "SOURCES.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {v["file"]: v for v in data.values() if isinstance(v, dict) and "file" in v}


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


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class _Answer:  # frozen: one reading is shared by every address of a record
    cc: str | None = None
    registered_cc: str | None = None
    represented_cc: str | None = None
    represented_type: str | None = None
    asn: int | None = None
    org: str | None = None
    lat: float | None = None
    lon: float | None = None
    accuracy_km: float | None = None
    is_anycast: bool = False


def _read_record(record: dict[str, Any]) -> _Answer:
    """Every layout in one reader: MaxMind's nested records (country.iso_code, traits, location) and the
    flat ones (country_code, asn "AS15169", as_name, latitude)."""
    traits = record.get("traits") if isinstance(record.get("traits"), dict) else {}
    location = record.get("location") if isinstance(record.get("location"), dict) else {}
    represented = record.get("represented_country") if isinstance(record.get("represented_country"), dict) else {}
    lat = _number(location.get("latitude", record.get("latitude")))
    lon = _number(location.get("longitude", record.get("longitude")))
    org = (record.get("autonomous_system_organization") or record.get("as_name") or record.get("organization")
           or record.get("isp") or traits.get("autonomous_system_organization"))
    asn = record.get("autonomous_system_number", record.get("asn", traits.get("autonomous_system_number")))
    return _Answer(
        cc=_iso(record.get("country_code")) or _iso(record.get("country")),
        registered_cc=_iso(record.get("registered_country")),
        represented_cc=_iso(represented),
        represented_type=represented.get("type") if isinstance(represented.get("type"), str) else None,
        asn=_asn_number(asn),
        org=org if isinstance(org, str) and org.strip() else None,
        lat=lat if lat is not None and lon is not None else None,
        lon=lon if lat is not None and lon is not None else None,
        accuracy_km=_number(location.get("accuracy_radius")) if lat is not None else None,
        is_anycast=bool(traits.get("is_anycast") or record.get("is_anycast")),
    )


class _Source:
    """An open database and what its layout answers."""

    def __init__(self, path: Path, embedded: bool, found_by: str, today: date) -> None:
        self.path = path
        try:
            self._raw = maxminddb.open_database(str(path))
        except (maxminddb.errors.InvalidDatabaseError, OSError, ValueError) as err:
            raise CallauditError(f"cannot read GeoIP database {path}: {_one_line(err)}") from err
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
        description = meta.description.get("en", "") if isinstance(meta.description, dict) else ""
        built = datetime.fromtimestamp(int(meta.build_epoch), tz=UTC).date()
        embedded_info = embedded_sources().get(path.name, {}) if embedded else {}
        self.used = 0
        self._answers: dict[tuple, _Answer] = {}  # flat record (items and value types) -> its reading
        self.info = GeoDatabase(
            path=path_text(path),  # file names with undecodable bytes stay printable in every report
            name=path_text(path.name),
            type=db_type,
            layout=layout,
            build_date=built.isoformat(),
            embedded=embedded,
            attribution=embedded_info.get("attribution") if embedded else _attribution(db_type, layout,
                                                                                         description),
            found_by=found_by,
            age_days=(today - built).days,
            answers=_ANSWERS[layout],
        )

    def answer(self, addr: Address) -> _Answer | None:
        return self.shared_answer(addr)[0]

    def shared_answer(self, addr: Address) -> tuple[_Answer | None, bool]:
        """The answer, and whether it is the one kept for every address of its record."""
        if addr.version == 6 and self._ipv4_only:
            return None, True
        try:
            record = self._raw.get(addr)
        except (maxminddb.errors.InvalidDatabaseError, ValueError) as err:
            raise CallauditError(f"cannot read GeoIP database {self.path}: {_one_line(err)}") from err
        if not isinstance(record, dict):
            return None, True
        try:  # value types in the key: 1, 1.0 and True are equal but do not read alike
            key = (*record.items(), *map(type, record.values()))
            answer = self._answers.get(key)
        except TypeError:  # nested records (MaxMind layouts) are not hashable: read every time
            return _read_record(record), False
        if answer is None:
            answer = _read_record(record)
            if len(self._answers) >= ANSWER_CACHE:
                return answer, False
            self._answers[key] = answer
        return answer, True

    def close(self) -> None:
        self._raw.close()


# --- all databases together ------------------------------------------------------------------------


class GeoLookup:
    """Answers GeoInfo for addresses from an ordered list of databases; one answer per address, cached.

    `paths` are the user's (--geoip) and must all be readable; databases found through `search` that
    cannot be read are skipped with a warning. `today` decides the age of each database (injectable)."""

    def __init__(self, paths: Iterable[str | Path] = (), embedded: bool = True,
                 search: SearchPath | None = None, today: date | None = None) -> None:
        self.today = today or datetime.now(tz=UTC).date()
        self._sources: list[_Source] = []
        self._cache: dict[str, GeoInfo] = {}
        # the databases' answers (by identity: the held answers keep the ids unique) -> their merge
        self._merged: dict[tuple[int, ...], tuple[tuple, dict[str, Any], tuple, str | None, tuple[bool, ...]]] = {}
        self._infos: dict[tuple, GeoInfo] = {}  # (answers' ids, anycast source) -> the one GeoInfo they make
        self.warnings: list[str] = []
        try:
            seen: set[Path] = set()
            for path in _expand(paths):
                seen.add(path.resolve())
                self._sources.append(_Source(path, False, "--geoip", self.today))
            for path, how in discover(search) if search is not None else []:
                if path.resolve() in seen:
                    continue
                try:
                    self._sources.append(_Source(path, False, how, self.today))
                except CallauditError as err:
                    self.warnings.append(f"skipped {err}")
            if embedded:
                for path in EMBEDDED:
                    if path.exists():
                        self._sources.append(_Source(path, True, "embedded", self.today))
        except CallauditError:
            self.close()
            raise
        self.databases: list[GeoDatabase] = [source.info for source in self._sources]
        self._labels = self._unique_labels()

    def _unique_labels(self) -> dict[str, str]:
        """The label of each database, or its file name where two databases share one."""
        labels = [db.label for db in self.databases]
        return {db.path: db.label if labels.count(db.label) == 1 else db.name for db in self.databases}

    def roles(self) -> dict[str, str | None]:
        """Which database answers first for each kind of answer (country, registered, asn, city, anycast)."""
        return {role: next((db.name for db in self.databases if role in db.answers), None) for role in ROLES}

    def usage(self) -> dict[str, int]:
        """Addresses each database contributed an answer to, by file path."""
        return {source.info.path: source.used for source in self._sources}

    def freshness_warnings(self, used_only: bool = False) -> list[str]:
        """One warning per database older than STALE_DAYS (only those that answered, if `used_only`)."""
        out = []
        for source in self._sources:
            db = source.info
            if db.stale and (source.used or not used_only):
                out.append(f"GeoIP database {db.name} was built {db.build_date}, {db.age_days} days ago "
                           f"(older than {STALE_DAYS} days): locations may have moved since")
        return out

    def lookup(self, ip: str) -> GeoInfo:
        """Local addresses are never looked up; public ones are asked of every database."""
        cached = self._cache.get(ip)
        if cached is not None:
            return cached
        addr = normalize(_parse(ip))
        info = GeoInfo(scope="local") if _is_local_fast(addr) else self._locate(addr)
        self._cache[ip] = info
        return info

    def _locate(self, addr: Address) -> GeoInfo:
        found = [source.shared_answer(addr) for source in self._sources]
        answers = tuple(answer for answer, _ in found)
        key = tuple(map(id, answers))
        shared = all(kept for _, kept in found) and len(self._merged) < ANSWER_CACHE
        merged = self._merged.get(key) if shared else None
        if merged is None:
            merged = (answers, *self._merge(answers))
            if shared:
                self._merged[key] = merged
        _, first, sources, anycast_source, contributions = merged
        for source, contributed in zip(self._sources, contributions, strict=True):
            source.used += contributed
        anycast_source = anycast_source or _listed_anycast(addr, first.get("asn"))
        info = self._infos.get((key, anycast_source))
        if info is None:
            info = GeoInfo(scope="public", **first, is_anycast=anycast_source is not None,
                           anycast_source=anycast_source, sources=sources)
            if shared and len(self._infos) < ANSWER_CACHE:
                self._infos[(key, anycast_source)] = info
        return info

    def _merge(self, answers: tuple[_Answer | None, ...]) -> tuple[dict[str, Any], tuple, str | None,
                                                                   tuple[bool, ...]]:
        """The first answer of each kind, every country answer, a database's anycast flag, and which
        databases contributed; the same for every address the databases answer alike."""
        first: dict[str, Any] = {}
        sources: list[tuple[str, str]] = []
        anycast_source = None
        contributions = []
        for source, answer in zip(self._sources, answers, strict=True):
            if answer is None:
                contributions.append(False)
                continue
            db = source.info
            contributed = False
            if answer.cc:
                sources.append((self._labels[db.path], answer.cc))
                if "cc" not in first:
                    first["cc"], first["db"], first["db_date"] = answer.cc, db.name, db.build_date
                    contributed = True
            for key in ("registered_cc", "represented_cc"):
                if key not in first and getattr(answer, key):
                    first[key] = getattr(answer, key)
                    if key == "represented_cc":
                        first["represented_type"] = answer.represented_type
                    contributed = True
            if "asn" not in first and answer.asn is not None:
                first["asn"], first["org"] = answer.asn, answer.org
                contributed = True
            elif first.get("org") is None and answer.org and answer.asn == first.get("asn"):
                first["org"] = answer.org  # same network, a database that also names it
                contributed = True
            if "lat" not in first and answer.lat is not None:
                first["lat"], first["lon"], first["accuracy_km"] = answer.lat, answer.lon, answer.accuracy_km
                contributed = True
            if answer.is_anycast and anycast_source is None:
                anycast_source = f"{db.name} is_anycast"
                contributed = True
            contributions.append(contributed)
        return first, tuple(sources), anycast_source, tuple(contributions)

    def close(self) -> None:
        for source in self._sources:
            source.close()
        self._sources = []
        self._cache.clear()
        self._merged.clear()
        self._infos.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
