"""Lenient parsing of plant rows and values: every odd shape the API is known or suspected to send, and never a
missing value as healthy."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from exporter.data import ps_type_slug
from exporter.fetch.parse import (
    UnknownUnit,
    parse_float,
    parse_int,
    parse_timestamp,
    ps_id,
    unit_value,
    zone_offset,
)
from exporter.fetch.plants import legacy_production, parse_plant
from exporter.fetch.realtime import RealtimeApi
from tests.fakes import FakeGateway, oauth_session, ok

# The Quick Start example row, as documented.
ROW: dict[str, Any] = {
    "ps_id": 1152381, "ps_name": "Test plant", "description": None, "ps_type": 4, "online_status": 1,
    "valid_flag": 1, "grid_connection_status": 1, "install_date": "2023-08-08 15:28:00",
    "ps_location": "Hefei", "latitude": 31.86, "longitude": 117.28, "ps_fault_status": 3, "connect_type": 2,
    "update_time": "2024-01-02 03:04:05", "ps_current_time_zone": "GMT+8", "grid_connection_time": 20230808152800,
    "build_status": 2,
}


def utc(*args: int, offset: int = 8) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp() - offset * 3600


def test_documented_row() -> None:
    p = parse_plant(ROW)
    assert p is not None
    assert (p.ps_id, p.ps_name, p.ps_type, p.fault_status, p.online_status, p.build_status) == (
        "1152381", "Test plant", "residential_pv", 3, 1, 2)
    assert (p.grid_connection_status, p.valid_flag, p.connect_type) == (1, 1, 2)
    assert (p.latitude, p.longitude, p.time_zone, p.location) == (31.86, 117.28, "GMT+8", "Hefei")
    assert p.update_ts == utc(2024, 1, 2, 3, 4, 5)
    assert p.install_ts == utc(2023, 8, 8, 15, 28, 0)
    assert p.grid_connection_ts == utc(2023, 8, 8, 15, 28, 0)


@pytest.mark.parametrize("field", ["ps_fault_status", "online_status", "build_status", "grid_connection_status",
                                   "valid_flag"])
@pytest.mark.parametrize("missing", [None, "", "  ", "n/a", [], {}, True, 1.5])
def test_missing_status_is_none_never_a_healthy_default(field: str, missing: Any) -> None:
    attr = {"ps_fault_status": "fault_status"}.get(field, field)
    p = parse_plant({**ROW, field: missing})
    assert p is not None and getattr(p, attr) is None


def test_numbers_as_strings() -> None:
    p = parse_plant({**ROW, "ps_id": "1152381", "ps_fault_status": "1", "ps_type": "5", "latitude": "-33.9",
                     "longitude": "151.2", "build_status": "4.0", "grid_connection_time": "20230808152800"})
    assert p is not None
    assert (p.ps_id, p.fault_status, p.ps_type, p.build_status) == ("1152381", 1, "residential_storage", 4)
    assert (p.latitude, p.longitude) == (-33.9, 151.2)
    assert p.grid_connection_ts == utc(2023, 8, 8, 15, 28, 0)


def test_unknown_codes_stay_visible() -> None:
    p = parse_plant({**ROW, "ps_type": 99, "ps_fault_status": 7})
    assert p is not None and p.ps_type == "unknown_99" and p.fault_status == 7
    assert ps_type_slug(None) == "unknown"
    assert ps_type_slug(12) == "ci_storage" and ps_type_slug(10) == "utility_storage"


@pytest.mark.parametrize("value", [None, 0, "0", "", "abc", 91, -200])
def test_coordinates_zero_or_bad_are_absent(value: Any) -> None:
    p = parse_plant({**ROW, "latitude": value, "longitude": value if value not in (91,) else 181})
    assert p is not None and p.latitude is None and p.longitude is None


@pytest.mark.parametrize("value", [None, "", "garbage", 2023, "2023-13-45 99:00:00"])
def test_bad_timestamps_are_absent(value: Any) -> None:
    p = parse_plant({**ROW, "grid_connection_time": value, "update_time": value})
    assert p is not None and p.grid_connection_ts is None and p.update_ts is None


def test_time_zones() -> None:
    assert zone_offset("plant", "GMT-2") == timezone(-__import__("datetime").timedelta(hours=2))
    assert zone_offset("plant", "UTC+5:30") is not None
    assert zone_offset("plant", "") is None  # unknown zone: timestamps are not guessed
    assert zone_offset("UTC", "GMT+8") == timezone.utc
    assert parse_timestamp("2024-01-02 03:04:05", zone_offset("+01:00", "")) == utc(2024, 1, 2, 3, 4, 5, offset=1)
    assert parse_plant({**ROW, "ps_current_time_zone": None}).update_ts is None  # type: ignore[union-attr]
    assert parse_timestamp("2024-01-02T03:04:05+02:00", timezone.utc) == utc(2024, 1, 2, 3, 4, 5, offset=2)


def test_row_without_usable_id_is_skipped() -> None:
    for bad in (None, "", "abc", -1):
        assert parse_plant({**ROW, "ps_id": bad}) is None


def test_control_characters_in_names_become_spaces_but_newlines_stay() -> None:
    p = parse_plant({**ROW, "ps_name": 'a\r\nb\x00"c\\'})
    assert p is not None and p.ps_name == 'a \nb "c\\'


@pytest.mark.parametrize(("obj", "expected"), [
    ({"unit": "W", "value": "1500"}, 1500.0),
    ({"unit": "kW", "value": "1.5"}, 1500.0),
    ({"unit": "MW", "value": "0.002"}, 2000.0),
    ({"unit": "kWh", "value": "2"}, 7.2e6),
    ({"unit": "MWh", "value": "1"}, 3.6e9),
    ({"unit": "GWh", "value": "1"}, 3.6e12),
    ({"unit": "Wh", "value": "1"}, 3600.0),
    ({"unit": "度", "value": "1"}, 3.6e6),
    ({"unit": "kWp", "value": "10.5"}, 10500.0),
    ({"unit": "kW", "value": ""}, None),
    ({"unit": "kW", "value": None}, None),
    ({"unit": "kW"}, None),
    (None, None),
    ("12 kW", None),
])
def test_unit_values_normalise_to_base_units(obj: Any, expected: float | None) -> None:
    assert unit_value(obj) == pytest.approx(expected) if expected is not None else unit_value(obj) is None


def test_unknown_unit_is_reported_not_guessed() -> None:
    with pytest.raises(UnknownUnit):
        unit_value({"unit": "furlong", "value": "1"})
    values, unknown = legacy_production({"curr_power": {"unit": "hp", "value": "3"},
                                         "today_energy": {"unit": "kWh", "value": "12.5"}})
    assert unknown == ["hp"]
    assert values == {"energy_today_joules": pytest.approx(12.5 * 3.6e6)}


def test_realtime_values_missing_are_omitted_and_units_scaled() -> None:
    gateway = FakeGateway({"getPowerStationRealTimeData": lambda body: ok({"device_point_list": [
        {"ps_id": "1152381", "p83033": "108500.0", "p83022": "", "p83024": None, "p83252": "0.812", "p83025": "3.5"},
    ], "point_dict": [{"point_id": 83025, "point_name": "Plant equivalent hours", "point_unit": "h"}]})})
    api = RealtimeApi(oauth_session(gateway, clock=lambda: 0.0), batch_size=50, extra_points=["83025", "83016"])
    result = api.read(["1152381"])
    assert result.values == {"1152381": {"power_watts": 108500.0, "battery_soc_ratio": 0.812}}
    assert result.extra == {"1152381": {"83025": 3.5}}
    assert result.point_names == {"83025": ("Plant equivalent hours", "h")}


def test_one_canonical_plant_id() -> None:
    """Lists send integers, real-time answers strings; all forms of one id must name one plant."""
    assert ps_id(123) == ps_id("123") == ps_id(123.0) == ps_id(" 123 ") == ps_id("123.0") == "123"
    assert ps_id(-1) is None and ps_id("abc") is None and ps_id(None) is None and ps_id(True) is None


def test_parse_helpers() -> None:
    assert parse_int("  42 ") == 42 and parse_int("4.0") == 4 and parse_int("4.5") is None
    assert parse_float("1,234.5") == 1234.5 and parse_float("nan") is None and parse_float("inf") is None
