"""Fuzzing the response parsers with hypothesis: whatever a gateway sends, the parsers raise nothing but the
exporter's own error types (ApiError subclasses, UnknownUnit), so a refresh fails cleanly or succeeds.

Values are JSON-shaped the way `json.loads` produces them: arbitrary nesting, integers of hundreds of digits,
NaN and Infinity (Python's json accepts those literals), strings with any characters.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.data import QUANTITIES
from exporter.fetch.envelope import ApiError, check_result, decode, result_data
from exporter.fetch.paging import row_total
from exporter.fetch.parse import UnknownUnit, unit_value
from exporter.fetch.plants import legacy_production, parse_plant
from exporter.fetch.realtime import RealtimeApi
from tests.fakes import FakeGateway, oauth_session, ok

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Integers as json.loads can return them (it refuses literals of more than 4300 digits).
big_ints = st.integers(min_value=-(10**600), max_value=10**600)
# The values that break naive parsers, drawn often: random generation alone rarely hits them.
nasty = st.sampled_from([float("nan"), float("inf"), float("-inf"), 10**400, -(10**400), 2**1024, 1e308, -0.0,
                         10**20, "", "\x00", "\r", "\ud800", "1e999", "-1e999", "1" * 5000, "9" * 400 + ".0"])
scalars = (nasty | st.none() | st.booleans() | st.integers() | big_ints
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40))
numberish = st.one_of(
    nasty,
    st.from_regex(r"\A-?\d{1,20}(\.\d{0,6})?\Z"),
    st.from_regex(r"\A\s*-?[\d,]{1,12}(\.\d+)?(e[+-]?\d{1,4})?\s*\Z"),
    st.sampled_from(["NaN", "nan", "inf", "-Infinity", "1e400", "", " ", "--", "0x10", "١٢٣", "1_000"]),
)
timestamps = st.one_of(
    nasty,
    st.from_regex(r"\A\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\Z"),
    st.from_regex(r"\A\d{14}\Z"),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}([+-]\d{2}:\d{2})?\Z"),
    st.sampled_from(["0001-01-01 00:00:00", "9999-12-31 23:59:59", "00010101000000", "99991231235959",
                     "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2024-02-30 10:00:00"]),
    st.integers(min_value=0, max_value=10**16), st.floats(allow_nan=True, allow_infinity=True),
)
zones = st.one_of(st.from_regex(r"\A(GMT|UTC)\s?[+-]\s?\d{1,2}(:?\d{2})?\Z"), st.sampled_from(["GMT", "UTC", ""]),
                  st.text(max_size=12))
json_values = st.recursive(scalars | numberish, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=20)

PLANT_FIELDS = ("ps_id", "ps_name", "ps_type", "ps_fault_status", "online_status", "build_status",
                "grid_connection_status", "valid_flag", "connect_type", "ps_location", "ps_current_time_zone",
                "install_date", "update_time", "grid_connection_time", "latitude", "longitude")


@st.composite
def plant_rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key in PLANT_FIELDS:
        if draw(st.booleans()):
            if key in ("install_date", "update_time", "grid_connection_time"):
                row[key] = draw(timestamps | json_values)
            elif key == "ps_current_time_zone":
                row[key] = draw(zones | json_values)
            else:
                row[key] = draw(numberish | json_values)
    for key in ("curr_power", "today_energy", "total_energy", "total_capcity"):
        if draw(st.booleans()):
            row[key] = draw(unit_objects | json_values)
    return row


unit_objects = st.fixed_dictionaries({}, optional={
    "unit": st.sampled_from(["W", "kW", "MWh", "kWh", "度", "万度", "kwp", "", " ", "furlongs"]) | st.text(max_size=6)
    | json_values,
    "value": numberish | json_values,
})


@SETTINGS
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
       | st.sampled_from([b"NaN", b"[" * 100_000, b'{"a":' * 50_000, b"1" * 5000, b'"\\ud800"', b"\xef\xbb\xbf{}"]))
def test_decode_raises_only_api_errors(raw: bytes) -> None:
    try:
        doc = decode("ep", raw)
    except ApiError:
        return
    assert isinstance(doc, dict)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["result_code", "result_msg", "result_data", "error", "x"]), json_values)
       | st.fixed_dictionaries({"result_code": st.sampled_from(["1", 1, "E00003", "E999", " 1 ", "1.0", None])
                                | json_values, "result_msg": json_values, "result_data": json_values}))
def test_check_result_and_result_data_raise_only_api_errors(doc: dict[str, Any]) -> None:
    for judge in (check_result, result_data):
        try:
            out = judge("ep", doc)
        except ApiError as exc:
            assert exc.result and len(exc.result) <= 40
            assert "\n" not in str(exc)
            continue
        if judge is result_data:
            assert isinstance(out, dict)


@SETTINGS
@given(plant_rows(), st.sampled_from(["plant", "UTC", "+08:00", "-14:00"]))
def test_parse_plant_never_raises(row: dict[str, Any], api_time_zone: str) -> None:
    plant = parse_plant(row, api_time_zone)
    if plant is None:
        return
    assert plant.ps_id.isdigit()
    for ts in (plant.install_ts, plant.update_ts, plant.grid_connection_ts):
        assert ts is None or math.isfinite(ts)
    for coordinate in (plant.latitude, plant.longitude):
        assert coordinate is None or math.isfinite(coordinate)
    assert "\r" not in plant.ps_name + plant.location + plant.time_zone
    values, _unknown = legacy_production(row)
    assert all(math.isfinite(v) for v in values.values())


@SETTINGS
@given(unit_objects | json_values)
def test_unit_value_raises_only_unknown_unit(obj: Any) -> None:
    try:
        value = unit_value(obj)
    except UnknownUnit:
        return
    assert value is None or math.isfinite(value)


@SETTINGS
@given(st.dictionaries(st.sampled_from([f"p{q.point_id}" for q in QUANTITIES if q.point_id] + ["p99999", "ps_id", "x"]),
                       numberish | json_values, max_size=16),
       st.lists(st.sampled_from(["99999", "83033", "1"]) | st.text(max_size=6), max_size=3))
def test_realtime_entries_never_raise(entry: dict[str, Any], extra: list[str]) -> None:
    gateway = FakeGateway({"getPowerStationRealTimeData": lambda body: ok({"device_point_list": [
        {**entry, "ps_id": "1"}, entry]})})
    result = RealtimeApi(oauth_session(gateway, clock=lambda: 0.0), batch_size=50, extra_points=extra).read(["1"])
    assert all(math.isfinite(v) for values in result.values.values() for v in values.values())
    assert all(math.isfinite(v) for values in result.extra.values() for v in values.values())


@SETTINGS
@given(st.dictionaries(st.sampled_from(["rowCount", "row_count", "pageList"]), numberish | json_values))
def test_row_total_never_raises(data: dict[str, Any]) -> None:
    total = row_total(data)
    assert total is None or (isinstance(total, int) and total >= 0)
