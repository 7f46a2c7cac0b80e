"""Functional guards of the fast /metrics path (no timings; bench/run.py measures): the plant section is rendered
once per snapshot and replaced when the snapshot changes, what it renders parses back to exactly the values
served (golden files in test_golden.py pin the bytes), gzip is one stream of exactly the plain body, the memoised
status section is never stale, and concurrent scrapes never cost an API call more than ceil(plants/page) +
ceil(plants/batch)."""

from __future__ import annotations

import gzip
import math
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_format
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as om_format
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.data import AccountState
from exporter.fetch.parse import parse_timestamp
from exporter.serve import exposition as exposition_module
from exporter.serve.exposition import SECTIONS, Exposition, account_data, plant_families
from exporter.serve.metrics import StatusCollector
from exporter.simulator import Simulator
from tests.conftest import Calls, Clock, Running, oauth_account

OPENMETRICS_ACCEPT = "application/openmetrics-text; version=1.0.0; charset=utf-8"
LIST, REALTIME = "queryPowerStationList", "getPowerStationRealTimeData"
AWKWARD = ('Dach "Süd"', "C:\\PV\\roof\\", "Line1\nLine2", "trailing newline\n", "\\", '"', "\\n literally",
           'Zoë\'s "Villa" \\ Süd', "Müllers Scheune ☀️", "🌞🔋 Sunny", "阳光电源 – 屋顶 #1", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
           '{label="x"}', "tab\there", "# comment", "", "  padded  ", "Русская станция")
EXTRA_POINTS = ["83019", "83016", "83012"]  # names and units with spaces, slashes, carets, a degree sign


@pytest.fixture
def awkward_sim() -> Iterator[Simulator]:
    """A fleet whose names, locations and zones need every escape the formats have."""
    s = Simulator(plants=60, seed=7).start()
    for plant, name in zip(s.plants, AWKWARD, strict=False):
        s.set_plant(plant.ps_id, ps_name=name, ps_location=f'{name} "loc"\\\n')
    yield s
    s.stop()


def _start(run_exporter: Callable[..., Running], sim: Simulator, **account: Any) -> Running:
    account.setdefault("realtime", {"enabled": True, "extra_points": EXTRA_POINTS})
    r = run_exporter({"accounts": [oauth_account(sim, None, **account)]}, start=False)
    r.refresh_now()
    assert r.exporter.engines[0].state().plants is not None
    return r


def _plants_section(states: list[AccountState], openmetrics: bool) -> bytes:
    """The cached section (plant families, then the other SECTIONS), built with the plant renderer imported
    here: Calls counts the module's, i.e. the exposition's own renders only."""
    rest = "".join(chunk for section in SECTIONS[1:] for chunk in section(states, openmetrics))
    return ("".join(plant_families(account_data(states), openmetrics)) + rest).encode()


def _body(exposition: Exposition, states: list[AccountState], *, openmetrics: bool, gzip: bool) -> bytes:
    return b"".join(exposition.render_parts(states, openmetrics=openmetrics, gzip=gzip))


def _families(text: str, openmetrics: bool) -> dict[str, tuple[str, str, set[tuple[str, frozenset[Any], float]]]]:
    parse = parse_openmetrics if openmetrics else parse_text
    return {f.name: (f.type, f.documentation, {(s.name, frozenset(s.labels.items()), s.value) for s in f.samples})
            for f in parse(text)}


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_plant_section_parses_back_to_what_was_served(awkward_sim: Simulator, run_exporter: Callable[..., Running],
                                                      openmetrics: bool) -> None:
    r = _start(run_exporter, awkward_sim)
    states = r.exporter.states()
    end = "# EOF\n" if openmetrics else ""
    got = _families(_plants_section(states, openmetrics).decode() + end, openmetrics)
    # Every name went through the escapes and came back unchanged, as the simulator served it.
    served = {str(p.ps_id): p["ps_name"] for p in awkward_sim.plants}
    info = "isolarcloud_plant" if openmetrics else "isolarcloud_plant_info"
    for _name, labels, _value in got[info][2]:
        label = dict(labels)
        assert label["ps_name"] == served[label["ps_id"]].replace("\r", " ")
    names = {dict(labels).get("ps_name") for _, _, samples in got.values() for _, labels, _ in samples}
    assert {"Line1\nLine2", 'Dach "Süd"', "C:\\PV\\roof\\", "🌞🔋 Sunny", "\\n literally"} <= names
    assert any(s for family, (_, _, s) in got.items() if family == "isolarcloud_plant_point_value")
    # And the served body carries exactly those plant samples.
    headers = {"Accept": OPENMETRICS_ACCEPT} if openmetrics else {}
    body = _families(r.scrape(headers=headers), openmetrics)
    assert {name: body[name] for name in got} == got


def test_same_snapshot_rendered_once_and_replaced_when_it_changes(sim: Simulator,
                                                                   run_exporter: Callable[..., Running],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    first = sim.plants[0].ps_id
    sim.set_plant(first, ps_name="Before-Rename-1")
    r = _start(run_exporter, sim)
    exposition = Calls(monkeypatch, exposition_module, "plant_families")
    assert exposition.count == 0
    for _ in range(4):
        assert 'ps_name="Before-Rename-1"' in r.scrape()
        assert 'ps_name="Before-Rename-1"' in r.scrape(headers={"Accept-Encoding": "gzip"})
    threads = [threading.Thread(target=r.scrape) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert exposition.count == 1  # one snapshot, one format: one render, whatever the scrapes and encodings
    for _ in range(3):
        r.scrape(headers={"Accept": OPENMETRICS_ACCEPT})
    r.scrape()
    assert exposition.count == 2  # the OpenMetrics section is its own render, both stay cached

    sim.set_plant(first, ps_name="After-Rename-2")
    r.refresh_now()
    # The refresh thread rendered the new snapshot in both formats scrapes had asked for: no scrape waits.
    assert exposition.count == 4
    for headers in ({}, {"Accept-Encoding": "gzip"}, {"Accept": OPENMETRICS_ACCEPT}):
        body = r.scrape(headers=headers)
        assert 'ps_name="After-Rename-2"' in body
        assert "Before-Rename-1" not in body
    assert exposition.count == 4  # the new snapshot in each format, once


def _raw(r: Running, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    response = r.get(headers=headers, stream=True)
    assert response.status_code == 200
    body = response.raw.read(decode_content=False)
    assert int(response.headers["Content-Length"]) == len(body)
    return body, dict(response.headers)


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_gzip_is_one_stream_of_exactly_the_plain_body(awkward_sim: Simulator, run_exporter: Callable[..., Running],
                                                      openmetrics: bool) -> None:
    r = _start(run_exporter, awkward_sim)
    # No process_* (they would differ between two scrapes), and a clock held still (so would the sun's minute).
    r.exporter.exposition = Exposition(runtime_collectors=[], clock=Clock())
    accept = {"Accept": OPENMETRICS_ACCEPT} if openmetrics else {}
    for _ in range(2):  # the second round reuses the cached deflate stream
        for _ in range(3):
            plain, headers = _raw(r, {**accept, "Accept-Encoding": "identity"})  # requests asks for gzip
            assert "Content-Encoding" not in headers
            zipped, headers = _raw(r, {**accept, "Accept-Encoding": "gzip"})
            assert headers["Content-Encoding"] == "gzip"
            inflater = zlib.decompressobj(31)
            assert inflater.decompress(zipped) == plain
            assert inflater.eof and inflater.unused_data == b""  # one gzip member, nothing after it
            assert gzip.decompress(zipped) == plain
            assert plain.endswith(b"# EOF\n") == openmetrics
        r.refresh_now()
    states = r.exporter.states()
    exposition = r.exporter.exposition
    plain = _body(exposition, states, openmetrics=openmetrics, gzip=False)
    assert zlib.decompress(_body(exposition, states, openmetrics=openmetrics, gzip=True), 31) == plain


@pytest.mark.parametrize("series", [0, 5, 400], ids=["tiny", "small", "large"])
def test_gzip_tail_of_any_size_completes_the_stream(sim: Simulator, run_exporter: Callable[..., Running],
                                                    series: int) -> None:
    """The status section closes the cached deflate stream in stored blocks, or deflated when large (many
    accounts); either way the body is one gzip member of exactly the plain bytes."""
    r = _start(run_exporter, sim, realtime={"enabled": False})
    family = GaugeMetricFamily("bench_series", "Many series.", labels=["n"])
    for n in range(series):
        family.add_metric([f"series number {n} ✓"], n / 7)
    exposition = Exposition(runtime_collectors=[_Fixed([family])], clock=Clock())  # one sun minute throughout
    states = r.exporter.states()
    for openmetrics in (False, True, False):
        plain = _body(exposition, states, openmetrics=openmetrics, gzip=False)
        zipped = _body(exposition, states, openmetrics=openmetrics, gzip=True)
        inflater = zlib.decompressobj(31)
        assert inflater.decompress(zipped) == plain
        assert inflater.eof and inflater.unused_data == b""
    if series == 400:
        assert len(plain) - len(_plants_section(states, False)) > 16 * 1024


class _Ticking:
    """A runtime collector whose values change on every collect, including a sign-only change of zero."""

    def __init__(self) -> None:
        self.n = 0

    @staticmethod
    def families(n: int) -> list[Metric]:
        ticks = CounterMetricFamily("bench_ticks", "Ticks with an \"awkward\" \\ help.\nSecond line.", labels=["k"])
        ticks.add_metric(['a\\b\n"q"'], float(n))
        zero = GaugeMetricFamily("bench_zero", "Zero, signed.")
        zero.add_metric([], -0.0 if n % 2 else 0.0)
        fixed = GaugeMetricFamily("bench_fixed", "Never changes.", labels=["x"])
        fixed.add_metric(["y"], 42.0)
        nan = GaugeMetricFamily("bench_nan", "Not a number.")
        nan.add_metric([], math.nan)
        return [ticks, zero, fixed, nan]

    def collect(self) -> Iterator[Metric]:
        self.n += 1
        yield from self.families(self.n)


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def test_status_section_is_prometheus_clients_and_never_stale(sim: Simulator,
                                                              run_exporter: Callable[..., Running],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    r = _start(run_exporter, sim, realtime={"enabled": False})
    ticking = _Ticking()
    exposition = Exposition(runtime_collectors=[ticking], clock=Clock())  # the reference's sun: the same minute
    renders = Calls(monkeypatch, exposition_module, "plant_families")
    for round_ in range(8):
        if round_ == 4:
            r.refresh_now()  # the account's status changes: refreshes_total, API request counters, ...
        openmetrics = round_ % 4 >= 2
        states = r.exporter.states()
        body = _body(exposition, states, openmetrics=openmetrics, gzip=False)
        plants = _plants_section(states, openmetrics)
        reference = CollectorRegistry()
        reference.register(StatusCollector(lambda states=states: states))
        reference.register(_Fixed(_Ticking.families(ticking.n)))
        render = om_format.generate_latest if openmetrics else text_format.generate_latest
        sun = "".join(exposition_module.sun_family(exposition_module.sun_rows(states), exposition.clock() // 60 * 60
                                                   + 30, openmetrics)).encode()
        assert body == plants + sun + render(reference)
    assert renders.count == 4  # two snapshots, two formats


def test_api_calls_per_refresh_are_exact_under_concurrent_scrapes(make_sim: Callable[..., Simulator],
                                                                   run_exporter: Callable[..., Running]) -> None:
    sim = make_sim(plants=237, seed=5)
    page, batch = 40, 30
    clock = Clock()
    r = run_exporter({"refresh_interval": 60, "accounts": [oauth_account(
        sim, None, page_size=page, realtime={"enabled": True, "batch_size": batch})]}, clock=clock, start=False)

    def scrape_concurrently() -> None:
        barrier = threading.Barrier(16)
        statuses: list[int] = []

        def one() -> None:
            barrier.wait(timeout=10)
            statuses.append(r.get(headers={"Accept-Encoding": "gzip"} if len(statuses) % 2 else {}).status_code)

        threads = [threading.Thread(target=one) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [200] * 16

    def calls() -> tuple[int, int]:
        return sim.count(LIST), sim.count(REALTIME)

    scrape_concurrently()
    r.wait_refreshed(1)
    plant_list = r.exporter.engines[0].state().plants
    assert plant_list is not None
    plants = len(plant_list.plants)
    assert 0 < plants <= 237
    once = (math.ceil(plants / page), math.ceil(plants / batch))
    assert calls() == once

    scrape_concurrently()  # not due yet: no call at all
    assert calls() == once

    clock.advance(61)
    scrape_concurrently()
    r.wait_refreshed(2)
    scrape_concurrently()
    assert calls() == (2 * once[0], 2 * once[1])


def _strptime_timestamp(text: str, tz: timezone) -> float | None:
    """parse_timestamp as it was before its fast path: strptime for both shapes."""
    fmt = "%Y%m%d%H%M%S" if text.isdigit() else "%Y-%m-%d %H:%M:%S"
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=tz).timestamp()
    except ValueError:
        return None


@settings(max_examples=1000, deadline=None)
@given(fields=st.tuples(st.integers(0, 2200), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25),
                        st.integers(0, 61), st.integers(0, 62)),
       dashed=st.booleans(), offset=st.integers(-14 * 60, 14 * 60))
def test_fast_timestamp_parsing_agrees_with_strptime(fields: tuple[int, ...], dashed: bool, offset: int) -> None:
    """The fast path of parse_timestamp (refresh CPU) gives strptime's answer, in range or not."""
    y, mo, d, h, mi, s = fields
    text = (f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}" if dashed
            else f"{y:04d}{mo:02d}{d:02d}{h:02d}{mi:02d}{s:02d}")
    tz = timezone(timedelta(minutes=offset))
    want = _strptime_timestamp(text, tz)
    if want is not None:  # out of range falls through to the general path, which may still read it otherwise
        assert parse_timestamp(text, tz) == want
        if not dashed and y >= 1000:  # as an integer (the list's grid_connection_time); no leading zero to lose
            assert parse_timestamp(int(text), tz) == want
