"""`authorize` for every gateway: the URL from `authorize_host` (cloudId from `authorize_cloud_id`, a known host
or the region), and the whole owner flow in a real browser against the simulator's consent page: the printed
URL opens the portal route `#/authorized-app`, which approves and redirects to the app's redirect URL with
`?code=`; the address pasted back is exchanged into the token file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.simulator import Simulator
from tests._browser_support import chromium

EXPORTER = [sys.executable, "-m", "exporter"]


class _Callback(BaseHTTPRequestHandler):
    """The app's redirect URL: records where the browser landed."""

    landed: list[str]

    def do_GET(self) -> None:
        self.server.landed.append(self.path)  # type: ignore[attr-defined]
        body = b"<html><body>Approved. You can close this page.</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def callback() -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Callback)
    server.landed = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/callback", server.landed  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def _config(tmp_path: Path, sim: Simulator, redirect: str, **account: Any) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"accounts": [{
        "name": "india", "base_url": sim.url, **account,
        "auth": {"mode": "oauth2", "appkey": sim.appkey, "secret_key": sim.secret_key,
                 "token_file": str(tmp_path / "india.json"), "application_id": "4242", "redirect_uri": redirect}}]}))
    path.chmod(0o600)
    return path


def test_the_whole_flow_in_a_browser_against_the_simulated_consent_page(callback, tmp_path: Path) -> None:
    redirect, landed = callback
    with Simulator(plants=5, seed=51) as sim:
        # The simulator's web host on plain HTTP stands in for web3.isolarcloud.<tld>; its cloudId is ours to give.
        config = _config(tmp_path, sim, redirect, authorize_host=sim.url, authorize_cloud_id=9)
        proc = subprocess.Popen([*EXPORTER, "authorize", "--config.file", str(config), "--account", "india"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdin is not None
            url = ""
            while not url:
                line = proc.stdout.readline()
                assert line, proc.stderr.read() if proc.stderr else "authorize ended early"
                url = line.strip() if line.startswith("http") else ""
            assert url == (f"{sim.url}/#/authorized-app?cloudId=9&applicationId=4242&redirectUrl="
                           + redirect.replace(":", "%3A").replace("/", "%2F"))
            # The owner opens it: the portal's route, the consent page, then the redirect with the code.
            chromium(tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", url)
            codes = [path for path in landed if path.startswith("/callback?code=")]
            assert len(codes) == 1, landed
            out, err = proc.communicate(f"{redirect.rsplit('/callback', 1)[0]}{codes[0]}\n", timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        token_file = tmp_path / "india.json"
        stored = json.loads(token_file.read_text())
        assert stored["refresh_token"] and stored["access_token"]
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        assert f"Tokens written to {token_file}" in out
        assert stored["refresh_token"] not in out + err and stored["access_token"] not in out + err
        # The gateway accepts what was stored: a refresh with it succeeds (and rotates it).
        assert sim.rotate_refresh_token_elsewhere(stored["refresh_token"])["refresh_token"]


@pytest.mark.parametrize("account,printed", [
    ({"authorize_host": "web3.isolarcloud.in"}, "https://web3.isolarcloud.in/#/authorized-app?cloudId=9&"),
    ({"authorize_host": "web3.isolarcloud.in", "authorize_cloud_id": 12},
     "https://web3.isolarcloud.in/#/authorized-app?cloudId=12&"),
    ({"region": "australia"}, "https://auweb3.isolarcloud.com/#/authorized-app?cloudId=7&"),
    ({"region": "china", "authorize_host": "web3.isolarcloud.com"},
     "https://web3.isolarcloud.com/#/authorized-app?cloudId=1&"),
], ids=["india-known-host", "explicit-cloud-id", "region", "china-alternative-host"])
def test_the_url_for_every_gateway(account: dict[str, Any], printed: str, tmp_path: Path) -> None:
    """India's gateway (base_url + authorize_host, as the README suggests) gets its URL; the code pasted back is
    exchanged at the account's gateway (here the simulator)."""
    redirect = "https://example.com/callback"
    with Simulator(plants=3, seed=52) as sim:
        config = _config(tmp_path, sim, redirect, **account)
        code = sim.create_authorization_code(redirect)
        out = subprocess.run([*EXPORTER, "authorize", "--config.file", str(config), "--account", "india"],
                             input=f"{redirect}?code={code}\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert printed + "applicationId=4242&redirectUrl=https%3A%2F%2Fexample.com%2Fcallback" in out.stdout


@pytest.mark.parametrize("account,message", [
    ({}, "accounts[0].authorize_host: required to build the authorisation URL for a base_url without a region"),
    ({"authorize_host": "portal.example.net"},
     "accounts[0].authorize_cloud_id: required with authorize_host portal.example.net"),
], ids=["base-url-only", "unknown-host"])
def test_what_is_missing_is_named(account: dict[str, Any], message: str, tmp_path: Path) -> None:
    with Simulator(plants=1, seed=53) as sim:
        config = _config(tmp_path, sim, "https://example.com/callback", **account)
        out = subprocess.run([*EXPORTER, "authorize", "--config.file", str(config), "--account", "india"],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"isolarcloud-exporter: {message}")
