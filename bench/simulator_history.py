#!/usr/bin/env python3
"""How fast the simulator answers the history endpoints, over HTTP, as a backfill would call them.

    python bench/simulator_history.py [--plants 100] [--calls 200] [--interval 5]

Minute data: calls of 3 hours x 50 plants x the 13 exported points, walking back through past days (every
call a new window, as a backfill walks). Daily data: 100 days x 50 plants (data_type 2), of the daily energy
and lifetime counters, and of all 13 points. Prints calls per second and CPU per call (the simulator runs in
this process: the CPU figure counts client and server, as in the end-to-end tests).
"""

from __future__ import annotations

import argparse
import calendar
import json
import sys
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporter.simulator import Simulator, api_history
from exporter.simulator.envelope import Request

POINTS = "p83033,p83022,p83024,p83106,p83118,p83124,p83549,p83072,p83075,p83102,p83105,p83252,p83326"
DAILY_POINTS = "p83022,p83024,p83118,p83124,p83072,p83075,p83102,p83105"
NOW = float(calendar.timegm((2025, 6, 20, 12, 0, 0)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plants", type=int, default=100)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--interval", type=int, default=5, help="minute_interval")
    args = ap.parse_args()
    with Simulator(plants=args.plants, seed=1, clock=lambda: NOW) as sim:
        token = sim.issue_tokens()["access_token"]
        http = requests.Session()

        def call(name: str, body: dict[str, Any]) -> dict[str, Any]:
            r = http.post(f"{sim.url}/openapi/platform/{name}", json={"appkey": sim.appkey, **body},
                          headers={"x-access-key": sim.secret_key, "Authorization": f"Bearer {token}"}, timeout=60)
            data = r.json()
            assert data["result_code"] == "1", data
            return data

        batches = [[str(p.ps_id) for p in sim.plants[i:i + 50]] for i in range(0, len(sim.plants), 50)]
        for ids in batches:  # the first query of a plant anchors its lifetime counters: not what is measured
            call("getPowerStationRealTimeData", {"ps_id_list": ids, "point_id_list": ["83024"]})
        windows = [NOW - 86400 - 10800 * (k + 1) for k in range(args.calls)]
        started, cpu, rows, size = time.perf_counter(), time.process_time(), 0, 0
        for k, start in enumerate(windows):
            data = call("getPowerStationPointMinuteDataList", {
                "ps_id_list": batches[k % len(batches)], "points": POINTS, "minute_interval": args.interval,
                "start_time_stamp": time.strftime("%Y%m%d%H%M%S", time.gmtime(start)),
                "end_time_stamp": time.strftime("%Y%m%d%H%M%S", time.gmtime(start + 10800))})
            rows += sum(len(v) for key, v in data["result_data"].items() if key != "illegal_ps_id_list")
            size += len(str(data))
        wall, used = time.perf_counter() - started, time.process_time() - cpu
        print(f"minute data, 3 h x 50 plants x 13 points every {args.interval} min: {args.calls} calls in "
              f"{wall:.1f} s = {args.calls / wall:.1f} calls/s ({used / args.calls * 1000:.1f} ms CPU per call, "
              f"client included; {rows / args.calls:.0f} rows, ~{size / args.calls / 1024:.0f} KiB per answer)")
        # The same calls without HTTP and the client's JSON parsing: what the simulator itself spends.
        cpu = time.process_time()
        for k, start in enumerate(windows):
            body = {"ps_id_list": batches[k % len(batches)], "points": POINTS, "minute_interval": args.interval,
                    "start_time_stamp": time.strftime("%Y%m%d%H%M%S", time.gmtime(start)),
                    "end_time_stamp": time.strftime("%Y%m%d%H%M%S", time.gmtime(start + 10800))}
            json.dumps(api_history.minute_data(sim, Request("", {}, body, NOW), None).payload)
        used = time.process_time() - cpu
        print(f"  the simulator's share (handler and JSON encoding, no HTTP): {used / args.calls * 1000:.1f} ms CPU "
              f"per call = {args.calls / used:.0f} calls per CPU-second")
        n = max(1, args.calls // 20)
        for label, points in (("daily totals and lifetime counters (8 points)", DAILY_POINTS),
                              ("all 13 points (powers and SOC too)", POINTS)):
            started, cpu = time.perf_counter(), time.process_time()
            for k in range(n):
                end = time.gmtime(NOW - 86400 * (1 + 100 * k))
                begin = time.gmtime(NOW - 86400 * (100 + 100 * k))
                call("getPowerStationPointDayMonthYearDataList", {
                    "ps_id_list": batches[k % len(batches)], "data_point": points, "query_type": "day",
                    "data_type": "2", "order": 0, "start_time": time.strftime("%Y%m%d", begin),
                    "end_time": time.strftime("%Y%m%d", end)})
            wall, used = time.perf_counter() - started, time.process_time() - cpu
            print(f"daily data, 100 days x 50 plants, {label}, peak: {n} calls in {wall:.1f} s = "
                  f"{n / wall:.2f} calls/s ({used / n * 1000:.0f} ms CPU per call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
