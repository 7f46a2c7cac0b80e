"""Token files that cannot be written. At start-up a token directory the exporter cannot write (the atomic write
needs it) is one line naming the path and the cause, exit 2, and so is `--config.check`. A write that fails
later (the directory turned read-only) is counted (`isolarcloud_token_file_write_failures_total`), fails
readiness with the reason, is logged, and is tried again every cycle until it succeeds.

Permissions are real: as root (CI, containers) the exporter runs without the capabilities that bypass file
permissions (`setpriv`), so a read-only directory is read-only for it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from exporter.simulator import Simulator
from tests.conftest import IN_CI, free_port, samples, value

REPO = Path(__file__).resolve().parent.parent


def unprivileged() -> list[str]:
    """A command prefix under which file permissions apply, also to root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        if IN_CI:
            pytest.fail("setpriv (util-linux) is needed to test permissions as root")
        pytest.skip("setpriv (util-linux) not installed")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def _config(tmp_path: Path, sim: Simulator, token_file: Path) -> Path:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"refresh_interval": "1s", "accounts": [{
        "name": "home", "base_url": sim.url, "realtime": {"enabled": False},
        "auth": {"mode": "oauth2", "appkey": sim.appkey, "secret_key": sim.secret_key,
                 "refresh_token": sim.issue_tokens()["refresh_token"], "token_file": str(token_file)}}]}))
    config.chmod(0o600)
    return config


@pytest.mark.parametrize("check", [False, True], ids=["start", "config-check"])
def test_read_only_token_directory_is_refused_at_start(check: bool, sim: Simulator, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    token_file = state / "home.json"
    token_file.write_text(json.dumps({"refresh_token": "seeded-refresh-token"}))
    token_file.chmod(0o600)  # the file itself is writable: only its directory is not
    config = _config(tmp_path, sim, token_file)
    state.chmod(0o555)
    try:
        out = subprocess.run([*unprivileged(), sys.executable, "-m", "exporter", f"--config.file={config}",
                              "--web.listen-address=127.0.0.1:0", *(["--config.check"] if check else [])],
                             cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:
        state.chmod(0o755)
    assert out.returncode == 2, out.stderr
    assert out.stderr == (f"isolarcloud-exporter: {config}: accounts[0].auth.token_file: directory {state} is not "
                          "writable (rotated tokens are written to a temporary file there, then renamed)\n")


def test_config_check_passes_a_good_file(sim: Simulator, tmp_path: Path) -> None:
    config = _config(tmp_path, sim, tmp_path / "home.json")
    out = subprocess.run([sys.executable, "-m", "exporter", f"--config.file={config}", "--config.check"],
                         cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{config}: configuration OK, 1 account(s): home\n"
    # A warning (a 1s interval spends quota) is printed, not fatal; nothing was written or contacted.
    assert "warning: refresh_interval is 1s" in out.stderr
    assert not (tmp_path / "home.json").exists() and sim.count() == 0


def test_a_failed_write_later_is_counted_not_ready_and_retried(sim: Simulator, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    token_file = state / "home.json"
    config = _config(tmp_path, sim, token_file)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stderr = tmp_path / "stderr"
    proc = subprocess.Popen([*unprivileged(), sys.executable, "-m", "exporter", f"--config.file={config}",
                             f"--web.listen-address=127.0.0.1:{port}"], cwd=REPO, stderr=stderr.open("w"))

    def until(predicate, what: str) -> requests.Response:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, stderr.read_text()
            try:
                requests.get(base + "/metrics", timeout=30)  # scrapes are what trigger refresh cycles
                answer = requests.get(base + "/-/ready", timeout=5)
                if predicate(answer):
                    return answer
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"{what}:\n{stderr.read_text()}"
            time.sleep(0.1)

    def failures() -> float | None:
        return value(samples(requests.get(base + "/metrics", timeout=30).text),
                     "isolarcloud_token_file_write_failures_total", account="home")

    try:
        until(lambda a: a.status_code == 200, "ready")
        assert failures() == 0
        written = json.loads(token_file.read_text())["refresh_token"]
        state.chmod(0o555)
        sim.expire_access_tokens()  # the next cycle refreshes: the gateway rotates the refresh token
        answer = until(lambda a: a.status_code == 503, "readiness fails")
        assert answer.text == (f"Not ready: home: token file cannot write {token_file}: Permission denied\n")
        assert failures() >= 1
        assert json.loads(token_file.read_text())["refresh_token"] == written, "the file keeps the spent token"
        # The metrics keep coming from the token in memory meanwhile.
        assert value(samples(requests.get(base + "/metrics", timeout=30).text), "isolarcloud_up", account="home") == 1
        state.chmod(0o755)
        until(lambda a: a.status_code == 200, "a later cycle writes the file")
        current = json.loads(token_file.read_text())["refresh_token"]
        assert current != written
        assert sim.rotate_refresh_token_elsewhere(current)["refresh_token"], "the file holds the live token"
    finally:
        state.chmod(0o755)
        proc.terminate()
        proc.wait(timeout=10)
    log = stderr.read_text()
    assert f'cannot write {token_file}: Permission denied; the rotated refresh token lives only in memory' in log
    assert f"token file {token_file} written again" in log
    assert "refresh token rotated" in log
    assert "Traceback" not in log


# The exporter and `isolarcloud-exporter backfill` build their sessions the same way (app.account_session);
# this child does so from the configuration file and makes one call once the common start time comes.
TWIN = """
import hashlib, json, sys, time
import yaml
from exporter.app import account_session
from exporter.config import parse_config
config = parse_config(yaml.safe_load(open(sys.argv[1])))
renewals = []
session = account_session(config.accounts[0], config, lambda endpoint, result: None,
                          lambda kind, result: renewals.append([kind, result]))
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
plants = session.call("/openapi/platform/queryPowerStationList", {"page": 1, "size": 10, "valid_flag": "1,3"})
access = hashlib.sha256(session.auth.tokens.access_token.encode()).hexdigest()
print(json.dumps({"renewals": renewals, "access": access, "plants": len(plants["pageList"])}))
"""


def test_two_processes_on_one_token_file_renew_it_once(sim: Simulator, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    token_file = state / "home.json"
    config = _config(tmp_path, sim, token_file)
    issued = sim.issue_tokens()
    token_file.write_text(json.dumps({"access_token": issued["access_token"], "refresh_token": issued["refresh_token"],
                                      "access_expires_at": time.time() - 1, "refresh_expires_at": None}))
    token_file.chmod(0o600)
    # Both find the access token expired at the same moment (as the exporter and a backfill do, both using the
    # one from the file); the gateway takes a second to answer the refresh, so the two renewals would overlap.
    sim.inject("hook", path="refreshToken", times=2, hook=lambda s: time.sleep(1.0))
    at = str(time.time() + 2.5)
    twins = [subprocess.Popen([sys.executable, "-c", TWIN, str(config), at], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [twin.communicate(timeout=60) for twin in twins]
    assert [twin.returncode for twin in twins] == [0, 0], [err for _, err in outputs]
    answers = [json.loads(out) for out, _ in outputs]
    assert sorted(len(a["renewals"]) for a in answers) == [0, 1], answers
    assert [r for a in answers for r in a["renewals"]] == [["refresh", "success"]]
    assert sim.count("refreshToken") == 1
    stored = json.loads(token_file.read_text())
    assert {a["access"] for a in answers} == {hashlib.sha256(stored["access_token"].encode()).hexdigest()}
    assert all(a["plants"] > 0 for a in answers)
    assert sim.rotate_refresh_token_elsewhere(stored["refresh_token"])["refresh_token"], "the file holds the live token"
    assert [p.name for p in state.iterdir()] == ["home.json"]  # no lock file or temporary copy beside it
