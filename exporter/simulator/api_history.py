"""Plant history: getPowerStationPointMinuteDataList and getPowerStationPointDayMonthYearDataList (platform), and
the device minute data (getDevicePointMinuteDataList, platform and legacy), which a live legacy client used
for the plant's own key <ps_id>_11_0_0.

Limits, parameter names and answer shapes follow the field tables (isolarcloud-openapi.yaml); where those are
silent, the choices are listed in docs/simulator.md, and the real unknowns are constructor options.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Container
from typing import Any

from .common import lenient_int
from .context import Context
from .devices import parse_ps_key, supported_points
from .envelope import Reply, Request, envelope, error
from .faults import Fault
from .fleet import Plant
from .history import DATA_TYPES, Day, Period, device_rows, minute_rows, points_with_data, stamp
from .params import int_set, invalid, missing, str_list
from .realtime import POINTS, ensure_model

MAX_PLANTS = 50  # both tables: "up to 50 plants"
MAX_MINUTE_POINTS = 50  # "Supports up to 50 measuring points per request"
MAX_WINDOW_S = 3 * 3600  # "Supports time intervals of up to 3 hours"
MAX_PERIODS = {"day": 100, "month": 24, "year": 5}  # "up to 100 days ..., 24 months ..., and 5 years"
# The message a live gateway gave for a minute window over 3 hours (result_code 010); reused for the
# day/month/year limits, for which no answer is recorded.
TOO_LONG = "the query time interval exceeds the maximum limit"
LAG_S = 300  # with history_current_day="lagged": recorded answers were about 5 minutes behind
CURRENT_DAY_MODES = ("none", "lagged")
WINDOW_MODES = ("closed", "left_open")
TYPE_STYLES = ("recorded", "table")
_POINT = re.compile(r"^p(\d+)$")  # "p+measuring point"; a bare id is no point at all (recorded: no data)
_DIGITS = {"day": 8, "month": 6, "year": 4}


def _ok(ctx: Context, data: Any) -> Reply:
    return Reply(envelope(ctx.clock(), "1", data))


def _plants(ctx: Context, body: dict[str, Any]) -> tuple[list[Plant], list[str]] | Reply:
    ids = str_list(body.get("ps_id_list"))
    if not ids:
        return error(ctx.clock(), "009", "er_missing_parameter:ps_id_list")
    if len(ids) > MAX_PLANTS:
        return invalid(ctx, "ps_id_list")
    return ctx.fleet.asked(ids)


def _points(value: Any, known: Container[int] = POINTS) -> tuple[int, list[int]]:
    """(how many items were asked, the known point ids among them in request order)."""
    items = value if isinstance(value, list) else str(value).split(",")
    names = [str(item).strip() for item in items if str(item).strip()]
    ids: list[int] = []
    for name in names:
        m = _POINT.match(name)
        if m is not None and int(m.group(1)) in known and int(m.group(1)) not in ids:
            ids.append(int(m.group(1)))
    return len(names), ids


def _digits(value: Any, n: int) -> list[int] | None:
    text = str(value).strip()
    if isinstance(value, bool) or len(text) != n or not text.isdigit():
        return None
    return [int(text[:4]), *(int(text[i:i + 2]) for i in range(4, n, 2))]


def _wall(value: Any) -> int | None:
    """yyyyMMddHHmmss (plant-local) as seconds, counted as if the wall clock were UTC."""
    parts = _digits(value, 14)
    if parts is None:
        return None
    y, mo, d, h, mi, s = parts
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h < 24 and mi < 60 and s < 60):
        return None
    return calendar.timegm((y, mo, d, h, mi, s))


def _period(value: Any, query_type: str) -> int | None:
    """The period index: a local day number, y*12 + month - 1, or the year."""
    parts = _digits(value, _DIGITS[query_type])
    if parts is None or parts[0] < 1970:
        return None
    if query_type == "year":
        return parts[0]
    y, mo = parts[0], parts[1]
    if not 1 <= mo <= 12:
        return None
    if query_type == "month":
        return y * 12 + mo - 1
    d = parts[2]
    return calendar.timegm((y, mo, d, 0, 0, 0)) // 86400 if 1 <= d <= calendar.monthrange(y, mo)[1] else None


def _days(query_type: str, period: int) -> tuple[int, int, str]:
    """Local days [first, end) of a period, and its time_stamp label."""
    if query_type == "day":
        return period, period + 1, stamp(period * 86400, "%Y%m%d")
    if query_type == "month":
        y, m = divmod(period, 12)
        first = calendar.timegm((y, m + 1, 1, 0, 0, 0)) // 86400
        return first, first + calendar.monthrange(y, m + 1)[1], f"{y:04d}{m + 1:02d}"
    first = calendar.timegm((period, 1, 1, 0, 0, 0)) // 86400
    return first, calendar.timegm((period + 1, 1, 1, 0, 0, 0)) // 86400, f"{period:04d}"


def _number(text: str) -> object:
    return float(text) if any(c in text for c in ".eE") else int(text)


def _converters(ctx: Context) -> tuple[Callable[[str], object], Callable[[str], object]]:
    """(values, time stamps): strings as recorded, or the field tables' numbers."""
    if ctx.history_types == "table":
        return _number, int
    return str, str


def _point_dict(ids: list[int], id_type: type) -> list[dict[str, Any]]:
    return [{"point_id": id_type(pid), "point_name": POINTS[pid][0], "point_unit": POINTS[pid][1]} for pid in ids]


def _available_until(ctx: Context, plant: Plant, now: float) -> int:
    """The last plant-local wall second with history: "Historical data endpoints do not return data for the
    current day"; or, as answers recorded live showed, up to about 5 minutes ago."""
    local_now = math.floor(now + plant.utc_offset_h * 3600.0)
    if ctx.history_current_day == "lagged":
        return local_now - LAG_S
    return local_now // 86400 * 86400 - 1


def _window(ctx: Context, body: dict[str, Any], asked: int) -> tuple[int, int, int] | Reply:
    """(first row's wall time, end of the window, step) from start_time_stamp, end_time_stamp, minute_interval;
    `asked`: the number of points asked for, checked first (both minute endpoints take up to 50)."""
    if asked == 0:
        return error(ctx.clock(), "009", "er_missing_parameter:points")
    if asked > MAX_MINUTE_POINTS:
        return invalid(ctx, "points")
    start, end = _wall(body["start_time_stamp"]), _wall(body["end_time_stamp"])
    if start is None:
        return invalid(ctx, "start_time_stamp")
    if end is None or end < start:
        return invalid(ctx, "end_time_stamp")
    if end - start > MAX_WINDOW_S:
        return error(ctx.clock(), "010", TOO_LONG)
    raw = body.get("minute_interval")
    minutes = 5 if raw in (None, "") else lenient_int(raw)
    # Multiples of the 5-minute data that divide a day, so every day's rows start at local midnight.
    if minutes is None or not 5 <= minutes <= 180 or minutes % 5 or 1440 % minutes:
        return invalid(ctx, "minute_interval")
    step = minutes * 60
    first = -(-start // step) * step
    if ctx.history_window == "left_open" and first == start:
        first += step
    return first, end, step


def minute_data(ctx: Context, req: Request, fault: Fault | None) -> Reply:
    body = req.body or {}
    now = ctx.clock()
    refused = missing(ctx, body, "start_time_stamp", "end_time_stamp", "ps_id_list", "points")
    if refused is not None:
        return refused
    got = _plants(ctx, body)
    if isinstance(got, Reply):
        return got
    plants, illegal = got
    asked, point_ids = _points(body["points"])
    window = _window(ctx, body, asked)
    if isinstance(window, Reply):
        return window
    first, end, step = window
    values, times = _converters(ctx)
    data: dict[str, Any] = {}
    for plant in plants:
        last = min(end, _available_until(ctx, plant, now)) // step * step
        rows = minute_rows(plant, first, last, step, point_ids, ctx.history_gap_rate, values, times)
        if rows:
            data[str(plant.ps_id)] = rows
    data["illegal_ps_id_list"] = illegal
    if lenient_int(body.get("is_get_point_dict")) == 1:
        data["point_dict"] = _point_dict(point_ids, str)  # the minute table types point_id as a string
    return _ok(ctx, data)


def _device_minute(ctx: Context, req: Request, legacy: bool) -> Reply:
    body = req.body or {}
    now = ctx.clock()
    refused = missing(ctx, body, "start_time_stamp", "end_time_stamp", "ps_key_list", "points")
    if refused is not None:
        return refused
    keys = str_list(body.get("ps_key_list"))
    if not keys:
        return error(now, "009", "er_missing_parameter:ps_key_list")
    kinds = {parsed[1] for k in keys if (parsed := parse_ps_key(k)) is not None}
    # "up to 50 devices", "devices of the same type" (no error named for either: 010 as elsewhere).
    if len(keys) > MAX_PLANTS or len(kinds) > 1:
        return invalid(ctx, "ps_key_list")
    asked, point_ids = _points(body["points"], supported_points(next(iter(kinds))) if kinds else ())
    window = _window(ctx, body, asked)
    if isinstance(window, Reply):
        return window
    first, end, step = window
    values, times = _converters(ctx)
    data: dict[str, Any] = {}
    illegal: list[str] = []
    for key in dict.fromkeys(keys):
        dev = ctx.devices.by_ps_key(ctx.fleet, key)
        if dev is None or (not legacy and dev.ps_id in ctx.fleet.unauthorized):
            illegal.append(key)
            continue
        plant = ctx.fleet.by_id[dev.ps_id]

        def status(t: float, plant: Plant = plant, index: int | None = dev.index) -> int:
            return ctx.alarms.device_status(plant, t, t).get(index, 4)

        last = min(end, _available_until(ctx, plant, now)) // step * step
        rows = device_rows(dev, plant, first, last, step, point_ids, ctx.history_gap_rate, ctx.fleet.seed,
                           status, values, times)
        if rows:
            data[key] = rows
    if not legacy:  # the legacy table has neither (and a recorded legacy answer was an empty result_data)
        data["illegal_ps_key_list"] = illegal
        if lenient_int(body.get("is_get_point_dict")) == 1:
            known = supported_points(next(iter(kinds))) if kinds else {}
            data["point_dict"] = [{"point_id": pid, "point_name": known[pid][0], "point_unit": known[pid][1]}
                                  for pid in point_ids]
    return _ok(ctx, data)


def device_minute_data(ctx: Context, req: Request, fault: Fault | None) -> Reply:
    return _device_minute(ctx, req, legacy=False)


def legacy_device_minute_data(ctx: Context, req: Request, fault: Fault | None) -> Reply:
    return _device_minute(ctx, req, legacy=True)


def day_month_year_data(ctx: Context, req: Request, fault: Fault | None) -> Reply:
    body = req.body or {}
    now = ctx.clock()
    refused = missing(ctx, body, "query_type", "data_type", "ps_id_list", "data_point", "start_time", "end_time",
                      "order")
    if refused is not None:
        return refused
    query_type = str(body["query_type"]).strip()
    if query_type not in MAX_PERIODS:
        return invalid(ctx, "query_type")
    try:
        types = int_set(body["data_type"])
    except ValueError:
        types = None
    if not types or not types <= set(DATA_TYPES):
        return invalid(ctx, "data_type")
    got = _plants(ctx, body)
    if isinstance(got, Reply):
        return got
    plants, illegal = got
    asked, point_ids = _points(body["data_point"])
    if asked == 0:
        return error(now, "009", "er_missing_parameter:data_point")
    start, end = _period(body["start_time"], query_type), _period(body["end_time"], query_type)
    if start is None:
        return invalid(ctx, "start_time")
    if end is None or end < start:
        return invalid(ctx, "end_time")
    if end - start + 1 > MAX_PERIODS[query_type]:
        return error(now, "010", TOO_LONG)
    order = lenient_int(body["order"])
    if order not in (0, 1):
        return invalid(ctx, "order")
    periods = [_days(query_type, k) for k in range(start, end + 1)]
    if order == 1:
        periods.reverse()
    wanted = frozenset(types)
    data_types = sorted(types)
    values, times = _converters(ctx)
    data: dict[str, Any] = {}
    for plant in plants:
        ensure_model(plant)
        first_day = plant.first_day
        # Daily statistics exist for whole days only: never for the current day, whatever the minute data does.
        today = math.floor(now + plant.utc_offset_h * 3600.0) // 86400
        days: dict[int, Day] = {}
        entry: dict[str, Any] = {}
        for pid, (key, _, fmt) in points_with_data(plant, point_ids):
            rows = []
            for d0, d1, label in periods:
                d0, d1 = max(d0, first_day), min(d1, today)
                if d0 >= d1:
                    continue
                stats = Period()
                for d in range(d0, d1):
                    day = days.get(d)
                    if day is None:
                        day = days[d] = Day(plant, d)
                    stats.add(day, pid, wanted)
                row: dict[str, Any] = {}
                for data_type in data_types:
                    v = stats.value(data_type, query_type == "day", pid)
                    if v is not None:
                        row[str(data_type)] = values(fmt(v))
                if row:
                    row["time_stamp"] = times(label)
                    rows.append(row)
            if rows:
                entry[key] = rows
        if entry:
            data[str(plant.ps_id)] = entry
    data["illegal_ps_id_list"] = illegal
    if lenient_int(body.get("is_get_point_dict")) == 1:
        data["point_dict"] = _point_dict(point_ids, int)
    return _ok(ctx, data)
