"""What the real cloud may do, as specifications without sockets (issue 14): limits learned from the gateway,
real-time answers that leave plants out, numbers and units as recorded, lifetime counters that dip, pacing.
End-to-end versions against the simulator are in tests/test_cloud_behaviour.py and tests/test_rate_limit.py."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest

from exporter.collect.counters import RESET_AFTER, CounterGuard
from exporter.fetch.envelope import ResponseError, ResultError, decode
from exporter.fetch.pacing import GatewayPacer, Pace, Pacers, gateway_key, retry_after
from exporter.fetch.parse import UnknownUnit, parse_float, parse_zoned_timestamp, unit_value
from exporter.fetch.plants import PlantListApi, parse_plant
from exporter.fetch.realtime import RealtimeApi
from tests.fakes import FakeGateway, fail, oauth_session, ok, paged_list, plant_row

LIST = "queryPowerStationList"
RT = "getPowerStationRealTimeData"


# -- plant list: a clamped page size is asked for from then on -------------------------------------------------


def test_a_clamped_page_size_is_asked_for_in_later_passes() -> None:
    """A gateway that would compute the offset from the size asked while serving fewer rows stays right once the
    exporter asks for what it serves."""
    gateway = FakeGateway({LIST: paged_list([plant_row(i) for i in range(30)], max_size=7)})
    plants = PlantListApi(oauth_session(gateway, clock=lambda: 1e9), page_size=10, filters={})
    assert plants.read().consistent and plants.effective_page_size == 7
    gateway.calls.clear()
    assert len(plants.read().rows) == 30
    assert [body["size"] for _, body, _ in gateway.calls] == [7] * 5


def test_a_short_last_page_is_no_clamp() -> None:
    gateway = FakeGateway({LIST: paged_list([plant_row(i) for i in range(25)])})
    plants = PlantListApi(oauth_session(gateway, clock=lambda: 1e9), page_size=10, filters={})
    plants.read()
    assert plants.effective_page_size == 10


# -- real-time: refused batches shrink, nobody is lost ---------------------------------------------------------


def realtime_gateway(limit: int | None = None, code: str = "010", message: str = "er_parameter_value_invalid",
                     drop: set[str] | None = None, fail_ids: set[str] | None = None) -> FakeGateway:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        ids = body["ps_id_list"]
        if limit is not None and len(ids) > limit:
            return fail(code, message)
        failed = [i for i in ids if i in (fail_ids or set())]
        entries = [{"ps_id": i, "p83033": "100.0", "p83024": "5.0"} for i in ids
                   if i not in (drop or set()) and i not in failed]
        return ok({"device_point_list": entries, "fail_ps_id_list": failed})

    return FakeGateway({RT: answer})


def rt_api(gateway: FakeGateway, batch_size: int = 50) -> RealtimeApi:
    return RealtimeApi(oauth_session(gateway, clock=lambda: 1e9), batch_size=batch_size, extra_points=())


IDS = [str(1000 + i) for i in range(60)]


@pytest.mark.parametrize(("code", "message"), [("010", "er_parameter_value_invalid:ps_id_list"),
                                               ("009", "er_missing_parameter"),
                                               ("-1", "ps_id_list exceeds the maximum of 20"),
                                               ("E997", "too many plants")])
def test_a_refused_batch_is_halved_and_the_size_remembered(code: str, message: str) -> None:
    gateway = realtime_gateway(limit=20, code=code, message=message)
    api = rt_api(gateway)
    result = api.read(IDS)
    assert set(result.values) == set(IDS) and not result.unanswered
    assert api.effective_batch_size == 13 and result.shrunk_from == 50  # 50 and 25 refused, 13 answered
    assert api.calls(60) == 5
    gateway.calls.clear()
    api.read(IDS)
    assert [len(body["ps_id_list"]) for _, body, _ in gateway.calls] == [13, 13, 13, 13, 8]


def test_a_refusal_that_is_not_about_the_size_fails_and_teaches_nothing() -> None:
    """Every batch refused, down to a single plant: the request is wrong (say, a point id), not its size. The pass
    fails visibly and the batch size stays as configured."""
    gateway = FakeGateway({RT: lambda body: fail("010", "er_parameter_value_invalid:point_id_list")})
    api = rt_api(gateway)
    with pytest.raises(ResultError):
        api.read(IDS)
    assert api.effective_batch_size == 50
    assert gateway.count(RT) == 7  # 50, 25, 13, 7, 4, 2, 1: bounded


def test_other_errors_are_not_taken_for_a_limit() -> None:
    gateway = FakeGateway({RT: lambda body: fail("E996", "api not found")})
    with pytest.raises(ResultError):
        rt_api(gateway).read(IDS)
    assert gateway.count(RT) == 1


def test_plants_left_out_are_asked_again_once_then_counted() -> None:
    gateway = realtime_gateway(drop={"1003", "1030"})
    result = rt_api(gateway).read(IDS)
    assert result.unanswered == {"1003", "1030"} and result.asked_again == 2
    asked = [body["ps_id_list"] for _, body, _ in gateway.calls]
    assert asked[-1] == ["1003", "1030"] and len(asked) == 3


def test_a_gateway_answering_only_the_first_plants_is_asked_in_smaller_batches() -> None:
    """Silently answering only the first 20 plants of a batch: the rest are asked again in batches of 20."""
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        return ok({"device_point_list": [{"ps_id": i, "p83033": "1"} for i in body["ps_id_list"][:20]]})

    gateway = FakeGateway({RT: answer})
    result = rt_api(gateway).read(IDS)
    assert set(result.values) == set(IDS) and not result.unanswered
    assert [len(body["ps_id_list"]) for _, body, _ in gateway.calls] == [50, 10, 20, 10]


@pytest.mark.parametrize("empty", [{}, [], "", {"device_point_list": []}, {"device_point_list": None}])
def test_an_empty_answer_means_no_data_for_these_plants(empty: Any) -> None:
    gateway = FakeGateway({RT: lambda body: ok(empty)})
    result = rt_api(gateway).read(IDS)
    assert result.values == {} and result.unanswered == set(IDS) and result.empty_answers == 2
    assert gateway.count(RT) == 2  # not asked again: the gateway said there is nothing
    assert gateway.results[(RT, "1")] == 2


def test_an_answer_missing_its_list_beside_other_keys_is_still_broken() -> None:
    gateway = FakeGateway({RT: lambda body: ok({"fail_ps_id_list": [], "point_dict": []})})
    with pytest.raises(ResponseError):
        rt_api(gateway).read(IDS)
    assert gateway.results[(RT, "invalid_response")] == 1


def test_nested_entries_ps_key_and_stray_entries() -> None:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        ids = body["ps_id_list"]
        entries: list[Any] = [{"device_point": {"ps_id": ids[0], "p83033": "1.5"}},
                              {"ps_key": f"{ids[1]}_11_0_0", "p83033": "2.5"},
                              {"ps_id": "999", "ps_key": "999_11_0_0", "p83033": "3"}, "junk", None]
        entries += [{"ps_id": int(i), "p83033": "4"} for i in ids[2:]]
        return ok({"device_point_list": entries})

    result = rt_api(FakeGateway({RT: answer})).read(IDS[:5])
    assert result.values["1000"]["power_watts"] == 1.5 and result.values["1001"]["power_watts"] == 2.5
    assert set(result.values) == set(IDS[:5]) and result.stray_entries == 3 and not result.unanswered


@pytest.mark.parametrize("listed", [lambda ids: ",".join(ids), lambda ids: [int(i) for i in ids],
                                    lambda ids: " , ".join(ids)])
def test_fail_ps_id_list_as_ids_in_any_form(listed: Any) -> None:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        ids = body["ps_id_list"]
        return ok({"device_point_list": [{"ps_id": i, "p83033": "1"} for i in ids[2:]],
                   "fail_ps_id_list": listed(ids[:2])})

    result = rt_api(FakeGateway({RT: answer})).read(IDS[:10])
    assert result.failed == {"1000", "1001"} and not result.unanswered and len(result.values) == 8


# -- numbers, units, timestamps --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "number"), [
    ("12,5", 12.5), ("-3,25", -3.25), ("1.234,5", 1234.5), ("1.234.567,89", 1234567.89), ("1,2345", 1.2345),
    ("1,234,567", 1234567.0), ("1,234.5", 1234.5), ("12,345,678.25", 12345678.25), ("1234.5", 1234.5),
    ("1,234", None), ("12,34,56", None), ("1,23,456.7", None), ("1,2,3", None), (",5", None), ("1,", None),
])
def test_commas_only_where_unambiguous(text: str, number: float | None) -> None:
    assert parse_float(text) == number


@pytest.mark.parametrize(("unit", "watts_or_joules"), [
    ("kW·h", 3.6e6), ("kW⋅h", 3.6e6), ("kW h", 3.6e6), ("千瓦时", 3.6e6), ("万千瓦时", 3.6e10), ("度", 3.6e6),
    ("瓦", 1.0), ("千瓦", 1e3), ("兆瓦", 1e6), ("兆瓦时", 3.6e9),
])
def test_more_legacy_units(unit: str, watts_or_joules: float) -> None:
    assert unit_value({"unit": unit, "value": "1"}) == pytest.approx(watts_or_joules)


@pytest.mark.parametrize("unit", ["", "  ", "kWx", "千"])
def test_an_unreadable_unit_stays_unknown(unit: str) -> None:
    with pytest.raises(UnknownUnit):
        unit_value({"unit": unit, "value": "1"})


def test_curr_power_update_time_is_the_freshness_time_with_its_own_offset() -> None:
    row = {**plant_row(1), "ps_current_time_zone": "GMT-1", "curr_power_update_time": "2025-08-17T22:31:36+08:00"}
    del row["update_time"]
    plant = parse_plant(row)
    assert plant is not None
    assert plant.update_ts == datetime(2025, 8, 17, 14, 31, 36, tzinfo=timezone.utc).timestamp()
    # The zone string is not needed (nor trusted) for it.
    plant = parse_plant({**row, "ps_current_time_zone": "??"})
    assert plant is not None and plant.update_ts is not None
    assert parse_zoned_timestamp("2025-08-17 22:31:36") is None  # no offset: read in the plant's zone instead
    without = parse_plant({**row, "curr_power_update_time": "2025-08-17 22:31:36"})
    assert without is not None
    assert without.update_ts == datetime(2025, 8, 17, 23, 31, 36, tzinfo=timezone.utc).timestamp()


def test_legacy_state_fields() -> None:
    plant = parse_plant({**plant_row(1), "ps_status": "1", "fault_count": 2, "alarm_count": "0"})
    assert plant is not None
    assert (plant.connection_status, plant.reported_faults, plant.reported_alarms) == (1, 2, 0)
    plant = parse_plant({**plant_row(1), "ps_status": None, "fault_count": -1})
    assert plant is not None and (plant.connection_status, plant.reported_faults) == (None, None)
    assert parse_plant(plant_row(1)).reported_alarms is None  # type: ignore[union-attr]


def test_an_answer_of_tiny_objects_is_refused_before_parsing() -> None:
    dense = '{"result_code":"1","result_data":{"pageList":[' + ",".join(["{}"] * 600_000) + "]}}"
    with pytest.raises(ResponseError) as caught:
        decode("queryPowerStationList", dense)
    assert caught.value.result == "too_large"
    rows = '{"result_code":"1","result_data":{"pageList":[' + ",".join(
        ['{"ps_id":1,"ps_name":"Plant number one","ps_type":4}'] * 30_000) + "]}}"
    assert len(decode("queryPowerStationList", rows.encode())["result_data"]["pageList"]) == 30_000


# -- lifetime counters -----------------------------------------------------------------------------------------


def test_negative_lifetime_values_are_dropped_and_counted() -> None:
    guard = CounterGuard()
    values = {"1": {"consumption_joules": -1.72e9, "consumption_today_joules": 5e6, "energy_joules": 1e9}}
    assert guard.check(values) == Counter({"negative": 1})
    assert values == {"1": {"consumption_today_joules": 5e6, "energy_joules": 1e9}}


def test_a_dip_is_dropped_until_it_persists() -> None:
    guard = CounterGuard()
    assert not guard.check({"1": {"energy_joules": 100.0}})
    for strike in range(1, RESET_AFTER):
        values = {"1": {"energy_joules": 40.0}}
        assert guard.check(values) == Counter({"decrease": 1})
        assert values == {"1": {}}, strike
    values = {"1": {"energy_joules": 40.0}}
    assert not guard.check(values) and values["1"]["energy_joules"] == 40.0  # a real reset, believed
    assert not guard.check({"1": {"energy_joules": 41.0}})


def test_a_one_pass_glitch_never_reaches_prometheus() -> None:
    guard = CounterGuard()
    guard.check({"1": {"energy_joules": 100.0}})
    assert guard.check({"1": {"energy_joules": 10.0}}) == Counter({"decrease": 1})
    assert not guard.check({"1": {}})  # a pass without the value keeps the dip pending
    values = {"1": {"energy_joules": 101.0}}
    assert not guard.check(values) and values["1"]["energy_joules"] == 101.0
    assert not guard.dips
    guard.check({"1": {"energy_joules": 102.0}, "2": {"energy_joules": 5.0}}, keep=["2"])
    assert set(guard.last) == {"2"}


# -- pacing ----------------------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_default_pace_is_below_the_recorded_gateway_limiter() -> None:
    assert Pace().burst < 15 and Pace().per_second < 10 and Pace() == Pace(10, 5.0, 60.0)


def test_burst_then_the_replenish_rate() -> None:
    t = FakeTime()
    pacer = GatewayPacer(Pace(burst=3, per_second=4), monotonic=t.monotonic, sleep=t.sleep)
    waits = [pacer.acquire() for _ in range(6)]
    assert waits == [0.0, 0.0, 0.0, 0.25, 0.25, 0.25]
    t.now += 10
    assert [pacer.acquire() for _ in range(4)] == [0.0, 0.0, 0.0, 0.25]


def test_lower_announced_rates_and_remaining_tokens_are_followed() -> None:
    t = FakeTime()
    pacer = GatewayPacer(Pace(burst=10, per_second=5), monotonic=t.monotonic, sleep=t.sleep)
    pacer.acquire()
    pacer.observe({"x-ratelimit-replenish-rate": "2", "x-ratelimit-burst-capacity": "15",
                   "x-ratelimit-remaining": "1"})
    assert (pacer.rate, pacer.burst) == (2.0, 10.0)  # a higher announced burst does not loosen ours
    assert [pacer.acquire() for _ in range(3)] == [0.0, 0.5, 0.5]
    pacer.observe({"x-ratelimit-replenish-rate": "50"})
    assert pacer.rate == 5.0  # back to the configured pace, never above it


def test_a_429_pauses_every_caller_of_the_gateway() -> None:
    t = FakeTime()
    pacers = Pacers(monotonic=t.monotonic, sleep=t.sleep)
    one = pacers.get("https://gateway.isolarcloud.eu", Pace(burst=5, per_second=5))
    other = pacers.get("https://GATEWAY.isolarcloud.eu:443/", Pace(burst=8, per_second=2))
    assert one is other and (one.burst, one.rate) == (5.0, 2.0)  # shared, the strictest settings
    assert pacers.get("https://augateway.isolarcloud.com") is not one
    one.penalize(3.0)
    assert other.acquire() == 3.0
    assert other.acquire() == 0.5  # and the bucket starts empty


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), (" 0 ", 0.0), ("1.5", 1.5), ("-3", 0.0), (None, None),
                                                 ("soon", None), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0)])
def test_retry_after(header: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc).timestamp()
    assert retry_after(header, now) == seconds


def test_gateway_key() -> None:
    assert gateway_key("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080"
    assert gateway_key("https://Gateway.isolarcloud.eu") == "https://gateway.isolarcloud.eu:443"


def test_a_caller_already_waiting_also_honours_a_later_429() -> None:
    t = FakeTime()
    pacer = GatewayPacer(Pace(burst=1, per_second=2), monotonic=t.monotonic, sleep=t.sleep)
    pacer.acquire()

    def sleep(seconds: float) -> None:  # while this caller sleeps, another one meets a 429 asking for 5 s
        t.sleep(seconds)
        if len(t.slept) == 1:
            pacer.penalize(5.0)

    pacer.sleep = sleep
    assert pacer.acquire() == pytest.approx(5.5)
