"""Production metrics: real-time batches, values exactly as served (in base units), missing values omitted,
counters monotonic, legacy {unit, value} normalisation, and the API budget stretching the interval."""

from __future__ import annotations

import math
from typing import Any

import pytest

from exporter.data import QUANTITIES
from exporter.simulator import Simulator
from tests.conftest import Clock, login_account, oauth_account, select, value

REALTIME = "getPowerStationRealTimeData"
WH = 3600.0
LEGACY_FACTORS = {"W": 1, "kW": 1e3, "MW": 1e6, "GW": 1e9, "Wh": WH, "kWh": 1e3 * WH, "MWh": 1e6 * WH,
                  "GWh": 1e9 * WH, "kWp": 1e3, "MWp": 1e6, "Wp": 1}


def listed_ids(s: Simulator) -> list[str]:
    return [str(p.ps_id) for p in s.plants if int(p["valid_flag"]) in (1, 3)]


def realtime_calls(s: Simulator) -> list[Any]:
    return [c for c in s.calls if c.path.endswith(REALTIME)]


@pytest.mark.parametrize(("plants", "batch"), [(20, 20), (21, 20), (40, 7), (5, 50)])
def test_batches_cover_every_plant_once(make_sim, run_exporter, plants: int, batch: int) -> None:
    s = make_sim(plants=plants, seed=21)
    for p in s.plants:
        s.set_plant(p.ps_id, valid_flag=1)
    r = run_exporter({"accounts": [oauth_account(s, None, realtime={"batch_size": batch})]}, start=False)
    r.refresh_now()
    calls = realtime_calls(s)
    assert len(calls) == math.ceil(plants / batch)
    asked = [i for c in calls for i in c.body["ps_id_list"]]
    assert sorted(asked) == sorted(listed_ids(s)) and len(asked) == len(set(asked))
    for call in calls:
        assert len(call.body["ps_id_list"]) <= batch
        assert all(isinstance(i, str) for i in call.body["ps_id_list"])  # ids as strings, as documented
        assert len(call.body["point_id_list"]) <= 100 and call.body["is_get_point_dict"] == "1"
        assert call.headers["Authorization"].startswith("Bearer ")


def test_values_match_what_the_simulator_served(make_sim, run_exporter) -> None:
    s = make_sim(plants=60, seed=22)
    r = run_exporter({"accounts": [oauth_account(s, None)]}, start=False)
    r.refresh_now()
    found = r.metrics()
    served = [e for c in realtime_calls(s) for e in c.response["result_data"]["device_point_list"]]
    assert len(served) == len(listed_ids(s))
    present = omitted = 0
    for entry in served:
        for point in (q for q in QUANTITIES if q.point_id):
            raw = entry.get(f"p{point.point_id}")
            name = f"isolarcloud_plant_{point.key}" + ("_total" if point.counter else "")
            got = value(found, name, ps_id=str(entry["ps_id"]), account="oauth")
            if raw is None or str(raw).strip() == "":
                assert got is None, (point.point_id, entry["ps_id"])  # never a missing value as 0
                omitted += 1
            else:
                assert got == pytest.approx(float(raw) * point.scale), (point.point_id, entry["ps_id"])
                present += 1
    assert present > 100 and omitted > 5, "the fleet should have both values and gaps"
    soc = select(found, "isolarcloud_plant_battery_soc_ratio")
    assert soc and all(0 <= v <= 1 for v in soc.values())


def test_energy_counters_only_grow_across_refreshes(make_sim, run_exporter) -> None:
    sim_clock = Clock(1_790_000_000)
    s = make_sim(plants=15, seed=23, clock=sim_clock)
    r = run_exporter({"accounts": [oauth_account(s, None)]}, start=False)
    previous: dict[Any, float] = {}
    for _ in range(6):
        r.refresh_now()
        current = select(r.metrics(), "isolarcloud_plant_energy_joules_total")
        assert current
        for labels, v in current.items():
            assert v >= previous.get(labels, 0.0)
        previous = current
        sim_clock.advance(4 * 3600)  # crosses local midnights of every time zone over the loop


def test_extra_points_and_failed_plants(make_sim, run_exporter) -> None:
    s = make_sim(plants=10, seed=24)
    r = run_exporter({"accounts": [oauth_account(s, None, realtime={"extra_points": [83025, "83016"]})]},
                     start=False)
    victim = int(listed_ids(s)[0])
    s.inject("hook", path=REALTIME, hook=lambda sim: sim.remove_plant(victim))
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_realtime_failed_plants_total", account="oauth") == 1
    assert value(found, "isolarcloud_up", account="oauth") == 1  # counted, not fatal
    assert value(found, "isolarcloud_plant_fault_status", ps_id=str(victim)) is not None
    assert value(found, "isolarcloud_plant_power_watts", ps_id=str(victim)) is None
    extra = select(found, "isolarcloud_plant_point_value")
    assert extra and {dict(lbl)["point_id"] for lbl in extra} <= {"83025", "83016"}
    names = {dict(lbl)["point_id"]: (dict(lbl)["point_name"], dict(lbl)["unit"]) for lbl in extra}
    served = {str(d["point_id"]): d for c in realtime_calls(s) for d in c.response["result_data"]["point_dict"]}
    for point_id, (name, unit) in names.items():
        assert (name, unit) == (served[point_id]["point_name"], served[point_id]["point_unit"])


def test_more_than_100_points_are_split(make_sim, run_exporter) -> None:
    s = make_sim(plants=3, seed=25)
    extra = [str(83000 + i) for i in range(100)]
    r = run_exporter({"accounts": [oauth_account(s, None, realtime={"extra_points": extra})]}, start=False)
    r.refresh_now()
    calls = realtime_calls(s)
    assert len(calls) == 2 and all(len(c.body["point_id_list"]) <= 100 for c in calls)
    assert all(c.result_code == "1" for c in calls)
    assert value(r.metrics(), "isolarcloud_up", account="oauth") == 1


def test_legacy_list_values_are_normalised_from_auto_scaled_units(make_sim, run_exporter) -> None:
    s = make_sim(plants=40, seed=26)
    r = run_exporter({"accounts": [login_account(s)]}, start=False)
    r.refresh_now()
    found = r.metrics()
    rows = [row for c in s.calls if c.path.endswith("getPowerStationList")
            for row in c.response["result_data"]["pageList"]]
    checked = set()
    for row in rows:
        for key, metric in (("curr_power", "isolarcloud_plant_power_watts"),
                            ("today_energy", "isolarcloud_plant_energy_today_joules"),
                            ("total_energy", "isolarcloud_plant_energy_joules_total"),
                            ("total_capcity", "isolarcloud_plant_installed_power_watts")):
            obj = row.get(key) or {}
            got = value(found, metric, ps_id=str(row["ps_id"]))
            if obj.get("unit") in LEGACY_FACTORS and obj.get("value") not in (None, ""):
                assert got == pytest.approx(float(obj["value"]) * LEGACY_FACTORS[obj["unit"]])
                checked.add(obj["unit"])
            else:
                assert got is None
    assert len(checked) >= 3, f"the fleet should exercise several units, saw {checked}"
    assert not realtime_calls(s)  # legacy apps have no real-time endpoint


def test_budget_stretches_the_interval_for_a_large_fleet(make_sim, run_exporter) -> None:
    """10,000 plants want ceil(N/100) list pages + ceil(N/50) real-time batches every 5 minutes: far more than
    1000 calls an hour. The real-time collection keeps its floor (half the budget, the default
    min_budget_share), the device inventory its floor (a tenth); the plant list gets the rest; all stretch, and
    together they fit the budget."""
    s = make_sim(plants=10_000, seed=27)
    # The plant list and real-time data alone; with open faults and plant details: tests/test_open_faults.py.
    # The exporter's clock held still: the refresh takes seconds, and a clock hour starting meanwhile would
    # start the hour's call count again.
    r = run_exporter({"refresh_interval": 300, "accounts": [oauth_account(
        s, None, faults={"enabled": False}, details={"enabled": False})]}, clock=Clock(), start=False)
    r.refresh_now()
    found = r.metrics_of("isolarcloud_plants", "isolarcloud_refresh_interval_seconds", "isolarcloud_collection",
                         "isolarcloud_api_calls_current_hour")
    n = len(listed_ids(s))
    assert value(found, "isolarcloud_plants", account="oauth") == n
    list_calls, rt_calls = math.ceil(n / 100), math.ceil(n / 50)
    assert (s.count("queryPowerStationList"), s.count(REALTIME)) == (list_calls, rt_calls)
    list_interval = value(found, "isolarcloud_refresh_interval_seconds", account="oauth")
    assert list_interval == pytest.approx(list_calls * 3600 / (1000 - 500 - 100))
    assert value(found, "isolarcloud_collection_interval_seconds", account="oauth",
                 collection="plants") == list_interval
    rt_interval = value(found, "isolarcloud_collection_interval_seconds", account="oauth", collection="realtime")
    assert rt_interval == pytest.approx(rt_calls * 3600 / 500)
    shares = select(found, "isolarcloud_collection_budget_calls_per_hour", account="oauth")
    assert sum(shares.values()) == pytest.approx(1000)
    # Passes an hour x calls each stay within the budget.
    assert list_calls * 3600 / list_interval + rt_calls * 3600 / rt_interval <= 1000 + 1e-6
    assert value(found, "isolarcloud_api_calls_current_hour", account="oauth") == s.count()


def test_budget_defers_a_refresh_that_would_exceed_the_hour(make_sim, run_exporter) -> None:
    s = make_sim(plants=30, seed=28)
    clock = Clock(3600 * 400_000 + 60)
    account = oauth_account(s, None, page_size=10, api_budget_per_hour=10, realtime={"enabled": False},
                            faults={"enabled": False}, details={"enabled": False},
                            devices={"enabled": False})
    r = run_exporter({"refresh_interval": 1, "accounts": [account]}, clock=clock)
    r.wait_refreshed(1)
    found = r.metrics()
    pages = math.ceil(len(listed_ids(s)) / 10)
    assert value(found, "isolarcloud_refresh_interval_seconds", account="oauth") == pytest.approx(pages * 360)
    for _ in range(3):  # each due scrape may start a refresh only while the hour's budget allows it
        clock.advance(pages * 360)
        r.metrics()
        r.wait_refreshed(1)
    assert value(r.metrics(), "isolarcloud_api_calls_current_hour", account="oauth") <= 10
