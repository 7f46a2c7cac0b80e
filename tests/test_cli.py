"""The command line as users run it: --version, --demo, the authorize subcommand, signals."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter import __version__
from exporter.simulator import Simulator
from tests.conftest import free_port, samples, select, value

EXPORTER = [sys.executable, "-m", "exporter"]


def wait_http(url: str, timeout: float = 20.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_version() -> None:
    out = subprocess.run([*EXPORTER, "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == f"isolarcloud-exporter {__version__}"


def test_missing_config_flag_is_a_usage_error() -> None:
    out = subprocess.run(EXPORTER, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip() == "isolarcloud-exporter: --config.file is required (or try --demo)"


def test_demo_serves_both_auth_modes_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen([*EXPORTER, "--demo", "--demo.plants", "12", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/healthy")
        found = samples(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text)
        for account in ("demo-oauth2", "demo-login"):
            assert value(found, "isolarcloud_up", account=account) == 1
            assert select(found, "isolarcloud_plant_info", account=account)
            assert select(found, "isolarcloud_plant_power_watts", account=account)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 2
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    assert "Demo running" in err and f"127.0.0.1:{port}/metrics" in err


REDIRECT = "https://example.com/callback"


def authorize_config(sim: Simulator, tmp_path: Path, **account: Any) -> tuple[Path, Path]:
    """A configuration of one OAuth2 account "home" set up for `authorize` (application id, redirect URI, token
    file): its path and the token file's."""
    token_file = tmp_path / "tokens.json"
    config = {"accounts": [{"name": "home", "region": "europe", "base_url": sim.url, **account,
                            "auth": {"mode": "oauth2", "appkey": sim.appkey, "secret_key": sim.secret_key,
                                     "token_file": str(token_file), "application_id": "4242",
                                     "redirect_uri": REDIRECT}}]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path, token_file


def test_authorize_exchanges_a_code_into_the_token_file(tmp_path: Path) -> None:
    with Simulator(plants=6, seed=31) as sim:
        path, token_file = authorize_config(sim, tmp_path, realtime={"enabled": False})
        # Interactive: prints the region's authorisation URL, accepts the whole redirected URL.
        code = sim.create_authorization_code(REDIRECT)
        out = subprocess.run([*EXPORTER, "authorize", "--config.file", str(path), "--account", "home"],
                             input=f"{REDIRECT}?code={code}\n", capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert ("https://web3.isolarcloud.eu/#/authorized-app?cloudId=3&applicationId=4242&redirectUrl="
                "https%3A%2F%2Fexample.com%2Fcallback") in out.stdout
        stored = json.loads(token_file.read_text())
        assert stored["refresh_token"] and stored["access_token"]
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        assert stored["refresh_token"] not in out.stdout + out.stderr
        assert stored["access_token"] not in out.stdout + out.stderr
        # A used code fails clearly and leaves the stored tokens alone.
        again = subprocess.run([*EXPORTER, "authorize", "--config.file", str(path), "--account", "home",
                                "--code", code], capture_output=True, text=True, timeout=30)
        assert again.returncode == 1 and "authorise again" in again.stderr
        assert json.loads(token_file.read_text()) == stored
        # The exporter starts from that file with no token in its configuration.
        port = free_port()
        proc = subprocess.Popen([*EXPORTER, "--config.file", str(path), f"--web.listen-address=127.0.0.1:{port}"],
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_http(f"http://127.0.0.1:{port}/-/healthy")
            found = samples(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text)
            assert value(found, "isolarcloud_up", account="home") == 1
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            proc.stderr.close()  # type: ignore[union-attr]


def test_authorize_refuses_a_login_account(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"accounts": [{"name": "l", "region": "europe", "auth": {
        "mode": "login", "appkey": "a" * 8, "secret_key": "b" * 8, "user_account": "u", "user_password": "p" * 8}}]}))
    out = subprocess.run([*EXPORTER, "authorize", "--config.file", str(path), "--account", "l", "--code", "x"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "accounts[0].auth.mode: authorize needs oauth2" in out.stderr


@pytest.mark.parametrize("fields", ["both", "top_level"])
def test_authorize_reads_tokens_at_the_top_level_too(fields: str, tmp_path: Path) -> None:
    """A gateway that answers the code exchange with the tokens at the top level (as a peer client reads them),
    beside or instead of result_data."""
    with Simulator(plants=3, seed=32, token_answer_shape=fields) as sim:
        path, token_file = authorize_config(sim, tmp_path)
        out = subprocess.run([*EXPORTER, "authorize", "--config.file", str(path), "--account", "home", "--code",
                              sim.create_authorization_code(REDIRECT)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        stored = json.loads(token_file.read_text())
        exchanged = [c for c in sim.calls if c.path.endswith("/token")][-1].response
        assert stored["refresh_token"] == exchanged["refresh_token"]
        assert stored["access_token"] == exchanged["access_token"]


def test_assets_from_a_checkout(tmp_path: Path) -> None:
    """From a source checkout (no installed package data) `assets` copies the repository's own files."""
    out = subprocess.run([*EXPORTER, "assets", "--output", str(tmp_path)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    repo = Path(__file__).resolve().parent.parent
    for rel in ("prometheus/alerts.yml", "prometheus/tests/alerts_test.yml",
                "grafana/dashboards/isolarcloud-fleet.json", "grafana/provisioning/datasources/prometheus.yml"):
        assert (tmp_path / rel).read_bytes() == (repo / rel).read_bytes()
    assert not (tmp_path / "grafana/generate.py").exists(), "the generator is a development tool, not an asset"
