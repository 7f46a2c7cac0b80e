"""One account's snapshot cache: refreshed on scrape, shared by concurrent scrapes, bounded by the API budget.

A scrape calls `trigger()`: when the snapshot is due, one background refresh starts; every scrape meanwhile gets
the current snapshot at once. Only a scrape that finds no first attempt finished waits, and never past its own
timeout. Quota and credential errors back off instead of retrying; after `max_age` without success the snapshot
is withheld, so old data is never shown as fresh.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .api import IsolarcloudApi
from .auth import Auth
from .client import ApiError, CredentialError, QuotaError, ResponseError
from .config import AccountConfig, Config
from .model import POINTS, Plant, apply_legacy_values, apply_realtime, parse_plant

log = logging.getLogger(__name__)

CREDENTIAL_BACKOFF = 900.0  # wrong passwords lock accounts: never hammer the login
RETRY_FLOOR = 30.0


@dataclass(frozen=True)
class Snapshot:
    plants: tuple[Plant, ...]
    taken_at: float
    generation: int
    point_names: dict[str, tuple[str, str]] = field(default_factory=dict)  # extra point id → (name, unit)


class Stats:
    """Counters of one account, written by the refresh thread (through the transport's callbacks) and read
    by scrapes; every API call also counts against the current clock hour's budget."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.api_requests: Counter[tuple[str, str]] = Counter()
        self.auth: Counter[tuple[str, str]] = Counter()
        self.refreshes: Counter[str] = Counter()
        self.unknown_units: Counter[str] = Counter()
        self.realtime_failed_plants = 0
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

    def calls_this_hour(self, now: float) -> int:
        with self.lock:
            return self.hour_calls if int(now // 3600) == self.hour else 0

    def copy(self) -> StatsView:
        now = self.clock()
        with self.lock:
            return StatsView(dict(self.api_requests), dict(self.auth), dict(self.refreshes),
                             dict(self.unknown_units), self.realtime_failed_plants,
                             self.hour_calls if int(now // 3600) == self.hour else 0)


@dataclass(frozen=True)
class StatsView:
    api_requests: dict[tuple[str, str], int]
    auth: dict[tuple[str, str], int]
    refreshes: dict[str, int]
    unknown_units: dict[str, int]
    realtime_failed_plants: int
    calls_this_hour: int


@dataclass(frozen=True)
class AccountState:
    """What a scrape needs, copied under the lock so rendering never races a refresh."""

    name: str
    snapshot: Snapshot | None  # None when missing or older than max_age
    up: bool
    attempted: bool
    last_success: float | None
    last_attempt: float | None
    last_error: str | None
    duration: float | None
    backoff_until: float
    interval: float
    max_age: float
    budget: int
    stats: StatsView
    token_expiries: dict[str, float]


class AccountPoller:
    def __init__(self, account: AccountConfig, config: Config, api: IsolarcloudApi, auth: Auth,
                 stats: Stats, *, clock: Callable[[], float] = time.time) -> None:
        self.account = account
        self.config = config
        self.api = api
        self.auth = auth
        self.stats = stats
        self.clock = clock
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)
        self.snapshot: Snapshot | None = None
        self.generation = 0
        self.attempted = False
        self.ok = False
        self.refreshing = False
        self.last_success: float | None = None
        self.last_attempt: float | None = None
        self.last_error: str | None = None
        self.duration: float | None = None
        self.due_at = 0.0
        self.backoff_until = 0.0
        self.failures = 0
        self.log = logging.LoggerAdapter(log, {"account": account.name})
        self.on_success: Callable[[], None] | None = None  # called in the refresh thread after a new snapshot

    # -- API budget -----------------------------------------------------------------------------------

    def calls_per_refresh(self, plants: int) -> int:
        """API calls one refresh of `plants` plants costs: list pages plus real-time batches."""
        calls = max(1, math.ceil(plants / self.account.page_size))
        if self.realtime_enabled:
            point_calls = math.ceil((len(POINTS) + len(self.account.realtime.extra_points)) / 100)
            calls += math.ceil(plants / self.account.realtime.batch_size) * point_calls
        return calls

    @property
    def realtime_enabled(self) -> bool:
        # Legacy apps have no real-time endpoint; their list carries the production values instead.
        return self.account.realtime.enabled and self.auth.mode == "oauth2"

    def next_refresh_calls(self) -> int:
        """What the next refresh will cost, judged by the fleet of the current snapshot."""
        return self.calls_per_refresh(len(self.snapshot.plants) if self.snapshot else 0)

    def interval(self) -> float:
        """The configured interval, stretched so that a refresh per interval fits the hourly budget."""
        needed = self.next_refresh_calls() * 3600.0 / self.account.api_budget_per_hour
        return max(self.config.refresh_interval, needed)

    def max_age(self) -> float:
        configured = self.config.max_age or 3 * self.config.refresh_interval
        # A budget-stretched interval must not make data vanish between two successful refreshes.
        return max(configured, 2 * self.interval())

    # -- scrape side ------------------------------------------------------------------------------------

    def trigger(self) -> None:
        """Start a background refresh when one is due; returns at once."""
        now = self.clock()
        with self.lock:
            waiting = now < self.due_at or now < self.backoff_until
            # A re-authorisation (new token file) ends a credential backoff at once.
            if self.refreshing or (waiting and not (self.backoff_until > now and self.auth.renewed())):
                return
            if self.attempted and self._over_budget(now):
                return
            self.refreshing = True
        threading.Thread(target=self.refresh, name=f"refresh-{self.account.name}", daemon=True).start()

    def _over_budget(self, now: float) -> bool:
        used = self.stats.calls_this_hour(now)
        if used + self.next_refresh_calls() <= self.account.api_budget_per_hour:
            return False
        next_hour = (int(now // 3600) + 1) * 3600.0
        self.due_at = next_hour
        self.log.warning("hourly API budget of %d calls would be exceeded (%d used); next refresh at %s",
                         self.account.api_budget_per_hour, used, _iso(next_hour))
        return True

    def wait_first(self, deadline: float) -> None:
        """Block until the first refresh attempt has finished, or until `deadline` (monotonic)."""
        with self.lock:
            while not self.attempted:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.done.wait(remaining)

    def state(self) -> AccountState:
        now = self.clock()
        with self.lock:
            max_age = self.max_age()
            fresh = self.snapshot is not None and now - self.snapshot.taken_at <= max_age
            return AccountState(
                name=self.account.name,
                snapshot=self.snapshot if fresh else None,
                up=self.ok and fresh,
                attempted=self.attempted,
                last_success=self.last_success,
                last_attempt=self.last_attempt,
                last_error=self.last_error,
                duration=self.duration,
                backoff_until=self.backoff_until if self.backoff_until > now else 0.0,
                interval=self.interval(),
                max_age=max_age,
                budget=self.account.api_budget_per_hour,
                stats=self.stats.copy(),
                token_expiries=self.auth.expiries(),
            )

    # -- refresh side -------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """One refresh cycle. Runs in its own thread; never raises."""
        with self.lock:
            self.refreshing = True
        started = time.monotonic()
        now = self.clock()
        try:
            self.auth.start_cycle()
            plants, names = self._fetch()
        except ApiError as exc:
            self._failed(exc, now, time.monotonic() - started)
        except Exception as exc:  # a bug must not kill the poller; the type is enough to find it
            self.log.exception("refresh failed with an internal error")
            self._failed(ApiError("refresh", "internal_error", f"internal error ({type(exc).__name__})"),
                         now, time.monotonic() - started)
        else:
            self._succeeded(plants, names, now, time.monotonic() - started)
            if self.on_success is not None:
                try:
                    self.on_success()
                except Exception:  # the snapshot is stored; a scrape will render it
                    self.log.exception("after-refresh hook failed")

    def _fetch(self) -> tuple[list[Plant], dict[str, tuple[str, str]]]:
        listing = self.api.all_plants()
        if not listing.consistent:
            # Plants added or removed while paging shift the pages; read the list once more rather than
            # present a fleet with plants missing or doubled as the whole fleet.
            self.log.warning("plant list inconsistent (totals %s, %d distinct plants read); reading it again",
                             sorted(set(listing.totals)), len(listing.rows))
            listing = self.api.all_plants()
            if not listing.consistent and not self.account.strict_row_count:
                # The meaning of rowCount is not documented; an account may opt out of trusting it.
                self.log.warning("plant list inconsistent again; serving the %d plants read (strict_row_count "
                                 "is off)", len(listing.rows))
            elif not listing.consistent:
                raise ResponseError("list", "inconsistent_list",
                                    f"plant list inconsistent twice (totals {sorted(set(listing.totals))}, "
                                    f"{len(listing.rows)} distinct plants read); keeping the previous snapshot")
        plants: list[Plant] = []
        unknown_units: list[str] = []
        for row in listing.rows:
            plant = parse_plant(row, self.account.api_time_zone)
            if plant is None:
                continue
            if self.auth.mode == "login":
                unknown_units.extend(apply_legacy_values(plant, row))
            plants.append(plant)
        if listing.duplicates:
            self.log.warning("plant list repeated %d plants across pages; counted once", listing.duplicates)
        if listing.reported_total is not None and listing.reported_total != len(plants):
            self.log.warning("plant list reported %d plants but %d distinct plants were read",
                             listing.reported_total, len(plants))
        if unknown_units:
            self.log.warning("unknown units in the plant list, values skipped: %s", sorted(set(unknown_units)))
        failed, names = 0, {}
        if self.realtime_enabled and plants:
            failed, names = self._realtime(plants)
        with self.stats.lock:
            self.stats.unknown_units.update(unknown_units)
            self.stats.realtime_failed_plants += failed
        return plants, names

    def _realtime(self, plants: list[Plant]) -> tuple[int, dict[str, tuple[str, str]]]:
        by_id = {p.ps_id: p for p in plants}
        point_ids = [p.point_id for p in POINTS] + [
            p for p in self.account.realtime.extra_points if p not in {q.point_id for q in POINTS}]
        extra = self.account.realtime.extra_points
        size = self.account.realtime.batch_size
        failed = 0
        names: dict[str, tuple[str, str]] = {}
        ids = list(by_id)
        for start in range(0, len(ids), size):
            batch = self.api.realtime(ids[start:start + size], point_ids)
            for entry in batch.entries:
                plant = by_id.get(str(entry.get("ps_id")).strip())
                if plant is not None:
                    apply_realtime(plant, entry, extra)
            names.update({k: v for k, v in batch.point_names.items() if k in extra})
            failed += len(batch.failed)
        if failed:
            self.log.info("real-time data unavailable for %d plants (fail_ps_id_list)", failed)
        return failed, names

    def _succeeded(self, plants: list[Plant], names: dict[str, tuple[str, str]],
                   now: float, duration: float) -> None:
        with self.lock:
            self.generation += 1
            self.snapshot = Snapshot(tuple(plants), now, self.generation, names)
            self.ok = True
            self.failures = 0
            self.backoff_until = 0.0
            self.last_success = now
            self.last_error = None
            self._finish(now, duration, "success")
            self.due_at = now + self.interval()
        if not plants:
            self.log.warning("the account lists no plants: check the region (a wrong gateway authenticates and "
                             "lists nothing), the filters, or whether the authorisation was revoked")
        self.log.info("refreshed %d plants in %.2fs", len(plants), duration)

    def _failed(self, exc: ApiError, now: float, duration: float) -> None:
        with self.lock:
            self.ok = False
            self.failures += 1
            self.last_error = str(exc)
            backoff = self._backoff(exc, now)
            self.backoff_until = now + backoff if backoff else 0.0
            interval = self.interval()
            retry = min(interval, max(RETRY_FLOOR, min(interval, 60.0) * 2 ** (self.failures - 1)))
            self.due_at = max(now + retry, self.backoff_until)
            self._finish(now, duration, "error")
        level = logging.ERROR if isinstance(exc, CredentialError) else logging.WARNING
        self.log.log(level, "refresh failed: %s (result %s); next attempt at %s", exc, exc.result,
                     _iso(self.due_at))

    def _backoff(self, exc: ApiError, now: float) -> float:
        if isinstance(exc, CredentialError):
            return CREDENTIAL_BACKOFF
        if not isinstance(exc, QuotaError):
            return 0.0
        if exc.result == "E999":  # hourly quota: wait for the next clock hour
            return (math.floor(now / 3600) + 1) * 3600 - now + 60
        if exc.result == "E998":  # monthly quota: look again in a day
            return 86400.0
        return min(3600.0, 60.0 * 2 ** min(self.failures - 1, 6))

    def _finish(self, now: float, duration: float, result: str) -> None:
        self.attempted = True
        self.refreshing = False
        self.last_attempt = now
        self.duration = duration
        with self.stats.lock:
            self.stats.refreshes[result] += 1
        self.done.notify_all()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
