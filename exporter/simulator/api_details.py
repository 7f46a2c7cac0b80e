"""getPowerStationDetail: the platform batch form (`ps_ids`, at most 20, `result_data.code`, `data_list[]`,
`not_authorization_ps_list`) and the legacy form (one plant by a device serial, `result_data` one flat object)."""

from __future__ import annotations

from typing import Any

from .catalog import PLANT_TYPE_NAMES, is_english
from .common import lenient_int, unit_float
from .context import Context
from .envelope import Reply, Request, envelope, error
from .faults import Fault
from .fleet import Plant
from .params import eval_times, invalid, missing, str_list

MAX_IDS = 20  # "can query up to 20 IDs" / "up to 20 SNs" [doc]
# result_data.code [doc: field table]. Sent as strings: the table types the field integer, but the only
# recorded answer of a result_data.code (refreshToken's, in Quick Start) has "1", and that table says integer too.
OK, NOT_FOUND_BY_SN, TOO_MANY, NOT_FOUND, NONE_AUTHORISED = "1", "4", "5", "6", "7"

_PHONES = {
    "CNY": ("1{a}{n:09d}", 10**9), "EUR": ("+49 1512 {n:07d}", 10**7), "AUD": ("0491 570 {n:03d}", 10**3),
    "GBP": ("07700 900{n:03d}", 10**3), "USD": ("+1 512-555-01{n:02d}", 10**2), "BRL": ("+55 11 9{n:08d}", 10**8),
    "INR": ("+91 98{n:08d}", 10**8),
}
_AWKWARD_EMAILS = ("zoë.müller+solar@example.de", '"quoted owner"@example.org', "用户@example.cn",
                   "UPPER.Case@Example.COM")


def owner_contact(seed: int, plant: Plant) -> tuple[str | None, str | None]:
    """The owner's phone and e-mail: personal data the real answers carry [doc: portal example]. Fictional
    number ranges and example.* domains; a few plants have none, or odd addresses."""
    u = unit_float(seed, plant.ps_id, 0xE1)
    pattern, space = _PHONES.get(plant.currency, _PHONES["CNY"])
    n = int(unit_float(seed, plant.ps_id, 0xE2) * space)
    phone: str | None = pattern.format(a=3 + n % 7, n=n)
    email: str | None = f"owner{plant.ps_id % 1_000_000}@example.com"
    if u < 0.05:
        phone = email = None
    elif u < 0.10:
        phone, email = "", ""
    elif u < 0.13:
        email = _AWKWARD_EMAILS[int(unit_float(seed, plant.ps_id, 0xE3) * len(_AWKWARD_EMAILS))]
    return phone, email


def _tariffs(seed: int, plant: Plant) -> tuple[float | None, float | None]:
    """(feed-in, consumption) per kWh in the plant's currency; the feed-in price is the one the legacy plant
    list's incomes use. About 5 % of plants have no tariff set."""
    if unit_float(seed, plant.ps_id, 0xE4) < 0.05:
        return None, None
    return plant.price_per_kwh, round(plant.price_per_kwh * 1.6, 4)


def _per_wh(per_kwh: float | None) -> float | None:
    return None if per_kwh is None else round(per_kwh / 1000.0, 7)


def _type_name(plant: Plant, lang: object) -> str:
    names = PLANT_TYPE_NAMES.get(lenient_int(plant.fields.get("ps_type")) or 0, ("", ""))
    return names[1] if is_english(lang) else names[0]


def _remarks(seed: int, plant: Plant) -> dict[str, str | None]:
    u = unit_float(seed, plant.ps_id, 0xE5)
    first = "" if u < 0.5 else "Wartung: 2024-05" if u < 0.7 else '备注 "A" \\ 1' if u < 0.8 else "note\nline 2"
    return {"remark1": first, "remark2": "", "remark3": None if u < 0.3 else "", "remark4": "", "remark5": ""}


def _open_counts(ctx: Context, plant: Plant) -> tuple[int, int]:
    t, now = eval_times(ctx)
    types = ctx.alarms.open_types(plant, t, now)
    return types.count(1), types.count(2)


def _comm_list(ctx: Context, plant: Plant) -> list[dict[str, Any]]:
    return [{"sn": sn, "is_enable": enabled} for sn, enabled in ctx.devices.communication_devices(plant)]


def install_power(ctx: Context, plant: Plant) -> int | float:
    if ctx.install_power_unit == "kW":
        return round(plant.capacity_w / 1000.0, 3)
    return round(plant.capacity_w)


def platform_record(ctx: Context, plant: Plant, lang: object, remarks: bool) -> dict[str, Any]:
    f = plant.fields
    seed = ctx.fleet.seed
    faults, alarms = _open_counts(ctx, plant)
    phone, email = owner_contact(seed, plant)
    feed_in, consumption = _tariffs(seed, plant)
    rec: dict[str, Any] = {
        "ps_id": plant.ps_id, "ps_key": f"{plant.ps_id}_11_0_0", "ps_name": f["ps_name"],
        "description": f["description"], "ps_type": f["ps_type"], "ps_type_name": _type_name(plant, lang),
        "online_status": f["online_status"], "build_status": f["build_status"], "install_date": f["install_date"],
        "connect_type": f["connect_type"], "grid_connection_time": f["grid_connection_time"],
        "ps_fault_status": f["ps_fault_status"], "fault_count": faults, "alarm_count": alarms,
        "ps_location": f["ps_location"], "latitude": f["latitude"], "longitude": f["longitude"],
        "install_power": install_power(ctx, plant),
        "ps_feedin_power_price_wh": _per_wh(feed_in), "ps_feedin_power_price_kwh": feed_in,
        "ps_consumption_power_price_wh": _per_wh(consumption), "ps_consumption_power_price_kwh": consumption,
        "power_price_unit": f"{plant.currency}/kWh", "ps_current_time_zone": f["ps_current_time_zone"],
        "owner_mobile": phone, "owner_email": email, "user_moble_tel": phone,
        "communication_dev_detail_list": _comm_list(ctx, plant), "param_income_unit_name": plant.currency,
    }
    if remarks:
        rec["ps_remarks"] = _remarks(seed, plant)
    return rec


def platform_detail(ctx: Context, req: Request, fault: Fault | None) -> Reply:
    body = req.body or {}
    raw_ids = str_list(body.get("ps_ids"))
    # The table calls the serial list `sns`; the portal's example request has `sn`. Both are read.
    sns = str_list(body.get("sns") if body.get("sns") not in (None, "") else body.get("sn"))
    if not raw_ids and not sns:
        return invalid(ctx, "ps_ids") if body.get("ps_ids") not in (None, "", []) else \
            error(ctx.clock(), "009", "er_missing_parameter:ps_ids")
    ids: list[int] = []
    for raw in raw_ids or []:
        n = lenient_int(raw)
        if n is None:
            return invalid(ctx, "ps_ids")
        if n not in ids:
            ids.append(n)

    def answer(code: str, plants: list[Plant], refused: list[int]) -> Reply:
        lang = body.get("lang")
        remarks = str(body.get("is_get_ps_remarks", "")).strip() == "1"
        return Reply(envelope(ctx.clock(), "1", {
            "code": code,
            "not_authorization_ps_list": [str(n) for n in refused],
            "data_list": [platform_record(ctx, p, lang, remarks) for p in plants],
        }))

    if len(raw_ids or ()) > MAX_IDS or len(sns or ()) > MAX_IDS:
        return answer(TOO_MANY, [], [])
    fleet = ctx.fleet
    found = [fleet.by_id[n] for n in ids if n in fleet.by_id]
    allowed = [p for p in found if p.ps_id not in fleet.unauthorized]
    refused = [p.ps_id for p in found if p.ps_id in fleet.unauthorized]
    if allowed:
        return answer(OK, allowed, refused)
    by_sn: list[Plant] = []
    for sn in sns or []:
        dev = ctx.devices.by_sn(fleet, sn)
        plant = fleet.authorized(dev.ps_id) if dev is not None and dev.device_type == 9 else None
        if plant is not None and plant not in by_sn:
            by_sn.append(plant)
    if by_sn:
        return answer(OK, by_sn, refused)
    if ids:
        return answer(NONE_AUTHORISED if refused else NOT_FOUND, [], refused)
    return answer(NOT_FOUND_BY_SN, [], [])


def legacy_record(ctx: Context, plant: Plant, lang: object, remarks: bool) -> dict[str, Any]:
    """One flat object, numbers partly as numeric strings, as recorded legacy answers show them."""
    f = plant.fields
    seed = ctx.fleet.seed
    faults, alarms = _open_counts(ctx, plant)
    phone, email = owner_contact(seed, plant)
    feed_in, _ = _tariffs(seed, plant)
    share = lenient_int(f.get("share_type"), 0)
    rec: dict[str, Any] = {
        "alarm_count": alarms, "build_status": f["build_status"], "communication_dev_detail_list":
        _comm_list(ctx, plant), "connect_type": f["connect_type"], "description": f["description"],
        "design_capacity": round(plant.capacity_w),  # W ("Installed Power (Wp)")
        "email": email, "owner_email": email, "fault_count": faults, "install_date": f["install_date"],
        "latitude": f["latitude"], "longitude": f["longitude"], "param_income_unit_name": plant.currency,
        "ps_current_time_zone": f["ps_current_time_zone"], "ps_fault_status": f["ps_fault_status"],
        "ps_id": plant.ps_id, "ps_key": f"{plant.ps_id}_11_0_0", "ps_location": f["ps_location"],
        "ps_name": f["ps_name"],
        "ps_price": None if feed_in is None else f"{feed_in / 1000.0:g}",
        "ps_price_kwh": None if feed_in is None else f"{feed_in:g}",
        "ps_status": f["ps_status"], "ps_type": f["ps_type"], "ps_type_name": _type_name(plant, lang),
        "share_type": f["share_type"], "share_user_type": share if share in (1, 2) else 0,
        "user_moble_tel": phone,
    }
    if remarks:
        rec["ps_remarks"] = _remarks(seed, plant)
    return rec


def legacy_detail(ctx: Context, req: Request, fault: Fault | None) -> Reply:
    body = req.body or {}
    refused = missing(ctx, body, "sn", "is_get_ps_remarks")  # both required by the legacy table
    if refused is not None:
        return refused
    dev = ctx.devices.by_sn(ctx.fleet, str(body["sn"]).strip())
    plant = ctx.fleet.by_id.get(dev.ps_id) if dev is not None else None
    # An unknown serial: success with an empty result_data, as seen for other empty queries [one source].
    data: dict[str, Any] = {} if plant is None else legacy_record(
        ctx, plant, body.get("lang"), str(body["is_get_ps_remarks"]).strip() == "1")
    return Reply(envelope(ctx.clock(), "1", data))
