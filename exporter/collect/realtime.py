"""The real-time collection: production values of every listed plant (OAuth2 apps; login apps get theirs from
the plant list). Published as the "production" slot; its age counts apart from the plant list's."""

from __future__ import annotations

import logging

from ..config import AccountConfig, Config
from ..data import Production
from ..fetch.realtime import RealtimeApi, RealtimeResult
from .budget import Share
from .collection import Cycle, PassCollection, Published
from .counters import CounterGuard
from .stats import Stats

log = logging.getLogger(__name__)


class RealtimeCollection(PassCollection):
    name = "realtime"
    slots = ("production",)

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

    def enabled(self) -> bool:
        # Legacy apps have no real-time endpoint; their list carries the production values instead.
        return self.account.realtime.enabled and self.api.session.mode == "oauth2"

    def wanted_interval(self) -> float:
        return self.account.realtime.interval or self.config.refresh_interval

    def calls_per_pass(self, plants: int) -> int:
        return self.api.calls(plants)

    def run(self, cycle: Cycle, share: Share) -> Published:
        ps_ids = [p.ps_id for p in cycle.plants.plants] if cycle.plants else []
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
        return {"production": Production(result.values, result.extra, result.point_names, cycle.now,
                                          cycle.next_generation())}

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
