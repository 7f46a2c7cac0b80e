"""The backfill's share of an account's hourly API budget, beside a running exporter.

The quota belongs to the app (appkey), and an exporter of the same account spends from it all the time. The
backfill never lets the two together spend more than the account's `api_budget_per_hour` in a clock hour (UTC,
as the exporter counts): before its calls it reads the running exporter's /metrics (about once a minute) for

- `isolarcloud_api_budget_calls_per_hour{account}`: the budget, B;
- `isolarcloud_api_calls_current_hour{account}`: what the exporter spent this hour so far, U;
- `isolarcloud_collection_budget_calls_per_hour{account}`: what its collections plan to spend per hour, E,

and makes a call only while its own calls this hour + U + E × (the rest of the hour) + a small reserve for
token refreshes stay below B. `--budget-per-hour` caps the backfill on top of that (or alone, without an
exporter). When the hour's allowance is spent it waits for the next clock hour.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

READ_EVERY = 60.0  # seconds between two readings of the exporter's /metrics
_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_WANTED = ("isolarcloud_api_budget_calls_per_hour", "isolarcloud_api_calls_current_hour",
           "isolarcloud_collection_budget_calls_per_hour", "isolarcloud_plants", "isolarcloud_plant_info")


class ExporterError(Exception):
    """The exporter's /metrics could not be read or does not serve the account: phrased for the user."""


@dataclass(frozen=True)
class ExporterReading:
    budget: float  # B: the account's api_budget_per_hour
    used: float  # U: the exporter's calls in the current clock hour
    planned: float  # E: its collections' budget shares, calls per hour
    plants: int | None  # isolarcloud_plants: the size of its current plant list
    zones: tuple[str, ...] = ()  # the plants' time zones as the API writes them (isolarcloud_plant_info)


def parse_exporter_metrics(lines: Iterable[str], account: str) -> ExporterReading:
    """The figures for `account` from a /metrics body (text format or OpenMetrics), line by line."""
    found: dict[str, float] = {}
    planned = 0.0
    zones: set[str] = set()
    for line in lines:
        if not line.startswith(_WANTED):
            continue
        match = _SAMPLE_RE.match(line)
        if not match:
            continue
        labels = dict(_LABEL_RE.findall(match.group(2) or ""))
        if labels.get("account") != account:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        name = match.group(1)
        if name == "isolarcloud_plant_info":
            zones.add(labels.get("time_zone", "").replace('\\"', '"').replace("\\\\", "\\"))
        elif name == "isolarcloud_collection_budget_calls_per_hour":
            planned += value if math.isfinite(value) else 0.0
        else:
            found[name] = value
    if "isolarcloud_api_budget_calls_per_hour" not in found:
        raise ExporterError(f"the exporter serves no account named {account!r}")
    plants = found.get("isolarcloud_plants")
    return ExporterReading(found["isolarcloud_api_budget_calls_per_hour"],
                           found.get("isolarcloud_api_calls_current_hour", 0.0), planned,
                           int(plants) if plants is not None else None, tuple(sorted(zones)))


def reserve(budget: float) -> float:
    """Calls kept free for the exporter's token refreshes and retries: 2 % of the budget, at least 2."""
    return max(2.0, 0.02 * budget)


class Pacer:
    """Decides when the backfill may make its next call; counts its calls per clock hour."""

    def __init__(self, *, budget_per_hour: int | None, exporter: Callable[[], ExporterReading] | None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        if budget_per_hour is None and exporter is None:
            raise ValueError("a budget or an exporter to read is needed")
        self.cap = budget_per_hour
        self.exporter = exporter
        self.clock = clock
        self.sleep = sleep
        self.hour = -1
        self.own = 0  # calls made in self.hour
        self.reading: ExporterReading | None = None
        self.read_at = -math.inf
        self.waited = 0.0  # seconds spent waiting for the budget

    def _roll(self, now: float) -> None:
        hour = int(now // 3600)
        if hour != self.hour:
            self.hour, self.own = hour, 0

    def read_exporter(self, now: float) -> ExporterReading | None:
        if self.exporter is not None and now - self.read_at >= READ_EVERY:
            try:
                self.reading = self.exporter()
            except Exception as exc:
                if self.reading is None:
                    raise
                # A restarting exporter spends nothing meanwhile: its last figures are the safe guess.
                log.warning("cannot read the exporter's /metrics (%s); using its figures of %.0f s ago", exc,
                            now - self.read_at)
                self.read_at = now
                return self.reading
            self.read_at = now
        return self.reading

    def allowance(self, now: float) -> float:
        """Calls the backfill may still make in the current clock hour."""
        self._roll(now)
        left = math.inf if self.cap is None else self.cap - self.own
        reading = self.read_exporter(now)
        if reading is not None:
            rest = 1.0 - (now % 3600) / 3600.0
            left = min(left, reading.budget - reading.used - reading.planned * rest - reserve(reading.budget)
                       - self.own)
        return left

    def per_hour(self) -> float:
        """The steady allowance per hour: what the time estimates divide by."""
        rates = [] if self.cap is None else [float(self.cap)]
        reading = self.reading if self.reading is not None else (self.exporter() if self.exporter else None)
        if reading is not None:
            self.reading = reading
            rates.append(reading.budget - reading.planned - reserve(reading.budget))
        return max(0.0, min(rates))

    def acquire(self) -> None:
        """Wait until a call fits this hour's allowance (`count` then counts it, and any call it brings along)."""
        while True:
            now = self.clock()
            if self.allowance(now) >= 1:
                return
            self.wait_next_hour(now, "the hour's budget is spent")

    def count(self) -> None:
        """One request made: every one counts, token refreshes and retries after a renewed token included."""
        self._roll(self.clock())
        self.own += 1

    def wait_next_hour(self, now: float, why: str) -> None:
        wait = 3600.0 - now % 3600 + 1.0
        log.info("%s: waiting %.0f s for the next clock hour", why, wait)
        self.sleep(wait)
        self.waited += wait
        self.read_at = -math.inf  # the exporter's hour rolled over too: read it again
