"""An inline SVG world map (equirectangular) of country shapes, with markers and lines from the vantage.

Shapes come from the `countryinfo` package's low-resolution GeoJSON (offline, shipped with the package)
through `analyzer.countries`; nothing is fetched, and the SVG is plain markup inside the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from html import escape

from analyzer import countries

WIDTH = 1000
LAT_TOP, LAT_BOTTOM = 84.0, -58.0  # Antarctica and the far Arctic hold no servers; the map stays readable
HEIGHT = round(WIDTH * (LAT_TOP - LAT_BOTTOM) / 360)


@dataclass(frozen=True)
class Marker:
    """A place on the map: a title (plain text, escaped here), a fill colour and a label of a few letters."""

    lat: float
    lon: float
    colour: str
    title: str
    label: str = ""
    radius: float = 5.0


@cache
def _country_data() -> tuple[dict[str, dict], dict[str, tuple[float, float]]]:
    """{alpha2: GeoJSON geometry} and {alpha2: (lat, lon)}, read once per process."""
    geoms = countries.shapes()
    centres = {}
    for cc in geoms:
        point = countries.centroid(cc)
        if point is not None:
            centres[cc] = (float(point[0]), float(point[1]))
    return geoms, centres


def centre(cc: str | None) -> tuple[float, float] | None:
    """A country's representative point (lat, lon), for servers known only by country."""
    if not cc:
        return None
    return _country_data()[1].get(cc.upper()) or countries.centroid(cc.upper())


def project(lat: float, lon: float) -> tuple[float, float]:
    x = (lon + 180.0) / 360.0 * WIDTH
    y = (LAT_TOP - max(LAT_BOTTOM, min(LAT_TOP, lat))) / (LAT_TOP - LAT_BOTTOM) * HEIGHT
    return round(x, 1), round(y, 1)


def _rings(geometry: dict) -> list[list]:
    if geometry.get("type") == "Polygon":
        return list(geometry["coordinates"])
    if geometry.get("type") == "MultiPolygon":
        return [ring for poly in geometry["coordinates"] for ring in poly]
    return []


@cache
def _path(cc: str) -> str:
    parts = []
    for ring in _rings(_country_data()[0][cc]):
        pts = [project(lat, lon) for lon, lat, *_ in ring]
        if len(pts) > 2:
            parts.append("M" + "L".join(f"{x:g},{y:g}" for x, y in pts) + "Z")
    return "".join(parts)


def _curve(a: tuple[float, float], b: tuple[float, float]) -> str:
    """A gentle arc from a to b (a straight line hides markers on the same parallel)."""
    (x1, y1), (x2, y2) = a, b
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    dist = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
    return f"M{x1:g},{y1:g}Q{mx:.1f},{my - dist * 0.2:.1f} {x2:g},{y2:g}"


def svg(
    markers: list[Marker],
    vantage: Marker | None,
    country_fill: dict[str, str],
    title: str = "World map of the servers",
) -> str:
    """The map as an <svg> element; `country_fill` colours whole countries (e.g. by worst verdict)."""
    out = [
        (
            f'<svg class="map" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        ),
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#eef3f8"/>',
        '<g stroke="#ffffff" stroke-width="0.4">',
    ]
    for cc in sorted(_country_data()[0]):
        fill = country_fill.get(cc, "#d5dbe1")
        out.append(f'<path d="{_path(cc)}" fill="{escape(fill)}"><title>{escape(cc)}</title></path>')
    out.append("</g>")
    if vantage is not None:
        start = project(vantage.lat, vantage.lon)
        out.append('<g fill="none" stroke-width="1.4" stroke-opacity="0.75">')
        for m in markers:
            out.append(
                f'<path class="route" d="{_curve(start, project(m.lat, m.lon))}" '
                f'stroke="{escape(m.colour)}"/>'
            )
        out.append("</g>")
    out.append('<g stroke="#ffffff" stroke-width="1.2" font-size="11" font-family="sans-serif">')
    for m in markers:
        x, y = project(m.lat, m.lon)
        out.append(
            f'<g class="marker"><title>{escape(m.title)}</title>'
            f'<circle cx="{x:g}" cy="{y:g}" r="{m.radius:.1f}" fill="{escape(m.colour)}"/>'
            f'<text x="{x + m.radius + 2:g}" y="{y + 4:g}" stroke="none" fill="#222">'
            f"{escape(m.label)}</text></g>"
        )
    if vantage is not None:
        x, y = project(vantage.lat, vantage.lon)
        out.append(
            f'<g class="vantage"><title>{escape(vantage.title)}</title>'
            f'<rect x="{x - 6:g}" y="{y - 6:g}" width="12" height="12" fill="{escape(vantage.colour)}"/>'
            f'<text x="{x + 9:g}" y="{y + 4:g}" stroke="none" fill="#222">{escape(vantage.label)}</text></g>'
        )
    out.append("</g></svg>")
    return "".join(out)
