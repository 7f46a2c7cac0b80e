"""The plant list: every page of `queryPowerStationList` (OAuth2) or `getPowerStationList` (login), de-duplicated,
each row parsed into a `data.Plant`; for login apps also the production values the legacy list carries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..data import Plant
from .envelope import ResponseError
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
MAX_PAGES = 100_000

# Legacy list `{unit, value}` objects → plant quantities (the legacy list has no real-time endpoint).
LEGACY_QUANTITIES: dict[str, str] = {
    "curr_power": "power_watts",
    "today_energy": "energy_today_joules",
    "total_energy": "energy_joules",
    "total_capcity": "installed_power_watts",  # sic, the API's spelling
}


@dataclass
class PlantListing:
    """The rows of one pass over the list, each plant once, with what the pages said about the total."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    reported_total: int | None = None
    pages: int = 0
    duplicates: int = 0
    unusable: int = 0  # rows without a usable ps_id: counted against the total, exported as nothing
    totals: list[int] = field(default_factory=list)  # the total each page reported

    @property
    def consistent(self) -> bool:
        """Every page reported the same total and exactly that many distinct plants were read. A list that
        changed while it was paged (plants added or removed shift the pages) or a page that repeated or
        skipped plants fails this; without a reported total nothing can be checked."""
        return not self.totals or (len(set(self.totals)) == 1
                                   and len(self.rows) + self.unusable == self.totals[0])


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
        return [r for r in rows if isinstance(r, dict)], _total(data)

    def read(self) -> PlantListing:
        """Every page until the total is reached or a page comes back short; each ps_id once (rows without a
        usable ps_id are dropped here: nothing could be exported for them)."""
        result = PlantListing()
        seen: set[str] = set()
        number = 1
        page_limit: int | None = None
        size = 0  # the largest page served
        asked = self.effective_page_size
        while True:
            rows, total = self.page(number)
            result.pages += 1
            size = max(size, len(rows))
            if total is not None:
                result.reported_total = total
                result.totals.append(total)
                # The total may change between pages; allow two extra pages for plants added meanwhile but
                # never page forever through a server that keeps repeating full pages.
                page_limit = max(page_limit or 0, math.ceil(total / max(size, 1)) + 2)
            for row in rows:
                key = ps_id(row.get("ps_id"))
                if key is None:
                    result.unusable += 1
                    continue
                if key in seen:
                    result.duplicates += 1
                    continue
                seen.add(key)
                result.rows.append(row)
            if not rows:
                break
            if total is None and len(rows) < asked:
                break
            if total is not None and number * size >= total:
                break
            if page_limit is not None and number >= page_limit:
                break
            if number >= MAX_PAGES:
                raise ResponseError("list", "invalid_response", f"more than {MAX_PAGES} pages without an end")
            number += 1
        if result.pages > 1 and 0 < size < asked:
            # No page of the pass held more rows than this while the total asked for more pages: the gateway
            # caps the page size silently (the maximum is undocumented). Ask for this many from now on.
            self.served_page_size = size
        return result


def _total(data: dict[str, Any]) -> int | None:
    """`rowCount` (examples) or `row_count` (field table): the documentation disagrees, accept both."""
    for key in ("rowCount", "row_count"):
        number = parse_int(data.get(key))
        if number is not None and number >= 0:
            return number
    return None


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
