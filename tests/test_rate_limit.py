"""Rate limiting at the gateway (issue 14, item 14), end to end against the simulator's limiter scenario.

A recorded EU gateway answer carries `x-ratelimit-burst-capacity: 15` and `x-ratelimit-replenish-rate: 10`. The
exporter paces calls per gateway, shared by the accounts that use it (default: bursts of 10, then 5 per second),
follows lower rates the gateway announces, waits out HTTP 429 for its `Retry-After` (at most
`rate_limit.max_retry_after`), and counts it. These tests take real time (the pace is real time): a few seconds.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from exporter.simulator import Simulator
from tests.conftest import Running, login_account, oauth_account, value

LIST = "queryPowerStationList"
FAST = {"burst": 1000, "per_second": 1000}


def calls_to(sim: Simulator, endpoint: str) -> list[Any]:
    return [c for c in sim.calls if c.path.endswith(endpoint)]


def statuses(sim: Simulator) -> list[int]:
    return [c.status for c in sim.calls]


def test_the_default_pace_stays_below_the_recorded_gateway_limiter(make_sim, run_exporter) -> None:
    """Two accounts refresh at once through one gateway that limits as recorded (burst 15, 10 per second): at the
    default pace (burst 10, 5 per second, shared by both) not one call meets a 429."""
    sim = make_sim(plants=30, seed=31, rate_limit=(15, 10.0))
    r: Running = run_exporter({"accounts": [oauth_account(sim, None, page_size=3, rate_limit={}),
                                            login_account(sim, page_size=3, rate_limit={})]})
    r.wait_refreshed(1, timeout=30)
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="oauth") == value(found, "isolarcloud_up", account="login") == 1
    assert 429 not in statuses(sim) and len(sim.calls) > 20
    pacers = {id(e.session.transport.pacer) for e in r.exporter.engines}  # type: ignore[attr-defined]
    assert len(pacers) == 1
    # The token bucket, seen from the gateway, across both accounts: in any span of time, at most the burst of 10
    # plus 5 calls per second (one more for timing jitter between the exporter and the simulator's clock).
    times = sorted(c.time for c in sim.calls)
    for i, j in itertools.combinations(range(len(times)), 2):
        assert j - i + 1 <= 10 + 5 * (times[j] - times[i]) + 1, (i, j)
    waited = sum(value(found, "isolarcloud_api_pacing_wait_seconds_total", account=a) or 0 for a in ("oauth", "login"))
    assert waited > 1.0


def test_accounts_sharing_a_gateway_share_its_pace(make_sim, run_exporter) -> None:
    """Each account alone would go at 8 calls per second, both together at 16, over the gateway's 10: sharing one
    pacer keeps them at 8 together."""
    sim = make_sim(plants=30, seed=32, rate_limit=(5, 10.0))
    pace = {"burst": 5, "per_second": 8}
    r = run_exporter({"accounts": [oauth_account(sim, None, page_size=3, rate_limit=pace),
                                   oauth_account(make_sim(plants=1), None, name="elsewhere", rate_limit=FAST),
                                   login_account(sim, page_size=3, rate_limit=pace)]})
    r.wait_refreshed(1, timeout=30)
    found = r.metrics()
    assert all(value(found, "isolarcloud_up", account=a) == 1 for a in ("oauth", "login", "elsewhere"))
    assert 429 not in statuses(sim)
    assert value(found, "isolarcloud_api_rate_limited_total", account="oauth") == 0
    engines = {e.name: e for e in r.exporter.engines}
    pacer = engines["oauth"].session.transport.pacer  # type: ignore[attr-defined]
    assert pacer is engines["login"].session.transport.pacer  # type: ignore[attr-defined]
    assert pacer is not engines["elsewhere"].session.transport.pacer  # type: ignore[attr-defined]


def test_lower_rates_announced_by_the_gateway_are_followed(make_sim, run_exporter) -> None:
    """The exporter is configured faster than the gateway allows; the gateway's X-RateLimit-* headers (burst 4,
    4 per second) slow it down after the first answer, before any 429."""
    sim = make_sim(plants=40, seed=33, rate_limit=(4, 4.0))
    r = run_exporter({"accounts": [oauth_account(sim, None, page_size=5, rate_limit={"burst": 10,
                                                                                     "per_second": 8})]},
                     start=False)
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="oauth") == 1
    assert 429 not in statuses(sim) and len(sim.calls) >= 9
    assert (value(found, "isolarcloud_api_pacing_wait_seconds_total", account="oauth") or 0) > 0.5


def test_a_429_is_waited_out_for_its_retry_after_and_retried(make_sim, run_exporter) -> None:
    sim = make_sim(plants=10, seed=34)
    r = run_exporter({"accounts": [oauth_account(sim, None, rate_limit=FAST)]}, start=False)
    r.refresh_now()
    sim.reset_calls()
    sim.inject("rate_limited:1", path=LIST)
    r.refresh_now()
    found = r.metrics()
    refused, retried = calls_to(sim, LIST)
    assert (refused.status, retried.status) == (429, 200)
    assert retried.time - refused.time >= 1.0
    assert value(found, "isolarcloud_up", account="oauth") == 1
    assert value(found, "isolarcloud_refreshes_total", account="oauth", result="error") == 0
    assert value(found, "isolarcloud_api_rate_limited_total", account="oauth") == 1
    assert value(found, "isolarcloud_api_requests_total", account="oauth", endpoint=LIST, result="http_429") == 1
    assert value(found, "isolarcloud_backoff_until_timestamp_seconds", account="oauth") == 0


def test_a_429_without_retry_after_is_retried_and_the_announced_pace_followed(make_sim, run_exporter) -> None:
    sim = make_sim(plants=20, seed=35, rate_limit=(1, 2.0), rate_limit_retry_after=False)
    r = run_exporter({"accounts": [oauth_account(sim, None, page_size=5, rate_limit=FAST)]}, start=False)
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="oauth") == 1
    assert statuses(sim).count(429) <= 1  # jitter between the two clocks may cost one; the headers pace the rest
    assert value(found, "isolarcloud_api_rate_limited_total", account="oauth") == statuses(sim).count(429)


def test_a_retry_after_beyond_the_bound_fails_the_refresh_and_backs_off(make_sim, run_exporter) -> None:
    sim = make_sim(plants=10, seed=36)
    r = run_exporter({"accounts": [oauth_account(sim, None, rate_limit={**FAST, "max_retry_after": "2s"})]},
                     start=False)
    r.refresh_now()
    plants = value(r.metrics(), "isolarcloud_plants", account="oauth")
    sim.inject("rate_limited:3600", path=LIST)
    started = time.monotonic()
    r.refresh_now()
    assert time.monotonic() - started < 2.0  # not an hour, not even the bound: the refresh backs off instead
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="oauth") == 0
    assert value(found, "isolarcloud_plants", account="oauth") == plants  # the list is kept
    assert value(found, "isolarcloud_api_requests_total", account="oauth", endpoint=LIST, result="http_429") == 1
    assert (value(found, "isolarcloud_backoff_until_timestamp_seconds", account="oauth") or 0) > time.time()


def test_three_429s_in_a_row_fail_as_rate_limited(make_sim, run_exporter) -> None:
    sim = make_sim(plants=10, seed=37)
    r = run_exporter({"accounts": [oauth_account(sim, None, rate_limit=FAST)]}, start=False)
    r.refresh_now()
    sim.inject("rate_limited:0", path=LIST, times=3)
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_api_requests_total", account="oauth", endpoint=LIST, result="http_429") == 3
    assert value(found, "isolarcloud_api_rate_limited_total", account="oauth") == 3
    assert value(found, "isolarcloud_refreshes_total", account="oauth", result="error") == 1
    r.refresh_now()
    assert value(r.metrics(), "isolarcloud_up", account="oauth") == 1
