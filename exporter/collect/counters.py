"""What a lifetime counter does with a value that cannot be a counter's: never a negative counter, never a dip.

The cloud has reported a lifetime total as a negative number beside a positive daily value (point 83124, total
load consumption, -478,739.743 Wh). Exported as a Prometheus counter, a negative value or a value lower than the
last one is read as a counter reset: `rate()` and `increase()` then count the whole total again. So, for the
quantities marked `counter` in `data.QUANTITIES`:

- a **negative** value is dropped (the series is absent for that pass) and counted (`reason="negative"`);
- a value **lower than the last one exported** is dropped and counted (`reason="decrease"`) while the last
  value is held for comparison; only when the lower value is reported in `RESET_AFTER` consecutive passes is it
  accepted as a real reset (a replaced meter, a recount): exported, and Prometheus sees one reset.

Memory: the last values are the published objects themselves (one reference per plant); only plants in a dip
carry an entry of their own.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping

from ..data import EMPTY, QUANTITIES

COUNTER_KEYS = tuple(q.key for q in QUANTITIES if q.counter)
RESET_AFTER = 3  # consecutive passes with the lower value before it is believed

log = logging.getLogger(__name__)


class CounterGuard:
    def __init__(self, account: str = "") -> None:
        self.last: dict[str, Mapping[str, float]] = {}  # ps_id → the values last published for the plant
        self.dips: dict[tuple[str, str], tuple[float, int]] = {}  # (ps_id, key) → (held value, lower passes)
        self.log = logging.LoggerAdapter(log, {"account": account})

    def check(self, values: dict[str, dict[str, float]], keep: Iterable[str] | None = None) -> Counter[str]:
        """Remove from `values` (ps_id → quantity → value, about to be published) every counter value that must
        not be exported; returns how many were dropped, by reason. `keep`: the plants still listed (others are
        forgotten)."""
        drops: Counter[str] = Counter()
        for plant, plant_values in values.items():
            previous = self.last.get(plant, EMPTY)
            for key in COUNTER_KEYS:
                value = plant_values.get(key)
                if value is None:
                    continue
                if value < 0:
                    del plant_values[key]
                    drops["negative"] += 1
                    continue
                dip = self.dips.get((plant, key))
                held = dip[0] if dip is not None else previous.get(key)
                if held is None or value >= held:
                    self.dips.pop((plant, key), None)
                    continue
                strikes = (dip[1] if dip is not None else 0) + 1
                if strikes >= RESET_AFTER:
                    self.dips.pop((plant, key), None)
                    self.log.info("plant %s: %s reported below its last value (%g < %g) %d times in a row; "
                                  "accepted as a reset", plant, key, value, held, strikes)
                    continue
                del plant_values[key]
                drops["decrease"] += 1
                self.dips[(plant, key)] = (held, strikes)
        self.last.update(values)
        if keep is not None:
            listed = set(keep)
            for plant in [p for p in self.last if p not in listed]:
                del self.last[plant]
            for dip in [d for d in self.dips if d[0] not in listed]:
                del self.dips[dip]
        return drops
