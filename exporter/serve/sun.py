"""Where the sun stands over a plant: its elevation from latitude, longitude and time, offline.

NOAA's solar position equations (the "General Solar Position Calculations" of NOAA's Global Monitoring
Laboratory, after Meeus, *Astronomical Algorithms*): accurate to about 0.01 degree of elevation between 1950 and
2050, far finer than what it is used for here (is the sun above ~10 degrees, where a healthy PV plant produces).
The elevation is geometric: no atmospheric refraction, which lifts the sun by about 0.5 degree at the horizon and
0.09 degree at 10 degrees.

Pure functions of their arguments, no I/O and nothing of the exporter, so that they can be checked against
published values (tests/unit/test_sun.py). The sun's own position (declination, equation of time) depends on the
time alone and is computed once per call of `elevations`; each plant then costs one cosine and one arcsine.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..data import zone_minutes

_RAD = math.pi / 180.0
_DEG = 180.0 / math.pi
_UNIX_EPOCH_JD = 2440587.5  # Julian day of 1970-01-01 00:00 UTC
_J2000_JD = 2451545.0


@dataclass(frozen=True)
class SunAt:
    """The sun at one instant: what every place on Earth shares."""

    declination: float  # degrees
    equation_of_time: float  # minutes: apparent solar time minus mean solar time
    utc_minutes: float  # minutes since 00:00 UTC of the instant's day


def sun_at(t: float) -> SunAt:
    """The sun's declination and the equation of time at Unix time `t` (UT; the ~70 s between UT and the
    dynamical time of the equations moves the sun by 0.0008 degree and is ignored)."""
    jc = (t / 86400.0 + _UNIX_EPOCH_JD - _J2000_JD) / 36525.0  # Julian centuries since J2000.0
    mean_long = (280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360.0
    mean_anom = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
    ecc = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    m = mean_anom * _RAD
    center = (math.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
              + math.sin(2 * m) * (0.019993 - 0.000101 * jc) + math.sin(3 * m) * 0.000289)
    omega = (125.04 - 1934.136 * jc) * _RAD
    apparent_long = (mean_long + center - 0.00569 - 0.00478 * math.sin(omega)) * _RAD
    mean_obliquity = 23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0
    obliquity = (mean_obliquity + 0.00256 * math.cos(omega)) * _RAD
    declination = math.asin(math.sin(obliquity) * math.sin(apparent_long))
    y = math.tan(obliquity / 2) ** 2
    l0 = mean_long * _RAD
    eot = (y * math.sin(2 * l0) - 2 * ecc * math.sin(m) + 4 * ecc * y * math.sin(m) * math.cos(2 * l0)
           - 0.5 * y * y * math.sin(4 * l0) - 1.25 * ecc * ecc * math.sin(2 * m))
    return SunAt(declination * _DEG, 4.0 * eot * _DEG, (t % 86400.0) / 60.0)


def elevation(latitude: float, longitude: float, t: float) -> float:
    """Geometric solar elevation in degrees (negative below the horizon) at a place and Unix time."""
    return elevations([Position(latitude, longitude)], t)[0]


@dataclass(frozen=True)
class Position:
    """Where a plant's sun is computed, and from what: its own `coordinates`, or its `time_zone`."""

    latitude: float
    longitude: float
    source: str = "coordinates"


def elevations(positions: Sequence[Position], t: float) -> list[float]:
    """The solar elevation at each position at Unix time `t`, in degrees."""
    sun = sun_at(t)
    dec = sun.declination * _RAD
    sin_dec, cos_dec = math.sin(dec), math.cos(dec)
    # Hour angle in degrees = true solar time in minutes / 4 - 180, with true solar time = UTC minutes +
    # equation of time + 4 minutes per degree of east longitude.
    base = (sun.utc_minutes + sun.equation_of_time) / 4.0 - 180.0
    sin, cos, asin = math.sin, math.cos, math.asin
    out = []
    for p in positions:
        lat = p.latitude * _RAD
        x = sin(lat) * sin_dec + cos(lat) * cos_dec * cos((base + p.longitude) * _RAD)
        out.append(asin(max(-1.0, min(1.0, x))) * _DEG)
    return out


def zone_hours(zone: str) -> float | None:
    """The UTC offset in hours of a zone as iSolarCloud writes it (`GMT+8`, `GMT-3:30`, `UTC+05:45`, `GMT`, also a
    bare `+9`), or None. The sign is taken as written: the API's sign is disputed (api-notes.md), which is why
    `positions` prefers what plants with coordinates in the same zone say."""
    minutes = zone_minutes(zone, bare_sign=True)
    return None if minutes is None else minutes / 60.0


def _wrap(longitude: float) -> float:
    return (longitude + 180.0) % 360.0 - 180.0


def positions(plants: Iterable[tuple[float | None, float | None, str]]) -> list[Position | None]:
    """Where to compute each plant's sun, for the plants of one account given as (latitude, longitude, time zone):

    1. its own coordinates, when it has both;
    2. else, with `source="time_zone"`, the median latitude and longitude of the account's plants in the same
       zone (the zone label as written) that have coordinates: the label is only a key, so a zone whose sign is
       written the wrong way round still lands where its plants are;
    3. else the zone's central meridian (15 degrees per hour of offset, sign as written) on the equator: the
       hour of the solar day is right, the height of the sun is that of the tropics (too high in a mid-latitude
       winter, too low in its summer);
    4. else (no coordinates, no readable zone) None: no elevation rather than a guess.
    """
    rows = list(plants)
    by_zone: dict[str, tuple[list[float], list[float]]] = {}
    for lat, lon, zone in rows:
        if lat is not None and lon is not None:
            lats, lons = by_zone.setdefault(zone, ([], []))
            lats.append(lat)
            lons.append(lon)
    zone_positions: dict[str, Position | None] = {}
    out: list[Position | None] = []
    for lat, lon, zone in rows:
        if lat is not None and lon is not None:
            out.append(Position(lat, lon))
            continue
        if zone not in zone_positions:
            peers = by_zone.get(zone)
            hours = zone_hours(zone)
            if peers:
                zone_positions[zone] = Position(statistics.median(peers[0]), statistics.median(peers[1]),
                                                "time_zone")
            elif hours is not None:
                zone_positions[zone] = Position(0.0, _wrap(15.0 * hours), "time_zone")
            else:
                zone_positions[zone] = None
        out.append(zone_positions[zone])
    return out
