"""The quota collection: the app's call limits and use from `getOpenApiCallInfo`, for login apps, every
`api_quota.interval` (one call each). Published as the "quota" slot; `api_budget_per_hour: auto` makes the
engine's budget follow it (`engine.AccountEngine._budget`)."""

from __future__ import annotations

import logging

from ..config import QUOTA_MIN_SHARE, AccountConfig
from ..fetch.quota import CallInfoApi
from .budget import Share
from .collection import Cycle, PassCollection, Published

log = logging.getLogger(__name__)


class QuotaCollection(PassCollection):
    name = "quota"
    slots = ("quota",)
    # One call per pass: a small floor keeps it running however short the budget, so that `auto` never works
    # from an old answer while the plant list takes everything.
    min_share = QUOTA_MIN_SHARE

    def __init__(self, api: CallInfoApi, account: AccountConfig) -> None:
        self.api = api
        self.account = account
        self.log = logging.LoggerAdapter(log, {"account": account.name})

    def enabled(self) -> bool:
        # The endpoint is a legacy one (body token); no platform variant is documented for OAuth2 apps.
        return self.account.api_quota.enabled and self.api.session.mode == "login"

    def wanted_interval(self) -> float:
        return self.account.api_quota.interval

    def calls_per_pass(self, plants: int) -> int:
        return self.api.calls()

    def run(self, cycle: Cycle, share: Share) -> Published:
        quota = self.api.read(cycle.now)
        if quota.hourly_allowance() is None:
            self.log.info("getOpenApiCallInfo reports no call limit")
        return {"quota": quota}
