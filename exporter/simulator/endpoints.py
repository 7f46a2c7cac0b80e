"""Business logic of the simulated endpoints. Each handler gets a request that already passed the gateway
checks (keys, appkey, route, quota, token) and returns a Reply."""

from __future__ import annotations

import time
from typing import Any

from . import units
from .common import lenient_int
from .context import Context
from .envelope import TOKEN_MESSAGES, Reply, Request, envelope, error
from .faults import Fault
from .fleet import LEGACY_FIELDS, Plant
from .params import int_set, page_slice, paging, str_list
from .realtime import POINTS, point_values, summary

MAX_POINTS = 100
CO2_KG_PER_KWH = 0.997


def _ok(sim: Context, data: Any) -> Reply:
    return Reply(envelope(sim.clock(), "1", data))


def _page(sim: Context, req: Request, fault: Fault | None, page_key: str,
          legacy: bool) -> tuple[list[Plant], int] | Reply:
    body = req.body or {}
    got = paging(sim, body, page_key)
    if isinstance(got, Reply):
        return got
    page, size = got
    try:
        ps_types = int_set(body.get("ps_type"))
        valid = int_set(body.get("valid_flag")) or frozenset({1})  # documented default: only "1"
        share = int_set(body.get("share_type")) if legacy else None
    except ValueError:
        return error(sim.clock(), "010", "er_parameter_value_invalid")
    name = body.get("ps_name") or ""
    # An OAuth2 app lists only the plants its owner authorised; a legacy login sees all of the user's plants.
    plants = sim.fleet.query(ps_types, str(name), valid, share, authorized_only=not legacy)
    return page_slice(plants, page, size, fault), len(plants)


def query_power_station_list(sim: Context, req: Request, fault: Fault | None) -> Reply:
    got = _page(sim, req, fault, "page", legacy=False)
    if isinstance(got, Reply):
        return got
    items, total = got
    now = sim.clock()
    style, interval = sim.update_time_style, sim.data_interval
    data: dict[str, Any] = {"pageList": [p.wire(now, style, interval) for p in items]}
    if sim.total_key is not None:
        data[sim.total_key] = total
    return _ok(sim, data)


def _iso(t: float, offset_h: float) -> str:
    sign = "+" if offset_h >= 0 else "-"
    hh, mm = int(abs(offset_h)), round((abs(offset_h) % 1) * 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + offset_h * 3600)) + f"{sign}{hh:02d}:{mm:02d}"


def _legacy_record(sim: Context, p: Plant, now: float, lang: str | None) -> dict[str, Any]:
    rec = p.wire(now, sim.update_time_style, sim.data_interval)
    del rec["update_time"]  # not in the legacy field table: its freshness is curr_power_update_time
    for key in LEGACY_FIELDS:
        rec[key] = p.fields[key]
    at = p.data_time(now, sim.update_time_style, sim.data_interval)
    s = summary(p, at, sim.data_interval)
    today_wh = _override_wh(sim, p, 83022, s.today_wh)
    total_wh = _override_wh(sim, p, 83024, s.total_wh)
    kwh_today, kwh_total = today_wh / 1000.0, total_wh / 1000.0
    day_of_month = int(time.strftime("%d", time.gmtime(now + p.utc_offset_h * 3600)))
    day_of_year = int(time.strftime("%j", time.gmtime(now + p.utc_offset_h * 3600)))
    avg_day = kwh_total / max(1.0, p.days_running)
    price = p.price_per_kwh
    values = {
        "curr_power": units.scaled(s.power_w, units.POWER),
        "today_energy": _energy(sim, p, today_wh, lang),
        "total_energy": _energy(sim, p, total_wh, lang),
        "total_capcity": units.scaled(p.capacity_w, units.CAPACITY),
        "equivalent_hour": units.plain(round(s.today_wh / (p.capacity_w or 1.0), 2), "h"),
        "co2_reduce": units.scaled(kwh_today * CO2_KG_PER_KWH, units.MASS),
        "co2_reduce_total": units.scaled(kwh_total * CO2_KG_PER_KWH, units.MASS),
        "today_income": units.plain(round(kwh_today * price, 2), p.currency),
        "month_income": units.plain(round((kwh_today + avg_day * (day_of_month - 1)) * price, 2), p.currency),
        "year_income": units.plain(round((kwh_today + avg_day * (day_of_year - 1)) * price, 2), p.currency),
        "total_income": units.plain(round(kwh_total * price, 2), p.currency),
    }
    stamp = _iso(at if sim.update_time_style == "data" else now - p.update_lag_s, p.utc_offset_h)
    for key, value in values.items():
        rec[key] = value
        rec[f"{key}_update_time"] = stamp
    return rec


def _override_wh(sim: Context, p: Plant, point_id: int, model_wh: float) -> float:
    value = sim.point_overrides.get((p.ps_id, point_id), "") if sim.point_overrides else ""
    try:
        return float(value) if value else model_wh
    except ValueError:
        return model_wh


def _energy(sim: Context, p: Plant, wh: float, lang: str | None) -> dict[str, str]:
    if sim.legacy_units == "varied":
        variant = units.energy_variant(p.quirk_key)
        if variant is not None:
            return variant(wh)
    return units.scaled(wh, units.ENERGY, lang)


def get_power_station_list(sim: Context, req: Request, fault: Fault | None) -> Reply:
    got = _page(sim, req, fault, "curPage", legacy=True)
    if isinstance(got, Reply):
        return got
    items, total = got
    now = sim.clock()
    lang = (req.body or {}).get("lang")
    # The legacy table and its example both say rowCount, so total_key does not apply here.
    return _ok(sim, {"pageList": [_legacy_record(sim, p, now, lang) for p in items], "rowCount": total})


def realtime(sim: Context, req: Request, fault: Fault | None) -> Reply:
    body = req.body or {}
    now = sim.clock()
    ps_ids = str_list(body.get("ps_id_list"))
    point_ids = str_list(body.get("point_id_list"))
    if not ps_ids:
        return error(now, "009", "er_missing_parameter:ps_id_list")
    if not point_ids:
        return error(now, "009", "er_missing_parameter:point_id_list")
    if len(point_ids) > MAX_POINTS:
        return error(now, "010", "er_parameter_value_invalid:point_id_list")
    if sim.max_realtime_plants is not None and len(ps_ids) > sim.max_realtime_plants:
        # Undocumented: `010` (as for point_id_list), `009`, or another code whose message names the limit.
        if sim.realtime_limit_style == "009":
            return error(now, "009", "er_missing_parameter:ps_id_list")
        if sim.realtime_limit_style == "message":
            return error(now, "-1", f"ps_id_list exceeds the maximum of {sim.max_realtime_plants}")
        return error(now, "010", "er_parameter_value_invalid:ps_id_list")
    known: list[int] = []
    for raw in point_ids:
        n = lenient_int(raw)
        if n in POINTS and n not in known:
            known.append(n)
    plants, fails = sim.fleet.asked(ps_ids)
    entries = []
    for plant in plants:
        entry: dict[str, Any] = {"ps_id": str(plant.ps_id), "ps_name": plant.fields["ps_name"],
                                 "ps_key": f"{plant.ps_id}_11_0_0", "uuid": plant.uuid}
        at = plant.data_time(now, sim.update_time_style, sim.data_interval)
        for pid, value in point_values(plant, at, known, sim.data_interval).items():
            entry[f"p{pid}"] = value
        for pid in known:
            if (plant.ps_id, pid) in sim.point_overrides:
                entry[f"p{pid}"] = sim.point_overrides[(plant.ps_id, pid)]
        entries.append(entry)
    data: dict[str, Any] = {"device_point_list": entries, "fail_ps_id_list": fails}
    if str(body.get("is_get_point_dict", "0")) == "1":
        data["point_dict"] = [{"point_id": pid, "point_name": POINTS[pid][0], "point_unit": POINTS[pid][1]}
                              for pid in known]
    return _ok(sim, data)


def token(sim: Context, req: Request, fault: Fault | None) -> Reply:
    body = req.body or {}
    now = sim.clock()
    for key in ("grant_type", "code", "redirect_uri"):
        if not body.get(key):
            return error(now, "009", f"er_missing_parameter:{key}")
    if body["grant_type"] != "authorization_code":
        return error(now, "6", TOKEN_MESSAGES["6"])
    code = sim.auth.exchange(str(body["code"]), str(body["redirect_uri"]))
    if code != "1":
        return error(now, code, TOKEN_MESSAGES[code])
    data = sim.auth.issue()
    data["auth_ps_list"] = [str(p.ps_id) for p in sim.fleet.plants if p.ps_id not in sim.fleet.unauthorized]
    data["auth_user"] = sim.auth.auth_user
    return _token_reply(sim, data)


def refresh_token(sim: Context, req: Request, fault: Fault | None) -> Reply:
    rt = (req.body or {}).get("refresh_token")
    data = sim.auth.refresh(str(rt)) if rt else {"code": "4"}
    # The refresh field table reports failures in result_data.code, so the envelope itself says success.
    return _token_reply(sim, data)


TOKEN_FIELDS = ("access_token", "token_type", "refresh_token", "expires_in")


def _token_reply(sim: Context, data: dict[str, Any]) -> Reply:
    """A token answer in the shape `token_answer_shape` says: the token fields in `result_data` (documented),
    at the top level of the envelope (as some clients read them), or both."""
    shape = sim.token_answer_shape
    if shape == "result_data" or "access_token" not in data:
        return _ok(sim, data)
    tokens = {k: data[k] for k in TOKEN_FIELDS if k in data}
    rest = data if shape == "both" else {k: v for k, v in data.items() if k not in tokens}
    return Reply({**envelope(sim.clock(), "1", rest), **tokens})


def login(sim: Context, req: Request, fault: Fault | None) -> Reply:
    body = req.body or {}
    now = sim.clock()
    for key in ("user_account", "user_password"):
        if not body.get(key):
            return error(now, "009", f"er_missing_parameter:{key}")
    if not sim.auth.login_allowed():
        return error(now, "E916")
    # A failed login still carries result_code "1": only login_state and the token tell.
    return _ok(sim, sim.auth.login(str(body["user_account"]), str(body["user_password"])))


def open_api_call_info(sim: Context, req: Request, fault: Fault | None) -> Reply:
    hour, today = sim.quota.usage()
    limit = sim.quota.hourly or 0
    # The field table lists {hour, max_call_times} and {hour, times}: one entry per hour of the (UTC) day for
    # the limits, and the current hour's remaining calls. Without an hourly quota both lists are empty.
    current = time.gmtime(sim.clock()).tm_hour
    return _ok(sim, {
        "curr_hour_accessed_times": str(hour), "today_accessed_times": str(today),
        "per_day_access_times_config": str(limit * 24),
        "per_hour_access_times_config": [{"hour": h, "max_call_times": limit} for h in range(24)] if limit else [],
        "per_hour_residue_times": [{"hour": current, "times": max(0, limit - hour)}] if limit else [],
    })
