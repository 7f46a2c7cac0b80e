"""End to end against the simulator (issue 14, item 7): a login app's quota from getOpenApiCallInfo is exported
beside the budget, and `api_budget_per_hour: auto` follows it with its margin."""

from __future__ import annotations

from collections.abc import Callable

from exporter.simulator import Simulator
from tests.conftest import Clock, Running, login_account, select, value

HOUR = 3600.0


def test_the_quota_is_exported_and_auto_follows_it(make_sim: Callable[..., Simulator],
                                                   run_exporter: Callable[..., Running]) -> None:
    clock = Clock(1_750_000_000.0 // HOUR * HOUR + 60)
    sim = make_sim(plants=30, clock=clock, hourly_quota=150)
    running = run_exporter({"refresh_interval": 300, "accounts": [
        login_account(sim, api_budget_per_hour="auto", page_size=10, devices={"enabled": False})]}, clock=clock,
        start=False)
    running.refresh_now()
    found = running.metrics()
    assert value(found, "isolarcloud_api_quota_calls", account="login", period="hour") == 150
    assert value(found, "isolarcloud_api_quota_calls", account="login", period="day") == 3600
    # Login, three list pages, the open-fault list, then the quota call itself: the gateway counts it too.
    assert value(found, "isolarcloud_api_quota_used_calls", account="login", period="hour") == 6
    assert value(found, "isolarcloud_api_quota_used_calls", account="login", period="day") == 6
    assert value(found, "isolarcloud_api_budget_calls_per_hour", account="login") == 120  # 150 less 20 %
    assert value(found, "isolarcloud_api_requests_total", account="login", endpoint="getOpenApiCallInfo",
                 result="1") == 1
    assert value(found, "isolarcloud_collection_up", account="login", collection="quota") == 1
    assert value(found, "isolarcloud_collection_budget_calls_per_hour", account="login", collection="quota") == 4
    # An hour of 5-minute cycles stays within the budget auto chose, and so never meets the gateway's E999.
    for _ in range(11):
        clock.advance(300)
        running.refresh_now()
    found = running.metrics()
    assert value(found, "isolarcloud_api_calls_current_hour", account="login") <= 120
    assert not select(found, "isolarcloud_api_requests_total", result="E999")


def test_without_auto_the_configured_budget_stands_beside_the_quota(sim: Simulator,
                                                                    run_exporter: Callable[..., Running]) -> None:
    running = run_exporter({"accounts": [login_account(sim, api_budget_per_hour=700)]}, start=False)
    running.refresh_now()
    found = running.metrics()
    assert value(found, "isolarcloud_api_budget_calls_per_hour", account="login") == 700
    # This simulator has no quota: the call answers without limits, so no limit series, only the use.
    assert not select(found, "isolarcloud_api_quota_calls")
    assert value(found, "isolarcloud_api_quota_used_calls", account="login", period="hour") is not None


def test_the_quota_call_can_be_turned_off(sim: Simulator, run_exporter: Callable[..., Running]) -> None:
    running = run_exporter({"accounts": [login_account(sim, api_quota={"enabled": False})]}, start=False)
    running.refresh_now()
    assert sim.count("getOpenApiCallInfo") == 0
    assert not select(running.metrics(), "isolarcloud_collection_up", collection="quota")
