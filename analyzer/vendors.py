"""Which conferencing vendor a flow belongs to, from rules kept as data (analyzer/data/vendors.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files


@dataclass(frozen=True)
class Rules:
    domains: tuple[tuple[str, str], ...]  # (suffix, vendor), longest suffix first
    asns: dict[int, str]
    udp_ports: tuple[tuple[int, int, str], ...]


@lru_cache(maxsize=1)
def rules() -> Rules:
    data = tomllib.loads(files("analyzer").joinpath("data/vendors.toml").read_text())
    domains, asns, ports = [], {}, []
    for vendor, spec in data.items():
        domains += [(d.lower(), vendor) for d in spec.get("domains", [])]
        asns.update({int(a): vendor for a in spec.get("asns", [])})
        ports += [(lo, hi, vendor) for lo, hi in spec.get("udp_ports", [])]
    domains.sort(key=lambda p: -len(p[0]))
    return Rules(tuple(domains), asns, tuple(ports))


def attribute(server_name: str | None, asn: int | None, proto: str, resp_p: int) -> tuple[str | None, str | None]:
    """(vendor slug, the evidence that matched) for one flow, or (None, None)."""
    r = rules()
    if isinstance(server_name, str) and server_name:
        name = server_name.lower().rstrip(".")
        for suffix, vendor in r.domains:
            if name == suffix or name.endswith("." + suffix):
                return vendor, f"domain {suffix}"
    if asn is not None and asn in r.asns:
        return r.asns[asn], f"AS{asn}"
    if proto == "udp":
        for lo, hi, vendor in r.udp_ports:
            if lo <= resp_p <= hi:
                return vendor, f"udp port {resp_p}"
    return None, None
