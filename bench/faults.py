#!/usr/bin/env python3
"""Open faults and plant details at installer scale: what they cost in API calls, and what they do to scrapes.

    python bench/faults.py [--plants 10000] [--open-faults 300] [--hours 24] [--rounds 5] [--json out.json]

Against one simulator (`python -m exporter.simulator --plants N --open-faults M`, its own process):

1. **Calls.** The exporter's engine runs in this process on a settable clock with the default configuration
   (refresh 5 min, budget 1000 calls/h, real-time data on, faults and details on), one cycle every 5 minutes of
   simulated time for `--hours`. Counted per endpoint from the engine's own request counters: the calls of
   each faults pass, the plant-details calls per simulated hour (and the most in any one cycle: no burst),
   the plants with details at the end, the calls per hour of everything (within the budget).
2. **Scrapes.** Two exporter processes read the same simulator: "before" with `faults.enabled: false` and
   `details.enabled: false` (the exporter as it was) and "after" with the defaults, both with a budget large
   enough to read everything at start-up and a 1 h refresh interval (nothing is refreshed while scraping).
   Sequential keep-alive scrapes, plain and gzip, interleaved round by round (bench/run.py's client); the
   table shows p50/p99, bytes and the after/before ratio. Also the CPU of rendering the cached section in
   the refresh thread, with and without the new families, from the state of part 1.

Prints one markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import run as base  # noqa: E402  (bench/run.py: process helpers, the HTTP client, the scrape series)

ACCOUNT = base.ACCOUNT
FAULTS, DETAILS = "getFaultAlarmInfo", "getPowerStationDetail"
LIST, REALTIME = "queryPowerStationList", "getPowerStationRealTimeData"
CYCLE = 300.0


def account(sim_url: str, tokens: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": ACCOUNT, "base_url": sim_url,
            "auth": {"mode": "oauth2", "appkey": "DEMOAPPKEY00000000000000000000001",
                     "secret_key": "demo-secret-key", "access_token": tokens["access_token"]}, **extra}


def start_simulator(tmp: str, plants: int, open_faults: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes],
                                                                                           str, dict[str, Any]]:
    port = base.free_port()
    tokens_file = Path(tmp, "tokens.json")
    sim = subprocess.Popen([sys.executable, "-m", "exporter.simulator", "--listen-address", f"127.0.0.1:{port}",
                            "--plants", str(plants), "--open-faults", str(open_faults),
                            "--tokens-file", str(tokens_file)], stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    base.wait_port(port, sim)
    while not tokens_file.exists() or not tokens_file.stat().st_size:
        time.sleep(0.01)
    time.sleep(0.05)
    return sim, f"http://127.0.0.1:{port}", json.loads(tokens_file.read_text())


# -- 1. calls over a simulated day --------------------------------------------------------------------------------

class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def simulate(sim_url: str, tokens: dict[str, Any], hours: int, log: Any) -> dict[str, Any]:
    from exporter.app import build_engine
    from exporter.config import parse_config
    from exporter.serve.exposition import cached_section

    config = parse_config({"refresh_interval": "5m", "accounts": [account(sim_url, tokens)]}, env={})
    clock = Clock(math.floor(time.time() / 3600) * 3600 + 60)
    engine = build_engine(config.accounts[0], config, clock)
    hourly: list[Counter[str]] = [Counter() for _ in range(hours)]
    fault_passes: list[int] = []
    detail_cycles: list[int] = []
    wall0 = time.perf_counter()
    for cycle in range(hours * 12):
        before = Counter(_by_endpoint(engine))
        engine.refresh()
        made = Counter(_by_endpoint(engine)) - before
        hourly[cycle // 12].update(made)
        if made[FAULTS]:
            fault_passes.append(made[FAULTS])
        detail_cycles.append(made[DETAILS])
        if cycle % 12 == 11:
            log(f"  hour {cycle // 12 + 1:2d}: {dict(hourly[cycle // 12])} ({time.perf_counter() - wall0:.0f}s)")
        clock.now += CYCLE
    state = engine.state()
    plants = len(state.plants.plants) if state.plants else 0
    shares = {c.name: (c.calls_per_hour, c.interval) for c in state.collections}
    # The refresh thread renders the cached section once per new data: with and without the new families.
    renders: dict[str, float] = {}
    for label, variant in (("before", dataclasses.replace(state, faults=None, details=None)), ("after", state)):
        times = []
        for _ in range(3):
            cpu0 = time.thread_time()
            "".join(cached_section([variant], False)).encode()
            times.append(time.thread_time() - cpu0)
        renders[label] = sorted(times)[1]
    engine.close()
    details = [h[DETAILS] for h in hourly]
    return {
        "plants": plants,
        "open_faults": sum(sum(c.values()) for c in state.faults.counts.values()) if state.faults else 0,
        "fault_series": len(state.faults.faults) if state.faults else 0,
        "fault_pass_calls": sorted(set(fault_passes)), "fault_passes": len(fault_passes),
        "details_per_hour": details, "details_total": sum(details), "details_max_cycle": max(detail_cycles),
        "plants_with_details": len(state.details.plants) if state.details else 0,
        "calls_per_hour": [sum(h.values()) for h in hourly],
        "list_per_hour": [h[LIST] for h in hourly], "realtime_per_hour": [h[REALTIME] for h in hourly],
        "shares": shares, "render": renders,
    }


def _by_endpoint(engine: Any) -> dict[str, int]:
    out: Counter[str] = Counter()
    for (endpoint, _result), n in engine.stats.view().api_requests.items():
        out[endpoint] += n
    return dict(out)


# -- 2. scrapes before and after ----------------------------------------------------------------------------------

def start_exporter(tmp: str, name: str, sim_url: str, tokens: dict[str, Any], env: dict[str, str],
                   **extra: Any) -> tuple[subprocess.Popen[bytes], int]:
    port = base.free_port()
    path = Path(tmp, f"{name}.yaml")
    path.write_text(json.dumps({"refresh_interval": "1h", "max_age": "1d", "scrape_timeout": "5m",
                                "http_timeout": "60s", "accounts": [account(
                                    sim_url, tokens, api_budget_per_hour=10_000_000, **extra)]}))
    path.chmod(0o600)
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--config.file", str(path),
                             "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn"], env=env, cwd=ROOT)
    base.wait_port(port, proc)
    return proc, port


def ready(port: int, collections: tuple[str, ...]) -> bytes:
    """The first body in which every named collection of the account is up."""
    while True:
        status, _, body = base.fetch(port)
        ups = dict(re.findall(rb'isolarcloud_collection_up\{account="' + ACCOUNT.encode() +
                              rb'",collection="(\w+)"\} (\S+)', body))
        if status == 200 and all(ups.get(c.encode()) == b"1.0" for c in collections):
            return body
        time.sleep(0.2)


def scrapes(sim_url: str, tokens: dict[str, Any], env: dict[str, str], tmp: str, rounds: int,
            log: Any) -> dict[str, Any]:
    procs = []
    try:
        before, before_port = start_exporter(tmp, "before", sim_url, tokens, env, faults={"enabled": False},
                                             details={"enabled": False})
        procs.append(before)
        after, after_port = start_exporter(tmp, "after", sim_url, tokens, env)
        procs.append(after)
        servers = {"before": (before_port, before.pid, ("plants", "realtime")),
                   "after": (after_port, after.pid, ("plants", "faults", "realtime", "details"))}
        out: dict[str, Any] = {}
        for name, (port, _pid, collections) in servers.items():
            t0 = time.perf_counter()
            ready(port, collections)
            _, _, plain = base.fetch(port)
            _, _, gz = base.fetch(port, gzip=True)
            out[f"{name}/bytes"] = (len(plain), len(gz))
            out[f"{name}/lines"] = plain.count(b"\n")
            log(f"  {name}: ready after {time.perf_counter() - t0:.1f}s, {len(plain) / 1e6:.1f} MB plain, "
                f"{len(gz) / 1e6:.2f} MB gzip")
        series = {(n, g): base.Series() for n in servers for g in (False, True)}
        for r in range(rounds):
            order = list(servers.items()) if r % 2 == 0 else list(reversed(servers.items()))  # no drift bias
            for name, (port, pid, _c) in order:
                for gz in (False, True):
                    base.sequential(port, pid, gz, 0.8, 5, 400, series[(name, gz)])
            log(f"  round {r + 1}/{rounds}: plain p50 before {series[('before', False)].p(50) * 1e3:.2f} ms, after "
                f"{series[('after', False)].p(50) * 1e3:.2f} ms; gzip {series[('before', True)].p(50) * 1e3:.2f} / "
                f"{series[('after', True)].p(50) * 1e3:.2f} ms")
        for (name, gz), s in series.items():
            mode = "gzip" if gz else "plain"
            out[f"{name}/{mode}"] = {"p50": s.p(50), "p99": s.p(99), "n": len(s.latencies),
                                     "cpu": s.cpu / s.requests if s.requests else math.nan}
        return out
    finally:
        for proc in reversed(procs):
            base.stop(proc)


# -- the table ----------------------------------------------------------------------------------------------------

def table(args: argparse.Namespace, calls: dict[str, Any] | None, scraped: dict[str, Any], speed: float) -> str:
    ms = base.ms
    rows = [("machine speed: CPU of a fixed Python loop (2M multiply-adds)", ms(speed))]
    if calls is not None:
        rows += call_rows(args, calls)
    rows += [
        ("bytes per scrape, plain / gzip: before", "{} / {}".format(*map(base.size, scraped["before/bytes"]))),
        ("… after", "{} / {}".format(*map(base.size, scraped["after/bytes"]))),
    ]
    for mode in ("plain", "gzip"):
        b, a = scraped[f"before/{mode}"], scraped[f"after/{mode}"]
        rows.append((f"scrape p50 / p99, {mode}, sequential: before", f"{ms(b['p50'])} / {ms(b['p99'])} (n={b['n']})"))
        rows.append(("… after", f"{ms(a['p50'])} / {ms(a['p99'])} (n={a['n']})"))
        rows.append(("… after ÷ before (p50)", f"{a['p50'] / b['p50']:.3f}x"))
        i = 0 if mode == "plain" else 1
        grow = scraped["after/bytes"][i] / scraped["before/bytes"][i]
        rows.append(("… bytes after ÷ before; p50 per byte after ÷ before",
                     f"{grow:.3f}x; {a['p50'] / b['p50'] / grow:.3f}x"))
    lines = [f"| figure | {args.plants:,} plants in the simulator, {args.open_faults} open faults |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)


def call_rows(args: argparse.Namespace, calls: dict[str, Any]) -> list[tuple[str, str]]:
    ms = base.ms
    faults_share, faults_interval = calls["shares"]["faults"]
    details_share, details_interval = calls["shares"]["details"]
    per_hour = calls["details_per_hour"][1:] or calls["details_per_hour"]
    return [
        ("plants listed / open records of listed plants / exported series",
         f"{calls['plants']:,} / {calls['open_faults']} / {calls['fault_series']}"),
        ("calls per faults pass (page 100): expected ⌈open records / 100⌉", f"{calls['fault_pass_calls']} (expected "
         f"{math.ceil(args.open_faults / 100)}), {calls['fault_passes']} passes in {args.hours} h"),
        ("faults: share of the budget / effective interval", f"{faults_share:.1f} calls/h / {faults_interval:.0f} s"),
        ("details calls in the simulated day: expected ⌈plants / 20⌉",
         f"{calls['details_total']} (expected {math.ceil(calls['plants'] / 20)})"),
        ("details calls per hour after the first: min / mean / max",
         f"{min(per_hour)} / {sum(per_hour) / len(per_hour):.1f} / {max(per_hour)}"),
        ("details calls in any one 5-minute cycle, at most", str(calls["details_max_cycle"])),
        ("plants with details after the simulated day", f"{calls['plants_with_details']:,}"),
        ("details: share of the budget / effective interval",
         f"{details_share:.1f} calls/h / {details_interval / 3600:.1f} h"),
        ("all calls per simulated hour: min / max (budget 1000)",
         f"{min(calls['calls_per_hour'])} / {max(calls['calls_per_hour'])}"),
        ("render the cached section (text, refresh thread): before / after", f"{ms(calls['render']['before'])} / "
         f"{ms(calls['render']['after'])}"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plants", type=int, default=10_000)
    parser.add_argument("--open-faults", type=int, default=300)
    parser.add_argument("--hours", type=int, default=24, help="simulated hours of part 1 (0: scrapes only)")
    parser.add_argument("--rounds", type=int, default=5, help="scrape rounds of part 2")
    parser.add_argument("--json", help="also write the raw figures to this file")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    speed = base.calibrate()
    with tempfile.TemporaryDirectory(prefix="isolarcloud-bench-faults-") as tmp:
        sim, sim_url, tokens = start_simulator(tmp, args.plants, args.open_faults, env)
        try:
            log(f"simulator with {args.plants} plants and {args.open_faults} open faults at {sim_url}")
            calls = None
            if args.hours > 0:
                log(f"1. calls over {args.hours} simulated hours")
                calls = simulate(sim_url, tokens, args.hours, log)
            log("2. scrapes before / after")
            scraped = scrapes(sim_url, tokens, env, tmp, args.rounds, log)
        finally:
            base.stop(sim)
    if args.json:
        Path(args.json).write_text(json.dumps({"calls": calls, "scrapes": scraped, "speed": speed}, indent=1,
                                              default=str))
    print(table(args, calls, scraped, speed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
