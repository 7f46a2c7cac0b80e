"""The plant model: lenient parsing of API rows into plain values.

Knows the meaning of the iSolarCloud fields, nothing about HTTP or Prometheus. Every parser returns None for a
missing, empty or unparseable value, so a gap can never turn into a healthy-looking number.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

PS_TYPE_SLUGS: dict[int, str] = {
    1: "utility",
    3: "distributed_pv",
    4: "residential_pv",
    5: "residential_storage",
    6: "village",
    7: "distributed_storage",
    8: "poverty_alleviation",
    9: "wind",
    10: "utility_storage",
    12: "ci_storage",
}
CONNECT_TYPES: dict[int, str] = {
    1: "full_feed_in",
    2: "self_use_surplus_feed_in",
    3: "self_use_no_feed_in",
    4: "off_grid",
}


@dataclass(frozen=True)
class Point:
    """A plant measuring point exported under its own metric name."""

    point_id: str
    metric: str
    help: str
    scale: float  # multiply the API's value (smallest unit: W, Wh, fraction) to reach the base unit
    counter: bool = False


_WH = 3600.0  # joules per watt-hour

# The one table mapping plant real-time points to metric names [doc: Common plant measuring points].
POINTS: tuple[Point, ...] = (
    Point("83033", "isolarcloud_plant_power_watts", "Plant power (point 83033).", 1.0),
    Point("83022", "isolarcloud_plant_energy_today_joules",
          "Plant yield today (point 83022); resets at the plant's local midnight.", _WH),
    Point("83024", "isolarcloud_plant_energy_joules", "Plant lifetime yield (point 83024).", _WH, counter=True),
    Point("83106", "isolarcloud_plant_load_power_watts", "Load power (point 83106).", 1.0),
    Point("83118", "isolarcloud_plant_consumption_today_joules",
          "Load consumption today (point 83118); resets daily.", _WH),
    Point("83124", "isolarcloud_plant_consumption_joules", "Lifetime load consumption (point 83124).", _WH,
          counter=True),
    Point("83549", "isolarcloud_plant_grid_power_watts", "Grid active power as reported (point 83549).", 1.0),
    Point("83072", "isolarcloud_plant_grid_export_energy_today_joules",
          "Energy fed into the grid today (point 83072); resets daily.", _WH),
    Point("83075", "isolarcloud_plant_grid_export_energy_joules", "Lifetime feed-in energy (point 83075).", _WH,
          counter=True),
    Point("83102", "isolarcloud_plant_grid_import_energy_today_joules",
          "Energy purchased from the grid today (point 83102); resets daily.", _WH),
    Point("83105", "isolarcloud_plant_grid_import_energy_joules", "Lifetime purchased energy (point 83105).", _WH,
          counter=True),
    Point("83252", "isolarcloud_plant_battery_soc_ratio", "Battery state of charge, 0-1 (point 83252).", 1.0),
    Point("83326", "isolarcloud_plant_battery_power_watts", "Energy storage active power (point 83326).", 1.0),
)
_REALTIME_KEYS = tuple(("p" + p.point_id, p.metric, p.scale) for p in POINTS)  # entry key, metric, scale

# Legacy list `{unit, value}` objects → the same metrics (the list has no real-time points).
LEGACY_VALUES: dict[str, str] = {
    "curr_power": "isolarcloud_plant_power_watts",
    "today_energy": "isolarcloud_plant_energy_today_joules",
    "total_energy": "isolarcloud_plant_energy_joules",
    "total_capcity": "isolarcloud_plant_installed_power_watts",  # sic, the API's spelling
}

# Auto-scaled, localised units of the legacy list → factor to the base unit (W or J).
UNIT_FACTORS: dict[str, float] = {
    "w": 1.0, "kw": 1e3, "mw": 1e6, "gw": 1e9,
    "wp": 1.0, "kwp": 1e3, "mwp": 1e6, "gwp": 1e9,
    "wh": _WH, "kwh": 1e3 * _WH, "mwh": 1e6 * _WH, "gwh": 1e9 * _WH, "twh": 1e12 * _WH,
    "度": 1e3 * _WH,  # Chinese "degree" = kWh
    "千度": 1e6 * _WH,
    "万度": 1e7 * _WH,
}


class UnknownUnit(ValueError):
    """A `{unit, value}` whose unit we do not know: reported, never guessed."""

    def __init__(self, unit: str) -> None:
        super().__init__(f"unknown unit {unit!r}")
        self.unit = unit


@dataclass(slots=True)
class Plant:
    ps_id: str
    ps_name: str
    ps_type_code: int | None
    fault_status: int | None
    online_status: int | None
    build_status: int | None
    grid_connection_status: int | None
    valid_flag: int | None
    connect_type: int | None
    location: str
    time_zone: str
    install_ts: float | None
    update_ts: float | None
    grid_connection_ts: float | None
    latitude: float | None
    longitude: float | None
    # metric name → value in base units; point id → value for configured extra points
    values: dict[str, float] = field(default_factory=dict)
    extra_points: dict[str, float] = field(default_factory=dict)

    @property
    def ps_type(self) -> str:
        return ps_type_slug(self.ps_type_code)


def ps_type_slug(code: int | None) -> str:
    if code is None:
        return "unknown"
    return PS_TYPE_SLUGS.get(code, f"unknown_{code}")


def parse_int(value: Any) -> int | None:
    """Integers also arrive as numeric strings ("3", "3.0"); anything else is missing."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 40:  # no id or code has that many digits; int() refuses thousands, float() overflows
            return None
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if re.fullmatch(r"-?\d+\.0*", text):
            return int(float(text))
    return None


def parse_float(value: Any) -> float | None:
    if type(value) is str:  # the API's usual form first: a refresh parses ~15 values per plant
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits (JSON allows it)
            return None
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def parse_coordinate(value: Any, limit: float) -> float | None:
    """0 means "not set" in the API, as does anything outside the globe."""
    number = parse_float(value)
    if number is None or number == 0 or abs(number) > limit:
        return None
    return number


_GMT_RE = re.compile(r"^(?:GMT|UTC)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)  # a fleet has a few dozen zones; parsed once each, not once per plant
def zone_offset(spec: str, plant_zone: str) -> timezone | None:
    """The offset in which the API's local timestamps are read: `plant` uses the plant's `GMT+8` zone."""
    if spec == "UTC":
        return timezone.utc
    if spec != "plant":
        sign = 1 if spec[0] == "+" else -1
        return timezone(sign * timedelta(hours=int(spec[1:3]), minutes=int(spec[4:6])))
    text = plant_zone.strip()
    if text.upper() in ("GMT", "UTC"):
        return timezone.utc
    match = _GMT_RE.match(text)
    if not match:
        return None
    sign = 1 if match.group(1) == "+" else -1
    delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
    if delta > timedelta(hours=14):
        return None
    return timezone(sign * delta)


# The two shapes the API really uses, every field two digits (the year four): strptime reads exactly these
# fields from such a string, so building the datetime directly gives the same result, ~10x faster.
_FAST_TIMESTAMPS = {19: re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})", re.ASCII),
                    14: re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})", re.ASCII)}


def parse_timestamp(value: Any, tz: timezone | None) -> float | None:
    """`yyyy-MM-dd HH:mm:ss`, ISO 8601, or `yyyyMMddHHmmss` as an integer or string → Unix seconds."""
    if value is None or isinstance(value, bool) or tz is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    text = str(int(value)) if isinstance(value, (int, float)) else str(value).strip()
    if not text:
        return None
    pattern = _FAST_TIMESTAMPS.get(len(text))
    fast = pattern.fullmatch(text) if pattern is not None else None
    if fast is not None:
        try:
            return datetime(*map(int, fast.groups()), tzinfo=tz).timestamp()  # type: ignore[misc]
        except ValueError:
            pass  # out of range: the general path below decides, as before
    formats = ("%Y%m%d%H%M%S",) if text.isdigit() else ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
    for fmt in formats:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return parsed.replace(tzinfo=tz).timestamp()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).timestamp()


_CONTROL = {c: " " for c in range(32) if chr(c) not in "\n\t"} | {0x7F: " "}


def _text(value: Any) -> str:
    """A label-bound string. Control characters other than newline and tab become spaces: the exposition
    formats cannot escape them and some parsers split lines on a bare carriage return."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text.translate(_CONTROL) if not text.isprintable() else text


def plant_id(row: Mapping[str, Any]) -> str | None:
    """The plant id as a canonical string (integers in lists, strings elsewhere)."""
    number = parse_int(row.get("ps_id"))
    return str(number) if number is not None and number >= 0 else None


def parse_plant(row: Mapping[str, Any], api_time_zone: str = "plant") -> Plant | None:
    """One `pageList` row → Plant; None when the row has no usable `ps_id`."""
    ps_id = plant_id(row)
    if ps_id is None:
        return None
    time_zone = _text(row.get("ps_current_time_zone")).strip()
    tz = zone_offset(api_time_zone, time_zone)
    plant = Plant(
        ps_id=ps_id,
        ps_name=_text(row.get("ps_name")),
        ps_type_code=parse_int(row.get("ps_type")),
        fault_status=parse_int(row.get("ps_fault_status")),
        online_status=parse_int(row.get("online_status")),
        build_status=parse_int(row.get("build_status")),
        grid_connection_status=parse_int(row.get("grid_connection_status")),
        valid_flag=parse_int(row.get("valid_flag")),
        connect_type=parse_int(row.get("connect_type")),
        location=_text(row.get("ps_location")),
        time_zone=time_zone,
        install_ts=parse_timestamp(row.get("install_date"), tz),
        update_ts=parse_timestamp(row.get("update_time"), tz),
        grid_connection_ts=parse_timestamp(row.get("grid_connection_time"), tz),
        latitude=parse_coordinate(row.get("latitude"), 90),
        longitude=parse_coordinate(row.get("longitude"), 180),
    )
    return plant


def unit_value(obj: Any) -> float | None:
    """A legacy `{unit, value}` object → base units. Raises UnknownUnit rather than guessing."""
    if not isinstance(obj, Mapping):
        return None
    number = parse_float(obj.get("value"))
    if number is None:
        return None
    unit = _text(obj.get("unit")).strip()
    factor = UNIT_FACTORS.get(unit.lower()) if unit else None
    if factor is None:
        raise UnknownUnit(unit)
    value = number * factor
    return value if math.isfinite(value) else None


def apply_legacy_values(plant: Plant, row: Mapping[str, Any]) -> list[str]:
    """Copy the legacy list's production objects into the plant; returns the unknown units met."""
    unknown: list[str] = []
    for key, metric in LEGACY_VALUES.items():
        try:
            value = unit_value(row.get(key))
        except UnknownUnit as exc:
            unknown.append(exc.unit)
            continue
        if value is not None:
            plant.values[metric] = value
    return unknown


def apply_realtime(plant: Plant, entry: Mapping[str, Any], extra_points: Iterable[str]) -> None:
    """One `device_point_list` entry (`p<point_id>` keys, values in the smallest unit) → plant values."""
    values = plant.values
    for key, metric, scale in _REALTIME_KEYS:
        value = parse_float(entry.get(key))
        if value is not None and math.isfinite(value * scale):
            values[metric] = value * scale
    for point_id in extra_points:
        value = parse_float(entry.get("p" + point_id))
        if value is not None:
            plant.extra_points[point_id] = value
