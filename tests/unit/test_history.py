"""The history endpoints as a specification (fetch/history.py): the parameters of both calls, the portal's limits
(≤ 3 h windows, ≤ 50 plants, ≤ 50 points, ≤ 100 days, ≤ 24 months), stamps read in the plant's zone, lenient
parsing where gaps stay gaps, and the call arithmetic. No sockets: an in-memory gateway (tests/fakes.py)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from itertools import pairwise
from typing import Any

import pytest

from exporter.fetch.history import (
    DAILY_QUANTITIES,
    MAX_PLANTS_PER_CALL,
    POINT_QUANTITIES,
    WINDOWS_PER_DAY,
    HistoryApi,
    batches,
    daily_calls,
    day_chunks,
    minute_calls,
    minute_windows,
    month_chunks,
)
from exporter.fetch.parse import zone_offset
from tests.fakes import FakeGateway, fail, oauth_session, ok

MINUTE = "getPowerStationPointMinuteDataList"
DAILY = "getPowerStationPointDayMonthYearDataList"
UTC8 = timezone(timedelta(hours=8))
Q = {q.key: q for q in POINT_QUANTITIES}


def api(gateway: FakeGateway) -> HistoryApi:
    return HistoryApi(oauth_session(gateway, clock=lambda: 1e9))


def test_a_day_is_eight_windows_under_three_hours_that_never_share_a_stamp() -> None:
    windows = minute_windows(date(2024, 3, 1))
    assert len(windows) == WINDOWS_PER_DAY == 8
    assert windows[0] == (datetime(2024, 3, 1, 0, 0, 0), datetime(2024, 3, 1, 2, 59, 59))
    assert windows[-1] == (datetime(2024, 3, 1, 21, 0, 0), datetime(2024, 3, 1, 23, 59, 59))
    for (_a, end), (start, _b) in pairwise(windows):
        assert start - end == timedelta(seconds=1)
    assert all(end - start < timedelta(hours=3) for start, end in windows)


def test_chunks_respect_the_limits() -> None:
    assert [len(b) for b in batches([str(i) for i in range(101)])] == [50, 50, 1]
    assert batches([str(i) for i in range(10)], size=500) == [[str(i) for i in range(10)]]
    chunks = day_chunks(date(2024, 1, 1), date(2024, 12, 31))
    assert [(b - a).days + 1 for a, b in chunks] == [100, 100, 100, 66]
    assert chunks[0][0] == date(2024, 1, 1) and chunks[-1][1] == date(2024, 12, 31)
    assert all(chunks[i][1] + timedelta(days=1) == chunks[i + 1][0] for i in range(len(chunks) - 1))
    assert day_chunks(date(2024, 1, 2), date(2024, 1, 1)) == []
    months = month_chunks(date(2020, 11, 15), date(2024, 2, 3))
    assert months == [(date(2020, 11, 1), date(2022, 10, 1)), (date(2022, 11, 1), date(2024, 2, 1))]


@pytest.mark.parametrize(("plants", "days", "calls"), [
    (100, 365, 365 * 8 * 2),  # the example: a year of 15-minute data for 100 plants = 5,840 calls
    (1, 1, 8), (50, 1, 8), (51, 1, 16), (0, 10, 0), (10, 0, 0), (1000, 30, 30 * 8 * 20)])
def test_minute_call_arithmetic(plants: int, days: int, calls: int) -> None:
    assert minute_calls(plants, days) == calls


def test_more_than_fifty_points_cost_a_second_call_per_window() -> None:
    assert minute_calls(10, 1, points=51) == 16
    assert daily_calls(10, 100, points=51) == 2


@pytest.mark.parametrize(("plants", "days", "calls"), [(100, 365, 4 * 2), (1, 100, 1), (1, 101, 2), (50, 1, 1),
                                                       (51, 1, 2), (0, 5, 0)])
def test_daily_call_arithmetic(plants: int, days: int, calls: int) -> None:
    assert daily_calls(plants, days) == calls


def minute_answer(rows_by_plant: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return ok({**rows_by_plant, **extra})


def test_minute_call_parameters_and_values_in_base_units_at_utc() -> None:
    gateway = FakeGateway({MINUTE: lambda body: minute_answer({
        "1001": [{"time_stamp": "20240301090000", "p83033": "1500.0", "p83022": 2000, "p83024": "12345.5",
                  "p83252": "0.5"},
                 {"time_stamp": 20240301091500, "p83033": None, "p83022": "", "p83024": "x"}],
    })})
    quantities = [Q["power_watts"], Q["energy_today_joules"], Q["energy_joules"], Q["battery_soc_ratio"]]
    result = api(gateway).minute({"1001": UTC8, "1002": UTC8}, quantities, datetime(2024, 3, 1, 9),
                                 datetime(2024, 3, 1, 11, 59, 59), 15)
    _endpoint, body, headers = gateway.calls[0]
    assert body["ps_id_list"] == ["1001", "1002"]
    assert body["points"] == "p83033,p83022,p83024,p83252"
    # Asked a second early: neither end on the grid, whatever the gateway does with the ends of a window.
    assert body["start_time_stamp"] == "20240301085959" and body["end_time_stamp"] == "20240301115958"
    assert body["minute_interval"] == "15"
    assert headers["Authorization"].startswith("Bearer ")
    ts = datetime(2024, 3, 1, 1, 0, tzinfo=timezone.utc).timestamp()  # 09:00 at UTC+8
    # The second row has no usable value at all: a gap, not zeros. Plant 1002 sent nothing: absent.
    assert result.rows == {"1001": [(ts, {"power_watts": 1500.0, "energy_today_joules": 2000 * 3600.0,
                                          "energy_joules": 12345.5 * 3600.0, "battery_soc_ratio": 0.5})]}
    assert result.samples() == 4


def test_minute_rows_outside_the_window_are_dropped_and_rows_come_sorted_once_per_stamp() -> None:
    rows = [{"time_stamp": f"202403010{h}{m:02d}00", "p83033": str(h * 100 + m)} for h in (2, 1, 0, 3)
            for m in (0, 30)]
    rows.append({"time_stamp": "20240301013000", "p83033": "999"})  # a repeated stamp: the last one wins
    gateway = FakeGateway({MINUTE: lambda body: minute_answer({"7": rows})})
    result = api(gateway).minute({"7": timezone.utc}, [Q["power_watts"]], datetime(2024, 3, 1, 0),
                                 datetime(2024, 3, 1, 2, 59, 59), 30)
    stamps = [datetime.fromtimestamp(ts, timezone.utc).strftime("%H%M") for ts, _ in result.rows["7"]]
    assert stamps == ["0000", "0030", "0100", "0130", "0200", "0230"]
    assert result.rows["7"][3][1] == {"power_watts": 999.0}


@pytest.mark.parametrize("shape", ["ps_key", "single_object", "numbers", "separators"])
def test_minute_answers_are_read_leniently(shape: str) -> None:
    row: dict[str, Any] = {"time_stamp": "20240301100500", "p83033": "42"}
    key = "55"
    entry: Any = [row]
    if shape == "ps_key":
        key = "55_11_0_0"
    elif shape == "single_object":
        entry = row
    elif shape == "numbers":
        entry = [{"time_stamp": 20240301100500, "p83033": 42}]
    elif shape == "separators":
        entry = [{"time_stamp": "2024-03-01 10:05:00", "p83033": "42"}]
    gateway = FakeGateway({MINUTE: lambda body: minute_answer({key: entry, "point_dict": [{"point_id": "83033"}]})})
    result = api(gateway).minute({"55": timezone.utc}, [Q["power_watts"]], datetime(2024, 3, 1, 9),
                                 datetime(2024, 3, 1, 11, 59, 59), 5)
    assert result.rows == {"55": [(datetime(2024, 3, 1, 10, 5, tzinfo=timezone.utc).timestamp(),
                                   {"power_watts": 42.0})]}


def test_plants_not_asked_for_and_broken_entries_are_ignored() -> None:
    gateway = FakeGateway({MINUTE: lambda body: minute_answer({
        "1": [{"time_stamp": "garbage", "p83033": "1"}, "not a row", {"p83033": "2"}],
        "2": None, "999": [{"time_stamp": "20240301100000", "p83033": "3"}],
    }, illegal_ps_id_list=["3", None])})
    result = api(gateway).minute({"1": UTC8, "2": UTC8, "3": UTC8}, [Q["power_watts"]], datetime(2024, 3, 1, 9),
                                 datetime(2024, 3, 1, 11, 59, 59), 5)
    assert result.rows == {}
    assert result.illegal == {"3"}


def test_an_empty_answer_is_no_data() -> None:
    gateway = FakeGateway({MINUTE: lambda body: ok({})})
    assert api(gateway).minute({"1": UTC8}, [Q["power_watts"]], datetime(2024, 3, 1), datetime(2024, 3, 1, 2),
                               5).rows == {}


def test_the_api_time_zone_setting_decides_the_stamps() -> None:
    gateway = FakeGateway({MINUTE: lambda body: minute_answer({"1": [{"time_stamp": "20240301100000",
                                                                       "p83033": "1"}]})})
    times = {}
    for spec in ("plant", "UTC", "-02:00"):
        tz = zone_offset(spec, "GMT+8")
        assert tz is not None
        result = api(gateway).minute({"1": tz}, [Q["power_watts"]], datetime(2024, 3, 1, 9),
                                     datetime(2024, 3, 1, 11, 59, 59), 5)
        times[spec] = result.rows["1"][0][0]
    base = datetime(2024, 3, 1, 10, tzinfo=timezone.utc).timestamp()
    assert times == {"plant": base - 8 * 3600, "UTC": base, "-02:00": base + 2 * 3600}


def test_limits_are_refused_before_any_call() -> None:
    gateway = FakeGateway({})
    history = api(gateway)
    many = {str(i): UTC8 for i in range(MAX_PLANTS_PER_CALL + 1)}
    with pytest.raises(ValueError, match="50 plants"):
        history.minute(many, [Q["power_watts"]], datetime(2024, 3, 1), datetime(2024, 3, 1, 1), 5)
    with pytest.raises(ValueError, match="3 hours"):
        history.minute({"1": UTC8}, [Q["power_watts"]], datetime(2024, 3, 1), datetime(2024, 3, 1, 3), 5)
    with pytest.raises(ValueError, match="50 points"):
        history.minute({"1": UTC8}, [Q["power_watts"]] * 51, datetime(2024, 3, 1), datetime(2024, 3, 1, 1), 5)
    with pytest.raises(ValueError, match="100 days"):
        history.daily({"1": UTC8}, DAILY_QUANTITIES, date(2024, 1, 1), date(2024, 4, 10))
    assert gateway.calls == []


def test_quota_errors_surface_typed() -> None:
    from exporter.fetch.envelope import QuotaError

    gateway = FakeGateway({MINUTE: [fail("E999", "er_hour_call_api_times_upper_limit")]})
    with pytest.raises(QuotaError) as caught:
        api(gateway).minute({"1": UTC8}, [Q["power_watts"]], datetime(2024, 3, 1), datetime(2024, 3, 1, 1), 5)
    assert caught.value.result == "E999"
    assert gateway.results[(MINUTE, "E999")] == 1


def test_daily_call_parameters_and_peaks_stamped_at_the_end_of_the_local_day() -> None:
    gateway = FakeGateway({DAILY: lambda body: ok({
        "1001": {"p83022": [{"2": "5000", "time_stamp": "20240301"}, {"2": 6000.0, "time_stamp": 20240302},
                            {"2": None, "time_stamp": "20240303"}, {"1": "7", "time_stamp": "20240304"}],
                 "p83024": {"2": "100000", "time_stamp": "20240302"}},
        "point_dict": [], "illegal_ps_id_list": "1009"})})
    quantities = [Q["energy_today_joules"], Q["energy_joules"]]
    result = api(gateway).daily({"1001": UTC8, "1009": UTC8}, quantities, date(2024, 3, 1), date(2024, 3, 4))
    _endpoint, body, _headers = gateway.calls[0]
    assert body == {**body, "query_type": "day", "data_type": "2", "ps_id_list": ["1001", "1009"],
                    "data_point": "p83022,p83024", "start_time": "20240301", "end_time": "20240304", "order": 0}

    def end_of(day: int) -> float:
        return datetime.combine(date(2024, 3, day), time(23, 59, 59), tzinfo=UTC8).timestamp()

    assert result.rows == {"1001": [(end_of(1), {"energy_today_joules": 5000 * 3600.0}),
                                    (end_of(2), {"energy_today_joules": 6000 * 3600.0,
                                                 "energy_joules": 100000 * 3600.0})]}
    assert result.illegal == {"1009"}


def test_daily_rows_that_carry_the_points_themselves_are_read_too() -> None:
    gateway = FakeGateway({DAILY: lambda body: ok({"5": [{"time_stamp": "20240301", "p83022": {"2": "10"}},
                                                         {"time_stamp": "2024-03-02", "p83022": "11"},
                                                         {"time_stamp": "20240399", "p83022": "12"}]})})
    result = api(gateway).daily({"5": timezone.utc}, [Q["energy_today_joules"]], date(2024, 3, 1),
                                date(2024, 3, 2))
    assert [values for _ts, values in result.rows["5"]] == [{"energy_today_joules": 36000.0},
                                                           {"energy_today_joules": 39600.0}]


def test_daily_quantities_are_the_energies_only() -> None:
    keys = {q.key for q in DAILY_QUANTITIES}
    assert "energy_today_joules" in keys and "energy_joules" in keys and "grid_import_energy_joules" in keys
    assert not {k for k in keys if k.endswith("_watts") or k.endswith("_ratio")}
