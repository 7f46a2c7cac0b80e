"""What a collection is: one kind of data fetched for an account at its own cadence, at its own cost.

The engine (`engine.py`) runs an account's collections in priority order whenever one is due and shares the
account's hourly budget among them (`budget.py`). A collection only knows its own API family: what a pass
costs, when it is due, and how to fetch and publish its data (immutable objects from `exporter.data`, under
named slots such as "plants" or "production").

Two kinds:
- `PassCollection`: one whole pass when due (plant list, real-time data, open faults): cheap per item, or only
  meaningful as a whole.
- `SpreadCollection`: per-item passes spread evenly over a long interval (plant details, device inventory):
  each cycle fetches the items whose turn has come, within a token bucket filled at the collection's share of
  the budget, so that a daily pass over 10,000 plants never spends a burst of calls.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from ..data import PlantList
from .budget import Demand, Share


@dataclass
class Cycle:
    """What a collection's run sees of its account."""

    now: float
    plants: PlantList | None  # the newest plant list (this cycle's, when the plant list ran first)
    next_generation: Callable[[], int]  # a new generation number for each published object


Published = Mapping[str, object]  # slot name → data object


def max_age(configured: float | None, wanted: float, effective: float) -> float:
    """How old a collection's data (or, for a spread collection, one item's) may grow before it is withheld: the
    configured max_age, else 3 x the wanted interval; never less than 2 x the effective (budget-stretched)
    interval, so that data does not vanish between two successful passes."""
    return max(configured or 3 * wanted, 2 * effective)


class Collection(ABC):
    name: ClassVar[str]
    slots: ClassVar[tuple[str, ...]]  # the data slots it publishes
    # Endpoints only this collection calls: a refusal of one of them (E900, DeniedError) fails this collection
    # alone instead of the account (the plant list's refusal always concerns the account).
    endpoints: ClassVar[tuple[str, ...]] = ()
    min_share: float = 0.0

    @abstractmethod
    def wanted_interval(self) -> float:
        """Seconds between passes as configured."""

    @abstractmethod
    def calls_per_pass(self, plants: int) -> int:
        """Calls one full pass costs for an account of `plants` plants."""

    def enabled(self) -> bool:
        return True

    def demand(self, cycle: Cycle) -> Demand:
        """What the collection wants of the budget, judged by the account's current plant list."""
        plants = len(cycle.plants.plants) if cycle.plants else 0
        return Demand(self.name, self.calls_per_pass(plants), self.wanted_interval(), self.min_share)

    @abstractmethod
    def planned_calls(self, cycle: Cycle, share: Share) -> int:
        """What running now would cost; 0 when nothing is to be fetched (the engine then skips the run)."""

    @abstractmethod
    def run(self, cycle: Cycle, share: Share) -> Published:
        """Fetch and return the new data objects; raise ApiError on failure (published data stays as it was)."""

    def idle(self, cycle: Cycle) -> Published:
        """When nothing is to be fetched (planned_calls 0): data objects that are current without a call, to
        publish as a successful run; by default none (the run is skipped)."""
        return {}

    def next_due(self, now: float, share: Share, cycle_interval: float) -> float:
        """When to run again after a successful run: one effective interval later."""
        return now + share.interval


class PassCollection(Collection):
    """A whole pass every time it is due (the engine decides when, from the effective interval)."""

    def planned_calls(self, cycle: Cycle, share: Share) -> int:
        return self.calls_per_pass(len(cycle.plants.plants) if cycle.plants else 0)


@dataclass
class TokenBucket:
    """Calls a spread collection may make for its steady passes: refilled at its share of the budget, at most an
    hour's worth (and at least one call) in store. Empty at start: a start-up backlog is paid from the budget's
    spare part (see `budget.py`), never from a burst of the collection's own share."""

    tokens: float = 0.0
    updated: float | None = None

    def refill(self, now: float, per_hour: float) -> float:
        capacity = max(1.0, per_hour)
        if self.updated is not None:
            self.tokens += max(0.0, now - self.updated) * per_hour / 3600.0
        self.tokens = min(self.tokens, capacity)
        self.updated = now
        return self.tokens

    def spend(self, calls: float) -> None:
        self.tokens -= calls


@dataclass
class ItemSchedule:
    """When each item (plant, device) is next due. An item never fetched is due at once; a fetched one again
    one interval later. Items first fetched together (at start-up) get staggered next turns, spread evenly over
    the interval, so that the following passes come as a steady trickle instead of one burst per interval."""

    next_due: dict[str, float] = field(default_factory=dict)

    def due(self, items: Iterable[str], now: float) -> list[str]:
        """Due items: never fetched first (in the given order), then the most overdue."""
        new: list[str] = []
        old: list[tuple[float, str]] = []
        for item in items:
            when = self.next_due.get(item)
            if when is None:
                new.append(item)
            elif when <= now:
                old.append((when, item))
        old.sort()
        return new + [item for _when, item in old]

    def backlog(self, items: Iterable[str]) -> int:
        return sum(1 for item in items if item not in self.next_due)

    def done(self, fetched: Sequence[str], now: float, interval: float, *, stagger: bool) -> None:
        """Record a fetch. With `stagger`, the k-th of n items is next due at now + interval * (k + 1) / n."""
        n = len(fetched)
        for k, item in enumerate(fetched):
            step = interval * (k + 1) / n if stagger and math.isfinite(interval) else interval
            self.next_due[item] = now + step

    def forget(self, keep: Iterable[str]) -> None:
        """Drop items no longer listed (plants removed from the account)."""
        keep_set = set(keep)
        for item in [i for i in self.next_due if i not in keep_set]:
            del self.next_due[item]


class SpreadCollection(Collection):
    """Fetches items in groups (`items_per_call` per call), each item once per effective interval, within a
    token bucket filled at the collection's share. Subclasses say what the items are and how to fetch a group."""

    items_per_call: ClassVar[int] = 1

    def __init__(self) -> None:
        self.schedule = ItemSchedule()
        self.bucket = TokenBucket()
        self._backlog_hour = -1  # the clock hour of _backlog_spent
        self._backlog_spent = 0  # calls spent on the backlog in that hour, beyond the bucket

    @abstractmethod
    def items(self, cycle: Cycle) -> list[str]:
        """Every item of the account now (e.g. every ps_id of the plant list)."""

    @abstractmethod
    def fetch(self, cycle: Cycle, items: list[str]) -> Published:
        """Fetch these items and return the merged data objects (the previous data plus these items)."""

    def calls_per_pass(self, plants: int) -> int:
        return math.ceil(plants / self.items_per_call)

    def demand(self, cycle: Cycle) -> Demand:
        items = self.items(cycle)
        return Demand(self.name, math.ceil(len(items) / self.items_per_call), self.wanted_interval(),
                      self.min_share, math.ceil(self.schedule.backlog(items) / self.items_per_call))

    def next_due(self, now: float, share: Share, cycle_interval: float) -> float:
        """Every cycle of the plant list: each takes the items whose turn has come."""
        return now + cycle_interval

    def _selection(self, cycle: Cycle, share: Share) -> list[str]:
        items = self.items(cycle)
        self.schedule.forget(items)
        due = self.schedule.due(items, cycle.now)
        # Steady passes spend what the bucket holds; a backlog (items never fetched) may also spend what the
        # budget has to spare, once per clock hour: the allocation grants it per hour, from what nobody else needs.
        calls = int(self.bucket.refill(cycle.now, share.calls_per_hour)) + self._backlog_left(cycle.now, share)
        return due[:calls * self.items_per_call]

    def _backlog_left(self, now: float, share: Share) -> int:
        """The backlog's calls now: what it wants, within what the budget has to spare in this clock hour once
        (what was spent on it earlier this hour counts)."""
        hour = int(now // 3600)
        if hour != self._backlog_hour:
            self._backlog_hour, self._backlog_spent = hour, 0
        return min(int(share.backlog_per_hour), max(0, int(share.spare_per_hour) - self._backlog_spent))

    def planned_calls(self, cycle: Cycle, share: Share) -> int:
        return math.ceil(len(self._selection(cycle, share)) / self.items_per_call)

    def run(self, cycle: Cycle, share: Share) -> Published:
        chosen = self._selection(cycle, share)
        first_pass = not self.schedule.next_due
        published = self.fetch(cycle, chosen)
        calls = math.ceil(len(chosen) / self.items_per_call)
        from_bucket = min(calls, int(max(0.0, self.bucket.tokens)))
        self.bucket.spend(from_bucket)
        self._backlog_left(cycle.now, share)  # starts a new hour's count when the hour changed
        self._backlog_spent += calls - from_bucket
        self.schedule.done(chosen, cycle.now, share.interval, stagger=first_pass)
        return published
