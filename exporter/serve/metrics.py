"""Every metric the exporter defines: names, HELP texts, types, and where each value comes from.

`PLANT_FAMILIES` defines the per-plant families; `exposition.py` renders them straight to bytes once per snapshot.
`StatusCollector` serves the small per-scrape account health metrics through prometheus_client. Metric names of
plant quantities are derived from `data.QUANTITIES` (`isolarcloud_plant_<key>`), their HELP from its descriptions.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..data import DEVICE_QUANTITIES, QUANTITIES, AccountState, DeviceQuantity, Plant

PLANT_LABELS = ("account", "ps_id", "ps_name", "ps_type")
CACHED = " Cached: refreshed from the iSolarCloud plant list at most every refresh interval."
COUNTER_NOTE = " Negative values and dips below the last value are dropped (isolarcloud_lifetime_values_dropped_total)."
Values = Mapping[str, float]  # a plant's quantity values (data.Production.values[ps_id])


@dataclass(frozen=True)
class Family:
    name: str  # without the _total/_info suffix that the exposition format adds
    help: str
    kind: str  # gauge, counter or info
    value: Callable[[Plant, Values], float | None]
    extra: Callable[[Plant], Sequence[tuple[str, str]]] | None = None  # info labels


def info_labels(plant: Plant) -> Sequence[tuple[str, str]]:
    code = "" if plant.ps_type_code is None else str(plant.ps_type_code)
    return (("ps_type_code", code), ("connect_type", plant.connect_type_slug), ("location", plant.location),
            ("time_zone", plant.time_zone))


def _quantity(key: str) -> Callable[[Plant, Values], float | None]:
    return lambda plant, values: values.get(key)


PLANT_FAMILIES: tuple[Family, ...] = (
    Family("isolarcloud_plant_fault_status", "Plant fault status: 1 fault, 2 alarm, 3 normal." + CACHED, "gauge",
           lambda p, v: p.fault_status),
    Family("isolarcloud_plant_online_status",
           "Plant deployment status (not online/offline): 1 deployed, 0 not deployed." + CACHED, "gauge",
           lambda p, v: p.online_status),
    Family("isolarcloud_plant_build_status",
           "Plant build status: 0 not started, 1 under construction, 2 connected, 3 planned, 4 not connected."
           + CACHED, "gauge", lambda p, v: p.build_status),
    Family("isolarcloud_plant_grid_connection_status", "Grid connection: 1 grid-connected, 0 not." + CACHED,
           "gauge", lambda p, v: p.grid_connection_status),
    Family("isolarcloud_plant_valid_flag", "Plant valid flag: 1 normal, 2 disabled, 3 connected." + CACHED, "gauge",
           lambda p, v: p.valid_flag),
    Family("isolarcloud_plant", "Plant metadata, value 1: type code, connect type, location, time zone." + CACHED,
           "info", lambda p, v: 1.0, info_labels),
    Family("isolarcloud_plant_install_timestamp_seconds", "When the plant was created (Unix time)." + CACHED,
           "gauge", lambda p, v: p.install_ts),
    Family("isolarcloud_plant_update_timestamp_seconds", "When the cloud last updated the plant (Unix time): "
           "update_time, or the legacy list's curr_power_update_time." + CACHED, "gauge", lambda p, v: p.update_ts),
    Family("isolarcloud_plant_grid_connection_timestamp_seconds", "When the plant was connected to the grid "
           "(Unix time)." + CACHED, "gauge", lambda p, v: p.grid_connection_ts),
    Family("isolarcloud_plant_latitude_degrees", "Plant latitude; absent when the API gives 0 or none." + CACHED,
           "gauge", lambda p, v: p.latitude),
    Family("isolarcloud_plant_longitude_degrees", "Plant longitude; absent when the API gives 0 or none." + CACHED,
           "gauge", lambda p, v: p.longitude),
    *(Family("isolarcloud_plant_" + q.key, q.description + " Base units; absent when the API gives no value."
             + (COUNTER_NOTE if q.counter else "") + CACHED, "counter" if q.counter else "gauge", _quantity(q.key))
      for q in QUANTITIES),
    # The legacy plant list's own state fields (login accounts).
    Family("isolarcloud_plant_connection_status", "Plant connection to the cloud (legacy list ps_status): 1 online, "
           "0 offline. Login accounts only." + CACHED, "gauge", lambda p, v: p.connection_status),
    Family("isolarcloud_plant_reported_faults", "Open faults of the plant as the legacy plant list counts them "
           "(fault_count). Login accounts only." + CACHED, "gauge", lambda p, v: p.reported_faults),
    Family("isolarcloud_plant_reported_alarms", "Open alarms of the plant as the legacy plant list counts them "
           "(alarm_count). Login accounts only." + CACHED, "gauge", lambda p, v: p.reported_alarms),
)
REALTIME_TIMESTAMP = "isolarcloud_plant_realtime_timestamp_seconds"
REALTIME_TIMESTAMP_HELP = ("When the plant's real-time values were read from the cloud (Unix time); only for accounts "
                           "with realtime.skip_unchanged, where a plant whose update_time stood still keeps older "
                           "values." + CACHED)
# The family of each plant quantity, by quantity key: also what `isolarcloud-exporter backfill` writes history
# under, so that the past joins the live series under the same names, types and HELP.
QUANTITY_FAMILIES: Mapping[str, Family] = {
    q.key: next(f for f in PLANT_FAMILIES if f.name == "isolarcloud_plant_" + q.key) for q in QUANTITIES}
POINT_VALUE = "isolarcloud_plant_point_value"
POINT_VALUE_HELP = ("Configured extra plant point, as the API gives it (no unit conversion; see the unit label)."
                    + CACHED)
# Computed by the exporter (serve/sun.py), not read from the cloud; rendered at most once a minute (exposition.py).
SUN_ELEVATION = "isolarcloud_plant_sun_elevation_degrees"
SUN_ELEVATION_HELP = ("Solar elevation at the plant in degrees (geometric; negative below the horizon), computed by "
                      "the exporter from the plant's coordinates or, without them, its time zone (label source; "
                      "time_zone as on isolarcloud_plant_info); recomputed once a minute.")


DROP_REASONS = ("negative", "decrease")

# -- open faults and plant details: rendered by exposition.py from data.OpenFaults and data.PlantDetails -------

FAULTS_CACHED = " Cached: refreshed from getFaultAlarmInfo every faults.interval (default: the refresh interval)."
DETAILS_CACHED = (" Cached: from getPowerStationDetail, each plant once per details.interval (default a day); "
                  "OAuth2 accounts.")


@dataclass(frozen=True)
class SimpleFamily:
    name: str
    help: str
    kind: str  # gauge (exported under the same name in both formats)


FAULT_ACTIVE = SimpleFamily(
    "isolarcloud_fault_active",
    "An open fault, alarm, notice or suggestion of a device; the value is when it opened (create_time, Unix "
    "time). fault_type: fault, alarm, notice, suggestion or unknown_<n>; device_type: the Appendix 1 device type "
    "as a slug." + FAULTS_CACHED, "gauge")
FAULT_LABELS = ("account", "device_name", "device_type", "fault_code", "fault_level", "fault_name", "fault_type",
                "ps_id", "ps_key", "ps_name")
PLANT_OPEN_FAULTS = SimpleFamily(
    "isolarcloud_plant_open_faults",
    "Open records of the plant by fault_type (fault, alarm, notice, suggestion, unknown_<n>); absent when none. "
    "Counts every open record, also those beyond faults.max_series." + FAULTS_CACHED, "gauge")
FEED_IN_TARIFF = SimpleFamily(
    "isolarcloud_plant_feed_in_tariff",
    "Feed-in tariff per kWh in the plant's currency, as the plant owner set it; absent when unset." + DETAILS_CACHED,
    "gauge")
CONSUMPTION_TARIFF = SimpleFamily(
    "isolarcloud_plant_consumption_tariff",
    "Consumption (purchase) tariff per kWh in the plant's currency, as the plant owner set it; absent when unset."
    + DETAILS_CACHED, "gauge")
LOGGER_INFO = SimpleFamily(
    "isolarcloud_plant_logger_info",
    "A data logger (communication device) of the plant by serial; the value is its is_enable: 1 normal, "
    "0 disabled." + DETAILS_CACHED, "gauge")


def plant_label_values(account: str, plant: Plant) -> tuple[str, str, str, str]:
    return (account, plant.ps_id, plant.ps_name, plant.ps_type)


class StatusCollector(Collector):
    """Health of each account and of the exporter; small, so it is rendered on every scrape."""

    def __init__(self, states: Callable[[], Iterable[AccountState]]) -> None:
        self.states = states

    def collect(self) -> Iterator[Metric]:
        states = list(self.states())
        g = GaugeMetricFamily
        up = g("isolarcloud_up", "1 when the account's last plant-list refresh succeeded and the list is within "
               "max_age.",
               labels=["account"])
        plants = g("isolarcloud_plants", "Plants in the account's current snapshot (absent while there is none).",
                   labels=["account"])
        duration = g("isolarcloud_refresh_duration_seconds", "Wall time of the account's last refresh.",
                     labels=["account"])
        success = g("isolarcloud_last_refresh_success_timestamp_seconds",
                    "When the account's last successful refresh started (Unix time).", labels=["account"])
        refreshes = CounterMetricFamily("isolarcloud_refreshes", "Refresh cycles by result (success, error).",
                                        labels=["account", "result"])
        requests = CounterMetricFamily(
            "isolarcloud_api_requests", "API calls by endpoint and result: the API result code (1 success, E999 "
            "hourly quota, ...), http_<status>, or timeout, connection_refused, dns_error, tls_error, "
            "invalid_response, too_large.", labels=["account", "endpoint", "result"])
        auth = CounterMetricFamily("isolarcloud_auth", "Token refreshes, logins and code exchanges by result.",
                                   labels=["account", "kind", "result"])
        expiry = g("isolarcloud_token_expiry_timestamp_seconds",
                   "When a token expires (Unix time): access (from expires_in), refresh (30 days after it was "
                   "issued, per the portal; re-authorise in a browser before then), login (24 h sliding).",
                   labels=["account", "token"])
        budget = g("isolarcloud_api_budget_calls_per_hour", "Configured hourly API call budget.", labels=["account"])
        hour_calls = g("isolarcloud_api_calls_current_hour", "API calls made in the current clock hour (UTC).",
                       labels=["account"])
        interval = g("isolarcloud_refresh_interval_seconds",
                     "Effective plant-list refresh interval: the configured one, stretched to fit the API budget.",
                     labels=["account"])
        max_age = g("isolarcloud_max_age_seconds", "Age after which a snapshot is withheld as stale.",
                    labels=["account"])
        backoff = g("isolarcloud_backoff_until_timestamp_seconds",
                    "Until when refreshes are paused after a quota, rate or credential error; 0 when not.",
                    labels=["account"])
        rt_failed = CounterMetricFamily("isolarcloud_realtime_failed_plants",
                                        "Plants the real-time endpoint listed in fail_ps_id_list.", labels=["account"])
        units = CounterMetricFamily("isolarcloud_unknown_units", "Legacy list values skipped for an unknown unit.",
                                    labels=["account", "unit"])
        limit = g("isolarcloud_effective_limit", "A limit of the gateway as the account uses it: the configured "
                  "value, or the smaller one the gateway was seen to enforce (limit: page_size, realtime_batch_size).",
                  labels=["account", "limit"])
        unanswered = CounterMetricFamily("isolarcloud_realtime_unanswered_plants",
                                   "Plants asked for real-time data that the answers neither carried nor listed in "
                                   "fail_ps_id_list (an empty answer, or left out twice).", labels=["account"])
        dropped = CounterMetricFamily("isolarcloud_lifetime_values_dropped",
                                "Lifetime counter values not exported, by reason: negative, or decrease (below the "
                                "last value exported).", labels=["account", "reason"])
        rate_limited = CounterMetricFamily("isolarcloud_api_rate_limited",
                                     "API calls the gateway answered with HTTP 429 (rate limited).", labels=["account"])
        pacing = CounterMetricFamily("isolarcloud_api_pacing_wait_seconds",
                               "Time the account's API calls waited for the gateway's pace (rate_limit).",
                               labels=["account"])
        faults_dropped = CounterMetricFamily(
            "isolarcloud_faults_dropped", "Open fault records not exported as isolarcloud_fault_active because "
            "there were more than faults.max_series, summed over the passes of the faults collection.",
            labels=["account"])
        c_labels = ["account", "collection"]
        c_up = g("isolarcloud_collection_up", "1 when the collection's last run succeeded and its data is within "
                 "its max_age (collection: plants, realtime, ...).", labels=c_labels)
        c_interval = g("isolarcloud_collection_interval_seconds", "Effective interval of the collection: the wanted "
                       "one, stretched when its share of the API budget is short.", labels=c_labels)
        c_success = g("isolarcloud_collection_last_success_timestamp_seconds",
                      "When the collection's last successful run started (Unix time).", labels=c_labels)
        c_budget = g("isolarcloud_collection_budget_calls_per_hour",
                     "The share of the hourly API budget the collection may spend.", labels=c_labels)
        c_max_age = g("isolarcloud_collection_max_age_seconds",
                      "Age after which the collection's data is withheld as stale.", labels=c_labels)
        token_writes = CounterMetricFamily(
            "isolarcloud_token_file_write_failures", "Failed writes of the account's OAuth2 token file (a rotated "
            "refresh token then lives only in memory; retried every refresh cycle). Always 0 without a token file.",
            labels=["account"])
        for s in states:
            a = s.name
            up.add_metric([a], 1.0 if s.up else 0.0)
            if s.plants is not None:
                plants.add_metric([a], len(s.plants.plants))
            if s.duration is not None:
                duration.add_metric([a], s.duration)
            if s.last_success is not None:
                success.add_metric([a], s.last_success)
            for result in ("success", "error"):
                refreshes.add_metric([a, result], s.stats.refreshes.get(result, 0))
            for (endpoint, result), count in sorted(s.stats.api_requests.items()):
                requests.add_metric([a, endpoint, result], count)
            for (kind, result), count in sorted(s.stats.auth.items()):
                auth.add_metric([a, kind, result], count)
            for token, ts in sorted(s.token_expiries.items()):
                expiry.add_metric([a, token], ts)
            budget.add_metric([a], s.budget)
            hour_calls.add_metric([a], s.stats.calls_this_hour)
            interval.add_metric([a], s.interval)
            max_age.add_metric([a], s.max_age)
            backoff.add_metric([a], s.backoff_until)
            rt_failed.add_metric([a], s.stats.realtime_failed_plants)
            for unit, count in sorted(s.stats.unknown_units.items()):
                units.add_metric([a, unit], count)
            for name, number in sorted(s.stats.limits.items()):
                limit.add_metric([a, name], number)
            unanswered.add_metric([a], s.stats.realtime_unanswered_plants)
            for reason in DROP_REASONS:
                dropped.add_metric([a, reason], s.stats.counter_drops.get(reason, 0))
            rate_limited.add_metric([a], s.stats.rate_limited)
            pacing.add_metric([a], s.stats.pacing_wait)
            faults_dropped.add_metric([a], s.stats.faults_dropped)
            for c in s.collections:
                c_up.add_metric([a, c.name], 1.0 if c.up else 0.0)
                c_interval.add_metric([a, c.name], c.interval)
                if c.last_success is not None:
                    c_success.add_metric([a, c.name], c.last_success)
                c_budget.add_metric([a, c.name], c.calls_per_hour)
                c_max_age.add_metric([a, c.name], c.max_age)
            token_writes.add_metric([a], s.stats.token_file_write_failures)
        yield from (up, plants, duration, success, refreshes, requests, auth, expiry, budget, hour_calls, interval,
                    max_age, backoff, rt_failed, units, c_up, c_interval, c_success, c_budget, c_max_age,
                    faults_dropped)
        yield from (limit, unanswered, dropped, rate_limited, pacing)
        yield token_writes
        yield from quota_families(states)
        info = InfoMetricFamily("isolarcloud_exporter_build", "Exporter version; value 1.")
        info.add_metric([], {"version": __version__, "python_version": platform.python_version()})
        yield info


class ConfigCollector(Collector):
    """The configuration's reload status, as Prometheus and Alertmanager export theirs; collected per scrape.
    `status` gives (whether the last reload succeeded, when the configuration was last loaded successfully)."""

    def __init__(self, status: Callable[[], tuple[bool, float]]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        ok, at = self.status()
        yield GaugeMetricFamily("isolarcloud_config_last_reload_successful",
                                "1 when the last configuration reload (SIGHUP or POST /-/reload) succeeded, or none "
                                "was tried since start-up; 0 while a failed one left the previous configuration "
                                "running.", value=1.0 if ok else 0.0)
        yield GaugeMetricFamily("isolarcloud_config_last_reload_success_timestamp_seconds",
                                "When the configuration was last loaded successfully, at start-up or by a reload "
                                "(Unix time).", value=at)


def quota_families(states: Sequence[AccountState]) -> Iterator[Metric]:
    """The app's quota as getOpenApiCallInfo reports it (login apps), beside the budget; absent when unknown."""
    limit = GaugeMetricFamily("isolarcloud_api_quota_calls",
                              "The app's API call quota per period (hour: the smallest hourly limit of the day; "
                              "day) as getOpenApiCallInfo reports it (login apps).", labels=["account", "period"])
    used = GaugeMetricFamily("isolarcloud_api_quota_used_calls",
                             "API calls of the app in the current period (hour, day) as getOpenApiCallInfo reports "
                             "them: every client of the app counts, not only this exporter.",
                             labels=["account", "period"])
    for s in states:
        q = s.quota
        if q is None:
            continue
        for period, cap, spent in (("hour", q.hour_limit, q.hour_used), ("day", q.day_limit, q.day_used)):
            if cap is not None:
                limit.add_metric([s.name, period], cap)
            if spent is not None:
                used.add_metric([s.name, period], spent)
    yield from (limit, used)


# -- devices (rendered by exposition.device_families) ---------------------------------------------------------

INVENTORY_CACHED = (" Cached: from the plant's device list, read once per devices.inventory_interval (see "
                    "isolarcloud_device_inventory_timestamp_seconds).")
DEVICE_CACHED = " Cached: from the device real-time pass, at most every devices.realtime.interval."
# Labels of every per-device series; `device_type` is a slug of Appendix 1 (data.DEVICE_TYPE_SLUGS).
DEVICE_LABELS = ("account", "ps_id", "ps_name", "ps_key", "device_name", "device_type")
# isolarcloud_device_info's own labels; with devices.firmware also data.Device.firmware's keys.
DEVICE_INFO_LABELS = ("device_sn", "device_model", "factory_name", "communication_dev_sn", "claim_state")


@dataclass(frozen=True)
class DeviceFamily:
    name: str  # without the _total/_info suffix that the exposition format adds
    help: str
    kind: str  # gauge, counter or info


DEVICE_INFO = DeviceFamily(
    "isolarcloud_device", "Device metadata, value 1: serial, model, manufacturer, logger serial, claim state "
    "(0 unclaimed, 1 claimed), firmware versions when devices.firmware is on." + INVENTORY_CACHED, "info")
DEVICE_FAULT_STATUS = DeviceFamily(
    "isolarcloud_device_fault_status", "Device fault status: 1 fault, 2 alarm, 4 normal, from the freshest of the "
    "device list, the device real-time pass and the open fault records.", "gauge")
DEVICE_DEPLOYMENT_STATUS = DeviceFamily(
    "isolarcloud_device_deployment_status", "Device deployment (dev_status; not online/offline): 1 deployed, 0 not "
    "deployed, from the fresher of the device list and the device real-time pass.", "gauge")
DEVICE_INVENTORY_TIMESTAMP = DeviceFamily(
    "isolarcloud_device_inventory_timestamp_seconds", "When the plant's device list was last read completely "
    "(Unix time); a plant whose list was never read has no series.", "gauge")
DEVICE_INVENTORY_FAILED = DeviceFamily(
    "isolarcloud_device_inventory_failed_plants", "Plants whose last device-list read failed (their previous "
    "inventory is kept until the devices collection's max_age).", "gauge")
DEVICE_DATA_TIMESTAMP = DeviceFamily(
    "isolarcloud_device_data_timestamp_seconds", "When the cloud last had data from the device (device_time, Unix "
    "time)." + DEVICE_CACHED, "gauge")
DEVICE_POINT_VALUE = DeviceFamily(
    "isolarcloud_device_point_value", "Device point from devices.realtime.points, as the API gives it (no unit "
    "conversion; see the unit label); points with a metric of their own are exported under that name."
    + DEVICE_CACHED, "gauge")
DEVICE_REALTIME_FAILED = DeviceFamily(
    "isolarcloud_device_realtime_failed_devices", "Devices the last device real-time pass listed as failed "
    "(fail_ps_key_list): no values for them in that pass.", "gauge")
DEVICE_QUANTITY_FAMILIES: tuple[tuple[DeviceFamily, DeviceQuantity], ...] = tuple(
    (DeviceFamily("isolarcloud_device_" + q.key, q.description + " Base units; absent when the API gives no value."
                  + DEVICE_CACHED, "counter" if q.counter else "gauge"), q)
    for q in DEVICE_QUANTITIES)
