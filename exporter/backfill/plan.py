"""What a backfill run fetches: the plants, their zones, the days, and the exact calls, in the order they are made.

The order is time first (day, window or chunk of days, then batch of plants, then group of points), so that every
series' samples come out in increasing time, as a TSDB appender wants them, and so that an interrupted run has
every plant's earlier days. `len(plan)` equals the call arithmetic of `fetch/history.py` exactly (tests pin it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from ..data import Plant, Quantity
from ..fetch.history import (
    DAILY_PATH,
    DAILY_QUANTITIES,
    MINUTE_PATH,
    POINT_QUANTITIES,
    batches,
    daily_calls,
    day_chunks,
    minute_calls,
    minute_windows,
    point_groups,
)
from ..fetch.parse import zone_offset

# --resolution → minute_interval of the minute endpoint; 1d uses the daily endpoint.
RESOLUTIONS: Mapping[str, int | None] = {"5m": 5, "15m": 15, "1h": 60, "1d": None}
HEAD_MARGIN = timedelta(hours=3)  # Prometheus' head block covers the last ~2-3 h: never backfill into it


@dataclass(frozen=True)
class Unit:
    """One call of the plan."""

    index: int
    day: int  # days since the plan's first day (of the unit's first day): for progress
    batch: tuple[str, ...]
    quantities: tuple[Quantity, ...]
    start: datetime  # local, naive: the window (minute data) or the first day (daily data)
    end: datetime


def plant_zones(plants: Sequence[Plant], api_time_zone: str) -> tuple[dict[str, timezone], list[Plant]]:
    """Each plant's offset for the API's local stamps (the `api_time_zone` setting), and the plants without one
    (an unreadable `ps_current_time_zone` under `plant`): their samples cannot be placed in time."""
    zones: dict[str, timezone] = {}
    unplaced = []
    for plant in plants:
        tz = zone_offset(api_time_zone, plant.time_zone)
        if tz is None:
            unplaced.append(plant)
        else:
            zones[plant.ps_id] = tz
    return zones, unplaced


def last_complete_day(now: float, zones: Sequence[timezone]) -> date:
    """The latest local day that ended at least 3 hours ago in every zone: the history endpoints give nothing
    for the current day, and Prometheus' head block must not be backfilled."""
    cutoff = now - HEAD_MARGIN.total_seconds()
    return min(datetime.fromtimestamp(cutoff, tz).date() for tz in (zones or [timezone.utc])) - timedelta(days=1)


@dataclass(frozen=True)
class Plan:
    ps_ids: tuple[str, ...]
    first: date
    last: date
    resolution: str

    @property
    def minute_interval(self) -> int | None:
        return RESOLUTIONS[self.resolution]

    @property
    def path(self) -> str:
        return DAILY_PATH if self.minute_interval is None else MINUTE_PATH

    @property
    def quantities(self) -> tuple[Quantity, ...]:
        return DAILY_QUANTITIES if self.minute_interval is None else POINT_QUANTITIES

    @property
    def days(self) -> int:
        return max(0, (self.last - self.first).days + 1)

    def __len__(self) -> int:
        if self.minute_interval is None:
            return daily_calls(len(self.ps_ids), self.days, len(self.quantities))
        return minute_calls(len(self.ps_ids), self.days, len(self.quantities))

    def units(self, skip: int = 0) -> Iterator[Unit]:
        """The calls in order, from the `skip`-th on (a resumed run)."""
        groups = point_groups(self.quantities)
        plant_batches = [tuple(b) for b in batches(self.ps_ids)]
        index = 0
        if self.minute_interval is None:
            periods = [(datetime.combine(a, datetime.min.time()), datetime.combine(b, datetime.min.time()))
                       for a, b in day_chunks(self.first, self.last)]
        else:
            periods = [w for offset in range(self.days) for w in minute_windows(self.first + timedelta(days=offset))]
        for start, end in periods:
            day = (start.date() - self.first).days
            for batch in plant_batches:
                for group in groups:
                    if index >= skip:
                        yield Unit(index, day, batch, group, start, end)
                    index += 1
