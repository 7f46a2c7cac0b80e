"""End to end against the simulator (issue 14, item 4): an exporter left alone for two months, with nobody
scraping it, keeps its OAuth2 account alive, so that the first scrape afterwards needs no re-authorisation.
The simulator and the exporter share one settable clock: sixty days pass without sleeping."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter import app
from exporter.simulator import Simulator
from tests.conftest import Clock, Running, oauth_account, value

DAY = 86400.0


def idle(running: Running, clock: Clock, days: float, keepalive: bool) -> int:
    """Let `days` pass without a scrape; the keep-alive looks every six hours (the thread looks every 15 min)."""
    renewed = 0
    for _ in range(int(days * 4)):
        clock.advance(DAY / 4)
        if keepalive:
            renewed += running.exporter.keepalive()
    return renewed


@pytest.mark.parametrize("keepalive", [True, False], ids=["keep-alive", "without"])
def test_sixty_days_without_a_scrape(make_sim: Callable[..., Simulator], run_exporter: Callable[..., Running],
                                     tmp_path: Path, keepalive: bool) -> None:
    clock = Clock(1_750_000_000.0)
    sim = make_sim(plants=5, clock=clock)
    token_file = tmp_path / "oauth.json"
    running = run_exporter({"accounts": [oauth_account(sim, token_file)]}, clock=clock, start=False)
    running.refresh_now()
    assert value(running.metrics(), "isolarcloud_up", account="oauth") == 1
    sim.reset_calls()
    renewed = idle(running, clock, 60, keepalive)
    refreshes = [c for c in sim.calls if c.path.endswith("/refreshToken")]
    assert sim.count() == len(refreshes)  # nothing but token renewals while nobody scrapes
    running.refresh_now()  # the first scrape after the holiday
    found = running.metrics()
    if not keepalive:
        # The control: without the keep-alive the refresh token lapsed after 30 days: only the owner can help.
        assert renewed == 0 and not refreshes
        assert value(found, "isolarcloud_up", account="oauth") == 0
        return
    # Renewed on the first look with fewer than 14 days left: days 16¼, 32½ and 48¾.
    assert renewed == len(refreshes) == 3
    assert [c.result_code for c in refreshes] == ["1"] * 3
    assert value(found, "isolarcloud_up", account="oauth") == 1
    assert value(found, "isolarcloud_auth_total", account="oauth", kind="refresh", result="success") == 1 + 3 + 1
    stored = json.loads(token_file.read_text())
    assert stored["refresh_expires_at"] > clock.now + 14 * DAY
    assert stored["refresh_token"] not in sim.auth.spent_refresh


def test_the_keepalive_thread_runs_without_scrapes_and_stops_with_the_exporter(
        make_sim: Callable[..., Simulator], run_exporter: Callable[..., Running], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "KEEPALIVE_CHECK", 0.02)
    clock = Clock(1_750_000_000.0)
    sim = make_sim(plants=3, clock=clock)
    running = run_exporter({"accounts": [oauth_account(sim, tmp_path / "t.json")]}, clock=clock)
    running.wait_refreshed()
    thread = running.exporter._keepalive_thread
    assert thread is not None and thread.is_alive()
    sim.reset_calls()
    clock.advance(20 * DAY)
    deadline = time.monotonic() + 10
    while not sim.count("refreshToken") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.count("refreshToken") == 1 and sim.count() == 1
    running.exporter.close()
    thread.join(timeout=2)
    assert not thread.is_alive()


def test_login_only_exporters_start_no_keepalive_thread(sim: Simulator, run_exporter: Callable[..., Running]
                                                        ) -> None:
    account: dict[str, Any] = {"name": "login", "base_url": sim.url, "auth": {
        "mode": "login", "appkey": sim.appkey, "secret_key": sim.secret_key, "user_account": "demo@example.com",
        "user_password": "demo-password"}}
    running = run_exporter({"accounts": [account]})
    assert running.exporter._keepalive_thread is None
