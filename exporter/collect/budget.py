"""The hourly API budget of an account, shared by its collections by priority. Pure arithmetic, no I/O.

Each collection wants a number of calls per hour: the calls of one full pass over its items at its wanted
interval, plus (for collections that fetch item by item) a backlog of items never fetched yet. The budget is
shared in three rounds:

1. every collection after the first is guaranteed its steady want up to `min_share` of the budget (its floor),
   so that none starves, however short the budget;
2. what is left goes to the steady wants in priority order (the plant list first);
3. only what is still left pays for backlogs, again in priority order: catching up never slows the plant list.

A collection whose share is below its steady want stretches: its effective interval is the time its share
needs for one pass. The shares never add up to more than the budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Demand:
    name: str
    calls_per_pass: float  # calls one full pass over the collection's items costs
    interval: float  # wanted seconds between passes (> 0)
    min_share: float = 0.0  # fraction of the budget guaranteed while wanted; ignored for the first collection
    backlog_calls: float = 0.0  # calls for items never fetched, wanted within the hour on top of the passes

    @property
    def calls_per_hour(self) -> float:
        return self.calls_per_pass * 3600.0 / self.interval if self.calls_per_pass > 0 else 0.0


@dataclass(frozen=True)
class Share:
    name: str
    calls_per_hour: float  # for passes at the effective interval
    backlog_per_hour: float  # for catching up, on top
    interval: float  # effective interval of one pass: the wanted one, or longer when the share is short
    spare_per_hour: float = 0.0  # what the budget had to spare before this collection's backlog was granted

    @property
    def total_per_hour(self) -> float:
        return self.calls_per_hour + self.backlog_per_hour


def allocate(budget: float, demands: Sequence[Demand]) -> list[Share]:
    """Shares of `budget` calls per hour for `demands`, given in priority order."""
    wants = [d.calls_per_hour for d in demands]
    floors = [0.0] + [min(w, max(0.0, d.min_share) * budget) for d, w in zip(demands[1:], wants[1:], strict=True)]
    reserved = sum(floors)
    if reserved > budget:  # min shares that add up to more than the budget: scale them down, never overspend
        floors = [f * budget / reserved for f in floors]
        reserved = budget
    pool = budget - reserved
    steady = []
    for want, floor in zip(wants, floors, strict=True):
        extra = min(max(0.0, want - floor), pool)
        pool -= extra
        steady.append(floor + extra)
    shares = []
    for demand, want, got in zip(demands, wants, steady, strict=True):
        spare = pool
        backlog = min(max(0.0, demand.backlog_calls), pool)
        pool -= backlog
        if want <= 0 or got >= want * (1 - 1e-9):
            interval = demand.interval
        elif got > 0:
            interval = demand.calls_per_pass * 3600.0 / got
        else:
            interval = math.inf
        shares.append(Share(demand.name, got, backlog, interval, spare))
    return shares
