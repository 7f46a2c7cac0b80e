#!/usr/bin/env python3
"""Benchmark `isolarcloud-exporter backfill`: calls against the arithmetic, CPU per 10,000 samples, peak memory.

    python bench/backfill.py [--plants 10,100,1000] [--days 1] [--resolution 15m] [--quick]

Each case runs the real backfill (`exporter.backfill.cli.backfill`, writing a real OpenMetrics file through its
spools) in a fresh process against an in-memory cloud: a gateway whose answers are built as JSON text straight
from the request (each plant answers every point of every interval with a deterministic value), then decoded
and judged like an answer from the wire. The process reports:

* the calls made per endpoint, next to `fetch.history.minute_calls` / `daily_calls` and the plant list's
  ⌈plants / 100⌉: they must be equal;
* CPU (user + system, this process) of the run, less the CPU the fake cloud spent building its answers (timed
  apart with the thread's CPU clock), per 10,000 samples written;
* peak RSS (`ru_maxrss`) of the process, which must stay flat as the fleet grows: spools stream to disk and a
  call's answer is the largest thing held;
* for `:tsdb` cases (`--tsdb-dir`), the CPU of the promtool runs (this process's children) and the samples
  counted in the blocks' meta.json.

One markdown table is printed at the end, a row per case.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NOW = datetime(2024, 6, 30, 12, 0).timestamp()


def case(plants: int, days: int, resolution: str, workdir: Path, tsdb: bool = False) -> dict[str, Any]:
    """One backfill in this process; returns its figures."""
    from exporter.backfill.cli import backfill, backfill_parser
    from exporter.fetch.envelope import decode, endpoint_name
    from exporter.fetch.history import daily_calls, minute_calls
    from exporter.fetch.transport import Gateway

    fake_cpu = [0.0]
    calls: dict[str, int] = {}
    rows = [{"ps_id": 3_000_000 + i, "ps_name": f"Plant {i}", "ps_type": 4, "ps_current_time_zone": "GMT+8",
             "valid_flag": 1} for i in range(plants)]

    def minute(body: dict[str, Any]) -> str:
        start = datetime.strptime(body["start_time_stamp"], "%Y%m%d%H%M%S")
        end = datetime.strptime(body["end_time_stamp"], "%Y%m%d%H%M%S")
        step = timedelta(minutes=int(body["minute_interval"]))
        points = body["points"].split(",")
        stamps = []
        midnight = datetime.combine(start.date(), datetime.min.time())
        t = midnight + -((midnight - start) // step) * step  # the first grid stamp at or after start
        while t <= end:
            stamps.append(t.strftime("%Y%m%d%H%M%S"))
            t += step
        parts = []
        for ps in body["ps_id_list"]:
            base = int(ps) % 1000
            parts.append(f'"{ps}":[' + ",".join(
                '{"time_stamp":"' + s + '",' + ",".join(f'"{p}":"{base + n * 1.5 + k}"' for k, p in enumerate(points))
                + "}" for n, s in enumerate(stamps)) + "]")
        return '{"result_code":"1","result_msg":"success","result_data":{' + ",".join(parts) + "}}"

    def daily(body: dict[str, Any]) -> str:
        first = datetime.strptime(body["start_time"], "%Y%m%d")
        last = datetime.strptime(body["end_time"], "%Y%m%d")
        days_ = [(first + timedelta(days=d)).strftime("%Y%m%d") for d in range((last - first).days + 1)]
        parts = []
        for ps in body["ps_id_list"]:
            parts.append(f'"{ps}":{{' + ",".join(
                f'"{p}":[' + ",".join(f'{{"2":"{n * 1000.5}","time_stamp":"{d}"}}' for n, d in enumerate(days_)) + "]"
                for p in body["data_point"].split(",")) + "}")
        return '{"result_code":"1","result_msg":"success","result_data":{' + ",".join(parts) + "}}"

    class Cloud(Gateway):
        def __init__(self, record: Any) -> None:
            self.record = record

        def post_document(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
            endpoint = endpoint_name(path)
            calls[endpoint] = calls.get(endpoint, 0) + 1
            started = time.thread_time()
            if endpoint == "queryPowerStationList":
                page, size = int(body["page"]), int(body["size"])
                text = json.dumps({"result_code": "1", "result_data": {
                    "pageList": rows[(page - 1) * size:page * size], "rowCount": len(rows)}})
            elif endpoint == "getPowerStationPointMinuteDataList":
                text = minute(body)
            else:
                text = daily(body)
            raw = text.encode()
            fake_cpu[0] += time.thread_time() - started
            return decode(endpoint, raw)  # the client's own work: decoding the answer

    config = workdir / "config.yaml"
    config.write_text("accounts:\n  - name: bench\n    base_url: http://127.0.0.1:9\n    auth: {mode: oauth2, "
                      "appkey: A, secret_key: S, access_token: T}\n")
    config.chmod(0o600)
    last = datetime.fromtimestamp(NOW).date() - timedelta(days=2)
    first = last - timedelta(days=days - 1)
    args = backfill_parser().parse_args([
        "--config.file", str(config), "--from", first.isoformat(), "--to", last.isoformat(), "--resolution",
        resolution, *(["--tsdb-dir", str(workdir / "blocks")] if tsdb else ["--output", str(workdir / "out.om")]),
        "--budget-per-hour", "100000000", "--log.level", "warn"])
    cpu0 = os.times()
    wall0 = time.monotonic()
    code = backfill(args, clock=lambda: NOW, sleep=lambda s: None, gateway=Cloud)
    wall = time.monotonic() - wall0
    cpu1 = os.times()
    assert code == 0, code
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    promtool_cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    if tsdb:
        metas = [json.loads(m.read_text()) for m in (workdir / "blocks").glob("*/meta.json")]
        samples = sum(m["stats"]["numSamples"] for m in metas)
        size = sum(f.stat().st_size for f in (workdir / "blocks").rglob("*") if f.is_file())
    else:
        size = (workdir / "out.om").stat().st_size
        with open(workdir / "out.om", "rb") as handle:
            samples = sum(1 for line in handle if not line.startswith(b"#"))
    history = "getPowerStationPointDayMonthYearDataList" if resolution == "1d" else \
        "getPowerStationPointMinuteDataList"
    expected = daily_calls(plants, days) if resolution == "1d" else minute_calls(plants, days)
    return {"plants": plants, "days": days, "resolution": resolution, "history_calls": calls.get(history, 0),
            "expected_calls": expected, "list_calls": calls.get("queryPowerStationList", 0),
            "expected_list_calls": max(1, -(-plants // 100)), "samples": samples, "bytes": size,
            "cpu": cpu, "fake_cpu": fake_cpu[0], "wall": wall, "tsdb": tsdb, "promtool_cpu": promtool_cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plants", default="10,100,1000")
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--resolution", default="15m")
    parser.add_argument("--extra", default="100:7:15m,1000:365:1d,100:2:5m:tsdb,100:365:1d:tsdb",
                        help="more cases as plants:days:resolution[:tsdb], comma-separated")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    if args.one:
        plants, days, resolution, *mode = args.one.split(":")
        with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
            print(json.dumps(case(int(plants), int(days), resolution, Path(tmp), tsdb=mode == ["tsdb"])))
        return 0
    cases = [f"{p}:{args.days}:{args.resolution}" for p in args.plants.split(",")]
    cases += [c for c in args.extra.split(",") if c]
    results = []
    for spec in cases:
        out = subprocess.run([sys.executable, __file__, "--one", spec], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        print(json.dumps(result), file=sys.stderr)
    print("| plants | days | resolution | output | history calls (arithmetic) | list calls (arithmetic) | samples "
          "| output MB | CPU s (less fake cloud) | CPU s per 10,000 samples | promtool CPU s | wall s | peak RSS MB |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        own = r["cpu"] - r["fake_cpu"]
        print(f"| {r['plants']:,} | {r['days']} | {r['resolution']} | {'blocks' if r['tsdb'] else 'file'} "
              f"| {r['history_calls']:,} ({r['expected_calls']:,}) | {r['list_calls']} ({r['expected_list_calls']}) "
              f"| {r['samples']:,} | {r['bytes'] / 1e6:,.1f} | {own:.2f} | {own / max(r['samples'], 1) * 10_000:.3f} "
              f"| {r['promtool_cpu']:.1f} | {r['wall']:.1f} | {r['peak_rss_mb']:.0f} |")
        if r["history_calls"] != r["expected_calls"] or r["list_calls"] != r["expected_list_calls"]:
            print("CALLS DIFFER FROM THE ARITHMETIC", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
