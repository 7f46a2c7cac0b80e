"""Shared fixtures: the simulator, an exporter serving on a real socket, and parsing helpers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import Exporter
from exporter.config import Config, parse_config
from exporter.serve.web import Server, WebConfig
from exporter.simulator import Simulator

IN_CI = os.environ.get("CI", "").lower() == "true"
UNPACED = {"burst": 10_000, "per_second": 10_000}


def require_tool(name: str) -> str:
    """Path of an external tool (beside the interpreter, i.e. in the venv, or on PATH); missing tools fail in
    CI, where the test command installs them, and skip elsewhere."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    path = shutil.which(name)
    if path:
        return path
    if IN_CI:
        pytest.fail(f"{name} is required in CI; ./scripts/test.sh installs it")
    pytest.skip(f"{name} not installed; ./scripts/test.sh installs it")


def alertmanager_binary() -> str:
    """Alertmanager: `alertmanager` in the release archives, `prometheus-alertmanager` in Debian's package."""
    for name in ("alertmanager", "prometheus-alertmanager"):
        path = shutil.which(name)
        if path:
            return path
    if IN_CI:
        pytest.fail("alertmanager is required in CI (Debian package prometheus-alertmanager)")
    pytest.skip("alertmanager not installed (Debian package prometheus-alertmanager)")


class Calls:
    """Counts the calls of a module's function for the test, by wrapping it where the module looks it up."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> None:
        self.count = 0
        real = getattr(module, name)

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    """Until `url` answers 200; the process exiting first, or `timeout` passing, fails with the end of its log."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


@contextmanager
def serving(args: Sequence[str], log: Path, ready_url: str, timeout: float = 30.0,
            stop_timeout: float = 10.0) -> Iterator[subprocess.Popen[bytes]]:
    """A real server binary (Prometheus, Alertmanager), its output in `log`, until `ready_url` answers 200; stopped
    (SIGTERM, then SIGKILL) at the end. Exiting or never getting ready fails with the end of its log."""
    with open(log, "w") as out:
        proc = subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(ready_url, proc, log, timeout)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    s = Simulator(plants=25, seed=1).start()
    yield s
    s.stop()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def make(**kwargs: Any) -> Simulator:
        s = Simulator(**kwargs).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def login_account(s: Simulator, name: str = "login", **extra: Any) -> dict[str, Any]:
    return {"name": name, "base_url": s.url,
            "auth": {"mode": "login", "appkey": s.appkey, "secret_key": s.secret_key,
                     "user_account": "demo@example.com", "user_password": "demo-password"}, **extra}


def oauth_account(s: Simulator, token_file: Path | None, name: str = "oauth", **extra: Any) -> dict[str, Any]:
    auth: dict[str, Any] = {"mode": "oauth2", "appkey": s.appkey, "secret_key": s.secret_key}
    if token_file is not None:
        auth["token_file"] = str(token_file)
    if token_file is None or not token_file.exists():
        auth["refresh_token"] = s.issue_tokens()["refresh_token"]
    return {"name": name, "base_url": s.url, "auth": auth, **extra}


class Clock:
    """A settable wall clock for the exporter, so staleness and budgets can be tested without sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self.now = start if start is not None else time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Running:
    """An Exporter served by the real HTTP server on a loopback port."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time, web: WebConfig | None = None,
                 start: bool = True) -> None:
        self.exporter = Exporter(config, clock=clock)
        self.server = Server("127.0.0.1:0", self.exporter, web)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.port}"
        if start:
            self.exporter.start()

    def get(self, path: str = "/metrics", **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return requests.get(self.url + path, **kwargs)

    def scrape(self, **kwargs: Any) -> str:
        response = self.get("/metrics", **kwargs)
        assert response.status_code == 200, response.text
        return response.text

    def metrics(self, **kwargs: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return samples(self.scrape(**kwargs))

    def metrics_of(self, *prefixes: str, **kwargs: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """The samples of the families whose names start with one of `prefixes`: parsing every series of a large
        fleet's body with prometheus_client's parser takes seconds, keeping a few families' lines milliseconds."""
        kept = [line for line in self.scrape(**kwargs).splitlines()
                if (line.split(" ")[2] if line.startswith("# ") else line).startswith(prefixes)]
        return samples("\n".join(kept) + "\n")

    def wait_refreshed(self, count: int = 1, timeout: float = 15.0) -> None:
        """Until every account has finished `count` refresh attempts (success or error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(sum(p.stats.view().refreshes.values()) >= count and not p.running
                   for p in self.exporter.engines):
                return
            time.sleep(0.02)
        raise AssertionError("refresh did not finish in time")

    def refresh_now(self) -> None:
        """Run one refresh of every account synchronously (as a due scrape would, without the timing)."""
        for engine in self.exporter.engines:
            engine.refresh(force=True)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.exporter.close()


@pytest.fixture
def run_exporter() -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def start(data: dict[str, Any], clock: Callable[[], float] = time.time, **kwargs: Any) -> Running:
        data = {"refresh_interval": 60, **data}
        # The simulator on loopback is not the cloud: unless a test is about pacing (and says `rate_limit`), the
        # default pace of 5 calls per second would only make the suite slower. Pacing has its own tests.
        data["accounts"] = [{"rate_limit": UNPACED, **a} if isinstance(a, dict) else a
                            for a in data.get("accounts") or []]
        config = parse_config(data, env={})
        r = Running(config, clock=clock, **kwargs)
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def select(found: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """Samples of one metric whose labels include `labels`."""
    want = set(labels.items())
    return {lbl: v for (n, lbl), v in found.items() if n == name and want <= set(lbl)}


def value(found: Samples, name: str, **labels: str) -> float | None:
    matches = select(found, name, **labels)
    assert len(matches) <= 1, f"{name}{labels} matches {len(matches)} series"
    return next(iter(matches.values()), None)
