"""`realtime.skip_unchanged` (issue 14, item 6) as a specification: a plant whose update_time has not moved since
its values were read keeps them and is not fetched again (for at most unchanged_max_age); the pass and the budget
forecast count only the plants that changed; the data stays fresh while the plant list confirms it."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.app import build_engine
from exporter.collect.engine import AccountEngine
from exporter.config import parse_config
from tests.conftest import Clock
from tests.fakes import FakeGateway, ok, plant_row, token_answers

LIST, REALTIME = "queryPowerStationList", "getPowerStationRealTimeData"
HOUR = 3600.0
IDS = [str(1000 + i) for i in range(6)]


class Cloud:
    """Six plants whose update_time and power the test moves by hand."""

    def __init__(self) -> None:
        self.update = {ps_id: "2024-01-02 03:00:00" for ps_id in IDS}
        self.power = dict.fromkeys(IDS, 100.0)
        self.failing: set[str] = set()
        self.asked: list[list[str]] = []

    def move(self, *ps_ids: str, stamp: str, power: float) -> None:
        for ps_id in ps_ids:
            self.update[ps_id], self.power[ps_id] = stamp, power

    def plant_list(self, body: dict[str, Any]) -> dict[str, Any]:
        rows = [plant_row(int(i), update_time=self.update[i]) for i in IDS if i in self.update]
        return ok({"pageList": rows, "row_count": len(rows)})

    def realtime(self, body: dict[str, Any]) -> dict[str, Any]:
        asked = list(body["ps_id_list"])
        self.asked.append(asked)
        answered = [i for i in asked if i not in self.failing]
        return ok({"device_point_list": [{"ps_id": i, "p83033": str(self.power[i]), "p83016": "20"}
                                         for i in answered],
                   "point_dict": [{"point_id": "83016", "point_name": "Ambient", "point_unit": "℃"}],
                   "fail_ps_id_list": [i for i in asked if i in self.failing]})


def make(cloud: Cloud, clock: Clock, **realtime: Any) -> AccountEngine:
    gateway = FakeGateway({LIST: cloud.plant_list, REALTIME: cloud.realtime, "refreshToken": token_answers()})
    config = parse_config({"refresh_interval": 300, "accounts": [{
        "name": "a", "base_url": "http://gateway.invalid", "api_budget_per_hour": 100000,
        "realtime": {"skip_unchanged": True, "extra_points": [83016], **realtime},
        "auth": {"mode": "oauth2", "appkey": "APPKEY", "secret_key": "SECRET", "refresh_token": "r0"}}]}, env={})
    return build_engine(config.accounts[0], config, clock, gateway=gateway.attach)


@pytest.fixture
def clock() -> Clock:
    return Clock(1000 * HOUR + 60)


def powers(engine: AccountEngine) -> dict[str, float]:
    production = engine.state().production
    assert production is not None
    return {k: v["power_watts"] for k, v in production.values.items()}


def test_only_plants_whose_update_time_moved_are_fetched_again(clock: Clock) -> None:
    cloud = Cloud()
    engine = make(cloud, clock)
    first = clock.now
    engine.refresh()
    assert cloud.asked == [IDS]
    clock.advance(300)
    cloud.move("1001", "1004", stamp="2024-01-02 03:05:00", power=250.0)
    engine.refresh()
    assert cloud.asked[1] == ["1001", "1004"]
    assert powers(engine) == {**dict.fromkeys(IDS, 100.0), "1001": 250.0, "1004": 250.0}
    production = engine.state().production
    assert production is not None and production.taken_at == clock.now
    assert production.fetched_at == {**dict.fromkeys(IDS, first), "1001": clock.now, "1004": clock.now}
    assert production.extra["1000"] == {"83016": 20.0}  # kept with the values
    assert production.point_names == {"83016": ("Ambient", "℃")}


def test_a_pass_with_nothing_changed_costs_nothing_and_keeps_the_data_fresh(clock: Clock) -> None:
    cloud = Cloud()
    engine = make(cloud, clock)
    engine.refresh()
    for _ in range(11):  # most of an hour at night: the list is read every 5 minutes, nothing moves
        clock.advance(300)
        engine.refresh()
    assert len(cloud.asked) == 1
    state = engine.state()
    assert state.production is not None and state.production.taken_at == clock.now  # confirmed by the list
    realtime = next(c for c in state.collections if c.name == "realtime")
    assert realtime.up and realtime.last_success == clock.now
    assert state.stats.api_requests[(REALTIME, "1")] == 1


def test_values_are_read_again_after_unchanged_max_age_even_if_update_time_stands_still(clock: Clock) -> None:
    cloud = Cloud()
    engine = make(cloud, clock, unchanged_max_age="20m")
    engine.refresh()
    cloud.power["1002"] = 999.0  # a gateway whose update_time lags the values: bounded by unchanged_max_age
    clock.advance(900)
    engine.refresh()
    assert len(cloud.asked) == 1 and powers(engine)["1002"] == 100.0
    clock.advance(300)
    engine.refresh()
    assert cloud.asked[1] == IDS and powers(engine)["1002"] == 999.0


def test_failed_unknown_and_removed_plants(clock: Clock) -> None:
    cloud = Cloud()
    cloud.update["1003"] = None  # type: ignore[assignment]  # no update_time: always fetched
    cloud.failing = {"1005"}
    engine = make(cloud, clock)
    engine.refresh()
    assert "1005" not in powers(engine)
    clock.advance(300)
    cloud.failing = set()
    del cloud.update["1000"]
    engine.refresh()
    assert cloud.asked[1] == ["1003", "1005"]  # the failed one is asked again, the one without update_time too
    assert set(powers(engine)) == set(IDS) - {"1000"}  # a plant no longer listed is gone


def test_the_budget_forecast_counts_the_plants_that_changed(clock: Clock) -> None:
    cloud = Cloud()
    engine = make(cloud, clock, batch_size=2)
    engine.refresh()
    assert engine.state().stats.api_requests[(REALTIME, "1")] == 3  # 6 plants, 2 per call
    clock.advance(300)
    cloud.move("1000", stamp="2024-01-02 03:05:00", power=1.0)
    engine.refresh()
    assert engine.state().stats.api_requests[(REALTIME, "1")] == 4  # one plant changed: one call
    cycle = engine._cycle(clock.now)
    clock.advance(300)
    cloud.move("1001", "1002", "1003", stamp="2024-01-02 03:10:00", power=2.0)
    realtime = next(c for c in engine.collections if c.name == "realtime")
    # Against the list it just used nothing is due; the forecast is the last real pass (one plant, one call).
    assert realtime.demand(cycle).calls_per_pass == 1
    engine.refresh()
    assert cloud.asked[-2:] == [["1001", "1002"], ["1003"]]
    assert realtime.demand(engine._cycle(clock.now)).calls_per_pass == 2  # three plants: two calls


def test_off_by_default(clock: Clock) -> None:
    cloud = Cloud()
    gateway = FakeGateway({LIST: cloud.plant_list, REALTIME: cloud.realtime, "refreshToken": token_answers()})
    config = parse_config({"accounts": [{"name": "a", "base_url": "http://gateway.invalid", "auth": {
        "mode": "oauth2", "appkey": "A", "secret_key": "S", "refresh_token": "r"}}]}, env={})
    assert not config.accounts[0].realtime.skip_unchanged
    engine = build_engine(config.accounts[0], config, clock, gateway=gateway.attach)
    engine.refresh()
    clock.advance(300)
    engine.refresh()
    assert cloud.asked == [IDS, IDS]
    production = engine.state().production
    assert production is not None and production.fetched_at == {}
