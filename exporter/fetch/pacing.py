"""Pacing of API calls per gateway: a token bucket shared by every account that calls the same gateway.

A recorded answer of the EU gateway carries `x-ratelimit-burst-capacity: 15` and `x-ratelimit-replenish-rate: 10`
(a Spring Cloud Gateway rate limiter: a bucket of 15 calls refilled at 10 per second) [one source]. Many accounts
refreshing at once through one gateway would meet its HTTP 429. Every call therefore first takes a token from its
gateway's bucket here (by default below the recorded rates), the bucket follows lower rates the gateway announces
in its answers, and a 429 stops every account's calls to that gateway for the `Retry-After` it asks (bounded).
Nothing here speaks HTTP: the transport tells the pacer what it saw.
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_WAIT_AFTER_429 = 1.0  # a 429 without a usable Retry-After (the recorded limiter refills 10 calls a second)


@dataclass(frozen=True)
class Pace:
    """How fast calls to one gateway may go: `burst` at once, then `per_second` on average."""

    burst: int = 10
    per_second: float = 5.0
    max_retry_after: float = 60.0  # a longer Retry-After is not waited for: the call fails as rate limited


DEFAULT_PACE = Pace()


class GatewayPacer:
    """A token bucket for one gateway. `acquire()` blocks until the caller's turn (callers queue fairly: each
    reserves the next free slot); `observe()` adopts lower rates and the remaining tokens a gateway announces;
    `penalize()` pauses every caller after a 429."""

    def __init__(self, pace: Pace = DEFAULT_PACE, *, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.configured = pace
        self.burst = float(pace.burst)
        self.rate = float(pace.per_second)
        self.max_retry_after = pace.max_retry_after
        self.monotonic = monotonic
        self.sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = monotonic()
        self._blocked_until = 0.0

    def tighten(self, pace: Pace) -> None:
        """Another account uses this gateway with its own settings: the strictest of them applies."""
        with self._lock:
            self.configured = Pace(min(self.configured.burst, pace.burst),
                                   min(self.configured.per_second, pace.per_second),
                                   min(self.configured.max_retry_after, pace.max_retry_after))
            self.burst = min(self.burst, float(pace.burst))
            self.rate = min(self.rate, float(pace.per_second))
            self.max_retry_after = self.configured.max_retry_after
            self._tokens = min(self._tokens, self.burst)

    def _refill(self, now: float) -> None:
        # `_updated` lies in the future while a 429's pause lasts: the bucket refills only after it.
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def acquire(self) -> float:
        """Wait for a token; returns the seconds waited."""
        with self._lock:
            now = self.monotonic()
            self._refill(now)
            # The bucket goes negative with reservations: the n-th caller in line waits n / rate seconds.
            base = max(now, self._updated)
            ready = max(self._blocked_until, base + max(0.0, 1.0 - self._tokens) / self.rate)
            self._tokens -= 1.0
        waited = 0.0
        while ready > now:
            self.sleep(ready - now)
            waited += ready - now
            with self._lock:
                # A 429 met by another caller meanwhile pauses this one too.
                now = self.monotonic()
                ready = self._blocked_until
        return waited

    def observe(self, headers: Mapping[str, str]) -> None:
        """What the gateway said about its limiter in an answer (Spring Cloud Gateway's header names)."""
        rate = _number(headers.get("x-ratelimit-replenish-rate"))
        burst = _number(headers.get("x-ratelimit-burst-capacity"))
        remaining = _number(headers.get("x-ratelimit-remaining"))
        if rate is None and burst is None and remaining is None:
            return
        with self._lock:
            self._refill(self.monotonic())
            if rate is not None and rate > 0:
                self.rate = min(float(self.configured.per_second), rate)
            if burst is not None and burst >= 1:
                self.burst = min(float(self.configured.burst), burst)
            if remaining is not None and remaining >= 0:
                # Other clients may share the gateway's bucket: never believe we hold more than it has left.
                self._tokens = min(self._tokens, remaining, self.burst)

    def penalize(self, seconds: float) -> None:
        """A 429: nobody calls this gateway for `seconds`; then one call goes, and the rest follow at the pace."""
        with self._lock:
            now = self.monotonic()
            self._refill(now)
            self._blocked_until = max(self._blocked_until, now + max(0.0, seconds))
            self._tokens = min(self._tokens, 1.0)
            self._updated = max(self._updated, self._blocked_until)


class Pacers:
    """The process's pacers, one per gateway (scheme, host and port); accounts sharing a gateway share one."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.monotonic = monotonic
        self.sleep = sleep
        self._lock = threading.Lock()
        self._pacers: dict[str, GatewayPacer] = {}

    def get(self, base_url: str, pace: Pace = DEFAULT_PACE) -> GatewayPacer:
        key = gateway_key(base_url)
        with self._lock:
            pacer = self._pacers.get(key)
            if pacer is None:
                pacer = self._pacers[key] = GatewayPacer(pace, monotonic=self.monotonic, sleep=self.sleep)
            else:
                pacer.tighten(pace)
            return pacer


def gateway_key(base_url: str) -> str:
    """`https://Gateway.isolarcloud.eu/` and `https://gateway.isolarcloud.eu:443` are one gateway."""
    parts = urlsplit(base_url.strip())
    scheme = (parts.scheme or "https").lower()
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{host}:{port}"


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: a number of seconds or an HTTP date; None when absent or unusable."""
    if value is None:
        return None
    text = value.strip()
    seconds = _number(text)
    if seconds is None:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None
