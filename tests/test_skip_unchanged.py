"""End to end against the simulator (issue 14, item 6): with `realtime.skip_unchanged`, at night only the plants
that still upload (storage, wind) are fetched again, every served value is still what the cloud has now, and the
age of kept values is exported. The simulator runs with `update_time_style="data"` (values and update_time move
together) on one settable clock shared with the exporter."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from typing import Any

import requests

from exporter.simulator import Simulator
from tests.conftest import Clock, Running, oauth_account, select, value

NIGHT = float(calendar.timegm((2024, 6, 15, 1, 0, 0)))  # 02:00 at UTC+1
DAY = NIGHT + 10 * 3600  # 12:00


def asked(sim: Simulator) -> list[str]:
    return [i for c in sim.calls if c.path.endswith("getPowerStationRealTimeData") for i in c.body["ps_id_list"]]


def served_power(running: Running) -> dict[str, float]:
    return {dict(labels)["ps_id"]: v for labels, v in
            select(running.metrics(), "isolarcloud_plant_power_watts").items()}


def cloud_power(sim: Simulator, ps_ids: list[str]) -> dict[str, float]:
    """What the simulated cloud answers right now, asked directly."""
    tokens = sim.issue_tokens()
    answer = requests.post(sim.url + "/openapi/platform/getPowerStationRealTimeData", timeout=10, json={
        "appkey": sim.appkey, "ps_id_list": ps_ids, "point_id_list": ["83033"]}, headers={
        "x-access-key": sim.secret_key, "Authorization": f"Bearer {tokens['access_token']}"}).json()
    return {e["ps_id"]: float(e["p83033"]) for e in answer["result_data"]["device_point_list"]
            if e.get("p83033") not in (None, "")}


def start(make_sim: Callable[..., Simulator], run_exporter: Callable[..., Running], tmp_path: Any,
          clock: Clock) -> tuple[Simulator, Running]:
    sim = make_sim(plants=60, seed=4, clock=clock, update_time_style="data")
    for plant in sim.plants:
        sim.set_plant(plant.ps_id, utc_offset_h=1)
    running = run_exporter({"refresh_interval": 300, "accounts": [oauth_account(
        sim, tmp_path / "t.json", realtime={"skip_unchanged": True}, valid_flag="1,2,3")]}, clock=clock,
        start=False)
    return sim, running


def test_at_night_only_the_plants_that_still_upload_are_fetched(make_sim: Callable[..., Simulator],
                                                               run_exporter: Callable[..., Running],
                                                               tmp_path: Any) -> None:
    clock = Clock(NIGHT)
    sim, running = start(make_sim, run_exporter, tmp_path, clock)
    running.refresh_now()
    ids = [str(p.ps_id) for p in sim.plants]
    assert sorted(asked(sim)) == sorted(ids)
    first = clock.now
    sim.reset_calls()
    clock.advance(300)
    running.refresh_now()
    awake = {str(p.ps_id) for p in sim.plants if (p.is_storage or p.is_wind) and p.update_lag_s < 86400}
    assert set(asked(sim)) == awake and 0 < len(awake) < len(ids) / 2
    found = running.metrics()
    for plant in sim.plants:
        ts = value(found, "isolarcloud_plant_realtime_timestamp_seconds", ps_id=str(plant.ps_id))
        if ts is not None:
            assert ts == (clock.now if str(plant.ps_id) in awake else first)
    assert served_power(running) == cloud_power(sim, ids)  # skipping lost nothing: the cloud has nothing newer
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="realtime") == 1


def test_by_day_every_fresh_plant_is_fetched_and_nothing_is_stale(make_sim: Callable[..., Simulator],
                                                                  run_exporter: Callable[..., Running],
                                                                  tmp_path: Any) -> None:
    clock = Clock(DAY)
    sim, running = start(make_sim, run_exporter, tmp_path, clock)
    running.refresh_now()
    sim.reset_calls()
    clock.advance(300)
    running.refresh_now()
    fresh = {str(p.ps_id) for p in sim.plants if p.update_lag_s < 86400}
    assert set(asked(sim)) == fresh  # only the few stale plants (silent for days) are skipped
    ids = [str(p.ps_id) for p in sim.plants]
    assert served_power(running) == cloud_power(sim, ids)
