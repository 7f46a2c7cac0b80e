"""Progress of a backfill run: a progress bar on a terminal (tqdm, an optional dependency: the `progress` extra),
plain log lines otherwise (a pipe, a log file, a container, or tqdm not installed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TextIO

log = logging.getLogger("exporter.backfill")

LOG_EVERY = 30.0  # seconds between two progress lines without a terminal


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """Counts calls against the plan's total; shows plants, days, calls, samples and the time left."""

    def __init__(self, *, total: int, done: int, days: int, plants: int, per_hour: float, stream: TextIO | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.done = done
        self.days = days
        self.plants = plants
        self.per_hour = per_hour  # the budget's pace: the estimate before calls show their own
        self.clock = clock
        self.started = clock()
        self.start_done = done
        self.day = 0
        self.samples = 0
        self.logged = -LOG_EVERY
        self.bar: Any = None
        if stream is not None and stream.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                log.debug("tqdm is not installed (pip install 'isolarcloud-exporter[progress]'): progress as log lines")
            else:
                self.bar = tqdm(total=total, initial=done, unit="call", file=stream, dynamic_ncols=True,
                                desc="backfill", smoothing=0.05)

    def eta(self) -> float:
        """Seconds left: at the pace seen in this run once it has one, else at the budget's pace."""
        elapsed = self.clock() - self.started
        made = self.done - self.start_done
        left = self.total - self.done
        if made >= 5 and elapsed > 0:
            return left * elapsed / made
        return left * 3600.0 / self.per_hour if self.per_hour > 0 else float("inf")

    def advance(self, day: int, samples: int) -> None:
        self.done += 1
        self.day = max(self.day, day + 1)
        self.samples += samples
        if self.bar is not None:
            self.bar.set_postfix_str(f"day {self.day}/{self.days}, {self.plants} plants, {self.samples} samples",
                                     refresh=False)
            self.bar.update(1)
            return
        now = self.clock()
        if now - self.logged >= LOG_EVERY or self.done == self.total:
            self.logged = now
            log.info("backfill progress: %d/%d calls (%.0f%%), day %d/%d, %d plants, %d samples, about %s left",
                     self.done, self.total, 100.0 * self.done / max(self.total, 1), self.day, self.days,
                     self.plants, self.samples, _duration(self.eta()))

    def note(self, message: str) -> None:
        """A message that must not be lost under the bar (a wait for the budget, a retry)."""
        if self.bar is not None:
            self.bar.write(message)
        else:
            log.info("%s", message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
