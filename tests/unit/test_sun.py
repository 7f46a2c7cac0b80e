"""The sun's position (exporter/serve/sun.py) against published values, and where a plant's sun is computed."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from exporter.serve.sun import Position, elevation, elevations, positions, sun_at, zone_hours


def unix(*args: int) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def test_declination_and_equation_of_time_match_meeus() -> None:
    """Meeus, Astronomical Algorithms, example 25.a (apparent declination -7 deg 47' 06") and example 28.a
    (equation of time +13 min 42.6 s), both for 1992 October 13.0 TD."""
    sun = sun_at(unix(1992, 10, 13))
    assert sun.declination == pytest.approx(-7.78507, abs=0.001)
    assert sun.equation_of_time == pytest.approx(13 + 42.6 / 60, abs=0.02)


@pytest.mark.parametrize(("latitude", "noaa"), [(-41, 72.44), (-3, 69.57), (3, 63.57), (41, 25.60)])
def test_elevation_matches_the_noaa_solar_calculator(latitude: float, noaa: float) -> None:
    """NOAA's Solar Calculator, 2012-12-22 12:00 UTC on the prime meridian. NOAA shows the apparent elevation
    (refraction adds ~0.03 degree at these heights); ours is geometric."""
    assert elevation(latitude, 0.0, unix(2012, 12, 22, 12)) == pytest.approx(noaa, abs=0.06)


def test_solar_noon_and_midnight() -> None:
    """At local solar noon the sun stands 90 - |latitude - declination| high; twelve hours later as deep below."""
    t = unix(2024, 6, 21, 12)
    sun = sun_at(t)
    # The meridian where it is solar noon at t: the equation of time shifts it by a quarter degree per minute.
    noon = -sun.equation_of_time / 4.0
    for latitude in (-60.0, -10.0, 0.0, 23.4, 48.1, 70.0):
        assert elevation(latitude, noon, t) == pytest.approx(90 - abs(latitude - sun.declination), abs=0.01)
        assert elevation(latitude, noon + 180, t) == pytest.approx(-90 + abs(latitude + sun.declination), abs=0.01)


def test_day_and_night_at_known_places() -> None:
    munich, sydney = (48.14, 11.58), (-33.87, 151.21)
    winter_noon = unix(2024, 12, 21, 11, 15)  # ~12:15 local, solar noon in Munich
    assert 18 < elevation(*munich, winter_noon) < 19  # 90 - 48.1 - 23.4
    assert elevation(*sydney, winter_noon) < 0  # 22:15 in Sydney
    assert elevation(*sydney, unix(2024, 12, 21, 2)) > 75  # 13:00 in Sydney, midsummer
    # Polar night and midnight sun.
    assert max(elevation(78.2, 15.6, unix(2024, 12, 21, h)) for h in range(24)) < 0
    assert min(elevation(78.2, 15.6, unix(2024, 6, 21, h)) for h in range(24)) > 0


def test_elevations_is_elevation_for_each() -> None:
    t = unix(2025, 3, 1, 7, 30)
    places = [Position(48.1, 11.6), Position(-33.9, 151.2), Position(0.0, -75.0, "time_zone")]
    assert elevations(places, t) == [elevation(p.latitude, p.longitude, t) for p in places]
    assert elevations([], t) == []


@pytest.mark.parametrize(("zone", "hours"), [
    ("GMT+8", 8.0), ("GMT-2", -2.0), ("GMT", 0.0), ("UTC", 0.0), ("GMT+5:30", 5.5), ("UTC+05:45", 5.75),
    (" gmt-03:30 ", -3.5), ("+9", 9.0), ("GMT+14", 14.0),
    ("GMT+15", None), ("Europe/Berlin", None), ("", None), ("GMT+x", None),
])
def test_zone_hours(zone: str, hours: float | None) -> None:
    assert zone_hours(zone) == hours


def test_positions_prefer_coordinates_then_the_zones_plants_then_its_meridian() -> None:
    plants = [
        (31.8, 117.2, "GMT-2"),     # coordinates: used as they are
        (None, None, "GMT-2"),      # none: the median of the zone's plants with coordinates
        (30.0, 121.0, "GMT-2"),
        (40.0, 116.0, "GMT-2"),
        (None, 10.0, "GMT+1"),      # half a coordinate is none: GMT+1 has no plant with both, so its meridian
        (None, None, "GMT+13"),     # beyond 180 degrees: wraps to -165
        (None, None, ""),           # nothing to go by: no position at all
        (None, None, "somewhere"),
    ]
    got = positions(plants)
    assert got[0] == Position(31.8, 117.2, "coordinates")
    # The zone label is only a key: "GMT-2" lands in China, where its plants are, not in the Atlantic.
    assert got[1] == Position(31.8, 117.2, "time_zone")
    assert got[4] == Position(0.0, 15.0, "time_zone")
    assert got[5] == Position(0.0, -165.0, "time_zone")
    assert got[6] is None and got[7] is None
