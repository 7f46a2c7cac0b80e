"""The real-time collection: production values of every listed plant (OAuth2 apps; login apps get theirs from
the plant list). Published as the "production" slot; its age counts apart from the plant list's."""

from __future__ import annotations

import logging

from ..config import AccountConfig, Config
from ..data import Production
from ..fetch.realtime import RealtimeApi
from .budget import Share
from .collection import Cycle, PassCollection, Published
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

    def enabled(self) -> bool:
        # Legacy apps have no real-time endpoint; their list carries the production values instead.
        return self.account.realtime.enabled and self.api.session.mode == "oauth2"

    def wanted_interval(self) -> float:
        return self.account.realtime.interval or self.config.refresh_interval

    def calls_per_pass(self, plants: int) -> int:
        return self.api.calls(plants)

    def run(self, cycle: Cycle, share: Share) -> Published:
        ps_ids = [p.ps_id for p in cycle.plants.plants] if cycle.plants else []
        result = self.api.read(ps_ids)
        if result.failed:
            self.log.info("real-time data unavailable for %d plants (fail_ps_id_list)", len(result.failed))
            self.stats.record_realtime_failed(len(result.failed))
        return {"production": Production(result.values, result.extra, result.point_names, cycle.now,
                                          cycle.next_generation())}
