"""The plant-list collection: every plant of the account, first in every cycle and first in the budget.

Its success is `isolarcloud_up`: every other collection works on the plants it lists. For login apps the list
also carries the production values (there is no real-time endpoint), published as the "production" slot.
"""

from __future__ import annotations

import logging

from ..config import AccountConfig, Config
from ..data import Plant, PlantList, Production
from ..fetch.envelope import ResponseError
from ..fetch.paging import Listing
from ..fetch.plants import PlantListApi, legacy_production, parse_plant
from .budget import Share
from .collection import Cycle, PassCollection, Published
from .counters import CounterGuard
from .stats import Stats

log = logging.getLogger(__name__)


class PlantListCollection(PassCollection):
    name = "plants"
    slots = ("plants", "production")

    def __init__(self, api: PlantListApi, account: AccountConfig, config: Config, stats: Stats) -> None:
        self.api = api
        self.account = account
        self.config = config
        self.stats = stats
        self.log = logging.LoggerAdapter(log, {"account": account.name})
        self.counters = CounterGuard(account.name)
        stats.record_limit("page_size", api.effective_page_size)

    def wanted_interval(self) -> float:
        return self.config.refresh_interval

    def calls_per_pass(self, plants: int) -> int:
        return self.api.calls(plants)

    def run(self, cycle: Cycle, share: Share) -> Published:
        asked = self.api.effective_page_size
        try:
            listing = self._read()
        finally:
            self.stats.record_limit("page_size", self.api.effective_page_size)
        if self.api.effective_page_size < asked:
            self.log.warning("the gateway served at most %d plants per page of the list although %d were asked "
                             "for; asking for %d from now on (set page_size to at most that)",
                             self.api.effective_page_size, asked, self.api.effective_page_size)
        plants: list[Plant] = []
        values: dict[str, dict[str, float]] = {}
        unknown_units: list[str] = []
        legacy = self.api.session.mode == "login"
        for row in listing.rows:
            plant = parse_plant(row, self.account.api_time_zone)
            if plant is None:
                continue
            plants.append(plant)
            if legacy:
                found, unknown = legacy_production(row)
                if found:
                    values[plant.ps_id] = found
                unknown_units.extend(unknown)
        if listing.duplicates:
            self.log.warning("plant list repeated %d plants across pages; counted once", listing.duplicates)
        if listing.reported_total is not None and listing.reported_total != len(plants):
            self.log.warning("plant list reported %d plants but %d distinct plants were read",
                             listing.reported_total, len(plants))
        if unknown_units:
            self.log.warning("unknown units in the plant list, values skipped: %s", sorted(set(unknown_units)))
            self.stats.record_unknown_units(unknown_units)
        if not plants:
            self.log.warning("the account lists no plants: check the region (a wrong gateway authenticates and "
                             "lists nothing), the filters, or whether the authorisation was revoked")
        published: dict[str, object] = {
            "plants": PlantList(tuple(plants), cycle.now, cycle.next_generation())}
        if legacy:
            drops = self.counters.check(values, (p.ps_id for p in plants))
            if drops:
                self.log.warning("lifetime counter values dropped (never exported as counters): %s", dict(drops))
                self.stats.record_counter_drops(drops)
            published["production"] = Production(values, taken_at=cycle.now, generation=cycle.next_generation())
        return published

    def _read(self) -> Listing:
        listing = self.api.read()
        if listing.consistent:
            return listing
        # Plants added or removed while paging shift the pages; read the list once more rather than present
        # a fleet with plants missing or doubled as the whole fleet.
        self.log.warning("plant list inconsistent (totals %s, %d distinct plants read); reading it again",
                         sorted(set(listing.totals)), len(listing.rows))
        listing = self.api.read()
        if listing.consistent:
            return listing
        if not self.account.strict_row_count:
            # The meaning of rowCount is not documented; an account may opt out of trusting it.
            self.log.warning("plant list inconsistent again; serving the %d plants read (strict_row_count is "
                             "off)", len(listing.rows))
            return listing
        raise ResponseError("list", "inconsistent_list",
                            f"plant list inconsistent twice (totals {sorted(set(listing.totals))}, "
                            f"{len(listing.rows)} distinct plants read); keeping the previous snapshot")
