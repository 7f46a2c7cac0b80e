#!/usr/bin/env python3
"""Benchmark the exporter at installer scale against the simulator, with two references on the same data.

    python bench/run.py [--sizes 100,1000,10000,50000] [--quick] [--json results.json]

For every fleet size this starts, each as its own process so that CPU and memory are counted apart:

* the simulator (`python -m exporter.simulator`), OAuth2 mode, real-time data enabled;
* the exporter (`python -m exporter --config.file ...`), the thing measured;
* the straightforward reference: a custom collector of the plant families (`ReferencePlantCollector` below) +
  `StatusCollector` (+ the runtime collectors) in a prometheus_client registry served by prometheus_client's own
  `start_http_server`, fed the data of a refresh of the same simulator: `generate_latest` renders (and gzip
  compresses) on every scrape;
* the floor: the exporter's own response bytes (plain and gzip) served from memory by a minimal socket server.

Refreshes are measured in this process with a synchronous `engine.refresh(force=True)` (wall time and the thread's own
CPU; the simulator's CPU is read from /proc). Scrapes are measured by raw-socket clients here (keep-alive where
the server allows it), interleaving the three servers round by round; the table shows medians and ratios.
One markdown table is printed at the end: one column per fleet size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pickle
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGE_SIZE = 100
BATCH_SIZE = 50
CONCURRENCY = 16
ACCOUNT = "bench"
TICK = os.sysconf("SC_CLK_TCK")
TEXT_CT = "text/plain; version=0.0.4; charset=utf-8"


# -- process helpers ------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_status(pid: int, key: str) -> int:
    """A kB figure from /proc/PID/status (VmHWM = peak RSS, VmRSS = current)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"port {port} not open after {timeout}s")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- a small HTTP client: the same for every server ----------------------------------------------------------

class Client:
    """GET over one socket, keep-alive when the server allows it; the body goes into a reused buffer."""

    def __init__(self, port: int, *, gzip: bool, accept: str | None = None) -> None:
        self.port = port
        lines = ["GET /metrics HTTP/1.1", "Host: 127.0.0.1", "User-Agent: bench"]
        if accept:
            lines.append(f"Accept: {accept}")
        if gzip:
            lines.append("Accept-Encoding: gzip")
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.sock: socket.socket | None = None
        self.buf = bytearray(1 << 16)
        self.pending = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def get(self, keep: bool = False) -> tuple[int, dict[str, str], bytes | int]:
        """(status, headers, body if keep else body length)."""
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=600)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.pending = b""
        sock = self.sock
        sock.sendall(self.request)
        head = self.pending
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the response head")
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        close = headers.get("connection", "").lower() == "close" or lines[0].startswith("HTTP/1.0")
        length = int(headers["content-length"]) if "content-length" in headers else None
        if length is None:  # until the server closes
            chunks = [rest]
            while chunk := sock.recv(1 << 20):
                chunks.append(chunk)
            body = b"".join(chunks)
            self.close()
            return status, headers, body if keep else len(body)
        if len(self.buf) < length:
            self.buf = bytearray(length)
        view = memoryview(self.buf)
        got = min(len(rest), length)
        view[:got] = rest[:got]
        self.pending = rest[length:]
        while got < length:
            n = sock.recv_into(view[got:length])
            if not n:
                raise ConnectionError("connection closed mid-body")
            got += n
        if close:
            self.close()
        return status, headers, bytes(view[:length]) if keep else length


def start_simulator(tmp: str, plants: int, env: dict[str, str],
                    procs: list[subprocess.Popen[bytes]]) -> tuple[subprocess.Popen[bytes], str, dict[str, Any]]:
    """The simulator as a process of its own (appended to `procs`): it, its URL and the tokens it issued."""
    port = free_port()
    tokens_file = Path(tmp, "tokens.json")
    sim = subprocess.Popen([sys.executable, "-m", "exporter.simulator", "--listen-address", f"127.0.0.1:{port}",
                            "--plants", str(plants), "--tokens-file", str(tokens_file)],
                           stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    procs.append(sim)
    wait_port(port, sim)
    while not tokens_file.exists() or not tokens_file.stat().st_size:
        time.sleep(0.01)
    time.sleep(0.05)
    return sim, f"http://127.0.0.1:{port}", json.loads(tokens_file.read_text())


def start_exporter(tmp: str, config: dict[str, Any], env: dict[str, str],
                   procs: list[subprocess.Popen[bytes]]) -> tuple[subprocess.Popen[bytes], int, float]:
    """The exporter as a process of its own on `config` (appended to `procs`), once its port answers: it, its
    port, and the perf_counter() of its start."""
    port = free_port()
    config_path = Path(tmp, "config.yaml")
    config_path.write_text(json.dumps(config))  # JSON is YAML
    config_path.chmod(0o600)
    started = time.perf_counter()
    exporter = subprocess.Popen([sys.executable, "-m", "exporter", "--config.file", str(config_path),
                                 "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn"],
                                env=env, cwd=ROOT)
    procs.append(exporter)
    wait_port(port, exporter)
    return exporter, port, started


def fetch(port: int, *, gzip: bool = False, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    client = Client(port, gzip=gzip, accept=accept)
    try:
        status, headers, body = client.get(keep=True)
    finally:
        client.close()
    assert isinstance(body, bytes)
    return status, headers, body


# -- servers under test ---------------------------------------------------------------------------------------

def serve_floor(port: int, plain_path: str, gzip_path: str) -> None:
    """The physical floor: fixed response bytes, prebuilt once, one sendall per request."""
    responses = {}
    for gzip, path in ((False, plain_path), (True, gzip_path)):
        body = Path(path).read_bytes()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {TEXT_CT}\r\nContent-Length: {len(body)}\r\n"
        if gzip:
            head += "Content-Encoding: gzip\r\n"
        responses[gzip] = (head + "\r\n").encode() + body
    server = socket.create_server(("127.0.0.1", port), backlog=128)

    def handle(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                conn.sendall(responses[b"gzip" in head.lower()])

    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


class ReferencePlantCollector:
    """The plant families as prometheus_client metric families, built on every collect: how an exporter would
    usually be written (one custom collector), the reference the cached exposition is measured against."""

    def __init__(self, states: Callable[[], list[Any]]) -> None:
        self.states = states

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        from exporter.serve.metrics import PLANT_FAMILIES, PLANT_LABELS, POINT_VALUE, POINT_VALUE_HELP

        accounts = [(s.name, s.plants, s.production) for s in self.states() if s.plants is not None]
        kinds = {"info": InfoMetricFamily, "counter": CounterMetricFamily, "gauge": GaugeMetricFamily}
        for family in PLANT_FAMILIES:
            metric = kinds[family.kind](family.name, family.help, labels=PLANT_LABELS)
            for name, plant_list, production in accounts:
                values = production.values if production is not None else {}
                for plant in plant_list.plants:
                    value = family.value(plant, values.get(plant.ps_id, {}))
                    if value is None:
                        continue
                    labels = [name, plant.ps_id, plant.ps_name, plant.ps_type]
                    if family.kind == "info" and family.extra is not None:
                        metric.add_metric(labels, dict(family.extra(plant)))
                    else:
                        metric.add_metric(labels, value)
            yield metric
        points = GaugeMetricFamily(POINT_VALUE, POINT_VALUE_HELP,
                                   labels=(*PLANT_LABELS, "point_id", "point_name", "unit"))
        for name, plant_list, production in accounts:
            if production is None:
                continue
            for plant in plant_list.plants:
                for point_id, value in production.extra.get(plant.ps_id, {}).items():
                    point_name, unit = production.point_names.get(point_id, ("", ""))
                    points.add_metric([name, plant.ps_id, plant.ps_name, plant.ps_type, point_id, point_name, unit],
                                      value)
        yield points


def serve_reference(port: int, state_path: str,
                    extra: Sequence[Callable[[Callable[[], list[Any]]], Any]] = ()) -> None:
    """The straightforward way: collectors in a registry, prometheus_client renders on every scrape. `extra`: more
    collector classes over the same state (bench/devices.py adds the device families)."""
    from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
    from prometheus_client.exposition import start_http_server

    from exporter.serve.metrics import StatusCollector

    with open(state_path, "rb") as fh:
        state = pickle.load(fh)
    registry = CollectorRegistry()
    for collector in (ReferencePlantCollector, *extra):
        registry.register(collector(lambda: [state]))
    registry.register(StatusCollector(lambda: [state]))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    start_http_server(port, "127.0.0.1", registry)
    threading.Event().wait()


# -- measurements ---------------------------------------------------------------------------------------------

def calibrate() -> float:
    """CPU seconds of a fixed pure-Python loop: how fast this (shared, noisy) machine runs Python right now."""
    runs = []
    for _ in range(3):
        cpu0, total = time.process_time(), 0
        for i in range(2_000_000):
            total += i * i
        runs.append(time.process_time() - cpu0)
    return statistics.median(runs)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass
class Series:
    """Latencies and CPU of one server in one mode, gathered over all rounds."""

    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0
    requests: int = 0
    skipped: str = ""

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


def sequential(port: int, pid: int, gzip: bool, budget: float, minimum: int, maximum: int, series: Series,
               warm: bool = True) -> None:
    client = Client(port, gzip=gzip)
    try:
        if warm:
            client.get()  # warm the connection (and, for keep-alive servers, the handler thread)
        cpu0, start = proc_cpu(pid), time.perf_counter()
        count = 0
        while count < minimum or (count < maximum and time.perf_counter() - start < budget):
            t0 = time.perf_counter()
            status, _, _ = client.get()
            series.latencies.append(time.perf_counter() - t0)
            assert status == 200, status
            count += 1
        series.cpu += proc_cpu(pid) - cpu0
        series.requests += count
    finally:
        client.close()


def sequential_round(servers: dict[str, tuple[int, int]], series: dict[tuple[str, bool, bool], Series],
                     r: int, budget: float, quick: bool, reference_spent: float) -> float:
    """Round `r` of sequential scrapes, interleaving the servers, plain and gzip; returns the time spent on the
    reference. The reference renders for seconds per scrape at large fleets: at least one sample each, then more
    only while its time budget (20 s quick, 40 s full, over all rounds) lasts."""
    reference_budget = 20.0 if quick else 40.0
    spent = 0.0
    for name, (port, pid) in servers.items():
        for gz_mode in (False, True):
            slow = name == "reference"
            target = series[(name, gz_mode, False)]
            if slow and r > 0 and reference_spent + spent + 2 * target.p(50) > reference_budget:
                continue
            t0 = time.perf_counter()
            sequential(port, pid, gz_mode, budget, 1 if slow else 5, 3 if slow else 400, target, warm=not slow)
            if slow:
                spent += time.perf_counter() - t0
    return spent

def concurrent(port: int, pid: int, gzip: bool, per_client: int, series: Series) -> None:
    clients = [Client(port, gzip=gzip) for _ in range(CONCURRENCY)]
    barrier = threading.Barrier(CONCURRENCY + 1)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(client: Client) -> None:
        try:
            client.get()
            barrier.wait()
            for _ in range(per_client):
                t0 = time.perf_counter()
                status, _, _ = client.get()
                elapsed = time.perf_counter() - t0
                assert status == 200, status
                with lock:
                    series.latencies.append(elapsed)
        except BaseException as exc:  # reported below
            errors.append(exc)
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.abort()
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    barrier.wait()
    cpu0 = proc_cpu(pid)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    series.cpu += proc_cpu(pid) - cpu0
    series.requests += CONCURRENCY * per_client


def counters(body: bytes) -> dict[str, float]:
    """isolarcloud_api_requests_total by endpoint (all results), read from the status section only."""
    start = body.find(b"# HELP isolarcloud_api_requests")
    out: dict[str, float] = {}
    for line in body[start:].split(b"\n"):
        if line.startswith(b"isolarcloud_api_requests_total{"):
            endpoint = re.search(rb'endpoint="([^"]*)"', line).group(1).decode()  # type: ignore[union-attr]
            out[endpoint] = out.get(endpoint, 0) + float(line.rsplit(b" ", 1)[1])
    return out


def metric(body: bytes, name: str) -> float | None:
    match = re.search(rb"\n" + name.encode() + rb'\{account="' + ACCOUNT.encode() + rb'"\} (\S+)', body)
    return float(match.group(1)) if match else None


def account_config(sim_url: str, tokens: dict[str, Any], realtime: bool) -> dict[str, Any]:
    return {"name": ACCOUNT, "base_url": sim_url, "page_size": PAGE_SIZE, "api_budget_per_hour": 10_000_000,
            "auth": {"mode": "oauth2", "appkey": "DEMOAPPKEY00000000000000000000001",
                     "secret_key": "demo-secret-key", "access_token": tokens["access_token"]},
            "realtime": {"enabled": realtime, "batch_size": BATCH_SIZE},
            # The simulator on loopback is not the cloud: the benchmark measures the exporter, not the pace.
            "rate_limit": {"burst": 10_000, "per_second": 10_000},
            # The plant list and real-time data, comparable across versions: open faults and plant details are
            # measured by bench/faults.py, the device collections by bench/devices.py.
            "faults": {"enabled": False}, "details": {"enabled": False}, "devices": {"enabled": False}}


def config_data(sim_url: str, tokens: dict[str, Any], realtime: bool = True) -> dict[str, Any]:
    return {"refresh_interval": "1h", "max_age": "1d", "scrape_timeout": "5m", "http_timeout": "60s",
            "accounts": [account_config(sim_url, tokens, realtime)]}


def expected_calls(plants: int, realtime: bool) -> int:
    return math.ceil(plants / PAGE_SIZE) + (math.ceil(plants / BATCH_SIZE) if realtime else 0)


def measure_refreshes(sim_url: str, tokens: dict[str, Any], sim_pid: int, repeats: int) -> dict[str, Any]:
    """Synchronous refreshes in this process (real-time on, list only), interleaved; medians."""
    from exporter.app import build_engine
    from exporter.config import parse_config
    from exporter.serve.exposition import account_data, plant_families, sun_family, sun_rows

    configs = {rt: parse_config(config_data(sim_url, tokens, rt), env={}) for rt in (True, False)}
    engines = {rt: build_engine(config.accounts[0], config) for rt, config in configs.items()}
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(repeats):
        for rt, engine in engines.items():
            before = sum(engine.stats.view().api_requests.values())
            sim0, wall0, cpu0 = proc_cpu(sim_pid), time.perf_counter(), time.thread_time()
            engine.refresh(force=True)
            cpu, wall, sim = time.thread_time() - cpu0, time.perf_counter() - wall0, proc_cpu(sim_pid) - sim0
            state = engine.state()
            if state.last_error or state.plants is None:
                raise RuntimeError(f"refresh failed: {state.last_error}")
            plants = len(state.plants.plants)
            calls = sum(engine.stats.view().api_requests.values()) - before
            if calls != expected_calls(plants, rt):
                raise RuntimeError(f"{calls} API calls for {plants} plants, expected {expected_calls(plants, rt)}")
            runs[rt].append({"wall": wall, "cpu": cpu, "sim_cpu": sim, "calls": calls, "plants": plants})
    result: dict[str, Any] = {}
    for rt, label in ((True, "rt"), (False, "list")):
        result[label] = {k: statistics.median(r[k] for r in runs[rt]) for k in runs[rt][0]}
        result[label]["calls_all"] = sorted({int(r["calls"]) for r in runs[rt]})
    # Rendering the plant section of that data (once per refresh in the exporter): text, OpenMetrics, gzip.
    state = engines[True].state()
    accounts = account_data([state])
    renders: dict[str, list[float]] = {"text": [], "om": [], "gzip": []}
    for _ in range(max(1, min(repeats, 3))):
        cpu0 = time.thread_time()
        body = "".join(plant_families(accounts, False)).encode()
        renders["text"].append(time.thread_time() - cpu0)
        cpu0 = time.thread_time()
        "".join(plant_families(accounts, True)).encode()
        renders["om"].append(time.thread_time() - cpu0)
        cpu0 = time.thread_time()
        z = zlib.compressobj(6, zlib.DEFLATED, 31)
        z.compress(body)
        renders["gzip"].append(time.thread_time() - cpu0)
        del body
    result["render"] = {k: statistics.median(v) for k, v in renders.items()}
    # The sun's elevation family: positions once per plant list; elevations, text and deflate once a minute (the
    # scrape that starts a new minute pays it, every other scrape of the minute reuses the bytes).
    positions_cpu, minute_cpu = [], []
    for _ in range(max(1, min(repeats, 3))):
        cpu0 = time.thread_time()
        rows = sun_rows([state])
        positions_cpu.append(time.thread_time() - cpu0)
        cpu0 = time.thread_time()
        text = "".join(sun_family(rows, time.time(), False)).encode()
        z = zlib.compressobj(6, zlib.DEFLATED, -15)
        z.compress(text)
        z.flush(zlib.Z_SYNC_FLUSH)
        minute_cpu.append(time.thread_time() - cpu0)
    result["render"]["sun_positions"] = statistics.median(positions_cpu)
    result["render"]["sun_minute"] = statistics.median(minute_cpu)
    result["state"] = state
    for engine in engines.values():
        engine.close()
    return result


def bench_size(plants: int, quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs: list[subprocess.Popen[bytes]] = []
    out: dict[str, Any] = {"fleet": plants, "calibration": calibrate()}
    with tempfile.TemporaryDirectory(prefix="isolarcloud-bench-") as tmp:
        try:
            # Simulator ---------------------------------------------------------------------------------
            t0 = time.perf_counter()
            sim, sim_url, tokens = start_simulator(tmp, plants, env, procs)
            log(f"  simulator up in {time.perf_counter() - t0:.1f}s")

            # Refreshes, in this process ------------------------------------------------------------------
            repeats = (2 if plants >= 50_000 else 3) if quick else (3 if plants >= 50_000 else 5)
            refresh = measure_refreshes(sim_url, tokens, sim.pid, repeats)
            state = refresh.pop("state")
            out["refresh"] = refresh
            log(f"  refresh: {refresh['rt']['wall']:.2f}s wall, {refresh['rt']['cpu']:.2f}s CPU, "
                f"{refresh['rt']['calls']:.0f} calls; list only {refresh['list']['wall']:.2f}s")
            state_path = Path(tmp, "state.pickle")
            state_path.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
            del state

            # Exporter: start-up under 16 concurrent scrapes, exact API calls ---------------------------------
            exporter, exp_port, t0 = start_exporter(tmp, config_data(sim_url, tokens), env, procs)
            firsts: list[float] = []
            bodies: list[bytes] = []

            def first_scrape() -> None:
                while True:
                    status, _, body = fetch(exp_port)
                    if status == 200 and metric(body, "isolarcloud_up") == 1.0:
                        firsts.append(time.perf_counter() - t0)
                        bodies.append(body)
                        return
                    time.sleep(0.05)

            threads = [threading.Thread(target=first_scrape) for _ in range(CONCURRENCY)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            out["startup"] = min(firsts)
            body = bodies[0]
            bodies.clear()
            listed = int(metric(body, "isolarcloud_plants") or 0)
            calls = counters(body)
            out["listed"] = listed
            out["exporter_refresh"] = metric(body, "isolarcloud_refresh_duration_seconds")
            out["exporter_calls"] = calls
            data_calls = calls.get("queryPowerStationList", 0) + calls.get("getPowerStationRealTimeData", 0)
            out["exporter_data_calls"] = data_calls
            if data_calls != expected_calls(listed, True):
                raise RuntimeError(f"exporter made {calls} calls for {listed} plants under {CONCURRENCY} concurrent "
                                   f"scrapes; expected {expected_calls(listed, True)}")
            out["rss_after_start"] = proc_status(exporter.pid, "VmHWM")
            log(f"  exporter ready in {out['startup']:.2f}s, {data_calls:.0f} data calls for {listed} plants")

            # The exporter's bytes, for the floor -------------------------------------------------------------
            _, _, plain = fetch(exp_port)
            _, headers, gz = fetch(exp_port, gzip=True)
            assert headers.get("content-encoding") == "gzip"
            assert zlib.decompress(gz, 31).startswith(plain[:1000])
            out["bytes_plain"], out["bytes_gzip"] = len(plain), len(gz)
            Path(tmp, "plain").write_bytes(plain)
            Path(tmp, "gzip").write_bytes(gz)
            del plain, gz, body

            floor_port, ref_port = free_port(), free_port()
            floor = subprocess.Popen([py, __file__, "_floor", str(floor_port), str(Path(tmp, "plain")),
                                      str(Path(tmp, "gzip"))], env=env, cwd=ROOT)
            procs.append(floor)
            reference = subprocess.Popen([py, __file__, "_reference", str(ref_port), str(state_path)],
                                         env=env, cwd=ROOT)
            procs.append(reference)
            wait_port(floor_port, floor)
            wait_port(ref_port, reference)
            servers = {"exporter": (exp_port, exporter.pid), "reference": (ref_port, reference.pid),
                       "floor": (floor_port, floor.pid)}
            _, _, ref_body = fetch(ref_port)
            out["bytes_reference"] = len(ref_body)
            del ref_body

            # Scrapes: rounds interleave the servers; the reference gets fewer requests (it is slow) ---------
            rounds = 3 if quick else 5
            budget = 0.3 if quick else 0.8
            series = {(s, g, c): Series() for s in servers for g in (False, True) for c in (False, True)}
            reference_spent = 0.0
            for r in range(rounds):
                reference_spent += sequential_round(servers, series, r, budget, quick, reference_spent)
                log(f"  round {r + 1}/{rounds}: sequential p50 plain exporter "
                    f"{series[('exporter', False, False)].p(50) * 1e3:.2f} ms, reference "
                    f"{series[('reference', False, False)].p(50) * 1e3:.1f} ms, floor "
                    f"{series[('floor', False, False)].p(50) * 1e3:.2f} ms")
            for r in range(rounds):
                for name, (port, pid) in servers.items():
                    for gz_mode in (False, True):
                        target = series[(name, gz_mode, True)]
                        if name == "reference":
                            # 16 renders at once take 16x a sequential one: only where that stays short.
                            cost = series[(name, gz_mode, False)].p(50) * CONCURRENCY
                            if cost > (4 if quick else 15) or (r > 0 and cost > 2):
                                target.skipped = target.skipped or f"skipped: {CONCURRENCY} x {cost / 16:.1f}s"
                                continue
                            per = 1
                        else:
                            seq = series[(name, gz_mode, False)].p(50)
                            per = max(1, min(20, int(budget / max(seq * CONCURRENCY, 1e-4))))
                        concurrent(port, pid, gz_mode, per, target)
            out["scrape"] = {f"{s}/{'gzip' if g else 'plain'}/{'conc' if c else 'seq'}": {
                "p50": v.p(50), "p99": v.p(99), "n": len(v.latencies),
                "cpu_per_scrape": v.cpu / v.requests if v.requests else math.nan, "skipped": v.skipped}
                for (s, g, c), v in series.items()}
            out["rss_peak"] = proc_status(exporter.pid, "VmHWM")
            out["rss_reference_peak"] = proc_status(reference.pid, "VmHWM")
            # Nothing after start-up may have caused more API calls (refresh interval 1h).
            _, _, tail = fetch(exp_port)
            if counters(tail) != calls:
                raise RuntimeError(f"API calls changed during the scrapes: {calls} -> {counters(tail)}")
            del tail
            if exporter.poll() is not None:
                raise RuntimeError("the exporter died")
        finally:
            for proc in reversed(procs):
                stop(proc)
    return out


# -- the table ------------------------------------------------------------------------------------------------

def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "–"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.3g} ms" if seconds >= 0.001 else f"{seconds * 1e3:.2f} ms"


def ticks(seconds: float) -> str:
    """A CPU figure from /proc, counted in clock ticks."""
    return f"< {1000 / TICK:.0f} ms" if seconds == 0 else ms(seconds)


def size(n: float) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def table(results: list[dict[str, Any]]) -> str:
    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> str:
        return f"| {label} | " + " | ".join(cell(r) for r in results) + " |"

    def sc(r: dict[str, Any], key: str) -> dict[str, Any]:
        return r["scrape"][key]

    def lat(key: str) -> Callable[[dict[str, Any]], str]:
        def cell(r: dict[str, Any]) -> str:
            s = sc(r, key)
            if s["skipped"]:
                return s["skipped"]
            return f"{ms(s['p50'])} / {ms(s['p99'])}" + (f" (n={s['n']})" if s["n"] < 10 else "")
        return cell

    def ratio(num: str, den: str) -> Callable[[dict[str, Any]], str]:
        def cell(r: dict[str, Any]) -> str:
            a, b = sc(r, num), sc(r, den)
            if a["skipped"] or b["skipped"]:
                return "–"
            return f"{a['p50'] / b['p50']:.2f}x"
        return cell

    def cpu(key: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: ticks(sc(r, key)["cpu_per_scrape"]) if not sc(r, key)["skipped"] else "–"

    lines = [
        "| figure | " + " | ".join(f"{r['fleet']:,} plants" for r in results) + " |",
        "|---|" + "---:|" * len(results),
        row("machine speed: CPU of a fixed Python loop (2M multiply-adds) before this size",
            lambda r: ms(r["calibration"])),
        row("plants listed (valid_flag 1,3)", lambda r: f"{r['listed']:,}"),
        row("API calls per refresh: list pages + real-time batches",
            lambda r: f"{r['refresh']['rt']['calls']:.0f} = {math.ceil(r['listed'] / PAGE_SIZE)} + "
                      f"{math.ceil(r['listed'] / BATCH_SIZE)}"),
        row(f"API calls of the exporter process, start-up under {CONCURRENCY} concurrent scrapes",
            lambda r: f"{r['exporter_data_calls']:.0f}"),
        row("refresh wall time", lambda r: ms(r["refresh"]["rt"]["wall"])),
        row("… as the exporter process reported its first refresh", lambda r: ms(r["exporter_refresh"] or math.nan)),
        row("refresh CPU (refresh thread)", lambda r: ms(r["refresh"]["rt"]["cpu"])),
        row("simulator CPU during the refresh (10 ms ticks)", lambda r: ticks(r["refresh"]["rt"]["sim_cpu"])),
        row("list only: calls / wall / CPU", lambda r: f"{r['refresh']['list']['calls']:.0f} / "
            f"{ms(r['refresh']['list']['wall'])} / {ms(r['refresh']['list']['cpu'])}"),
        row("render plant section once per snapshot: text / OpenMetrics / gzip CPU",
            lambda r: " / ".join(ms(r["refresh"]["render"][k]) for k in ("text", "om", "gzip"))),
        row("sun elevation family: positions once per plant list / elevations, text and deflate once a minute (CPU)",
            lambda r: f"{ms(r['refresh']['render']['sun_positions'])} / {ms(r['refresh']['render']['sun_minute'])}"),
        row("start-up to first /metrics with data", lambda r: ms(r["startup"])),
        row("bytes per scrape: plain / gzip", lambda r: f"{size(r['bytes_plain'])} / {size(r['bytes_gzip'])}"),
    ]
    for gz in ("plain", "gzip"):
        for mode, title in (("seq", "sequential"), ("conc", f"{CONCURRENCY} concurrent")):
            lines.append(row(f"scrape p50 / p99, {gz}, {title}: **exporter**", lat(f"exporter/{gz}/{mode}")))
            lines.append(row("… straightforward (generate_latest per scrape)", lat(f"reference/{gz}/{mode}")))
            lines.append(row("… floor (same bytes from memory)", lat(f"floor/{gz}/{mode}")))
            lines.append(row("… exporter ÷ floor (p50)", ratio(f"exporter/{gz}/{mode}", f"floor/{gz}/{mode}")))
            lines.append(row("… straightforward ÷ exporter (p50)",
                             ratio(f"reference/{gz}/{mode}", f"exporter/{gz}/{mode}")))
    for gz in ("plain", "gzip"):
        lines.append(row(f"CPU per scrape, {gz}: exporter / straightforward / floor",
                         lambda r, gz=gz: " / ".join(cpu(f"{s}/{gz}/seq")(r)
                                                     for s in ("exporter", "reference", "floor"))))
    lines.append(row("peak RSS of the exporter (after start-up / after all scrapes)",
                     lambda r: f"{size(r['rss_after_start'])} / {size(r['rss_peak'])}"))
    lines.append(row("peak RSS of the straightforward server", lambda r: size(r["rss_reference_peak"])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_floor":
        serve_floor(int(argv[1]), argv[2], argv[3])
        return 0
    if argv and argv[0] == "_reference":
        serve_reference(int(argv[1]), argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000,50000", help="comma-separated fleet sizes")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and shorter rounds")
    parser.add_argument("--json", help="also write the raw figures to this file")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log(f"nproc {os.cpu_count()}, Python {sys.version.split()[0]}, sizes {sizes}{' (quick)' if args.quick else ''}")
    started = time.perf_counter()
    results = []
    for n in sizes:
        log(f"{n} plants")
        t0 = time.perf_counter()
        results.append(bench_size(n, args.quick, log))
        log(f"  done in {time.perf_counter() - t0:.0f}s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(table(results))
    log(f"total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
