"""Physical model behind the plant real-time points (getPowerStationRealTimeData).

Every quantity is a closed-form function of (plant, local day, local hour), so any point can be computed for
any clock value in O(1) and energies are exact integrals of the powers: today's energy is the integral since
local midnight, lifetime counters add whole days on top and therefore never decrease. The history endpoints
(history.py) evaluate the same functions at past instants.
"""

from __future__ import annotations

import calendar
import math
import random
import re
import threading
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .common import ETA, EVENING_H, MORNING_H, lenient_int, mix
from .fleet import Plant

# Portal table "Common plant measuring points": id -> (name, unit).
POINTS: dict[int, tuple[str, str]] = {
    83022: ("Daily Yield of Plant", "Wh"),
    83024: ("Plant Total Yield", "Wh"),
    83033: ("Plant Power", "W"),
    83019: ("Plant Power/Installed Power of Plant", ""),
    83006: ("Meter Daily Yield", "Wh"),
    83020: ("Meter Total Yield", "Wh"),
    83011: ("Meter E-daily Consumption", "Wh"),
    83021: ("Accumulative Power Consumption by Meter", "Wh"),
    83032: ("Meter AC Power", "W"),
    83002: ("Inverter AC Power", "W"),
    83004: ("Inverter Total Yield", "Wh"),
    83009: ("Inverter Daily Yield", "Wh"),
    83012: ("P-radiation-H", "W/㎡"),  # the reference writes W/m^2^; the cloud's dictionaries write ㎡
    83013: ("Daily Irradiation", "Wh/㎡"),
    83023: ("Plant PR", ""),
    83025: ("Plant Equivalent Hours", "h"),
    83005: ("Daily Equivalent Hours", "h"),
    83007: ("Meter PR", ""),
    83018: ("Daily Yield (Theoretical)", "Wh"),
    83001: ("Inverter AC Power Normalization", "W/Wp"),
    83008: ("Daily Equivalent Hours of Inverter", "h"),
    83010: ("Inverter PR", ""),
    83016: ("Plant Ambient Temperature", "°C"),
    83017: ("Plant Module Temperature", "°C"),
    83046: ("PCS Total Active Power", "W"),
    83052: ("Load Power", "W"),
    83067: ("Total Active Power of PV", "W"),
    83097: ("Daily Direct Energy Consumption", "Wh"),
    83100: ("Total Direct Energy Consumption", "Wh"),
    83102: ("Energy Purchased Today", "Wh"),
    83105: ("Total Purchased Energy", "Wh"),
    83106: ("Load Power", "W"),
    83118: ("Daily Load Consumption", "Wh"),
    83124: ("Total Load Consumption", "Wh"),
    83119: ("Daily Feed-in Energy (PV)", "Wh"),
    83072: ("Feed-in Energy Today", "Wh"),
    83075: ("Feed-in Energy Total", "Wh"),
    83252: ("Battery Level (SOC)", ""),
    83129: ("Battery SOC", ""),
    83232: ("Total field SOC", ""),
    83233: ("Total field maximum rechargeable power", "W"),
    83234: ("Total field maximum dischargeable power", "W"),
    83235: ("Total field chargeable energy", "Wh"),
    83236: ("Total field dischargeable energy", "Wh"),
    83237: ("Total field energy storage maximum reactive power", "W"),
    83238: ("Total field energy storage active power", "W"),
    83239: ("Total field reactive power", "var"),
    83240: ("Total field power factor", ""),
    83241: ("Total field charge capacity", "Wh"),
    83242: ("Total field discharge capacity", "Wh"),
    83243: ("Daily field charge capacity", "Wh"),
    83244: ("Daily field discharge capacity", "Wh"),
    83548: ("Total Number of Charge/Discharge", ""),
    83549: ("Grid Active Power", "W"),
    83419: ("Daily Highest Inverter Power/Inverter Installed Capacity", ""),
    83317: ("Power Forecast", "W"),
    83318: ("Planned ES Charging/Discharging Power", "W"),
    83319: ("Planned ES SOC", "W"),
    83320: ("Planned Charging Power", "Wh"),
    83321: ("Planned Discharging Power", "Wh"),
    83322: ("ESS Daily Charge (EMS)", "Wh"),
    83323: ("ESS Daily Discharge (EMS)", "Wh"),
    83324: ("Energy Storage Cumulative Charge", "Wh"),
    83325: ("Cumulative Discharge", "Wh"),
    83326: ("Energy Storage Active Power (EMS)", "W"),
    83327: ("Energy Storage Remaining Charge", "Wh"),
    83328: ("Grid Active Power (EMS)", "W"),
    83329: ("PV Active Power (EMS)", "W"),
    83330: ("Load Active Power (EMS)", "W"),
    83331: ("Daily PV Yield (EMS)", "Wh"),
    83332: ("Total PV Yield", "Wh"),
    83334: ("Energy Storage SOC (EMS)", ""),
    83743: ("Daily yield loss due to load shedding", "Wh"),
}

BATTERY_POINTS = frozenset(
    {83046, 83129, 83232, 83233, 83234, 83235, 83236, 83237, 83238, 83241, 83242, 83243, 83244, 83252,
     83318, 83319, 83320, 83321, 83322, 83323, 83324, 83325, 83326, 83327, 83334, 83548}
)
# The weather factor of a region's day is one of 16 sky conditions, 0.15 (overcast) .. 1 (clear), skewed towards
# sunny days. Discrete levels make the sum of any daily counter over any run of days exact and cheap: the count
# of days at each level times the counter at that level (see _life_sum). Days are drawn 1024 at a time per
# region, at C speed, and counted per block.
LEVELS = 16
LEVEL_W = tuple(0.15 + 0.85 * (k + 0.5) / LEVELS for k in range(LEVELS))
_BLOCK_BITS = 10
_BLOCK = 1 << _BLOCK_BITS
_BLOCKS: dict[tuple[int, int], tuple[bytes, tuple[int, ...]]] = {}


def _block(key: int, n: int) -> tuple[bytes, tuple[int, ...]]:
    """Days n*1024 .. n*1024+1023 of a region: their levels, and how many days each level has."""
    got = _BLOCKS.get((key, n))
    if got is None:
        draw = random.Random(mix(key, n)).random
        seq = bytes(int(math.sqrt(draw()) * LEVELS) for _ in range(_BLOCK))
        got = (seq, tuple(seq.count(k) for k in range(LEVELS)))
        if len(_BLOCKS) > 4096:  # many seeds in one process (test sessions): start over rather than grow
            _BLOCKS.clear()
        _BLOCKS[(key, n)] = got
    return got


def weather(key: int, day: int) -> float:
    """The day's weather factor in a region (key): deterministic, independent from day to day."""
    return LEVEL_W[_block(key, day >> _BLOCK_BITS)[0][day & (_BLOCK - 1)]]


def level_counts(key: int, first: int, last: int) -> list[int]:
    """How many of the days first..last-1 have each weather level."""
    counts = [0] * LEVELS
    day = first
    while day < last:
        n = day >> _BLOCK_BITS
        begin, end = n << _BLOCK_BITS, (n + 1) << _BLOCK_BITS
        seq, totals = _block(key, n)
        if day == begin and last >= end:
            counts = [a + b for a, b in zip(counts, totals, strict=True)]
        else:
            part = seq[day - begin: min(last, end) - begin]
            counts = [a + part.count(k) for k, a in enumerate(counts)]
        day = end
    return counts


@dataclass(slots=True)
class Day:
    """Instantaneous powers (W) at local hour h and energies (Wh) since local midnight."""

    pv_w: float
    load_w: float
    feed_w: float
    buy_w: float
    battery_w: float  # + charging, - discharging
    irradiance: float
    soc: float
    max_pv_w: float
    pv_wh: float
    load_wh: float
    feed_wh: float
    buy_wh: float
    charge_wh: float
    discharge_wh: float
    irradiation: float

    def counters(self) -> tuple[float, float, float, float, float, float]:
        return (self.pv_wh, self.load_wh, self.feed_wh, self.buy_wh, self.charge_wh, self.discharge_wh)


def _clip(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


def local_day_hour(t: float, utc_offset_h: float) -> tuple[int, float]:
    lt = t + utc_offset_h * 3600.0
    day = math.floor(lt / 86400.0)
    return day, (lt - day * 86400.0) / 3600.0


@dataclass(slots=True)
class Shape:
    """What a plant-day's curves depend on besides the hour: computed once per day when a day is sampled."""

    w: float
    wind: bool
    storage: bool
    d_len: float
    sunrise: float
    sunset: float
    amp: float
    beta: float
    bd_peak: float
    base: float
    morning_w: float
    evening_w: float
    ctype: int | None
    site_amp: float
    x1: float | None  # where PV starts covering the base load (self-consumption plants with a surplus)
    soc0: float
    battery_wh: float


def day_shape(p: Plant, day: int, w: float | None = None) -> Shape:
    if w is None:
        w = weather(p.weather_key, day)
    wind = p.is_wind
    storage = p.is_storage
    d_len = 24.0 if wind else p.day_len_h
    sunrise = 0.0 if wind else 12.0 - d_len / 2.0
    amp = p.capacity_w * p.perf * w
    beta = p.battery_share if storage else 0.0
    # Sized so that each day's discharge (after losses) equals that day's charge: SOC is periodic.
    bd_peak = ETA * beta * amp * d_len / EVENING_H if storage else 0.0
    base = p.base_load_w
    site_amp = (1.0 - beta) * amp
    ctype = lenient_int(p.fields.get("connect_type"), 2)
    x1 = math.asin(base / site_amp) if ctype not in (1, 4) and site_amp > base else None
    return Shape(w, wind, storage, d_len, sunrise, sunrise + d_len, amp, beta, bd_peak, base, p.morning_w,
                 p.evening_w, ctype, site_amp, x1, p.soc0, p.battery_wh)


def day_model(p: Plant, day: int, h: float, w: float | None = None) -> Day:
    return day_at(day_shape(p, day, w), h)


def day_at(c: Shape, h: float) -> Day:
    d_len, sunrise, sunset, amp = c.d_len, c.sunrise, c.sunset, c.amp
    x = _clip(math.pi * (h - sunrise) / d_len, 0.0, math.pi)
    sin_x = math.sin(x) if 0.0 < x < math.pi else 0.0
    pv_w = amp * sin_x
    pv_wh = amp * d_len / math.pi * (1.0 - math.cos(x))
    max_pv = amp * math.sin(min(x, math.pi / 2.0))

    beta = c.beta
    y = _clip(math.pi * (h - sunset) / EVENING_H, 0.0, math.pi)
    if c.storage:
        dis_w = c.bd_peak * math.sin(y)
        dis_wh = c.bd_peak * EVENING_H / math.pi * (1.0 - math.cos(y))
    else:
        dis_w = dis_wh = 0.0
    ch_w, ch_wh = beta * pv_w, beta * pv_wh

    base = c.base
    if c.wind:
        load_w, load_wh = base, base * h
    else:
        z = _clip(math.pi * (h - sunrise + MORNING_H) / MORNING_H, 0.0, math.pi)
        load_w = base + c.morning_w * math.sin(z) + c.evening_w * math.sin(y)
        load_wh = (
            base * h
            + c.morning_w * MORNING_H / math.pi * (1.0 - math.cos(z))
            + c.evening_w * EVENING_H / math.pi * (1.0 - math.cos(y))
        )

    site_amp = c.site_amp
    site_w, site_wh = (1.0 - beta) * pv_w, (1.0 - beta) * pv_wh
    ctype = c.ctype
    if ctype == 4:  # off-grid: no meter flows at all
        feed_w = feed_wh = buy_w = buy_wh = 0.0
    else:
        if ctype == 1:  # full feed-in: all PV to the grid, all load from the grid
            feed_w, feed_wh = site_w, site_wh
        elif c.x1 is not None:
            # Load is flat (= base) between sunrise and sunset, so the surplus integral stays closed-form.
            x1 = c.x1
            xc = _clip(x, x1, math.pi - x1)
            feed_wh = d_len / math.pi * (site_amp * (math.cos(x1) - math.cos(xc)) - base * (xc - x1))
            feed_w = max(0.0, site_w - base)
        else:
            feed_w = feed_wh = 0.0
        buy_w = max(0.0, load_w - (site_w - feed_w) - dis_w)
        buy_wh = max(0.0, load_wh - (site_wh - feed_wh) - dis_wh)

    soc = c.soc0 + (ch_wh - dis_wh / ETA) / c.battery_wh if c.storage and c.battery_wh > 0 else 0.0
    irr = 1000.0 * c.w * sin_x
    irradiation = 1000.0 * c.w * d_len / math.pi * (1.0 - math.cos(x))
    return Day(
        pv_w, load_w, feed_w, buy_w, ch_w - dis_w, irr, _clip(soc, 0.0, 1.0), max_pv,
        pv_wh, load_wh, feed_wh, buy_wh, ch_wh, dis_wh, irradiation,
    )


def day_hours(c: Shape) -> dict[str, float]:
    """The local hours of this day where the curves change shape: the extremes and kinks of every point."""
    hours = {"midnight": 0.0, "end": 24.0, "noon": 12.0, "sunrise": c.sunrise, "sunset": c.sunset,
             "morning": c.sunrise - MORNING_H, "morning_peak": c.sunrise - MORNING_H / 2.0,
             "evening_peak": c.sunset + EVENING_H / 2.0, "evening_end": c.sunset + EVENING_H, "cold": 3.0,
             "warm": 15.0}
    if c.site_amp > c.base:  # PV starts and stops covering the base load: feed-in and purchase kink
        x1 = math.asin(c.base / c.site_amp)
        hours.update(feed_start=c.sunrise + c.d_len * x1 / math.pi, feed_end=c.sunset - c.d_len * x1 / math.pi)
    return hours


def breakpoints(hours: dict[str, float]) -> list[float]:
    """The hours (0..24, sorted) between which every point's curve of the day is smooth and monotone, except
    the module temperature (83017: ambient warmth and sunshine peak at different hours)."""
    return sorted({h for h in hours.values() if 0.0 <= h <= 24.0})


# -- lifetime counters -------------------------------------------------------------------------------------
#
# A plant's lifetime counters start at zero at local midnight of its install date and add each whole local
# day's closed-form counters, so they never decrease and each day's growth is exactly that day's integral.
# Summing day by day since the install date would make the first real-time query of a plant O(days installed)
# (fleets of 50 000 plants, installed up to ten years ago); with discrete weather levels the sum is the number of
# days at each level times the day's counters at that level, so anchoring a plant costs O(levels).

_LIFE_LOCK = threading.RLock()
_INSTALL = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})")


def _life_sum(p: Plant, first: int, last: int) -> list[float]:
    """The sum of the whole-day counters over local days first..last-1."""
    if last <= first:
        return [0.0] * 6
    counts = level_counts(p.weather_key, first, last)
    lo, hi = day_model(p, first, 24.0, w=LEVEL_W[0]).counters(), day_model(p, first, 24.0, w=LEVEL_W[-1]).counters()
    slope = [(b - a) / (LEVEL_W[-1] - LEVEL_W[0]) for a, b in zip(lo, hi, strict=True)]
    # Most daily counters are affine in the weather (PV, load, battery; feed-in and purchase unless the plant
    # exports a surplus): for those the two ends give every level. The others are summed level by level.
    mid = day_model(p, first, 24.0, w=LEVEL_W[LEVELS // 2]).counters()
    dw = LEVEL_W[LEVELS // 2] - LEVEL_W[0]
    curved = [c for c in range(6) if abs(lo[c] + slope[c] * dw - mid[c]) > 1e-9 * (abs(mid[c]) + 1.0)]
    days = sum(counts)
    above = sum(n * (w - LEVEL_W[0]) for n, w in zip(counts, LEVEL_W, strict=True))
    acc = [days * a + s * above for a, s in zip(lo, slope, strict=True)]
    if curved:
        for c in curved:
            acc[c] = 0.0
        for n, w in zip(counts, LEVEL_W, strict=True):
            if n:
                f = day_model(p, first, 24.0, w=w).counters()
                for c in curved:
                    acc[c] += n * f[c]
    return acc


def install_day(p: Plant) -> int | None:
    """The plant-local day number of its install_date (as served: plant-local yyyy-MM-dd HH:mm:ss)."""
    m = _INSTALL.match(str(p.fields.get("install_date") or ""))
    if m is None:
        return None
    try:
        y, mo, d = (int(g) for g in m.groups())
        return calendar.timegm((y, mo, d, 0, 0, 0)) // 86400 if 1 <= mo <= 12 and 1 <= d <= 31 else None
    except (OverflowError, ValueError):
        return None


def ensure_model(p: Plant) -> list[float]:
    """Anchor the lifetime counters on the local day of the plant's creation (or last model change)."""
    if p.lifetime_base is not None:
        return p.lifetime_base
    day, _ = local_day_hour(p.anchor, p.utc_offset_h)
    first = install_day(p)
    if first is None:
        first = day - max(30, round(p.days_running))
    first = min(first, day)
    # Rounding (the sum here, day-by-day subtraction later) must not take the install-date values below zero.
    base = [v * (1.0 + 1e-11) + 0.01 for v in _life_sum(p, first, day)]
    with _LIFE_LOCK:
        p.start_day, p.first_day = day, first
        p.life = (day, array("d", base))
        p.lifetime_base = base
    return base


def _extend(p: Plant, day: int) -> tuple[int, array[float]]:
    with _LIFE_LOCK:
        if p.life[1] is None:  # set_plant reset the model since the caller looked
            p.lifetime_base = None
            ensure_model(p)
        lo, arr = p.life
        n = len(arr) // 6
        if day >= lo + n:
            vals = list(arr[-6:])
            for d in range(lo + n - 1, day):
                vals = [a + b for a, b in zip(vals, day_model(p, d, 24.0).counters(), strict=True)]
                arr.extend(vals)
        elif day < lo:
            # Going back, take a month at a time (the months before are likely asked next), but never
            # before the install date unless asked.
            new_lo = min(day, max(lo - 31, p.first_day))
            vals = list(arr[:6])
            rows: list[list[float]] = []
            for d in range(lo - 1, new_lo - 1, -1):
                vals = [a - b for a, b in zip(vals, day_model(p, d, 24.0).counters(), strict=True)]
                rows.append(vals)
            arr = array("d", [v for row in reversed(rows) for v in row]) + arr
            p.life = (new_lo, arr)
            lo = new_lo
        return lo, arr


def lifetime(p: Plant, day: int) -> tuple[float, ...]:
    """Lifetime counters (pv, load, feed-in, purchase, charge, discharge; Wh) at the start of local `day`."""
    ensure_model(p)
    lo, arr = p.life
    i = day - lo
    if arr is None or i < 0 or 6 * i >= len(arr):
        lo, arr = _extend(p, day)
        i = day - lo
    return tuple(arr[6 * i: 6 * i + 6])


# -- measuring points ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Instant:
    """The model at one plant-local instant: the day's values and the lifetime counters including today."""

    p: Plant
    h: float
    s: Day
    pv: float
    load: float
    feed: float
    buy: float
    ch: float
    dis: float


def instant(p: Plant, day: int, h: float, life: tuple[float, ...] | None = None,
            shape: Shape | None = None) -> Instant:
    s = day_at(shape if shape is not None else day_shape(p, day), h)
    pv, load, feed, buy, ch, dis = life if life is not None else lifetime(p, day)
    return Instant(p, h, s, pv + s.pv_wh, load + s.load_wh, feed + s.feed_wh, buy + s.buy_wh,
                   ch + s.charge_wh, dis + s.discharge_wh)


def _f1(v: float) -> str:
    return f"{v:.1f}"


def _f2(v: float) -> str:
    return f"{v:.2f}"


def _f3(v: float) -> str:
    return f"{v:.3f}"


def _int(v: float) -> str:
    return str(int(v))


def _cap(i: Instant) -> float:
    return i.p.capacity_w or 1.0


def _temp(i: Instant) -> float:
    return i.p.ambient_c + 6.0 * math.sin(math.pi * (i.h - 9.0) / 12.0)


def _self_today(i: Instant) -> float:
    return max(0.0, (1.0 - (i.p.battery_share if i.p.is_storage else 0.0)) * i.s.pv_wh - i.s.feed_wh)


Formula = Callable[[Instant], float]
# Point id -> (value in the smallest unit, how the API writes it). One table for real-time and history, so the
# two can never disagree about a value.
FORMULAS: dict[int, tuple[Formula, Callable[[float], str]]] = {
    83022: (lambda i: i.s.pv_wh, _f1), 83009: (lambda i: i.s.pv_wh, _f1), 83331: (lambda i: i.s.pv_wh, _f1),
    83024: (lambda i: i.pv, _f1), 83004: (lambda i: i.pv, _f1), 83332: (lambda i: i.pv, _f1),
    83033: (lambda i: i.s.pv_w, _f1), 83002: (lambda i: i.s.pv_w, _f1), 83067: (lambda i: i.s.pv_w, _f1),
    83329: (lambda i: i.s.pv_w, _f1), 83317: (lambda i: i.s.pv_w * 1.04, _f1),
    83019: (lambda i: i.s.pv_w / _cap(i), _f3), 83001: (lambda i: i.s.pv_w / _cap(i), _f3),
    83006: (lambda i: i.s.pv_wh * 0.985, _f1), 83020: (lambda i: i.pv * 0.985, _f1),
    83011: (lambda i: i.s.buy_wh, _f1), 83021: (lambda i: i.buy, _f1),
    83032: (lambda i: i.s.feed_w - i.s.buy_w, _f1), 83549: (lambda i: i.s.feed_w - i.s.buy_w, _f1),
    83328: (lambda i: i.s.feed_w - i.s.buy_w, _f1),
    83012: (lambda i: i.s.irradiance, _f1), 83013: (lambda i: i.s.irradiation, _f1),
    83023: (lambda i: i.p.perf, _f3), 83007: (lambda i: i.p.perf * 0.98, _f3),
    83010: (lambda i: i.p.perf * 1.01, _f3),
    83025: (lambda i: i.pv / _cap(i), _f2), 83005: (lambda i: i.s.pv_wh / _cap(i), _f2),
    83008: (lambda i: i.s.pv_wh / _cap(i), _f2), 83018: (lambda i: i.s.pv_wh / max(i.p.perf, 0.01), _f1),
    83016: (_temp, _f1), 83017: (lambda i: _temp(i) + i.s.irradiance * 0.025, _f1),
    83052: (lambda i: i.s.load_w, _f1), 83106: (lambda i: i.s.load_w, _f1), 83330: (lambda i: i.s.load_w, _f1),
    83097: (_self_today, _f1), 83100: (lambda i: max(0.0, i.pv - i.feed - i.ch), _f1),
    83102: (lambda i: i.s.buy_wh, _f1), 83105: (lambda i: i.buy, _f1),
    83118: (lambda i: i.s.load_wh, _f1), 83124: (lambda i: i.load, _f1),
    83119: (lambda i: i.s.feed_wh, _f1), 83072: (lambda i: i.s.feed_wh, _f1), 83075: (lambda i: i.feed, _f1),
    83252: (lambda i: i.s.soc, _f3), 83129: (lambda i: i.s.soc, _f3), 83232: (lambda i: i.s.soc, _f3),
    83334: (lambda i: i.s.soc, _f3), 83319: (lambda i: i.s.soc, _f3),
    83233: (lambda i: i.p.battery_wh / 2.0, _f1), 83234: (lambda i: i.p.battery_wh / 2.0, _f1),
    83237: (lambda i: i.p.battery_wh / 4.0, _f1),
    83235: (lambda i: (1.0 - i.s.soc) * i.p.battery_wh, _f1),
    83236: (lambda i: max(0.0, i.s.soc - 0.05) * i.p.battery_wh, _f1),
    83327: (lambda i: i.s.soc * i.p.battery_wh, _f1),
    83046: (lambda i: i.s.battery_w, _f1), 83238: (lambda i: i.s.battery_w, _f1),
    83326: (lambda i: i.s.battery_w, _f1), 83318: (lambda i: i.s.battery_w, _f1),
    83239: (lambda i: i.s.pv_w * 0.05, _f1), 83240: (lambda i: 0.99 if i.s.pv_w > 0 else 1.0, _f3),
    83241: (lambda i: i.ch, _f1), 83242: (lambda i: i.dis, _f1), 83324: (lambda i: i.ch, _f1),
    83325: (lambda i: i.dis, _f1), 83243: (lambda i: i.s.charge_wh, _f1), 83244: (lambda i: i.s.discharge_wh, _f1),
    83322: (lambda i: i.s.charge_wh, _f1), 83323: (lambda i: i.s.discharge_wh, _f1),
    83320: (lambda i: i.p.battery_wh * 0.8, _f1), 83321: (lambda i: i.p.battery_wh * 0.75, _f1),
    83548: (lambda i: float(int(i.ch / i.p.battery_wh)) if i.p.battery_wh > 0 else 0.0, _int),
    83419: (lambda i: i.s.max_pv_w / _cap(i), _f3), 83743: (lambda i: 0.0, _f1),
}


def has_data(p: Plant, point_id: int) -> bool:
    """Whether the plant reports this point at all (a value, not absent/null/"")."""
    if point_id not in FORMULAS:
        return False
    if point_id in BATTERY_POINTS and not p.is_storage:
        return False
    return p.point_quirk(point_id) is None


def point_values(p: Plant, t: float, point_ids: Iterable[int], interval: float) -> dict[int, str | None]:
    """Values (as the API's strings) for the requested known points; unknown ids are silently skipped."""
    if interval > 0:
        t -= t % interval  # the platform only refreshes plant data every few minutes
    day, h = local_day_hour(t, p.utc_offset_h)
    now = instant(p, day, h)
    out: dict[int, str | None] = {}
    for pid in point_ids:
        entry = FORMULAS.get(pid)
        if entry is None:
            continue
        if pid in BATTERY_POINTS and not p.is_storage:
            if p.absent_style == "absent":
                continue
            out[pid] = None
            continue
        quirk = p.point_quirk(pid)
        if quirk == "absent":
            continue
        fn, fmt = entry
        out[pid] = fmt(fn(now)) if quirk is None else quirk_value(quirk)
    return out


def quirk_value(quirk: str) -> str | None:
    return None if quirk == "null" else ""


@dataclass(frozen=True, slots=True)
class PowerSummary:
    """What the legacy plant list shows in its {unit, value} objects."""

    power_w: float
    today_wh: float
    total_wh: float


def summary(p: Plant, t: float, interval: float) -> PowerSummary:
    if interval > 0:
        t -= t % interval
    day, h = local_day_hour(t, p.utc_offset_h)
    s = day_model(p, day, h)
    return PowerSummary(s.pv_w, s.pv_wh, lifetime(p, day)[0] + s.pv_wh)
