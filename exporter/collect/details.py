"""The plant-details collection: installed power, tariffs and data loggers of every listed plant, 20 plants per
call, each plant once per `details.interval` (a day by default), spread evenly over it. Published as the
"details" slot. OAuth2 apps only: the legacy detail endpoint takes a device serial, not a plant id.

It ranks last: what it reads changes rarely, and a day-old tariff is as good as a fresh one.
"""

from __future__ import annotations

import logging
import statistics
from types import MappingProxyType

from ..config import AccountConfig, Config
from ..data import PlantDetail, PlantDetails
from ..fetch.details import ENDPOINT, MAX_PLANTS_PER_CALL, DetailApi, DetailResult
from .collection import Cycle, Published, SpreadCollection
from .stats import Stats

log = logging.getLogger(__name__)

# A median installed power below 100 W per plant read as W, or above 100 MW read as kW, is not plausible.
_PLAUSIBLE_MEDIAN = {"W": (100.0, float("inf")), "kW": (0.0, 100_000.0)}


class DetailsCollection(SpreadCollection):
    name = "details"
    slots = ("details",)
    endpoints = (ENDPOINT,)
    items_per_call = MAX_PLANTS_PER_CALL

    def __init__(self, api: DetailApi, account: AccountConfig, config: Config, stats: Stats) -> None:
        super().__init__()
        self.api = api
        self.account = account
        self.config = config
        self.stats = stats
        self.min_share = account.details.min_budget_share
        self.log = logging.LoggerAdapter(log, {"account": account.name})
        self.known: dict[str, PlantDetail] = {}
        self.generation = 0  # of the details last published
        self.reported: tuple[int, int] = (0, 0)  # unauthorised, missing: logged when they change
        self.unit_warned = False

    def enabled(self) -> bool:
        return self.account.details.enabled and self.api.session.mode == "oauth2"

    def wanted_interval(self) -> float:
        return self.account.details.interval

    def items(self, cycle: Cycle) -> list[str]:
        return [p.ps_id for p in cycle.plants.plants] if cycle.plants else []

    def fetch(self, cycle: Cycle, items: list[str]) -> Published:
        result = self.api.read(items)
        listed = set(self.items(cycle))
        gone = result.unauthorized | result.missing
        # A plant the answer leaves out, or says the app may not see, loses its previous details: they would
        # otherwise be shown as current for as long as the plant stays listed.
        merged = {ps: d for ps, d in self.known.items() if ps in listed and ps not in gone}
        merged.update(result.plants)
        # Details that did not change (most turns: tariffs and capacity rarely do) keep their generation, so the
        # exposition does not render the whole cached section again for each few plants fetched.
        generation = self.generation if merged == self.known and self.generation else cycle.next_generation()
        self.known, self.generation = merged, generation
        self._report(result)
        return {"details": PlantDetails(MappingProxyType(dict(merged)), cycle.now, generation)}

    def _report(self, result: DetailResult) -> None:
        counts = (len(result.unauthorized), len(result.missing))
        if counts != self.reported and any(counts):
            self.log.info("plant details: %d plants in not_authorization_ps_list, %d missing from data_list "
                          "(no details exported for them)", *counts)
        self.reported = counts
        unit = self.account.details.install_power_unit
        if len(result.install_powers) >= 5 and not self.unit_warned:
            median = statistics.median(result.install_powers)
            low, high = _PLAUSIBLE_MEDIAN[unit]
            if not low <= median <= high:
                other = "kW" if unit == "W" else "W"
                self.log.warning("install_power of %d plants has a median of %g, implausible in %s: set "
                                 "details.install_power_unit: %s if the portal shows these plants' capacity so",
                                 len(result.install_powers), median, unit, other)
                self.unit_warned = True
