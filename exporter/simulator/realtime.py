"""Physical model behind the plant real-time points (getPowerStationRealTimeData).

Every quantity is a closed-form function of (plant, local day, local hour), so any point can be computed for
any clock value in O(1) and energies are exact integrals of the powers: today's energy is the integral since
local midnight, lifetime counters add whole days on top and therefore never decrease.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .common import ETA, EVENING_H, MEAN_WEATHER, MORNING_H, lenient_int, unit_float
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
def weather(key: int, day: int) -> float:
    # sqrt skews towards sunny days; never fully dark so every day has some yield.
    return 0.15 + 0.85 * math.sqrt(unit_float(key, day))


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


def day_model(p: Plant, day: int, h: float, w: float | None = None) -> Day:
    if w is None:
        w = weather(p.weather_key, day)
    wind = p.is_wind
    storage = p.is_storage
    d_len = 24.0 if wind else p.day_len_h
    sunrise = 0.0 if wind else 12.0 - d_len / 2.0
    sunset = sunrise + d_len
    amp = p.capacity_w * p.perf * w
    x = _clip(math.pi * (h - sunrise) / d_len, 0.0, math.pi)
    sin_x = math.sin(x) if 0.0 < x < math.pi else 0.0
    pv_w = amp * sin_x
    pv_wh = amp * d_len / math.pi * (1.0 - math.cos(x))
    max_pv = amp * math.sin(min(x, math.pi / 2.0))

    beta = p.battery_share if storage else 0.0
    y = _clip(math.pi * (h - sunset) / EVENING_H, 0.0, math.pi)
    if storage:
        # Sized so that each day's discharge (after losses) equals that day's charge: SOC is periodic.
        bd_peak = ETA * beta * amp * d_len / EVENING_H
        dis_w = bd_peak * math.sin(y)
        dis_wh = bd_peak * EVENING_H / math.pi * (1.0 - math.cos(y))
    else:
        dis_w = dis_wh = 0.0
    ch_w, ch_wh = beta * pv_w, beta * pv_wh

    base = p.base_load_w
    if wind:
        load_w, load_wh = base, base * h
    else:
        z = _clip(math.pi * (h - sunrise + MORNING_H) / MORNING_H, 0.0, math.pi)
        load_w = base + p.morning_w * math.sin(z) + p.evening_w * math.sin(y)
        load_wh = (
            base * h
            + p.morning_w * MORNING_H / math.pi * (1.0 - math.cos(z))
            + p.evening_w * EVENING_H / math.pi * (1.0 - math.cos(y))
        )

    site_amp = (1.0 - beta) * amp
    site_w, site_wh = (1.0 - beta) * pv_w, (1.0 - beta) * pv_wh
    ctype = lenient_int(p.fields.get("connect_type"), 2)
    if ctype == 4:  # off-grid: no meter flows at all
        feed_w = feed_wh = buy_w = buy_wh = 0.0
    else:
        if ctype == 1:  # full feed-in: all PV to the grid, all load from the grid
            feed_w, feed_wh = site_w, site_wh
        elif site_amp > base:
            # Load is flat (= base) between sunrise and sunset, so the surplus integral stays closed-form.
            x1 = math.asin(base / site_amp)
            xc = _clip(x, x1, math.pi - x1)
            feed_wh = d_len / math.pi * (site_amp * (math.cos(x1) - math.cos(xc)) - base * (xc - x1))
            feed_w = max(0.0, site_w - base)
        else:
            feed_w = feed_wh = 0.0
        buy_w = max(0.0, load_w - (site_w - feed_w) - dis_w)
        buy_wh = max(0.0, load_wh - (site_wh - feed_wh) - dis_wh)

    soc = p.soc0 + (ch_wh - dis_wh / ETA) / p.battery_wh if storage and p.battery_wh > 0 else 0.0
    irr = 1000.0 * w * sin_x
    irradiation = 1000.0 * w * d_len / math.pi * (1.0 - math.cos(x))
    return Day(
        pv_w, load_w, feed_w, buy_w, ch_w - dis_w, irr, _clip(soc, 0.0, 1.0), max_pv,
        pv_wh, load_wh, feed_wh, buy_wh, ch_wh, dis_wh, irradiation,
    )


def ensure_model(p: Plant) -> list[float]:
    """Anchor the lifetime counters at the plant's creation time, back-dated to its grid connection."""
    if p.lifetime_base is not None:
        return p.lifetime_base
    day, _ = local_day_hour(p.anchor, p.utc_offset_h)
    p.start_day = day
    full = day_model(p, day, 24.0, w=MEAN_WEATHER).counters()
    days = max(30.0, p.days_running)
    p.cum_cache = (day, [0.0] * 6)
    p.lifetime_base = [v * days for v in full]
    return p.lifetime_base


def _full_days(p: Plant, first: int, last: int) -> list[float]:
    """Sum of whole-day counters for local days first..last-1."""
    acc = [0.0] * 6
    for d in range(first, last):
        for i, v in enumerate(day_model(p, d, 24.0).counters()):
            acc[i] += v
    return acc


def lifetime(p: Plant, day: int) -> list[float]:
    """Lifetime counters at the start of local `day`; cached per plant so advancing clocks stay cheap."""
    base = ensure_model(p)
    cached_day, cum = p.cum_cache
    if day >= cached_day:
        extra = _full_days(p, cached_day, day)
        cum = [a + b for a, b in zip(cum, extra, strict=True)]
        p.cum_cache = (day, cum)
    elif day >= p.start_day:
        cum = _full_days(p, p.start_day, day)
    else:
        cum = [-v for v in _full_days(p, day, p.start_day)]
    return [b + c for b, c in zip(base, cum, strict=True)]


def _f1(v: float) -> str:
    return f"{v:.1f}"


def _f3(v: float) -> str:
    return f"{v:.3f}"


def point_values(p: Plant, t: float, point_ids: Iterable[int], interval: float) -> dict[int, str | None]:
    """Values (as the API's strings) for the requested known points; unknown ids are silently skipped."""
    if interval > 0:
        t -= t % interval  # the platform only refreshes plant data every few minutes
    day, h = local_day_hour(t, p.utc_offset_h)
    s = day_model(p, day, h)
    life = lifetime(p, day)
    total_pv, total_load, total_feed, total_buy, total_ch, total_dis = (
        a + b for a, b in zip(life, s.counters(), strict=True)
    )
    cap = p.capacity_w or 1.0
    rated = p.battery_wh / 2.0
    grid = s.feed_w - s.buy_w
    self_wh = (1.0 - (p.battery_share if p.is_storage else 0.0)) * s.pv_wh - s.feed_wh
    total_self = max(0.0, total_pv - total_feed - total_ch)
    calc = {
        83022: lambda: _f1(s.pv_wh), 83009: lambda: _f1(s.pv_wh), 83331: lambda: _f1(s.pv_wh),
        83024: lambda: _f1(total_pv), 83004: lambda: _f1(total_pv), 83332: lambda: _f1(total_pv),
        83033: lambda: _f1(s.pv_w), 83002: lambda: _f1(s.pv_w), 83067: lambda: _f1(s.pv_w),
        83329: lambda: _f1(s.pv_w), 83317: lambda: _f1(s.pv_w * 1.04),
        83019: lambda: _f3(s.pv_w / cap), 83001: lambda: _f3(s.pv_w / cap),
        83006: lambda: _f1(s.pv_wh * 0.985), 83020: lambda: _f1(total_pv * 0.985),
        83011: lambda: _f1(s.buy_wh), 83021: lambda: _f1(total_buy),
        83032: lambda: _f1(grid), 83549: lambda: _f1(grid), 83328: lambda: _f1(grid),
        83012: lambda: _f1(s.irradiance), 83013: lambda: _f1(s.irradiation),
        83023: lambda: _f3(p.perf), 83007: lambda: _f3(p.perf * 0.98), 83010: lambda: _f3(p.perf * 1.01),
        83025: lambda: f"{total_pv / cap:.2f}", 83005: lambda: f"{s.pv_wh / cap:.2f}",
        83008: lambda: f"{s.pv_wh / cap:.2f}", 83018: lambda: _f1(s.pv_wh / max(p.perf, 0.01)),
        83016: lambda: _f1(p.ambient_c + 6.0 * math.sin(math.pi * (h - 9.0) / 12.0)),
        83017: lambda: _f1(p.ambient_c + 6.0 * math.sin(math.pi * (h - 9.0) / 12.0) + s.irradiance * 0.025),
        83052: lambda: _f1(s.load_w), 83106: lambda: _f1(s.load_w), 83330: lambda: _f1(s.load_w),
        83097: lambda: _f1(max(0.0, self_wh)), 83100: lambda: _f1(total_self),
        83102: lambda: _f1(s.buy_wh), 83105: lambda: _f1(total_buy),
        83118: lambda: _f1(s.load_wh), 83124: lambda: _f1(total_load),
        83119: lambda: _f1(s.feed_wh), 83072: lambda: _f1(s.feed_wh), 83075: lambda: _f1(total_feed),
        83252: lambda: _f3(s.soc), 83129: lambda: _f3(s.soc), 83232: lambda: _f3(s.soc),
        83334: lambda: _f3(s.soc), 83319: lambda: _f3(s.soc),
        83233: lambda: _f1(rated), 83234: lambda: _f1(rated), 83237: lambda: _f1(rated * 0.5),
        83235: lambda: _f1((1.0 - s.soc) * p.battery_wh), 83236: lambda: _f1(max(0.0, s.soc - 0.05) * p.battery_wh),
        83327: lambda: _f1(s.soc * p.battery_wh),
        83046: lambda: _f1(s.battery_w), 83238: lambda: _f1(s.battery_w), 83326: lambda: _f1(s.battery_w),
        83318: lambda: _f1(s.battery_w),
        83239: lambda: _f1(s.pv_w * 0.05), 83240: lambda: "0.990" if s.pv_w > 0 else "1.000",
        83241: lambda: _f1(total_ch), 83242: lambda: _f1(total_dis), 83324: lambda: _f1(total_ch),
        83325: lambda: _f1(total_dis), 83243: lambda: _f1(s.charge_wh), 83244: lambda: _f1(s.discharge_wh),
        83322: lambda: _f1(s.charge_wh), 83323: lambda: _f1(s.discharge_wh),
        83320: lambda: _f1(p.battery_wh * 0.8), 83321: lambda: _f1(p.battery_wh * 0.75),
        83548: lambda: str(int(total_ch / p.battery_wh)) if p.battery_wh > 0 else "0",
        83419: lambda: _f3(s.max_pv_w / cap), 83743: lambda: "0.0",
    }
    out: dict[int, str | None] = {}
    for pid in point_ids:
        fn = calc.get(pid)
        if fn is None:
            continue
        if pid in BATTERY_POINTS and not p.is_storage:
            if p.absent_style == "absent":
                continue
            out[pid] = None
            continue
        quirk = p.point_quirk(pid)
        if quirk == "absent":
            continue
        out[pid] = fn() if quirk is None else quirk_value(quirk)
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
