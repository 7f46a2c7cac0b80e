"""Device inventory (platform getDeviceListByPsId, legacy getDeviceList) and device real-time data (platform and
legacy getDeviceRealTimeData). The device model is in devices.py, device fault states come from alarms.py."""

from __future__ import annotations

from typing import Any

from . import catalog
from .common import lenient_int, unit_float
from .context import Context
from .devices import PLANT_DEVICE, Device, PlantNow, device_time, device_values, parse_ps_key, supported_points
from .envelope import Reply, Request, envelope, error
from .faults import Fault
from .fleet import Plant
from .params import eval_times, int_set, invalid, missing, page_slice, paging, str_list

MAX_POINTS = 100
CLAIM_KEYS = ("mixed", "claim_state", "rel_state", "both")
FAIL_KEYS = {
    # The field tables name the platform lists illegal_ps_key_list / illgal_sn_list (sic); recorded answers
    # (and the legacy table) have fail_ps_key_list / fail_sn_list.
    "recorded": ("fail_ps_key_list", "fail_sn_list"),
    "table": ("illegal_ps_key_list", "illgal_sn_list"),
}


def _plant_fault_status(statuses: dict[int | None, int]) -> int:
    # The plant as a device: its worst open fault anywhere (devices use 4 for normal).
    return min(statuses.values(), default=4)


def _claim_keys(ctx: Context, plant: Plant, legacy: bool) -> tuple[str, ...]:
    if legacy:
        return ("rel_state",)  # legacy table and recorded answers agree
    style = ctx.device_claim_key
    if style == "mixed":
        u = unit_float(ctx.fleet.seed, plant.ps_id, 0xF1)
        style = "rel_state" if u < 0.5 else "claim_state" if u < 0.9 else "both"
    return ("claim_state", "rel_state") if style == "both" else (style,)


def device_row(ctx: Context, plant: Plant, dev: Device, fault_status: int, lang: object, legacy: bool,
               firmware: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "uuid": str(dev.uuid), "ps_key": dev.ps_key, "device_sn": dev.sn or None, "device_name": dev.name,
        "device_type": dev.device_type, "type_name": dev.type_name(lang), "device_model_id": dev.model.model_id or None,
        "device_model_code": dev.model.code or None, "dev_fault_status": fault_status,
        # Recorded answers carry dev_status as the string "1" in device lists (an integer in device real-time).
        "dev_status": str(dev.dev_status),
        "device_code": dev.device_code, "chnnl_id": dev.chnnl_id, "communication_dev_sn": dev.comm_sn or None,
        "factory_name": dev.factory_name(lang) or None, "rel_time": plant.fields.get("install_date"),
        "grid_connection_date": plant.fields.get("install_date"), "ps_id": plant.ps_id,
    }
    for key in _claim_keys(ctx, plant, legacy):
        row[key] = dev.claim_state
    if firmware:
        row["firmware_version_info"] = dict(dev.firmware)
    return row


def _flag(ctx: Context, body: dict[str, Any], key: str) -> int | Reply | None:
    """An optional 0/1 parameter: None when absent, 010 for other values."""
    value = body.get(key)
    if value in (None, ""):
        return None
    n = lenient_int(value)
    return n if n in (0, 1) else invalid(ctx, key)


def _list_answer(ctx: Context, req: Request, fault: Fault | None, legacy: bool) -> Reply:
    body = req.body or {}
    refused = missing(ctx, body, "ps_id")
    if refused is not None:
        return refused
    got = paging(ctx, body, "curPage" if legacy else "page")
    if isinstance(got, Reply):
        return got
    page, size = got
    ps_id = lenient_int(body["ps_id"])
    if ps_id is None:
        return invalid(ctx, "ps_id")
    try:
        types = int_set(body.get("device_type_list"))
    except ValueError:
        return invalid(ctx, "device_type_list")
    flags: dict[str, int | None] = {}
    for key in ("is_virtual_unit", "rel_state" if legacy else "claim_state", "is_get_firmware_version"):
        value = _flag(ctx, body, key)
        if isinstance(value, Reply):
            return value
        flags[key] = value
    claim = flags["rel_state" if legacy else "claim_state"]
    fleet = ctx.fleet
    # Unknown or (for the OAuth2 app) unauthorised plants: an empty list (undocumented).
    plant = fleet.by_id.get(ps_id) if legacy else fleet.authorized(ps_id)
    devices = [] if plant is None else ctx.devices.devices(plant, virtual=flags["is_virtual_unit"] == 1)
    devices = [d for d in devices if (types is None or d.device_type in types)
               and (claim is None or d.claim_state == claim)]
    rows: list[dict[str, Any]] = []
    if plant is not None and devices:
        t, now = eval_times(ctx)
        statuses = ctx.alarms.device_status(plant, t, now)
        for dev in page_slice(devices, page, size, fault):
            status = _plant_fault_status(statuses) if dev.device_type == PLANT_DEVICE else \
                statuses.get(dev.index, 4)
            rows.append(device_row(ctx, plant, dev, status, body.get("lang"), legacy,
                                   flags["is_get_firmware_version"] == 1))
    data: dict[str, Any] = {"pageList": rows}
    total_key = "rowCount" if legacy else ctx.total_key
    if total_key is not None:
        data[total_key] = len(devices)
    return Reply(envelope(ctx.clock(), "1", data))


def platform_list(ctx: Context, req: Request, fault: Fault | None) -> Reply:
    return _list_answer(ctx, req, fault, legacy=False)


def legacy_list(ctx: Context, req: Request, fault: Fault | None) -> Reply:
    return _list_answer(ctx, req, fault, legacy=True)


def _realtime_answer(ctx: Context, req: Request, legacy: bool) -> Reply:
    body = req.body or {}
    refused = missing(ctx, body, "point_id_list", "device_type")
    if refused is not None:
        return refused
    device_type = lenient_int(body["device_type"])
    if device_type is None or device_type not in catalog.KNOWN_DEVICE_TYPES:
        # An unknown device type: undocumented, the simulator answers 010.
        return invalid(ctx, "device_type")
    raw_points = str_list(body.get("point_id_list"))
    if not raw_points:
        return error(ctx.clock(), "009", "er_missing_parameter:point_id_list")
    if len(raw_points) > MAX_POINTS:
        return invalid(ctx, "point_id_list")
    points: list[int] = []
    for raw in raw_points:
        n = lenient_int(raw.lstrip("p"))
        if n is not None and n not in points:
            points.append(n)
    keys = str_list(body.get("ps_key_list"))
    sns = None if keys else str_list(body.get("sn_list"), single_quotes=True)
    if not keys and not sns:
        return error(ctx.clock(), "009", "er_missing_parameter:ps_key_list")
    if keys:
        kinds = {parsed[1] for k in keys if (parsed := parse_ps_key(k)) is not None}
        if len(kinds) > 1:
            # "ps_key Collection (must pass the same device type)" [doc] names no error for mixed types; the
            # simulator answers the generic 010.
            return invalid(ctx, "ps_key_list")
    fleet = ctx.fleet
    found: list[Device] = []
    failed: list[str] = []
    for item in dict.fromkeys(keys or sns or []):
        dev = ctx.devices.by_ps_key(fleet, item) if keys else ctx.devices.by_sn(fleet, item)
        visible = dev is not None and (legacy or dev.ps_id not in fleet.unauthorized)
        if dev is None or not visible or dev.device_type != device_type:
            failed.append(item)
        else:
            found.append(dev)
    t, now = eval_times(ctx)
    models: dict[int, tuple[PlantNow, dict[int | None, int]]] = {}
    entries = []
    for dev in found:
        plant = fleet.by_id[dev.ps_id]
        if plant.ps_id not in models:
            models[plant.ps_id] = (PlantNow(plant, t), ctx.alarms.device_status(plant, t, now))
        model, statuses = models[plant.ps_id]
        status = _plant_fault_status(statuses) if dev.device_type == PLANT_DEVICE else statuses.get(dev.index, 4)
        point: dict[str, Any] = {
            "ps_key": dev.ps_key, "device_sn": dev.sn or None, "uuid": dev.uuid, "device_name": dev.name,
            "device_time": device_time(plant, t), "ps_id": plant.ps_id, "dev_status": dev.dev_status,
            "dev_fault_status": status, "communication_dev_sn": dev.comm_sn or None,
        }
        for pid, value in device_values(dev, model, points, status, ctx.fleet.seed, ctx.data_interval).items():
            point[f"p{pid}"] = value
        entries.append({"device_point": point})
    key_name, sn_name = FAIL_KEYS["recorded" if legacy else ctx.device_fail_keys]
    data: dict[str, Any] = {"device_point_list": entries, key_name if keys else sn_name: failed}
    if not legacy and str(body.get("is_get_point_dict", "0")).strip() == "1":
        known = supported_points(device_type)
        data["point_dict"] = [{"point_id": pid, "point_name": known[pid][0], "point_unit": known[pid][1]}
                              for pid in points if pid in known]
    return Reply(envelope(ctx.clock(), "1", data))


def platform_realtime(ctx: Context, req: Request, fault: Fault | None) -> Reply:
    return _realtime_answer(ctx, req, legacy=False)


def legacy_realtime(ctx: Context, req: Request, fault: Fault | None) -> Reply:
    return _realtime_answer(ctx, req, legacy=True)
