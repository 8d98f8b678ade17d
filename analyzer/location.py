"""The speed-of-light check: can a server be where the database puts it, given the round trip we measured?

A reply cannot come back sooner than light needs for the round trip, so a server answering in `rtt` ms is
at most rtt/2 × c away (about 150 km per ms of RTT in vacuum), and realistically at most rtt/2 × 2/3 c
(light in fibre, about 100 km per ms) — routes are longer than great circles, so real distances are less.
The claimed location is compared with a lower bound of the distance from the vantage (the capturing host):
great-circle distance minus both accuracy radii for points, the nearest part of a country for countries.
A check can only fail by physics; it never proves a location, and it is only as good as the vantage.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analyzer import countries
from analyzer.errors import CallauditError
from analyzer.geo import GeoInfo, GeoLookup, is_local

C_KM_PER_MS = 299.792458
FIBRE = 2 / 3
CHECKS = ("consistent", "implausible", "impossible", "unknown")
STUN_COOKIE = b"\x21\x12\xa4\x42"
_LATLON = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True)
class Place:
    """Where something is: a point with an accuracy radius, or a whole country."""

    label: str
    cc: str | None = None
    lat: float | None = None
    lon: float | None = None
    radius_km: float = 0.0
    source: str = ""

    @property
    def is_point(self) -> bool:
        return self.lat is not None and self.lon is not None


def min_distance_km(a: Place, b: Place) -> float | None:
    """A lower bound of the distance between two places (0 when they may overlap)."""
    if a.is_point and b.is_point:
        d = countries.distance_km(a.lat, a.lon, b.lat, b.lon)  # type: ignore[arg-type]
        return max(0.0, d - a.radius_km - b.radius_km)
    if a.is_point or b.is_point:
        point, area = (a, b) if a.is_point else (b, a)
        near = countries.nearest_km(area.cc, point.lat, point.lon) if area.cc else None  # type: ignore[arg-type]
        return None if near is None else max(0.0, near[0] - point.radius_km)
    if a.cc and b.cc:
        return countries.between_km(a.cc, b.cc)
    return None


def place_of(info: GeoInfo, label: str, source: str) -> Place | None:
    """A City database's point where there is one, else the located country."""
    if info.lat is not None and info.lon is not None:
        return Place(label, info.cc, info.lat, info.lon, info.accuracy_km or 0.0, source)
    if info.cc:
        return Place(label, info.cc, source=source)
    return None


def parse_vantage(spec: str, geo: GeoLookup) -> Place:
    """--vantage: a country code ("US"), "lat,lon" ("40.71,-74.01"), or a public address to look up."""
    text = spec.strip()
    match = _LATLON.match(text)
    if match:
        lat, lon = float(match[1]), float(match[2])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise CallauditError(f"--vantage {spec!r}: latitude must be within ±90 and longitude within ±180")
        return Place(f"{lat:g},{lon:g}", lat=lat, lon=lon, source="--vantage")
    if len(text) == 2 and text.isalpha():
        cc = text.upper()
        if countries.name(cc) is None or countries.centroid(cc) is None:
            raise CallauditError(f"--vantage {spec!r}: unknown country code")
        return Place(cc, cc=cc, source="--vantage")
    try:
        local = is_local(text)
    except CallauditError:
        raise CallauditError(f"--vantage {spec!r}: give a country code, lat,lon, or a public IP address") from None
    if local:
        raise CallauditError(f"--vantage {spec!r}: a private address locates nothing; give its public address")
    place = place_of(geo.lookup(text), text, "--vantage")
    if place is None:
        raise CallauditError(f"--vantage {spec!r}: no GeoIP database locates this address")
    return place


# --- handshake round trips -------------------------------------------------------------------------


def _stun_rtt(samples: list) -> tuple[float, int] | None:
    """Smallest STUN request -> response time, paired by transaction id (RFC 5389 §6)."""
    sent: dict[bytes, float] = {}
    best: tuple[float, int] | None = None
    for s in samples:
        p = s.payload
        if len(p) < 20 or p[4:8] != STUN_COOKIE or p[0] & 0xC0:
            continue
        kind = struct.unpack_from("!H", p)[0]
        cls = ((kind >> 7) & 0x2) | ((kind >> 4) & 0x1)  # 0 request, 2 success, 3 error response
        txid = p[8:20]
        if cls == 0 and s.from_orig:
            sent.setdefault(txid, s.ts)
        elif cls in (2, 3) and not s.from_orig and txid in sent:
            rtt = (s.ts - sent[txid]) * 1000
            if rtt >= 0 and (best is None or rtt < best[0]):
                best = (rtt, s.frame)
    return best


def _first_flight_rtt(samples: list) -> tuple[float, int] | None:
    """The client's first datagram to the server's first reply (DTLS ClientHello, QUIC Initial)."""
    first = next((s for s in samples if s.from_orig), None)
    if first is None or any(not s.from_orig and s.ts < first.ts for s in samples):
        return None
    reply = next((s for s in samples if not s.from_orig and s.ts >= first.ts), None)
    return None if reply is None else ((reply.ts - first.ts) * 1000, reply.frame)


def handshake_rtt(proto: str, tcp_rtt_ms: float | None, samples: list, services: list[str]) -> dict:
    """{"rtt_ms", "rtt_source"} for one flow: the smallest of the TCP SYN -> SYN/ACK time, STUN
    request -> response by transaction id, and for DTLS/QUIC the first flight -> first reply."""
    candidates: list[tuple[float, str]] = []
    if tcp_rtt_ms is not None:
        candidates.append((tcp_rtt_ms, "tcp handshake"))
    if proto == "udp" and samples:
        stun = _stun_rtt(samples)
        if stun is not None:
            candidates.append((stun[0], f"stun transaction, frame {stun[1]}"))
        if {"dtls", "quic"} & set(services):
            flight = _first_flight_rtt(samples)
            if flight is not None:
                kind = "quic" if "quic" in services else "dtls"
                candidates.append((flight[0], f"{kind} first flight, frame {flight[1]}"))
    if not candidates:
        return {"rtt_ms": None, "rtt_source": None}
    rtt, source = min(candidates)
    return {"rtt_ms": round(rtt, 3), "rtt_source": source}


# --- the check -------------------------------------------------------------------------------------


def _capture_host(df: pd.DataFrame) -> str | None:
    """The capturing host: the address in the most flows (RTTs are only valid when it is the client);
    of equally busy ones the first seen, orig_h before resp_h, as Counter.most_common(1) picks."""
    codes, uniques = pd.factorize(pd.concat([df["orig_h"], df["resp_h"]], ignore_index=True))
    codes = codes[codes >= 0]  # missing addresses are -1
    return uniques[np.bincount(codes).argmax()] if len(codes) else None


def client_vantage(df: pd.DataFrame, geo: GeoLookup) -> Place | None:
    """The capture host's own public address, else the public address STUN reported for it."""
    host = _capture_host(df)
    if host is not None and not is_local(host):
        return place_of(geo.lookup(host), host, "client address")
    mapped: Counter = Counter()
    if "details" in df.columns:
        for details in df["details"].tolist():
            m = details.get("mapped_address") if isinstance(details, dict) else None
            if m is None:  # nearly every flow
                continue
            h = m.get("h") if isinstance(m, dict) else m if isinstance(m, str) else None
            if isinstance(h, str):
                try:
                    if not is_local(h):
                        mapped[h] += 1
                except CallauditError:
                    continue
    if not mapped:
        return None
    h = mapped.most_common(1)[0][0]
    return place_of(geo.lookup(h), h, "STUN mapped address")


def _describe(place: Place) -> str:
    if place.is_point:
        radius = f" ±{place.radius_km:g} km" if place.radius_km else ""
        return f"{place.lat:.2f},{place.lon:.2f}{radius}" + (f" ({place.cc})" if place.cc else "")
    return str(place.cc)


def judge_location(vantage: Place | None, server: Place | None, rtt_ms: float | None,
                   rtt_source: str | None = None, db: str | None = None) -> tuple[str, str]:
    """(location_check, location_reason) for one server, with the numbers that decided it."""
    if rtt_ms is None or pd.isna(rtt_ms):
        return "unknown", "no handshake round trip measured from the capturing host"
    if vantage is None:
        return "unknown", "no vantage: the capture host has no public address; give --vantage"
    if server is None:
        return "unknown", "no database locates the server"
    d = min_distance_km(vantage, server)
    if d is None:
        return "unknown", f"no outline or centre known for {server.cc}"
    vacuum = rtt_ms / 2 * C_KM_PER_MS
    fibre = vacuum * FIBRE
    claim = f"database{f' ({db})' if db else ''} says {_describe(server)}"
    rtt = f"a {rtt_ms:g} ms RTT ({rtt_source or 'handshake'}) from a {_describe(vantage)} vantage"
    far = f"{_describe(server)} is at least {d:,.0f} km away"
    if d > vacuum:
        return "impossible", f"{claim}, but {rtt} bounds the server within {vacuum:,.0f} km; {far}"
    if d > fibre:
        return "implausible", (f"{claim}, but {rtt} puts the server within {fibre:,.0f} km over fibre "
                               f"({vacuum:,.0f} km in vacuum); {far}")
    return "consistent", f"{rtt} allows up to {fibre:,.0f} km over fibre; {far}"


def check(df: pd.DataFrame, geo: GeoLookup, vantage: Place | None = None) -> pd.DataFrame:
    """Add location_check / location_reason per flow: per capture and server, the smallest valid RTT
    (flows the capture host started) against the database's location of the server.

    Each server is judged once per capture and the answer spread to its rows by position: row-wise
    pandas access cost ~20 s on a capture with 100k flows and 20k servers."""
    out = df.copy(deep=False)  # copy-on-write: the caller's frame is never changed
    if df.empty:
        return out.assign(location_check=pd.Series(dtype=object), location_reason=pd.Series(dtype=object))
    checks = np.full(len(df), None, dtype=object)
    reasons = np.full(len(df), None, dtype=object)
    public_all = (df["resp_scope"] == "public").to_numpy(dtype=bool, na_value=False)
    used = df[[c for c in ("capture", "orig_h", "resp_h", "resp_scope", "rtt_ms", "rtt_source", "resp_cc",
                           "resp_lat", "resp_lon", "resp_accuracy_km", "geo_db", "details") if c in df.columns]]
    for positions in df.groupby("capture", sort=False).indices.values():
        # only the columns read here: a full copy per capture cost ~50 MB (and none for a single capture)
        rows = used if len(positions) == len(df) else used.iloc[positions]
        host = _capture_host(rows)
        where = vantage or client_vantage(rows, geo)
        public = rows[public_all[positions]]
        valid = public[(public["orig_h"] == host) & public["rtt_ms"].notna()]
        best = valid.sort_values("rtt_ms").drop_duplicates("resp_h")
        rtts = dict(zip(best["resp_h"].tolist(), zip(best["rtt_ms"].tolist(), _column(best, "rtt_source"),
                                                      strict=True), strict=True))
        firsts = public.drop_duplicates("resp_h")
        results: dict = {}
        unmeasured = judge_location(where, None, None)  # without a round trip the place is never read
        for server, cc, lat, lon, accuracy, db in zip(
                firsts["resp_h"].tolist(), _column(firsts, "resp_cc"), _column(firsts, "resp_lat"),
                _column(firsts, "resp_lon"), _column(firsts, "resp_accuracy_km"), _column(firsts, "geo_db"),
                strict=True):
            rtt = rtts.get(server)
            if rtt is None:
                results[server] = unmeasured
                continue
            info = GeoInfo("public", cc=cc if isinstance(cc, str) else None, lat=_float(lat), lon=_float(lon),
                           accuracy_km=_float(accuracy))
            results[server] = judge_location(where, place_of(info, server, "database"), float(rtt[0]), rtt[1], db)
        judged = [results[server] for server in public["resp_h"].tolist()]
        at = positions[public_all[positions]]
        checks[at] = [result for result, _ in judged]
        reasons[at] = [reason for _, reason in judged]
    # built from plain lists so pandas infers the same string dtype as every other text column
    out["location_check"] = checks.tolist()
    out["location_reason"] = reasons.tolist()
    return out


def _column(df: pd.DataFrame, name: str) -> list:
    """A column's values as a list; Nones when the frame does not have it."""
    return df[name].tolist() if name in df.columns else [None] * len(df)


def _float(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]
