"""Devices: each plant's device list (`getDeviceListByPsId`, legacy `getDeviceList`), page by page, and device
real-time points (`getDeviceRealTimeData`), one device type per call, in batches of devices and of at most 100
points.

The reference and answers recorded from the live cloud disagree on several names, so both are read: the claim
state as `claim_state` (field table) or `rel_state` (recorded, and the legacy table), the failed keys as
`fail_ps_key_list` (recorded) or `illegal_ps_key_list` (field table), the total as `row_count` or `rowCount`.
Values come as numbers or strings (`dev_status` is the string "1" in the list, an integer in real-time answers),
unsupported points as `null`; real-time entries nest under `device_point`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

from ..data import Device, DeviceReading
from .envelope import ApiError, ResponseError, ResultError
from .paging import Listing, read_pages, row_total
from .parse import label_text, parse_float, parse_int, parse_timestamp, ps_id
from .session import ApiSession

PLATFORM_LIST_PATH = "/openapi/platform/getDeviceListByPsId"
LEGACY_LIST_PATH = "/openapi/getDeviceList"
PLATFORM_REALTIME_PATH = "/openapi/platform/getDeviceRealTimeData"
LEGACY_REALTIME_PATH = "/openapi/getDeviceRealTimeData"
MAX_POINTS_PER_CALL = 100  # as for plant points; the device table documents no other limit
MAX_PAGES = 10_000  # a plant of a million devices: beyond it a gateway is repeating pages
# firmware_version_info's documented keys, in the table's order (each a label of isolarcloud_device_info).
FIRMWARE_KEYS = ("bat_version", "lcd_version", "mdsp_version", "sdsp_version", "pvd_version", "cpld_version",
                 "temp_version", "m_version", "system_version")
# Failed-key lists under both spellings (recorded answers; field table, whose sn list is spelt `illgal`).
FAIL_KEYS = ("fail_ps_key_list", "illegal_ps_key_list")


def type_of(ps_key: str, listed: int | None) -> int | None:
    """A device's type code: as listed, else the second part of its ps_key (`<ps_id>_<type>_<channel>_<code>`,
    as in every example of the reference)."""
    if listed is not None:
        return listed
    parts = ps_key.split("_")
    return parse_int(parts[1]) if len(parts) == 4 else None


class TooManyPages(Exception):
    """A plant's device list needs more calls than the caller may spend now (its first page told the total)."""

    def __init__(self, plant: str, calls: int) -> None:
        super().__init__(f"device list of plant {plant} needs {calls} calls")
        self.calls = calls


class DeviceListApi:
    def __init__(self, session: ApiSession, *, page_size: int, firmware: bool,
                 device_types: Sequence[int] = ()) -> None:
        self.session = session
        self.page_size = page_size
        self.firmware = firmware
        self.device_types = tuple(device_types)
        # Rows per page as the gateway serves them (it may clamp the size silently, as the plant list may).
        self.served_page_size = page_size

    def calls(self, devices: int | None) -> int:
        """List calls one read of a plant with `devices` devices costs (None: not read yet, one page)."""
        if devices is None:
            return 1
        return max(1, math.ceil(devices / max(1, min(self.page_size, self.served_page_size))))

    def page(self, plant: str, number: int) -> tuple[list[dict[str, Any]], int | None]:
        # Types as in each table's example (the tables' types are guessed from them): the platform example sends
        # ps_id as a string, the legacy one as a number; both send device_type_list as a list.
        params: dict[str, Any]
        if self.session.mode == "oauth2":
            path = PLATFORM_LIST_PATH
            params = {"ps_id": plant, "page": number, "size": self.page_size}
        else:
            path = LEGACY_LIST_PATH
            params = {"ps_id": int(plant), "curPage": number, "size": self.page_size}
        if self.firmware:
            params["is_get_firmware_version"] = 1
        if self.device_types:
            params["device_type_list"] = list(self.device_types)
        data = self.session.call(path, params, require_list="pageList")
        return [r for r in data["pageList"] if isinstance(r, dict)], row_total(data)

    def read(self, plant: str, max_calls: int | None = None) -> Listing:
        """Every page of one plant until the total is reached or a page comes back short; each ps_key once. When
        the first page's total says the plant needs more than `max_calls` calls, TooManyPages: the one call is
        spent, the rest is not."""

        def affordable(total: int) -> None:
            if max_calls is not None and self.calls(total) > max_calls:
                raise TooManyPages(plant, self.calls(total))

        listing = read_pages(lambda number: self.page(plant, number),
                             lambda row: label_text(row.get("ps_key")).strip() or None, asked=self.page_size,
                             endpoint="getDeviceList", max_pages=MAX_PAGES, too_many="of devices",
                             first_total=affordable)
        served = listing.served_page_size(self.page_size)
        if served is not None:
            self.served_page_size = served
        return listing

    def devices(self, plant: str, *, strict: bool = True, max_calls: int | None = None) -> tuple[list[Device], int]:
        """One plant's devices, and the list calls it took. A list that changed while it was paged is read once
        more; inconsistent twice, it fails (`strict`) rather than pass part of a plant off as the whole."""
        listing = self.read(plant, max_calls)
        calls = listing.pages
        if not listing.consistent:
            listing = self.read(plant, None if max_calls is None else max_calls - calls)
            calls += listing.pages
            if not listing.consistent and strict:
                raise ResponseError("getDeviceList", "inconsistent_list",
                                    f"device list of plant {plant} inconsistent twice (totals "
                                    f"{sorted(set(listing.totals))}, {len(listing.rows)} devices read)")
        return [d for d in (parse_device(row, plant, firmware=self.firmware) for row in listing.rows)
                if d is not None], calls


def _text(value: Any) -> str:
    return label_text(value).strip()


def parse_device(row: Mapping[str, Any], plant: str, *, firmware: bool = False) -> Device | None:
    """One `pageList` row → Device; None without a ps_key."""
    key = _text(row.get("ps_key"))
    if not key:
        return None
    claim = row.get("claim_state") if row.get("claim_state") is not None else row.get("rel_state")
    versions: tuple[tuple[str, str], ...] | None = None
    if firmware:
        info = row.get("firmware_version_info")
        info = info if isinstance(info, Mapping) else {}
        versions = tuple((name, _text(info.get(name))) for name in FIRMWARE_KEYS)
    return Device(
        ps_key=key,
        ps_id=ps_id(row.get("ps_id")) or plant,
        device_sn=_text(row.get("device_sn")),
        device_name=label_text(row.get("device_name")),
        device_type_code=type_of(key, parse_int(row.get("device_type"))),
        model=_text(row.get("device_model_code")),
        factory_name=_text(row.get("factory_name")),
        communication_dev_sn=_text(row.get("communication_dev_sn")),
        fault_status=parse_int(row.get("dev_fault_status")),
        deployment_status=parse_int(row.get("dev_status")),
        claim_state=parse_int(claim),
        firmware=versions,
    )


@dataclass
class DeviceRealtimeResult:
    readings: dict[str, DeviceReading] = field(default_factory=dict)  # ps_key → reading
    point_names: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)  # ps_keys in the fail lists
    refused: dict[int, ApiError] = field(default_factory=dict)  # device type → the error its calls met


class DeviceRealtimeApi:
    def __init__(self, session: ApiSession, *, batch_size: int, points: Sequence[str]) -> None:
        self.session = session
        self.batch_size = batch_size
        self.points = tuple(points)

    def calls(self, devices_by_type: Mapping[int, int]) -> int:
        """Calls of one pass: per device type, batches of devices, each split into calls of at most 100 points."""
        per_batch = math.ceil(len(self.points) / MAX_POINTS_PER_CALL)
        return sum(math.ceil(n / self.batch_size) * per_batch for n in devices_by_type.values() if n > 0)

    def read(self, groups: Mapping[int, Sequence[str]], zones: Mapping[str, timezone | None]) -> DeviceRealtimeResult:
        """Every device's points, one device type per call (the API refuses mixed types). A device type whose
        call the API refuses (a result code or an unusable answer) goes to `refused` and the other types are
        still read; errors of the account or the connection (quota, credentials, token, network) end the pass.
        `zones` gives the time zone in which each plant's `device_time` is read (by ps_id)."""
        result = DeviceRealtimeResult()
        for device_type, keys in groups.items():
            try:
                for start in range(0, len(keys), self.batch_size):
                    self._batch(device_type, keys[start:start + self.batch_size], zones, result)
            except ApiError as exc:
                if not _type_specific(exc):
                    raise
                result.refused[device_type] = exc
        return result

    def _batch(self, device_type: int, keys: Sequence[str], zones: Mapping[str, timezone | None],
               result: DeviceRealtimeResult) -> None:
        platform = self.session.mode == "oauth2"
        path = PLATFORM_REALTIME_PATH if platform else LEGACY_REALTIME_PATH
        readings: dict[str, dict[str, float]] = {}
        answered: dict[str, tuple[int | None, int | None, float | None]] = {}
        for points in _chunks(self.points, MAX_POINTS_PER_CALL):
            # As in the examples: the platform one sends device_type and is_get_point_dict as strings, the legacy
            # one device_type as a number (and has no point dictionary).
            params: dict[str, Any] = {"device_type": str(device_type) if platform else device_type,
                                      "ps_key_list": list(keys), "point_id_list": points}
            if platform:
                params["is_get_point_dict"] = "1"
            data = self.session.call(path, params, require_list="device_point_list")
            for entry in data["device_point_list"]:
                point = entry.get("device_point") if isinstance(entry, dict) else None
                if not isinstance(point, dict):
                    point = entry if isinstance(entry, dict) else None  # a flat entry, as the plant endpoint's
                key = _text(point.get("ps_key")) if point is not None else ""
                if point is None or not key:
                    continue
                values = readings.setdefault(key, {})
                for point_id in points:
                    value = parse_float(point.get("p" + point_id))
                    if value is not None:
                        values[point_id] = value
                plant = ps_id(point.get("ps_id")) or key.split("_", 1)[0]
                answered[key] = (parse_int(point.get("dev_fault_status")), parse_int(point.get("dev_status")),
                                 parse_timestamp(point.get("device_time"), zones.get(plant)))
            for item in data.get("point_dict") or []:
                if isinstance(item, dict) and item.get("point_id") is not None:
                    result.point_names[(device_type, str(item["point_id"]).strip())] = (
                        label_text(item.get("point_name")), label_text(item.get("point_unit")))
            for name in FAIL_KEYS:
                failed = data.get(name)
                if isinstance(failed, list):
                    result.failed.update(_text(x) for x in failed if x is not None)
                elif isinstance(failed, str) and failed.strip():  # typed "string" in the table
                    result.failed.update(x.strip(" '\"[]") for x in failed.split(",") if x.strip(" '\"[]"))
        for key, (fault, deployed, ts) in answered.items():
            result.readings[key] = DeviceReading(readings.get(key, {}), fault, deployed, ts)


def _type_specific(exc: ApiError) -> bool:
    """A refusal of this call's parameters (e.g. `010` for a device type the gateway does not know) or an
    unusable answer, as opposed to the account's or the connection's trouble, which every other call would meet."""
    return isinstance(exc, (ResultError, ResponseError))


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])
