"""Metric definitions and the two custom collectors.

`PLANT_FAMILIES` is the single definition of every per-plant metric: name, help, type, value. `PlantCollector`
turns it into prometheus_client metric families (the canonical form); `exposition.py` renders the same table
straight to bytes once per snapshot, and a test checks that both agree. `StatusCollector` serves the small,
per-scrape account health metrics.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from . import __version__
from .model import CONNECT_TYPES, POINTS, Plant
from .poller import AccountState

PLANT_LABELS = ("account", "ps_id", "ps_name", "ps_type")
CACHED = " Cached: refreshed from the iSolarCloud plant list at most every refresh interval."


@dataclass(frozen=True)
class Family:
    name: str  # without the _total/_info suffix that the exposition format adds
    help: str
    kind: str  # gauge, counter or info
    value: Callable[[Plant], float | None]
    extra: Callable[[Plant], Sequence[tuple[str, str]]] | None = None  # info labels


def _info_labels(plant: Plant) -> Sequence[tuple[str, str]]:
    code = "" if plant.ps_type_code is None else str(plant.ps_type_code)
    ct = plant.connect_type
    connect = "" if ct is None else CONNECT_TYPES.get(ct, f"unknown_{ct}")
    return (("ps_type_code", code), ("connect_type", connect), ("location", plant.location),
            ("time_zone", plant.time_zone))


def _value(metric: str) -> Callable[[Plant], float | None]:
    return lambda plant: plant.values.get(metric)


PLANT_FAMILIES: tuple[Family, ...] = (
    Family("isolarcloud_plant_fault_status", "Plant fault status: 1 fault, 2 alarm, 3 normal." + CACHED, "gauge",
           lambda p: p.fault_status),
    Family("isolarcloud_plant_online_status",
           "Plant deployment status (not online/offline): 1 deployed, 0 not deployed." + CACHED, "gauge",
           lambda p: p.online_status),
    Family("isolarcloud_plant_build_status",
           "Plant build status: 0 not started, 1 under construction, 2 connected, 3 planned, 4 not connected."
           + CACHED, "gauge", lambda p: p.build_status),
    Family("isolarcloud_plant_grid_connection_status", "Grid connection: 1 grid-connected, 0 not." + CACHED,
           "gauge", lambda p: p.grid_connection_status),
    Family("isolarcloud_plant_valid_flag", "Plant valid flag: 1 normal, 2 disabled, 3 connected." + CACHED, "gauge",
           lambda p: p.valid_flag),
    Family("isolarcloud_plant", "Plant metadata, value 1: type code, connect type, location, time zone." + CACHED,
           "info", lambda p: 1.0, _info_labels),
    Family("isolarcloud_plant_install_timestamp_seconds", "When the plant was created (Unix time)." + CACHED,
           "gauge", lambda p: p.install_ts),
    Family("isolarcloud_plant_update_timestamp_seconds", "When the cloud last updated the plant (Unix time)."
           + CACHED, "gauge", lambda p: p.update_ts),
    Family("isolarcloud_plant_grid_connection_timestamp_seconds", "When the plant was connected to the grid "
           "(Unix time)." + CACHED, "gauge", lambda p: p.grid_connection_ts),
    Family("isolarcloud_plant_latitude_degrees", "Plant latitude; absent when the API gives 0 or none." + CACHED,
           "gauge", lambda p: p.latitude),
    Family("isolarcloud_plant_longitude_degrees", "Plant longitude; absent when the API gives 0 or none." + CACHED,
           "gauge", lambda p: p.longitude),
    *(Family(point.metric, point.help + " Base units; absent when the API gives no value." + CACHED,
             "counter" if point.counter else "gauge", _value(point.metric)) for point in POINTS),
    Family("isolarcloud_plant_installed_power_watts", "Installed (peak) power where the API gives it." + CACHED,
           "gauge", _value("isolarcloud_plant_installed_power_watts")),
)
POINT_VALUE = "isolarcloud_plant_point_value"
POINT_VALUE_HELP = ("Configured extra plant point, as the API gives it (no unit conversion; see the unit label)."
                    + CACHED)


def plant_label_values(account: str, plant: Plant) -> tuple[str, str, str, str]:
    return (account, plant.ps_id, plant.ps_name, plant.ps_type)


class PlantCollector(Collector):
    """Per-plant metrics of every account's current snapshot, as prometheus_client families."""

    def __init__(self, states: Callable[[], Iterable[AccountState]]) -> None:
        self.states = states

    def collect(self) -> Iterator[Metric]:
        snapshots = [(s.name, s.snapshot) for s in self.states() if s.snapshot is not None]
        for family in PLANT_FAMILIES:
            if family.kind == "info":
                metric: Metric = InfoMetricFamily(family.name, family.help, labels=PLANT_LABELS)
            elif family.kind == "counter":
                metric = CounterMetricFamily(family.name, family.help, labels=PLANT_LABELS)
            else:
                metric = GaugeMetricFamily(family.name, family.help, labels=PLANT_LABELS)
            for account, snapshot in snapshots:
                for plant in snapshot.plants:
                    value = family.value(plant)
                    if value is None:
                        continue
                    labels = plant_label_values(account, plant)
                    if family.kind == "info" and family.extra is not None:
                        metric.add_metric(list(labels), dict(family.extra(plant)))
                    else:
                        metric.add_metric(list(labels), value)
            yield metric
        points = GaugeMetricFamily(POINT_VALUE, POINT_VALUE_HELP,
                                   labels=(*PLANT_LABELS, "point_id", "point_name", "unit"))
        for account, snapshot in snapshots:
            for plant in snapshot.plants:
                for point_id, value in plant.extra_points.items():
                    name, unit = snapshot.point_names.get(point_id, ("", ""))
                    points.add_metric([*plant_label_values(account, plant), point_id, name, unit], value)
        yield points


class StatusCollector(Collector):
    """Health of each account and of the exporter; small, so it is rendered on every scrape."""

    def __init__(self, states: Callable[[], Iterable[AccountState]]) -> None:
        self.states = states

    def collect(self) -> Iterator[Metric]:
        states = list(self.states())
        g = GaugeMetricFamily
        up = g("isolarcloud_up", "1 when the account's last refresh succeeded and its snapshot is within max_age.",
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
                     "Effective refresh interval: the configured one, stretched to fit the API budget.",
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
        for s in states:
            a = s.name
            up.add_metric([a], 1.0 if s.up else 0.0)
            if s.snapshot is not None:
                plants.add_metric([a], len(s.snapshot.plants))
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
        yield from (up, plants, duration, success, refreshes, requests, auth, expiry, budget, hour_calls, interval,
                    max_age, backoff, rt_failed, units)
        info = InfoMetricFamily("isolarcloud_exporter_build", "Exporter version; value 1.")
        info.add_metric([], {"version": __version__, "python_version": platform.python_version()})
        yield info
