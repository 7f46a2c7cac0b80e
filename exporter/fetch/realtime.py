"""Plant real-time data: `getPowerStationRealTimeData` (OAuth2 apps) in batches of plants and of at most 100
points, each value scaled from the API's smallest unit (W, Wh, fraction) to the base unit of its quantity.

The largest `ps_id_list` the gateway takes is undocumented: a batch it refuses for its size (`010`, `009`, or a
message naming the limit) is split in halves and the same plants asked again, and the largest batch that was
then answered is used from then on (`effective_batch_size`). No requested plant goes unaccounted for: each one
is answered, listed in `fail_ps_id_list`, asked once more when the answer silently left it out, or counted as
unanswered.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data import QUANTITIES
from .envelope import ResultError
from .parse import parse_float, ps_id
from .session import ApiSession

REALTIME_PATH = "/openapi/platform/getPowerStationRealTimeData"
MAX_POINTS_PER_CALL = 100  # more gives result code 010 [one source]
# (answer key, quantity key, scale) for every quantity that has a real-time point.
_POINT_KEYS = tuple(("p" + q.point_id, q.key, q.scale) for q in QUANTITIES if q.point_id)
# A refused batch: "parameter value invalid", "parameter missing" (a gateway that drops an oversized list), or
# any code whose message speaks of the list or a limit.
LIMIT_CODES = frozenset({"010", "009"})
_OVER_LIMIT = re.compile(r"ps_id_list|too (?:many|long|large)|exceed|limit|maximum|\bmax\b", re.IGNORECASE)


@dataclass
class RealtimeResult:
    values: dict[str, dict[str, float]] = field(default_factory=dict)  # ps_id → quantity key → base-unit value
    extra: dict[str, dict[str, float]] = field(default_factory=dict)  # ps_id → extra point id → raw value
    point_names: dict[str, tuple[str, str]] = field(default_factory=dict)  # extra point id → (name, unit)
    failed: set[str] = field(default_factory=set)  # requested plants in fail_ps_id_list
    unanswered: set[str] = field(default_factory=set)  # requested, neither answered nor failed, after a 2nd ask
    empty_answers: int = 0  # calls answered with no entry at all (`{}`, `[]`, an empty list): "no data"
    stray_entries: int = 0  # entries whose plant was not asked for (or that name none)
    asked_again: int = 0  # plants silently left out of an answer and asked once more
    shrunk_from: int | None = None  # a batch size the gateway refused in this read (then the effective is less)


def over_limit(exc: ResultError) -> bool:
    return exc.result in LIMIT_CODES or bool(_OVER_LIMIT.search(exc.api_message))


class RealtimeApi:
    def __init__(self, session: ApiSession, *, batch_size: int, extra_points: Sequence[str]) -> None:
        self.session = session
        self.batch_size = batch_size
        # The largest batch the gateway answered after refusing a larger one; kept for the life of the process.
        self.learned_batch_size: int | None = None
        known = [q.point_id for q in QUANTITIES if q.point_id]
        self.extra_points = tuple(extra_points)
        self.point_ids = known + [p for p in self.extra_points if p not in known]

    @property
    def effective_batch_size(self) -> int:
        return max(1, min(self.batch_size, self.learned_batch_size or self.batch_size))

    def calls(self, plants: int) -> int:
        """Real-time calls for `plants` plants: batches of plants, each split into calls of at most 100 points."""
        if plants <= 0:
            return 0
        return math.ceil(plants / self.effective_batch_size) * math.ceil(len(self.point_ids) / MAX_POINTS_PER_CALL)

    def read(self, ps_ids: Sequence[str]) -> RealtimeResult:
        """Every plant's values, batch after batch; plants an answer silently left out are asked once more."""
        result = RealtimeResult()
        missing, answered_per_batch = self._pass(ps_ids, result)
        if missing:
            result.asked_again = len(missing)
            # A gateway that silently answers only the first n plants of each batch answers all of them in
            # batches of n: ask again in batches no larger than the smallest partial answer seen.
            size = max(1, min([self.effective_batch_size, *answered_per_batch]))
            still, _ = self._pass(missing, result, size)
            result.unanswered.update(still)
        result.unanswered -= result.failed | result.values.keys()
        return result

    def _pass(self, ps_ids: Sequence[str], result: RealtimeResult,
              size: int | None = None) -> tuple[list[str], list[int]]:
        """Ask for every plant in batches; the plants left out, and how many each partial answer covered."""
        missing: list[str] = []
        partial: list[int] = []
        start = 0
        while start < len(ps_ids):
            batch = list(ps_ids[start:start + (size or self.effective_batch_size)])
            start += len(batch)
            left_out, accepted = self._attempt(batch, result)
            if accepted < len(batch):
                # Refused at this size, answered at `accepted`: the gateway's limit lies in between.
                result.shrunk_from = len(batch)
                self.learned_batch_size = min(self.effective_batch_size, accepted)
            if left_out and len(left_out) < len(batch):
                partial.append(len(batch) - len(left_out))
            missing.extend(left_out)
        return missing, partial

    def _attempt(self, batch: list[str], result: RealtimeResult) -> tuple[list[str], int]:
        """One batch; refused for its size, the same plants in halves. Returns the plants left out and the
        largest batch size that was answered. A batch of one that is refused raises: the request, not its size,
        is what the gateway objects to, and that must fail the pass visibly."""
        try:
            return self._batch(batch, result), len(batch)
        except ResultError as exc:
            if len(batch) <= 1 or not over_limit(exc):
                raise
        half = (len(batch) + 1) // 2
        left_out, accepted = self._attempt(batch[:half], result)
        rest = batch[half:]
        for start in range(0, len(rest), accepted):
            more, _ = self._attempt(rest[start:start + accepted], result)
            left_out.extend(more)
        return left_out, accepted

    def _batch(self, ps_ids: Sequence[str], result: RealtimeResult) -> list[str]:
        """One batch of plants over all point chunks; returns the requested plants no answer accounted for."""
        extra = self.extra_points
        requested = set(ps_ids)
        unaccounted: set[str] = set()
        for points in _chunks(self.point_ids, MAX_POINTS_PER_CALL):
            data = self.session.call(REALTIME_PATH, {"ps_id_list": list(ps_ids), "point_id_list": points,
                                                     "is_get_point_dict": "1"},
                                     require_list="device_point_list", allow_empty=True)
            entries = data.get("device_point_list") or []
            failed = requested.intersection(_id_list(data.get("fail_ps_id_list")))
            result.failed.update(failed)
            answered: set[str] = set()
            for raw in entries:
                entry = _entry(raw)
                key = _entry_ps_id(entry, requested)
                if key is None:
                    result.stray_entries += 1
                    continue
                answered.add(key)
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
            if not entries and not failed:
                # `{}`, `[]` or an empty list: the gateway has no data for these plants. Asking again would only
                # repeat that; they are counted as unanswered.
                result.empty_answers += 1
                result.unanswered.update(requested)
                continue
            unaccounted.update(requested - answered - failed)
        return [p for p in ps_ids if p in unaccounted and p not in result.failed]


def _entry(raw: Any) -> Mapping[str, Any]:
    """An entry of device_point_list: flat (the plant endpoint's documented shape), or nested under
    `device_point` (the device endpoint's shape, which a gateway may use here too)."""
    if not isinstance(raw, dict):
        return {}
    nested = raw.get("device_point")
    return {**raw, **nested} if isinstance(nested, dict) else raw


def _entry_ps_id(entry: Mapping[str, Any], requested: set[str]) -> str | None:
    """The requested plant an entry answers for: its ps_id, else the plant part of its ps_key
    (`<ps_id>_11_0_0`)."""
    key = ps_id(entry.get("ps_id"))
    if key in requested:
        return key
    ps_key = entry.get("ps_key")
    if isinstance(ps_key, str) and "_" in ps_key:
        key = ps_id(ps_key.split("_", 1)[0])
        if key in requested:
            return key
    return None


def _id_list(value: Any) -> set[str]:
    """fail_ps_id_list: a JSON list of ids (numbers or strings), or one comma-separated string (the field table
    types it "string")."""
    if isinstance(value, str):
        items: Any = value.split(",")
    elif isinstance(value, list):
        items = value
    else:
        items = [value] if value is not None else []
    out = set()
    for item in items:
        key = ps_id(item.strip() if isinstance(item, str) else item)
        if key is not None:
            out.add(key)
    return out


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])
