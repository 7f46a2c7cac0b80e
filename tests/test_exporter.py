"""The exporter against the simulator over real sockets: both auth modes, tokens, pagination, staleness,
concurrency, isolation between accounts, and the exposition itself."""

from __future__ import annotations

import gzip
import json
import math
import os
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from exporter.simulator import Simulator
from tests.conftest import Clock, login_account, oauth_account, samples, select, value

VALID = (1, 3)  # the exporter's default valid_flag filter


def listed(s: Simulator) -> dict[str, Any]:
    """The simulator's plants that the default filter lists, by id."""
    return {str(p.ps_id): p for p in s.plants if int(p["valid_flag"]) in VALID}


def exported_ids(found: dict, account: str) -> set[str]:
    return {dict(lbl)["ps_id"] for lbl in select(found, "isolarcloud_plant_info", account=account)}


def list_calls(s: Simulator) -> list[Any]:
    return [c for c in s.calls if "PowerStationList" in c.path]


def test_login_mode_exports_every_plant(sim: Simulator, run_exporter) -> None:
    r = run_exporter({"accounts": [login_account(sim, page_size=7)]})
    found = r.metrics()
    expected = listed(sim)
    assert exported_ids(found, "login") == set(expected)
    assert value(found, "isolarcloud_up", account="login") == 1
    assert value(found, "isolarcloud_plants", account="login") == len(expected)
    login = [c for c in sim.calls if c.path == "/openapi/login"]
    assert len(login) == 1 and login[0].headers.get("sys_code") == "901"
    pages = list_calls(sim)
    assert all(c.path == "/openapi/getPowerStationList" for c in pages)
    assert [c.body["curPage"] for c in pages] == list(range(1, math.ceil(len(expected) / 7) + 1))
    assert all(c.body["token"] and c.body["valid_flag"] == "1,3" and c.body["lang"] == "_en_US" for c in pages)


def test_oauth2_mode_uses_bearer_platform_calls(sim: Simulator, run_exporter, tmp_path: Path) -> None:
    r = run_exporter({"accounts": [oauth_account(sim, tmp_path / "tokens.json", realtime={"enabled": False})]})
    found = r.metrics()
    assert exported_ids(found, "oauth") == set(listed(sim))
    pages = list_calls(sim)
    assert pages and all(c.path == "/openapi/platform/queryPowerStationList" for c in pages)
    for call in pages:
        assert call.headers["Authorization"].startswith("Bearer ")
        assert call.headers["x-access-key"] == sim.secret_key
        assert call.body["appkey"] == sim.appkey and call.body["lang"] == "_en_US"
        assert call.body["page"] >= 1 and call.body["size"] == 100


def test_status_values_match_what_the_simulator_served(sim: Simulator, run_exporter) -> None:
    r = run_exporter({"accounts": [login_account(sim)]})
    found = r.metrics()
    served = [row for c in list_calls(sim) for row in c.response["result_data"]["pageList"]]
    assert served
    fields = {"ps_fault_status": "isolarcloud_plant_fault_status", "online_status": "isolarcloud_plant_online_status",
              "build_status": "isolarcloud_plant_build_status", "valid_flag": "isolarcloud_plant_valid_flag",
              "grid_connection_status": "isolarcloud_plant_grid_connection_status"}
    for row in served:
        for field, metric in fields.items():
            got = value(found, metric, ps_id=str(row["ps_id"]))
            raw = row.get(field)
            if raw is None or str(raw).strip() == "":
                assert got is None, (field, row)  # missing is never exported as a healthy value
            else:
                assert got == float(raw), (field, row)
        lat = value(found, "isolarcloud_plant_latitude_degrees", ps_id=str(row["ps_id"]))
        raw_lat = row.get("latitude")
        assert lat == (float(raw_lat) if raw_lat not in (None, "", 0, "0") and float(raw_lat) != 0 else None)


def test_names_with_quotes_backslashes_newlines_and_unicode_survive(sim: Simulator, run_exporter) -> None:
    r = run_exporter({"accounts": [login_account(sim)]})
    found = r.metrics()
    names = {dict(lbl)["ps_id"]: dict(lbl)["ps_name"] for lbl in select(found, "isolarcloud_plant_info")}
    awkward = 0
    for ps_id, plant in listed(sim).items():
        expected = "".join(" " if (ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127 else ch
                           for ch in str(plant["ps_name"] or ""))
        assert names[ps_id] == expected
        awkward += any(ch in expected for ch in '"\\\n') or not expected.isascii()
    assert awkward >= 3, "the simulated fleet should exercise escaping"


def test_exposition_passes_promtool_and_parses_in_both_formats(sim: Simulator, run_exporter, promtool) -> None:
    # The clock held still: the two formats are compared, and the sun's elevation changes with the minute.
    r = run_exporter({"accounts": [login_account(sim)]}, clock=Clock())
    text = r.scrape()
    check = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    om = r.get(headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    runtime = ("process_", "python_")
    om_samples = {(s.name, frozenset(s.labels.items())): s.value
                  for f in parse_openmetrics(om.text) for s in f.samples if not s.name.startswith(runtime)}
    plain = {k: v for k, v in samples(text).items() if not k[0].startswith(("process_", "python_"))}
    volatile = ("isolarcloud_api_calls", "isolarcloud_backoff")
    assert {k: v for k, v in om_samples.items() if not k[0].startswith(volatile)} == {
        k: v for k, v in plain.items() if not k[0].startswith(volatile)}
    zipped = r.get(headers={"Accept-Encoding": "gzip"}, stream=True)
    assert zipped.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(zipped.raw.read())
    assert samples(body.decode()).keys() == samples(text).keys()
    assert "# TYPE isolarcloud_plant_info gauge" in text and "# TYPE isolarcloud_plant info" in om.text


def test_token_rotation_is_persisted_and_survives_a_restart(make_sim, run_exporter, tmp_path: Path) -> None:
    s = make_sim(plants=5, seed=3)
    token_file = tmp_path / "tokens.json"
    account = oauth_account(s, token_file, realtime={"enabled": False})
    seeded = account["auth"]["refresh_token"]
    first = run_exporter({"accounts": [account]}, start=False)
    first.refresh_now()
    stored = json.loads(token_file.read_text())
    assert stored["refresh_token"] and stored["refresh_token"] != seeded  # rotated and written at once
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.json"]  # no temporary files left behind
    first.stop()
    # The restarted exporter's configuration still names the spent seed token: the file must win.
    s.expire_access_tokens()
    second = run_exporter({"accounts": [account]}, start=False)
    second.refresh_now()
    found = second.metrics()
    assert value(found, "isolarcloud_up", account="oauth") == 1
    assert value(found, "isolarcloud_auth_total", account="oauth", kind="refresh", result="success") == 1
    assert json.loads(token_file.read_text())["refresh_token"] != stored["refresh_token"]
    assert value(found, "isolarcloud_token_expiry_timestamp_seconds", account="oauth", token="refresh") > (
        time.time() + 29 * 86400)


def test_access_token_is_refreshed_before_it_expires(make_sim, run_exporter) -> None:
    s = make_sim(plants=5, seed=3, access_token_ttl=120)  # shorter than the 5-minute refresh margin
    # One call per cycle (the plant list): a token this short-lived is refreshed before every call.
    r = run_exporter({"accounts": [oauth_account(s, None, realtime={"enabled": False}, faults={"enabled": False},
                                                 details={"enabled": False}, devices={"enabled": False})]},
                     start=False)
    r.refresh_now()
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_auth_total", account="oauth", kind="refresh", result="success") == 2
    # Refreshed before it expired: the gateway never had to reject it (invalid_token, HTTP 401 by default).
    assert not [c for c in s.calls if c.status == 401 or c.result_code == "E00003"]


@pytest.mark.parametrize("style", ["code:E00003", "oauth_error:invalid_token"])
def test_rejected_token_mid_pagination_refreshes_once_and_resumes(make_sim, run_exporter, style: str) -> None:
    s = make_sim(plants=30, seed=4)
    r = run_exporter({"accounts": [oauth_account(s, None, page_size=5, realtime={"enabled": False})]}, start=False)
    r.refresh_now()
    s.reset_calls()
    s.inject(style, path="queryPowerStationList", page=3)
    r.refresh_now()
    found = r.metrics()
    assert exported_ids(found, "oauth") == set(listed(s))
    pages = [c.body["page"] for c in list_calls(s)]
    assert pages[:4] == [1, 2, 3, 3] and len(pages) == len(set(pages)) + 1  # page 3 retried once, no restart
    assert s.count("refreshToken") == 1
    assert value(found, "isolarcloud_up", account="oauth") == 1


def test_login_token_expiry_relogs_in_once(make_sim, run_exporter) -> None:
    s = make_sim(plants=12, seed=5)
    r = run_exporter({"accounts": [login_account(s, page_size=5)]}, start=False)
    r.refresh_now()
    s.expire_login_tokens()
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_auth_total", account="login", kind="login", result="success") == 2
    assert value(found, "isolarcloud_api_requests_total", account="login", endpoint="getPowerStationList",
                 result="E00003") == 1
    assert exported_ids(found, "login") == set(listed(s))


def test_a_token_that_stays_rejected_never_loops(make_sim, run_exporter) -> None:
    s = make_sim(plants=5, seed=5)
    r = run_exporter({"accounts": [login_account(s)]}, start=False)
    r.refresh_now()  # the token serves a cycle: it has made progress
    s.reset_calls()
    s.inject("code:E00003", path="getPowerStationList", times=50)
    r.refresh_now()
    found = r.metrics()
    assert s.count("/openapi/login") == 1  # exactly one re-login
    assert s.count("getPowerStationList") == 2  # the request and its single retry
    assert value(found, "isolarcloud_up", account="login") == 0
    assert value(found, "isolarcloud_refreshes_total", account="login", result="error") == 1


def test_a_fresh_token_rejected_at_once_ends_the_cycle(make_sim, run_exporter) -> None:
    """The token just obtained by logging in is rejected before serving any call: logging in again could only
    loop, so the cycle ends; the next cycle logs in once more."""
    s = make_sim(plants=5, seed=5)
    r = run_exporter({"accounts": [login_account(s)]}, start=False)
    s.inject("code:E00003", path="getPowerStationList", times=50)
    r.refresh_now()
    assert (s.count("/openapi/login"), s.count("getPowerStationList")) == (1, 1)
    r.refresh_now()
    assert (s.count("/openapi/login"), s.count("getPowerStationList")) == (2, 3)
    assert value(r.metrics(), "isolarcloud_refreshes_total", account="login", result="error") == 2


def test_wrong_password_is_a_credential_error_and_backs_off(make_sim, run_exporter) -> None:
    s = make_sim(plants=5, seed=5)
    account = login_account(s)
    account["auth"]["user_password"] = "wrong-password"
    clock = Clock()
    r = run_exporter({"accounts": [account]}, clock=clock, start=False)
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_api_requests_total", account="login", endpoint="login",
                 result="login_state_0") == 1
    assert value(found, "isolarcloud_auth_total", account="login", kind="login", result="failure") == 1
    assert value(found, "isolarcloud_backoff_until_timestamp_seconds", account="login") >= clock.now + 600
    clock.advance(120)
    r.metrics()
    time.sleep(0.2)
    assert s.count("/openapi/login") == 1  # no retry inside the back-off: wrong passwords lock accounts
    assert "login refused: wrong password" in r.get("/").text


@pytest.mark.parametrize(("plants", "page_size", "total_key", "calls"), [
    (0, 10, "rowCount", 1),
    (1, 10, "rowCount", 1),
    (10, 10, "rowCount", 1),      # exactly one page: the total says stop
    (10, 10, None, 2),            # no total: only a short (empty) page says stop
    (10, 10, "row_count", 1),     # the field table's spelling
    (95, 10, "rowCount", 10),
])
def test_pagination_edges(make_sim, run_exporter, plants: int, page_size: int, total_key: str | None,
                          calls: int) -> None:
    s = make_sim(plants=plants, seed=6, total_key=total_key)
    s.set_fleet_size(plants)
    for p in s.plants:
        s.set_plant(p.ps_id, valid_flag=1)
    # OAuth2 mode: its list is the one whose total key the documentation disputes.
    account = oauth_account(s, None, page_size=page_size, realtime={"enabled": False})
    r = run_exporter({"accounts": [account]}, start=False)
    r.refresh_now()
    found = r.metrics()
    assert exported_ids(found, "oauth") == {str(p.ps_id) for p in s.plants}
    assert len(list_calls(s)) == calls
    assert value(found, "isolarcloud_plants", account="oauth") == plants
    assert value(found, "isolarcloud_up", account="oauth") == 1


def test_plant_added_between_pages_is_read_once(make_sim, run_exporter) -> None:
    s = make_sim(plants=20, seed=7)
    for p in s.plants:
        s.set_plant(p.ps_id, valid_flag=1)
    r = run_exporter({"accounts": [login_account(s, page_size=5)]}, start=False)
    added: list[int] = []

    def add_at_front(sim: Simulator) -> None:
        added.extend(sim.add_plants(1, at=0))
        sim.set_plant(added[-1], valid_flag=1)

    s.inject("hook", path="getPowerStationList", page=2, hook=add_at_front)
    r.refresh_now()
    found = r.metrics()
    # The insertion shifts the pages (one plant read twice, the new one missed) and the totals disagree:
    # the exporter reads the list once more instead of presenting 20 of 21 plants as the fleet.
    assert exported_ids(found, "login") == {str(p.ps_id) for p in s.plants}
    assert len(s.plants) == 21
    assert len(list_calls(s)) == 5 + 5  # the inconsistent pass and a clean one
    assert value(found, "isolarcloud_plants", account="login") == 21


def test_stale_snapshot_is_withheld_after_max_age_and_recovers(make_sim, run_exporter) -> None:
    s = make_sim(plants=8, seed=8)
    clock = Clock()
    r = run_exporter({"refresh_interval": 60, "max_age": 180, "accounts": [login_account(s)]}, clock=clock)
    r.wait_refreshed(1)
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="login") == 1 and exported_ids(found, "login")
    s.inject("http:503", times=1000)
    clock.advance(61)
    r.metrics()  # due: triggers a refresh, which fails
    r.wait_refreshed(2)
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="login") == 0
    assert exported_ids(found, "login") == set(listed(s))  # kept: within max_age, flagged by up=0
    assert value(found, "isolarcloud_api_requests_total", account="login", endpoint="getPowerStationList",
                 result="http_503") == 1
    clock.advance(130)  # 191 s after the last success: past max_age
    found = r.metrics()  # also due: starts a third refresh, which fails too
    r.wait_refreshed(3)
    assert not exported_ids(found, "login")
    assert value(found, "isolarcloud_plants", account="login") is None
    assert value(found, "isolarcloud_up", account="login") == 0
    s.clear_faults()
    clock.advance(120)
    r.metrics()
    r.wait_refreshed(4)
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="login") == 1
    assert exported_ids(found, "login") == set(listed(s))


def test_concurrent_scrapes_share_one_refresh(make_sim, run_exporter) -> None:
    s = make_sim(plants=40, seed=9)
    r = run_exporter({"accounts": [login_account(s, page_size=10)]}, start=False)
    results: list[int] = []

    def scrape() -> None:
        results.append(r.scrape().count("\nisolarcloud_plant_info{"))

    threads = [threading.Thread(target=scrape) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 30 and set(results) == {len(listed(s))}  # every scrape waited for the first snapshot
    assert s.count("/openapi/login") == 1
    assert len(list_calls(s)) == math.ceil(len(listed(s)) / 10)


def test_first_scrape_waits_no_longer_than_its_timeout(make_sim, run_exporter) -> None:
    s = make_sim(plants=5, seed=10)
    s.inject("hang", path="/openapi/login")
    r = run_exporter({"http_timeout": 20, "accounts": [login_account(s)]})
    started = time.monotonic()
    response = r.get(headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and elapsed < 1.5
    found = samples(response.text)
    assert value(found, "isolarcloud_up", account="login") == 0 and not exported_ids(found, "login")
    assert r.get("/-/ready").status_code == 503  # the first attempt is still running
    assert r.get("/-/healthy").status_code == 200


def test_broken_account_does_not_hide_a_healthy_one(sim: Simulator, run_exporter) -> None:
    broken = login_account(sim, name="broken")
    broken["base_url"] = "http://127.0.0.1:9"  # discard port: connection refused
    r = run_exporter({"http_timeout": 2, "accounts": [broken, login_account(sim, name="ok")]})
    r.wait_refreshed(1)
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="ok") == 1
    assert exported_ids(found, "ok") == set(listed(sim))
    assert value(found, "isolarcloud_up", account="broken") == 0
    assert value(found, "isolarcloud_api_requests_total", account="broken", endpoint="login",
                 result="connection_refused") == 1
    assert r.get("/-/ready").status_code == 200
    page = r.get("/").text
    assert "broken" in page and "connection refused" in page and ">ok<" in page


def test_quota_error_backs_off_until_the_next_hour(make_sim, run_exporter) -> None:
    s = make_sim(plants=5, seed=11)
    clock = Clock(3600 * 500_000 + 600)  # ten minutes into an hour
    r = run_exporter({"accounts": [login_account(s)]}, clock=clock, start=False)
    s.inject("code:E999", path="getPowerStationList")
    r.refresh_now()
    found = r.metrics()
    next_hour = 3600 * 500_001
    assert next_hour <= value(found, "isolarcloud_backoff_until_timestamp_seconds", account="login") <= next_hour + 120
    calls = s.count()
    clock.advance(1800)
    r.metrics()
    time.sleep(0.2)
    assert s.count() == calls  # still backing off: no call spent
    clock.advance(1800)
    r.metrics()
    r.wait_refreshed(2)
    assert value(r.metrics(), "isolarcloud_up", account="login") == 1


def test_status_page_and_health_endpoints(sim: Simulator, run_exporter) -> None:
    r = run_exporter({"accounts": [login_account(sim)]})
    r.wait_refreshed(1)
    assert r.get("/-/healthy").text == "Healthy\n"
    assert r.get("/-/ready").status_code == 200
    page = r.get("/")
    assert page.headers["Content-Type"].startswith("text/html")
    assert "login" in page.text and str(len(listed(sim))) in page.text
    for secret in ("demo-password", sim.secret_key, sim.appkey):
        assert secret not in page.text and secret not in r.scrape()
    assert r.get("/nope").status_code == 404
    assert requests.head(r.url + "/metrics", timeout=10).status_code == 200


def test_build_info_and_exporter_metrics(sim: Simulator, run_exporter) -> None:
    from exporter import __version__

    r = run_exporter({"accounts": [login_account(sim)]})
    found = r.metrics()
    info = select(found, "isolarcloud_exporter_build_info")
    assert [dict(lbl)["version"] for lbl in info] == [__version__]
    assert value(found, "isolarcloud_api_budget_calls_per_hour", account="login") == 1000
    assert value(found, "isolarcloud_refresh_interval_seconds", account="login") == 60
    assert any(name == "process_resident_memory_bytes" for name, _ in found)
