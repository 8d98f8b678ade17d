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

    def domain(self, name: str) -> tuple[str, str] | None:
        """(suffix, vendor) of the longest listed domain that `name` (lower case, no final dot) is in."""
        if name in self.name_hits:
            return self.name_hits[name]
        hit = next(((suffix, vendor) for suffix, vendor in self.domains
                    if name == suffix or name.endswith("." + suffix)), None)
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


def strong(row: dict) -> tuple[str | None, str | None]:
    """Evidence that names a vendor on its own: domain, protocol, ASN."""
    r = rules()
    name = row.get("server_name")
    if isinstance(name, str) and name:
        hit = r.domain(name.lower().rstrip("."))
        if hit is not None:
            return hit[1], f"domain {hit[0]} ({row.get('server_name_source') or 'name'})"
    details = row.get("details") if isinstance(row.get("details"), dict) else {}
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
    asn = _asn(row.get("resp_asn"))
    if asn is not None and asn in r.asns:
        return r.asns[asn], f"AS{asn}"
    return None, None


def weak(row: dict, context: set[str]) -> tuple[str | None, str | None]:
    """Evidence that needs help: a shared ASN with the vendor seen elsewhere in the capture, then ports."""
    r = rules()
    asn = _asn(row.get("resp_asn"))
    for vendor in r.context_asns.get(asn, ()) if asn is not None else ():
        if vendor in context:
            return vendor, f"AS{asn} with {vendor} elsewhere in the capture"
    if row.get("proto") == "udp":
        port = row.get("resp_p")
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


def attribute_rows(rows: list[dict]) -> list[tuple[str | None, str | None]]:
    """Attribute every row; the vendors strong evidence finds in a capture are the context for weak rules."""
    first = [strong(r) for r in rows]
    context: dict[object, set[str]] = {}
    for r, (vendor, _) in zip(rows, first, strict=True):
        if vendor:
            context.setdefault(r.get("capture"), set()).add(vendor)
    return [hit if hit[0] else weak(r, context.get(r.get("capture"), set()))
            for r, hit in zip(rows, first, strict=True)]
