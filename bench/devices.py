#!/usr/bin/env python3
"""Benchmark the device collections at installer scale (issue 12's numbers). Two parts:

    python bench/devices.py budget [--plants 10000] [--budget 1000] [--hours 24]
    python bench/devices.py scale  [--plants 17000 --ps-type 4,5] [--quick] [--json results.json]

* `budget`: what the exporter does when the device inventory does not fit the API budget. The exporter's engine
  and the simulator run in this process on one settable clock (the simulator answers through its request
  pipeline, without sockets, so that simulated days take minutes): refresh cycles every 5 minutes for `--hours`
  simulated hours, with the defaults (plant list and real-time data every 5 minutes, the inventory daily,
  device real-time data off). Per hour: API calls by endpoint, never above the budget; the collections'
  effective intervals and shares; plants whose devices were read; five plants added at the middle hour and
  when their devices were read; the stretch log line.
* `scale`: exposition and scrapes with devices, as bench/run.py measures them for plants. The simulator and the
  exporter each run as their own process (device inventory plus inverter real-time points), against a
  straightforward prometheus_client server of the same families and the floor (the same bytes from memory),
  once without and once with devices. Per run: API calls by endpoint (exact: the exporter's counters after
  start-up against an in-process refresh of the same fleet), start-up, render CPU of the device section, bytes,
  scrape p50/p99 plain and gzip, sequential and 16 concurrent, CPU per scrape, peak RSS.

One markdown table per part is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as base  # bench/run.py: process, client and scrape helpers

ROOT = base.ROOT
HOUR = 3600.0
DEVICE_ENDPOINTS = ("getDeviceListByPsId", "getDeviceRealTimeData")
PLANT_ENDPOINTS = ("queryPowerStationList", "getPowerStationRealTimeData")


# -- part 1: the budget, simulated days in-process --------------------------------------------------------------

class SimClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def in_process_gateway(sim: Any) -> Callable[[Callable[[str, str], None]], Any]:
    """A transport that hands each request to the simulator's request pipeline (no sockets)."""
    from exporter.fetch.transport import Gateway
    from exporter.simulator.envelope import Request

    class InProcess(Gateway):
        def __init__(self, record: Callable[[str, str], None]) -> None:
            self.record = record

        def post_document(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
            reply = sim.handle(Request(path, dict(headers), json.loads(json.dumps(body)), sim.clock()))
            return json.loads(json.dumps(reply.payload))  # what the wire would carry

    return InProcess


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[tuple[float, str]] = []
        self.clock: SimClock | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "carries one pass" in message or "back at its wanted" in message or "would be exceeded" in message:
            self.messages.append((self.clock.now if self.clock else 0.0, message))


def budget_run(plants: int, budget: int, hours: int, log: Callable[[str], None]) -> dict[str, Any]:
    from exporter.app import build_engine
    from exporter.config import parse_config
    from exporter.simulator import Simulator

    clock = SimClock(1_790_000_000 - 1_790_000_000 % 3600 + 60)  # a minute into an hour
    sim = Simulator(plants=plants, seed=1, clock=clock)
    tokens = sim.issue_tokens()
    config = parse_config({"refresh_interval": "5m", "accounts": [{
        "name": "bench", "base_url": "http://in-process", "api_budget_per_hour": budget,
        "auth": {"mode": "oauth2", "appkey": sim.appkey, "secret_key": sim.secret_key,
                 "refresh_token": tokens["refresh_token"]}}]}, env={})
    engine = build_engine(config.accounts[0], config, clock, gateway=in_process_gateway(sim))
    lines = Lines()
    lines.clock = clock
    logging.getLogger("exporter").addHandler(lines)
    logging.getLogger("exporter").setLevel(logging.INFO)
    start = clock.now
    rows: list[dict[str, Any]] = []
    added: dict[str, float] = {}
    read_at: dict[str, float] = {}
    last = Counter[str]()
    withheld = 0
    listed = 0
    wall0 = time.perf_counter()
    try:
        for hour in range(hours):
            if hour == hours // 2:
                for ps_id in sim.add_plants(5):
                    added[str(ps_id)] = clock.now
            hour_start = clock.now
            while clock.now < hour_start + HOUR:
                engine.refresh()
                current = engine.state()
                if not current.up or current.production is None:
                    withheld += 1  # the plant list or real-time data withheld as stale: must never happen
                inventory = next(c for c in engine.collections if c.name == "devices")
                for ps_id in added:
                    if ps_id in inventory.inventory and ps_id not in read_at:
                        read_at[ps_id] = clock.now
                clock.now += 300
            sim.reset_calls()  # the simulator records every call; keep its memory flat
            requests = Counter[str]()
            for (endpoint, _result), n in engine.stats.view().api_requests.items():
                requests[endpoint] += n
            spent = requests - last
            last = requests
            state = engine.state()
            inventory = next(c for c in engine.collections if c.name == "devices")
            collections = {c.name: c for c in state.collections}
            listed = len(state.plants.plants) if state.plants else listed
            rows.append({"hour": hour + 1, "calls": dict(spent), "total": sum(spent.values()),
                         "plants_read": len(inventory.inventory), "listed": listed,
                         "intervals": {n: c.interval for n, c in collections.items()},
                         "shares": {n: c.calls_per_hour for n, c in collections.items()}})
            log(f"  hour {hour + 1}: {sum(spent.values())} calls {dict(spent)}; devices of "
                f"{len(inventory.inventory)} plants read; {time.perf_counter() - wall0:.0f}s")
    finally:
        logging.getLogger("exporter").removeHandler(lines)
        engine.close()
    pages = sum(inventory.read_calls.values())
    return {"plants": plants, "budget": budget, "hours": hours, "rows": rows,
            "devices": sum(len(e.devices) for e in inventory.inventory.values()),
            "pages_read": pages, "plants_read": len(inventory.inventory),
            "pass_calls": inventory.calls_per_pass(rows[-1]["listed"]),
            "added_after": {k: read_at.get(k, math.inf) - v for k, v in added.items()}, "withheld": withheld,
            "log": [(round((t - start) / 60), m) for t, m in lines.messages], "wall": time.perf_counter() - wall0}


def budget_table(result: dict[str, Any]) -> str:
    rows = result["rows"]
    steady = rows[1:] or rows
    endpoints = sorted({e for r in rows for e in r["calls"]})
    lines = [f"{result['plants']:,} plants (simulator seed 1), budget {result['budget']:,} calls/h, "
             f"{result['hours']} simulated hours, 5-minute cycles:", "",
             "| figure | value |", "|---|---:|",
             f"| calls per hour, highest / mean (budget {result['budget']:,}) | "
             f"{max(r['total'] for r in rows):,} / {statistics.mean(r['total'] for r in steady):,.0f} |"]
    for endpoint in endpoints:
        values = [r["calls"].get(endpoint, 0) for r in steady]
        lines.append(f"| … `{endpoint}` per hour, mean (min-max) | {statistics.mean(values):,.1f} "
                     f"({min(values):,}-{max(values):,}) |")
    last = rows[-1]
    for name in sorted(last["intervals"]):
        lines.append(f"| `{name}`: effective interval / share of the budget | "
                     f"{fmt_interval(last['intervals'][name])} / {last['shares'][name]:,.1f} calls/h |")
    rate = (rows[-1]["plants_read"] - rows[0]["plants_read"]) / max(1, len(rows) - 1)
    lines += [
        f"| plants whose devices were read after 1 h / {result['hours']} h (of {last['listed']:,}) | "
        f"{rows[0]['plants_read']:,} / {rows[-1]['plants_read']:,} |",
        f"| devices in those plants; device-list calls they cost per read | {result['devices']:,}; "
        f"{result['pages_read']:,} |",
        f"| one inventory pass over the fleet (calls, as forecast) | {result['pass_calls']:,} |",
        f"| inventory pace, plants per hour (projected whole pass) | {rate:,.1f} "
        f"({fmt_interval(last['listed'] / rate * HOUR) if rate else '–'}) |",
        "| 5 plants added at hour {}: their devices read after | {} |".format(
            result["hours"] // 2 + 1, ", ".join(fmt_interval(v) for v in result["added_after"].values())),
        f"| cycles in which the plant list or real-time data was withheld as stale | {result['withheld']} |",
        f"| simulation wall time | {result['wall']:.0f} s |",
        "", "Log lines about the budget (minute of the run: message):", ""]
    lines += [f"* {minute}: `{message}`" for minute, message in result["log"]] or ["* (none)"]
    return "\n".join(lines)


def fmt_interval(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "never"
    if seconds >= 86400:
        return f"{seconds / 86400:.3g} d ({seconds / HOUR:.0f} h)"
    if seconds >= HOUR:
        return f"{seconds / HOUR:.3g} h"
    return f"{seconds / 60:.3g} min"


# -- part 2: exposition and scrapes with devices ----------------------------------------------------------------

DEVICES = {"inventory_interval": "3650d",  # the first pass reads every plant; no further read while measuring
           "realtime": {"enabled": True, "device_types": ["inverter"], "points": [1, 2, 24]}}


def config_data(sim_url: str, tokens: dict[str, Any], devices: bool, ps_type: str | None) -> dict[str, Any]:
    data = base.config_data(sim_url, tokens)
    data["accounts"][0]["devices"] = DEVICES if devices else {"enabled": False}
    if ps_type:
        data["accounts"][0]["ps_type"] = ps_type
    return data


def picklable(state: Any) -> Any:
    """The state with plain dicts for the read-only mappings, for the straightforward server's process."""
    from dataclasses import replace

    inventory, readings = state.devices, state.device_readings
    if inventory is not None:
        inventory = replace(inventory, plants=dict(inventory.plants), failed=dict(inventory.failed))
    if readings is not None:
        readings = replace(readings, devices=dict(readings.devices), point_names=dict(readings.point_names))
    return replace(state, devices=inventory, device_readings=readings)


class ReferenceDeviceCollector:
    """The device families as prometheus_client metric families, built on every collect (the straightforward
    way, beside bench/run.py's ReferencePlantCollector)."""

    def __init__(self, states: Callable[[], list[Any]]) -> None:
        self.states = states

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        from exporter.data import NAMED_DEVICE_POINTS, device_fault_status
        from exporter.serve import metrics as m

        labels = list(m.DEVICE_LABELS)
        info = InfoMetricFamily(m.DEVICE_INFO.name, m.DEVICE_INFO.help, labels=labels)
        fault = GaugeMetricFamily(m.DEVICE_FAULT_STATUS.name, m.DEVICE_FAULT_STATUS.help, labels=labels)
        deployed = GaugeMetricFamily(m.DEVICE_DEPLOYMENT_STATUS.name, m.DEVICE_DEPLOYMENT_STATUS.help, labels=labels)
        taken = GaugeMetricFamily(m.DEVICE_INVENTORY_TIMESTAMP.name, m.DEVICE_INVENTORY_TIMESTAMP.help,
                                  labels=["account", "ps_id", "ps_name"])
        failed = GaugeMetricFamily(m.DEVICE_INVENTORY_FAILED.name, m.DEVICE_INVENTORY_FAILED.help, labels=["account"])
        kinds = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}
        quantities = [(kinds[f.kind](f.name, f.help, labels=labels), q) for f, q in m.DEVICE_QUANTITY_FAMILIES]
        data_ts = GaugeMetricFamily(m.DEVICE_DATA_TIMESTAMP.name, m.DEVICE_DATA_TIMESTAMP.help, labels=labels)
        points = GaugeMetricFamily(m.DEVICE_POINT_VALUE.name, m.DEVICE_POINT_VALUE.help,
                                   labels=[*labels, "point_id", "point_name", "unit"])
        rt_failed = GaugeMetricFamily(m.DEVICE_REALTIME_FAILED.name, m.DEVICE_REALTIME_FAILED.help, labels=["account"])
        for state in self.states():
            inventory, readings = state.devices, state.device_readings
            if state.plants is None or inventory is None:
                continue
            failed.add_metric([state.name], len(inventory.failed))
            if readings is not None:
                rt_failed.add_metric([state.name], len(readings.failed))
            for plant in state.plants.plants:
                entry = inventory.plants.get(plant.ps_id)
                if entry is None:
                    continue
                taken.add_metric([state.name, plant.ps_id, plant.ps_name], entry.taken_at)
                for d in entry.devices:
                    values = [state.name, plant.ps_id, plant.ps_name, d.ps_key, d.device_name, d.device_type]
                    extra = {"device_sn": d.device_sn, "device_model": d.model, "factory_name": d.factory_name,
                             "communication_dev_sn": d.communication_dev_sn,
                             "claim_state": "" if d.claim_state is None else str(d.claim_state)}
                    info.add_metric(values, {**extra, **dict(d.firmware or ())})
                    reading = readings.devices.get(d.ps_key) if readings is not None else None
                    status = device_fault_status(d, entry.taken_at, reading, readings.taken_at if readings else 0,
                                                 None, 0.0)
                    if status is not None:
                        fault.add_metric(values, status)
                    if d.deployment_status is not None:
                        deployed.add_metric(values, d.deployment_status)
                    if reading is None:
                        continue
                    for family, q in quantities:
                        value = reading.points.get(q.point_id)
                        if q.device_type == d.device_type_code and value is not None:
                            family.add_metric(values, value * q.scale)
                    if reading.data_ts is not None:
                        data_ts.add_metric(values, reading.data_ts)
                    for point_id, value in reading.points.items():
                        if (d.device_type_code, point_id) not in NAMED_DEVICE_POINTS:
                            name, unit = readings.point_names.get((d.device_type_code or 0, point_id), ("", ""))
                            points.add_metric([*values, point_id, name, unit], value)
        yield from (info, fault, deployed, taken, failed, *(f for f, _q in quantities), data_ts, points, rt_failed)


def serve_reference(port: int, state_path: str) -> None:
    base.serve_reference(port, state_path, extra=(ReferenceDeviceCollector,))


def calls_by_endpoint(api_requests: dict[tuple[str, str], int]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for (endpoint, _result), n in api_requests.items():
        out[endpoint] += n
    return dict(out)


def in_process_refresh(sim_url: str, tokens: dict[str, Any], devices: bool, ps_type: str | None,
                       sim_pid: int) -> dict[str, Any]:
    """One full refresh in this process (the first: every plant's device list), its calls, CPU and renders."""
    from exporter.app import build_engine
    from exporter.config import parse_config
    from exporter.serve.exposition import account_data, device_families, plant_families

    config = parse_config(config_data(sim_url, tokens, devices, ps_type), env={})
    engine = build_engine(config.accounts[0], config)
    sim0, wall0, cpu0 = base.proc_cpu(sim_pid), time.perf_counter(), time.thread_time()
    engine.refresh(force=True)
    out: dict[str, Any] = {"wall": time.perf_counter() - wall0, "cpu": time.thread_time() - cpu0,
                           "sim_cpu": base.proc_cpu(sim_pid) - sim0}
    state = engine.state()
    if state.last_error or state.plants is None:
        raise RuntimeError(f"refresh failed: {state.last_error}")
    out["calls"] = calls_by_endpoint(engine.stats.view().api_requests)
    out["listed"] = len(state.plants.plants)
    out["devices"] = sum(len(e.devices) for e in state.devices.plants.values()) if state.devices else 0
    out["read"] = len(state.device_readings.devices) if state.device_readings else 0
    renders: dict[str, list[float]] = {"plants text": [], "devices text": [], "devices om": [], "gzip": []}
    for _ in range(3):
        cpu0 = time.thread_time()
        plants_body = "".join(plant_families(account_data([state]), False)).encode()
        renders["plants text"].append(time.thread_time() - cpu0)
        cpu0 = time.thread_time()
        devices_body = "".join(device_families([state], False)).encode()
        renders["devices text"].append(time.thread_time() - cpu0)
        cpu0 = time.thread_time()
        "".join(device_families([state], True)).encode()
        renders["devices om"].append(time.thread_time() - cpu0)
        cpu0 = time.thread_time()
        z = zlib.compressobj(6, zlib.DEFLATED, 31)
        z.compress(plants_body + devices_body)
        renders["gzip"].append(time.thread_time() - cpu0)
        out["device_bytes"] = len(devices_body)
        del plants_body, devices_body
    out["render"] = {k: statistics.median(v) for k, v in renders.items()}
    out["state"] = state
    engine.close()
    return out


def wait_ready(port: int, devices: bool, timeout: float = 900) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, body = base.fetch(port)
        if status == 200 and base.metric(body, "isolarcloud_up") == 1.0 and (not devices or (
                b'isolarcloud_collection_up{account="bench",collection="devices"} 1.0' in body
                and b'isolarcloud_collection_up{account="bench",collection="device_realtime"} 1.0' in body)):
            return body
        time.sleep(0.1)
    raise RuntimeError("the exporter did not become ready")


def scale_run(plants: int, devices: bool, ps_type: str | None, quick: bool,
              log: Callable[[str], None]) -> dict[str, Any]:
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs: list[subprocess.Popen[bytes]] = []
    out: dict[str, Any] = {"plants": plants, "devices_on": devices, "ps_type": ps_type,
                           "calibration": base.calibrate()}
    with tempfile.TemporaryDirectory(prefix="isolarcloud-bench-devices-") as tmp:
        try:
            sim, sim_url, tokens = base.start_simulator(tmp, plants, env, procs)

            refresh = in_process_refresh(sim_url, tokens, devices, ps_type, sim.pid)
            state = refresh.pop("state")
            out["refresh"] = refresh
            log(f"  in-process refresh: {refresh['wall']:.1f}s wall, {refresh['cpu']:.1f}s CPU, calls "
                f"{refresh['calls']}, {refresh['devices']} devices, {refresh['read']} read in real time")
            state_path = Path(tmp, "state.pickle")
            state_path.write_bytes(pickle.dumps(picklable(state), protocol=pickle.HIGHEST_PROTOCOL))
            del state

            exporter, exp_port, t0 = base.start_exporter(tmp, config_data(sim_url, tokens, devices, ps_type), env,
                                                         procs)
            body = wait_ready(exp_port, devices)
            out["startup"] = time.perf_counter() - t0
            calls = base.counters(body)
            out["exporter_calls"] = calls
            expected = {e: n for e, n in refresh["calls"].items() if e != "refreshToken"}
            got = {e: int(n) for e, n in calls.items() if e != "refreshToken"}
            if got != expected:
                raise RuntimeError(f"exporter calls {got} differ from the in-process refresh's {expected}")
            out["rss_after_start"] = base.proc_status(exporter.pid, "VmHWM")
            log(f"  exporter ready in {out['startup']:.1f}s with the same calls")

            _, _, plain = base.fetch(exp_port)
            _, headers, gz = base.fetch(exp_port, gzip=True)
            assert headers.get("content-encoding") == "gzip"
            out["bytes_plain"], out["bytes_gzip"] = len(plain), len(gz)
            out["device_series"] = plain.count(b"\nisolarcloud_device_")
            Path(tmp, "plain").write_bytes(plain)
            Path(tmp, "gzip").write_bytes(gz)
            del plain, gz, body

            floor_port, ref_port = base.free_port(), base.free_port()
            floor = subprocess.Popen([py, str(Path(base.__file__)), "_floor", str(floor_port),
                                      str(Path(tmp, "plain")), str(Path(tmp, "gzip"))], env=env, cwd=ROOT)
            procs.append(floor)
            reference = subprocess.Popen([py, __file__, "_reference", str(ref_port), str(state_path)],
                                         env=env, cwd=ROOT)
            procs.append(reference)
            base.wait_port(floor_port, floor)
            base.wait_port(ref_port, reference)
            servers = {"exporter": (exp_port, exporter.pid), "reference": (ref_port, reference.pid),
                       "floor": (floor_port, floor.pid)}
            rounds, budget = (3, 0.3) if quick else (5, 0.8)
            series = {(s, g, c): base.Series() for s in servers for g in (False, True) for c in (False, True)}
            reference_spent = 0.0
            for r in range(rounds):
                reference_spent += base.sequential_round(servers, series, r, budget, quick, reference_spent)
            for _r in range(rounds):
                for name, (port, pid) in servers.items():
                    if name == "reference":
                        continue  # seconds per render: 16 at once would only measure the GIL
                    for gz_mode in (False, True):
                        seq = series[(name, gz_mode, False)].p(50)
                        per = max(1, min(20, int(budget / max(seq * base.CONCURRENCY, 1e-4))))
                        base.concurrent(port, pid, gz_mode, per, series[(name, gz_mode, True)])
            out["scrape"] = {f"{s}/{'gzip' if g else 'plain'}/{'conc' if c else 'seq'}": {
                "p50": v.p(50), "p99": v.p(99), "n": len(v.latencies),
                "cpu_per_scrape": v.cpu / v.requests if v.requests else math.nan}
                for (s, g, c), v in series.items()}
            out["rss_peak"] = base.proc_status(exporter.pid, "VmHWM")
            out["rss_reference_peak"] = base.proc_status(reference.pid, "VmHWM")
            _, _, tail = base.fetch(exp_port)
            if base.counters(tail) != calls:
                raise RuntimeError(f"API calls changed during the scrapes: {calls} -> {base.counters(tail)}")
        finally:
            for proc in reversed(procs):
                base.stop(proc)
    return out


def scale_table(results: list[dict[str, Any]]) -> str:
    def cell(r: dict[str, Any], key: str) -> str:
        s = r["scrape"].get(key)
        return "–" if not s or not s["n"] else f"{base.ms(s['p50'])} / {base.ms(s['p99'])}" + (
            f" (n={s['n']})" if s["n"] < 10 else "")

    def ratio(r: dict[str, Any], num: str, den: str) -> str:
        a, b = r["scrape"].get(num), r["scrape"].get(den)
        return "–" if not a or not b or not a["n"] or not b["n"] else f"{a['p50'] / b['p50']:.2f}x"

    head = [f"{r['refresh']['listed']:,} plants listed, devices {'on' if r['devices_on'] else 'off'}"
            for r in results]
    lines = ["| figure | " + " | ".join(head) + " |", "|---|" + "---:|" * len(results)]

    def row(label: str, f: Callable[[dict[str, Any]], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(f(r) for r in results) + " |")

    row("machine speed (CPU of bench/run.py's fixed loop)", lambda r: base.ms(r["calibration"]))
    row("plants listed / devices in their lists / inverters read in real time",
        lambda r: f"{r['refresh']['listed']:,} / {r['refresh']['devices']:,} / {r['refresh']['read']:,}")
    row("API calls of the first refresh: list + real-time; device lists + device real-time",
        lambda r: f"{sum(r['refresh']['calls'].get(e, 0) for e in PLANT_ENDPOINTS):,}; "
                  f"{r['refresh']['calls'].get('getDeviceListByPsId', 0):,} + "
                  f"{r['refresh']['calls'].get('getDeviceRealTimeData', 0):,}")
    row("first refresh wall / CPU (refresh thread) / simulator CPU",
        lambda r: f"{base.ms(r['refresh']['wall'])} / {base.ms(r['refresh']['cpu'])} / "
                  f"{base.ticks(r['refresh']['sim_cpu'])}")
    row("render once per snapshot, CPU: plant section text; device section text / OpenMetrics; gzip of both",
        lambda r: f"{base.ms(r['refresh']['render']['plants text'])}; "
                  f"{base.ms(r['refresh']['render']['devices text'])} / "
                  f"{base.ms(r['refresh']['render']['devices om'])}; {base.ms(r['refresh']['render']['gzip'])}")
    row("start-up of the exporter process to a /metrics with every collection up", lambda r: base.ms(r["startup"]))
    row("device sample lines; bytes per scrape plain / gzip",
        lambda r: f"{r['device_series']:,}; {base.size(r['bytes_plain'])} / {base.size(r['bytes_gzip'])}")
    for gz in ("plain", "gzip"):
        row(f"scrape p50 / p99, {gz}, sequential: **exporter**", lambda r, gz=gz: cell(r, f"exporter/{gz}/seq"))
        row("… straightforward (generate_latest per scrape)", lambda r, gz=gz: cell(r, f"reference/{gz}/seq"))
        row("… floor (same bytes from memory)", lambda r, gz=gz: cell(r, f"floor/{gz}/seq"))
        row("… exporter ÷ floor (p50)", lambda r, gz=gz: ratio(r, f"exporter/{gz}/seq", f"floor/{gz}/seq"))
        row("… straightforward ÷ exporter (p50)",
            lambda r, gz=gz: ratio(r, f"reference/{gz}/seq", f"exporter/{gz}/seq"))
        row(f"scrape p50 / p99, {gz}, 16 concurrent: exporter / floor",
            lambda r, gz=gz: f"{cell(r, f'exporter/{gz}/conc')} ÷ {cell(r, f'floor/{gz}/conc')} = "
                             f"{ratio(r, f'exporter/{gz}/conc', f'floor/{gz}/conc')}")
    row("CPU per scrape plain / gzip: exporter",
        lambda r: " / ".join(base.ticks(r["scrape"][f"exporter/{g}/seq"]["cpu_per_scrape"]) for g in ("plain", "gzip")))
    row("peak RSS of the exporter (after start-up / after all scrapes)",
        lambda r: f"{base.size(r['rss_after_start'])} / {base.size(r['rss_peak'])}")
    row("peak RSS of the straightforward server", lambda r: base.size(r["rss_reference_peak"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_reference":
        serve_reference(int(argv[1]), argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=("budget", "scale"))
    parser.add_argument("--plants", type=int, default=10_000)
    parser.add_argument("--budget", type=int, default=1000, help="budget part: api_budget_per_hour")
    parser.add_argument("--hours", type=int, default=24, help="budget part: simulated hours")
    parser.add_argument("--quick", action="store_true", help="scale part: fewer rounds")
    parser.add_argument("--ps-type", help="scale part: the account's ps_type filter, e.g. 4,5 for residential "
                        "plants (about 3.3 devices each in the simulator; its utility plants have hundreds)")
    parser.add_argument("--json", help="also write the raw figures to this file")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    if args.part == "budget":
        result = budget_run(args.plants, args.budget, args.hours, log)
        results: Any = result
        print(budget_table(result))
    else:
        results = []
        for devices in (False, True):
            log(f"{args.plants} plants, devices {'on' if devices else 'off'}")
            results.append(scale_run(args.plants, devices, args.ps_type, args.quick, log))
        print(scale_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    log(f"total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
