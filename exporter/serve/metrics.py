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
from ..data import QUANTITIES, AccountState, Plant

PLANT_LABELS = ("account", "ps_id", "ps_name", "ps_type")
CACHED = " Cached: refreshed from the iSolarCloud plant list at most every refresh interval."
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
    Family("isolarcloud_plant_update_timestamp_seconds", "When the cloud last updated the plant (Unix time)."
           + CACHED, "gauge", lambda p, v: p.update_ts),
    Family("isolarcloud_plant_grid_connection_timestamp_seconds", "When the plant was connected to the grid "
           "(Unix time)." + CACHED, "gauge", lambda p, v: p.grid_connection_ts),
    Family("isolarcloud_plant_latitude_degrees", "Plant latitude; absent when the API gives 0 or none." + CACHED,
           "gauge", lambda p, v: p.latitude),
    Family("isolarcloud_plant_longitude_degrees", "Plant longitude; absent when the API gives 0 or none." + CACHED,
           "gauge", lambda p, v: p.longitude),
    *(Family("isolarcloud_plant_" + q.key, q.description + " Base units; absent when the API gives no value."
             + CACHED, "counter" if q.counter else "gauge", _quantity(q.key))
      for q in QUANTITIES),
)
POINT_VALUE = "isolarcloud_plant_point_value"
POINT_VALUE_HELP = ("Configured extra plant point, as the API gives it (no unit conversion; see the unit label)."
                    + CACHED)
# Computed by the exporter (serve/sun.py), not read from the cloud; rendered at most once a minute (exposition.py).
SUN_ELEVATION = "isolarcloud_plant_sun_elevation_degrees"
SUN_ELEVATION_HELP = ("Solar elevation at the plant in degrees (geometric; negative below the horizon), computed by "
                      "the exporter from the plant's coordinates or, without them, its time zone (label source; "
                      "time_zone as on isolarcloud_plant_info); recomputed once a minute.")


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
            for c in s.collections:
                c_up.add_metric([a, c.name], 1.0 if c.up else 0.0)
                c_interval.add_metric([a, c.name], c.interval)
                if c.last_success is not None:
                    c_success.add_metric([a, c.name], c.last_success)
                c_budget.add_metric([a, c.name], c.calls_per_hour)
                c_max_age.add_metric([a, c.name], c.max_age)
        yield from (up, plants, duration, success, refreshes, requests, auth, expiry, budget, hour_calls, interval,
                    max_age, backoff, rt_failed, units, c_up, c_interval, c_success, c_budget, c_max_age)
        info = InfoMetricFamily("isolarcloud_exporter_build", "Exporter version; value 1.")
        info.add_metric([], {"version": __version__, "python_version": platform.python_version()})
        yield info
