"""The iSolarCloud calls the exporter makes: the plant list (all pages) and plant real-time data.

Knows the endpoints and their parameters; transport and authentication are delegated. A rejected token is
recovered once (refresh or re-login) and the failed request retried once, so paging resumes where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .auth import Auth
from .client import ResponseError, TokenError, Transport

OAUTH_LIST_PATH = "/openapi/platform/queryPowerStationList"
LEGACY_LIST_PATH = "/openapi/getPowerStationList"
REALTIME_PATH = "/openapi/platform/getPowerStationRealTimeData"
MAX_POINTS_PER_CALL = 100  # more gives result code 010 [one source]


@dataclass
class PlantList:
    rows: list[dict[str, Any]] = field(default_factory=list)
    reported_total: int | None = None
    pages: int = 0
    duplicates: int = 0
    totals: list[int] = field(default_factory=list)  # the total each page reported

    @property
    def consistent(self) -> bool:
        """Every page reported the same total and exactly that many distinct plants were read. A list that
        changed while it was paged (plants added or removed shift the pages) or a page that repeated or
        skipped plants fails this; without a reported total nothing can be checked."""
        return not self.totals or (len(set(self.totals)) == 1 and len(self.rows) == self.totals[0])


@dataclass
class RealtimeBatch:
    entries: list[dict[str, Any]]
    point_names: dict[str, tuple[str, str]]  # point id → (name, unit)
    failed: list[str]


class IsolarcloudApi:
    def __init__(self, transport: Transport, auth: Auth, *, page_size: int, filters: dict[str, str]) -> None:
        self.transport = transport
        self.auth = auth
        self.page_size = page_size
        self.filters = filters

    def call(self, path: str, params: dict[str, Any], require_list: str | None = None) -> dict[str, Any]:
        try:
            headers, body = self.auth.sign(path, params)
            return self.transport.post(path, body, headers, require_list)
        except TokenError:
            if not self.auth.recover():
                raise
        headers, body = self.auth.sign(path, params)
        return self.transport.post(path, body, headers, require_list)

    def list_page(self, page: int) -> tuple[list[dict[str, Any]], int | None]:
        if self.auth.mode == "oauth2":
            path, params = OAUTH_LIST_PATH, {"page": page, "size": self.page_size, **self.filters}
        else:
            path, params = LEGACY_LIST_PATH, {"curPage": page, "size": self.page_size, **self.filters}
        data = self.call(path, params, require_list="pageList")
        rows = data.get("pageList")
        if not isinstance(rows, list):
            raise ResponseError(path.rsplit("/", 1)[-1], "invalid_response", "result_data has no pageList list")
        return [r for r in rows if isinstance(r, dict)], _total(data)

    def all_plants(self) -> PlantList:
        """Every page until the total is reached or a page comes back short; de-duplicated by ps_id."""
        result = PlantList()
        seen: set[Any] = set()
        page = 1
        page_limit: int | None = None
        size = 0  # rows per page as served: a gateway may cap the page size silently
        while True:
            rows, total = self.list_page(page)
            result.pages += 1
            size = max(size, len(rows))
            if total is not None:
                result.reported_total = total
                result.totals.append(total)
                # The total may change between pages; allow two extra pages for plants added meanwhile but
                # never page forever through a server that keeps repeating full pages.
                page_limit = max(page_limit or 0, math.ceil(total / max(size, 1)) + 2)
            for row in rows:
                key = str(row.get("ps_id"))
                if key in seen:
                    result.duplicates += 1
                    continue
                seen.add(key)
                result.rows.append(row)
            if not rows:
                break
            if total is None and len(rows) < self.page_size:
                break
            if total is not None and page * size >= total:
                break
            if page_limit is not None and page >= page_limit:
                break
            if page >= 100_000:
                raise ResponseError("list", "invalid_response", "more than 100000 pages without an end")
            page += 1
        return result

    def realtime(self, ps_ids: Sequence[str], point_ids: Sequence[str]) -> RealtimeBatch:
        """Plant real-time data for one batch of plants, split into calls of at most 100 points."""
        merged: dict[str, dict[str, Any]] = {}
        names: dict[str, tuple[str, str]] = {}
        failed: set[str] = set()
        for points in _chunks(list(point_ids), MAX_POINTS_PER_CALL):
            data = self.call(REALTIME_PATH, {"ps_id_list": list(ps_ids), "point_id_list": points,
                                             "is_get_point_dict": "1"}, require_list="device_point_list")
            entries = data.get("device_point_list")
            if not isinstance(entries, list):
                raise ResponseError("getPowerStationRealTimeData", "invalid_response",
                                    "result_data has no device_point_list list")
            for entry in entries:
                if isinstance(entry, dict) and entry.get("ps_id") is not None:
                    merged.setdefault(str(entry["ps_id"]).strip(), {}).update(entry)
            for item in data.get("point_dict") or []:
                if isinstance(item, dict) and item.get("point_id") is not None:
                    names[str(item["point_id"])] = (str(item.get("point_name") or ""),
                                                    str(item.get("point_unit") or ""))
            failed.update(str(x) for x in data.get("fail_ps_id_list") or [] if x is not None)
        return RealtimeBatch(entries=list(merged.values()), point_names=names, failed=sorted(failed))


def _total(data: dict[str, Any]) -> int | None:
    """`rowCount` (examples) or `row_count` (field table): the documentation disagrees, accept both."""
    for key in ("rowCount", "row_count"):
        value = data.get(key)
        try:
            number = int(str(value).strip()) if value is not None else None
        except ValueError:
            number = None
        if number is not None and number >= 0:
            return number
    return None


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
