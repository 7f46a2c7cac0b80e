"""Graceful shutdown: SIGTERM and SIGINT stop the exporter within a second, exit 0, and leave the token file
intact (valid JSON, mode 0600, holding the refresh token the gateway currently accepts), also while a refresh
is stuck on a hanging gateway and while a scraper holds a connection open."""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from exporter.simulator import Simulator
from tests.conftest import free_port

REPO = Path(__file__).resolve().parent.parent


def _start(sim: Simulator, tmp_path: Path, http_timeout: str = "5s") -> tuple[subprocess.Popen[bytes], str, Path]:
    token_file = tmp_path / "tokens.json"
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "refresh_interval": "1s", "http_timeout": http_timeout, "scrape_timeout": "2s",
        "accounts": [{"name": "home", "base_url": sim.url, "api_budget_per_hour": 100_000,
                      "auth": {"mode": "oauth2", "appkey": sim.appkey, "secret_key": sim.secret_key,
                               "refresh_token": sim.issue_tokens()["refresh_token"],
                               "token_file": str(token_file)}}]}))
    config.chmod(0o600)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exporter", f"--config.file={config}",
                             f"--web.listen-address=127.0.0.1:{port}"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr").open("wb"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        try:
            if requests.get(base + "/-/ready", timeout=2).status_code == 200:
                return proc, base, token_file
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("exporter not ready")


def _stop_within_a_second(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    started = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    elapsed = time.monotonic() - started
    assert proc.returncode == 0
    # Well under the 5 s and 30 s HTTP timeouts these tests guard against waiting out; a busy CI core can take
    # a second for the process's own exit.
    assert elapsed < 3.0, f"took {elapsed:.2f}s to stop"


def _assert_token_file_intact(token_file: Path, sim: Simulator) -> None:
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    stored = json.loads(token_file.read_text())
    # The refresh token on disk is the one the gateway accepts now: a restart can carry on.
    sim.rotate_refresh_token_elsewhere(stored["refresh_token"])
    assert [p.name for p in token_file.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_quickly_with_the_token_file_intact(sig: signal.Signals, sim: Simulator,
                                                         tmp_path: Path) -> None:
    proc, base, token_file = _start(sim, tmp_path)
    for _ in range(3):  # some traffic, including a token rotation when the access token is rejected
        assert requests.get(base + "/metrics", timeout=5).status_code == 200
        sim.expire_access_tokens()
        time.sleep(0.4)
    _stop_within_a_second(proc, sig)
    assert "shutting down" in (tmp_path / "stderr").read_text()
    _assert_token_file_intact(token_file, sim)


def test_signal_during_a_hanging_refresh_and_an_open_scrape(sim: Simulator, tmp_path: Path) -> None:
    proc, base, token_file = _start(sim, tmp_path, http_timeout="30s")
    sim.inject("hang", path="queryPowerStationList", times=100)
    time.sleep(1.1)
    assert requests.get(base + "/metrics", timeout=5).status_code == 200  # starts a refresh that hangs
    idle = socket.create_connection((base.split("//")[1].split(":")[0], int(base.rsplit(":", 1)[1])))
    idle.sendall(b"GET /metr")  # a scraper that never finishes its request
    time.sleep(0.3)
    try:
        _stop_within_a_second(proc, signal.SIGTERM)
    finally:
        idle.close()
    _assert_token_file_intact(token_file, sim)


def test_signal_during_a_token_rotation_keeps_the_rotated_token(sim: Simulator, tmp_path: Path) -> None:
    """SIGTERM while the gateway is rotating the refresh token: the old one is already spent, so exiting
    before the new one is saved would lose the account's only valid token. Shutdown waits for it (bounded)."""
    proc, base, token_file = _start(sim, tmp_path)
    in_flight = threading.Event()

    def slow_rotation(s: Simulator) -> None:
        in_flight.set()
        time.sleep(0.5)

    sim.inject("hook", path="refreshToken", hook=slow_rotation)
    sim.expire_access_tokens()
    time.sleep(1.1)
    requests.get(base + "/metrics", timeout=5)  # the due refresh: invalid_token, then the (slow) token refresh
    assert in_flight.wait(5)
    rotations = sim.count("refreshToken")
    _stop_within_a_second(proc, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while sim.count("refreshToken") == rotations and time.monotonic() < deadline:
        time.sleep(0.02)  # the gateway has finished the rotation (the old refresh token is spent now)
    _assert_token_file_intact(token_file, sim)
