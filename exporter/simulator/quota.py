"""Call quotas of the gateway (E999 hourly, E998 monthly, E901 minimum interval)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Quota:
    """Windows are UTC clock hours / calendar months of the simulator clock; rejected calls don't count."""

    def __init__(self, clock: Callable[[], float], hourly: int | None, monthly: int | None,
                 min_interval: float | None) -> None:
        self.clock = clock
        self.hourly = hourly
        self.monthly = monthly
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._hour_key = -1
        self._hour_count = 0
        self._month_key = ""
        self._month_count = 0
        self._day_key = -1
        self._day_count = 0
        self._last: float | None = None

    def check(self) -> str | None:
        """Count one call; returns the refusal code, if any."""
        now = self.clock()
        hour_key, day_key = int(now // 3600), int(now // 86400)
        month_key = time.strftime("%Y-%m", time.gmtime(now))
        with self._lock:
            if hour_key != self._hour_key:
                self._hour_key, self._hour_count = hour_key, 0
            if day_key != self._day_key:
                self._day_key, self._day_count = day_key, 0
            if month_key != self._month_key:
                self._month_key, self._month_count = month_key, 0
            if self.monthly is not None and self._month_count >= self.monthly:
                return "E998"
            if self.hourly is not None and self._hour_count >= self.hourly:
                return "E999"
            if self.min_interval is not None and self._last is not None and now - self._last < self.min_interval:
                return "E901"
            self._last = now
            self._hour_count += 1
            self._day_count += 1
            self._month_count += 1
        return None

    def usage(self) -> tuple[int, int]:
        with self._lock:
            return self._hour_count, self._day_count
