"""Open faults and alarms: every page of `getFaultAlarmInfo` with `process_status` 8 (unclosed), for every plant
the app may see at once (no `ps_id`). OAuth2 apps call `/openapi/platform/getFaultAlarmInfo` (`page`, total
`row_count`), login apps `/openapi/getFaultAlarmInfo` (`curPage`, total `rowCount`) [doc: both field tables].
A pass costs ⌈open records / page size⌉ calls, whatever the size of the fleet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timezone
from typing import Any

from ..data import Fault
from .paging import Listing, read_pages, row_total
from .parse import label_text, parse_int, parse_timestamp, ps_id
from .session import ApiSession

OAUTH_PATH = "/openapi/platform/getFaultAlarmInfo"
LEGACY_PATH = "/openapi/getFaultAlarmInfo"
ENDPOINT = "getFaultAlarmInfo"
UNCLOSED = 8  # process_status: 8 unclosed, 9 closed, 999 both [doc]


def record_key(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """What tells two records apart: the API's record code (unique per record on the platform), the device and
    the plant, and when the record opened."""
    return (label_text(row.get("fault_code")), label_text(row.get("ps_key")), label_text(row.get("ps_id")),
            label_text(row.get("create_time")))


class FaultApi:
    def __init__(self, session: ApiSession, *, page_size: int) -> None:
        self.session = session
        self.page_size = page_size
        # Rows per page as the gateway serves them (its maximum is undocumented; it may clamp silently).
        self.served_page_size = page_size
        self.last_total: int | None = None  # open records at the last pass: what the next one will cost

    def calls(self, expected: int = 0) -> int:
        """Calls a pass costs when about `expected` records are open (at least the last pass's count)."""
        records = max(expected, self.last_total or 0)
        return max(1, math.ceil(records / max(1, min(self.page_size, self.served_page_size))))

    def page(self, number: int) -> tuple[list[dict[str, Any]], int | None]:
        if self.session.mode == "oauth2":
            path, params = OAUTH_PATH, {"page": number, "size": self.page_size, "process_status": UNCLOSED}
        else:
            path, params = LEGACY_PATH, {"curPage": number, "size": self.page_size, "process_status": UNCLOSED}
        data = self.session.call(path, params, require_list="pageList")
        return [r for r in data["pageList"] if isinstance(r, dict)], row_total(data)

    def read(self) -> Listing:
        """Every page until the total is covered or a page comes back short; each record once. Records open and
        close while a long list is paged (newest first), which shifts the pages: `consistent` then fails."""
        listing = read_pages(self.page, record_key, asked=self.page_size, endpoint=ENDPOINT)
        served = listing.served_page_size(self.page_size)
        if served is not None:
            self.served_page_size = served
        total = listing.reported_total
        self.last_total = total if total is not None else len(listing.rows)
        return listing


def device_type_code(row: Mapping[str, Any]) -> int | None:
    """`device_type` (platform rows); legacy rows have none, but every ps_key is
    `<ps_id>_<device_type>_<channel>_<code>` [doc: field tables' examples], so its second field says it."""
    code = parse_int(row.get("device_type"))
    if code is not None:
        return code
    parts = label_text(row.get("ps_key")).strip().split("_")
    return parse_int(parts[1]) if len(parts) == 4 else None


def _code_text(value: Any) -> str:
    """An integer code as its digits (also when it came as 7.0 or "7"), anything else as the text given."""
    number = parse_int(value)
    return str(number) if number is not None else label_text(value).strip()


def parse_fault(row: Mapping[str, Any], tz: timezone | None) -> Fault | None:
    """One `pageList` row → Fault; None without a usable `ps_id`. `create_time` is plant-local time; `since` is
    NaN when it is missing or unreadable (the collection then decides what to show)."""
    key = ps_id(row.get("ps_id"))
    if key is None:
        return None
    since = parse_timestamp(row.get("create_time"), tz)
    return Fault(
        ps_id=key,
        ps_key=label_text(row.get("ps_key")).strip(),
        device_name=label_text(row.get("device_name")),
        device_type_code=device_type_code(row),
        fault_code=_code_text(row.get("fault_code")),
        fault_name=label_text(row.get("fault_name")),
        fault_type_code=parse_int(row.get("fault_type")),
        fault_level=_code_text(row.get("fault_level")),
        since=since if since is not None else math.nan,
    )
