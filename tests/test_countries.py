"""Tests for analyzer/countries.py: names, outlines, centroids, and distances that stay lower bounds."""

from __future__ import annotations

import pytest

from analyzer import countries


def test_shapes_are_geojson_geometries_by_alpha2() -> None:
    shapes = countries.shapes()
    assert len(shapes) > 150
    assert {"US", "CN", "DE", "FR", "GB", "RU", "BR"} <= set(shapes)
    assert all(g["type"] in ("Polygon", "MultiPolygon") and g["coordinates"] for g in shapes.values())
    assert shapes["GB"]["type"] == "MultiPolygon"  # countryinfo also lists Wales as GB, without an outline


def test_centroid_and_name() -> None:
    assert countries.centroid("us") == (38.0, -97.0)
    assert countries.centroid("HK") is not None  # no outline, still a centre
    assert countries.centroid("ZZ") is None
    assert countries.name("KR") == "South Korea" and countries.name("DE") == "Germany"
    assert countries.name("ZZ") is None


def test_great_circle_distance() -> None:
    assert countries.distance_km(40.71, -74.01, 51.51, -0.13) == pytest.approx(5570, rel=0.005)  # NYC-London
    assert countries.distance_km(0, 0, 0, 180) == pytest.approx(20015, rel=0.001)


@pytest.mark.parametrize(("cc", "lat", "lon", "low", "high"), [
    ("DE", 52.52, 13.40, 0, 0),          # Berlin is inside Germany
    ("US", 39.0, -98.0, 0, 0),           # Kansas
    ("FR", 52.52, 13.40, 400, 700),      # Berlin to the nearest of France (~500 km to Alsace)
    ("CN", 40.71, -74.01, 9000, 11000),  # New York to China
    ("RU", 52.52, 13.40, 350, 600),      # Berlin to Kaliningrad
])
def test_nearest_part_of_a_country(cc: str, lat: float, lon: float, low: float, high: float) -> None:
    distance, _how = countries.nearest_km(cc, lat, lon)
    assert low <= distance <= high


def test_countries_without_outline_use_a_covering_disc() -> None:
    assert "HK" not in countries.shapes()
    distance, how = countries.nearest_km("HK", 40.71, -74.01)
    assert how == "disc"
    assert 12000 < distance < countries.distance_km(40.71, -74.01, 22.32, 114.17)  # never more than the truth
    assert countries.nearest_km("HK", 22.30, 114.17) == (0.0, "inside")
    assert countries.nearest_km("ZZ", 0, 0) is None


def test_distance_between_countries() -> None:
    assert countries.between_km("DE", "FR") == 0.0
    assert countries.between_km("US", "CA") == 0.0
    assert 4500 < countries.between_km("US", "DE") < 6000
    assert countries.between_km("US", "CN") == countries.between_km("CN", "US")
    assert 0 < countries.between_km("RU", "US") < 100  # the Bering Strait
    assert countries.between_km("US", "ZZ") is None


def test_vectorised_distances_equal_the_point_by_point_walk():
    """between_km over every vertex at once equals nearest_km called vertex by vertex (the old walk)."""
    for a, b in (("US", "NL"), ("RU", "US"), ("DE", "CN"), ("BR", "JP"), ("FR", "ES")):
        walk = min(countries.nearest_km(dst, float(lat), float(lon))[0]
                   for src, dst in ((a, b), (b, a)) for lon, lat in countries._vertices(src))
        assert countries.between_km(a, b) == pytest.approx(walk, abs=1e-6)
