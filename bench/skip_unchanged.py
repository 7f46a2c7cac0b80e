#!/usr/bin/env python3
"""What `realtime.skip_unchanged` saves on a simulated day and night (issue 14, item 6).

    python bench/skip_unchanged.py [--plants 10000] [--hours 1] [--warmup 0.5] [--json out.json]

One simulator (`update_time_style="data"`: a plant's values and its update_time move together; PV-only loggers
sleep from sunset to sunrise, storage and wind plants upload around the clock; every plant at UTC+1) and the
exporter's own engine (`app.build_engine`, real HTTP) share one settable clock: simulated hours pass as fast as
the calls go, and the engine runs a cycle whenever one is due, as scrapes every 10 s would trigger it.

For each window (day: from 11:00 local; night: from 01:00 local), budget (the default 1000 calls/hour, and one
large enough never to stretch anything) and `skip_unchanged` off / on, after a warm-up it measures:

* API calls per hour, by collection (plant list, real-time data);
* passes per hour of each collection, and the effective intervals the engine reports;
* staleness: every simulated minute, for 500 sampled plants, how far the values Prometheus would see lag behind
  what the cloud has at that moment (the simulator's data time now minus its data time when the exporter read
  them); mean and 95th percentile, in minutes. This is the effective refresh interval a user experiences.

Nothing here is timed: every figure is a count on the simulated clock, the same on any machine.
"""

from __future__ import annotations

import argparse
import calendar
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exporter.app import build_engine  # noqa: E402
from exporter.config import parse_config  # noqa: E402
from exporter.simulator import Simulator  # noqa: E402

TICK = 10.0  # seconds of simulated time between two looks at the engine (a scrape interval)
LIST, REALTIME = "queryPowerStationList", "getPowerStationRealTimeData"
WINDOWS = {"day": (2024, 6, 15, 10, 0, 0), "night": (2024, 6, 15, 0, 0, 0)}  # UTC: 11:00 and 01:00 at UTC+1
SAMPLE = 500


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def calls(engine: Any) -> dict[str, int]:
    out = {LIST: 0, REALTIME: 0, "other": 0}
    for (endpoint, _result), n in engine.stats.view().api_requests.items():
        out[endpoint if endpoint in out else "other"] += n
    return out


def run(plants: int, window: str, budget: int, skip: bool, hours: float, warmup: float) -> dict[str, Any]:
    start = float(calendar.timegm(WINDOWS[window]))
    clock = Clock(start - warmup * 3600)
    sim = Simulator(plants=plants, seed=1, clock=clock, update_time_style="data", login_rate_limit=None).start()
    try:
        for plant in sim.plants:
            sim.set_plant(plant.ps_id, utc_offset_h=1)
        config = parse_config({"refresh_interval": 300, "accounts": [{
            "name": "bench", "base_url": sim.url, "api_budget_per_hour": budget, "valid_flag": "1,2,3",
            "realtime": {"skip_unchanged": skip},
            "auth": {"mode": "oauth2", "appkey": sim.appkey, "secret_key": sim.secret_key,
                     "refresh_token": sim.issue_tokens()["refresh_token"]}}]}, env={})
        engine = build_engine(config.accounts[0], config, clock)
        by_id = {str(p.ps_id): p for p in sim.plants}
        sample = random.Random(7).sample(sorted(by_id), min(SAMPLE, len(by_id)))
        end = start + hours * 3600
        before: dict[str, int] | None = None
        passes = {LIST: 0, REALTIME: 0}
        lags: list[float] = []
        intervals: dict[str, list[float]] = {"plants": [], "realtime": []}
        next_look = start
        while clock.now < end:
            if clock.now >= start and before is None:
                before = calls(engine)
            if engine.due_at() <= clock.now:
                was = calls(engine)
                engine.refresh()
                now = calls(engine)
                if clock.now >= start:
                    for endpoint in (LIST, REALTIME):
                        passes[endpoint] += now[endpoint] > was[endpoint]
            if clock.now >= next_look:
                next_look += 60
                state = engine.state()
                production = state.production
                for collection in state.collections:
                    if collection.name in intervals:
                        intervals[collection.name].append(collection.interval)
                for ps_id in sample:
                    plant = by_id[ps_id]
                    if production is None or ps_id not in production.values:
                        continue
                    read_at = production.fetched_at.get(ps_id, production.taken_at)
                    have = plant.data_time(clock.now, "data", sim.data_interval)
                    served = plant.data_time(read_at, "data", sim.data_interval)
                    lags.append(max(0.0, have - served) / 60.0)
            clock.now += TICK
        after = calls(engine)
        assert before is not None
        spent = {k: (after[k] - before[k]) / hours for k in after}
        lags.sort()
        return {
            "window": window, "budget": budget, "skip_unchanged": skip, "plants": plants, "hours": hours,
            "list_calls_per_hour": round(spent[LIST]), "realtime_calls_per_hour": round(spent[REALTIME]),
            "other_calls_per_hour": round(spent["other"]),
            "list_passes_per_hour": round(passes[LIST] / hours, 1),
            "realtime_passes_per_hour": round(passes[REALTIME] / hours, 1),
            "list_interval_min": round(statistics.mean(intervals["plants"]) / 60, 1),
            "realtime_interval_min": round(statistics.mean(intervals["realtime"]) / 60, 1),
            "lag_mean_min": round(statistics.mean(lags), 1) if lags else None,
            "lag_p95_min": round(lags[int(0.95 * (len(lags) - 1))], 1) if lags else None,
        }
    finally:
        sim.stop()


COLUMNS = [("window", "window"), ("budget", "budget/h"), ("skip_unchanged", "skip_unchanged"),
           ("list_calls_per_hour", "list calls/h"), ("realtime_calls_per_hour", "real-time calls/h"),
           ("list_passes_per_hour", "list passes/h"), ("realtime_passes_per_hour", "real-time passes/h"),
           ("list_interval_min", "list interval (min)"), ("realtime_interval_min", "real-time interval (min)"),
           ("lag_mean_min", "values behind the cloud, mean (min)"), ("lag_p95_min", "… p95 (min)")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plants", type=int, default=10000)
    parser.add_argument("--hours", type=float, default=1.0, help="measured simulated hours per run")
    parser.add_argument("--warmup", type=float, default=0.5, help="simulated hours before measuring")
    parser.add_argument("--budgets", default="1000,100000")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for budget in (int(b) for b in args.budgets.split(",")):
        for window in WINDOWS:
            for skip in (False, True):
                started = time.monotonic()
                row = run(args.plants, window, budget, skip, args.hours, args.warmup)
                print(f"# {window} budget {budget} skip {skip}: {time.monotonic() - started:.0f} s wall",
                      file=sys.stderr, flush=True)
                rows.append(row)
    print("| " + " | ".join(title for _key, title in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(str(row[key]).lower() if isinstance(row[key], bool) else str(row[key])
                                for key, _title in COLUMNS) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
