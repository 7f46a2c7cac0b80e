"""Load and soak: many concurrent scrapes share one refresh, long runs keep memory flat, and a slow scraper
holds up nobody. In-process exporter on a real loopback socket; every loop is bounded in count and time."""

from __future__ import annotations

import http.client
import logging
import os
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable

import pytest

from exporter.serve import exposition as exposition_module
from exporter.simulator import Simulator
from tests.conftest import Running, login_account, oauth_account, samples, value

LIST = "queryPowerStationList"


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _get(port: int, path: str = "/metrics", timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_200_concurrent_scrapes_share_one_refresh(sim: Simulator, run_exporter: Callable[..., Running],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold exporter hit by 200 scrapes at once: one refresh (one list call), and every scrape answers."""
    renders: list[int] = []
    real = exposition_module.plant_families
    monkeypatch.setattr(exposition_module, "plant_families",
                        lambda *args, **kwargs: renders.append(1) or real(*args, **kwargs))
    # The list call takes 0.5 s, so every scrape arrives while the one refresh is running.
    sim.inject("hook", path=LIST, hook=lambda s: time.sleep(0.5))
    r = run_exporter({"scrape_timeout": 20, "accounts": [oauth_account(sim, None)]}, start=False)
    barrier = threading.Barrier(200)
    results: list[tuple[int, bytes] | BaseException] = []
    lock = threading.Lock()

    def scrape() -> None:
        barrier.wait(timeout=20)
        try:
            got: tuple[int, bytes] | BaseException = _get(r.server.port, timeout=30)
        except BaseException as exc:  # reported below with the others
            got = exc
        with lock:
            results.append(got)

    threads = [threading.Thread(target=scrape, daemon=True) for _ in range(200)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=40)
    assert time.monotonic() - started < 30
    errors = [x for x in results if isinstance(x, BaseException)]
    assert not errors, errors[:3]
    assert len(results) == 200
    plants = len(sim.plants)
    for i, (status, body) in enumerate(results):  # type: ignore[misc]
        assert status == 200
        assert b'isolarcloud_up{account="oauth"} 1.0\n' in body
        if i % 40 == 0:  # parsing is slow; a sample of the answers is parsed in full
            found = samples(body.decode())
            assert value(found, "isolarcloud_plants", account="oauth") == plants
    assert sum(r.exporter.engines[0].stats.view().refreshes.values()) == 1
    assert sim.count(LIST) == 1
    assert sim.count("refreshToken") == 1
    assert len(renders) == 1  # and the plant section was rendered once for all of them


def test_10000_sequential_scrapes_keep_memory_flat(make_sim: Callable[..., Simulator],
                                                   run_exporter: Callable[..., Running]) -> None:
    sim = make_sim(plants=5, seed=3)
    r = run_exporter({"accounts": [login_account(sim)]})
    r.wait_refreshed(1)
    conn = http.client.HTTPConnection("127.0.0.1", r.server.port, timeout=10)  # keep-alive

    def scrapes(n: int) -> None:
        for i in range(n):
            conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"} if i % 2 else {})
            response = conn.getresponse()
            response.read()
            assert response.status == 200

    started = time.monotonic()
    scrapes(1000)  # warm-up: caches, allocator arenas, the connection's thread
    rss, fds, threads = _rss(), _fds(), threading.active_count()
    scrapes(9000)
    elapsed = time.monotonic() - started
    conn.close()
    growth = _rss() - rss
    assert growth < 8 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB over 9000 scrapes"
    assert _fds() <= fds
    assert threading.active_count() <= threads
    assert sum(r.exporter.engines[0].stats.view().refreshes.values()) == 1
    assert elapsed < 60


def test_scrapes_on_new_connections_leak_no_threads_or_descriptors(
        make_sim: Callable[..., Simulator], run_exporter: Callable[..., Running]) -> None:
    sim = make_sim(plants=5, seed=3)
    r = run_exporter({"accounts": [login_account(sim)]})
    r.wait_refreshed(1)
    for _ in range(100):
        assert _get(r.server.port)[0] == 200
    fds, threads = _fds(), threading.active_count()
    for _ in range(1000):
        assert _get(r.server.port)[0] == 200
    deadline = time.monotonic() + 5
    while (threading.active_count() > threads or _fds() > fds) and time.monotonic() < deadline:
        time.sleep(0.05)  # handler threads finish just after their response is read
    assert threading.active_count() <= threads
    assert _fds() <= fds


@pytest.fixture
def big_exporter(make_sim: Callable[..., Simulator], run_exporter: Callable[..., Running]) -> Running:
    """An exporter whose /metrics is far larger than the socket buffers of a client that reads slowly."""
    sim = make_sim(plants=100, seed=4)
    r = run_exporter({"accounts": [login_account(sim)]})
    r.wait_refreshed(1)
    # Accepted sockets inherit the listener's send buffer: keep it small, so that a handler writing to a
    # client that does not read really blocks (loopback buffers would otherwise swallow the whole answer).
    r.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    assert len(r.scrape()) > 100_000
    return r


def _handlers_blocked_writing() -> int:
    """Server threads currently inside the exporter's response write."""
    count = 0
    for frame in sys._current_frames().values():
        if any(f.filename.endswith(os.path.join("exporter", "serve", "web.py")) and f.name == "_send"
               for f in traceback.extract_stack(frame)):
            count += 1
    return count


def _slow_reader(port: int, stop: threading.Event, got: list[int]) -> None:
    """Requests /metrics with a tiny receive buffer and reads it at one byte per second."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    try:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        while not stop.wait(1.0):
            data = sock.recv(1)
            if not data:
                return
            got.append(len(data))
    finally:
        sock.close()


def test_slow_scrapers_do_not_block_others(big_exporter: Running) -> None:
    port = big_exporter.server.port
    stop = threading.Event()
    got: list[int] = []
    readers = [threading.Thread(target=_slow_reader, args=(port, stop, got), daemon=True) for _ in range(5)]
    # Clients that connect and never finish their request line, or never send anything at all.
    stalled = []
    for i in range(5):
        s = socket.create_connection(("127.0.0.1", port))
        if i % 2:
            s.sendall(b"GET /metr")
        stalled.append(s)
    try:
        for t in readers:
            t.start()
        time.sleep(1.5)
        assert got, "the slow readers received nothing"
        assert _handlers_blocked_writing() == len(readers)  # their handlers are stuck on full socket buffers
        for _ in range(10):
            started = time.monotonic()
            status, body = _get(port, timeout=5)
            assert status == 200 and body.endswith(b"\n")
            assert time.monotonic() - started < 2.0
        assert _get(port, "/-/healthy", timeout=5)[0] == 200
    finally:
        stop.set()
        for s in stalled:
            s.close()
        for t in readers:
            t.join(timeout=5)


def test_a_scraper_giving_up_mid_answer_is_not_an_error(big_exporter: Running,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Prometheus closes the connection when its scrape timeout passes: the exporter must not log that as an
    error with a traceback (nor try to send a 500 down the dead connection), and serves on."""
    port = big_exporter.server.port
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(100)
            deadline = time.monotonic() + 5
            while not _handlers_blocked_writing() and time.monotonic() < deadline:
                time.sleep(0.01)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # reset: the handler's next write fails
        deadline = time.monotonic() + 5
        while _handlers_blocked_writing() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert _handlers_blocked_writing() == 0
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING], caplog.text
    assert _get(port)[0] == 200
