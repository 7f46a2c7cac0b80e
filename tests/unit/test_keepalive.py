"""The refresh-token keep-alive as a specification (issue 14, item 4): an OAuth2 account that nobody scrapes still
renews its 30-day refresh token before it lapses; at most once a day, never during a cycle or a back-off, never
beyond the hourly budget, counted like every refresh. In-memory gateway and a settable clock: days pass in
microseconds."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from exporter.app import build_engine
from exporter.collect.engine import AccountEngine
from exporter.config import parse_config
from tests.conftest import Clock
from tests.fakes import FakeGateway, ok, paged_list, plant_row, token_answers

DAY = 86400.0
LIST = "queryPowerStationList"


def make(gateway: FakeGateway, clock: Clock, **top: Any) -> AccountEngine:
    gateway.handlers.setdefault(LIST, paged_list([plant_row(1000 + i) for i in range(3)]))
    gateway.handlers.setdefault("refreshToken", token_answers())
    config = parse_config({"refresh_interval": 300, **top, "accounts": [{
        "name": "a", "base_url": "http://gateway.invalid", "realtime": {"enabled": False},
        "auth": {"mode": "oauth2", "appkey": "APPKEY", "secret_key": "SECRET", "refresh_token": "r0"}}]}, env={})
    return build_engine(config.accounts[0], config, clock, gateway=gateway.attach)


@pytest.fixture
def clock() -> Clock:
    return Clock(20000 * DAY + 3600)


def test_a_refresh_token_is_renewed_once_less_than_the_margin_is_left(clock: Clock,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock)
    engine.refresh()  # the first cycle refreshes (no access token yet): the refresh token is new
    issued = engine.state().token_expiries["refresh"]
    assert issued == clock.now + 30 * DAY
    clock.advance(16 * DAY - 60)  # 14 days and a minute left: not yet
    assert not engine.keepalive_due()
    clock.advance(120)
    assert engine.keepalive_due()
    with caplog.at_level(logging.INFO, logger="exporter.collect.engine"):
        assert engine.keepalive()
    assert gateway.count("refreshToken") == 2 and gateway.count(LIST) == 1  # one token call, no data call
    state = engine.state()
    assert state.token_expiries["refresh"] == clock.now + 30 * DAY
    assert state.stats.auth == {("refresh", "success"): 2}
    assert state.stats.api_requests[("refreshToken", "1")] == 2 and state.stats.calls_this_hour == 1
    assert "renewed the refresh token in the background" in caplog.text
    assert not engine.keepalive_due()  # 30 days left again


def test_a_failed_renewal_is_tried_again_a_day_later_not_sooner(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock)
    engine.refresh()
    clock.advance(20 * DAY)
    gateway.on("refreshToken", lambda body: ok({"code": "-1"}))  # "refresh failed at the authorisation server"
    assert engine.keepalive_due() and not engine.keepalive()
    assert engine.state().stats.auth[("refresh", "failure")] == 1
    clock.advance(DAY - 1)
    assert not engine.keepalive_due()
    clock.advance(1)
    gateway.on("refreshToken", token_answers("later"))
    # The refused refresh marked the credentials dead (as in a cycle); a new token file would revive them. Here
    # the renewal raises the remembered error without a call, and the day after it is due again.
    assert engine.keepalive_due()


def test_no_renewal_during_a_cycle_a_backoff_or_beyond_the_hourly_budget(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock)
    engine.refresh()
    clock.advance(20 * DAY)
    with engine.lock:
        engine.running = True
    assert not engine.keepalive_due() and not engine.keepalive()
    with engine.lock:
        engine.running = False
        engine.backoff_until = clock.now + 60
    assert not engine.keepalive_due()
    with engine.lock:
        engine.backoff_until = 0.0
    for _ in range(engine.settings.budget):  # the hour's budget spent
        engine.stats.record_request(LIST, "1")
    assert not engine.keepalive_due()
    clock.advance(3600)  # the next clock hour
    assert engine.keepalive_due()


def test_the_margin_is_configurable(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, refresh_token_renew_before="3d")
    engine.refresh()
    clock.advance(26 * DAY + 60)
    assert not engine.keepalive_due()
    clock.advance(DAY)
    assert engine.keepalive_due()


def test_login_accounts_have_nothing_to_keep_alive(clock: Clock) -> None:
    gateway = FakeGateway({"login": lambda body: ok({"login_state": "1", "token": "1_" + "a" * 32}),
                           "getPowerStationList": paged_list([plant_row(1)], total_key="rowCount",
                                                             page_key="curPage")})
    config = parse_config({"accounts": [{"name": "l", "base_url": "http://gateway.invalid",
                                         "auth": {"mode": "login", "appkey": "A", "secret_key": "S",
                                                  "user_account": "u", "user_password": "p"}}]}, env={})
    engine = build_engine(config.accounts[0], config, clock, gateway=gateway.attach)
    engine.refresh()
    clock.advance(40 * DAY)
    assert not engine.keepalive_due() and not engine.keepalive()
