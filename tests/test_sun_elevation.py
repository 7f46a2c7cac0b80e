"""isolarcloud_plant_sun_elevation_degrees end to end: the exporter against the simulator on a real socket, with a
settable clock. Every listed plant gets the elevation of its coordinates (or of its zone), the family is
recomputed once a minute and not per scrape, it stays part of one gzip stream, and it goes with the plant list
when that is withheld."""

from __future__ import annotations

import statistics
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exporter.serve import exposition as exposition_module
from exporter.serve.sun import elevation, zone_hours
from exporter.simulator import Simulator
from tests.conftest import Calls, Clock, Running, login_account, samples, select

SUN = "isolarcloud_plant_sun_elevation_degrees"
START = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC


def by_plant(text: str, name: str) -> dict[str, tuple[float, dict[str, str]]]:
    return {dict(labels)["ps_id"]: (value, dict(labels)) for labels, value in select(samples(text), name).items()}


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number != 0 else None


# The sun needs the plant list and nothing else: the other collections (a device list per plant) would only cost
# the simulator's pace.
PLANTS_ONLY = {key: {"enabled": False} for key in ("faults", "details", "devices", "api_quota")}


@pytest.fixture
def fleet(make_sim: Callable[..., Simulator]) -> Simulator:
    # 60 plants: the simulator leaves some without coordinates (0 or null), and writes some zones with the sign
    # flipped, as the real cloud does.
    return make_sim(plants=60, seed=3)


def test_every_plant_gets_the_elevation_of_its_coordinates_or_its_zone(fleet: Simulator,
                                                                        run_exporter: Callable[..., Running]) -> None:
    clock = Clock(START)
    r = run_exporter({"accounts": [login_account(fleet, **PLANTS_ONLY)]}, clock=clock, start=False)
    r.refresh_now()
    text = r.scrape()
    sun = by_plant(text, SUN)
    latitudes, longitudes = by_plant(text, "isolarcloud_plant_latitude_degrees"), by_plant(
        text, "isolarcloud_plant_longitude_degrees")
    listed = {str(p.ps_id): p for p in fleet.plants if str(p.ps_id) in by_plant(text, "isolarcloud_plant_info")}
    assert listed, "the simulator listed plants"
    t = START // 60 * 60 + 30
    with_coordinates = set(latitudes) & set(longitudes)
    assert with_coordinates and set(listed) - with_coordinates, "both kinds of plant are in the fleet"
    for ps_id in with_coordinates:
        value, labels = sun[ps_id]
        assert labels["source"] == "coordinates"
        assert value == round(elevation(latitudes[ps_id][0], longitudes[ps_id][0], t), 1)
    for ps_id in set(listed) - with_coordinates:
        zone = listed[ps_id]["ps_current_time_zone"]
        peers = [p for p in with_coordinates if listed[p]["ps_current_time_zone"] == zone]
        if peers:
            lat = statistics.median(latitudes[p][0] for p in peers)
            lon = statistics.median(longitudes[p][0] for p in peers)
        elif zone_hours(zone) is not None:
            lat, lon = 0.0, 15.0 * zone_hours(zone)  # type: ignore[operator]
        else:
            assert ps_id not in sun
            continue
        value, labels = sun[ps_id]
        assert labels["source"] == "time_zone"
        assert value == round(elevation(lat, lon, t), 1)
    # The exporter's own reading agrees with what the simulator served.
    for ps_id in with_coordinates:
        assert latitudes[ps_id][0] == _float(listed[ps_id]["latitude"])


def test_recomputed_once_a_minute_not_per_scrape(fleet: Simulator, run_exporter: Callable[..., Running],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(START // 60 * 60)
    # No refresh falls due meanwhile: new data renders the sun anew (in the refresh thread), on purpose.
    r = run_exporter({"refresh_interval": 3600, "accounts": [login_account(fleet, **PLANTS_ONLY)]}, clock=clock,
                     start=False)
    r.refresh_now()
    renders = Calls(monkeypatch, exposition_module, "sun_family")
    first = by_plant(r.scrape(), SUN)
    for _ in range(3):
        clock.advance(15)  # still the same minute
        assert by_plant(r.scrape(), SUN) == first
        r.scrape(headers={"Accept-Encoding": "gzip"})
    assert renders.count == 1
    clock.advance(15)  # the next minute
    later = by_plant(r.scrape(), SUN)
    assert renders.count == 2
    assert later.keys() == first.keys()
    assert any(later[p][0] != first[p][0] for p in first), "the sun moved"


def _raw(r: Running, headers: dict[str, str]) -> bytes:
    response = r.get(headers=headers, stream=True)
    assert response.status_code == 200
    return response.raw.read(decode_content=False)


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_gzip_stays_one_stream_across_minutes(fleet: Simulator, run_exporter: Callable[..., Running],
                                              openmetrics: bool) -> None:
    clock = Clock(START)
    # Refreshes only where the test asks for one, so that the plain and the gzip body show the same data.
    r = run_exporter({"refresh_interval": 3600, "accounts": [login_account(fleet, **PLANTS_ONLY)]}, clock=clock,
                     start=False)
    r.refresh_now()
    r.exporter.exposition = exposition_module.Exposition(runtime_collectors=[], clock=clock)
    accept = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
    for step in range(3):
        plain = _raw(r, {**accept, "Accept-Encoding": "identity"})
        zipped = _raw(r, {**accept, "Accept-Encoding": "gzip"})
        inflater = zlib.decompressobj(31)
        assert inflater.decompress(zipped) == plain
        assert inflater.eof and inflater.unused_data == b""
        assert SUN.encode() in plain
        clock.advance(60)
        if step == 1:
            r.refresh_now()  # new data under a moving sun


def test_withheld_with_the_plant_list(make_sim: Callable[..., Simulator],
                                      run_exporter: Callable[..., Running]) -> None:
    s = make_sim(plants=8, seed=8)
    clock = Clock(START)
    r = run_exporter({"refresh_interval": 60, "max_age": 180, "accounts": [login_account(s, **PLANTS_ONLY)]},
                     clock=clock, start=False)
    r.refresh_now()
    assert by_plant(r.scrape(), SUN)
    s.inject("http:503", times=1000)
    clock.advance(200)
    r.refresh_now()  # fails: the list is older than max_age now
    text = r.scrape()
    assert 'isolarcloud_up{account="login"} 0.0' in text
    assert by_plant(text, SUN) == {} and by_plant(text, "isolarcloud_plant_info") == {}


def test_a_new_minute_is_computed_off_the_scrape_path(fleet: Simulator, run_exporter: Callable[..., Running],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """While one scrape computes the new minute's sun (held here until the test lets it go), the other scrapes get
    the previous minute's bytes at once instead of queueing behind it; afterwards every scrape gets the new ones.
    The plant section itself is never recomputed for it."""
    clock = Clock(START // 60 * 60)
    r = run_exporter({"refresh_interval": 3600, "accounts": [login_account(fleet, **PLANTS_ONLY)]}, clock=clock,
                     start=False)
    r.refresh_now()
    exposition = exposition_module.Exposition(runtime_collectors=[], clock=clock)
    states = r.exporter.states()

    def sun_of(parts: list[bytes]) -> bytes:
        return b"".join(line for line in b"".join(parts).splitlines(keepends=True) if line.startswith(SUN.encode()))

    before = sun_of(exposition.render_parts(states, openmetrics=False, gzip=False))
    assert before
    real = exposition_module.sun_family
    entered, release = threading.Event(), threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Iterator[str]:
        entered.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(exposition_module, "sun_family", slow)
    clock.advance(60)
    computing: list[bytes] = []
    worker = threading.Thread(
        target=lambda: computing.append(sun_of(exposition.render_parts(states, openmetrics=False, gzip=False))))
    worker.start()
    assert entered.wait(10)
    # Meanwhile: the previous minute's bytes, plain and gzip, without waiting for the computation.
    assert sun_of(exposition.render_parts(states, openmetrics=False, gzip=False)) == before
    zipped = b"".join(exposition.render_parts(states, openmetrics=False, gzip=True))
    assert sun_of([zlib.decompress(zipped, 31)]) == before
    release.set()
    worker.join(10)
    assert computing and computing[0] != before, "the sun moved in a minute"
    assert sun_of(exposition.render_parts(states, openmetrics=False, gzip=False)) == computing[0]
    assert sun_of([zlib.decompress(b"".join(exposition.render_parts(states, openmetrics=False, gzip=True)), 31)]) \
        == computing[0]
