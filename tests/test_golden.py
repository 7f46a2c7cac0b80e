"""Golden exposition files: the exact bytes /metrics serves for a fixed set of account states, in both formats.

Any change to a metric's name, labels, HELP, escaping or order shows up here as a diff to review. The goldens
are also checked to be what prometheus_client itself renders: parsed with its parser and rendered again with
its renderer, they come back byte for byte. To accept an intended change: `UPDATE_GOLDEN=1 pytest
tests/test_golden.py`, then read the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from prometheus_client.openmetrics.exposition import generate_latest as om_generate
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from exporter import __version__
from exporter.data import AccountState, ApiQuota, CollectionState, Plant, PlantList, Production, StatsView
from exporter.serve.exposition import Exposition
from exporter.serve.sun import elevation

GOLDEN = Path(__file__).parent / "golden"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
T = 1_750_000_000.0


def plant(ps_id: str, name: str, **fields: object) -> Plant:
    base: dict[str, object] = dict(
        ps_id=ps_id, ps_name=name, ps_type_code=4, fault_status=3, online_status=1, build_status=2,
        grid_connection_status=1, valid_flag=1, connect_type=2, location="Hefei", time_zone="GMT+8",
        install_ts=T - 86400 * 400, update_ts=T - 120, grid_connection_ts=T - 86400 * 390, latitude=31.86,
        longitude=117.28)
    base.update(fields)
    return Plant(**base)  # type: ignore[arg-type]


PLANTS = (
    plant("1001", "Roof", connection_status=1, reported_faults=0, reported_alarms=2),
    # No coordinates: its sun comes from its time zone.
    plant("1002", 'Dach "Süd" \\ Line1\nLine2', ps_type_code=5, fault_status=1, connect_type=None,
          location='C:\\PV "loc"', time_zone="GMT+1", latitude=None, longitude=None),
    plant("1003", "阳光电源 🌞", ps_type_code=99, fault_status=None, online_status=None, build_status=None,
          grid_connection_status=None, valid_flag=None, install_ts=None, update_ts=None, grid_connection_ts=None,
          latitude=None, longitude=None, location="", time_zone=""),
)
PRODUCTION = Production(
    values={"1001": {"power_watts": 2500.0, "energy_today_joules": 3.6e7, "energy_joules": 1.8e10,
                     "battery_soc_ratio": 0.812, "grid_power_watts": -150.5},
            "1002": {"power_watts": 0.0, "energy_joules": 0.0, "installed_power_watts": 10_000.0}},
    extra={"1001": {"83016": 21.5, "83025": 3.0}},
    point_names={"83016": ("Plant ambient temperature", "℃"), "83025": ('Equivalent "hours"', "h")},
    taken_at=T, generation=2, fetched_at={"1001": T - 600, "1002": T})
STATS = StatsView(api_requests={("queryPowerStationList", "1"): 3, ("getPowerStationRealTimeData", "E999"): 1},
                  auth={("refresh", "success"): 2}, refreshes={"success": 5, "error": 1},
                  unknown_units={"hp": 1}, realtime_failed_plants=2, calls_this_hour=4,
                  limits={"page_size": 50, "realtime_batch_size": 25}, realtime_unanswered_plants=3,
                  counter_drops={"negative": 1}, rate_limited=2, pacing_wait=1.5)


def collection(name: str, up: bool, interval: float) -> CollectionState:
    return CollectionState(name=name, up=up, interval=interval, wanted_interval=300.0, calls_per_hour=12.0,
                           max_age=900.0, last_success=T if up else None, last_attempt=T, last_error=None)


STATES = [
    AccountState(name="home", auth_mode="oauth2", gateway="https://gateway.isolarcloud.eu",
                 plants=PlantList(PLANTS, T, 1), production=PRODUCTION, up=True, attempted=True, last_success=T,
                 last_attempt=T, last_error=None, duration=1.25, backoff_until=0.0, interval=300.0, max_age=900.0,
                 budget=1000, stats=STATS, token_expiries={"access": T + 172799, "refresh": T + 30 * 86400},
                 collections=(collection("plants", True, 300.0), collection("realtime", False, 720.0))),
    AccountState(name="stale", auth_mode="login", gateway="https://augateway.isolarcloud.com", plants=None,
                 production=None, up=False, attempted=True, last_success=None, last_attempt=T, last_error="x",
                 duration=None, backoff_until=T + 900, interval=300.0, max_age=900.0, budget=500,
                 stats=StatsView({}, {}, {}, {}, 0, 0), token_expiries={}, collections=(),
                 quota=ApiQuota(hour_limit=2000, day_limit=48000, hour_used=17, day_used=None, taken_at=T)),
]


def render(openmetrics: bool) -> str:
    exposition = Exposition(runtime_collectors=[], clock=lambda: T)  # the sun's elevation depends on the time
    body = b"".join(exposition.render_parts(STATES, openmetrics=openmetrics, gzip=False))
    # The build info names this interpreter's version: the one line that may differ between machines.
    return re.sub(r'python_version="[^"]*"', 'python_version="X"', body.decode()).replace(
        f'version="{__version__}"', 'version="V"')


def assert_golden(got: str, name: str, what: str = "the exposition") -> None:
    """`got` is the golden file `name` byte for byte; with UPDATE_GOLDEN=1 it is written instead (review the diff)."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8"), f"{what} changed: UPDATE_GOLDEN=1 and review {path}"


def assert_round_trip(text: str) -> None:
    """Parsed by prometheus_client and rendered again by it, OpenMetrics `text` comes back byte for byte (the text
    format's parser drops type information, so only OpenMetrics makes this round trip exact)."""

    class Families:
        def collect(self):  # type: ignore[no-untyped-def]
            yield from parse_openmetrics(text)

    assert om_generate(Families()).decode() == text  # type: ignore[arg-type]


@pytest.mark.parametrize(("openmetrics", "name"), [(False, "metrics.prom"), (True, "metrics.openmetrics")])
def test_exposition_matches_the_golden_file(openmetrics: bool, name: str) -> None:
    assert_golden(render(openmetrics), name)


def test_the_golden_file_is_what_prometheus_client_renders() -> None:
    assert_round_trip((GOLDEN / "metrics.openmetrics").read_text(encoding="utf-8"))


def test_the_golden_files_show_what_they_must() -> None:
    text = (GOLDEN / "metrics.prom").read_text(encoding="utf-8")
    assert 'ps_name="Dach \\"Süd\\" \\\\ Line1\\nLine2"' in text  # escapes
    assert 'isolarcloud_plant_fault_status{account="home",ps_id="1003"' not in text  # a missing value is absent
    assert 'ps_type="unknown_99"' in text
    assert ('isolarcloud_plant_point_value{account="home",point_id="83016",'
            'point_name="Plant ambient temperature"') in text
    assert 'isolarcloud_collection_up{account="home",collection="realtime"} 0.0' in text
    assert 'account="stale",ps_id' not in text  # no data, no plant series
    assert 'isolarcloud_up{account="stale"} 0.0' in text
    assert 'isolarcloud_api_quota_calls{account="stale",period="day"} 48000.0' in text
    assert 'isolarcloud_api_quota_used_calls{account="stale",period="day"}' not in text  # not reported: absent
    assert ('isolarcloud_plant_realtime_timestamp_seconds{account="home",ps_id="1001",ps_name="Roof",'
            'ps_type="residential_pv"} 1.7499994e+09') in text
    # The sun, computed by the exporter for the middle of T's minute: from the coordinates (Hefei, night at T), from
    # the zone for a plant without coordinates (GMT+1: 15 degrees east on the equator), none without either.
    t = T // 60 * 60 + 30
    assert ('isolarcloud_plant_sun_elevation_degrees{account="home",ps_id="1001",ps_name="Roof",'
            'ps_type="residential_pv",source="coordinates",time_zone="GMT+8"} '
            f'{round(elevation(31.86, 117.28, t), 1)}\n') in text
    assert round(elevation(0.0, 15.0, t), 1) > 0 > round(elevation(31.86, 117.28, t), 1)
    assert (f'ps_type="residential_storage",source="time_zone",time_zone="GMT+1"}} '
            f"{round(elevation(0.0, 15.0, t), 1)}\n") in text
    assert 'isolarcloud_plant_sun_elevation_degrees{account="home",ps_id="1003"' not in text
