"""The plant list: every page of `queryPowerStationList` (OAuth2) or `getPowerStationList` (login), de-duplicated,
each row parsed into a `data.Plant`; for login apps also the production values the legacy list carries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..data import Plant
from .paging import Listing, read_pages, row_total
from .parse import (
    UnknownUnit,
    label_text,
    parse_coordinate,
    parse_int,
    parse_timestamp,
    parse_zoned_timestamp,
    ps_id,
    unit_value,
    zone_offset,
)
from .session import ApiSession

OAUTH_LIST_PATH = "/openapi/platform/queryPowerStationList"
LEGACY_LIST_PATH = "/openapi/getPowerStationList"

# Legacy list `{unit, value}` objects → plant quantities (the legacy list has no real-time endpoint).
LEGACY_QUANTITIES: dict[str, str] = {
    "curr_power": "power_watts",
    "today_energy": "energy_today_joules",
    "total_energy": "energy_joules",
    "total_capcity": "installed_power_watts",  # sic, the API's spelling
}


class PlantListApi:
    def __init__(self, session: ApiSession, *, page_size: int, filters: Mapping[str, str]) -> None:
        self.session = session
        self.page_size = page_size
        self.filters = dict(filters)
        # Rows per page as the gateway serves them: it may cap the page size silently (the maximum is not
        # documented), and the budget forecast must count the pages really needed.
        self.served_page_size = page_size

    @property
    def effective_page_size(self) -> int:
        """The rows per page asked for: the configured size, or the smaller one the gateway was seen to serve.
        Asking for what is served keeps `page` × `size` right also on a gateway that would compute the offset
        from the size asked while serving fewer rows. Kept for the life of the process."""
        return max(1, min(self.page_size, self.served_page_size))

    def calls(self, plants: int) -> int:
        """List calls one pass over `plants` plants costs."""
        return max(1, math.ceil(plants / self.effective_page_size))

    def page(self, number: int) -> tuple[list[dict[str, Any]], int | None]:
        size = self.effective_page_size
        if self.session.mode == "oauth2":
            path, params = OAUTH_LIST_PATH, {"page": number, "size": size, **self.filters}
        else:
            path, params = LEGACY_LIST_PATH, {"curPage": number, "size": size, **self.filters}
        data = self.session.call(path, params, require_list="pageList")
        rows = data["pageList"]
        # The examples say rowCount, the field table row_count: either.
        return [r for r in rows if isinstance(r, dict)], row_total(data, ("rowCount", "row_count"))

    def read(self) -> Listing:
        """Every page until the total is reached or a page comes back short; each ps_id once (rows without a
        usable ps_id are dropped here: nothing could be exported for them)."""
        asked = self.effective_page_size
        listing = read_pages(self.page, lambda row: ps_id(row.get("ps_id")), asked=asked, endpoint="list")
        served = listing.served_page_size(asked)
        if served is not None:
            # No page of the pass held more rows than this while the total asked for more pages: the gateway
            # caps the page size silently (the maximum is undocumented). Ask for this many from now on.
            self.served_page_size = served
        return listing


def parse_plant(row: Mapping[str, Any], api_time_zone: str = "plant") -> Plant | None:
    """One `pageList` row → Plant; None when the row has no usable `ps_id`."""
    key = ps_id(row.get("ps_id"))
    if key is None:
        return None
    time_zone = label_text(row.get("ps_current_time_zone")).strip()
    tz = zone_offset(api_time_zone, time_zone)
    # The legacy list has no update_time; its curr_power_update_time carries its own offset, so it is the
    # unambiguous freshness time wherever it is present (the zone string's sign is disputed).
    stamp = row.get("curr_power_update_time")
    update_ts = parse_zoned_timestamp(stamp)
    if update_ts is None:
        update_ts = parse_timestamp(row.get("update_time"), tz)
    if update_ts is None:
        update_ts = parse_timestamp(stamp, tz)
    return Plant(
        ps_id=key,
        ps_name=label_text(row.get("ps_name")),
        ps_type_code=parse_int(row.get("ps_type")),
        fault_status=parse_int(row.get("ps_fault_status")),
        online_status=parse_int(row.get("online_status")),
        build_status=parse_int(row.get("build_status")),
        grid_connection_status=parse_int(row.get("grid_connection_status")),
        valid_flag=parse_int(row.get("valid_flag")),
        connect_type=parse_int(row.get("connect_type")),
        location=label_text(row.get("ps_location")),
        time_zone=time_zone,
        install_ts=parse_timestamp(row.get("install_date"), tz),
        update_ts=update_ts,
        grid_connection_ts=parse_timestamp(row.get("grid_connection_time"), tz),
        latitude=parse_coordinate(row.get("latitude"), 90),
        longitude=parse_coordinate(row.get("longitude"), 180),
        connection_status=parse_int(row.get("ps_status")),
        reported_faults=_count(row.get("fault_count")),
        reported_alarms=_count(row.get("alarm_count")),
    )


def _count(value: Any) -> int | None:
    number = parse_int(value)
    return number if number is not None and number >= 0 else None


def legacy_production(row: Mapping[str, Any]) -> tuple[dict[str, float], list[str]]:
    """The legacy list's production objects → quantity values in base units, and the unknown units met."""
    values: dict[str, float] = {}
    unknown: list[str] = []
    for key, quantity in LEGACY_QUANTITIES.items():
        try:
            value = unit_value(row.get(key))
        except UnknownUnit as exc:
            unknown.append(exc.unit)
            continue
        if value is not None:
            values[quantity] = value
    return values, unknown
