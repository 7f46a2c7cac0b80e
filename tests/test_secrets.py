"""Secrets: no password, secret key, appkey, access, refresh or login token ever appears in the logs (every
level, both formats), on `/`, in `/metrics`, in exception messages, or in files beside the token file.

The main test runs the exporter as a subprocess at debug level against one simulator per fault of the fault
suite (each with its own appkey, secret key and password), collects every token the simulators issued or
saw, and greps all output for every secret.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.config import load_config
from exporter.fetch.auth import TokenFile, Tokens
from exporter.simulator import Simulator
from tests._fault_support import DATA_FAULTS, LEGACY_LIST, LIST, QUOTA_FAULTS
from tests.conftest import Running, free_port

REPO = Path(__file__).resolve().parent.parent
USER = "demo@example.com"


@dataclass
class Scenario:
    """One account of the subprocess exporter, on its own simulator with its own credentials."""

    name: str
    sim: Simulator
    mode: str
    password: str
    extra: dict[str, Any] = field(default_factory=dict)
    base_url: str | None = None
    after_start: Callable[[Scenario, Path], None] | None = None


def _new_sim(**kwargs: Any) -> tuple[Simulator, str]:
    password = f"pw-{uuid.uuid4().hex}"
    sim = Simulator(plants=kwargs.pop("plants", 12), seed=kwargs.pop("seed", 1),
                    appkey=f"APPKEY{uuid.uuid4().hex.upper()}", secret_key=f"sk-{uuid.uuid4().hex}",
                    users={USER: password}, **kwargs).start()
    return sim, password


def _expire_access(s: Simulator) -> None:
    s.expire_access_tokens()


def _expire_login(s: Simulator) -> None:
    s.expire_login_tokens()


def _rotate_elsewhere(scenario: Scenario, token_dir: Path) -> None:
    token_file = token_dir / f"{scenario.name}.json"
    ours = json.loads(token_file.read_text())["refresh_token"]
    theirs = scenario.sim.rotate_refresh_token_elsewhere(ours)
    scenario.extra["theirs"] = theirs


def _hand_over(scenario: Scenario, token_dir: Path) -> None:
    """The other owner's new token lands in the token file (the exporter adopts it)."""
    theirs = scenario.extra.get("theirs")
    if theirs:
        token_file = token_dir / f"{scenario.name}.json"
        data = json.loads(token_file.read_text())
        data.update(access_token=theirs["access_token"], refresh_token=theirs["refresh_token"],
                    access_expires_at=None)
        token_file.write_text(json.dumps(data))


def build_scenarios() -> list[Scenario]:
    out: list[Scenario] = []

    def add(name: str, mode: str = "oauth2", fault: tuple[str, str | None, int | None] | None = None,
            hook: Callable[[Simulator], None] | None = None, sim_kwargs: dict[str, Any] | None = None,
            **extra: Any) -> Scenario:
        sim, password = _new_sim(**(sim_kwargs or {}))
        if fault is not None:
            kind, path, page = fault
            sim.inject(kind, path=path, page=page, times=100_000, hook=hook)
        scenario = Scenario(name, sim, mode, password, extra)
        out.append(scenario)
        return scenario

    for f in DATA_FAULTS:
        add(f.id, fault=(f.fault, f.path, None))
    add("huge", fault=("huge", LIST, None), sim_kwargs={"huge_size": 4 * 1024 * 1024})
    for code in QUOTA_FAULTS:
        add(f"quota-{code}", fault=(f"code:{code}", LIST, None))
    add("login-e916", mode="login", fault=("code:E916", "/openapi/login", None))
    add("e00003-mid-pagination", fault=("hook", LIST, 2), hook=_expire_access, page_size=5)
    add("invalid-token-mid-pagination", fault=("hook", LIST, 2), hook=_expire_access, page_size=5,
        sim_kwargs={"expired_token_style": "oauth_error"})
    add("login-e00003-mid-pagination", mode="login", fault=("hook", LEGACY_LIST, 2), hook=_expire_login,
        page_size=5)
    add("token-rejected-always", fault=("code:E00003", LIST, None))
    add("repeat-page", fault=("repeat_page", LIST, 2), page_size=5)
    add("skip-plants", fault=("skip_plants", LIST, 1), page_size=5)
    add("plant-added", fault=("hook", LIST, 2), hook=lambda s: s.add_plants(1, at=0), page_size=5)
    add("wrong-region", sim_kwargs={"plants": 0})
    wrong = add("wrong-password", mode="login")
    wrong.password = f"wrong-{uuid.uuid4().hex}"
    rotated = add("rotated-elsewhere")
    rotated.after_start = _rotate_elsewhere
    for name, mode in (("healthy-oauth2", "oauth2"), ("healthy-login", "login")):
        add(name, mode=mode)
    refused = add("connection-refused", mode="login")
    refused.base_url = f"http://127.0.0.1:{free_port()}"
    dns = add("dns-failure", mode="login")
    dns.base_url = "http://nonexistent.invalid"
    tls = add("tls-error", mode="login")
    tls.base_url = f"https://127.0.0.1:{tls.sim.port}"
    return out


def account_config(s: Scenario, token_dir: Path) -> dict[str, Any]:
    auth: dict[str, Any] = {"mode": s.mode, "appkey": s.sim.appkey, "secret_key": s.sim.secret_key}
    if s.mode == "login":
        auth.update(user_account=USER, user_password=s.password)
    else:
        auth.update(refresh_token=s.sim.issue_tokens()["refresh_token"], token_file=str(token_dir / f"{s.name}.json"))
    options = {k: v for k, v in s.extra.items() if k in ("page_size",)}
    # A large budget keeps the effective interval at the configured 1 s (a refresh per second and account).
    return {"name": s.name, "base_url": s.base_url or s.sim.url, "auth": auth, "api_budget_per_hour": 100_000,
            **options}


def collect_secrets(scenarios: list[Scenario]) -> dict[str, str]:
    """Every credential configured and every token any simulator issued, saw or revoked, by a readable name."""
    found: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("access_token", "refresh_token", "token") and isinstance(item, str) and item:
                    found[f"{prefix} {key} {item[:6]}"] = item
                walk(prefix, item)
        elif isinstance(value, list):
            for item in value:
                walk(prefix, item)

    for s in scenarios:
        sim = s.sim
        found[f"{s.name} appkey"] = sim.appkey
        found[f"{s.name} secret_key"] = sim.secret_key
        found[f"{s.name} password"] = s.password
        found[f"{s.name} simulator password"] = sim.users[USER]
        for call in sim.calls:
            walk(s.name, call.body)
            walk(s.name, call.response)
            bearer = next((v for k, v in call.headers.items() if k.lower() == "authorization"), "")
            if bearer.lower().startswith("bearer "):
                found[f"{s.name} bearer {bearer[7:13]}"] = bearer[7:].strip()
        for token in list(sim.auth.spent_refresh) + list(sim.auth._refresh) + list(sim.auth._access) + \
                list(sim.auth._login):
            found[f"{s.name} token {token[:6]}"] = token
        walk(s.name, s.extra.get("theirs"))
    return {k: v for k, v in found.items() if v}


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return sorted(name for name, secret in secrets.items() if secret in text)


@pytest.fixture
def scenarios() -> Iterator[list[Scenario]]:
    built = build_scenarios()
    yield built
    for s in built:
        s.sim.stop()


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_no_secret_anywhere_with_every_fault_at_debug_level(log_format: str, scenarios: list[Scenario],
                                                            tmp_path: Path) -> None:
    token_dir = tmp_path / "tokens"
    token_dir.mkdir()
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    config = {"refresh_interval": "1s", "max_age": "3s", "http_timeout": "1s", "scrape_timeout": "2s",
              "max_response_bytes": 1024 * 1024,
              "accounts": [account_config(s, token_dir) for s in scenarios]}
    config_file = config_dir / "config.yml"
    config_file.write_text(yaml.safe_dump(config))
    config_file.chmod(0o644)  # world-readable with inline secrets: warned about (and never printed)
    port = free_port()
    # Output goes to files: a pipe nobody reads fills up at debug level and blocks the exporter's logging.
    out_file, err_file = tmp_path / "stdout", tmp_path / "stderr"
    with out_file.open("w") as out, err_file.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", f"--config.file={config_file}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=debug", f"--log.format={log_format}"],
            cwd=REPO, stdout=out, stderr=err, text=True)
    base = f"http://127.0.0.1:{port}"
    pages: list[str] = []
    try:
        _wait_ready(base, proc)
        for s in scenarios:
            if s.after_start is not None:
                s.after_start(s, token_dir)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # scrapes trigger a refresh per second per account
            for path in ("/metrics", "/"):
                response = requests.get(base + path, timeout=5)
                assert response.status_code == 200
                pages.append(response.text)
            time.sleep(0.3)
        for s in scenarios:
            _hand_over(s, token_dir)
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            pages.append(requests.get(base + "/metrics", timeout=5).text)
            time.sleep(0.3)
        pages.append(requests.get(base + "/", timeout=5).text)
        assert proc.poll() is None, "the exporter died"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    stdout, stderr = out_file.read_text(), err_file.read_text()
    assert proc.returncode == 0, stderr[-2000:]

    secrets = collect_secrets(scenarios)
    assert len(secrets) > 4 * len(scenarios)  # the harvest really found the rotated tokens too
    lines = stderr.splitlines()
    assert any(("level=debug" if log_format == "logfmt" else '"level": "debug"') in line for line in lines)
    if log_format == "json":
        for line in lines:
            json.loads(line)  # every line is one JSON object
    # The faults were really exercised (and logged):
    for evidence in ("world-readable", "timeout", "too_large", "E999", "refresh refused", "inconsistent",
                     "lists no plants", "dns_error", "connection_refused", "tls_error", "login refused",
                     "token file changed on disk"):
        assert evidence in stderr, f"no log line shows {evidence!r}"
    assert not leaks(stderr, secrets), f"secrets in the log: {leaks(stderr, secrets)}"
    assert not leaks(stdout, secrets)
    for page in pages:
        assert not leaks(page, secrets), f"secrets served over HTTP: {leaks(page, secrets)}"
    _assert_token_dir_clean(token_dir, {f"{s.name}.json" for s in scenarios if s.mode == "oauth2"}, secrets)


def _wait_ready(base: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exporter exited {proc.returncode}")
        try:
            if requests.get(base + "/-/ready", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError("exporter not ready in time")


def _assert_token_dir_clean(token_dir: Path, token_files: set[str], secrets: dict[str, str]) -> None:
    """Only the token files themselves (mode 0600) hold tokens: no temporary or backup copies beside them."""
    names = {p.name for p in token_dir.iterdir()}
    assert names == token_files, f"unexpected files beside the token files: {names - token_files}"
    for name in names:
        mode = stat.S_IMODE((token_dir / name).stat().st_mode)
        # The test itself rewrote the handed-over file with the default umask; every other one is the exporter's.
        if name != "rotated-elsewhere.json":
            assert mode == 0o600, f"{name} has mode {mode:o}"


# -- exception messages and the status page ------------------------------------------------------------------


class _EchoGateway(http.server.BaseHTTPRequestHandler):
    """A hostile gateway that puts what it received (tokens, passwords) into result_msg."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        echoed = (body.get("refresh_token") or body.get("user_password") or body.get("token")
                  or (self.headers.get("Authorization") or "")[7:] or self.headers.get("x-access-key"))
        payload = json.dumps({"result_code": "E1234", "result_msg": f"rejected {echoed}", "result_data": None})
        data = payload.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo_gateway() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoGateway)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("mode", ["oauth2", "login"])
def test_gateway_echoing_secrets_leaks_nothing(mode: str, echo_gateway: str,
                                               run_exporter: Callable[..., Running]) -> None:
    """Error messages quote the gateway's result_msg; a gateway echoing the token or password must not make
    the exporter show it (status page, last error, exception text, /metrics)."""
    refresh_token = f"rt-{uuid.uuid4().hex}"
    password = f"pw-{uuid.uuid4().hex}"
    auth: dict[str, Any] = {"mode": mode, "appkey": f"AK{uuid.uuid4().hex}", "secret_key": f"sk-{uuid.uuid4().hex}"}
    if mode == "oauth2":
        auth["refresh_token"] = refresh_token
    else:
        auth.update(user_account=USER, user_password=password)
    r = run_exporter({"http_timeout": 2, "accounts": [{"name": "echo", "base_url": echo_gateway, "auth": auth}]})
    r.wait_refreshed(1)
    secrets = {"refresh token": refresh_token, "password": password, "appkey": auth["appkey"],
               "secret key": auth["secret_key"]}
    state = r.exporter.engines[0].state()
    assert state.last_error and "rejected" in state.last_error
    assert not leaks(state.last_error, secrets)
    assert not leaks(r.get("/").text, secrets)
    assert not leaks(r.get("/metrics").text, secrets)


# -- the token file ---------------------------------------------------------------------------------------------


def test_token_file_is_written_atomically_with_mode_0600(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tokens.json"
    store = TokenFile(path)
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        store.save(Tokens(access_token="a" * 20, refresh_token="r" * 20))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["refresh_token"] == "r" * 20

    # A crash between writing and renaming leaves the old file whole and no temporary file behind.
    def crash(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        store.save(Tokens(access_token="b" * 20, refresh_token="s" * 20))
    monkeypatch.undo()
    assert json.loads(path.read_text())["refresh_token"] == "r" * 20
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.json"]

    # The new file replaces the old one by rename: a reader never sees a half-written file.
    inode = path.stat().st_ino
    store.save(Tokens(access_token="c" * 20, refresh_token="t" * 20))
    assert path.stat().st_ino != inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_token_file_created_from_configured_token_is_0600(sim: Simulator, run_exporter: Callable[..., Running],
                                                          tmp_path: Path) -> None:
    token_file = tmp_path / "state" / "tokens.json"
    token_file.parent.mkdir()
    refresh = sim.issue_tokens()["refresh_token"]
    r = run_exporter({"accounts": [{"name": "o", "base_url": sim.url,
                                    "auth": {"mode": "oauth2", "appkey": sim.appkey, "secret_key": sim.secret_key,
                                             "refresh_token": refresh, "token_file": str(token_file)}}]})
    r.wait_refreshed(1)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    stored = json.loads(token_file.read_text())
    assert stored["refresh_token"] != refresh  # rotated, and the rotation persisted
    assert [p.name for p in token_file.parent.iterdir()] == ["tokens.json"]


# -- world-readable configuration -----------------------------------------------------------------------------


def _write_config(path: Path, auth: dict[str, Any], mode: int) -> Path:
    path.write_text(yaml.safe_dump({"accounts": [{"name": "a", "base_url": "http://127.0.0.1:1", "auth": auth}]}))
    path.chmod(mode)
    return path


def test_world_readable_config_with_inline_secrets_is_warned_about(tmp_path: Path) -> None:
    inline = {"mode": "login", "appkey": "APPKEY-INLINE-1", "secret_key": "SECRET-INLINE-1",
              "user_account": USER, "user_password": "PASSWORD-INLINE-1"}
    warned = load_config(_write_config(tmp_path / "open.yml", inline, 0o644), env={})
    assert any("world-readable" in w for w in warned.warnings)
    assert not any(secret in w for w in warned.warnings for secret in ("INLINE-1",))
    assert not load_config(_write_config(tmp_path / "closed.yml", inline, 0o600), env={}).warnings

    # Secrets kept in files or the environment make a readable config harmless: no warning.
    secret_file = tmp_path / "secret"
    secret_file.write_text("SECRET-FROM-FILE\n")
    secret_file.chmod(0o600)
    by_reference = {"mode": "login", "appkey_env": "AK", "secret_key_file": str(secret_file),
                    "user_account": USER, "user_password_env": "PW"}
    config = load_config(_write_config(tmp_path / "ref.yml", by_reference, 0o644),
                         env={"AK": "APPKEY-ENV", "PW": "PASSWORD-ENV"})
    assert not config.warnings
    assert config.accounts[0].auth.secret_key == "SECRET-FROM-FILE"


def test_temporary_token_files_of_a_killed_write_are_removed_at_start(sim: Simulator,
                                                                      run_exporter: Callable[..., Running],
                                                                      tmp_path: Path) -> None:
    """A write killed between creating its temporary file and the rename leaves tokens in `.tokens.json.*.tmp`;
    the next start removes them (and nothing else)."""
    token_file = tmp_path / "tokens.json"
    TokenFile(token_file).save(Tokens(refresh_token=sim.issue_tokens()["refresh_token"]))
    stale = tmp_path / ".tokens.json.k1ll3d.tmp"
    stale.write_text(json.dumps({"refresh_token": "LEFTOVER-SECRET-TOKEN"}))
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("keep me")
    r = run_exporter({"accounts": [{"name": "o", "base_url": sim.url,
                                    "auth": {"mode": "oauth2", "appkey": sim.appkey, "secret_key": sim.secret_key,
                                             "token_file": str(token_file)}}]})
    r.wait_refreshed(1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "tokens.json"]
