"""getFaultAlarmInfo, platform (`/openapi/platform/…`, Bearer) and legacy (`/openapi/…`, login token):
parameters, the one-month rule, paging and the two tables' row shapes. The fault model is in alarms.py."""

from __future__ import annotations

import time
from typing import Any

from .alarms import Record
from .catalog import is_english
from .common import lenient_int
from .context import Context
from .devices import Device
from .envelope import Reply, Request, envelope
from .faults import Fault
from .fleet import Plant
from .params import eval_times, int_set, invalid, month_bounds, page_slice, paging, wall_time

UNCLOSED, CLOSED, BOTH = 8, 9, 999


def local(t: float, plant: Plant, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    return time.strftime(pattern, time.gmtime(t + plant.utc_offset_h * 3600.0))


def legacy_code(rec: Record, plant: Plant) -> str:
    """The legacy table's fault_code looks like "60064.202411.47b8b34242077": type code, month, 13 hex digits.
    The hex part is the platform's integer code, so either form identifies the record."""
    return f"{rec.kind.type_code}.{local(rec.start, plant, '%Y%m')}.{rec.code:013x}"


def code_from(value: Any) -> int | None:
    """Integer fault code from the platform form (an integer) or the legacy form (see legacy_code)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    parts = text.split(".")
    if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
        try:
            return int(parts[2], 16)
        except ValueError:
            return None
    return None


def record_device(ctx: Context, plant: Plant, rec: Record) -> Device:
    if rec.device_index is None:
        return ctx.devices.plant_device(plant)
    return ctx.devices.device(plant, rec.device_index) or ctx.devices.plant_device(plant)


def platform_row(ctx: Context, plant: Plant, rec: Record, lang: object) -> dict[str, Any]:
    """A row as the platform field table lists it (ps_id, ps_key and uuid strings; codes integers)."""
    en = is_english(lang)
    dev = record_device(ctx, plant, rec)
    processed = rec.process_status in (2, 3, 4)
    process_time = rec.end if rec.end is not None else rec.start + 3600.0 if processed else None
    return {
        "fault_name": rec.title(en),
        "fault_code": rec.code,
        "fault_type": rec.ftype,
        "fault_type_code": rec.kind.type_code,
        "fault_level": rec.level if rec.level is not None else rec.kind.level,
        "fault_desc": rec.description(en),
        "fault_reason": rec.kind.reason,
        "process_status": rec.process_status,
        "create_time": local(rec.start, plant),
        "over_time": local(rec.end, plant) if rec.end is not None else None,
        "process_time": int(local(process_time, plant, "%Y%m%d%H%M%S")) if process_time is not None else None,
        "uuid": str(dev.uuid),
        "ps_key": dev.ps_key,
        "device_name": dev.name,
        "device_type": dev.device_type,
        "type_name": dev.type_name(lang),
        "device_model": dev.model.code,
        "device_model_code": dev.model.code,
        "ps_id": str(plant.ps_id),
        "ps_name": plant.fields.get("ps_name"),
        "grid_connection_status": rec.kind.grid,
    }


def legacy_row(ctx: Context, plant: Plant, rec: Record, lang: object) -> dict[str, Any]:
    """A row as the legacy field table lists it: fault_code a string, ps_id and uuid integers, no device type."""
    row = platform_row(ctx, plant, rec, lang)
    return {
        "create_time": row["create_time"], "device_model_code": row["device_model_code"],
        "device_name": row["device_name"], "fault_code": legacy_code(rec, plant), "fault_desc": row["fault_desc"],
        "fault_level": row["fault_level"], "fault_name": row["fault_name"], "fault_type": row["fault_type"],
        "fault_type_code": row["fault_type_code"], "fault_reason": row["fault_reason"],
        "over_time": row["over_time"], "process_status": row["process_status"], "ps_id": plant.ps_id,
        "ps_key": row["ps_key"], "ps_name": row["ps_name"], "type_name": row["type_name"],
        "uuid": int(row["uuid"]), "grid_connection_status": row["grid_connection_status"],
    }


def _window(status: int, start: float | None, end: float | None, plant: Plant,
            now: float) -> tuple[float, float] | None:
    """UTC bounds for one plant (times are plant-local wall times), or None for "every open record"."""
    offset = plant.utc_offset_h * 3600.0
    if status == UNCLOSED and start is None and end is None:
        return None
    if status != UNCLOSED and start is None and end is None:
        first, _ = month_bounds(now + offset)  # documented default: the current month (nothing starts later)
        return first - offset, float("inf")
    lo = start if start is not None else (month_bounds(end)[0] if status != UNCLOSED and end is not None
                                          else float("-inf"))
    hi = end if end is not None else (month_bounds(start)[1] if status != UNCLOSED and start is not None
                                      else float("inf"))
    return lo - offset, hi - offset + 59.0  # minute resolution: the end minute counts whole


def _records(ctx: Context, body: dict[str, Any], legacy: bool) -> list[tuple[Plant, Record]] | Reply:
    """Every matching record of the authorised plants in scope, newest first; or the refusal."""
    fleet = ctx.fleet
    status = lenient_int(body.get("process_status"), None) if body.get("process_status") not in (None, "") \
        else UNCLOSED
    if status not in (UNCLOSED, CLOSED, BOTH):
        return invalid(ctx, "process_status")
    try:
        start, end = wall_time(body.get("startTime")), wall_time(body.get("endTime"))
    except ValueError:
        return invalid(ctx, "startTime" if _bad_time(body.get("startTime")) else "endTime")
    if start is not None and end is not None and start > end:
        return invalid(ctx, "endTime")
    if status != UNCLOSED and start is not None and end is not None and month_bounds(start) != month_bounds(end):
        # "the time range must be limited to a single month and cannot span across months" [doc]; the reference
        # names no error code for it, so the simulator answers the generic 010.
        return invalid(ctx, "endTime")
    sets: dict[str, frozenset[int] | None] = {}
    for param in ("fault_type", "fault_level", "share_type"):
        if param != "fault_type" and not legacy:
            sets[param] = None  # only the legacy table has these filters
            continue
        try:
            sets[param] = int_set(body.get(param))
        except ValueError:
            return invalid(ctx, param)
    types, levels, shares = sets["fault_type"], sets["fault_level"], sets["share_type"]
    code = None
    if body.get("fault_code") not in (None, ""):
        code = code_from(body["fault_code"])
        if code is None:
            return invalid(ctx, "fault_code")
    ps_key = str(body.get("ps_key") or "").strip() or None
    raw_id = body.get("ps_id")
    if raw_id in (None, "") and ps_key is not None:
        raw_id = ps_key.split("_", 1)[0]
    if raw_id not in (None, ""):
        ps_id = lenient_int(raw_id)
        if ps_id is None:
            return invalid(ctx, "ps_id")
        plant = fleet.by_id.get(ps_id) if legacy else fleet.authorized(ps_id)
        scope = [plant] if plant is not None else []
    else:
        scope = None  # every plant the app may see
    name = str(body.get("fault_name") or "").strip().casefold()
    lang = body.get("lang")
    t, now = eval_times(ctx)
    key = (legacy, status, start, end, frozenset(types or ()), frozenset(levels or ()), frozenset(shares or ()),
           code, ps_key, tuple(p.ps_id for p in scope) if scope is not None else None, name,
           is_english(lang), t, fleet.version, ctx.alarms.version, ctx.devices.version)
    cache = ctx.alarms.query_cache
    hit = cache.get(key)
    if hit is not None:
        return [(fleet.by_id[r.ps_id], r) for r in hit]
    plants = scope if scope is not None else [p for p in fleet.plants if legacy or p.ps_id not in fleet.unauthorized]
    english = is_english(lang)
    out: list[tuple[Plant, Record]] = []
    for plant in plants:
        if shares is not None and lenient_int(plant.fields.get("share_type")) not in shares:
            continue
        window = _window(status, start, end, plant, t)
        recs = ctx.alarms.records(plant, t, now) if window is None else \
            ctx.alarms.records(plant, t, now, window[0], window[1])
        for rec in recs:
            if (status == UNCLOSED and not rec.is_open) or (status == CLOSED and rec.is_open):
                continue
            if types is not None and rec.ftype not in types:
                continue
            if levels is not None and (rec.level or rec.kind.level) not in levels:
                continue
            if code is not None and rec.code != code:
                continue
            if name and name not in rec.title(english).casefold():
                continue
            if ps_key is not None and record_device(ctx, plant, rec).ps_key != ps_key:
                continue
            out.append((plant, rec))
    out.sort(key=lambda pr: (-pr[1].start, pr[1].code))
    if len(cache) > 32:
        cache.clear()
    cache[key] = [r for _, r in out]
    return out


def _bad_time(value: Any) -> bool:
    try:
        wall_time(value)
    except ValueError:
        return True
    return False


def _answer(ctx: Context, req: Request, fault: Fault | None, legacy: bool) -> Reply:
    body = req.body or {}
    got = paging(ctx, body, "curPage" if legacy else "page")
    if isinstance(got, Reply):
        return got
    page, size = got
    found = _records(ctx, body, legacy)
    if isinstance(found, Reply):
        return found
    lang = body.get("lang")
    rows = [(legacy_row if legacy else platform_row)(ctx, plant, rec, lang)
            for plant, rec in page_slice(found, page, size, fault)]
    data: dict[str, Any] = {"pageList": rows}
    # The legacy table names the total rowCount; the platform table says row_count, like the plant list's, whose
    # examples say rowCount: the same total_key option decides both platform lists.
    total_key = "rowCount" if legacy else ctx.total_key
    if total_key is not None:
        data[total_key] = len(found)
    return Reply(envelope(ctx.clock(), "1", data))


def platform_list(ctx: Context, req: Request, fault: Fault | None) -> Reply:
    return _answer(ctx, req, fault, legacy=False)


def legacy_list(ctx: Context, req: Request, fault: Fault | None) -> Reply:
    return _answer(ctx, req, fault, legacy=True)
