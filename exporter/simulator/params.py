"""Request-parameter helpers shared by the endpoint handlers: lenient lists, paging, times, languages."""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from .common import lenient_int
from .context import Context
from .envelope import Reply, error
from .faults import Fault

T = TypeVar("T")


def int_set(value: Any) -> frozenset[int] | None:
    """Comma list ("1,3"), list, or single number -> set; raises ValueError on junk."""
    if value is None or value == "":
        return None
    items = value if isinstance(value, list) else str(value).split(",")
    out = set()
    for item in items:
        if str(item).strip() == "":
            continue
        n = lenient_int(item)
        if n is None:
            raise ValueError(item)
        out.add(n)
    return frozenset(out) if out else None


def str_list(value: Any, single_quotes: bool = False) -> list[str] | None:
    """A list of strings from a JSON list, a JSON list inside a string, or a comma list. With single_quotes,
    also "['a','b']", the way the portal's own example writes sn_list; otherwise such text gives None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                if not single_quotes:
                    return None
                value = [v.strip().strip("'\"") for v in text.strip("[]").split(",")]
        else:
            value = text.split(",")
    if not isinstance(value, list):
        value = [value]
    return [str(v).strip() for v in value if str(v).strip()]


def eval_times(ctx: Context) -> tuple[float, float]:
    """(t, now): `t` is the clock rounded down to the data interval (the platform refreshes every few
    minutes, and pages of one listing then agree); `now` is the clock itself, for control-made changes."""
    now = ctx.clock()
    return (now - now % ctx.data_interval if ctx.data_interval > 0 else now), now


def missing(ctx: Context, body: dict[str, Any], *keys: str) -> Reply | None:
    for key in keys:
        if body.get(key) in (None, ""):
            return error(ctx.clock(), "009", f"er_missing_parameter:{key}")
    return None


def invalid(ctx: Context, key: str) -> Reply:
    return error(ctx.clock(), "010", f"er_parameter_value_invalid:{key}")


def paging(ctx: Context, body: dict[str, Any], page_key: str) -> tuple[int, int] | Reply:
    refused = missing(ctx, body, page_key, "size")
    if refused is not None:
        return refused
    page, size = lenient_int(body[page_key]), lenient_int(body["size"])
    if page is None or page < 1:
        return invalid(ctx, page_key)
    if size is None or size < 1:
        return invalid(ctx, "size")
    if ctx.max_page_size is not None and size > ctx.max_page_size:
        if ctx.page_size_over_limit == "reject":
            return invalid(ctx, "size")
        size = ctx.max_page_size  # silently, like a server-side LIMIT cap
    return page, size


def page_slice(rows: Sequence[T], page: int, size: int, fault: Fault | None) -> list[T]:
    """One page of rows, with the paging faults (repeat_page, skip_plants) applied."""
    kind = fault.kind if fault else None
    if kind == "repeat_page" and page > 1:
        page -= 1
    items = list(rows[(page - 1) * size: page * size])
    if kind == "skip_plants" and items:
        kept = [p for i, p in enumerate(items) if i % 3 != 1]
        items = kept if len(kept) < len(items) else items[1:]
    return items


_TIME = re.compile(r"^\s*(\d{4})-?(\d{2})-?(\d{2})[ T]?(\d{2}):?(\d{2})(?::?(\d{2}))?\s*$")


def wall_time(value: Any) -> float | None:
    """A plant-local wall time as seconds (as if UTC). Accepts the documented yyyyMMddHHmm and, as the portal's
    own examples do, yyyy-MM-dd HH:mm[:ss] and yyyyMMddHHmmss. Raises ValueError on anything else."""
    if value is None or value == "":
        return None
    m = _TIME.match(str(value))
    if m is None:
        raise ValueError(value)
    y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
    sec = int(m.group(6) or 0)
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h < 24 and mi < 60 and sec < 60):
        raise ValueError(value)
    return float(calendar.timegm((y, mo, d, h, mi, sec)))


def month_bounds(wall: float) -> tuple[float, float]:
    """[first second, last second] of the calendar month containing a wall time."""
    tm = time.gmtime(wall)
    y, mo = tm.tm_year, tm.tm_mon
    first = float(calendar.timegm((y, mo, 1, 0, 0, 0)))
    return first, first + calendar.monthrange(y, mo)[1] * 86400.0 - 1.0

