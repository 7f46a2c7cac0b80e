"""The app's quota (issue 14, item 7) as a specification: getOpenApiCallInfo's answer is read leniently, the quota
collection costs one call per pass within the budget, and `api_budget_per_hour: auto` follows the quota less its
margin, with the configured fallback before the first answer."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.app import build_engine
from exporter.collect.engine import AccountEngine
from exporter.config import ConfigError, parse_config
from exporter.data import ApiQuota
from exporter.fetch.quota import parse_call_info
from tests.conftest import Clock
from tests.fakes import FakeGateway, fail, ok, paged_list, plant_row

HOUR = 3600.0
INFO = "getOpenApiCallInfo"


def info(hourly: int | None, daily: int | None, used: int = 7, today: int = 300) -> dict[str, Any]:
    return ok({"curr_hour_accessed_times": str(used), "today_accessed_times": today,
               "per_day_access_times_config": None if daily is None else str(daily),
               "per_hour_access_times_config": [] if hourly is None else
               [{"hour": h, "max_call_times": hourly} for h in range(24)],
               "per_hour_residue_times": []})


def make(gateway: FakeGateway, clock: Clock, **account: Any) -> AccountEngine:
    gateway.handlers.setdefault("login", lambda body: ok({"login_state": "1", "token": "1_" + "a" * 32}))
    gateway.handlers.setdefault("getPowerStationList", paged_list([plant_row(1000 + i) for i in range(5)],
                                                                   total_key="rowCount", page_key="curPage"))
    account.setdefault("faults", {"enabled": False})  # the quota collection alone beside the plant list
    account.setdefault("devices", {"enabled": False})
    config = parse_config({"refresh_interval": 300, "accounts": [{
        "name": "l", "base_url": "http://gateway.invalid", **account,
        "auth": {"mode": "login", "appkey": "A", "secret_key": "S", "user_account": "u", "user_password": "p"}}]},
        env={})
    return build_engine(config.accounts[0], config, clock, gateway=gateway.attach)


@pytest.fixture
def clock() -> Clock:
    return Clock(1000 * HOUR + 60)


@pytest.mark.parametrize(("data", "expected"), [
    ({"per_hour_access_times_config": [{"hour": 0, "max_call_times": "2000"}, {"hour": 1, "max_call_times": 1500}],
      "per_day_access_times_config": "48000", "curr_hour_accessed_times": "12", "today_accessed_times": 4100},
     ApiQuota(1500, 48000, 12, 4100, 5.0)),
    ({"per_hour_access_times_config": {"hour": 3, "max_call_times": 14400}, "per_day_access_times_config": 345600},
     ApiQuota(14400, 345600, None, None, 5.0)),  # typed an object by the field table: read as one entry
    ({"per_hour_access_times_config": [], "per_day_access_times_config": "0", "curr_hour_accessed_times": "-1"},
     ApiQuota(None, None, None, None, 5.0)),  # 0 is no limit reported, a negative count none
    ({"per_hour_access_times_config": [{"hour": 1}, "junk", {"max_call_times": "many"}]},
     ApiQuota(None, None, None, None, 5.0)),
])
def test_the_answer_is_read_leniently(data: dict[str, Any], expected: ApiQuota) -> None:
    assert parse_call_info(data, 5.0) == expected


def test_the_allowance_is_the_hourly_or_the_daily_limit_spread_over_the_day() -> None:
    assert ApiQuota(2000, 48000, None, None).hourly_allowance() == 2000
    assert ApiQuota(2000, 24000, None, None).hourly_allowance() == 1000
    assert ApiQuota(None, 2400, None, None).hourly_allowance() == 100
    assert ApiQuota(None, None, 5, 5).hourly_allowance() is None


def test_the_quota_collection_costs_one_call_per_pass_and_is_exported_as_a_slot(clock: Clock) -> None:
    gateway = FakeGateway({INFO: lambda body: info(500, 12000)})
    engine = make(gateway, clock)
    engine.refresh()
    assert [name for name, _, _ in gateway.calls] == ["login", "getPowerStationList", INFO]
    state = engine.state()
    assert state.quota == ApiQuota(500, 12000, 7, 300, clock.now)
    assert state.budget == 1000  # a configured number stays what it is
    quota = next(c for c in state.collections if c.name == "quota")
    assert quota.up and quota.wanted_interval == 900 and quota.calls_per_hour == 4
    clock.advance(300)
    engine.refresh()
    assert gateway.count(INFO) == 1  # every 15 minutes, not every cycle
    clock.advance(600)
    engine.refresh()
    assert gateway.count(INFO) == 2


def test_auto_follows_the_quota_less_the_margin_with_the_fallback_before_the_first_answer(clock: Clock) -> None:
    gateway = FakeGateway({INFO: [info(300, None), fail("E999"), info(None, 2400)]})
    engine = make(gateway, clock, api_budget_per_hour="auto", api_quota={"margin": 0.25, "interval": "5m"})
    assert engine.state().budget == 1000  # nothing known yet
    engine.refresh()
    assert engine.state().budget == 225  # 300 less 25 %
    clock.advance(HOUR)
    engine.refresh()  # the quota call fails: the last answer still counts (a limit does not go stale) ...
    # ... while its metrics, an hour old now, are withheld like any stale data
    assert engine.state().budget == 225 and engine.state().quota is None
    clock.advance(HOUR)
    engine.refresh()
    assert engine.state().budget == 75  # the daily limit of 2400 is 100 an hour
    shares = {c.name: c.calls_per_hour for c in engine.state().collections}
    assert sum(shares.values()) <= 75


def test_a_small_auto_budget_holds(clock: Clock) -> None:
    """The first cycle runs on the fallback; from then on the small quota is what the engine spends."""
    gateway = FakeGateway({INFO: lambda body: info(10, None)})
    engine = make(gateway, clock, api_budget_per_hour="auto")
    engine.refresh()
    assert engine.state().budget == 8
    for _ in range(12):  # an hour of 5-minute cycles
        clock.advance(300)
        engine.refresh()
    assert engine.state().stats.calls_this_hour <= 8


def test_oauth2_apps_have_no_quota_call(clock: Clock) -> None:
    config = {"accounts": [{"name": "o", "base_url": "http://gateway.invalid", "api_budget_per_hour": "auto",
                            "auth": {"mode": "oauth2", "appkey": "A", "secret_key": "S", "refresh_token": "r"}}]}
    with pytest.raises(ConfigError, match=r"accounts\[0\].api_budget_per_hour: auto needs auth.mode login"):
        parse_config(config, env={})
    config["accounts"][0]["api_budget_per_hour"] = 900
    config["accounts"][0]["faults"] = {"enabled": False}
    config["accounts"][0]["details"] = {"enabled": False}
    config["accounts"][0]["devices"] = {"enabled": False}
    account = parse_config(config, env={}).accounts[0]
    gateway = FakeGateway({"queryPowerStationList": paged_list([plant_row(1)]),
                           "getPowerStationRealTimeData": lambda body: ok({"device_point_list": []}),
                           "refreshToken": lambda body: ok({"access_token": "x", "refresh_token": "y"})})
    engine = build_engine(account, parse_config(config, env={}), clock, gateway=gateway.attach)
    engine.refresh()
    assert gateway.count(INFO) == 0 and [c.name for c in engine.state().collections] == ["plants", "realtime"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("api_budget_per_hour", "lots", "expected a number of calls per hour or auto"),
    ("api_quota", {"margin": 1.5}, "api_quota.margin: expected a fraction"),
    ("api_quota", {"interval": "soon"}, "api_quota.interval: expected a duration"),
    ("api_quota", {"every": "5m"}, "api_quota.every: unknown key"),
])
def test_bad_quota_keys_name_the_key(key: str, value: Any, message: str) -> None:
    account = {"name": "l", "base_url": "http://gateway.invalid", key: value,
               "auth": {"mode": "login", "appkey": "A", "secret_key": "S", "user_account": "u", "user_password": "p"}}
    with pytest.raises(ConfigError, match=message):
        parse_config({"accounts": [account]}, env={})
    if key == "api_budget_per_hour":
        return
    account["api_quota"] = {"enabled": False}
    account["api_budget_per_hour"] = "auto"
    with pytest.raises(ConfigError, match=r"auto needs api_quota\.enabled"):
        parse_config({"accounts": [account]}, env={})
