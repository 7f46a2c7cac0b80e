"""Plant real-time data: `getPowerStationRealTimeData` (OAuth2 apps) in batches of plants and of at most 100
points, each value scaled from the API's smallest unit (W, Wh, fraction) to the base unit of its quantity.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data import QUANTITIES
from .envelope import ResponseError
from .parse import parse_float, ps_id
from .session import ApiSession

REALTIME_PATH = "/openapi/platform/getPowerStationRealTimeData"
MAX_POINTS_PER_CALL = 100  # more gives result code 010 [one source]
# (answer key, quantity key, scale) for every quantity that has a real-time point.
_POINT_KEYS = tuple(("p" + q.point_id, q.key, q.scale) for q in QUANTITIES if q.point_id)


@dataclass
class RealtimeResult:
    values: dict[str, dict[str, float]] = field(default_factory=dict)  # ps_id → quantity key → base-unit value
    extra: dict[str, dict[str, float]] = field(default_factory=dict)  # ps_id → extra point id → raw value
    point_names: dict[str, tuple[str, str]] = field(default_factory=dict)  # extra point id → (name, unit)
    failed: set[str] = field(default_factory=set)  # fail_ps_id_list


class RealtimeApi:
    def __init__(self, session: ApiSession, *, batch_size: int, extra_points: Sequence[str]) -> None:
        self.session = session
        self.batch_size = batch_size
        known = [q.point_id for q in QUANTITIES if q.point_id]
        self.extra_points = tuple(extra_points)
        self.point_ids = known + [p for p in self.extra_points if p not in known]

    def calls(self, plants: int) -> int:
        """Real-time calls for `plants` plants: batches of plants, each split into calls of at most 100 points."""
        if plants <= 0:
            return 0
        return math.ceil(plants / self.batch_size) * math.ceil(len(self.point_ids) / MAX_POINTS_PER_CALL)

    def read(self, ps_ids: Sequence[str]) -> RealtimeResult:
        """Every plant's values, batch after batch."""
        result = RealtimeResult()
        for start in range(0, len(ps_ids), self.batch_size):
            self._batch(ps_ids[start:start + self.batch_size], result)
        return result

    def _batch(self, ps_ids: Sequence[str], result: RealtimeResult) -> None:
        extra = self.extra_points
        for points in _chunks(self.point_ids, MAX_POINTS_PER_CALL):
            data = self.session.call(REALTIME_PATH, {"ps_id_list": list(ps_ids), "point_id_list": points,
                                                     "is_get_point_dict": "1"}, require_list="device_point_list")
            entries = data.get("device_point_list")
            if not isinstance(entries, list):
                raise ResponseError("getPowerStationRealTimeData", "invalid_response",
                                    "result_data has no device_point_list list")
            for entry in entries:
                key = ps_id(entry.get("ps_id")) if isinstance(entry, dict) else None
                if key is None:
                    continue
                values = result.values.setdefault(key, {})
                for answer_key, quantity, scale in _POINT_KEYS:
                    value = parse_float(entry.get(answer_key))
                    if value is not None and math.isfinite(value * scale):
                        values[quantity] = value * scale
                for point_id in extra:
                    value = parse_float(entry.get("p" + point_id))
                    if value is not None:
                        result.extra.setdefault(key, {})[point_id] = value
            for item in data.get("point_dict") or []:
                if isinstance(item, dict) and item.get("point_id") is not None:
                    point_id = str(item["point_id"])
                    if point_id in extra:
                        result.point_names[point_id] = (str(item.get("point_name") or ""),
                                                        str(item.get("point_unit") or ""))
            result.failed.update(str(x) for x in data.get("fail_ps_id_list") or [] if x is not None)


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])
