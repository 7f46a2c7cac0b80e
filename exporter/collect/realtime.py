"""The real-time collection: production values of every listed plant (OAuth2 apps; login apps get theirs from
the plant list). Published as the "production" slot; its age counts apart from the plant list's.

With `realtime.skip_unchanged` a plant whose `update_time` (from the plant list) has not moved since its values
were last read keeps those values and is not fetched again, for at most `realtime.unchanged_max_age`: the pass
costs only the plants that changed, and the budget forecast counts just those. It relies on `update_time` moving
whenever the values move, which the API does not document: `isolarcloud-exporter probe` checks it per account.
"""

from __future__ import annotations

import logging

from ..config import AccountConfig, Config
from ..data import Production
from ..fetch.realtime import RealtimeApi, RealtimeResult
from .budget import Demand, Share
from .collection import Cycle, PassCollection, Published
from .counters import CounterGuard
from .stats import Stats

log = logging.getLogger(__name__)


class RealtimeCollection(PassCollection):
    name = "realtime"
    slots = ("production",)
    endpoints = ("getPowerStationRealTimeData",)

    def __init__(self, api: RealtimeApi, account: AccountConfig, config: Config, stats: Stats) -> None:
        self.api = api
        self.account = account
        self.config = config
        self.stats = stats
        self.min_share = account.realtime.min_budget_share
        self.log = logging.LoggerAdapter(log, {"account": account.name})
        self.counters = CounterGuard(account.name)
        if self.enabled():
            stats.record_limit("realtime_batch_size", api.effective_batch_size)
        self.skip_unchanged = account.realtime.skip_unchanged
        # skip_unchanged: what the last pass published, when each plant's values were read and at which
        # update_time, and how many plants the last real pass fetched (the forecast of the next one).
        self._last: Production | None = None
        self._read: dict[str, tuple[float, float]] = {}  # ps_id → (update_ts when read, read at)
        self._last_fetched: int | None = None

    def enabled(self) -> bool:
        # Legacy apps have no real-time endpoint; their list carries the production values instead.
        return self.account.realtime.enabled and self.api.session.mode == "oauth2"

    def wanted_interval(self) -> float:
        return self.account.realtime.interval or self.config.refresh_interval

    def calls_per_pass(self, plants: int) -> int:
        return self.api.calls(plants)

    def due(self, cycle: Cycle) -> list[str]:
        """The plants to fetch now: all of them, or with skip_unchanged those whose update_time moved (or is
        unknown), those never read and those whose values reached unchanged_max_age."""
        plants = cycle.plants.plants if cycle.plants is not None else ()
        if not self.skip_unchanged:
            return [p.ps_id for p in plants]
        limit = self.account.realtime.unchanged_max_age
        out = []
        for plant in plants:
            seen = self._read.get(plant.ps_id)
            if (seen is None or plant.update_ts is None or seen[0] != plant.update_ts
                    or cycle.now - seen[1] >= limit):
                out.append(plant.ps_id)
        return out

    def demand(self, cycle: Cycle) -> Demand:
        if not self.skip_unchanged:
            return super().demand(cycle)
        # Right after a pass almost nothing is due against the list it used, although the next list will show
        # the plants that changed meanwhile: the last real pass is the better forecast until then.
        plants = max(len(self.due(cycle)), self._last_fetched or 0)
        return Demand(self.name, self.calls_per_pass(plants), self.wanted_interval(), self.min_share)

    def planned_calls(self, cycle: Cycle, share: Share) -> int:
        return self.calls_per_pass(len(self.due(cycle)))

    def idle(self, cycle: Cycle) -> Published:
        """Nothing due: with skip_unchanged every plant's values are as current as the plant list that says
        so. Republished as of that list, so the slot stays fresh exactly as long as the list confirming it."""
        last = self._last
        if not self.skip_unchanged or last is None or cycle.plants is None:
            return {}
        listed = {p.ps_id for p in cycle.plants.plants}
        production = Production(
            {k: v for k, v in last.values.items() if k in listed}, {k: v for k, v in last.extra.items() if k in listed},
            last.point_names, max(last.taken_at, cycle.plants.taken_at), cycle.next_generation(),
            {k: v for k, v in last.fetched_at.items() if k in listed})
        self._last = production
        return {"production": production}

    def run(self, cycle: Cycle, share: Share) -> Published:
        ps_ids = self.due(cycle)
        try:
            result = self.api.read(ps_ids)
        finally:
            # A size the gateway refused is remembered even when the pass then failed for another reason.
            self.stats.record_limit("realtime_batch_size", self.api.effective_batch_size)
        self._account_for(result)
        drops = self.counters.check(result.values, ps_ids)
        if drops:
            self.log.warning("lifetime counter values dropped (never exported as counters): %s", dict(drops))
            self.stats.record_counter_drops(drops)
        if not self.skip_unchanged:
            return {"production": Production(result.values, result.extra, result.point_names, cycle.now,
                                              cycle.next_generation())}
        return {"production": self._merge(cycle, ps_ids, result.values, result.extra, result.point_names)}

    def _account_for(self, result: RealtimeResult) -> None:
        """Say what happened to every plant that was not simply answered."""
        if result.shrunk_from is not None:
            self.log.warning("the gateway refused real-time batches of %d plants; asking for %d per call from now "
                             "on (set realtime.batch_size to at most that)", result.shrunk_from,
                             self.api.effective_batch_size)
        if result.failed:
            self.log.info("real-time data unavailable for %d plants (fail_ps_id_list)", len(result.failed))
            self.stats.record_realtime_failed(len(result.failed))
        if result.asked_again:
            self.log.info("%d plants were left out of real-time answers; asked once more", result.asked_again)
        if result.stray_entries:
            self.log.warning("%d real-time entries named no plant that was asked for; ignored", result.stray_entries)
        if result.unanswered:
            self.log.warning("no real-time data for %d plants (%d empty answers; the rest left out twice)",
                             len(result.unanswered), result.empty_answers)
            self.stats.record_realtime_unanswered(len(result.unanswered))

    def _merge(self, cycle: Cycle, fetched: list[str], values: dict[str, dict[str, float]],
               extra: dict[str, dict[str, float]], point_names: dict[str, tuple[str, str]]) -> Production:
        """This pass's values, plus the kept values of every listed plant that was not due."""
        assert cycle.plants is not None
        update_ts = {p.ps_id: p.update_ts for p in cycle.plants.plants}
        asked = set(fetched)
        last = self._last or Production({})
        merged_values: dict[str, dict[str, float]] = {}
        merged_extra: dict[str, dict[str, float]] = {}
        read_at: dict[str, float] = {}
        for ps_id in update_ts:
            if ps_id in asked:
                if ps_id in values:
                    merged_values[ps_id] = values[ps_id]
                    if ps_id in extra:
                        merged_extra[ps_id] = extra[ps_id]
                    read_at[ps_id] = cycle.now
                    stamp = update_ts[ps_id]
                    if stamp is not None:
                        self._read[ps_id] = (stamp, cycle.now)
                    else:
                        self._read.pop(ps_id, None)
                else:  # failed or unanswered: no values this time, and asked again next time
                    self._read.pop(ps_id, None)
            elif ps_id in last.values:
                merged_values[ps_id] = last.values[ps_id]
                if ps_id in last.extra:
                    merged_extra[ps_id] = last.extra[ps_id]
                read_at[ps_id] = last.fetched_at.get(ps_id, last.taken_at)
        for gone in [k for k in self._read if k not in update_ts]:
            del self._read[gone]
        self._last_fetched = len(fetched)
        production = Production(merged_values, merged_extra, {**last.point_names, **point_names}, cycle.now,
                                cycle.next_generation(), read_at)
        self._last = production
        return production
