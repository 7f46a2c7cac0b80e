"""What an account's refresh produced: the one data module where the fetch side and the serve side meet.

The fetch side (`exporter.fetch`, driven by `exporter.collect`) fills these types from iSolarCloud answers; the
serve side (`exporter.serve`) turns them into metrics and pages. This module knows the meaning of the data (codes,
quantities in base units) and nothing about HTTP, iSolarCloud's wire format or Prometheus. Every type here is
immutable once published, so a scrape can read it without locks while the next refresh builds its successor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

# -- codes of the API, as readable slugs ------------------------------------------------------------------

PS_TYPE_SLUGS: Mapping[int, str] = MappingProxyType({
    1: "utility",
    3: "distributed_pv",
    4: "residential_pv",
    5: "residential_storage",
    6: "village",
    7: "distributed_storage",
    8: "poverty_alleviation",
    9: "wind",
    10: "utility_storage",  # legacy list only
    12: "ci_storage",
})
CONNECT_TYPES: Mapping[int, str] = MappingProxyType({
    1: "full_feed_in",
    2: "self_use_surplus_feed_in",
    3: "self_use_no_feed_in",
    4: "off_grid",
})
# Appendix 1 of the portal: device_type codes.
DEVICE_TYPE_SLUGS: Mapping[int, str] = MappingProxyType({
    1: "inverter", 2: "container", 3: "grid_connection_point", 4: "combiner_box", 5: "meteo_station",
    6: "transformer", 7: "meter", 8: "ups", 9: "data_logger", 10: "string", 11: "plant", 12: "circuit_protection",
    13: "splitting_device", 14: "energy_storage_system", 15: "sampling_device", 16: "emu", 17: "unit",
    18: "temperature_humidity_sensor", 19: "intelligent_power_distribution_cabinet", 20: "display_device",
    21: "ac_power_distribution_cabinet", 22: "communication_module", 23: "system_bms", 24: "array_bms",
    25: "dc_dc", 26: "energy_management_system", 27: "tracking_system", 28: "wind_energy_converter", 29: "svg",
    30: "pt_cabinet", 31: "bus_protection", 32: "cleaning_device", 33: "direct_current_cabinet",
    34: "public_measurement_and_control", 37: "pcs", 41: "optimizer", 43: "battery",
    44: "battery_cluster_management_unit", 45: "local_controller", 51: "charger", 52: "battery_system_controller",
    55: "microinverter", 63: "diesel_generator",
})
# getFaultAlarmInfo's fault_type.
FAULT_TYPE_SLUGS: Mapping[int, str] = MappingProxyType({1: "fault", 2: "alarm", 3: "notice", 4: "suggestion"})


def slug(table: Mapping[int, str], code: int | None) -> str:
    """A code as its readable slug; an undocumented code stays visible as `unknown_<n>`, a missing one as
    `unknown`."""
    if code is None:
        return "unknown"
    return table.get(code, f"unknown_{code}")


def ps_type_slug(code: int | None) -> str:
    return slug(PS_TYPE_SLUGS, code)


# A plant's time zone as the API writes it (`ps_current_time_zone`): `GMT+8`, `GMT-3:30`, `UTC+05:45`, `GMT`. Read
# by the fetch side (local timestamps) and the serve side (the sun without coordinates) alike.
_ZONE_RE = re.compile(r"^(GMT|UTC)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)


def zone_minutes(zone: str, *, bare_sign: bool = False) -> int | None:
    """The UTC offset of a plant's zone in minutes, with the sign as written (the API's sign is disputed:
    api-notes.md); None for any other text or beyond 14 hours. `bare_sign`: also `+9` without GMT/UTC."""
    text = zone.strip()
    if text.upper() in ("GMT", "UTC"):
        return 0
    match = _ZONE_RE.match(text)
    if not match or (match.group(1) is None and not bare_sign):
        return None
    minutes = int(match.group(3)) * 60 + int(match.group(4) or 0)
    if minutes > 14 * 60:
        return None
    return minutes if match.group(2) == "+" else -minutes


# -- plant quantities ---------------------------------------------------------------------------------------

_WH = 3600.0  # joules per watt-hour


@dataclass(frozen=True)
class Quantity:
    """A plant quantity in base units (W, J, ratio), where it comes from in the API, and what it means."""

    key: str  # names the quantity and its base unit; the serve side derives the metric name from it
    point_id: str | None  # the plant real-time point (Common plant measuring points), if any
    scale: float  # multiply the API's value (smallest unit: W, Wh, fraction) to reach the base unit
    description: str
    counter: bool = False  # a lifetime total: only ever grows


# The one table of plant quantities [doc: Common plant measuring points].
QUANTITIES: tuple[Quantity, ...] = (
    Quantity("power_watts", "83033", 1.0, "Plant power (point 83033)."),
    Quantity("energy_today_joules", "83022", _WH,
             "Plant yield today (point 83022); resets at the plant's local midnight."),
    Quantity("energy_joules", "83024", _WH, "Plant lifetime yield (point 83024).", counter=True),
    Quantity("load_power_watts", "83106", 1.0, "Load power (point 83106)."),
    Quantity("consumption_today_joules", "83118", _WH, "Load consumption today (point 83118); resets daily."),
    Quantity("consumption_joules", "83124", _WH, "Lifetime load consumption (point 83124).", counter=True),
    Quantity("grid_power_watts", "83549", 1.0, "Grid active power as reported (point 83549)."),
    Quantity("grid_export_energy_today_joules", "83072", _WH,
             "Energy fed into the grid today (point 83072); resets daily."),
    Quantity("grid_export_energy_joules", "83075", _WH, "Lifetime feed-in energy (point 83075).", counter=True),
    Quantity("grid_import_energy_today_joules", "83102", _WH,
             "Energy purchased from the grid today (point 83102); resets daily."),
    Quantity("grid_import_energy_joules", "83105", _WH, "Lifetime purchased energy (point 83105).", counter=True),
    Quantity("battery_soc_ratio", "83252", 1.0, "Battery state of charge, 0-1 (point 83252)."),
    Quantity("battery_power_watts", "83326", 1.0, "Energy storage active power (point 83326)."),
    Quantity("installed_power_watts", None, 1.0, "Installed (peak) power where the API gives it (login accounts: "
             "the plant list; OAuth2 accounts: plant details, refreshed daily)."),
)
QUANTITY_KEYS = frozenset(q.key for q in QUANTITIES)


# -- what the collections produce ---------------------------------------------------------------------------


@dataclass(slots=True)
class Plant:
    """One plant as the plant list gives it. None is "the API gave no usable value", never a default. Not frozen
    only because a frozen dataclass costs 15 % more to build (10,000 per refresh); never changed once published."""

    ps_id: str
    ps_name: str
    ps_type_code: int | None
    fault_status: int | None
    online_status: int | None
    build_status: int | None
    grid_connection_status: int | None
    valid_flag: int | None
    connect_type: int | None
    location: str
    time_zone: str
    install_ts: float | None
    update_ts: float | None
    grid_connection_ts: float | None
    latitude: float | None
    longitude: float | None
    # Legacy list only (login accounts): the cloud's online flag and its counts of open faults and alarms.
    connection_status: int | None = None  # ps_status: 1 online, 0 offline
    reported_faults: int | None = None  # fault_count
    reported_alarms: int | None = None  # alarm_count

    @property
    def ps_type(self) -> str:
        return ps_type_slug(self.ps_type_code)

    @property
    def connect_type_slug(self) -> str:
        return "" if self.connect_type is None else slug(CONNECT_TYPES, self.connect_type)


EMPTY: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True)
class PlantList:
    """The plant-list collection's result: every plant of the account, de-duplicated."""

    plants: tuple[Plant, ...]
    taken_at: float  # when the refresh that read it started (Unix time)
    generation: int  # grows with every new list of the account: the exposition caches by it


@dataclass(frozen=True)
class Production:
    """Plant quantities in base units, by ps_id: from the real-time endpoint (OAuth2) or the legacy list's
    `{unit, value}` objects (login mode). Plants without values are absent."""

    values: Mapping[str, Mapping[str, float]]  # ps_id → quantity key → value
    extra: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # ps_id → extra point id → raw value
    point_names: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # extra point id → (name, unit)
    taken_at: float = 0.0
    generation: int = 0
    # ps_id → when its values were read (realtime.skip_unchanged: a plant whose update_time stood still keeps
    # older values); empty when every plant's values are from the pass at taken_at.
    fetched_at: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiQuota:
    """The app's call quota and its use, as `getOpenApiCallInfo` reports them (login apps). None: not reported.

    It has no `generation` on purpose: it is per-scrape status, compared by value, and a new answer must not make
    the cached plant section render again."""

    hour_limit: int | None  # calls per hour: the smallest of the day's hourly limits
    day_limit: int | None  # calls per day
    hour_used: int | None  # calls of the app in the current hour, by every client of the app
    day_used: int | None  # calls of the app today
    taken_at: float = 0.0

    def hourly_allowance(self) -> int | None:
        """Calls per hour the quota allows when spent evenly: the hourly limit, or the daily one over 24 hours,
        whichever is smaller; None when neither is reported."""
        limits = [x for x in (self.hour_limit, self.day_limit / 24 if self.day_limit else None) if x]
        return int(min(limits)) if limits else None


# -- open faults and plant details ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    """One open fault, alarm, notice or suggestion record of getFaultAlarmInfo, on one device of a plant."""

    ps_id: str
    ps_key: str  # the device: `<ps_id>_<device_type>_<channel>_<code>`
    device_name: str
    device_type_code: int | None
    fault_code: str  # the API's identifier of the record
    fault_name: str  # in the account's `lang`
    fault_type_code: int | None  # FAULT_TYPE_SLUGS
    fault_level: str  # the API's level code as given ("1" major ...); "" when none
    since: float  # create_time as Unix seconds

    @property
    def device_type(self) -> str:
        return slug(DEVICE_TYPE_SLUGS, self.device_type_code)

    @property
    def fault_type(self) -> str:
        return slug(FAULT_TYPE_SLUGS, self.fault_type_code)


@dataclass(frozen=True)
class OpenFaults:
    """The open-faults collection's result. `faults` are the records exported one series each (at most the
    configured number, the most important first); `counts` counts every open record read, exported or not."""

    faults: tuple[Fault, ...]
    counts: Mapping[str, Mapping[str, int]]  # ps_id → fault type slug → open records
    taken_at: float
    generation: int

    def device_fault_status(self) -> Mapping[str, int]:
        """ps_key → 1 (an open fault) or 2 (an open alarm): what the open records say of each device, to keep
        isolarcloud_device_fault_status current between device inventories (OpenDeviceFaults). Records beyond
        faults.max_series are not held; they are the least important (notices, suggestions, newest alarms)."""
        return worst_open_status(self.faults)


@dataclass(frozen=True, slots=True)
class PlantDetail:
    """What getPowerStationDetail says of one plant, as far as it is exported. None is "not given"."""

    installed_power_watts: float | None
    feed_in_tariff: float | None  # per kWh, in `currency`, as the owner set it
    consumption_tariff: float | None
    currency: str
    loggers: tuple[tuple[str, int], ...] = ()  # (serial, is_enable: 1 normal, 0 disabled)


@dataclass(frozen=True)
class PlantDetails:
    """The plant-details collection's result: each plant's latest detail, fetched a few plants at a time."""

    plants: Mapping[str, PlantDetail]  # ps_id → detail
    taken_at: float  # the latest fetch; older plants' details are as old as their turn
    generation: int


# -- devices: inventory and real-time points ------------------------------------------------------------------

# dev_fault_status of the device list and device real-time data: 1 fault, 2 alarm, 4 normal (not 3, as for plants).
DEVICE_FAULT, DEVICE_ALARM, DEVICE_NORMAL = 1, 2, 4
# Slugs back to codes (configuration accepts either); `unknown_<n>` names an undocumented code.
DEVICE_TYPE_CODES: Mapping[str, int] = MappingProxyType({name: code for code, name in DEVICE_TYPE_SLUGS.items()})


def device_type_slug(code: int | None) -> str:
    return slug(DEVICE_TYPE_SLUGS, code)


@dataclass(frozen=True, slots=True)
class Device:
    """One device of a plant as the device list gives it. Strings are "" and codes None when the API gave none."""

    ps_key: str  # <ps_id>_<device_type>_<channel>_<address>: the id device calls and fault records use
    ps_id: str
    device_sn: str
    device_name: str
    device_type_code: int | None
    model: str  # device_model_code
    factory_name: str
    communication_dev_sn: str
    fault_status: int | None  # dev_fault_status: 1 fault, 2 alarm, 4 normal
    deployment_status: int | None  # dev_status: 0 not deployed, 1 deployed
    claim_state: int | None  # claim_state (field table) or rel_state (recorded answers): 0 unclaimed, 1 claimed
    firmware: tuple[tuple[str, str], ...] | None = None  # firmware_version_info, when asked for: (key, version)

    @property
    def device_type(self) -> str:
        return device_type_slug(self.device_type_code)


@dataclass(frozen=True)
class PlantDevices:
    """One plant's devices, from one complete read of its device list (all pages)."""

    devices: tuple[Device, ...]
    taken_at: float


@dataclass(frozen=True)
class DeviceInventory:
    """The device-inventory collection's result. Plants are read one by one over the inventory interval, so each
    plant's entry has its own age; a plant not read yet (or whose entry grew older than the collection's max age)
    is absent, never an empty list."""

    plants: Mapping[str, PlantDevices]  # ps_id → its devices
    failed: Mapping[str, str]  # ps_id → why its last device-list read failed (its older entry, if any, is kept)
    firmware: bool  # firmware versions were asked for
    taken_at: float  # the collection's last successful run
    generation: int


@dataclass(frozen=True)
class DeviceQuantity:
    """A device point whose meaning and unit the documentation fixes, in base units."""

    key: str  # the serve side names the metric isolarcloud_device_<key>
    device_type: int
    point_id: str
    scale: float  # from the API's smallest unit (W, Wh) to the base unit
    description: str
    counter: bool = False


# The documented inverter points [doc: getPVInverterRealTimeData table]; any other point is exported as it comes.
DEVICE_QUANTITIES: tuple[DeviceQuantity, ...] = (
    DeviceQuantity("power_watts", 1, "24", 1.0, "Inverter total active power (inverter point 24)."),
    DeviceQuantity("energy_today_joules", 1, "1", _WH,
                   "Inverter daily yield (inverter point 1); resets at the plant's local midnight."),
    DeviceQuantity("energy_joules", 1, "2", _WH, "Inverter total yield (inverter point 2).", counter=True),
)
NAMED_DEVICE_POINTS = frozenset((q.device_type, q.point_id) for q in DEVICE_QUANTITIES)


@dataclass(frozen=True, slots=True)
class DeviceReading:
    """One device's answer in a device real-time pass."""

    points: Mapping[str, float]  # point id → value as the API gives it (smallest unit); null points absent
    fault_status: int | None  # dev_fault_status of the answer: as fresh as the pass
    deployment_status: int | None
    data_ts: float | None  # device_time: when the cloud last had data from the device (Unix time)


@dataclass(frozen=True)
class DeviceReadings:
    """The device real-time collection's result, for the chosen device types."""

    devices: Mapping[str, DeviceReading]  # ps_key → reading
    point_names: Mapping[tuple[int, str], tuple[str, str]]  # (device type, point id) → (point_name, point_unit)
    failed: frozenset[str]  # ps_keys the API listed as failed (fail_ps_key_list / illegal_ps_key_list)
    taken_at: float
    generation: int


@runtime_checkable
class OpenDeviceFaults(Protocol):
    """What device state needs of the open-faults data (the faults collection's slot): the worst open record per
    device, as of one pass over every open record of the account. Any published data object with these two
    members is used to keep `isolarcloud_device_fault_status` current between inventories."""

    taken_at: float

    def device_fault_status(self) -> Mapping[str, int]:
        """ps_key → 1 (an open fault) or 2 (an open alarm, no fault); devices without either are absent."""
        ...


class _FaultRecord(Protocol):
    @property
    def ps_key(self) -> str: ...

    @property
    def fault_type_code(self) -> int | None: ...


def worst_open_status(records: Iterable[_FaultRecord]) -> dict[str, int]:
    """Open fault records (fault_type 1 fault, 2 alarm; notices and suggestions leave a device's status alone) →
    ps_key → the device status they imply: 1 when any fault is open, else 2. A helper for OpenDeviceFaults."""
    worst: dict[str, int] = {}
    for record in records:
        code = record.fault_type_code
        if code in (DEVICE_FAULT, DEVICE_ALARM) and record.ps_key:
            worst[record.ps_key] = min(worst.get(record.ps_key, DEVICE_ALARM), code)
    return worst


def open_device_faults(state: AccountState) -> OpenDeviceFaults | None:
    """The account's fresh open-faults data, if a collection publishes one (see OpenDeviceFaults)."""
    for name in sorted(DATA_SLOTS):
        data = getattr(state, name, None)
        if isinstance(data, OpenDeviceFaults):
            return data
    return None


def device_fault_status(device: Device, inventory_taken_at: float, reading: DeviceReading | None,
                        readings_taken_at: float, open_status: Mapping[str, int] | None,
                        open_taken_at: float) -> int | None:
    """A device's fault status from the freshest source: its plant's inventory, the device real-time pass (for the
    chosen device types) or the open-fault records (`open_status`, OpenDeviceFaults.device_fault_status() of one
    pass over every open record). Open records say "fault" or "alarm"; a device without one in a pass newer than
    the other sources is normal (4)."""
    status, at = device.fault_status, inventory_taken_at
    if reading is not None and reading.fault_status is not None and readings_taken_at >= at:
        status, at = reading.fault_status, readings_taken_at
    if open_status is not None and open_taken_at > at:
        status = open_status.get(device.ps_key, DEVICE_NORMAL)
    return status


# -- health of an account, as a scrape sees it --------------------------------------------------------------


@dataclass(frozen=True)
class StatsView:
    """An account's counters at one moment."""

    api_requests: Mapping[tuple[str, str], int]  # (endpoint, result) → calls
    auth: Mapping[tuple[str, str], int]  # (kind, result) → attempts
    refreshes: Mapping[str, int]  # result → refresh cycles
    unknown_units: Mapping[str, int]
    realtime_failed_plants: int
    calls_this_hour: int
    # Robustness against the real cloud: what the account learned and what it dropped or could not get.
    limits: Mapping[str, int] = field(default_factory=dict)  # limit name → effective value (page_size, …)
    realtime_unanswered_plants: int = 0  # requested, neither answered nor in fail_ps_id_list
    counter_drops: Mapping[str, int] = field(default_factory=dict)  # reason (negative, decrease) → values
    rate_limited: int = 0  # HTTP 429 answers
    pacing_wait: float = 0.0  # seconds calls waited for the gateway's pace
    token_file_write_failures: int = 0  # OAuth2 token file writes that failed (a rotated token at risk)
    token_file_error: str | None = None  # why the last write failed, until one succeeds; names the path only
    faults_dropped: int = 0  # open fault records left out beyond faults.max_series, summed over passes


@dataclass(frozen=True)
class CollectionState:
    """One collection of an account: its cadence under the budget and its last outcome."""

    name: str
    up: bool  # the last attempt succeeded and its data is within max_age
    interval: float  # effective: the wanted interval, stretched to fit the collection's share of the budget
    wanted_interval: float
    calls_per_hour: float  # the share of the hourly budget the collection may spend
    max_age: float
    last_success: float | None
    last_attempt: float | None
    last_error: str | None
    next_due: float | None = None  # when it runs next (Unix time); None when not scheduled


@dataclass(frozen=True)
class AccountState:
    """What a scrape needs of one account, copied under the account's lock so rendering never races a refresh.
    Data older than its collection's max_age is None here: stale data is never shown as fresh."""

    name: str
    auth_mode: str
    gateway: str
    plants: PlantList | None
    up: bool  # the plant list's truth: its last refresh succeeded and it is within max_age
    attempted: bool
    last_success: float | None
    last_attempt: float | None
    last_error: str | None
    duration: float | None
    backoff_until: float
    interval: float  # the plant list's effective interval
    max_age: float
    budget: int
    stats: StatsView
    token_expiries: Mapping[str, float]
    collections: tuple[CollectionState, ...] = ()
    # Published data besides the plant list (DATA_SLOTS): None when missing or stale.
    production: Production | None = None
    # When the next refresh cycle may start (Unix time): the earliest due collection, or the back-off's end.
    next_attempt: float | None = None
    quota: ApiQuota | None = None
    faults: OpenFaults | None = None
    details: PlantDetails | None = None
    devices: DeviceInventory | None = None
    device_readings: DeviceReadings | None = None


# The fields of AccountState holding published data: a collection publishes its objects under these names
# (None in a state when missing or older than the collection's max_age). A new kind of data adds its field above
# (default None) and its name here.
DATA_SLOTS = frozenset({"plants", "production", "quota", "faults", "details", "devices", "device_readings"})
