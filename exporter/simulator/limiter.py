"""The gateway's rate limiter, as a scenario: a token bucket over every caller, Spring Cloud Gateway style.

A recorded EU gateway answer carries `x-ratelimit-burst-capacity: 15` and `x-ratelimit-replenish-rate: 10`
(the headers of Spring Cloud Gateway's RedisRateLimiter: a bucket of `burst` requests refilled at `rate` per
second). With `Simulator(rate_limit=(burst, rate))` every answer carries those headers and
`X-RateLimit-Remaining`, and a request finding the bucket empty gets HTTP 429 (empty body, like Spring), with a
`Retry-After` in whole seconds unless `rate_limit_retry_after=False`. Whether the real gateway sends
`Retry-After` is not known.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable


class RateLimiter:
    def __init__(self, clock: Callable[[], float], burst: int, rate: float) -> None:
        if burst < 1 or rate <= 0:
            raise ValueError("rate_limit needs a burst of at least 1 and a positive rate")
        self.clock = clock
        self.burst = burst
        self.rate = rate
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def take(self) -> tuple[bool, dict[str, str], float]:
        """(allowed, headers for the answer, seconds until a token is free when refused)."""
        with self._lock:
            now = self.clock()
            self._tokens = min(float(self.burst), self._tokens + max(0.0, now - self._updated) * self.rate)
            self._updated = now
            allowed = self._tokens >= 1.0
            if allowed:
                self._tokens -= 1.0
            remaining = int(self._tokens)
            wait = 0.0 if allowed else (1.0 - self._tokens) / self.rate
        headers = {"X-RateLimit-Remaining": str(remaining), "X-RateLimit-Burst-Capacity": str(self.burst),
                   "X-RateLimit-Replenish-Rate": _number(self.rate), "X-RateLimit-Requested-Tokens": "1"}
        return allowed, headers, wait


def retry_after_header(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
