"""An account's counters: written by the refresh thread (through the transport's and auth's callbacks), read by
scrapes as a `data.StatsView`. Every API call also counts against the current clock hour's budget."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from ..data import StatsView


class Stats:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.api_requests: Counter[tuple[str, str]] = Counter()
        self.auth: Counter[tuple[str, str]] = Counter()
        self.refreshes: Counter[str] = Counter()
        self.unknown_units: Counter[str] = Counter()
        self.realtime_failed_plants = 0
        self.faults_dropped = 0
        self.hour = 0
        self.hour_calls = 0

    def record_request(self, endpoint: str, result: str) -> None:
        hour = int(self.clock() // 3600)
        with self.lock:
            self.api_requests[(endpoint, result)] += 1
            if hour != self.hour:
                self.hour, self.hour_calls = hour, 0
            self.hour_calls += 1

    def record_auth(self, kind: str, result: str) -> None:
        with self.lock:
            self.auth[(kind, result)] += 1

    def record_refresh(self, result: str) -> None:
        with self.lock:
            self.refreshes[result] += 1

    def record_unknown_units(self, units: list[str]) -> None:
        with self.lock:
            self.unknown_units.update(units)

    def record_realtime_failed(self, plants: int) -> None:
        with self.lock:
            self.realtime_failed_plants += plants

    def record_faults_dropped(self, records: int) -> None:
        with self.lock:
            self.faults_dropped += records

    def calls_this_hour(self, now: float) -> int:
        with self.lock:
            return self.hour_calls if int(now // 3600) == self.hour else 0

    def view(self) -> StatsView:
        now = self.clock()
        with self.lock:
            return StatsView(dict(self.api_requests), dict(self.auth), dict(self.refreshes),
                             dict(self.unknown_units), self.realtime_failed_plants,
                             self.hour_calls if int(now // 3600) == self.hour else 0, self.faults_dropped)
