"""An account's counters: written by the refresh thread (through the transport's and auth's callbacks), read by
scrapes as a `data.StatsView`. Every API call also counts against the current clock hour's budget."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from ..data import StatsView


class VersionedLock:
    """A lock that counts its releases. Whatever was changed under it, a reader can tell whether anything may have
    changed since it last looked, without comparing values: scrapes reuse an account's state while nothing did.
    Readers take `raw`, which counts nothing."""

    def __init__(self) -> None:
        self.raw = threading.Lock()
        self.version = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self.raw.acquire(blocking, timeout)

    def release(self) -> None:
        self.version += 1  # still held: no writer races it
        self.raw.release()

    def locked(self) -> bool:
        return self.raw.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class Stats:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lock = VersionedLock()  # writers; readers (view, calls_this_hour) take its raw lock
        self.api_requests: Counter[tuple[str, str]] = Counter()
        self.auth: Counter[tuple[str, str]] = Counter()
        self.refreshes: Counter[str] = Counter()
        self.unknown_units: Counter[str] = Counter()
        self.realtime_failed_plants = 0
        self.faults_dropped = 0
        self.hour = 0
        self.hour_calls = 0
        self.limits: dict[str, int] = {}
        self.realtime_unanswered_plants = 0
        self.counter_drops: Counter[str] = Counter()
        self.rate_limited = 0
        self.pacing_wait = 0.0
        self.token_file_write_failures = 0
        self.token_file_error: str | None = None

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

    def record_limit(self, name: str, value: int) -> None:
        """An effective limit of the account's gateway (page_size, realtime_batch_size)."""
        with self.lock:
            self.limits[name] = value

    def record_realtime_unanswered(self, plants: int) -> None:
        with self.lock:
            self.realtime_unanswered_plants += plants

    def record_counter_drops(self, drops: Counter[str]) -> None:
        with self.lock:
            self.counter_drops.update(drops)

    def record_pace(self, event: str, amount: float) -> None:
        """The transport's pacing events: a 429 answer, or seconds a call waited for the gateway's pace."""
        with self.lock:
            if event == "rate_limited":
                self.rate_limited += int(amount)
            elif event == "wait":
                self.pacing_wait += amount

    def record_token_write(self, error: str | None) -> None:
        """After a token file write: None when it succeeded, else why it failed (until a write succeeds)."""
        with self.lock:
            if error is not None:
                self.token_file_write_failures += 1
            self.token_file_error = error

    def record_faults_dropped(self, records: int) -> None:
        with self.lock:
            self.faults_dropped += records

    def calls_this_hour(self, now: float) -> int:
        with self.lock.raw:
            return self.hour_calls if int(now // 3600) == self.hour else 0

    def view(self) -> StatsView:
        now = self.clock()
        with self.lock.raw:
            return StatsView(dict(self.api_requests), dict(self.auth), dict(self.refreshes),
                             dict(self.unknown_units), self.realtime_failed_plants,
                             self.hour_calls if int(now // 3600) == self.hour else 0,
                             limits=dict(self.limits), realtime_unanswered_plants=self.realtime_unanswered_plants,
                             counter_drops=dict(self.counter_drops), rate_limited=self.rate_limited,
                             pacing_wait=self.pacing_wait,
                             token_file_write_failures=self.token_file_write_failures,
                             token_file_error=self.token_file_error, faults_dropped=self.faults_dropped)
