"""Which conferencing vendor a flow belongs to, from rules kept as data (analyzer/data/vendors.toml).

Evidence has a strength, and the strongest that matches wins, so a weak clue never overrides a strong one:
a server name's domain (or a TURN realm's), then protocol evidence (Zoom's encapsulation, vendor-specific STUN attributes or
message types), then the server's ASN, then an ASN shared with other services (Microsoft, Meta, Google) that
counts only when the same capture already shows the vendor by stronger evidence, then the server port.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files

# Keys protocol modules put in `details` for STUN attribute types and message types (ints or "0x8070" text).
STUN_ATTR_KEYS = ("stun_attributes", "stun_attrs")
STUN_TYPE_KEYS = ("stun_types",)
NAME_CACHE = 100_000  # server names whose domain match is remembered (hostile captures have unbounded names)
Hit = tuple[str | None, str | None]  # (vendor slug, the evidence that matched)


@dataclass(frozen=True)
class Rules:
    domains: tuple[tuple[str, str], ...]  # (suffix, vendor), longest suffix first
    details: tuple[tuple[str, str], ...]  # (details key whose presence is protocol evidence, vendor)
    stun_attrs: dict[int, str]
    stun_types: dict[int, str]
    asns: dict[int, str]
    context_asns: dict[int, tuple[str, ...]]  # ASN -> vendors it may mean when the capture shows them
    udp_ports: tuple[tuple[int, int, str], ...]
    context_udp_ports: tuple[tuple[int, int, str], ...]
    # server name -> (suffix, vendor) or None: a capture has far fewer names than flows
    name_hits: dict[str, tuple[str, str] | None] = field(default_factory=dict, compare=False, repr=False)
    # suffix -> its first (suffix, vendor) in `domains`: a name is tried label by label, not against every suffix
    by_suffix: dict[str, tuple[str, str]] = field(default_factory=dict, compare=False, repr=False)

    def domain(self, name: str) -> tuple[str, str] | None:
        """(suffix, vendor) of the longest listed domain that `name` (lower case, no final dot) is in."""
        if name in self.name_hits:
            return self.name_hits[name]
        if not self.by_suffix:
            for suffix, vendor in self.domains:
                self.by_suffix.setdefault(suffix, (suffix, vendor))
        # the name itself, then what follows each dot: longest first, as `domains` is sorted
        hit = self.by_suffix.get(name)
        at = name.find(".")
        while hit is None and at >= 0:
            hit = self.by_suffix.get(name[at + 1:])
            at = name.find(".", at + 1)
        if len(self.name_hits) < NAME_CACHE:
            self.name_hits[name] = hit
        return hit


def _ranges(spec: list) -> list[tuple[int, int]]:
    return [(int(r[0]), int(r[1])) if isinstance(r, list) else (int(r), int(r)) for r in spec]


@lru_cache(maxsize=1)
def rules() -> Rules:
    data = tomllib.loads(files("analyzer").joinpath("data/vendors.toml").read_text())
    domains, details, attrs, types, asns, ctx_asns, ports, ctx_ports = [], [], {}, {}, {}, {}, [], []
    for vendor, spec in data.items():
        domains += [(d.lower(), vendor) for d in spec.get("domains", [])]
        details += [(k, vendor) for k in spec.get("details", [])]
        attrs.update({int(a): vendor for a in spec.get("stun_attrs", [])})
        for lo, hi in _ranges(spec.get("stun_types", [])):
            types.update({t: vendor for t in range(lo, hi + 1)})
        asns.update({int(a): vendor for a in spec.get("asns", [])})
        for a in spec.get("context_asns", []):
            ctx_asns[int(a)] = (*ctx_asns.get(int(a), ()), vendor)
        ports += [(lo, hi, vendor) for lo, hi in _ranges(spec.get("udp_ports", []))]
        ctx_ports += [(lo, hi, vendor) for lo, hi in _ranges(spec.get("context_udp_ports", []))]
    domains.sort(key=lambda p: -len(p[0]))
    return Rules(tuple(domains), tuple(details), attrs, types, asns, ctx_asns, tuple(ports), tuple(ctx_ports))


def _ints(values: object) -> list[int]:
    out = []
    for v in values if isinstance(values, (list, tuple, set)) else []:
        try:
            out.append(int(v, 0) if isinstance(v, str) else int(v))
        except (TypeError, ValueError):
            continue
    return out


def strong(row: dict) -> Hit:
    """Evidence that names a vendor on its own: domain, protocol, ASN."""
    return (_by_name(row.get("server_name"), row.get("server_name_source"))
            or _by_details(row.get("details")) or _by_asn(_asn(row.get("resp_asn"))) or (None, None))


def _by_name(name: object, source: object) -> Hit | None:
    if isinstance(name, str) and name:
        hit = rules().domain(name.lower().rstrip("."))
        if hit is not None:
            return hit[1], f"domain {hit[0]} ({source or 'name'})"
    return None


@lru_cache(maxsize=1)
def _detail_keys() -> frozenset[str]:
    """Every details key strong evidence reads: details without them cannot name a vendor."""
    return frozenset({"realm", *(k for k, _ in rules().details), *STUN_ATTR_KEYS, *STUN_TYPE_KEYS})


def _by_details(details: object) -> Hit | None:
    if not isinstance(details, dict) or _detail_keys().isdisjoint(details):
        return None
    r = rules()
    realm = details.get("realm")  # a TURN server's REALM is its operator's domain (Signal: signal.org)
    if isinstance(realm, str) and realm:
        hit = r.domain(realm.lower().rstrip("."))
        if hit is not None:
            return hit[1], f"STUN realm {hit[0]}"
    for key, vendor in r.details:
        if details.get(key):
            return vendor, f"protocol: {key}"
    for key in STUN_ATTR_KEYS:
        for a in _ints(details.get(key)):
            if a in r.stun_attrs:
                return r.stun_attrs[a], f"STUN attribute 0x{a:04x}"
    for key in STUN_TYPE_KEYS:
        for t in _ints(details.get(key)):
            if t in r.stun_types:
                return r.stun_types[t], f"STUN message type 0x{t:04x}"
    return None


def _by_asn(asn: int | None) -> Hit | None:
    asns = rules().asns
    return (asns[asn], f"AS{asn}") if asn is not None and asn in asns else None


def weak(row: dict, context: set[str]) -> Hit:
    """Evidence that needs help: a shared ASN with the vendor seen elsewhere in the capture, then ports."""
    return _weak(_asn(row.get("resp_asn")), row.get("proto"), row.get("resp_p"), context)


def _weak(asn: int | None, proto: object, port: object, context: set[str] | frozenset[str]) -> Hit:
    r = rules()
    for vendor in r.context_asns.get(asn, ()) if asn is not None else ():
        if vendor in context:
            return vendor, f"AS{asn} with {vendor} elsewhere in the capture"
    if proto == "udp":
        for lo, hi, vendor in r.udp_ports:
            if port is not None and lo <= port <= hi:
                return vendor, f"udp port {port}"
        for lo, hi, vendor in r.context_udp_ports:
            if port is not None and lo <= port <= hi and vendor in context:
                return vendor, f"udp port {port} with {vendor} elsewhere in the capture"
    return None, None


def _asn(value: object) -> int | None:
    """An ASN as int; None for missing values (None, NaN, pandas NA)."""
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def attribute(row: dict, context: set[str] | None = None) -> tuple[str | None, str | None]:
    """(vendor slug, the evidence that matched) for one flow row, or (None, None)."""
    vendor, evidence = strong(row)
    return (vendor, evidence) if vendor else weak(row, context or set())


def attribute_rows(rows: list[dict]) -> list[Hit]:
    """Attribute every row; the vendors strong evidence finds in a capture are the context for weak rules."""
    keys = ("capture", "server_name", "server_name_source", "resp_asn", "proto", "resp_p", "details")
    return attribute_columns(*([r.get(k) for r in rows] for k in keys))


def attribute_columns(capture: list, server_name: list, server_name_source: list, resp_asn: list, proto: list,
                      resp_p: list, details: list) -> list[Hit]:
    """`attribute_rows` over columns (a flow table's `tolist()`s). Rows share names, ASNs and ports far
    more than they differ, so each piece of evidence is judged once per distinct value (and value type,
    which the evidence text shows) rather than once per row."""
    by_name: dict[tuple, Hit | None] = {}
    by_asn: dict[object, int | None] = {}
    asn_hits = {asn: (vendor, f"AS{asn}") for asn, vendor in rules().asns.items()}
    detail_keys = _detail_keys()
    asns, first = [], []
    none = (None, None)
    for name, source, detail, value in zip(server_name, server_name_source, details, resp_asn, strict=True):
        try:
            asn = by_asn[value]
        except KeyError:
            asn = by_asn[value] = _asn(value)
        except TypeError:  # unhashable, or pd.NA compared with an equal hash
            asn = _asn(value)
        asns.append(asn)
        hit = None
        if isinstance(name, str) and name:
            key = (name, source, type(source))
            try:
                hit = by_name[key]
            except KeyError:
                hit = by_name[key] = _by_name(name, source)
            except TypeError:
                hit = _by_name(name, source)
        if hit is None and isinstance(detail, dict) and not detail_keys.isdisjoint(detail):
            hit = _by_details(detail)
        first.append(hit or asn_hits.get(asn, none))  # type: ignore[arg-type]
    context: dict[object, set[str]] = {}
    for cap, (vendor, _) in zip(capture, first, strict=True):
        if vendor:
            context.setdefault(cap, set()).add(vendor)
    weak_hits: dict[tuple, Hit] = {}
    out = []
    for cap, hit, asn, prot, port in zip(capture, first, asns, proto, resp_p, strict=True):
        if not hit[0]:
            key = (cap, asn, prot, type(prot), port, type(port))
            try:
                hit = weak_hits[key]
            except KeyError:
                hit = weak_hits[key] = _weak(asn, prot, port, context.get(cap, set()))
            except TypeError:
                hit = _weak(asn, prot, port, context.get(cap, set()))
        out.append(hit)
    return out
