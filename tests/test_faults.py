"""Fault injection: every failure the cloud can throw, against the simulator over real sockets.

For each fault the exporter must stay up, answer /metrics within the scrape timeout with a valid exposition,
say what happened (`isolarcloud_up`, `isolarcloud_api_requests_total{result}`, `isolarcloud_refreshes_total`,
`isolarcloud_auth_total`), keep the previous snapshot while it is within max_age (with up=0), withhold it after
max_age, never present part of the fleet as the whole, and recover on the next good refresh.

Time is moved with the `Clock` fixture (the exporter's clock; the simulator keeps real time), so max_age and
backoff are tested without sleeping. HTTP faults cost at most `http_timeout` (1 s) of real time each.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.simulator import Simulator
from tests._fault_support import (
    DATA_FAULTS,
    LEGACY_LIST,
    LIST,
    QUOTA_FAULTS,
    REALTIME,
    DataFault,
    auth_total,
    cycle,
    fault_params,
    refresh_errors,
    refreshes,
    requests_total,
    scrape,
    timed_get,
    wait_for_refresh,
)
from tests.conftest import Clock, Running, Samples, login_account, oauth_account, samples, select, value

INTERVAL = 60.0
MAX_AGE = 300.0
HTTP_TIMEOUT = 1.0
SCRAPE_TIMEOUT = 3.0
LIMIT = SCRAPE_TIMEOUT  # every /metrics answer must come within the scrape timeout


def config(*accounts: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"refresh_interval": INTERVAL, "max_age": MAX_AGE, "http_timeout": HTTP_TIMEOUT,
            "scrape_timeout": SCRAPE_TIMEOUT, "max_response_bytes": 1024 * 1024, "accounts": list(accounts),
            **overrides}


def listed(sim: Simulator) -> set[str]:
    """The ps_ids the exporter should list (its default valid_flag filter is 1,3)."""
    return {str(p.ps_id) for p in sim.fleet.query(None, "", frozenset({1, 3}))}


def shown(found: Samples, account: str) -> set[str]:
    return {dict(labels)["ps_id"] for (name, labels), _ in found.items()
            if name == "isolarcloud_plant_info" and dict(labels)["account"] == account}


def any_plant_series(found: Samples) -> bool:
    return any(name.startswith("isolarcloud_plant_") for name, _ in found)


def assert_healthy(found: Samples, account: str, sim: Simulator) -> None:
    assert value(found, "isolarcloud_up", account=account) == 1
    assert value(found, "isolarcloud_plants", account=account) == len(listed(sim))
    assert shown(found, account) == listed(sim)


def assert_kept(found: Samples, account: str, plants: set[str], errors: float) -> None:
    """The refresh failed: up=0, the previous snapshot is still served whole."""
    assert value(found, "isolarcloud_up", account=account) == 0
    assert value(found, "isolarcloud_plants", account=account) == len(plants)
    assert shown(found, account) == plants
    assert refresh_errors(found, account) == errors


def assert_withheld(found: Samples, account: str) -> None:
    """Past max_age: up=0 and no plant series at all (no half-stale fleet)."""
    assert value(found, "isolarcloud_up", account=account) == 0
    assert value(found, "isolarcloud_plants", account=account) is None
    assert not any_plant_series(found)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def start_healthy(run_exporter: Callable[..., Running], clock: Clock, sim: Simulator,
                  account: dict[str, Any], **overrides: Any) -> tuple[Running, Samples]:
    r = run_exporter(config(account, **overrides), clock=clock)
    r.wait_refreshed(1)
    found = scrape(r, LIMIT)
    assert_healthy(found, account["name"], sim)
    return r, found


# -- one test per data fault -------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", fault_params(tuple(f for f in DATA_FAULTS if f.path != REALTIME)))
def test_data_fault(fault: DataFault, sim: Simulator, run_exporter: Callable[..., Running], clock: Clock,
                    tmp_path: Path) -> None:
    token_file = tmp_path / "tokens.json"
    r, found = start_healthy(run_exporter, clock, sim, oauth_account(sim, token_file))
    good_at = value(found, "isolarcloud_last_refresh_success_timestamp_seconds", account="oauth")
    plants = listed(sim)

    sim.inject(fault.fault, path=fault.path, times=1000)
    started = time.monotonic()
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert time.monotonic() - started < HTTP_TIMEOUT + LIMIT + 2, "the refresh was not cut at http_timeout"
    assert_kept(found, "oauth", plants, errors=1)
    assert requests_total(found, "oauth", fault.path, fault.result) == 1
    assert value(found, "isolarcloud_last_refresh_success_timestamp_seconds", account="oauth") == good_at
    assert value(found, "isolarcloud_backoff_until_timestamp_seconds", account="oauth") == 0

    found = cycle(r, LIMIT, MAX_AGE, clock)  # still failing, and now the snapshot is too old
    assert_withheld(found, "oauth")
    assert refresh_errors(found, "oauth") == 2
    assert requests_total(found, "oauth", fault.path, fault.result) == 2

    sim.clear_faults()
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert_healthy(found, "oauth", sim)
    assert timed_get(r, "/-/healthy", LIMIT).status_code == 200
    assert json.loads(token_file.read_text())["refresh_token"]


@pytest.mark.parametrize("fault", fault_params(tuple(f for f in DATA_FAULTS if f.path == REALTIME)))
def test_realtime_fault_keeps_the_plant_list(fault: DataFault, sim: Simulator, run_exporter: Callable[..., Running],
                                             clock: Clock) -> None:
    """Real-time data is its own collection: when it fails, the plant list (isolarcloud_up, status series) stays
    up; the production values are kept until the real-time collection's max_age, then withheld alone."""
    r, found = start_healthy(run_exporter, clock, sim, oauth_account(sim, None))
    power = select(found, "isolarcloud_plant_power_watts", account="oauth")
    assert power
    sim.inject(fault.fault, path=fault.path, times=1000)
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert_healthy(found, "oauth", sim)
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="realtime") == 0
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="plants") == 1
    assert requests_total(found, "oauth", fault.path, fault.result) == 1
    assert select(found, "isolarcloud_plant_power_watts", account="oauth").keys() == power.keys()  # kept

    found = cycle(r, LIMIT, MAX_AGE, clock)  # still failing, and now the production values are too old
    assert_healthy(found, "oauth", sim)
    assert not select(found, "isolarcloud_plant_power_watts", account="oauth")
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="realtime") == 0

    sim.clear_faults()
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert_healthy(found, "oauth", sim)
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="realtime") == 1
    assert select(found, "isolarcloud_plant_power_watts", account="oauth").keys() == power.keys()


def test_fault_exposition_passes_promtool(promtool: str, sim: Simulator, run_exporter: Callable[..., Running],
                                          clock: Clock) -> None:
    """The exposition served while failing (snapshot kept, then withheld) is valid for Prometheus itself."""
    r, _ = start_healthy(run_exporter, clock, sim, oauth_account(sim, None))
    sim.inject("http:503", path=LIST, times=1000)
    texts = []
    for advance in (INTERVAL + 1, MAX_AGE):
        before = refreshes(r)
        clock.advance(advance)
        r.scrape()
        wait_for_refresh(r, before)
        texts.append(r.scrape())
    assert "isolarcloud_plant_info{" in texts[0] and "isolarcloud_plant_info{" not in texts[1]
    for text in texts:
        check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr


def test_huge_response_is_abandoned_with_bounded_memory(sim: Simulator, run_exporter: Callable[..., Running],
                                                       clock: Clock) -> None:
    """A 64 MiB answer is cut at max_response_bytes (1 MiB): result too_large, RSS stays bounded."""
    r, _ = start_healthy(run_exporter, clock, sim, oauth_account(sim, None))
    plants = listed(sim)
    sim.inject("huge", path=LIST, times=1000)
    rss_before = _rss()
    started = time.monotonic()
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    for _ in range(2):
        found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert time.monotonic() - started < 3 * HTTP_TIMEOUT + 5
    growth = _rss() - rss_before
    assert growth < 24 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB over three 64 MiB answers"
    assert value(found, "isolarcloud_up", account="oauth") == 0
    assert requests_total(found, "oauth", LIST, "too_large") == 3
    assert shown(found, "oauth") == plants  # 61 s + 61 s + 61 s < max_age: the snapshot is still served
    sim.clear_faults()
    assert_healthy(cycle(r, LIMIT, INTERVAL + 1, clock), "oauth", sim)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_cold_start_against_a_hanging_gateway_answers_within_the_scrape_timeout(
        sim: Simulator, run_exporter: Callable[..., Running]) -> None:
    """No snapshot yet and the first refresh is stuck: the scrape still answers in time, with up=0."""
    sim.inject("hang", times=1000)
    r = run_exporter(config(login_account(sim), http_timeout=2, scrape_timeout=1))
    response = timed_get(r, "/metrics", limit=1.0)
    found = samples(response.text)
    assert value(found, "isolarcloud_up", account="login") == 0
    assert not any_plant_series(found)
    assert timed_get(r, "/-/ready", limit=1.0).status_code == 503
    # Prometheus' own timeout header is honoured the same way.
    response = timed_get(r, "/metrics", limit=1.0, headers={"X-Prometheus-Scrape-Timeout-Seconds": "0.8"})
    assert response.status_code == 200
    sim.clear_faults()
    r.wait_refreshed(1)
    assert timed_get(r, "/-/ready", limit=1.0).status_code == 200


# -- network faults: refused, DNS, TLS ----------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def self_signed_https() -> Iterator[str]:
    """A TLS server whose certificate no client trusts; it completes no HTTP exchange."""
    import trustme  # test extra

    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                conn.settimeout(2)
                with context.wrap_socket(conn, server_side=True):
                    pass
            except OSError:
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    listener.close()


NETWORK_FAULTS = {
    "connection-refused": "connection_refused",
    "dns-failure": "dns_error",
    "tls-to-plain-http-port": "tls_error",
    "tls-self-signed": "tls_error",
}


@pytest.mark.parametrize("kind", list(NETWORK_FAULTS))
def test_network_fault(kind: str, sim: Simulator, run_exporter: Callable[..., Running], clock: Clock,
                       request: pytest.FixtureRequest) -> None:
    """Cold start against an unreachable gateway, then the network comes and goes: the gateway URL of the
    running exporter is switched between the bad one and the simulator (a test-only lever)."""
    if kind == "connection-refused":
        bad = f"http://127.0.0.1:{_closed_port()}"
    elif kind == "dns-failure":
        bad = "http://nonexistent.invalid"
    elif kind == "tls-to-plain-http-port":
        bad = f"https://127.0.0.1:{sim.port}"
    else:
        bad = request.getfixturevalue("self_signed_https")
    result = NETWORK_FAULTS[kind]
    account = {**login_account(sim), "base_url": bad}
    r = run_exporter(config(account), clock=clock)
    r.wait_refreshed(1)
    found = scrape(r, LIMIT)
    assert value(found, "isolarcloud_up", account="login") == 0
    assert not any_plant_series(found)
    assert requests_total(found, "login", "login", result) == 1
    assert refresh_errors(found, "login") == 1
    assert timed_get(r, "/-/ready", LIMIT).status_code == 200  # attempted: ready, and says down

    transport = r.exporter.engines[0].session.transport
    transport.base_url = sim.url  # the network is back
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert_healthy(found, "login", sim)
    plants = listed(sim)

    transport.base_url = bad  # and gone again: the snapshot is kept, then withheld
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert_kept(found, "login", plants, errors=2)
    assert requests_total(found, "login", LEGACY_LIST, result) == 1
    found = cycle(r, LIMIT, MAX_AGE, clock)
    assert_withheld(found, "login")

    transport.base_url = sim.url
    assert_healthy(cycle(r, LIMIT, INTERVAL + 1, clock), "login", sim)


# -- rejected tokens mid-pagination -------------------------------------------------------------------------


def _paged(account: dict[str, Any]) -> dict[str, Any]:
    return {**account, "page_size": 10}


@pytest.mark.parametrize("style", ["E00003", "invalid_token"])
def test_access_token_rejected_mid_pagination(style: str, make_sim: Callable[..., Simulator],
                                              run_exporter: Callable[..., Running], clock: Clock) -> None:
    """The access token dies between page 1 and page 2: one refresh, page 2 retried, paging continues."""
    sim = make_sim(plants=25, seed=1, expired_token_style="envelope" if style == "E00003" else "oauth_error")
    r, found = start_healthy(run_exporter, clock, sim, _paged(oauth_account(sim, None)))
    assert auth_total(found, "oauth", "refresh", "success") == 1  # the initial token
    sim.reset_calls()
    sim.inject("hook", path=LIST, page=2, hook=lambda s: s.expire_access_tokens())
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert_healthy(found, "oauth", sim)
    assert sim.count("refreshToken") == 1
    assert auth_total(found, "oauth", "refresh", "success") == 2
    result = "E00003" if style == "E00003" else "oauth_invalid_token"
    assert requests_total(found, "oauth", LIST, result) == 1
    pages = [c.body["page"] for c in sim.calls if c.path.endswith(LIST) and c.body]
    assert pages == [1, 2, 2, 3]


def test_login_token_rejected_mid_pagination(sim: Simulator, run_exporter: Callable[..., Running],
                                             clock: Clock) -> None:
    r, found = start_healthy(run_exporter, clock, sim, _paged(login_account(sim)))
    assert auth_total(found, "login", "login", "success") == 1
    sim.reset_calls()
    sim.inject("hook", path=LEGACY_LIST, page=2, hook=lambda s: s.expire_login_tokens())
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert_healthy(found, "login", sim)
    assert sim.count("/openapi/login") == 1
    assert auth_total(found, "login", "login", "success") == 2
    assert requests_total(found, "login", LEGACY_LIST, "E00003") == 1
    pages = [c.body["curPage"] for c in sim.calls if c.path.endswith(LEGACY_LIST) and c.body]
    assert pages == [1, 2, 2, 3]


def test_token_rejected_again_after_recovery_fails_without_looping(
        sim: Simulator, run_exporter: Callable[..., Running], clock: Clock) -> None:
    """A gateway that rejects every token: one refresh per cycle, then the cycle fails (no auth loop)."""
    r, _ = start_healthy(run_exporter, clock, sim, oauth_account(sim, None))
    plants = listed(sim)
    sim.reset_calls()
    sim.inject("code:E00003", path=LIST, times=1000)
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert_kept(found, "oauth", plants, errors=1)
    assert sim.count("refreshToken") == 1
    assert sim.count(LIST) == 2
    assert requests_total(found, "oauth", LIST, "E00003") == 2
    sim.clear_faults()
    assert_healthy(cycle(r, LIMIT, INTERVAL + 1, clock), "oauth", sim)


# -- a refresh token rotated by someone else ----------------------------------------------------------------


def test_refresh_token_rotated_elsewhere(sim: Simulator, run_exporter: Callable[..., Running], clock: Clock,
                                         tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    token_file = tmp_path / "tokens.json"
    r, _ = start_healthy(run_exporter, clock, sim, oauth_account(sim, token_file))
    plants = listed(sim)
    ours = json.loads(token_file.read_text())["refresh_token"]
    theirs = sim.rotate_refresh_token_elsewhere(ours)  # another exporter/copy used our refresh token
    sim.reset_calls()

    with caplog.at_level(logging.ERROR):
        found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert_kept(found, "oauth", plants, errors=1)
    assert auth_total(found, "oauth", "refresh", "failure") == 1
    assert sim.count("refreshToken") == 1
    assert any("refresh refused" in rec.getMessage() and rec.levelno == logging.ERROR for rec in caplog.records)
    backoff = value(found, "isolarcloud_backoff_until_timestamp_seconds", account="oauth")
    assert backoff is not None and backoff > clock.now
    calls = sim.count()
    for _ in range(5):  # scrapes during the credential backoff make no calls at all
        clock.advance(120)
        scrape(r, LIMIT)
    time.sleep(0.1)
    assert sim.count() == calls
    assert json.loads(token_file.read_text())["refresh_token"] == ours  # our (dead) token is not lost either
    data = json.loads(token_file.read_text())

    # A broken write of the token file during the backoff costs at most one attempt, not one per scrape.
    token_file.write_text("{not json")
    for _ in range(5):
        clock.advance(1)
        scrape(r, LIMIT)
        wait_for_refresh(r, -1)
    assert sim.count() <= calls + 1
    assert refreshes(r) <= 3

    # The owner re-authorises (or the other copy hands over): the new token lands in the token file.
    data.update(access_token=theirs["access_token"], refresh_token=theirs["refresh_token"],
                access_expires_at=None)
    token_file.write_text(json.dumps(data))
    renewals = sim.count("refreshToken")
    found = cycle(r, LIMIT, 1, clock)  # still inside the backoff: the new token file ends it at once
    assert clock.now < backoff
    assert_healthy(found, "oauth", sim)
    assert value(found, "isolarcloud_backoff_until_timestamp_seconds", account="oauth") == 0
    # Their tokens serve as they are, without a refresh of our own: the file keeps their refresh token, which
    # the gateway still accepts.
    assert sim.count("refreshToken") == renewals
    assert json.loads(token_file.read_text())["refresh_token"] == theirs["refresh_token"]
    assert sim.rotate_refresh_token_elsewhere(theirs["refresh_token"])["refresh_token"]


# -- quota and rate limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", list(QUOTA_FAULTS))
def test_quota_fault_backs_off(code: str, sim: Simulator, run_exporter: Callable[..., Running],
                               clock: Clock) -> None:
    r, _ = start_healthy(run_exporter, clock, sim, oauth_account(sim, None))
    plants = listed(sim)
    sim.inject(f"code:{code}", path=LIST, times=1000)
    before = refreshes(r)
    clock.advance(INTERVAL + 1)
    failed_at = clock.now
    scrape(r, LIMIT)
    wait_for_refresh(r, before)
    found = scrape(r, LIMIT)
    assert_kept(found, "oauth", plants, errors=1)
    assert requests_total(found, "oauth", LIST, code) == 1
    wait = QUOTA_FAULTS[code]
    expected = (math.floor(failed_at / 3600) + 1) * 3600 + 60 if wait is None else failed_at + wait
    assert value(found, "isolarcloud_backoff_until_timestamp_seconds", account="oauth") == pytest.approx(expected)
    _assert_no_calls_during_backoff(r, sim, clock, expected)
    sim.clear_faults()
    found = cycle(r, LIMIT, expected - clock.now + 1, clock)
    assert_healthy(found, "oauth", sim)
    assert value(found, "isolarcloud_backoff_until_timestamp_seconds", account="oauth") == 0


def _assert_no_calls_during_backoff(r: Running, sim: Simulator, clock: Clock, until: float) -> None:
    calls, attempts = sim.count(), refreshes(r)
    step = (until - clock.now) / 6
    for _ in range(5):
        clock.advance(step)
        found = scrape(r, LIMIT)
        assert value(found, "isolarcloud_up", account=next(iter(p.name for p in r.exporter.engines))) == 0
    time.sleep(0.1)
    assert sim.count() == calls, "API calls were made during the backoff"
    assert refreshes(r) == attempts


def test_login_rate_limit_e916_backs_off(sim: Simulator, run_exporter: Callable[..., Running],
                                         clock: Clock) -> None:
    """E916 (logins too frequent) on the re-login after an expired login token: back off, do not retry."""
    r, _ = start_healthy(run_exporter, clock, sim, login_account(sim))
    plants = listed(sim)
    sim.expire_login_tokens()
    sim.inject("code:E916", path="/openapi/login", times=1000)
    before = refreshes(r)
    clock.advance(INTERVAL + 1)
    failed_at = clock.now
    scrape(r, LIMIT)
    wait_for_refresh(r, before)
    found = scrape(r, LIMIT)
    assert_kept(found, "login", plants, errors=1)
    assert requests_total(found, "login", "login", "E916") == 1
    assert auth_total(found, "login", "login", "failure") == 1
    until = value(found, "isolarcloud_backoff_until_timestamp_seconds", account="login")
    assert until is not None and until >= failed_at + 60
    _assert_no_calls_during_backoff(r, sim, clock, until)
    sim.clear_faults()
    assert_healthy(cycle(r, LIMIT, until - clock.now + 1, clock), "login", sim)


# -- paging that repeats, skips or shifts -------------------------------------------------------------------


@pytest.mark.parametrize("fault,page", [("repeat_page", 2), ("skip_plants", 1)], ids=["repeat-page", "skip-plants"])
def test_inconsistent_page_is_read_again(fault: str, page: int, sim: Simulator,
                                         run_exporter: Callable[..., Running], clock: Clock,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """One bad page: the list is read again, and the whole fleet is presented, never the partial one."""
    r, _ = start_healthy(run_exporter, clock, sim, _paged(oauth_account(sim, None)))
    sim.inject(fault, path=LIST, page=page)
    with caplog.at_level(logging.WARNING):
        found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert_healthy(found, "oauth", sim)
    assert any("plant list" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize("fault,page", [("repeat_page", 2), ("skip_plants", 1)], ids=["repeat-page", "skip-plants"])
def test_persistently_inconsistent_pages_fail_the_refresh(fault: str, page: int, sim: Simulator,
                                                          run_exporter: Callable[..., Running],
                                                          clock: Clock) -> None:
    """A list that never adds up: the refresh fails (up=0, previous snapshot kept), no partial fleet."""
    r, _ = start_healthy(run_exporter, clock, sim, _paged(oauth_account(sim, None)))
    plants = listed(sim)
    sim.inject(fault, path=LIST, page=page, times=1000)
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert_kept(found, "oauth", plants, errors=1)
    sim.clear_faults()
    assert_healthy(cycle(r, LIMIT, INTERVAL + 1, clock), "oauth", sim)


def test_strict_row_count_off_serves_what_was_read(sim: Simulator, run_exporter: Callable[..., Running],
                                                   clock: Clock) -> None:
    """An account whose total never adds up can opt out: the distinct plants read are served, nothing doubled."""
    r, _ = start_healthy(run_exporter, clock, sim, _paged(oauth_account(sim, None, strict_row_count=False)))
    sim.inject("repeat_page", path=LIST, page=2, times=1000)
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert value(found, "isolarcloud_up", account="oauth") == 1
    ids = {dict(lbl)["ps_id"] for lbl in select(found, "isolarcloud_plant_info", account="oauth")}
    assert ids < set(listed(sim)) and value(found, "isolarcloud_plants", account="oauth") == len(ids)


@pytest.mark.parametrize("change", ["plant-added-before-page-2", "plant-removed-before-page-2"])
def test_plant_count_changes_between_pages(change: str, sim: Simulator, run_exporter: Callable[..., Running],
                                           clock: Clock) -> None:
    r, _ = start_healthy(run_exporter, clock, sim, _paged(oauth_account(sim, None)))
    removed: list[str] = []
    added: list[str] = []

    def hook(s: Simulator) -> None:
        if change == "plant-added-before-page-2":
            # Shifts every page: page 2 repeats a plant, and the new one sits on page 1, already read.
            (new,) = s.add_plants(1, at=0)
            s.set_plant(new, valid_flag=1)
            added.append(str(new))
        else:
            victim = s.plants[3]  # already read on page 1: page 2 now starts one plant later
            removed.append(str(victim.ps_id))
            s.remove_plant(victim.ps_id)

    sim.inject("hook", path=LIST, page=2, hook=hook)
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert_healthy(found, "oauth", sim)
    assert not set(removed) & shown(found, "oauth")
    assert set(added) <= shown(found, "oauth")
    assert len(removed) + len(added) == 1


def test_server_capping_the_page_size_is_paged_through(make_sim: Callable[..., Simulator],
                                                       run_exporter: Callable[..., Running],
                                                       clock: Clock) -> None:
    """A gateway that silently returns fewer rows per page than asked: every page is read, none is lost."""
    sim = make_sim(plants=25, seed=1, max_page_size=10)
    start_healthy(run_exporter, clock, sim, oauth_account(sim, None))


# -- wrong region: authenticates, lists nothing -------------------------------------------------------------


def test_wrong_region_empty_fleet_is_signalled(make_sim: Callable[..., Simulator],
                                               run_exporter: Callable[..., Running], clock: Clock,
                                               caplog: pytest.LogCaptureFixture) -> None:
    empty = make_sim(plants=0, seed=1)
    with caplog.at_level(logging.WARNING):
        r = run_exporter(config(oauth_account(empty, None)), clock=clock)
        r.wait_refreshed(1)
    found = scrape(r, LIMIT)
    assert value(found, "isolarcloud_up", account="oauth") == 1
    assert value(found, "isolarcloud_plants", account="oauth") == 0
    assert not any_plant_series(found)
    assert any("lists no plants" in rec.getMessage() and "region" in rec.getMessage() for rec in caplog.records)


def test_fleet_emptied_is_signalled_not_silent(sim: Simulator, run_exporter: Callable[..., Running],
                                               clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """All plants gone at once reads as plants=0 with up=1 and a warning, never as a quiet gap."""
    r, _ = start_healthy(run_exporter, clock, sim, oauth_account(sim, None))
    sim.set_fleet_size(0)
    with caplog.at_level(logging.WARNING):
        found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert value(found, "isolarcloud_up", account="oauth") == 1
    assert value(found, "isolarcloud_plants", account="oauth") == 0
    assert any("lists no plants" in rec.getMessage() for rec in caplog.records)


@pytest.fixture
def tcp_relay(sim: Simulator) -> Iterator[str]:
    """A stand-in HTTP proxy: relays bytes to the simulator, which accepts absolute-form request targets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", sim.port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()


def test_slow_drip_through_an_http_proxy_is_cut_too(sim: Simulator, run_exporter: Callable[..., Running],
                                                    clock: Clock, tcp_relay: str) -> None:
    """Behind a proxy (HTTP(S)_PROXY) the total deadline holds as well."""
    r = run_exporter(config(oauth_account(sim, None)), clock=clock, start=False)
    r.exporter.engines[0].session.transport.session.proxies = {"http": tcp_relay, "https": tcp_relay}
    r.exporter.start()
    r.wait_refreshed(1)
    assert_healthy(scrape(r, LIMIT), "oauth", sim)
    assert any(c.path.endswith(LIST) for c in sim.calls)
    sim.inject("slow", path=LIST, times=1000)
    started = time.monotonic()
    found = cycle(r, LIMIT, INTERVAL + 1, clock)
    assert time.monotonic() - started < HTTP_TIMEOUT + LIMIT + 2, "the refresh was not cut at http_timeout"
    assert requests_total(found, "oauth", LIST, "timeout") == 1
