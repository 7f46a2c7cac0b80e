"""Reloading the configuration as Prometheus does: SIGHUP and POST /-/reload (behind --web.enable-lifecycle).

Unchanged accounts keep their engine (data, tokens, counters); changed ones restart with their counters (the
hourly budget holds) and their token file, handed over from the old engine once a token refresh in flight has
saved its rotated token; removed ones stop and their series go; a configuration that does not load changes
nothing and says why. In-process tests check engine identity and the hand-over; the SIGHUP test runs the CLI.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.app import Exporter
from exporter.config import load_config
from exporter.serve.web import Server
from exporter.simulator import Simulator
from tests.conftest import free_port, login_account, oauth_account, samples, select, value
from tests.test_cli import wait_http

REPO = Path(__file__).resolve().parent.parent


def write_config(path: Path, accounts: list[dict[str, Any]], **top: Any) -> Path:
    path.write_text(yaml.safe_dump({"refresh_interval": 60, **top, "accounts": accounts}))
    path.chmod(0o600)
    return path


class Live:
    """An exporter with a reloadable configuration file, served on a loopback port."""

    def __init__(self, path: Path, *, lifecycle: bool = True) -> None:
        self.path = path
        self.exporter = Exporter(load_config(path, env={}), loader=lambda: load_config(path, env={}),
                                 config_path=str(path))
        self.server = Server("127.0.0.1:0", self.exporter, lifecycle=lifecycle)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.exporter.start()

    def engine(self, name: str) -> Any:
        return next(e for e in self.exporter.engines if e.name == name)

    def wait_refreshed(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(e.attempted and not e.running for e in self.exporter.engines):
                return
            time.sleep(0.02)
        raise AssertionError("refresh did not finish in time")

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        response = requests.get(self.url + "/metrics", timeout=30)
        assert response.status_code == 200, response.text
        return samples(response.text)

    def post_reload(self) -> requests.Response:
        return requests.post(self.url + "/-/reload", timeout=60)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.exporter.close()


@pytest.fixture
def live() -> Iterator[Callable[..., Live]]:
    started: list[Live] = []

    def start(path: Path, **kwargs: Any) -> Live:
        started.append(Live(path, **kwargs))
        return started[-1]

    yield start
    for item in started:
        item.stop()


def requests_of(found: dict[tuple[str, frozenset[tuple[str, str]]], float], account: str) -> float:
    return sum(select(found, "isolarcloud_api_requests_total", account=account).values())


def accounts_of(found: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> set[str]:
    return {dict(labels)["account"] for labels in select(found, "isolarcloud_up")}


def test_reload_keeps_unchanged_restarts_changed_removes_and_adds(make_sim, live, tmp_path: Path) -> None:
    keep_sim, change_sim, drop_sim, add_sim = (make_sim(plants=5, seed=s) for s in (11, 12, 13, 14))
    token_file = tmp_path / "change.json"
    keep = login_account(keep_sim, name="keep", realtime={"enabled": False})
    change = oauth_account(change_sim, token_file, name="change")
    drop = login_account(drop_sim, name="drop")
    path = write_config(tmp_path / "config.yml", [keep, change, drop])
    r = live(path)
    r.wait_refreshed()
    hour_before = time.time() // 3600
    before = r.scrape()
    assert accounts_of(before) == {"keep", "change", "drop"}
    kept_engine, changed_engine = r.engine("keep"), r.engine("change")
    calls_before = value(before, "isolarcloud_api_calls_current_hour", account="change")
    loaded_at = value(before, "isolarcloud_config_last_reload_success_timestamp_seconds")
    assert calls_before is not None and loaded_at and value(before, "isolarcloud_config_last_reload_successful") == 1
    logins, refreshes = keep_sim.count("login"), change_sim.count("refreshToken")

    # change: another page size; drop: gone; add: new. The token file (not the seed token) is what carries over.
    change["auth"].pop("refresh_token", None)
    write_config(path, [keep, {**change, "page_size": 50}, login_account(add_sim, name="add")])
    answer = r.post_reload()
    assert answer.status_code == 200, answer.text
    assert "restarted [change]" in answer.text and "added [add]" in answer.text and "removed [drop]" in answer.text
    r.wait_refreshed()
    after = r.scrape()
    same_hour = time.time() // 3600 == hour_before
    assert accounts_of(after) == {"keep", "change", "add"}
    assert not [k for k in after if dict(k[1]).get("account") == "drop"], "a removed account's series go"
    assert r.engine("keep") is kept_engine and keep_sim.count("login") == logins, "unchanged: same engine"
    assert r.engine("change") is not changed_engine and not changed_engine.running
    # The restarted account carries on from its token file without a new authorisation, and its counters (the
    # hourly budget among them) continue instead of starting again at zero.
    assert value(after, "isolarcloud_up", account="change") == 1
    assert change_sim.count("refreshToken") == refreshes, "its access token was still good: no refresh needed"
    assert requests_of(after, "change") > requests_of(before, "change") > 0
    if same_hour:  # a new clock hour starts its count at zero, whatever the reload
        assert value(after, "isolarcloud_api_calls_current_hour", account="change") > calls_before
    assert value(after, "isolarcloud_auth_total", account="change", kind="refresh", result="failure") is None
    assert value(after, "isolarcloud_up", account="add") == 1
    assert value(after, "isolarcloud_config_last_reload_successful") == 1
    assert value(after, "isolarcloud_config_last_reload_success_timestamp_seconds") >= loaded_at

    # Reloading the same file changes nothing at all.
    engines = list(r.exporter.engines)
    assert r.post_reload().status_code == 200
    assert r.exporter.engines == engines


def test_a_bad_configuration_keeps_the_running_one_and_says_why(sim: Simulator, live, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    path = write_config(tmp_path / "config.yml", [login_account(sim, name="home")])
    r = live(path)
    r.wait_refreshed()
    engine = r.engine("home")
    loaded_at = value(r.scrape(), "isolarcloud_config_last_reload_success_timestamp_seconds")
    path.write_text(path.read_text().replace("page_size", "x").replace("refresh_interval", "refresh_intervall"))
    with caplog.at_level("ERROR"):
        answer = r.post_reload()
    assert answer.status_code == 500
    assert "refresh_intervall: unknown key (did you mean refresh_interval?)" in answer.text
    assert any("configuration reload failed, keeping the running configuration" in m and "refresh_intervall" in m
               for m in caplog.messages)
    found = r.scrape()
    assert value(found, "isolarcloud_config_last_reload_successful") == 0
    assert value(found, "isolarcloud_config_last_reload_success_timestamp_seconds") == loaded_at
    assert value(found, "isolarcloud_up", account="home") == 1 and r.engine("home") is engine
    page = requests.get(r.url + "/", timeout=10).text
    assert "last reload failed" in page
    # Fixed: the next reload succeeds and says so.
    write_config(path, [login_account(sim, name="home")])
    assert r.post_reload().status_code == 200
    assert value(r.scrape(), "isolarcloud_config_last_reload_successful") == 1


def test_lifecycle_endpoint_is_off_by_default_and_only_takes_post(sim: Simulator, live, tmp_path: Path) -> None:
    r = live(write_config(tmp_path / "config.yml", [login_account(sim)]), lifecycle=False)
    refused = r.post_reload()
    assert refused.status_code == 403 and "--web.enable-lifecycle" in refused.text
    assert requests.put(r.url + "/-/reload", timeout=10).status_code == 403
    on = live(write_config(tmp_path / "other.yml", [login_account(sim)]))
    got = requests.get(on.url + "/-/reload", timeout=10)
    assert got.status_code == 405 and got.headers["Allow"] == "POST, PUT"
    assert requests.post(on.url + "/metrics", timeout=10).status_code == 405
    assert requests.put(on.url + "/-/reload", timeout=30).status_code == 200


def test_reload_waits_for_a_token_rotation_in_flight(make_sim, live, tmp_path: Path) -> None:
    """One owner per token file: the old engine's refresh, already sent, must save its rotated token before the
    new engine reads the file; else the new engine would hold the spent token and need the owner again."""
    sim = make_sim(plants=4, seed=21)
    gate, entered = threading.Event(), threading.Event()

    def hold(_sim: Simulator) -> None:
        entered.set()
        gate.wait(30)

    token_file = tmp_path / "home.json"
    account = oauth_account(sim, token_file, name="home", realtime={"enabled": False})
    path = write_config(tmp_path / "config.yml", [account])
    sim.inject("hook", path="refreshToken", hook=hold)  # the first refresh (no access token yet) stalls
    r = live(path)
    assert entered.wait(20)
    account["auth"].pop("refresh_token")
    write_config(path, [{**account, "page_size": 20}])
    result: list[requests.Response] = []
    reloading = threading.Thread(target=lambda: result.append(r.post_reload()))
    reloading.start()
    reloading.join(0.5)
    assert reloading.is_alive(), "the reload waits for the rotation in flight"
    gate.set()
    reloading.join(60)
    assert result and result[0].status_code == 200, result
    rotated = json.loads(token_file.read_text())["refresh_token"]
    r.wait_refreshed()
    new = r.engine("home")
    assert new.auth.tokens.refresh_token == rotated, "the successor starts from the rotated token"
    sim.expire_access_tokens()  # make the new engine refresh with it: the gateway must accept it
    new.refresh(force=True)
    found = r.scrape()
    assert value(found, "isolarcloud_up", account="home") == 1
    assert value(found, "isolarcloud_auth_total", account="home", kind="refresh", result="success") == 2
    assert value(found, "isolarcloud_auth_total", account="home", kind="refresh", result="failure") is None


def test_reloads_during_scrapes_and_refreshes(make_sim, live, tmp_path: Path) -> None:
    """Scrapes never fail or mix two configurations while reloads swap accounts under them."""
    sims = [make_sim(plants=30, seed=40 + i) for i in range(3)]
    one = [login_account(sims[0], name="a"), login_account(sims[1], name="b")]
    two = [login_account(sims[0], name="a", page_size=7), login_account(sims[2], name="c")]
    path = write_config(tmp_path / "config.yml", one)
    r = live(path)
    r.wait_refreshed()
    seen: list[set[str]] = []
    errors: list[str] = []
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            try:
                seen.append(accounts_of(r.scrape()))
            except Exception as exc:  # any failure is what this test looks for
                errors.append(repr(exc))

    scrapers = [threading.Thread(target=scrape) for _ in range(4)]
    for t in scrapers:
        t.start()
    for i in range(6):
        write_config(path, two if i % 2 == 0 else one)
        assert r.post_reload().status_code == 200
    stop.set()
    for t in scrapers:
        t.join(60)
    assert not errors, errors[:3]
    assert seen and all(accounts in ({"a", "b"}, {"a", "c"}) for accounts in seen), seen


def test_sighup_reloads_and_a_bad_file_is_logged(sim: Simulator, tmp_path: Path) -> None:
    path = write_config(tmp_path / "config.yml", [login_account(sim, name="home")])
    port = free_port()
    stderr = (tmp_path / "stderr").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "exporter", f"--config.file={path}",
                             f"--web.listen-address=127.0.0.1:{port}"], cwd=REPO, stderr=stderr, text=True)
    base = f"http://127.0.0.1:{port}"

    def metrics() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return samples(requests.get(base + "/metrics", timeout=30).text)

    def wait(predicate: Callable[[dict[tuple[str, frozenset[tuple[str, str]]], float]], bool]) -> None:
        deadline = time.monotonic() + 20
        while not predicate(metrics()):
            assert time.monotonic() < deadline, (tmp_path / "stderr").read_text()
            time.sleep(0.1)

    try:
        wait_http(base + "/-/healthy")
        wait(lambda f: value(f, "isolarcloud_up", account="home") == 1)
        write_config(path, [login_account(sim, name="home"), login_account(sim, name="second")])
        proc.send_signal(signal.SIGHUP)
        wait(lambda f: value(f, "isolarcloud_up", account="second") == 1)
        path.write_text("accounts: [\n")
        proc.send_signal(signal.SIGHUP)
        wait(lambda f: value(f, "isolarcloud_config_last_reload_successful") == 0)
        found = metrics()
        assert value(found, "isolarcloud_up", account="home") == 1 and value(found, "isolarcloud_up",
                                                                              account="second") == 1
        assert proc.poll() is None, "SIGHUP does not stop the exporter"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "stderr").read_text()
    assert "received SIGHUP, reloading the configuration" in log
    assert "configuration reloaded: 1 unchanged, restarted [], added [second], removed []" in log
    assert f"configuration reload failed, keeping the running configuration: {path}: line" in log
    assert "Traceback" not in log
