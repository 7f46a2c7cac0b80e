"""One account's collections, refreshed on scrape, shared by concurrent scrapes, bounded by the API budget.

A scrape calls `trigger()`: when a collection is due, one background cycle starts and runs every due collection
in priority order (the plant list first); every scrape meanwhile gets the current data at once. Only a scrape
that finds no first attempt finished waits, and never past its own timeout. The hourly budget is shared by
priority (`budget.py`): lower collections stretch first; a collection whose next run would overrun the current
hour waits for the next one. Quota and credential errors back off the whole account; after its max_age
without success a collection's data is withheld, so old data is never shown as fresh.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..data import DATA_SLOTS, AccountState, ApiQuota, CollectionState, PlantList
from ..fetch.auth import Auth, OAuth2Auth
from ..fetch.envelope import ApiError, CredentialError, DeniedError, QuotaError, TokenError
from ..fetch.session import ApiSession
from .budget import Share, allocate
from .collection import Collection, Cycle, max_age
from .stats import Stats, VersionedLock

log = logging.getLogger(__name__)

CREDENTIAL_BACKOFF = 900.0  # wrong passwords lock accounts: never hammer the login
KEEPALIVE_GAP = 86400.0  # at most one background renewal of a refresh token per account and day
RETRY_FLOOR = 30.0
# Errors that concern the whole app or account, not one endpoint: the cycle stops and the account backs off.
ACCOUNT_ERRORS = (CredentialError, QuotaError, TokenError)
# Generations are unique in the process, not per engine: an account restarted by a reload gets a new engine,
# whose data must never match what the exposition cached for its predecessor.
_GENERATIONS = itertools.count(1)


@dataclass(frozen=True)
class Settings:
    """What the engine needs of the configuration."""

    name: str
    gateway: str
    budget: int  # API calls per hour
    max_age: float | None  # configured; None = 3 x each collection's wanted interval
    # An OAuth2 refresh token with less than this left is renewed in the background (`keepalive`).
    refresh_token_renew_before: float = 14 * 86400.0
    # `api_budget_per_hour: auto`: the budget is the app's quota (the "quota" slot) less this margin, and
    # `budget` until the quota is known.
    budget_auto: bool = False
    budget_margin: float = 0.2


@dataclass
class _Outcome:
    """What one cycle did."""

    ran: list[str] = field(default_factory=list)
    errors: list[ApiError] = field(default_factory=list)
    account_error: ApiError | None = None  # the first error that concerns the whole account
    published: bool = False
    deferred: bool = False  # the plant list waits for the next hour's budget


@dataclass
class _Run:
    """The engine's record of one collection."""

    next_due: float = 0.0
    failures: int = 0
    up: bool = False
    last_success: float | None = None
    last_attempt: float | None = None
    last_error: str | None = None
    deferred_hour: int = -1  # the clock hour for which a budget deferral was last logged


class AccountEngine:
    def __init__(self, settings: Settings, session: ApiSession, collections: Sequence[Collection], stats: Stats,
                 *, clock: Callable[[], float] = time.time) -> None:
        if not collections:
            raise ValueError("an account needs at least its plant-list collection")
        self.settings = settings
        self.session = session
        self.auth: Auth = session.auth
        self.collections = list(collections)
        self.stats = stats
        self.clock = clock
        self.lock = VersionedLock()  # every change of the engine's state is made under it; state() reads raw
        self.done = threading.Condition(self.lock)  # type: ignore[arg-type]
        # The last state() and what it depends on: (lock and stats versions, clock hour, token expiries), the
        # time it turns (a slot going stale, a back-off ending), the state. Scrapes reuse it while nothing moved.
        self._state_cache: tuple[tuple[object, ...], float, AccountState] | None = None
        self.runs = {c.name: _Run() for c in self.collections}
        unknown = {slot for c in self.collections for slot in c.slots} - DATA_SLOTS
        if unknown:  # every slot a collection publishes is a field of AccountState, so the serve side sees it
            raise ValueError(f"collections publish slots that AccountState lacks: {sorted(unknown)}")
        self.slots: dict[str, tuple[str, object]] = {}  # slot → (collection that published it, data)
        self.generation = 0
        self.attempted = False
        self.running = False
        self.last_attempt: float | None = None
        self.last_error: str | None = None
        self.duration: float | None = None
        self.backoff_until = 0.0
        self.account_failures = 0
        self.shares = self._allocate(self.clock())
        self.log = logging.LoggerAdapter(log, {"account": settings.name})
        self.on_success: Callable[[], None] | None = None  # called in the refresh thread after new data
        self.closed = False  # retired by a reload: no new cycle starts, a running one stops after its collection
        self.last_keepalive: float | None = None  # when a background renewal was last attempted

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def primary(self) -> Collection:
        return self.collections[0]

    # -- budget -----------------------------------------------------------------------------------------------

    def _cycle(self, now: float) -> Cycle:
        return Cycle(now, self._data("plants"), self._next_generation)  # type: ignore[arg-type]

    def _next_generation(self) -> int:
        with self.lock:
            self.generation = next(_GENERATIONS)
            return self.generation

    def _budget(self) -> int:
        """The hourly budget the account's calls must fit: the configured one, or with `auto` the app's quota
        less the margin. The last quota answer counts however old it is (a limit is configuration, not a
        measurement); before the first one the configured fallback does."""
        if self.settings.budget_auto:
            allowance = self._allowance()
            if allowance:
                return max(1, math.floor(allowance * (1.0 - self.settings.budget_margin)))
        return self.settings.budget

    def _allocate(self, now: float) -> dict[str, Share]:
        cycle = self._cycle(now)
        active = [c for c in self.collections if c.enabled()]
        shares = allocate(self._budget(), [c.demand(cycle) for c in active])
        return {share.name: share for share in shares}

    def _share(self, collection: Collection) -> Share:
        share = self.shares.get(collection.name)
        interval = collection.wanted_interval()
        return share if share is not None else Share(collection.name, 0.0, 0.0, interval)

    def _max_age(self, collection: Collection) -> float:
        return max_age(self.settings.max_age, collection.wanted_interval(), self._share(collection).interval)

    # -- scrape side ------------------------------------------------------------------------------------------

    def due_at(self) -> float:
        return min((self.runs[c.name].next_due for c in self.collections if c.enabled()), default=math.inf)

    def trigger(self) -> None:
        """Start a background cycle when a collection is due; returns at once."""
        now = self.clock()
        # Every scrape looks: under the raw lock, so that looking does not count as a change (see state()).
        with self.lock.raw:
            if self.running or self.closed:
                return
            if self.backoff_until > now and self.auth.renewed():
                # A re-authorisation (new token file) ends a credential backoff at once.
                self.backoff_until = 0.0
                for run in self.runs.values():
                    run.next_due = min(run.next_due, now)
                self.lock.version += 1
            elif now < self.due_at() or now < self.backoff_until:
                return
            self.running = True
        threading.Thread(target=self.refresh, name=f"refresh-{self.name}", daemon=True).start()

    def wait_first(self, deadline: float) -> None:
        """Block until the first cycle has finished, or until `deadline` (monotonic)."""
        if self.attempted:  # every scrape after the first: no lock needed to read a flag that only turns True
            return
        with self.lock:
            while not self.attempted:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.done.wait(remaining)

    def _data(self, slot: str) -> object | None:
        entry = self.slots.get(slot)
        return entry[1] if entry is not None else None

    def _fresh(self, slot: str, now: float, max_ages: dict[str, float] | None = None) -> object | None:
        entry = self.slots.get(slot)
        if entry is None:
            return None
        producer, data = entry
        max_age = (max_ages[producer] if max_ages is not None
                   else self._max_age(next(c for c in self.collections if c.name == producer)))
        return data if now - getattr(data, "taken_at", 0.0) <= max_age else None

    def state(self) -> AccountState:
        now = self.clock()
        key = (self.lock.version, self.stats.lock.version, int(now // 3600),
               tuple(sorted(self.auth.expiries().items())))
        cached = self._state_cache
        if cached is not None and cached[0] == key and now < cached[1]:
            return cached[2]
        state, turns = self._state(now)
        self._state_cache = (key, turns, state)
        return state

    def _state(self, now: float) -> tuple[AccountState, float]:
        """The state at `now`, and when it would change by the clock alone."""
        with self.lock.raw:
            primary = self.runs[self.primary.name]
            # Computed once per scrape: each collection's max_age and share, each slot's freshness.
            max_ages = {c.name: self._max_age(c) for c in self.collections}
            fresh = {slot: self._fresh(slot, now, max_ages) for slot in self.slots}
            plants = fresh.get("plants")
            collections = []
            for c in self.collections:
                if not c.enabled():
                    continue
                run, share = self.runs[c.name], self._share(c)
                current = all(fresh[slot] is not None for slot in c.slots
                              if slot in fresh and self.slots[slot][0] == c.name)
                collections.append(CollectionState(
                    name=c.name, up=run.up and run.last_success is not None and current,
                    interval=share.interval, wanted_interval=c.wanted_interval(),
                    calls_per_hour=share.total_per_hour, max_age=max_ages[c.name],
                    last_success=run.last_success, last_attempt=run.last_attempt, last_error=run.last_error,
                    next_due=max(run.next_due, self.backoff_until) if run.last_attempt is not None else None))
            data = {slot: fresh.get(slot) for slot in DATA_SLOTS if slot != "plants"}
            turns = min([getattr(self.slots[slot][1], "taken_at", 0.0) + max_ages[self.slots[slot][0]]
                         for slot, value in fresh.items() if value is not None]
                        + [self.backoff_until if self.backoff_until > now else math.inf])
            next_attempt = max(self.due_at(), self.backoff_until)
            return AccountState(
                name=self.name,
                auth_mode=self.auth.mode,
                gateway=self.settings.gateway,
                plants=plants,  # type: ignore[arg-type]
                **data,  # type: ignore[arg-type]
                up=primary.up and plants is not None,
                attempted=self.attempted,
                last_success=primary.last_success,
                last_attempt=self.last_attempt,
                last_error=self.last_error,
                duration=self.duration,
                backoff_until=self.backoff_until if self.backoff_until > now else 0.0,
                interval=self._share(self.primary).interval,
                max_age=max_ages[self.primary.name],
                budget=self._budget(),
                stats=self.stats.view(),
                token_expiries=self.auth.expiries(),
                collections=tuple(collections),
                next_attempt=next_attempt if math.isfinite(next_attempt) and not self.closed else None,
            ), turns

    # -- refresh side -----------------------------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> None:
        """One cycle: every due collection (with `force`: every collection) in priority order. Runs in its own
        thread, or synchronously where a caller wants the data now; never raises."""
        with self.lock:
            self.running = True
        started = time.monotonic()
        now = self.clock()
        outcome = _Outcome()
        try:
            self.auth.start_cycle()
            self.shares = self._allocate(now)
            for collection in self.collections:
                if self.closed:
                    break  # retired by a reload: its successor fetches from now on
                if not collection.enabled() or (now < self.runs[collection.name].next_due and not force):
                    continue
                error = self._run(collection, now, outcome)
                if collection is self.primary and error is None:
                    self.shares = self._allocate(now)  # the others' demands follow the new plant list
                if error is not None and self._account_wide(collection, error) and outcome.account_error is None:
                    outcome.account_error = error
                if error is not None and (outcome.account_error is error or collection is self.primary):
                    # The others would fail alike, or work on an outdated list: they wait for the plant list.
                    retry = self.runs[collection.name].next_due
                    with self.lock:
                        for run in self.runs.values():
                            run.next_due = max(run.next_due, retry)
                    break
            self.shares = self._allocate(now)
        finally:
            self._finish(now, time.monotonic() - started, outcome)

    def _account_wide(self, collection: Collection, error: ApiError) -> bool:
        """Whether an error concerns the whole account (back off, stop the cycle) or only this collection: an
        endpoint the app may not call (E900) is that collection's failure unless it is the plant list's."""
        if isinstance(error, DeniedError) and collection is not self.primary and error.endpoint in collection.endpoints:
            return False
        return isinstance(error, ACCOUNT_ERRORS)

    def _run(self, collection: Collection, now: float, outcome: _Outcome) -> ApiError | None:
        run = self.runs[collection.name]
        share = self._share(collection)
        cycle = self._cycle(now)
        try:
            planned = collection.planned_calls(cycle, share)
        except Exception:  # a bug must not kill the engine
            self.log.exception("collection %s failed to plan its run", collection.name)
            planned = 0
        if planned <= 0:
            try:
                idle = collection.idle(cycle)
            except Exception:  # a bug must not kill the engine
                self.log.exception("collection %s failed to republish its data", collection.name)
                idle = {}
            with self.lock:
                for slot, data in idle.items():
                    self.slots[slot] = (collection.name, data)
                if idle:  # its data is current without a call: a successful run at no cost
                    run.up, run.failures, run.last_error = True, 0, None
                    run.last_success = run.last_attempt = now
                run.next_due = now + min(share.interval, self.primary.wanted_interval())
            if idle:
                outcome.published = True
            return None
        used = self.stats.calls_this_hour(now)
        if used + planned > self._budget():
            self._defer(collection, run, now, used, planned)
            if collection is self.primary:
                outcome.deferred = True
            return None
        outcome.ran.append(collection.name)
        try:
            published = collection.run(cycle, share)
        except ApiError as exc:
            self._failed(collection, run, exc, now)
            outcome.errors.append(exc)
            return exc
        except Exception as exc:  # a bug must not kill the engine; the type is enough to find it
            self.log.exception("collection %s failed with an internal error", collection.name)
            error = ApiError(collection.name, "internal_error", f"internal error ({type(exc).__name__})")
            self._failed(collection, run, error, now)
            outcome.errors.append(error)
            return error
        budget = self._budget()
        with self.lock:
            for slot, data in published.items():
                self.slots[slot] = (collection.name, data)
            run.up, run.failures, run.last_error = True, 0, None
            run.last_success = run.last_attempt = now
            run.next_due = collection.next_due(now, self._share(collection), self.primary.wanted_interval())
        outcome.published = True
        if self._budget() != budget:
            self.log.info("hourly API budget now %d calls (api_budget_per_hour auto: the app's quota of %s calls "
                          "per hour less %g%%)", self._budget(), self._allowance(),
                          100 * self.settings.budget_margin)
        return None

    def _allowance(self) -> int | None:
        quota = self._data("quota")
        return quota.hourly_allowance() if isinstance(quota, ApiQuota) else None

    def _defer(self, collection: Collection, run: _Run, now: float, used: int, planned: int) -> None:
        hour = int(now // 3600)
        next_hour = (hour + 1) * 3600.0
        with self.lock:
            run.next_due = next_hour
            logged, run.deferred_hour = run.deferred_hour == hour, hour
        if not logged:
            self.log.warning("hourly API budget of %d calls would be exceeded by %s (%d calls; %d used); it runs "
                             "again at %s", self._budget(), collection.name, planned, used, _iso(next_hour))

    def _failed(self, collection: Collection, run: _Run, exc: ApiError, now: float) -> None:
        with self.lock:
            run.up = False
            run.failures += 1
            run.last_attempt = now
            run.last_error = str(exc)
            interval = self._share(collection).interval
            retry = min(interval, max(RETRY_FLOOR, min(interval, 60.0) * 2 ** (run.failures - 1)))
            if isinstance(exc, DeniedError):  # a permission changes by a human's hand on the portal, not soon
                retry = max(retry, CREDENTIAL_BACKOFF)
            run.next_due = now + retry

    def _finish(self, now: float, duration: float, outcome: _Outcome) -> None:
        error = outcome.errors[0] if outcome.errors else None
        primary_ran = self.primary.name in outcome.ran
        with self.lock:
            if outcome.account_error is not None:
                self.account_failures += 1
                backoff = self._backoff(outcome.account_error, now)
                self.backoff_until = now + backoff if backoff else 0.0
                for run in self.runs.values():
                    run.next_due = max(run.next_due, self.backoff_until)
            elif primary_ran and error is None:
                self.account_failures = 0
                self.backoff_until = 0.0
            if outcome.ran or outcome.deferred:
                self.attempted = True
                self.last_attempt = now
            if outcome.ran:
                self.duration = duration
                if error is not None:
                    self.last_error = str(error)
                elif primary_ran:
                    self.last_error = None
            self.running = False
            self.done.notify_all()
            due = self.due_at()
        if self.closed:
            # Retired during this cycle: what it fetched goes nowhere, and its connections can go now.
            self.log.debug("retired engine finished its last cycle")
            self.session.close()
            return
        if outcome.ran:
            self.stats.record_refresh("error" if error is not None else "success")
        if error is not None:
            level = logging.ERROR if isinstance(outcome.account_error, CredentialError) else logging.WARNING
            self.log.log(level, "refresh failed: %s (result %s); next attempt at %s", error, error.result,
                         _iso(due))
        elif outcome.ran:
            plants = self._data("plants")
            count = len(plants.plants) if isinstance(plants, PlantList) else 0
            self.log.info("refreshed %s (%d plants) in %.2fs", ", ".join(outcome.ran), count, duration)
        if outcome.published and self.on_success is not None:
            try:
                self.on_success()
            except Exception:  # the data is stored; a scrape will render it
                self.log.exception("after-refresh hook failed")

    def _backoff(self, exc: ApiError, now: float) -> float:
        if isinstance(exc, CredentialError):
            return CREDENTIAL_BACKOFF
        if not isinstance(exc, QuotaError):
            return 0.0
        if exc.result == "E999":  # hourly quota: wait for the next clock hour
            return (math.floor(now / 3600) + 1) * 3600 - now + 60
        if exc.result == "E998":  # monthly quota: look again in a day
            return 86400.0
        return min(3600.0, 60.0 * 2 ** min(self.account_failures - 1, 6))

    def retire(self, timeout: float) -> bool:
        """Stop for good because a reload replaces this account's engine: no new cycle, a running one ends after
        its current collection, and the credentials are released (a token refresh in flight first saves its
        token, within `timeout`), so the successor is the token file's only owner. False, and nothing stopped,
        when a rotated token exists only in memory: retiring would lose it."""
        with self.lock:
            self.closed = True
        if not self.auth.release(timeout):
            with self.lock:
                self.closed = False
            return False
        with self.lock:
            idle = not self.running
        if idle:
            self.session.close()
        return True

    def close(self, grace: float = 0.6) -> None:
        """Stop: let a token rotation in flight save its new refresh token (within `grace` seconds)."""
        self.auth.settle(grace)
        self.session.close()

    # -- keep-alive -------------------------------------------------------------------------------------------
    # Cycles run only when scrapes trigger them, and a cycle rotates the refresh token only when the access
    # token needs renewing. An exporter nobody scrapes (Prometheus down over a holiday) would let its 30-day
    # refresh token lapse, and only the plant owner could authorise again. A small thread (app.Exporter) asks
    # every engine now and then whether to renew; the decision and the renewal live here, clock-driven, so
    # that they are tested without waiting for days.

    def keepalive_due(self) -> bool:
        """An OAuth2 refresh token that would lapse within `refresh_token_renew_before`: renew it now? Never
        twice within a day, never while a cycle runs or the account backs off, only within the hourly budget."""
        if not isinstance(self.auth, OAuth2Auth):
            return False  # a login account logs in again with its password: nothing lapses
        now = self.clock()
        expires = self.auth.expiries().get("refresh")
        if expires is None or expires - now >= self.settings.refresh_token_renew_before:
            return False
        with self.lock:
            if self.running or now < self.backoff_until:
                return False
            if self.last_keepalive is not None and now - self.last_keepalive < KEEPALIVE_GAP:
                return False
        return self.stats.calls_this_hour(now) + 1 <= self._budget()

    def keepalive(self) -> bool:
        """Renew the refresh token now (one token refresh, counted in isolarcloud_auth_total like any other;
        the rotated token is saved to the token file at once). True when it was renewed."""
        if not isinstance(self.auth, OAuth2Auth):
            return False
        now = self.clock()
        with self.lock:
            if self.running:
                return False
            self.running = True  # no cycle starts meanwhile: it would race the rotation for the access token
            self.last_keepalive = now
        before = self.auth.expiries().get("refresh")
        try:
            self.auth.refresh()
        except ApiError as exc:
            level = logging.ERROR if isinstance(exc, CredentialError) else logging.WARNING
            self.log.log(level, "background renewal of the refresh token failed: %s (result %s); it expires at "
                         "%s; next attempt in a day or at the next refresh", exc, exc.result, _iso(before or 0.0))
            return False
        except Exception:  # a bug must not kill the keep-alive thread
            self.log.exception("background renewal of the refresh token failed with an internal error")
            return False
        finally:
            with self.lock:
                self.running = False
                self.done.notify_all()
        after = self.auth.expiries().get("refresh")
        if after is not None and before is not None and after <= before:
            self.log.warning("background token refresh returned no new refresh token: it still expires at %s; "
                             "re-authorise before then", _iso(before))
            return False
        self.log.info("renewed the refresh token in the background (no refresh for a while); it would have "
                      "expired at %s, now valid until %s", _iso(before or 0.0), _iso(after or 0.0))
        return True


def _iso(ts: float) -> str:
    if not math.isfinite(ts):
        return "never"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

