#!/usr/bin/env python3
"""The dashboards and rules at installer scale: a real Prometheus holding 10,000 plants x 7 days.

    python bench/prometheus_scale.py [--plants 10000] [--days 7] [--accounts 10] [--json out.json]

1. **Synthetic history.** A fleet of plants in four regions (Europe, China, eastern Australia, the US east coast;
   5 % without coordinates), with the exporter's series: state, info, timestamps, coordinates, power, energy today
   and lifetime, installed power, and the sun's elevation computed as the exporter does (exporter/serve/sun.py);
   power follows the sun, a few plants are in fault or alarm, a few loggers stand still. Per account the status
   series, and the recording rules the dashboards read. It is written as OpenMetrics in slices and turned into TSDB
   blocks with `promtool tsdb create-blocks-from openmetrics`. Resolution: the last 3 hours at the 60 s scrape
   interval (what rules and instant queries read: windows of up to 2 hours); before that, per-plant series
   hourly (they are only read by per-plant range queries, and 168 points a week keep the files at a few GB) and
   account series and recorded series every 60 s (the fleet dashboard's range panels read those over the whole
   range).
2. **The present.** Prometheus (`/usr/bin/prometheus`, default limits: `--query.max-samples` 50 M) starts on the
   blocks with the project's rule files (evaluated every 60 s, as in prometheus/prometheus.yml) and scrapes a small
   server that serves the fleet's last state every 15 s, so the rules and instant queries see current data and
   the head block fills as it would. Measuring waits until Prometheus has compacted the backfilled 2-hour blocks
   (minutes of CPU that would otherwise be measured as slow queries).
3. **Measured.** Every panel target of both dashboards, as Grafana sends it (range targets as range queries with
   Grafana's step for the range, instant ones at the end), over the last 24 hours and the last 7 days, with
   `stats=all`: wall time and `totalQueryableSamples`. Every rule group's `evaluationTime` from `/api/v1/rules`
   over several evaluations.

Needs promtool and prometheus (Debian package `prometheus`), ~10 GB of free disk in --workdir while it runs, and
about 20 minutes of two cores. Prints a markdown table; `--json` keeps every figure.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exporter.serve.sun import Position, elevations, positions  # noqa: E402
from tests._grafana_support import dashboards, substitute, targets  # noqa: E402

JOB, INSTANCE = "isolarcloud", "exporter:10027"
SCRAPE = 60  # seconds: the scrape interval the synthetic history has
TAIL = 3 * 3600  # the last 3 hours at the scrape interval
REGIONS = (  # zone, latitude range, longitude range, share of the fleet
    ("GMT+1", (43.0, 54.0), (2.0, 16.0), 0.40),
    ("GMT+8", (22.0, 40.0), (108.0, 121.0), 0.30),
    ("GMT+10", (-38.0, -27.0), (144.0, 153.0), 0.15),
    ("GMT-5", (30.0, 42.0), (-84.0, -74.0), 0.15),
)
FAULT_NAMES = ("fault", "alarm", "normal", "unknown")
BUILD_NAMES = ("not_started", "under_construction", "connected", "planned", "not_connected")
ENDPOINTS = ("queryPowerStationList", "getPowerStationRealTimeData", "refreshToken")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ the fleet


@dataclass
class Plant:
    account: str
    ps_id: str
    name: str
    zone: str
    offset_hours: float
    latitude: float | None
    longitude: float | None
    capacity: float
    efficiency: float
    fault: int  # 1 fault, 2 alarm, 3 normal
    stalled_since: float | None  # logger silent since then
    labels: str = ""
    energy_total: float = 0.0


@dataclass
class Fleet:
    plants: list[Plant]
    accounts: list[str]
    sun: list[Position | None] = field(default_factory=list)
    source: list[str] = field(default_factory=list)


def make_fleet(count: int, accounts: int, now: float, seed: int = 16) -> Fleet:
    rnd = random.Random(seed)
    names = [f"acct{a:02d}" for a in range(accounts)]
    plants = []
    for i in range(count):
        r = rnd.random()
        for region in REGIONS:
            r -= region[3]
            if r <= 0:
                break
        zone, (lat0, lat1), (lon0, lon1), _share = region
        has_coordinates = rnd.random() >= 0.05
        fault = 1 if rnd.random() < 0.02 else 2 if rnd.random() < 0.03 else 3
        plants.append(Plant(
            account=names[i % accounts], ps_id=str(1_000_000 + i), name=f"Plant {i % (count // 3 + 1)}",
            zone=zone, offset_hours=float(zone[3:]),
            latitude=round(rnd.uniform(lat0, lat1), 4) if has_coordinates else None,
            longitude=round(rnd.uniform(lon0, lon1), 4) if has_coordinates else None,
            capacity=float(rnd.choice((3000, 5000, 8000, 10000, 15000, 30000, 100000))),
            efficiency=rnd.uniform(0.6, 0.9), fault=fault,
            stalled_since=now - 6 * 3600 if rnd.random() < 0.01 else None,
            energy_total=rnd.uniform(1e9, 5e10)))
    for p in plants:
        p.labels = (f'job="{JOB}",instance="{INSTANCE}",account="{p.account}",ps_id="{p.ps_id}",'
                    f'ps_name="{p.name}",ps_type="residential_pv"')
    fleet = Fleet(plants, names)
    by_account: dict[str, list[int]] = {}
    for i, p in enumerate(plants):
        by_account.setdefault(p.account, []).append(i)
    fleet.sun = [None] * count
    for indexes in by_account.values():
        where = positions((plants[i].latitude, plants[i].longitude, plants[i].zone) for i in indexes)
        for i, position in zip(indexes, where, strict=True):
            fleet.sun[i] = position
    fleet.source = [s.source if s else "" for s in fleet.sun]
    return fleet


def state_at(fleet: Fleet, t: float) -> tuple[list[float], list[float]]:
    """Sun elevation and power of every plant at t."""
    where = [s or Position(0.0, 0.0) for s in fleet.sun]
    sun = elevations(where, t)
    power = []
    for p, elevation in zip(fleet.plants, sun, strict=True):
        if p.fault == 1 or elevation <= 0 or (p.stalled_since is not None and t >= p.stalled_since):
            power.append(0.0)
        else:
            power.append(round(p.capacity * p.efficiency * math.sin(math.radians(elevation)), 1))
    return sun, power


def energy_today(fleet: Fleet, t: float, power: list[float]) -> list[float]:
    """Yield since the plant's local midnight, approximated from the power now and the hours of daylight so far
    (2/pi of the peak power over the hours since sunrise): realistic magnitudes, monotonic within a day."""
    out = []
    for p, watts in zip(fleet.plants, power, strict=True):
        local_hour = ((t / 3600.0) + p.offset_hours) % 24
        daylight_hours = max(0.0, min(local_hour, 19.0) - 5.0)
        out.append(round(p.capacity * p.efficiency * daylight_hours * 3600 * 2 / math.pi * 0.6 + watts * 60, 0))
    return out


# ------------------------------------------------------------------------------------------------ exposition


def plant_lines(fleet: Fleet, t: float, ts: str, full: bool) -> Iterator[str]:
    """Every per-plant sample at t (`ts` its OpenMetrics timestamp, "" for the live server)."""
    sun, power = state_at(fleet, t)
    today = energy_today(fleet, t, power)
    suffix = f" {ts}\n" if ts else "\n"
    for p, elevation, watts, energy, source in zip(fleet.plants, sun, power, today, fleet.source, strict=True):
        labels = p.labels
        p.energy_total += watts * SCRAPE
        updated = (p.stalled_since if p.stalled_since is not None and t >= p.stalled_since else t // 300 * 300)
        yield (f"isolarcloud_plant_info{{{labels},ps_type_code=\"4\",connect_type=\"full_feed_in\","
               f"location=\"\",time_zone=\"{p.zone}\"}} 1{suffix}")
        yield f"isolarcloud_plant_fault_status{{{labels}}} {p.fault}{suffix}"
        yield f"isolarcloud_plant_build_status{{{labels}}} 2{suffix}"
        yield f"isolarcloud_plant_update_timestamp_seconds{{{labels}}} {updated:.0f}{suffix}"
        yield f"isolarcloud_plant_power_watts{{{labels}}} {watts}{suffix}"
        yield f"isolarcloud_plant_energy_today_joules{{{labels}}} {energy}{suffix}"
        yield f"isolarcloud_plant_energy_joules_total{{{labels}}} {p.energy_total:.0f}{suffix}"
        yield f"isolarcloud_plant_installed_power_watts{{{labels}}} {p.capacity}{suffix}"
        if source:
            yield (f"isolarcloud_plant_sun_elevation_degrees{{{labels},source=\"{source}\",time_zone=\"{p.zone}\"}} "
                   f"{round(elevation, 1)}{suffix}")
        if p.latitude is not None:
            yield f"isolarcloud_plant_latitude_degrees{{{labels}}} {p.latitude}{suffix}"
            yield f"isolarcloud_plant_longitude_degrees{{{labels}}} {p.longitude}{suffix}"
        if full:
            yield f"isolarcloud_plant_online_status{{{labels}}} 1{suffix}"
            yield f"isolarcloud_plant_grid_connection_status{{{labels}}} 1{suffix}"
            yield f"isolarcloud_plant_valid_flag{{{labels}}} 1{suffix}"


def account_lines(fleet: Fleet, t: float, ts: str, start: float, live: bool) -> Iterator[str]:
    suffix = f" {ts}\n" if ts else "\n"
    per_account: dict[str, int] = {}
    for p in fleet.plants:
        per_account[p.account] = per_account.get(p.account, 0) + 1
    minutes = (t - start) / 60.0
    for n, account in enumerate(fleet.accounts):
        a = f'job="{JOB}",instance="{INSTANCE}",account="{account}"'
        plants = per_account[account]
        calls = plants // 100 + plants // 50 + 2
        yield f"isolarcloud_up{{{a}}} 1{suffix}"
        yield f"isolarcloud_plants{{{a}}} {plants}{suffix}"
        yield f"isolarcloud_last_refresh_success_timestamp_seconds{{{a}}} {t // 300 * 300:.0f}{suffix}"
        yield f"isolarcloud_refresh_duration_seconds{{{a}}} {2.5 + n * 0.1}{suffix}"
        yield f"isolarcloud_max_age_seconds{{{a}}} 900{suffix}"
        yield f"isolarcloud_refresh_interval_seconds{{{a}}} 300{suffix}"
        yield f"isolarcloud_api_budget_calls_per_hour{{{a}}} 10000{suffix}"
        yield f"isolarcloud_api_calls_current_hour{{{a}}} {calls * int((t % 3600) // 300 + 1)}{suffix}"
        yield f"isolarcloud_backoff_until_timestamp_seconds{{{a}}} 0{suffix}"
        for endpoint in ENDPOINTS:
            yield (f"isolarcloud_api_requests_total{{{a},endpoint=\"{endpoint}\",result=\"1\"}} "
                   f"{int(minutes / 5) * calls}{suffix}")
        if n == 0:
            yield f"isolarcloud_api_requests_total{{{a},endpoint=\"queryPowerStationList\",result=\"E999\"}} 3{suffix}"
        yield f"isolarcloud_refreshes_total{{{a},result=\"success\"}} {int(minutes / 5)}{suffix}"
        yield f"isolarcloud_refreshes_total{{{a},result=\"error\"}} 1{suffix}"
        yield f"isolarcloud_auth_total{{{a},kind=\"refresh\",result=\"success\"}} {int(minutes / 120)}{suffix}"
        yield f"isolarcloud_realtime_failed_plants_total{{{a}}} {int(minutes / 60)}{suffix}"
        access = t // 7200 * 7200 + 172800
        yield f"isolarcloud_token_expiry_timestamp_seconds{{{a},token=\"access\"}} {access:.0f}{suffix}"
        yield f"isolarcloud_token_expiry_timestamp_seconds{{{a},token=\"refresh\"}} {t + 25 * 86400:.0f}{suffix}"
        for collection in ("plants", "realtime"):
            c = f'{a},collection="{collection}"'
            yield f"isolarcloud_collection_up{{{c}}} 1{suffix}"
            yield f"isolarcloud_collection_interval_seconds{{{c}}} 300{suffix}"
            yield f"isolarcloud_collection_last_success_timestamp_seconds{{{c}}} {t // 300 * 300:.0f}{suffix}"
            yield f"isolarcloud_collection_budget_calls_per_hour{{{c}}} 5000{suffix}"
            yield f"isolarcloud_collection_max_age_seconds{{{c}}} 900{suffix}"
    e = f'job="{JOB}",instance="{INSTANCE}"'
    yield f'isolarcloud_exporter_build_info{{{e},version="0.1.0",python_version="3.11.7"}} 1{suffix}'
    yield f"process_resident_memory_bytes{{{e}}} 412000000{suffix}"
    yield f"process_cpu_seconds_total{{{e}}} {minutes * 1.2:.1f}{suffix}"
    yield f"process_start_time_seconds{{{e}}} {start:.0f}{suffix}"
    if not live:  # Prometheus writes these itself for the live target
        yield f"up{{{e}}} 1{suffix}"
        yield f"scrape_duration_seconds{{{e}}} 0.05{suffix}"


def recorded_lines(fleet: Fleet, t: float, ts: str, power: list[float], today: list[float]) -> Iterator[str]:
    """The recording rules of rules.yml, as Prometheus would have recorded them (the dashboards' range panels)."""
    suffix = f" {ts}\n"
    sums: dict[str, list[float]] = {a: [0.0, 0.0, 0.0] for a in fleet.accounts}
    faults: dict[str, dict[int, int]] = {a: {1: 0, 2: 0, 3: 0} for a in fleet.accounts}
    for p, watts, energy in zip(fleet.plants, power, today, strict=True):
        s = sums[p.account]
        s[0] += watts
        s[1] += energy
        s[2] += p.capacity
        faults[p.account][p.fault] += 1
    for account in fleet.accounts:
        a = f'job="{JOB}",account="{account}"'
        for code, name in ((1, "fault"), (2, "alarm"), (3, "normal"), (0, "unknown")):
            yield (f"account_fault_status:isolarcloud_plant_fault_status:count{{{a},fault_status=\"{name}\"}} "
                   f"{faults[account].get(code, 0)}{suffix}")
        total = sum(faults[account].values())
        yield f"account_ps_type:isolarcloud_plant_info:count{{{a},ps_type=\"residential_pv\"}} {total}{suffix}"
        for name in BUILD_NAMES:
            value = total if name == "connected" else 0
            yield (f"account_build_status:isolarcloud_plant_build_status:count{{{a},build_status=\"{name}\"}} "
                   f"{value}{suffix}")
        yield f"account:isolarcloud_plant_power_watts:sum{{{a}}} {sums[account][0]}{suffix}"
        yield f"account:isolarcloud_plant_energy_today_joules:sum{{{a}}} {sums[account][1]}{suffix}"
        yield f"account:isolarcloud_plant_installed_power_watts:sum{{{a}}} {sums[account][2]}{suffix}"
        yield f"account:isolarcloud_api_calls_current_hour_per_budget_calls_per_hour:ratio{{{a}}} 0.05{suffix}"


def write_history(fleet: Fleet, start: float, end: float, workdir: Path, data: Path, promtool: str) -> dict[str, Any]:
    """OpenMetrics slices -> TSDB blocks, slice by slice (each slice's text is deleted once it is blocks)."""
    tail_start = end - TAIL
    slices = [(t, min(t + 12 * 3600, tail_start)) for t in range(int(start), int(tail_start), 12 * 3600)]
    slices += [(t, min(t + 1800, end)) for t in range(int(tail_start), int(end), 1800)]
    lines_total = bytes_total = 0
    cached: tuple[float, list[float], list[float]] | None = None
    for n, (t0, t1) in enumerate(slices):
        path = workdir / f"slice-{n:03d}.om"
        with path.open("w", encoding="utf-8", buffering=1 << 22) as out:
            t = float(t0)
            while t < t1:
                ts = f"{t:.0f}"
                if t >= tail_start or (t - start) % 3600 == 0 or cached is None:
                    _sun, power = state_at(fleet, t)
                    cached = (t, power, energy_today(fleet, t, power))
                    chunk = "".join(plant_lines(fleet, t, ts, full=True))
                    out.write(chunk)
                    lines_total += chunk.count("\n")
                chunk = "".join(account_lines(fleet, t, ts, start, live=False))
                chunk += "".join(recorded_lines(fleet, t, ts, cached[1], cached[2]))
                out.write(chunk)
                lines_total += chunk.count("\n")
                t += SCRAPE
            out.write("# EOF\n")
        bytes_total += path.stat().st_size
        result = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(path),
                                 str(data)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"promtool failed on {path}:\n{result.stderr[-2000:]}")
        path.unlink()
        log(f"slice {n + 1}/{len(slices)}: {lines_total:,} samples so far")
    return {"samples": lines_total, "openmetrics_bytes": bytes_total}


# ------------------------------------------------------------------------------------------------ the present


class LiveTarget:
    """Serves the fleet's state at one moment, as the exporter would, for Prometheus to scrape."""

    def __init__(self, fleet: Fleet, t: float, start: float) -> None:
        text = "".join(plant_lines(fleet, t, "", full=True)) + "".join(account_lines(fleet, t, "", start, live=True))
        body = gzip.compress(text.encode(), 1)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_prometheus(workdir: Path, data: Path, target_port: int, prometheus: str) -> tuple[subprocess.Popen, str]:
    for name in ("alerts.yml", "rules.yml"):
        shutil.copy(ROOT / "prometheus" / name, workdir / name)
    config = {
        "global": {"scrape_interval": "15s", "scrape_timeout": "10s", "evaluation_interval": "60s"},
        "rule_files": ["alerts.yml", "rules.yml"],
        "scrape_configs": [{
            "job_name": JOB, "honor_labels": True,
            "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
            "relabel_configs": [{"target_label": "instance", "replacement": INSTANCE}],
        }],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    proc = subprocess.Popen(
        [prometheus, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
         "--storage.tsdb.retention.time=30d", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=(workdir / "prometheus.log").open("w"), stderr=subprocess.STDOUT, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"prometheus exited:\n{(workdir / 'prometheus.log').read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(1)
    raise SystemExit("prometheus not ready after 10 minutes")


# ------------------------------------------------------------------------------------------------ measuring


def prometheus_metric(url: str, name: str) -> float:
    """A counter of Prometheus' own /metrics (summed over its label sets)."""
    total = 0.0
    for line in requests.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for_compaction(url: str, quiet: float = 150.0, limit: float = 3600.0) -> float:
    """Until Prometheus' compactor has been idle for `quiet` seconds (it checks every minute); its duration."""
    began = time.monotonic()
    last, since = -1.0, time.monotonic()
    while time.monotonic() - began < limit:
        done = prometheus_metric(url, "prometheus_tsdb_compactions_total")
        failed = prometheus_metric(url, "prometheus_tsdb_compactions_failed_total")
        if done + failed != last:
            last, since = done + failed, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return time.monotonic() - began - quiet
        time.sleep(10)
    raise SystemExit("Prometheus still compacting after an hour")


def grafana_interval(range_seconds: float, max_points: int = 1000) -> int:
    """Grafana's $__interval for a range and panel width (its rounding to "nice" steps, simplified)."""
    raw = range_seconds / max_points
    for nice in (15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600):
        if raw <= nice * 1.5:
            return max(nice, SCRAPE)
    return 3600


def query(url: str, expr: str, end: float, range_seconds: float | None, step: int) -> dict[str, Any]:
    params: dict[str, Any] = {"query": expr, "stats": "all"}
    if range_seconds is None:
        path, params["time"] = "query", end
    else:
        path = "query_range"
        params.update(start=end - range_seconds, end=end, step=step)
    began = time.perf_counter()
    response = requests.get(f"{url}/api/v1/{path}", params=params, timeout=300)
    wall = time.perf_counter() - began
    body = response.json()
    if body.get("status") != "success":
        return {"wall": wall, "error": f"{body.get('errorType')}: {body.get('error')}", "samples": 0, "series": 0}
    data = body["data"]
    stats = data.get("stats", {})
    return {"wall": wall, "samples": stats.get("samples", {}).get("totalQueryableSamples", 0),
            "peak": stats.get("samples", {}).get("peakSamples", 0),
            "exec": stats.get("timings", {}).get("execTotalTime", 0.0), "series": len(data["result"])}


def measure_dashboards(url: str, end: float, values: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    rows = []
    for board_name, board in dashboards().items():
        for label, range_seconds in (("24h", 86400), ("7d", 7 * 86400)):
            step = grafana_interval(range_seconds)
            builtin = {"__interval": f"{step}s", "__rate_interval": f"{max(step + SCRAPE, 4 * SCRAPE)}s",
                       "__range": f"{range_seconds}s", "__range_s": str(range_seconds),
                       "__interval_ms": str(step * 1000)}
            for panel, target in targets(board):
                local = {**builtin, **values[board_name]}
                if target.get("interval"):
                    local["__interval"] = target["interval"]
                expr = substitute(target["expr"], local)
                instant = target.get("instant") and not target.get("range")
                outcome = query(url, expr, end, None if instant else range_seconds, step)
                rows.append({"dashboard": board_name, "panel": panel["title"], "ref": target["refId"],
                             "range": label, "kind": "instant" if instant else f"range step {step}s", **outcome})
    return rows


def measure_rules(url: str, evaluations: int = 5, interval: float = 60.0) -> tuple[dict[str, list[float]],
                                                                                  dict[str, float]]:
    """Each group's evaluation times (the first, which also loads chunks from disk, dropped), and each rule's
    slowest."""
    seen: dict[str, dict[str, float]] = {}
    slowest: dict[str, float] = {}
    deadline = time.monotonic() + evaluations * interval * 3
    while time.monotonic() < deadline:
        groups = requests.get(f"{url}/api/v1/rules", timeout=30).json()["data"]["groups"]
        for g in groups:
            first = not seen.get(g["name"])
            seen.setdefault(g["name"], {})[g["lastEvaluation"]] = g["evaluationTime"]
            for rule in g["rules"] if not first else []:
                name = f"{g['name']} / {rule['name']}"
                slowest[name] = max(slowest.get(name, 0.0), rule["evaluationTime"])
        if all(len(v) > evaluations for v in seen.values()) and seen:
            break
        time.sleep(interval / 2)
    return {name: [times[k] for k in sorted(times)][1:] for name, times in seen.items()}, slowest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plants", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--workdir", type=Path, help="keep the TSDB and logs here (default: a temporary directory)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--reuse", action="store_true",
                        help="measure again on the TSDB a previous run left in --workdir (no new history)")
    args = parser.parse_args(argv)
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="isolarcloud-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    meta = workdir / "history.json"
    if args.reuse:
        saved = json.loads(meta.read_text(encoding="utf-8"))
        args.plants, args.accounts, args.days = saved["plants"], saved["accounts"], saved["days"]
        start, end, written, generation = saved["start"], saved["end"], saved["written"], saved["generation"]
        fleet = make_fleet(args.plants, args.accounts, end)
        log(f"reusing {workdir}: history ends {(time.time() - end) / 60:.0f} minutes ago")
    else:
        end = time.time() // SCRAPE * SCRAPE - SCRAPE
        start = end - args.days * 86400
        fleet = make_fleet(args.plants, args.accounts, end)
        log(f"{args.plants:,} plants in {args.accounts} accounts, {args.days} days, into {workdir}")
        began = time.monotonic()
        written = write_history(fleet, start, end, workdir, data, promtool)
        generation = time.monotonic() - began
        meta.write_text(json.dumps({"plants": args.plants, "accounts": args.accounts, "days": args.days,
                                    "start": start, "end": end, "written": written, "generation": generation}),
                        encoding="utf-8")
        log(f"history: {written['samples']:,} samples, {written['openmetrics_bytes'] / 1e9:.1f} GB of OpenMetrics, "
            f"{generation:.0f} s")
    live = LiveTarget(fleet, end + SCRAPE, start)
    proc, url = start_prometheus(workdir, data, live.port, prometheus)
    try:
        # Until the live target's samples are in and every group evaluated on them.
        while not requests.get(f"{url}/api/v1/query", params={"query": f'up{{job="{JOB}"}} == 1'},
                               timeout=30).json()["data"]["result"]:
            time.sleep(2)
        compaction = wait_for_compaction(url)
        log(f"compaction of the backfilled blocks took {compaction:.0f} s; measuring")
        rules, slowest_rules = measure_rules(url)
        now = time.time()
        busiest = max({p.zone for p in fleet.plants}, key=lambda z: sum(p.zone == z for p in fleet.plants))
        sample = next(p for p in fleet.plants if p.zone == "GMT+1" and p.latitude is not None and p.fault == 3
                      and p.stalled_since is None)
        values = {
            "isolarcloud-fleet.json": {"job": JOB, "account": ".*", "time_zone": busiest},
            "isolarcloud-plant.json": {"job": JOB, "account": sample.account, "plant": sample.name,
                                       "ps_id": sample.ps_id},
        }
        rows = measure_dashboards(url, now, values)
        head = requests.get(f"{url}/api/v1/status/tsdb", timeout=30).json()["data"]["headStats"]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        live.close()
    report = {"plants": args.plants, "accounts": args.accounts, "days": args.days, **written,
              "generation_seconds": generation, "compaction_seconds": compaction, "head_series": head["numSeries"],
              "load_average": os.getloadavg(), "rules": rules,
              "slowest_rules": slowest_rules, "queries": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print_report(report)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def print_report(report: dict[str, Any]) -> None:
    rows = report["queries"]
    errors = [r for r in rows if r.get("error")]
    print(f"\n{report['plants']:,} plants, {report['days']} days: {report['samples']:,} samples backfilled, "
          f"{report['head_series'] or 0:,.0f} series in the head\n")
    print("| rule group | evaluations | median | max |\n|---|---:|---:|---:|")
    for name, times in sorted(report["rules"].items()):
        if times:
            print(f"| {name} | {len(times)} | {statistics.median(times) * 1000:.0f} ms | {max(times) * 1000:.0f} ms |")
    print("\n| slowest rules | max |\n|---|---:|")
    for name, seconds in sorted(report["slowest_rules"].items(), key=lambda kv: -kv[1])[:8]:
        print(f"| {name} | {seconds * 1000:.0f} ms |")
    print("\n| dashboard | range | queries | slowest (panel) | most samples (panel) | errors |\n"
          "|---|---|---:|---|---|---:|")
    for board in sorted({r["dashboard"] for r in rows}):
        for label in ("24h", "7d"):
            mine = [r for r in rows if r["dashboard"] == board and r["range"] == label]
            slow = max(mine, key=lambda r: r["wall"])
            big = max(mine, key=lambda r: r["samples"])
            print(f"| {board} | {label} | {len(mine)} | {slow['wall']:.2f} s ({slow['panel']}) | "
                  f"{big['samples']:,} ({big['panel']}) | {sum(1 for r in mine if r.get('error'))} |")
    print("\nEvery query, slowest first:\n\n| dashboard | panel | ref | range | kind | wall | samples | series |\n"
          "|---|---|---|---|---|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: -r["wall"]):
        print(f"| {r['dashboard']} | {r['panel']} | {r['ref']} | {r['range']} | {r['kind']} | {r['wall']:.3f} s | "
              f"{r['samples']:,} | {r['series']} |")
    for r in errors:
        print(f"ERROR {r['dashboard']} / {r['panel']} / {r['ref']} ({r['range']}): {r['error']}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
