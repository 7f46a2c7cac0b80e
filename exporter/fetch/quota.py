"""The app's call quota: `getOpenApiCallInfo` (legacy login apps; no platform variant is documented for OAuth2
apps). Its answer gives the hourly and daily limits and how many calls the app made so far [doc: field table]."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..data import ApiQuota
from .parse import parse_int
from .session import ApiSession

CALL_INFO_PATH = "/openapi/getOpenApiCallInfo"


class CallInfoApi:
    def __init__(self, session: ApiSession) -> None:
        self.session = session

    def calls(self) -> int:
        """One call reads the whole quota."""
        return 1

    def read(self, now: float) -> ApiQuota:
        return parse_call_info(self.session.call(CALL_INFO_PATH, {}), now)


def parse_call_info(data: Mapping[str, Any], now: float) -> ApiQuota:
    """`result_data` of getOpenApiCallInfo → ApiQuota. Numbers may come as strings; a limit of 0 or one that
    cannot be read counts as not reported. `per_hour_access_times_config` is typed an object `{hour,
    max_call_times}` but holds one entry per hour of the day: a list or a single object are both read, and the
    smallest hourly limit is taken (the hour's time zone is not documented)."""
    hourly = data.get("per_hour_access_times_config")
    entries = hourly if isinstance(hourly, list) else [hourly]
    limits = [n for n in (parse_int(e.get("max_call_times")) for e in entries if isinstance(e, Mapping))
              if n is not None and n > 0]
    day_limit = parse_int(data.get("per_day_access_times_config"))
    return ApiQuota(
        hour_limit=min(limits) if limits else None,
        day_limit=day_limit if day_limit is not None and day_limit > 0 else None,
        hour_used=_count(data.get("curr_hour_accessed_times")),
        day_used=_count(data.get("today_accessed_times")),
        taken_at=now,
    )


def _count(value: Any) -> int | None:
    number = parse_int(value)
    return number if number is not None and number >= 0 else None
