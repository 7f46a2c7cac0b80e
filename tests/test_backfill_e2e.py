"""The backfill end to end, as a user runs it: the simulator's history endpoints over HTTP → `python -m exporter
backfill` (a subprocess) beside a running exporter whose /metrics it reads for the budget and whose token file
it shares → promtool blocks (--tsdb-dir) → a real Prometheus started on them.

Then Prometheus must answer, at their timestamps, the very values the simulator serves (read here by raw HTTP,
not through the exporter's client), keep the simulator's gaps as gaps, and give the plant dashboard's "Daily
energy" panel a bar for each past day.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.simulator import Simulator
from tests._backfill_support import move_blocks, prometheus_on, require_prometheus
from tests._grafana_support import dashboards, substitute, targets
from tests.conftest import Running, oauth_account

pytestmark = pytest.mark.e2e

ACCOUNT = "home"
# The real-time points and their metric and scale (W, J = Wh × 3600, ratio), stated here from docs/metrics.md so
# that a change of the exporter's table cannot agree with itself.
POINTS = {"83033": ("isolarcloud_plant_power_watts", 1.0), "83022": ("isolarcloud_plant_energy_today_joules", 3600.0),
          "83024": ("isolarcloud_plant_energy_joules_total", 3600.0),
          "83106": ("isolarcloud_plant_load_power_watts", 1.0),
          "83118": ("isolarcloud_plant_consumption_today_joules", 3600.0),
          "83124": ("isolarcloud_plant_consumption_joules_total", 3600.0),
          "83549": ("isolarcloud_plant_grid_power_watts", 1.0),
          "83072": ("isolarcloud_plant_grid_export_energy_today_joules", 3600.0),
          "83075": ("isolarcloud_plant_grid_export_energy_joules_total", 3600.0),
          "83102": ("isolarcloud_plant_grid_import_energy_today_joules", 3600.0),
          "83105": ("isolarcloud_plant_grid_import_energy_joules_total", 3600.0),
          "83252": ("isolarcloud_plant_battery_soc_ratio", 1.0),
          "83326": ("isolarcloud_plant_battery_power_watts", 1.0)}


def raw(sim: Simulator, token: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{sim.url}/openapi/platform/{endpoint}", timeout=30, json={
        "appkey": sim.appkey, "lang": "_en_US", **body},
        headers={"x-access-key": sim.secret_key, "Authorization": f"Bearer {token}"})
    doc = response.json()
    assert doc["result_code"] == "1", doc
    return doc["result_data"]


def zone(text: str) -> timezone:
    match = re.fullmatch(r"GMT([+-])(\d{1,2})(?::?(\d{2}))?", text.strip())
    assert match, text
    offset = timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
    return timezone(offset if match.group(1) == "+" else -offset)


@pytest.fixture
def stack(tmp_path: Path, make_sim: Callable[..., Simulator],
          run_exporter: Callable[..., Running]) -> tuple[Simulator, Running, Path]:
    require_prometheus()
    sim = make_sim(plants=4, seed=11)
    account = oauth_account(sim, tmp_path / "tokens.json", name=ACCOUNT, api_budget_per_hour=5000)
    exporter = run_exporter({"accounts": [account]})
    exporter.wait_refreshed()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"refresh_interval": 60, "accounts": [account]}))
    config.chmod(0o600)
    return sim, exporter, config


def test_simulator_history_through_backfill_and_promtool_into_prometheus(
        stack: tuple[Simulator, Running, Path], tmp_path: Path, promtool: str) -> None:
    sim, exporter, config = stack
    today = datetime.now(timezone.utc).date()
    first = today - timedelta(days=4)
    blocks = tmp_path / "blocks"
    # A dry run first: the plant count and the budget left come from the running exporter's /metrics.
    dry = subprocess.run([sys.executable, "-m", "exporter", "backfill", "--config.file", str(config), "--from",
                          first.isoformat(), "--resolution", "15m", "--tsdb-dir", str(blocks), "--exporter.url",
                          exporter.url, "--dry-run"], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    # 5000 - the exporter's plan (plant list, open faults and real-time data every 60 s: 180 calls/hour; the
    # details of 4 plants, one call a day, round to nothing) - 2 % reserve.
    assert "account home: 4 plants" in dry.stdout and "at 4,720 calls/hour" in dry.stdout, dry.stdout
    planned = int(re.search(r"getPowerStationPointMinuteDataList\s+([\d,]+) calls", dry.stdout)[1].replace(",", ""))
    calls_before = sim.count("MinuteData")
    assert calls_before == 0
    done = subprocess.run([sys.executable, "-m", "exporter", "backfill", "--config.file", str(config), "--from",
                           first.isoformat(), "--resolution", "15m", "--tsdb-dir", str(blocks),
                           "--label", "instance=exporter:10027", "--exporter.url", exporter.url],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    made = re.search(r"account home: 4 plants, .*: ([\d,]+) getPowerStationPointMinuteDataList", done.stdout)
    assert made and int(made[1].replace(",", "")) == planned == sim.count("MinuteData"), done.stdout
    # The backfill used the exporter's access token from the shared file: no refresh of its own.
    assert "refreshToken" not in done.stdout

    token = sim.issue_tokens()["access_token"]
    plants = raw(sim, token, "queryPowerStationList", {"page": 1, "size": 100, "valid_flag": "1,3"})["pageList"]
    zones = {str(p["ps_id"]): zone(p["ps_current_time_zone"]) for p in plants}
    names = {str(p["ps_id"]): p["ps_name"] for p in plants}
    assert len(zones) == 4

    data = tmp_path / "data"
    data.mkdir()
    with prometheus_on(data, tmp_path) as prom:
        # As docs/backfill.md says: moved into the data directory of a running Prometheus, the blocks are
        # loaded at its next block reload (about a minute), without a restart.
        assert move_blocks(blocks, data)
        probe = f"count(isolarcloud_plant_energy_joules_total{{account=\"{ACCOUNT}\"}})"
        at = datetime.combine(first + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc).timestamp()
        deadline = time.monotonic() + 150
        while not prom.query(probe, at):
            assert time.monotonic() < deadline, "the moved blocks were not loaded"
            time.sleep(2)
        # A past day in every plant's zone: the day before yesterday (UTC), three morning-to-noon windows.
        day = today - timedelta(days=2)
        compared = 0
        for ps_id, tz in zones.items():
            for hours in ((6, 9), (9, 12), (12, 15)):
                start = datetime.combine(day, datetime.min.time()) + timedelta(hours=hours[0])
                end = start + timedelta(hours=3) - timedelta(seconds=1)
                answer = raw(sim, token, "getPowerStationPointMinuteDataList", {
                    "ps_id_list": [ps_id], "points": ",".join("p" + p for p in POINTS),
                    "start_time_stamp": start.strftime("%Y%m%d%H%M%S"), "end_time_stamp": end.strftime("%Y%m%d%H%M%S"),
                    "minute_interval": "15"})
                rows = {datetime.strptime(r["time_stamp"], "%Y%m%d%H%M%S").replace(tzinfo=tz).timestamp(): r
                        for r in answer.get(ps_id) or []}
                t0 = start.replace(tzinfo=tz).timestamp()
                t1 = end.replace(tzinfo=tz).timestamp()
                for point, (metric, scale) in POINTS.items():
                    result = prom.query_range(f'{metric}{{ps_id="{ps_id}"}}', t0, t1, 900)
                    got = {float(t): float(v) for t, v in result[0]["values"]} if result else {}
                    if result:
                        assert result[0]["metric"] == {
                            "__name__": metric, "account": ACCOUNT, "instance": "exporter:10027",
                            "job": "isolarcloud", "ps_id": ps_id, "ps_name": names[ps_id],
                            "ps_type": result[0]["metric"]["ps_type"]}
                    want = {ts: float(r[f"p{point}"]) * scale for ts, r in rows.items()
                            if r.get(f"p{point}") not in (None, "")}
                    assert got == pytest.approx(want, rel=1e-9), (ps_id, metric, start)
                    compared += len(want)  # and stamps the simulator has no row for have no sample either
        assert compared > 500
        # The plant dashboard's "Daily energy" panel, as Grafana asks it (1-day steps from UTC midnight).
        panel = next((p, t) for p, t in targets(dashboards()["isolarcloud-plant.json"])
                     if p["title"] == "Daily energy" and t["refId"] == "A")
        ps_id = next(iter(zones))
        expr = substitute(panel[1]["expr"], {"job": "isolarcloud", "account": ACCOUNT, "ps_id": ps_id,
                                              "__interval": "1d"})
        past = [datetime.combine(today - timedelta(days=n), datetime.min.time(), tzinfo=timezone.utc).timestamp()
                for n in (2, 1)]  # the ends of the last two whole UTC days the backfill covers for every zone
        result = prom.query_range(expr, past[0], past[1], 86400)
        assert result, expr
        bars = {float(t): float(v) for t, v in result[0]["values"]}
        assert set(bars) == set(past) and all(v > 0 for v in bars.values()), bars


def test_sigterm_during_a_budget_wait_saves_the_run_and_the_same_command_continues(
        tmp_path: Path, make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(plants=2, seed=12)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"accounts": [oauth_account(sim, tmp_path / "tokens.json", name=ACCOUNT)]}))
    config.chmod(0o600)
    first = (datetime.now(timezone.utc).date() - timedelta(days=3)).isoformat()
    command = [sys.executable, "-m", "exporter", "backfill", "--config.file", str(config), "--from", first,
               "--to", first, "--resolution", "1h", "--output", str(tmp_path / "out.om")]
    # Three calls an hour: the token refresh, the plant list and one history call, then a wait for the next hour.
    proc = subprocess.Popen([*command, "--budget-per-hour", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while sim.count("MinuteData") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert err.strip().splitlines()[-1] == (f"isolarcloud-exporter backfill: interrupted; the run is saved in "
                                            f"{tmp_path / 'out.om.checkpoint'}: run the same command again to "
                                            "continue")
    assert not (tmp_path / "out.om").exists()
    done = subprocess.run([*command, "--budget-per-hour", "1000"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sim.count("MinuteData") == 8  # the one made before the signal is not made again
    assert (tmp_path / "out.om").read_text().endswith("# EOF\n")


@pytest.mark.parametrize("variant", [{"history_window": "left_open"}, {"history_types": "table"}])
def test_the_simulators_readings_of_the_unknowns_give_the_same_samples(
        tmp_path: Path, make_sim: Callable[..., Simulator], variant: dict[str, str]) -> None:
    """The gateway may leave out the start of a window, and send numbers where the recorded answers have strings
    (docs/simulator.md: history_window, history_types): the backfill writes the same samples either way."""
    first = (datetime.now(timezone.utc).date() - timedelta(days=3)).isoformat()
    files = {}
    for name, options in (("default", {}), ("variant", variant)):
        sim = make_sim(plants=2, seed=13, **options)
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump({"accounts": [oauth_account(sim, tmp_path / f"{name}.json",
                                                                     name=ACCOUNT)]}))
        config.chmod(0o600)
        for resolution in ("15m", "1d"):
            out = tmp_path / f"{name}-{resolution}.om"
            done = subprocess.run([sys.executable, "-m", "exporter", "backfill", "--config.file", str(config),
                                   "--from", first, "--to", first, "--resolution", resolution, "--budget-per-hour",
                                   "1000", "--output", str(out)], capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            files[(name, resolution)] = out.read_text()
    for resolution in ("15m", "1d"):
        assert files[("variant", resolution)] == files[("default", resolution)]
    # Every quarter hour of the day for the plant's power: 96 stamps less the simulator's gaps, if any.
    assert files[("default", "15m")].count("isolarcloud_plant_power_watts{") > 150
