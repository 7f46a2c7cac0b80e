"""The status page (`/`) in a real headless browser: what an operator sees per account (state, next attempt,
token expiry, budget used this hour, each collection), the exporter's uptime and configuration path, a fleet
summary with a link to Grafana, and no secret. The screenshot in docs/ is made by this test
(`UPDATE_SCREENSHOT=1` rewrites docs/status-page.png; otherwise it goes to the test's temporary directory).
"""

from __future__ import annotations

import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.app import Exporter
from exporter.config import load_config
from exporter.data import AccountState, Plant, PlantList, StatsView
from exporter.serve import status_page
from exporter.serve.web import Server
from exporter.simulator import Simulator
from tests._browser_support import chromium
from tests.conftest import login_account, oauth_account

REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "docs" / "status-page.png"
DASHBOARD = "https://grafana.example.com/d/isolarcloud-fleet/isolarcloud-fleet?orgId=1"
WINDOW = (1280, 1100)


@pytest.fixture
def served(make_sim, tmp_path: Path) -> Iterator[tuple[str, Exporter, list[Simulator]]]:
    oauth_sim, login_sim = make_sim(plants=60, seed=71), make_sim(plants=25, seed=72)
    ids = [p.ps_id for p in oauth_sim.plants]
    for ps_id in ids[:3]:
        oauth_sim.set_plant(ps_id, ps_fault_status=1)
    for ps_id in ids[3:5]:
        oauth_sim.set_plant(ps_id, ps_fault_status=2)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"refresh_interval": "5m", "accounts": [
        oauth_account(oauth_sim, tmp_path / "rooftops.json", name="rooftops", api_budget_per_hour=600),
        login_account(login_sim, name="installer-eu")]}))
    path.chmod(0o600)
    exporter = Exporter(load_config(path, env={}), loader=lambda: load_config(path, env={}), config_path=path,
                        dashboard_url=DASHBOARD)
    server = Server("127.0.0.1:0", exporter)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    exporter.start()
    url = f"http://127.0.0.1:{server.port}"
    deadline = time.monotonic() + 30
    while requests.get(url + "/-/ready", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "not ready"
        time.sleep(0.05)
    try:
        yield url, exporter, [oauth_sim, login_sim]
    finally:
        server.shutdown()
        server.server_close()
        exporter.close()


def _text(dom: str) -> str:
    """The page's visible text, one space between words."""
    dom = re.sub(r"<style>.*?</style>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)).replace("&amp;", "&")


def _png(path: Path) -> tuple[int, int, int]:
    """Width, height, and how many distinct byte values the decoded image holds (a blank page has few)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    pixels = zlib.decompress(b"".join(chunks))
    return width, height, len(set(pixels[:: max(1, len(pixels) // 200_000)]))


def test_the_page_in_a_browser(served: tuple[str, Exporter, list[Simulator]], tmp_path: Path) -> None:
    url, exporter, sims = served
    states = {s.name: s for s in exporter.states()}
    rooftops = states["rooftops"]
    assert rooftops.plants is not None
    fault = sum(p.fault_status == 1 for p in rooftops.plants.plants)
    alarm = sum(p.fault_status == 2 for p in rooftops.plants.plants)
    stale = sum(p.update_ts is not None and p.update_ts < time.time() - 2 * 3600 for p in rooftops.plants.plants)
    assert fault >= 3 and alarm >= 2

    dom = chromium(tmp_path / "profile", "--dump-dom", url + "/").stdout
    text = _text(dom)
    after = {s.name: s for s in exporter.states()}  # a clock hour may have started while the browser ran
    assert "iSolarCloud exporter" in text and "Version" in text
    assert re.search(r"Up \d+ s \(since \d{4}-\d\d-\d\d", text), text[:400]
    assert f"Configuration {exporter.config_path}" in text
    for name, state in states.items():
        section = text.split(f" {name} ", 1)[1]
        assert section.lstrip().startswith("up"), section[:80]
        used = {state.stats.calls_this_hour, after[name].stats.calls_this_hour}
        assert any(f"Budget used this hour {n} of {state.budget:,} calls" in section for n in used), section[:300]
        assert "Next attempt" in section and ("in 4 min" in section or "in 5 min" in section)
    assert "Access token expires" in text and "Refresh token expires" in text and "Login token expires" in text
    rooftops_text = text.split(" rooftops ", 1)[1].split(" installer-eu ", 1)[0]
    assert f"{fault} In fault" in rooftops_text and f"{alarm} In alarm" in rooftops_text
    assert f"{stale} Not updating for 2 h" in rooftops_text
    for collection in ("plants", "realtime"):
        assert re.search(rf"{collection} up 5 min [\d,]+ calls/h", rooftops_text), rooftops_text
    assert f"href=\"{DASHBOARD}&amp;var-account=rooftops\"" in dom and "Open in Grafana" in text
    assert "<script" not in dom and "http://" not in dom.replace(url, "").replace(sims[0].url, "").replace(
        sims[1].url, ""), "no external resource"
    for secret in (sims[0].appkey, sims[0].secret_key, sims[1].secret_key, "demo-password",
                   exporter.engines[0].auth.tokens.access_token, exporter.engines[0].auth.tokens.refresh_token):
        assert secret and secret not in dom

    target = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") else tmp_path / "status-page.png"
    chromium(tmp_path / "profile2", f"--screenshot={target}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
             url + "/")
    width, height, distinct = _png(target)
    assert (width, height) == WINDOW and distinct > 50, (width, height, distinct)
    assert SCREENSHOT.is_file(), "docs/status-page.png is missing: UPDATE_SCREENSHOT=1 makes it"
    assert _png(SCREENSHOT)[:2] == WINDOW


def _state(plants: int) -> AccountState:
    now = time.time()
    rows = tuple(Plant(ps_id=str(i), ps_name=f"Plant {i}", ps_type_code=4, fault_status=1 + i % 3,
                       online_status=1, build_status=2, grid_connection_status=1, valid_flag=1, connect_type=1,
                       location="", time_zone="GMT+1", install_ts=None, update_ts=now - (i % 7) * 3600,
                       grid_connection_ts=None, latitude=None, longitude=None) for i in range(plants))
    stats = StatsView(api_requests={}, auth={}, refreshes={}, unknown_units={}, realtime_failed_plants=0,
                      calls_this_hour=120)
    return AccountState(name="fleet", auth_mode="oauth2", gateway="https://gateway.isolarcloud.eu",
                        plants=PlantList(rows, now, 1), up=True, attempted=True, last_success=now, last_attempt=now,
                        last_error=None, duration=1.0, backoff_until=0.0, interval=300.0, max_age=900.0,
                        budget=1000, stats=stats, token_expiries={}, next_attempt=now + 300)


@pytest.mark.parametrize("plants", [10, 10_000])
def test_the_page_counts_plants_and_never_lists_them(plants: int) -> None:
    """The page is the same size at 10 plants and at 10,000: one count per state, no row per plant."""
    now = time.time()
    small = status_page.render([_state(10)], "1", now=now)
    page = status_page.render([_state(plants)], "1", now=now)
    assert abs(len(page) - len(small)) < 40
    fault = sum(1 + i % 3 == 1 for i in range(plants))
    stale = sum((i % 7) * 3600 > 2 * 3600 for i in range(plants))
    text = _text(page)
    assert f"{fault:,} In fault" in text and f"{stale:,} Not updating for 2 h" in text
    assert "Plant 5" not in page


def test_no_account_detail_is_a_secret_even_in_a_gateway_address() -> None:
    state: Any = _state(1)
    from dataclasses import replace

    page = status_page.render([replace(state, gateway="https://user:hunter22@gw.example.com")], "1")
    assert "hunter22" not in page and "https://gw.example.com" in page
