"""Plant history: `getPowerStationPointMinuteDataList` (minute values) and `getPowerStationPointDayMonthYearDataList`
(daily or monthly aggregates), OAuth2 platform endpoints both.

The portal's limits, each enforced here so that no call can be refused for its size [doc: both field tables]:

- minute data: at most 50 plants and 50 points per call, a window of at most 3 hours, stamps `yyyyMMddHHmmss`
  in the plant's time zone, `minute_interval` 5 by default; points without data are left out of the answer;
- daily data: at most 50 plants, 100 days (24 months of monthly data) per call, dates `yyyyMMdd` (`yyyyMM`);
  values in the smallest unit (Wh, W) and keyed by the `data_type` asked for (1 mean, 2 peak, 3 trough, 4 total);
- neither returns data for the current day; unknown plants come back in `illegal_ps_id_list`.

The answers' shapes are documented only as generated field tables (lists appear as objects), so the parsing is
lenient: a plant's rows may be a list or a single object, keyed by `ps_id` or by a `ps_key` (`<ps_id>_11_0_0`);
values are numbers or numeric strings; a missing, null, empty or unparseable value is a gap, never a 0. Every
value leaves here in the base unit of its quantity (`data.QUANTITIES`), every stamp as Unix seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from ..data import QUANTITIES, Quantity
from .envelope import ResponseError
from .parse import parse_float, parse_int, ps_id
from .session import ApiSession

MINUTE_PATH = "/openapi/platform/getPowerStationPointMinuteDataList"
DAILY_PATH = "/openapi/platform/getPowerStationPointDayMonthYearDataList"
MAX_PLANTS_PER_CALL = 50
MAX_POINTS_PER_CALL = 50
WINDOW = timedelta(hours=3)
MAX_DAYS_PER_CALL = 100
MAX_MONTHS_PER_CALL = 24
MINUTE_INTERVALS = (5, 15, 60)  # the resolutions offered; the API's default is 5
PEAK = 2  # data_type: "if data can be aggregated, data_type is 2 when querying daily data" [doc]

# Quantities with a plant point, in the order of QUANTITIES.
POINT_QUANTITIES: tuple[Quantity, ...] = tuple(q for q in QUANTITIES if q.point_id)
# Daily data carries only the energies: the day's peak of a running daily total is that day's total and the
# peak of a lifetime counter its value at the day's end. The peak (or mean) of a power or a state of charge is
# no sample of that gauge, so it is not exported under the gauge's name.
DAILY_QUANTITIES: tuple[Quantity, ...] = tuple(q for q in POINT_QUANTITIES if q.key.endswith("_joules"))

_STAMP = "%Y%m%d%H%M%S"
_KEY_RE = re.compile(r"^\s*(\d+)(?:_\d+)*\s*$")


def batches(ps_ids: Sequence[str], size: int = MAX_PLANTS_PER_CALL) -> list[list[str]]:
    """Plants in calls of at most `size` (≤ 50)."""
    size = min(size, MAX_PLANTS_PER_CALL)
    return [list(ps_ids[i:i + size]) for i in range(0, len(ps_ids), size)]


def point_groups(quantities: Sequence[Quantity]) -> list[tuple[Quantity, ...]]:
    """Quantities in calls of at most 50 points."""
    return [tuple(quantities[i:i + MAX_POINTS_PER_CALL]) for i in range(0, len(quantities), MAX_POINTS_PER_CALL)]


def minute_windows(day: date) -> list[tuple[datetime, datetime]]:
    """A local day in windows of 3 hours less a second, [00:00:00, 02:59:59] … [21:00:00, 23:59:59], which never
    share a stamp. Each is asked one second early (`ASK_EARLY`: 23:59:59 to 02:59:58, …), so that neither end of
    the request lies on the data's grid and a gateway that leaves out either end of a window still answers
    every stamp of it; rows outside the window are dropped."""
    start = datetime.combine(day, time())
    end_of_day = start + timedelta(days=1)
    out = []
    while start < end_of_day:
        out.append((start, min(start + WINDOW, end_of_day) - timedelta(seconds=1)))
        start += WINDOW
    return out


WINDOWS_PER_DAY = len(minute_windows(date(2000, 1, 1)))
ASK_EARLY = timedelta(seconds=1)


def day_chunks(first: date, last: date, size: int = MAX_DAYS_PER_CALL) -> list[tuple[date, date]]:
    """Inclusive date ranges of at most `size` (≤ 100) days covering first..last."""
    size = min(size, MAX_DAYS_PER_CALL)
    out = []
    while first <= last:
        end = min(last, first + timedelta(days=size - 1))
        out.append((first, end))
        first = end + timedelta(days=1)
    return out


def month_chunks(first: date, last: date) -> list[tuple[date, date]]:
    """Inclusive month ranges (first days of months) of at most 24 months covering the months of first..last."""
    months = (last.year - first.year) * 12 + last.month - first.month + 1
    out = []
    index = first.year * 12 + first.month - 1
    for start in range(0, max(months, 0), MAX_MONTHS_PER_CALL):
        a = index + start
        b = index + min(months, start + MAX_MONTHS_PER_CALL) - 1
        out.append((date(a // 12, a % 12 + 1, 1), date(b // 12, b % 12 + 1, 1)))
    return out


def minute_calls(plants: int, days: int, points: int = len(POINT_QUANTITIES)) -> int:
    """Minute-data calls for `days` whole local days of `plants` plants: 8 windows a day, per batch of 50 plants
    and group of 50 points, whatever the minute interval."""
    if plants <= 0 or days <= 0 or points <= 0:
        return 0
    return days * WINDOWS_PER_DAY * math.ceil(plants / MAX_PLANTS_PER_CALL) * math.ceil(points / MAX_POINTS_PER_CALL)


def daily_calls(plants: int, days: int, points: int = len(DAILY_QUANTITIES)) -> int:
    """Daily-data calls for `days` days of `plants` plants: per 100 days, batch of 50 plants, group of 50 points."""
    if plants <= 0 or days <= 0 or points <= 0:
        return 0
    return (math.ceil(days / MAX_DAYS_PER_CALL) * math.ceil(plants / MAX_PLANTS_PER_CALL)
            * math.ceil(points / MAX_POINTS_PER_CALL))


Row = tuple[float, dict[str, float]]  # (Unix seconds, quantity key → base-unit value)


@dataclass
class HistoryResult:
    rows: dict[str, list[Row]] = field(default_factory=dict)  # ps_id → rows in time order, one per stamp
    illegal: set[str] = field(default_factory=set)  # illegal_ps_id_list: plants the API does not know

    def samples(self) -> int:
        return sum(len(values) for rows in self.rows.values() for _ts, values in rows)


class HistoryApi:
    def __init__(self, session: ApiSession) -> None:
        self.session = session

    def minute(self, zones: Mapping[str, timezone], quantities: Sequence[Quantity], start: datetime,
               end: datetime, minute_interval: int) -> HistoryResult:
        """One call: the plants of `zones` (ps_id → the offset their local stamps are in), the window
        [start, end] in local time (≤ 3 h), the points of `quantities` (≤ 50). Rows outside the window are
        dropped, so that windows never overlap whatever the gateway sends."""
        if len(zones) > MAX_PLANTS_PER_CALL or len(quantities) > MAX_POINTS_PER_CALL:
            raise ValueError("at most 50 plants and 50 points per minute-data call")
        if not start <= end < start + WINDOW:
            raise ValueError("a minute-data window is at most 3 hours")
        params = {"ps_id_list": list(zones), "points": ",".join("p" + str(q.point_id) for q in quantities),
                  "start_time_stamp": (start - ASK_EARLY).strftime(_STAMP),
                  "end_time_stamp": (end - ASK_EARLY).strftime(_STAMP),
                  "minute_interval": str(minute_interval), "is_get_point_dict": "0"}
        data = self.session.call(MINUTE_PATH, params)
        result = HistoryResult(illegal=_illegal(data))
        for key, rows in _plant_entries(data, zones):
            tz = zones[key]
            low = start.replace(tzinfo=tz).timestamp()
            high = end.replace(tzinfo=tz).timestamp()
            parsed: dict[float, dict[str, float]] = {}
            for row in _as_rows(rows):
                ts = _minute_stamp(row.get("time_stamp"), tz)
                if ts is None or not low <= ts <= high:
                    continue
                values = _values(row, quantities)
                if values:
                    parsed.setdefault(ts, {}).update(values)
            if parsed:
                result.rows[key] = sorted(parsed.items())
        return result

    def daily(self, zones: Mapping[str, timezone], quantities: Sequence[Quantity], first: date, last: date,
              stamp: time = time(23, 59, 59)) -> HistoryResult:
        """One call of daily peaks (data_type 2) for the plants of `zones`, the days first..last (≤ 100) and the
        points of `quantities` (≤ 50). Each day's value is stamped at `stamp` local time of that day."""
        if len(zones) > MAX_PLANTS_PER_CALL or len(quantities) > MAX_POINTS_PER_CALL:
            raise ValueError("at most 50 plants and 50 points per daily-data call")
        if not first <= last < first + timedelta(days=MAX_DAYS_PER_CALL):
            raise ValueError("a daily-data call covers at most 100 days")
        params = {"query_type": "day", "data_type": str(PEAK), "ps_id_list": list(zones),
                  "data_point": ",".join("p" + str(q.point_id) for q in quantities),
                  "start_time": first.strftime("%Y%m%d"), "end_time": last.strftime("%Y%m%d"), "order": 0,
                  "is_get_point_dict": "0"}
        data = self.session.call(DAILY_PATH, params)
        result = HistoryResult(illegal=_illegal(data))
        by_point = {"p" + str(q.point_id): q for q in quantities}
        # The same hundred dates recur for every plant and point of the answer: each is read once per zone.
        stamps: dict[tuple[str, timezone], float | None] = {}
        for key, entry in _plant_entries(data, zones):
            tz = zones[key]
            parsed: dict[float, dict[str, float]] = {}
            for quantity, row in _daily_rows(entry, by_point):
                raw = row.get("time_stamp")
                memo = (repr(raw), tz)
                if memo not in stamps:
                    day = _day(raw)
                    stamps[memo] = (datetime.combine(day, stamp, tzinfo=tz).timestamp()
                                    if day is not None and first <= day <= last else None)
                ts = stamps[memo]
                if ts is None:
                    continue
                value = _scaled(_data_type_value(row, PEAK), quantity)
                if value is not None:
                    parsed.setdefault(ts, {})[quantity.key] = value
            if parsed:
                result.rows[key] = sorted(parsed.items())
        return result


def _illegal(data: Mapping[str, Any]) -> set[str]:
    """`illegal_ps_id_list`: a list, or a comma string (the field table types it as a string)."""
    raw = data.get("illegal_ps_id_list")
    items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return {key for key in (ps_id(item) for item in items) if key is not None}


def _plant_entries(data: Mapping[str, Any], zones: Mapping[str, timezone]) -> Iterator[tuple[str, Any]]:
    """(ps_id, entry) for every key of `result_data` naming a plant of the call, by ps_id or ps_key."""
    if not isinstance(data, Mapping):
        raise ResponseError("history", "invalid_response", "result_data is not an object")
    for raw_key, entry in data.items():
        match = _KEY_RE.match(str(raw_key))
        key = ps_id(match.group(1)) if match else None
        if key is not None and key in zones and entry is not None:
            yield key, entry


def _as_rows(entry: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(entry, Mapping):
        yield entry
    elif isinstance(entry, list):
        yield from (row for row in entry if isinstance(row, Mapping))


def _values(row: Mapping[str, Any], quantities: Sequence[Quantity]) -> dict[str, float]:
    out = {}
    for quantity in quantities:
        value = _scaled(row.get("p" + str(quantity.point_id)), quantity)
        if value is not None:
            out[quantity.key] = value
    return out


def _scaled(raw: Any, quantity: Quantity) -> float | None:
    value = parse_float(raw)
    if value is None:
        return None
    scaled = value * quantity.scale
    return scaled if math.isfinite(scaled) else None


def _minute_stamp(raw: Any, tz: timezone) -> float | None:
    """`yyyyMMddHHmmss` (number or string), also with separators (`yyyy-MM-dd HH:mm[:ss]`)."""
    if raw is None or isinstance(raw, bool):
        return None
    digits = re.sub(r"[^0-9]", "", str(int(raw)) if isinstance(raw, (int, float)) and math.isfinite(raw) else str(raw))
    if len(digits) == 12:
        digits += "00"
    if len(digits) != 14:
        return None
    try:
        return datetime.strptime(digits, _STAMP).replace(tzinfo=tz).timestamp()
    except ValueError:
        return None


def _day(raw: Any) -> date | None:
    """`yyyyMMdd` (number or string), also `yyyy-MM-dd` or a longer stamp starting with the date."""
    if raw is None or isinstance(raw, bool):
        return None
    number = parse_int(raw)
    text = str(number) if number is not None else re.sub(r"[^0-9]", "", str(raw))
    if len(text) < 8:
        return None
    try:
        return datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _daily_rows(entry: Any, by_point: Mapping[str, Quantity]) -> Iterator[tuple[Quantity, Mapping[str, Any]]]:
    """A plant's daily entry: `{p83022: [{"2": value, "time_stamp": yyyyMMdd}, …]}` as the field table nests it
    (a single object for a point is one row), or rows that carry the points themselves
    (`[{"time_stamp": …, "p83022": {"2": value}}]`)."""
    if isinstance(entry, Mapping):
        for point, rows in entry.items():
            quantity = by_point.get(str(point))
            if quantity is not None:
                for row in _as_rows(rows):
                    yield quantity, row
    elif isinstance(entry, list):
        for row in entry:
            if not isinstance(row, Mapping):
                continue
            for point, quantity in by_point.items():
                cell = row.get(point)
                if isinstance(cell, Mapping):
                    yield quantity, {"time_stamp": row.get("time_stamp"), **cell}
                elif cell is not None:
                    # A bare value under the point: only one data_type (the peak) is ever asked for.
                    yield quantity, {"time_stamp": row.get("time_stamp"), str(PEAK): cell}


def _data_type_value(row: Mapping[str, Any], data_type: int) -> Any:
    """The value under the data_type asked for: the field table names the key after the data_type ("2")."""
    for key in (str(data_type), data_type):
        if key in row:
            return row[key]
    return None
