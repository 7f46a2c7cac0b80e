"""Deterministic, deliberately awkward plant fleet (queryPowerStationList / getPowerStationList records)."""

from __future__ import annotations

import functools
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from .common import ETA, EVENING_H, OFTEN_EMPTY_POINTS, STORAGE_TYPES, WIND_TYPE, lenient_int, unit_float

# The 17 fields of the queryPowerStationList field table, in table order.
WIRE_FIELDS = (
    "ps_id", "ps_name", "description", "ps_type", "online_status", "valid_flag", "grid_connection_status",
    "install_date", "ps_location", "latitude", "longitude", "ps_fault_status", "connect_type", "update_time",
    "ps_current_time_zone", "grid_connection_time", "build_status",
)
# How `update_time` and the real-time values move (Simulator option update_time_style; see Plant.data_time).
UPDATE_TIME_STYLES = ("clock", "data")
# Extra static fields of the legacy getPowerStationList table.
LEGACY_FIELDS = ("ps_status", "alarm_count", "fault_count", "share_type", "province_name", "city_name",
                 "district_name")
MODEL_FIELDS = frozenset({
    "capacity_w", "utc_offset_h", "perf", "day_len_h", "base_load_w", "morning_w", "evening_w",
    "battery_share", "battery_wh", "soc0", "ambient_c", "update_lag_s", "absent_style", "price_per_kwh",
    "currency", "weather_key", "quirk_key", "uuid",
})


@dataclass(frozen=True)
class Region:
    country: str
    utc_offset_h: float
    lat: float
    lon: float
    currency: str
    price: float
    ambient_c: float
    places: tuple[tuple[str, str, str], ...]  # province, city, district
    addresses: tuple[str, ...]
    name_patterns: tuple[str, ...]
    weight: int


REGIONS: tuple[Region, ...] = (
    Region("China", 8, 31.86, 117.28, "CNY", 0.4, 17.0,
           (("安徽省", "合肥市", "蜀山区"), ("江苏省", "南京市", "玄武区"), ("Zhejiang", "Hangzhou", "Xihu"),),
           ("Longtu Rd, Shushan District, Hefei, Anhui, China", "阳光电源", "合肥市蜀山区习友路1699号", ""),
           ("{city}屋顶光伏{i}号", "阳光电源{i}", "Plant-{i}", "户用储能 {i}"), 5),
    Region("Germany", 1, 50.9, 10.0, "EUR", 0.3, 10.0,
           (("Bayern", "München", "Schwabing"), ("Nordrhein-Westfalen", "Köln", "Ehrenfeld"),),
           ("Hauptstraße 12, 80331 München", "Grüner Weg 5, 50825 Köln", "Am Mühlbach 3"),
           ("PV-Anlage {i}", "Dach Süd {i}", "Schönes Zuhause {i}", "Hof Müller {i}"), 3),
    Region("Netherlands", 1, 52.1, 5.1, "EUR", 0.28, 10.5,
           (("Utrecht", "Utrecht", "Oost"),), ("Dorpsstraat 1, Utrecht",), ("Zonnepanelen {i}", "Huis {i}"), 1),
    Region("Australia", 10, -33.87, 151.21, "AUD", 0.25, 18.0,
           (("NSW", "Sydney", "Parramatta"),), ("1 George St, Sydney NSW 2000",), ("Home Solar {i}", "Shed {i}"), 2),
    Region("United Kingdom", 0, 51.5, -0.12, "GBP", 0.24, 11.0,
           (("England", "London", "Camden"),), ("10 Downing St, London",), ("Roof {i}", "Barn {i}"), 1),
    Region("Brazil", -3, -23.55, -46.63, "BRL", 0.8, 21.0,
           (("São Paulo", "São Paulo", "Sé"),), ("Avenida Paulista, 1000",), ("Usina Solar {i}",), 1),
    Region("India", 5.5, 28.61, 77.21, "INR", 7.0, 25.0,
           (("Delhi", "New Delhi", "Central"),), ("Connaught Place, New Delhi",), ("Rooftop {i}",), 1),
    Region("United States", -6, 30.27, -97.74, "USD", 0.14, 20.0,
           (("Texas", "Austin", "Travis"),), ("100 Congress Ave, Austin, TX",), ("Ranch {i}", "Solar Farm {i}"), 1),
)
_REGION_CHOICE = [i for i, r in enumerate(REGIONS) for _ in range(r.weight)]

# Names that break naive label escaping, CSV, logs, terminals, or uniqueness assumptions.
AWKWARD_NAMES = (
    "", " ", "Home", "Home", "iHM测试", "家", 'Dach "Süd"', "C:\\PV\\roof", "back\\slash\\", "Line1\nLine2",
    "tab\there", "Müllers Scheune ☀️", "🌞🔋 Sunny Home", 'Zoë\'s "Villa" \\ Süd', "阳光电源 – 屋顶 #1",
    "Grünstraße 5 äöüß ÄÖÜ", '{label="x"}', "a,b;c=d", "<b>bold</b>", "\u200bzero width", "  padded  ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "null", "None", "0", "\\", '"', "# comment", "Ελληνικά", "Русская станция", "محطة شمسية",
    "x" * 200, "trailing newline\n", "\r\ncrlf", "emoji 👨‍👩‍👧 family",
)
DESCRIPTIONS = (
    "Record the power generation data of rooftop photovoltaic panels", "屋顶光伏电站", "Scheune, Süddach",
    'quoted "text"', "multi\nline\ndescription", "", "🌞",
)
# Weighted plant types: residential PV/storage dominate, 99 is an undocumented type.
PS_TYPES = (4,) * 40 + (5,) * 20 + (3,) * 14 + (1,) * 5 + (6,) * 3 + (7,) * 4 + (8,) * 3 + (9,) * 2 + \
    (10,) * 2 + (12,) * 4 + (99,) * 1
INT_FIELDS = ("ps_type", "online_status", "valid_flag", "grid_connection_status", "ps_fault_status",
              "connect_type", "build_status")


@functools.lru_cache(maxsize=64)
def tz_string(offset_h: float) -> str:
    sign = "+" if offset_h >= 0 else "-"
    whole = int(abs(offset_h))
    minutes = round((abs(offset_h) - whole) * 60)
    return f"GMT{sign}{whole}" + (f":{minutes:02d}" if minutes else "")


def fmt_local(t: float, offset_h: float, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    return time.strftime(pattern, time.gmtime(t + offset_h * 3600.0))


@dataclass(eq=False)
class Plant:
    """One plant: `fields` holds the values exactly as served (strings where a plant has string quirks);
    the remaining attributes drive the real-time model. Index like a dict for wire fields: plant["ps_name"]."""

    ps_id: int
    fields: dict[str, Any]
    capacity_w: float
    utc_offset_h: float
    weather_key: int
    perf: float
    day_len_h: float
    base_load_w: float
    morning_w: float
    evening_w: float
    battery_share: float
    battery_wh: float
    soc0: float
    ambient_c: float
    update_lag_s: float
    absent_style: str
    currency: str
    price_per_kwh: float
    uuid: int
    quirk_key: int
    start_day: int = 0
    first_day: int = 0  # local day of the install date: the history starts here
    anchor: float = 0.0
    lifetime_base: list[float] | None = None
    life: tuple[int, Any] = (0, None)  # (first local day, array of 6 lifetime counters per day from it)

    def __getitem__(self, key: str) -> Any:
        return self.ps_id if key == "ps_id" else self.fields[key]

    @property
    def ps_type(self) -> int | None:
        return lenient_int(self.fields.get("ps_type"))

    @property
    def is_storage(self) -> bool:
        return self.ps_type in STORAGE_TYPES

    @property
    def is_wind(self) -> bool:
        return self.ps_type == WIND_TYPE

    def point_quirk(self, point_id: int) -> str | None:
        """Deterministic per (seed, plant, point): most values present, a few absent / null / ""."""
        u = unit_float(self.quirk_key, point_id)
        if point_id in OFTEN_EMPTY_POINTS and u < 0.6:
            return "empty"
        if u < 0.02:
            return "absent"
        if u < 0.03:
            return "null"
        if u < 0.04:
            return "empty"
        return None

    def data_time(self, now: float, style: str, interval: float) -> float:
        """The time the plant's data stands at. "clock": `now` (values follow the clock; `update_time` is the
        clock minus the plant's lag, moving on every call). "data": the plant's last upload, each `interval`
        after its lag, and for plants whose logger sleeps at night (no battery, no wind) the last upload
        before sunset until the next sunrise: values and `update_time` move together and stand still
        together. A plant lagging a day or more stopped uploading that long before the simulator started."""
        if style != "data":
            return now
        # A stale plant (lag of days) went silent that long before the simulator started: frozen since then.
        t = (self.anchor if self.update_lag_s >= 86400.0 else now) - self.update_lag_s
        if interval > 0:
            t -= t % interval
        if self.is_storage or self.is_wind:
            return t
        local = t + self.utc_offset_h * 3600.0
        day = math.floor(local / 86400.0)
        hour = (local - day * 86400.0) / 3600.0
        sunrise = 12.0 - self.day_len_h / 2.0
        sunset = sunrise + self.day_len_h
        if sunrise <= hour <= sunset:
            return t
        last = (day if hour > sunset else day - 1) * 86400.0 + sunset * 3600.0 - self.utc_offset_h * 3600.0
        return last - last % interval if interval > 0 else last

    def wire(self, now: float, style: str = "clock", interval: float = 0.0) -> dict[str, Any]:
        out = {k: self.fields[k] for k in WIRE_FIELDS[1:]}
        out["ps_id"] = self.ps_id
        if out["update_time"] is None:
            t = self.data_time(now, style, interval) if style == "data" else now - self.update_lag_s
            out["update_time"] = fmt_local(t, self.utc_offset_h)
        return out

    def reset_model(self, now: float) -> None:
        # Anchoring is deferred to the first real-time query (realtime.ensure_model): generating 50k plants
        # must stay cheap.
        self.anchor = now
        self.lifetime_base = None
        self.life = (0, None)

    days_running: float = 365.0


class Fleet:
    """Plant list with stable order (by insertion) and a cached filter for fast paging of big fleets."""

    def __init__(self, seed: int, size: int, now: float) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self._next_id = 1_000_000 + self._rng.randrange(100_000_000)
        self._next_uuid = 1_100_000
        self._lock = threading.RLock()
        self._now = now
        self.plants: list[Plant] = []
        self.by_id: dict[int, Plant] = {}
        self._cache: dict[tuple[Any, ...], list[Plant]] = {}
        # Plants the OAuth2 app may not see: absent from platform lists, refused by platform plant queries.
        self.unauthorized: set[int] = set()
        self.version = 0  # bumped on every change, so answers derived from the fleet can be cached
        self.add(size, now)

    def _changed(self) -> None:
        self._cache.clear()
        self.version += 1

    def add(self, n: int, now: float | None = None, at: int | None = None) -> list[int]:
        now = self._now if now is None else now
        with self._lock:
            new = [self._generate(now) for _ in range(n)]
            if at is None:
                self.plants.extend(new)
            else:
                self.plants[at:at] = new
            for p in new:
                self.by_id[p.ps_id] = p
            self._changed()
            return [p.ps_id for p in new]

    def remove(self, ps_id: int) -> None:
        with self._lock:
            p = self.by_id.pop(ps_id)
            self.plants.remove(p)
            self.unauthorized.discard(ps_id)
            self._changed()

    def set_size(self, n: int, now: float | None = None) -> None:
        with self._lock:
            if n < len(self.plants):
                for p in self.plants[n:]:
                    del self.by_id[p.ps_id]
                del self.plants[n:]
                self._changed()
            elif n > len(self.plants):
                self.add(n - len(self.plants), now)

    def update(self, ps_id: int, values: dict[str, Any], now: float) -> None:
        with self._lock:
            p = self.by_id[ps_id]
            for key, value in values.items():
                if key in WIRE_FIELDS[1:] or key in LEGACY_FIELDS:
                    p.fields[key] = value
                elif key in MODEL_FIELDS:
                    setattr(p, key, value)
                else:
                    raise KeyError(f"unknown plant field {key!r}")
            if MODEL_FIELDS.intersection(values) or {"ps_type", "connect_type", "install_date"}.intersection(values):
                p.reset_model(now)
            self._changed()

    def set_authorized(self, ps_ids: list[int], authorized: bool) -> None:
        with self._lock:
            if authorized:
                self.unauthorized.difference_update(ps_ids)
            else:
                self.unauthorized.update(ps_ids)
            self._changed()

    def authorized(self, ps_id: int) -> Plant | None:
        """The plant if it exists and the app may see it."""
        p = self.by_id.get(ps_id)
        return None if p is None or ps_id in self.unauthorized else p

    def asked(self, raw_ids: list[str]) -> tuple[list[Plant], list[str]]:
        """The plants of a ps_id list as a request gives it (strings, repeats dropped): (the ones the app may see,
        in order; the others as written, for the answer's fail or illegal list)."""
        plants: list[Plant] = []
        unknown: list[str] = []
        for raw in dict.fromkeys(raw_ids):
            n = lenient_int(raw)
            plant = self.authorized(n) if n is not None else None
            if plant is None:
                unknown.append(raw)
            else:
                plants.append(plant)
        return plants, unknown

    def query(self, ps_types: frozenset[int] | None, name: str, valid_flags: frozenset[int],
              share_types: frozenset[int] | None = None, authorized_only: bool = False) -> list[Plant]:
        key = (ps_types, name, valid_flags, share_types, authorized_only)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            needle = name.casefold()
            out = []
            for p in self.plants:
                f = p.fields
                if lenient_int(f["valid_flag"]) not in valid_flags:
                    continue
                if ps_types is not None and lenient_int(f["ps_type"]) not in ps_types:
                    continue
                if share_types is not None and lenient_int(f["share_type"]) not in share_types:
                    continue
                if needle and needle not in str(f["ps_name"] or "").casefold():
                    continue
                if authorized_only and p.ps_id in self.unauthorized:
                    continue
                out.append(p)
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = out
            return out

    def _generate(self, now: float) -> Plant:
        rng = self._rng
        r = rng.random
        region_index = _REGION_CHOICE[int(r() * len(_REGION_CHOICE))]
        region = REGIONS[region_index]
        ps_id = self._next_id
        self._next_id += 1 + int(r() * 5000)
        self._next_uuid += 1
        index = len(self.plants) + 1
        province, city, district = region.places[int(r() * len(region.places))]
        roll = r()
        if roll < 0.15:
            name = AWKWARD_NAMES[int(r() * len(AWKWARD_NAMES))]
        else:
            name = region.name_patterns[int(r() * len(region.name_patterns))].format(i=index, city=city)
        ps_type = PS_TYPES[int(r() * len(PS_TYPES))]
        residential = ps_type in (4, 5)
        utility = ps_type in (1, 9, 10)
        capacity_w = (3_000 + r() * 12_000) if residential else (
            (2e6 + r() * 98e6) if utility else (30_000 + r() * 970_000))
        capacity_w = float(round(capacity_w / 10) * 10)
        connect_type = 1 if utility else (2 if r() < 0.7 else (1 if r() < 0.6 else (3 if r() < 0.7 else 4)))
        install = now - (30 + r() * 3600) * 86400.0
        gc_ts = install + r() * 20 * 86400.0
        lat: Any = round(region.lat + (r() - 0.5) * 4, 6)
        lon: Any = round(region.lon + (r() - 0.5) * 4, 6)
        loc_roll = r()
        if loc_roll < 0.04:
            lat = lon = 0
        elif loc_roll < 0.07:
            lat = lon = None
        elif loc_roll < 0.10:
            lat, lon = str(lat), str(lon)
        offset = region.utc_offset_h
        tz = tz_string(-offset if r() < 0.05 else offset)  # sign-flipped zones exist (GMT-2 for China)
        gc_roll = r()
        gct: Any = int(fmt_local(gc_ts, offset, "%Y%m%d%H%M%S"))
        if gc_roll < 0.10:
            gct = None
        elif gc_roll < 0.15:
            gct = str(gct)
        elif gc_roll < 0.17:
            gct = fmt_local(gc_ts, offset)
        fault = 3 if r() < 0.85 else (2 if r() < 0.66 else 1)
        fields: dict[str, Any] = {
            "ps_name": name,
            "description": None if r() < 0.5 else DESCRIPTIONS[int(r() * len(DESCRIPTIONS))],
            "ps_type": ps_type,
            "online_status": 1 if r() < 0.92 else 0,
            "valid_flag": 1 if r() < 0.85 else (3 if r() < 0.67 else 2),
            "grid_connection_status": 1 if r() < 0.88 else 0,
            "install_date": fmt_local(install, offset),
            "ps_location": region.addresses[int(r() * len(region.addresses))],
            "latitude": lat,
            "longitude": lon,
            "ps_fault_status": fault,
            "connect_type": connect_type,
            "update_time": None,
            "ps_current_time_zone": tz,
            "grid_connection_time": gct,
            "build_status": 2 if r() < 0.85 else int(r() * 5),
            "ps_status": 1 if r() < 0.9 else 0,
            "alarm_count": 0 if fault == 3 else 1 + int(r() * 4),
            "fault_count": 1 + int(r() * 3) if fault == 1 else 0,
            "share_type": 0 if r() < 0.8 else (1 if r() < 0.7 else 2),
            "province_name": province,
            "city_name": city,
            "district_name": district,
        }
        if r() < 0.03:
            # Lenient-parsing bait: one integer field arrives as a numeric string.
            k = INT_FIELDS[int(r() * len(INT_FIELDS))]
            fields[k] = str(fields[k])
        storage = ps_type in STORAGE_TYPES
        perf = 0.6 + r() * 0.25
        day_len = 9.5 + r() * 5.5
        share = 0.15 + r() * 0.25 if storage else 0.0
        base_load = capacity_w * (0.04 + r() * 0.12)
        if connect_type == 3:
            base_load = capacity_w * perf * 1.05  # no-feed-in sites consume everything they produce
        evening = base_load * (0.5 + r())
        if storage:
            evening = max(evening, 1.1 * ETA * share * capacity_w * perf * day_len / EVENING_H)
        soc0 = 0.1 + r() * 0.2
        battery_wh = (share * 2 * capacity_w * perf * day_len / math.pi / (0.95 - soc0)) if storage else 0.0
        stale = r() < 0.03
        p = Plant(
            ps_id=ps_id, fields=fields, capacity_w=capacity_w, utc_offset_h=offset,
            weather_key=self.seed * 1000 + region_index, perf=perf, day_len_h=day_len,
            base_load_w=base_load, morning_w=base_load * r(), evening_w=evening, battery_share=share,
            battery_wh=battery_wh, soc0=soc0, ambient_c=region.ambient_c + (r() - 0.5) * 6,
            update_lag_s=(86400.0 * (1 + r() * 20)) if stale else r() * 300.0,
            absent_style="absent" if r() < 0.6 else "null", currency=region.currency,
            price_per_kwh=region.price, uuid=self._next_uuid, quirk_key=self.seed * 7919 + ps_id,
        )
        p.days_running = (now - gc_ts) / 86400.0
        p.reset_model(now)
        return p
