"""The open-faults collection: every open fault, alarm, notice and suggestion of the account, with the device and
the fault's name, every refresh of the plant list by default. Published as the "faults" slot.

It ranks right after the plant list, before real-time data: a pass costs ⌈open records / page⌉ calls, a few even
for a large fleet, and it is what names the fault the plant list's `ps_fault_status` only flags, so it should
not wait behind the hundreds of real-time calls of a large fleet when the budget is short.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from ..config import AccountConfig, Config
from ..data import FAULT_TYPE_SLUGS, Fault, OpenFaults
from ..fetch.envelope import DeniedError, ResponseError
from ..fetch.faults import ENDPOINT, FaultApi, parse_fault, record_key
from ..fetch.paging import Listing
from ..fetch.parse import ps_id, zone_offset
from .budget import Demand, Share
from .collection import Cycle, PassCollection, Published
from .stats import Stats

log = logging.getLogger(__name__)

_TYPE_RANK = {code: rank for rank, code in enumerate(sorted(FAULT_TYPE_SLUGS))}  # faults first, then alarms, …


def importance(fault: Fault) -> tuple[int, int, float, str, str]:
    """Which records are exported first when there are more than `faults.max_series`: faults, then alarms,
    notices, suggestions, undocumented types; a lower level code first; the oldest first, so that the records
    already exported stay exported while new ones arrive (no churn of series from one pass to the next)."""
    level = int(fault.fault_level) if fault.fault_level.isdigit() else 1 << 30
    return (_TYPE_RANK.get(fault.fault_type_code or -1, len(_TYPE_RANK)), level, fault.since, fault.ps_id,
            fault.fault_code)


class FaultsCollection(PassCollection):
    name = "faults"
    slots = ("faults",)
    endpoints = (ENDPOINT,)

    def __init__(self, api: FaultApi, account: AccountConfig, config: Config, stats: Stats) -> None:
        self.api = api
        self.account = account
        self.config = config
        self.stats = stats
        self.min_share = account.faults.min_budget_share
        self.log = logging.LoggerAdapter(log, {"account": account.name})
        self.first_seen: dict[tuple[str, str, str, str], float] = {}  # records without a readable create_time
        self.denied = False
        self.dropping = False
        self.outside = 0
        self.undated = 0
        self.last: OpenFaults | None = None

    def enabled(self) -> bool:
        return self.account.faults.enabled

    def wanted_interval(self) -> float:
        return self.account.faults.interval or self.config.refresh_interval

    def calls_per_pass(self, plants: int) -> int:
        return self.api.calls()

    @staticmethod
    def _expected(cycle: Cycle) -> int:
        """Open records the plant list vouches for: one at least for each plant in fault or alarm."""
        plants = cycle.plants.plants if cycle.plants else ()
        return sum(1 for p in plants if p.fault_status in (1, 2))

    def demand(self, cycle: Cycle) -> Demand:
        return Demand(self.name, self.api.calls(self._expected(cycle)), self.wanted_interval(), self.min_share)

    def planned_calls(self, cycle: Cycle, share: Share) -> int:
        return self.api.calls(self._expected(cycle))

    def run(self, cycle: Cycle, share: Share) -> Published:
        try:
            listing = self._read()
        except DeniedError as exc:
            if not self.denied:
                self.log.error("this app may not read fault lists (%s on %s): open faults are unknown, "
                               "isolarcloud_collection_up{collection=\"faults\"} is 0; allow the app the fault "
                               "endpoint on the developer portal, or set faults.enabled: false", exc.result, ENDPOINT)
            self.denied = True
            raise
        if self.denied:
            self.log.info("fault lists are readable again")
            self.denied = False
        faults, counts = self._parse(listing, cycle)
        faults.sort(key=importance)
        limit = self.account.faults.max_series
        kept, dropped = faults[:limit], len(faults) - min(len(faults), limit)
        if dropped:
            self.stats.record_faults_dropped(dropped)
            if not self.dropping:
                self.log.warning("%d open fault records, more than faults.max_series (%d): %d are not exported "
                                 "as isolarcloud_fault_active (counted in isolarcloud_faults_dropped_total; "
                                 "isolarcloud_plant_open_faults still counts them all)", len(faults), limit, dropped)
        elif self.dropping:
            self.log.info("%d open fault records, within faults.max_series (%d) again", len(faults), limit)
        self.dropping = bool(dropped)
        kept.sort(key=lambda f: (f.ps_id, f.since, f.fault_code))
        faults_now = tuple(kept)
        counts_now = {ps: dict(c) for ps, c in counts.items()}
        last = self.last
        # Unchanged open faults keep their generation, so the exposition does not render the whole cached
        # section again (a second at 10,000 plants) every pass for nothing; taken_at is new all the same.
        same = last is not None and last.faults == faults_now and last.counts == counts_now
        generation = last.generation if same and last is not None else cycle.next_generation()
        frozen = MappingProxyType({ps: MappingProxyType(c) for ps, c in counts_now.items()})
        self.last = OpenFaults(faults_now, frozen, cycle.now, generation)
        return {"faults": self.last}

    def _read(self) -> Listing:
        listing = self.api.read()
        if listing.consistent:
            return listing
        # Records that open or close while the list is paged shift its pages: read it once more rather than
        # miss a fault (or show one twice).
        self.log.info("fault list changed while it was read (totals %s, %d records read); reading it again",
                      sorted(set(listing.totals)), len(listing.rows))
        listing = self.api.read()
        if listing.consistent or not self.account.strict_row_count:
            return listing
        raise ResponseError(ENDPOINT, "inconsistent_list",
                            f"fault list inconsistent twice (totals {sorted(set(listing.totals))}, "
                            f"{len(listing.rows)} records read); keeping the previous open faults")

    def _parse(self, listing: Listing, cycle: Cycle) -> tuple[list[Fault], Mapping[str, Counter[str]]]:
        plants = {p.ps_id: p for p in cycle.plants.plants} if cycle.plants else {}
        faults: list[Fault] = []
        counts: dict[str, Counter[str]] = {}
        labels: set[tuple[str, ...]] = set()
        first_seen: dict[tuple[str, str, str, str], float] = {}
        outside = undated = 0
        for row in listing.rows:
            key_id = ps_id(row.get("ps_id"))
            plant = plants.get(key_id) if key_id is not None else None
            if plant is None:
                # The endpoint covers every plant the app may see; the account's filters (ps_type, valid_flag,
                # ps_name) define the plants it exports, and a plant added since the list was read comes next time.
                outside += 1
                continue
            fault = parse_fault(row, zone_offset(self.account.api_time_zone, plant.time_zone))
            if fault is None:
                continue
            if math.isnan(fault.since):
                key = record_key(row)
                first_seen[key] = self.first_seen.get(key, cycle.now)
                fault = replace(fault, since=first_seen[key])
                undated += 1
            counts.setdefault(fault.ps_id, Counter())[fault.fault_type] += 1
            label_set = (fault.ps_id, fault.ps_key, fault.device_name, fault.device_type, fault.fault_code,
                         fault.fault_name, fault.fault_type, fault.fault_level)
            if label_set in labels:  # one series per label set: the record is counted, not exported twice
                continue
            labels.add(label_set)
            faults.append(fault)
        self.first_seen = first_seen  # closed records are forgotten
        if undated != self.undated:
            self.log.info("%d open fault records without a readable create_time: their value is when the exporter "
                          "first saw them", undated)
            self.undated = undated
        if outside != self.outside:
            self.log.info("%d open fault records belong to plants outside the account's plant list; not exported",
                          outside)
            self.outside = outside
        return faults, counts
