"""The history behind getPowerStationPointMinuteDataList, getPowerStationPointDayMonthYearDataList and
getDevicePointMinuteDataList.

History is the real-time model (realtime.py) evaluated at past instants, through the same point table, so a
history row at time T is exactly what getPowerStationRealTimeData answered when the clock stood at T: the past
joins the present without a seam. Rows lie on the platform's 5-minute grid of plant-local time, from local
midnight of the plant's install date; occasional gaps (missing rows) are a deterministic function of (seed,
plant, day). Daily statistics are exact over the 5-minute values where that is cheap (peak and trough, taken
at the hours around each day's breakpoints) and the time-average of the model curve for the mean.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise

from .common import unit_float
from .devices import PLANT_DEVICE, Device, PlantNow, device_values
from .fleet import Plant
from .realtime import (
    FORMULAS,
    Instant,
    Shape,
    breakpoints,
    day_hours,
    day_shape,
    ensure_model,
    has_data,
    instant,
    lifetime,
)

SLOT_S = 300  # the platform keeps plant data every 5 minutes
SLOTS_PER_DAY = 86400 // SLOT_S
LAST_H = (SLOTS_PER_DAY - 1) * SLOT_S / 3600.0  # 23:55, the day's last row

# Counters that restart at local midnight: their day value is the day's total, and a month's or a year's
# total (data_type 4) is the sum of its days. The portal: "If data can be aggregated, then: data_type is 2
# when querying daily data, and 4 when querying monthly or yearly data".
DAILY_TOTALS = frozenset({83022, 83009, 83331, 83006, 83011, 83013, 83005, 83008, 83018, 83097, 83102, 83118,
                          83119, 83072, 83243, 83244, 83322, 83323, 83743})
# Points that never decrease within a local day (today's counters, lifetime counters): their daily peak is the
# 23:55 value and their trough the midnight value, which spares the search over the day's breakpoints.
MONOTONE = DAILY_TOTALS | frozenset({83024, 83004, 83332, 83020, 83021, 83025, 83100, 83105, 83124, 83075, 83241,
                                     83242, 83324, 83325, 83548, 83419})
# Where other points' daily extremes can be (day_hours names): their 5-minute extremes lie on the slots next
# to these. Points not listed are searched around every breakpoint; the module temperature, which is not
# monotone between breakpoints, on every slot.
_PV, _LOAD, _BATTERY, _SOC = ("midnight", "noon"), ("midnight", "noon", "morning_peak", "evening_peak"), \
    ("midnight", "noon", "evening_peak"), ("midnight", "sunset")
EXTREMES_AT: dict[int, tuple[str, ...]] = {
    **dict.fromkeys((83033, 83002, 83067, 83329, 83317, 83019, 83001, 83239, 83012, 83240), _PV),
    **dict.fromkeys((83052, 83106, 83330, 83032, 83549, 83328), _LOAD),  # grid power: PV minus load
    **dict.fromkeys((83046, 83238, 83326, 83318), _BATTERY),
    **dict.fromkeys((83252, 83129, 83232, 83334, 83319, 83235, 83236, 83327), _SOC),
    83016: ("cold", "warm"),
}
EVERY_SLOT = frozenset({83017})
MEAN, PEAK, TROUGH, TOTAL = 1, 2, 3, 4
DATA_TYPES = (MEAN, PEAK, TROUGH, TOTAL)

# 4-point Gauss-Legendre on [-1, 1]: exact for the smooth pieces between breakpoints to far below 0.1 Wh.
_GAUSS = ((-0.8611363115940526, 0.34785484513745385), (-0.33998104358485626, 0.6521451548625461),
          (0.33998104358485626, 0.6521451548625461), (0.8611363115940526, 0.34785484513745385))


def gap(p: Plant, day: int, rate: float) -> tuple[float, float] | None:
    """The plant's missing rows on a local day, as local hours [start, end), or None: on about `rate` of the
    days one stretch of 15 minutes to 6 hours (mostly short), deterministic by seed, plant and day."""
    if rate <= 0.0 or unit_float(p.quirk_key, day, 0x6A9) >= rate:
        return None
    start = int(unit_float(p.quirk_key, day, 0x6AA) * SLOTS_PER_DAY)
    length = 3 + int(unit_float(p.quirk_key, day, 0x6AB) ** 3 * 70)
    return start * SLOT_S / 3600.0, min(SLOTS_PER_DAY, start + length) * SLOT_S / 3600.0


def stamp(wall: int, pattern: str = "%Y%m%d%H%M%S") -> str:
    return time.strftime(pattern, time.gmtime(wall))


Point = tuple[str, Callable[[Instant], float], Callable[[float], str]]


def points_with_data(p: Plant, point_ids: Iterable[int]) -> list[tuple[int, Point]]:
    """The requested points this plant has data for ("The endpoint will not return measuring points with no
    data"): known, not a battery point of a plant without battery, not one the plant reports empty."""
    return [(pid, (f"p{pid}", *FORMULAS[pid])) for pid in point_ids if has_data(p, pid)]


def minute_rows(p: Plant, first: int, last: int, step: int, point_ids: list[int], gap_rate: float,
                values: Callable[[str], object], times: Callable[[str], object]) -> list[dict[str, object]]:
    """Rows for plant-local wall times first, first+step, ..., last (seconds, on the grid), without the gap rows
    and the days before the install date. Each row: time_stamp and one p<id> per point with data."""
    pts = [pt for _, pt in points_with_data(p, point_ids)]
    if not pts:
        return []
    ensure_model(p)
    first = max(first, -(-p.first_day * 86400 // step) * step)
    rows: list[dict[str, object]] = []
    day_now = None
    life: tuple[float, ...] = ()
    shape: Shape | None = None
    hole: tuple[float, float] | None = None
    prefix = ""
    for wall in range(first, last + 1, step):
        day, sec = divmod(wall, 86400)
        if day != day_now:
            day_now, life, hole = day, lifetime(p, day), gap(p, day, gap_rate)
            shape = day_shape(p, day)
            prefix = stamp(wall, "%Y%m%d")
        h = sec / 3600.0
        if hole is not None and hole[0] <= h < hole[1]:
            continue
        now = instant(p, day, h, life, shape)
        minute = sec // 60
        row: dict[str, object] = {"time_stamp": times(f"{prefix}{minute // 60:02d}{minute % 60:02d}00")}
        for key, fn, fmt in pts:
            row[key] = values(fmt(fn(now)))
        rows.append(row)
    return rows


def device_rows(dev: Device, p: Plant, first: int, last: int, step: int, point_ids: list[int], gap_rate: float,
                seed: int, status: Callable[[float], int], values: Callable[[str], object],
                times: Callable[[str], object]) -> list[dict[str, object]]:
    """A device's rows, like minute_rows: the device real-time values of each past instant (getDeviceRealTimeData
    at that time), without the points the device does not report. The plant's gaps are the device's gaps (they
    share the data logger)."""
    if dev.device_type == PLANT_DEVICE:
        return minute_rows(p, first, last, step, point_ids, gap_rate, values, times)
    ensure_model(p)
    first = max(first, -(-p.first_day * 86400 // step) * step)
    rows: list[dict[str, object]] = []
    for wall in range(first, last + 1, step):
        day, sec = divmod(wall, 86400)
        hole = gap(p, day, gap_rate)
        if hole is not None and hole[0] <= sec / 3600.0 < hole[1]:
            continue
        t = wall - p.utc_offset_h * 3600.0
        got = device_values(dev, PlantNow(p, t), point_ids, status(t), seed, 0.0)
        row: dict[str, object] = {f"p{pid}": values(v) for pid, v in got.items() if v not in (None, "")}
        if row:
            rows.append({"time_stamp": times(stamp(wall)), **row})
    return rows


class Day:
    """One plant-local day's statistics, evaluating the model only at the hours a statistic needs."""

    def __init__(self, p: Plant, day: int) -> None:
        self.p, self.day = p, day
        self.life = lifetime(p, day)
        self.shape = day_shape(p, day)
        self._at: dict[float, Instant] = {}
        self._hours: dict[str, float] | None = None
        self._ext: dict[int, tuple[float, float]] = {}

    def at(self, h: float) -> Instant:
        got = self._at.get(h)
        if got is None:
            got = self._at[h] = instant(self.p, self.day, h, self.life, self.shape)
        return got

    def hours(self) -> dict[str, float]:
        if self._hours is None:
            self._hours = day_hours(self.shape)
        return self._hours

    def peak(self, pid: int) -> float:
        """The largest of the point's 5-minute values this day."""
        if pid in MONOTONE:
            return FORMULAS[pid][0](self.at(LAST_H))
        return self._extremes(pid)[0]

    def trough(self, pid: int) -> float:
        """The smallest of the point's 5-minute values this day."""
        if pid in MONOTONE:
            return FORMULAS[pid][0](self.at(0.0))
        return self._extremes(pid)[1]

    def _extremes(self, pid: int) -> tuple[float, float]:
        got = self._ext.get(pid)
        if got is not None:
            return got
        fn = FORMULAS[pid][0]
        if pid in EVERY_SLOT:
            slots: Iterable[int] = range(SLOTS_PER_DAY)
        else:
            # Between breakpoints a curve is monotone, so its extreme 5-minute values lie on the grid slots next
            # to a breakpoint (next to the ones where this point can have an extreme, where that is known).
            names = EXTREMES_AT.get(pid)
            hours = self.hours()
            near: set[int] = set()
            for h in breakpoints(hours) if names is None else (hours[n] for n in names):
                k = h * 3600.0 / SLOT_S
                near.update((math.floor(k), math.ceil(k)))
            slots = near
        values = [fn(self.at(k * SLOT_S / 3600.0)) for k in slots if 0 <= k < SLOTS_PER_DAY]
        got = self._ext[pid] = (max(values), min(values))
        return got

    def mean(self, pid: int) -> float:
        """Time-average of the point's curve over the day (agrees with the mean of the 5-minute values to
        within their sampling error)."""
        fn = FORMULAS[pid][0]
        bps = breakpoints(self.hours())
        acc = 0.0
        for a, b in pairwise(bps):
            half, mid = (b - a) / 2.0, (a + b) / 2.0
            acc += half * sum(wt * fn(self.at(mid + half * x)) for x, wt in _GAUSS)
        return acc / 24.0


@dataclass
class Period:
    """Statistics of one point over consecutive days (a day, a month, a year)."""

    peak: float = float("-inf")
    trough: float = float("inf")
    mean_sum: float = 0.0
    total: float = 0.0
    days: int = 0

    def add(self, d: Day, pid: int, wanted: frozenset[int]) -> None:
        if PEAK in wanted or TOTAL in wanted:
            hi = d.peak(pid)
            self.peak, self.total = max(self.peak, hi), self.total + hi
        if TROUGH in wanted:
            self.trough = min(self.trough, d.trough(pid))
        if MEAN in wanted:
            self.mean_sum += d.mean(pid)
        self.days += 1

    def value(self, data_type: int, daily: bool, pid: int) -> float | None:
        if data_type == PEAK:
            return self.peak
        if data_type == TROUGH:
            return self.trough
        if data_type == MEAN:
            return self.mean_sum / self.days
        # "4: Total (only monthly and yearly data has a 'total' value)", and only where data can be aggregated.
        return self.total if not daily and pid in DAILY_TOTALS else None
