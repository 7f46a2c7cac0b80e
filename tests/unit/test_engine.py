"""The collections engine (exporter/collect/engine.py) as a specification: one cycle runs the due collections in
priority order, the budget is shared and never overspent, a failing collection keeps its data until its own
max_age without taking the plant list down, quota errors back off the account, and collections that fetch item
by item spread their calls. In-memory gateway and a settable clock: no sockets, no sleeping."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from exporter.collect.budget import Share
from exporter.collect.collection import Cycle, Published, SpreadCollection
from exporter.collect.engine import AccountEngine
from tests.conftest import Clock
from tests.fakes import FakeGateway, engine_on, fail, ok, paged_list, plant_row, token_answers

LIST, REALTIME = "queryPowerStationList", "getPowerStationRealTimeData"
HOUR = 3600.0


def realtime_answers(body: dict[str, Any]) -> dict[str, Any]:
    return ok({"device_point_list": [{"ps_id": str(i), "p83033": "1000"} for i in body["ps_id_list"]],
               "point_dict": [], "fail_ps_id_list": []})


def make(gateway: FakeGateway, clock: Clock, plants: int = 25, **account: Any) -> AccountEngine:
    # The engine's rules are specified here with the plant list and real-time data; open faults and plant
    # details have their own specifications (tests/unit/test_faults_details.py).
    account.setdefault("faults", {"enabled": False})
    account.setdefault("details", {"enabled": False})
    gateway.handlers.setdefault(LIST, paged_list([plant_row(1000 + i) for i in range(plants)]))
    gateway.handlers.setdefault(REALTIME, realtime_answers)
    gateway.handlers.setdefault("refreshToken", token_answers())
    account.setdefault("devices", {"enabled": False})  # these specify the plant collections; devices: test_devices*
    return engine_on(gateway, clock, account)


@pytest.fixture
def clock() -> Clock:
    return Clock(1000 * HOUR + 60)  # a minute into a clock hour


def test_one_cycle_runs_the_plant_list_then_real_time(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock)
    engine.refresh()
    assert [name for name, _, _ in gateway.calls] == ["refreshToken", LIST, REALTIME]
    state = engine.state()
    assert state.up and state.plants is not None and len(state.plants.plants) == 25
    assert state.production is not None and state.production.values["1000"] == {"power_watts": 1000.0}
    assert [(c.name, c.up, c.interval) for c in state.collections] == [("plants", True, 300), ("realtime", True, 300)]
    assert state.stats.calls_this_hour == 3 and state.stats.refreshes == {"success": 1}


def test_nothing_runs_before_it_is_due_and_each_collection_keeps_its_cadence(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, realtime={"interval": "10m"})
    engine.refresh()
    clock.advance(299)
    assert engine.due_at() > clock.now
    engine.refresh()
    assert gateway.count(LIST) == 1
    clock.advance(1)  # the plant list is due, real-time data is not
    engine.refresh()
    assert (gateway.count(LIST), gateway.count(REALTIME)) == (2, 1)
    clock.advance(300)
    engine.refresh()
    assert (gateway.count(LIST), gateway.count(REALTIME)) == (3, 2)


def test_a_failing_collection_keeps_its_data_until_its_max_age_and_never_takes_the_list_down(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, max_age=900)
    engine.refresh()
    gateway.on(REALTIME, lambda body: fail("E996", "er_invalid_path"))
    clock.advance(300)
    engine.refresh()
    state = engine.state()
    realtime = next(c for c in state.collections if c.name == "realtime")
    assert state.up and not realtime.up and "E996" in (realtime.last_error or "")
    assert state.production is not None  # the values of the last good run, 300 s old
    assert state.stats.refreshes == {"success": 1, "error": 1}
    clock.advance(601)  # 901 s after the last good real-time run: withheld; the plant list is still fresh
    engine.refresh()
    state = engine.state()
    assert state.up and state.plants is not None and state.production is None


def test_the_others_wait_while_the_plant_list_fails(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock)
    engine.refresh()
    gateway.on(LIST, lambda body: fail("E996"))
    clock.advance(300)
    engine.refresh()
    assert gateway.count(REALTIME) == 1  # not run on an outdated list
    state = engine.state()
    assert not state.up and state.plants is not None  # kept, flagged
    clock.advance(1)
    engine.refresh()  # the retry is not due yet: no call
    assert gateway.count(LIST) == 2
    assert engine.due_at() == pytest.approx(clock.now - 1 + 60)  # retried after a minute, not hammered


def test_a_run_that_would_overrun_the_hour_waits_for_the_next_one(clock: Clock,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=30, page_size=10, api_budget_per_hour=10, realtime={"enabled": False},
                  refresh_interval=60)
    engine.refresh()  # 1 token refresh + 3 pages, a minute into the hour
    interval = engine.state().interval
    assert interval == pytest.approx(3 * HOUR / 10)  # stretched: 3 calls a pass, 10 an hour
    with caplog.at_level(logging.WARNING):
        for _ in range(2):  # 7 and 10 calls
            clock.advance(interval)
            engine.refresh()
        clock.advance(interval)  # 13 would overrun the hour: deferred to the next one, and logged
        engine.refresh()
        for _ in range(2):  # not due again before the next hour: no second log line
            clock.advance(100)
            engine.refresh()
    assert engine.stats.calls_this_hour(clock.now) == 10
    assert engine.due_at() == 1001 * HOUR
    assert len([r for r in caplog.records if "would be exceeded" in r.getMessage()]) == 1
    clock.now = 1001 * HOUR + 1
    engine.refresh()
    assert engine.stats.calls_this_hour(clock.now) == 3


@pytest.mark.parametrize(("code", "pause"), [("E999", HOUR - 60 + 60), ("E998", 86400.0)])
def test_quota_errors_back_off_the_whole_account(clock: Clock, code: str, pause: float) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock)
    engine.refresh()
    gateway.on(REALTIME, lambda body: fail(code))
    clock.advance(300)
    engine.refresh()
    state = engine.state()
    assert state.backoff_until == pytest.approx(clock.now + pause - (300 if code == "E999" else 0))
    calls = len(gateway.calls)
    clock.now = state.backoff_until - 1
    engine.trigger()
    assert len(gateway.calls) == calls and not engine.running


def test_a_stale_plant_list_is_withheld(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, max_age=600)
    engine.refresh()
    gateway.on(LIST, lambda body: fail("E996"))
    for _ in range(2):
        clock.advance(301)
        engine.refresh(force=True)
    state = engine.state()
    assert not state.up and state.plants is None and state.production is None
    assert state.last_success == 1000 * HOUR + 60


class _Details(SpreadCollection):
    """A collection fetching up to 20 plants per call over a day, like plant details."""

    name = "details"
    slots = ("details",)
    items_per_call = 20

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[list[str]] = []

    def wanted_interval(self) -> float:
        return 86400.0

    def items(self, cycle: Cycle) -> list[str]:
        return [p.ps_id for p in cycle.plants.plants] if cycle.plants else []

    def fetch(self, cycle: Cycle, items: list[str]) -> Published:
        for start in range(0, len(items), 20):
            self.fetched.append(items[start:start + 20])
        return {"details": object()}


def _spread_engine(gateway: FakeGateway, clock: Clock, plants: int, budget: int) -> tuple[AccountEngine, _Details]:
    engine = make(gateway, clock, plants=plants, page_size=100, api_budget_per_hour=budget,
                  realtime={"enabled": False})
    details = _Details()
    details.min_share = 0.05
    engine.collections.append(details)
    engine.runs[details.name] = type(engine.runs["plants"])()
    return engine, details


def test_a_small_fleet_gets_every_item_at_once_then_a_steady_trickle(clock: Clock) -> None:
    engine, details = _spread_engine(FakeGateway(), clock, plants=50, budget=1000)
    engine.refresh()
    assert sum(map(len, details.fetched)) == 50  # the spare budget pays for the start-up backlog at once
    last: dict[str, float] = dict.fromkeys((p for group in details.fetched for p in group), clock.now)
    longest = 0.0
    calls = len(details.fetched)
    for _ in range(3 * 288):  # three days of 5-minute cycles
        clock.advance(300)
        engine.refresh()
        for group in details.fetched[calls:]:
            for plant in group:
                longest = max(longest, clock.now - last[plant])
                last[plant] = clock.now
        calls = len(details.fetched)
    # Each plant again about once a day (its turn, plus at most one call's wait), in small steps.
    assert 86400 <= longest <= 86400 + 9 * 3600
    assert all(clock.now - seen <= 86400 + 9 * 3600 for seen in last.values())
    assert calls - 3 <= 3 * 3 + 1  # 3 calls of 20 plants a day, not one per plant


def test_a_large_fleet_is_spread_within_its_share(clock: Clock) -> None:
    """A fleet whose list alone wants more than the budget (1,000 plants at 100 calls/h here; 10,000 at 1000/h
    scale alike): details (50 calls a day) trickle at their share, ~2 calls an hour, and cover the fleet in a day."""
    engine, details = _spread_engine(FakeGateway(), clock, plants=1000, budget=100)
    hourly: list[int] = []
    for _ in range(24):
        start = len(details.fetched)
        for _ in range(12):
            engine.refresh()
            clock.advance(300)
        hourly.append(len(details.fetched) - start)
        assert engine.stats.calls_this_hour(clock.now - 1) <= 100
    assert max(hourly) <= 3  # 50 / 24 = 2.1 calls an hour, never a burst
    assert len({p for group in details.fetched for p in group}) >= 900  # nearly every plant within the day


def test_a_new_plant_gets_its_turn_at_the_next_cycle(clock: Clock) -> None:
    gateway = FakeGateway()
    engine, details = _spread_engine(gateway, clock, plants=50, budget=1000)
    engine.refresh()
    gateway.on(LIST, paged_list([plant_row(1000 + i) for i in range(51)]))
    clock.advance(300)
    engine.refresh()
    assert ["1050"] in details.fetched or any("1050" in group for group in details.fetched[-2:])


def test_shares_shown_per_collection(clock: Clock) -> None:
    engine = make(FakeGateway(), clock, plants=10_000)
    engine.refresh()
    state = engine.state()
    shares = {c.name: (c.calls_per_hour, c.interval) for c in state.collections}
    assert shares["plants"] == (500, pytest.approx(100 * HOUR / 500))
    assert shares["realtime"] == (500, pytest.approx(200 * HOUR / 500))
    assert isinstance(engine.shares["plants"], Share)


def test_a_backlog_spends_the_spare_budget_once_an_hour_not_once_a_cycle(clock: Clock) -> None:
    """2,000 plants, budget 300/h: the list wants 240/h, details' steady pass 4/h; the 56/h to spare pay for the
    details' backlog (100 calls) at most once per clock hour, so the list never waits for the next hour."""
    engine, details = _spread_engine(FakeGateway(), clock, plants=2000, budget=300)
    clock.now = 1001 * HOUR  # the start of a clock hour
    for _ in range(12):
        engine.refresh()
        clock.advance(300)
    calls = len(details.fetched)
    assert 50 <= calls <= 60  # the spare budget of one hour (55), plus the bucket's few
    assert engine.stats.calls_this_hour(clock.now - 1) <= 300
    assert engine.runs["plants"].next_due <= clock.now  # never deferred to the next hour
