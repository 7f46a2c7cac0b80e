"""The device collections: each plant's device inventory, spread over `devices.inventory_interval` (default a
day), and, when configured, real-time points of the chosen device types, a whole pass at a time.

Published as the "devices" and "device_readings" slots. Both come after the plant list and real-time data in
priority: when the budget is short their intervals stretch first (logged, and shown in
`isolarcloud_collection_interval_seconds`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import timezone
from types import MappingProxyType

from ..config import AccountConfig, Config
from ..data import DeviceInventory, DeviceReadings, PlantDevices
from ..fetch.devices import DeviceListApi, DeviceRealtimeApi, TooManyPages, type_of
from ..fetch.envelope import ApiError, CredentialError, ResponseError, ResultError
from ..fetch.parse import zone_offset
from .budget import Demand, Share
from .collection import Cycle, PassCollection, Published, SpreadCollection, max_age
from .stats import Stats

log = logging.getLogger(__name__)

FAILED_RETRY = 3600.0  # a plant whose device list failed is asked again after an hour (or its interval)
FAILED_IN_A_ROW = 3  # plants failing one after the other, none read between: the endpoint is the trouble


def _endpoint_refused(exc: ApiError) -> ApiError:
    """`E900` (unauthorised access) on a device endpoint, after the plant list of the same account succeeded,
    means the app may not call this endpoint: the collection fails, not the account (which would back off
    every collection, the plant list included)."""
    if isinstance(exc, CredentialError) and exc.result == "E900":
        return ResultError(exc.endpoint, exc.result, f"{exc.args[0].split(': ', 1)[-1]}: the app may not call "
                                                     "this endpoint")
    return exc


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.0f} s"


class _Stretch:
    """Logs when a collection's effective interval leaves its wanted one (the budget cannot carry it) and when
    it changes markedly or comes back, not on every cycle."""

    def __init__(self, logger: logging.LoggerAdapter[logging.Logger], name: str) -> None:
        self.log = logger
        self.name = name
        self.last: float | None = None

    def note(self, share: Share, wanted: float) -> None:
        interval = share.interval
        stretched = interval > wanted * 1.001
        if self.last is None and not stretched:
            self.last = interval
            return
        if self.last is not None and (interval == self.last or (
                math.isfinite(interval) and math.isfinite(self.last) and abs(interval / self.last - 1) < 0.1)):
            return
        self.last = interval
        if stretched:
            self.log.warning("%s: the API budget carries one pass every %s instead of every %s (a share of %.0f "
                             "calls/h; higher-priority collections come first); raise api_budget_per_hour or its "
                             "min_budget_share, or lengthen its interval", self.name, _duration(interval),
                             _duration(wanted), share.calls_per_hour)
        else:
            self.log.info("%s: back at its wanted interval of %s", self.name, _duration(wanted))


class DeviceInventoryCollection(SpreadCollection):
    """One device-list read (one call per page) per plant and inventory interval, spread evenly over it; a new
    plant is read at the next cycle the budget allows. A plant whose read fails keeps its older entry (until the
    collection's max age) and is asked again after an hour."""

    name = "devices"
    slots = ("devices",)

    def __init__(self, api: DeviceListApi, account: AccountConfig, config: Config, stats: Stats) -> None:
        super().__init__()
        self.api = api
        self.account = account
        self.config = config
        self.stats = stats
        self.min_share = account.devices.min_budget_share
        self.log = logging.LoggerAdapter(log, {"account": account.name})
        self.stretch = _Stretch(self.log, self.name)
        self.inventory: dict[str, PlantDevices] = {}  # ps_id → its devices as last read
        self.failed: dict[str, str] = {}
        self.read_calls: dict[str, int] = {}  # ps_id → list calls its next read is expected to cost
        self.failing = 0  # plants failed since the last one read, across runs
        # Calls paid from the budget's spare part in the current clock hour (the backlog of plants never read,
        # pages beyond the forecast): spare is per hour, not per cycle, so catching up never crowds out the list.
        self.backlog_hour = -1
        self.backlog_spent = 0
        # Plants first listed after the collection's first cycle, not read yet: they go before the rest of a
        # first pass (which takes days for a large fleet on a short budget), so a new plant is read next.
        self.listed: set[str] = set()
        self.newcomers: dict[str, None] = {}

    def enabled(self) -> bool:
        return self.account.devices.enabled

    def wanted_interval(self) -> float:
        return self.account.devices.inventory_interval

    def items(self, cycle: Cycle) -> list[str]:
        return [p.ps_id for p in cycle.plants.plants] if cycle.plants else []

    def cost(self, plant: str) -> int:
        """Calls the next read of a plant costs: one page until its size is known, then its pages."""
        return self.read_calls.get(plant, 1)

    def calls_per_pass(self, plants: int) -> int:
        """A pass over `plants` plants, at the pages per plant read so far (one each before any was read)."""
        known = len(self.read_calls)
        per_plant = sum(self.read_calls.values()) / known if known else 1.0
        return math.ceil(plants * per_plant)

    def demand(self, cycle: Cycle) -> Demand:
        items = self.items(cycle)
        backlog = sum(self.cost(p) for p in items if p not in self.schedule.next_due)
        return Demand(self.name, sum(self.cost(p) for p in items), self.wanted_interval(), self.min_share, backlog)

    def _choose(self, cycle: Cycle, share: Share) -> tuple[list[str], int, bool]:
        """The due plants this cycle can afford, their expected calls, and whether the first of them goes into
        debt: a plant with more pages than the bucket ever holds is read when the bucket is full."""
        items = self.items(cycle)
        self.schedule.forget(items)
        due = self._newcomers_first(items, self.schedule.due(items, cycle.now))
        tokens = self.bucket.refill(cycle.now, share.calls_per_hour)
        allowance = int(tokens) + self._backlog_left(cycle.now, share)
        chosen: list[str] = []
        cost = 0
        for plant in due:
            calls = self.cost(plant)
            if cost + calls > allowance:
                if not chosen and share.calls_per_hour > 0 and tokens >= max(1.0, share.calls_per_hour) - 1e-9:
                    return [plant], calls, True
                break
            chosen.append(plant)
            cost += calls
        return chosen, cost, False

    def _spare_left(self, now: float, share: Share) -> int:
        hour = int(now // 3600)
        if hour != self.backlog_hour:
            self.backlog_hour, self.backlog_spent = hour, 0
        return max(0, int(share.spare_per_hour) - self.backlog_spent)

    def _backlog_left(self, now: float, share: Share) -> int:
        return min(int(share.backlog_per_hour), self._spare_left(now, share))

    def _newcomers_first(self, items: list[str], due: list[str]) -> list[str]:
        first_cycle = not self.listed
        for plant in items:
            if plant not in self.listed:
                self.listed.add(plant)
                if not first_cycle:
                    self.newcomers[plant] = None
        current = set(items)
        for plant in [p for p in self.listed if p not in current]:
            self.listed.discard(plant)
            self.newcomers.pop(plant, None)
        if not self.newcomers:
            return due
        due_now = set(due)
        return [p for p in self.newcomers if p in due_now] + [p for p in due if p not in self.newcomers]

    def planned_calls(self, cycle: Cycle, share: Share) -> int:
        self.stretch.note(share, self.wanted_interval())
        return self._choose(cycle, share)[1]

    def run(self, cycle: Cycle, share: Share) -> Published:
        chosen, expected, debt = self._choose(cycle, share)
        tokens = self.bucket.tokens
        read: list[str] = []
        failed: list[str] = []
        calls = 0
        try:
            for plant in chosen:
                # The forecast counts a plant not read yet as one page; its first page may tell otherwise. The
                # calls left in this clock hour bound every read, so the budget holds all the same.
                left = self.account.api_budget_per_hour - self.stats.calls_this_hour(cycle.now)
                if left < self.cost(plant):
                    break
                try:
                    devices, used = self.api.devices(plant, strict=self.account.strict_row_count, max_calls=left)
                except TooManyPages as exc:  # read at its next turn, now forecast at its real cost
                    calls += 1
                    self.read_calls[plant] = exc.calls
                    if exc.calls > self.account.api_budget_per_hour // 2:
                        self.log.warning("the device list of plant %s takes %d calls, more than half the hourly "
                                         "budget: raise devices.page_size or api_budget_per_hour", plant, exc.calls)
                    break
                except (ResultError, ResponseError) as exc:  # this plant's answer; the next plant may do better
                    calls += 1
                    failed.append(plant)
                    self.failed[plant] = str(exc)
                    self.failing += 1
                    self.log.warning("device list of plant %s failed: %s (result %s); its previous inventory is "
                                     "kept", plant, exc, exc.result)
                    if self.failing >= FAILED_IN_A_ROW:  # the collection is down until a plant is read again
                        raise
                    continue
                except ApiError as exc:
                    raise _endpoint_refused(exc) from None
                calls += used
                self.failing = 0
                self.newcomers.pop(plant, None)
                read.append(plant)
                self.inventory[plant] = PlantDevices(tuple(devices), cycle.now)
                self.failed.pop(plant, None)
                self.read_calls[plant] = self.api.calls(len(devices))
        finally:
            # What was read counts, even when a later plant ends the run: the calls are spent.
            whole = len(read) == len(self.items(cycle)) and not self.schedule.next_due
            self.schedule.done(read, cycle.now, share.interval, stagger=whole)
            for plant in failed:
                self.schedule.next_due[plant] = cycle.now + min(share.interval, FAILED_RETRY)
            # The bucket pays what it holds, this hour's spare part (backlog) what exceeds it. A plant bigger than
            # the bucket ever holds, and pages beyond both (a plant bigger than forecast), are the bucket's debt,
            # repaid by its refills: the share holds on average.
            planned = expected if debt else min(expected, max(0, int(tokens)))
            from_backlog = min(max(0, calls - planned), self._spare_left(cycle.now, share))
            self.backlog_spent += from_backlog
            self.bucket.spend(calls - from_backlog)
        return {"devices": self._publish(cycle, share)}

    def fetch(self, cycle: Cycle, items: list[str]) -> Published:  # pragma: no cover - run() is overridden
        raise NotImplementedError("DeviceInventoryCollection reads plant by plant in run()")

    def _publish(self, cycle: Cycle, share: Share) -> DeviceInventory:
        """The inventory of the listed plants, without entries older than the collection's max age: a plant
        whose reads keep failing loses its devices' series rather than show them as current."""
        listed = set(self.items(cycle))
        oldest = cycle.now - max_age(self.config.max_age, self.wanted_interval(), share.interval)
        for plant in [p for p, entry in self.inventory.items() if p not in listed or entry.taken_at < oldest]:
            del self.inventory[plant]
        for table in (self.failed, self.read_calls):
            for plant in [p for p in table if p not in listed]:
                del table[plant]
        return DeviceInventory(MappingProxyType(dict(self.inventory)), MappingProxyType(dict(self.failed)),
                               self.api.firmware, cycle.now, cycle.next_generation())


class DeviceRealtimeCollection(PassCollection):
    """Real-time points of the deployed devices of the chosen types, from the current inventory: per device type,
    batches of `batch_size` devices and of at most 100 points."""

    name = "device_realtime"
    slots = ("device_readings",)

    def __init__(self, api: DeviceRealtimeApi, inventory: DeviceInventoryCollection, account: AccountConfig,
                 config: Config) -> None:
        self.api = api
        self.inventory = inventory
        self.account = account
        self.config = config
        self.settings = account.devices.realtime
        self.min_share = self.settings.min_budget_share
        self.log = logging.LoggerAdapter(log, {"account": account.name})
        self.stretch = _Stretch(self.log, self.name)

    def enabled(self) -> bool:
        return self.settings.enabled and self.inventory.enabled()

    def wanted_interval(self) -> float:
        return self.settings.interval or self.config.refresh_interval

    def groups(self, listed: set[str] | None = None) -> dict[int, list[str]]:
        """ps_keys by device type (the API takes one type per call): deployed devices of the chosen types, in
        the order of the chosen types, of the listed plants (all inventoried plants when `listed` is None)."""
        groups: dict[int, list[str]] = {t: [] for t in self.settings.device_types}
        for plant, entry in self.inventory.inventory.items():
            if listed is not None and plant not in listed:
                continue
            for device in entry.devices:
                code = type_of(device.ps_key, device.device_type_code)
                if code in groups and device.deployment_status != 0:  # undeployed devices have no data
                    groups[code].append(device.ps_key)
        return {t: keys for t, keys in groups.items() if keys}

    def calls_per_pass(self, plants: int) -> int:
        return self.api.calls({t: len(keys) for t, keys in self.groups().items()})

    def demand(self, cycle: Cycle) -> Demand:
        return Demand(self.name, self.calls_per_pass(0), self.wanted_interval(), self.min_share)

    def planned_calls(self, cycle: Cycle, share: Share) -> int:
        self.stretch.note(share, self.wanted_interval())
        return self.api.calls({t: len(keys) for t, keys in self.groups(_listed(cycle)).items()})

    def run(self, cycle: Cycle, share: Share) -> Published:
        groups = self.groups(_listed(cycle))
        zones: Mapping[str, timezone | None] = {
            p.ps_id: zone_offset(self.account.api_time_zone, p.time_zone)
            for p in (cycle.plants.plants if cycle.plants else ())}
        try:
            result = self.api.read(groups, zones)
        except ApiError as exc:
            raise _endpoint_refused(exc) from None
        for device_type, exc in result.refused.items():
            self.log.warning("device real-time data of device type %d refused: %s (result %s); %d devices without "
                             "values this pass", device_type, exc, exc.result, len(groups[device_type]))
        if result.refused and len(result.refused) == len(groups):
            raise next(iter(result.refused.values()))
        if result.failed:
            self.log.info("device real-time data unavailable for %d devices (fail_ps_key_list)", len(result.failed))
        return {"device_readings": DeviceReadings(MappingProxyType(result.readings),
                                                  MappingProxyType(result.point_names), frozenset(result.failed),
                                                  cycle.now, cycle.next_generation())}


def _listed(cycle: Cycle) -> set[str]:
    return {p.ps_id for p in cycle.plants.plants} if cycle.plants else set()
