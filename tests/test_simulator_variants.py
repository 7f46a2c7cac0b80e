"""The simulator's options for the unknowns that `isolarcloud-exporter probe` settles, over real sockets with plain
`requests` (written from the API reference, not with the exporter's client): how `update_time` moves, where the
token answer carries its tokens, what an over-large page size gets, and the quota call's per-hour lists."""

from __future__ import annotations

import calendar
import time
from typing import Any

import pytest
import requests

from exporter.simulator import Simulator

KEY = "demo-secret-key"
APPKEY = "DEMOAPPKEY00000000000000000000001"
PLATFORM = "/openapi/platform/"
POINTS = ["83033", "83022", "83024", "83106", "83118", "83124"]
NOON_UTC = float(calendar.timegm((2024, 6, 15, 12, 0, 0)))


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def post(sim: Simulator, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    h = {"Content-Type": "application/json;charset=UTF-8", "x-access-key": KEY, **(headers or {})}
    r = requests.post(sim.url + path, json={"appkey": APPKEY, **body}, headers=h, timeout=10)
    assert r.status_code == 200
    return r.json()


def platform(sim: Simulator, name: str, body: dict[str, Any], token: str) -> dict[str, Any]:
    return post(sim, PLATFORM + name, body, {"Authorization": f"Bearer {token}"})


def snapshot(sim: Simulator, token: str) -> tuple[dict[int, str], dict[str, dict[str, Any]]]:
    """(ps_id → update_time, ps_id → point values) for the whole fleet."""
    rows = platform(sim, "queryPowerStationList", {"page": 1, "size": 1000, "valid_flag": "1,2,3"},
                    token)["result_data"]["pageList"]
    ids = [str(r["ps_id"]) for r in rows]
    answer = platform(sim, "getPowerStationRealTimeData", {"ps_id_list": ids, "point_id_list": POINTS}, token)
    values = {e["ps_id"]: {k: v for k, v in e.items() if k.startswith("p")}
              for e in answer["result_data"]["device_point_list"]}
    return {r["ps_id"]: r["update_time"] for r in rows}, values


def test_update_time_style_clock_moves_update_time_on_every_call() -> None:
    clock = Clock(NOON_UTC)
    with Simulator(plants=30, seed=3, clock=clock) as sim:
        token = sim.issue_tokens()["access_token"]
        times, _ = snapshot(sim, token)
        clock.t += 7
        later, _ = snapshot(sim, token)
        fresh = [p for p in sim.plants if p.update_lag_s < 86400]
        assert fresh and all(later[p.ps_id] != times[p.ps_id] for p in fresh)


def test_update_time_style_data_moves_update_time_exactly_when_the_values_move() -> None:
    clock = Clock(NOON_UTC)
    with Simulator(plants=60, seed=3, clock=clock, update_time_style="data") as sim:
        for p in sim.plants:  # one zone, so that noon and night are the same for every plant
            sim.set_plant(p.ps_id, utc_offset_h=1)
        token = sim.issue_tokens()["access_token"]
        moved = {"day": 0, "night": 0}
        for period, start in (("day", NOON_UTC), ("night", NOON_UTC + 13 * 3600)):
            clock.t = start
            times, values = snapshot(sim, token)
            assert all(t.endswith(("0:00", "5:00")) for t in times.values())  # uploads every 5 minutes
            clock.t = start + 600
            later, later_values = snapshot(sim, token)
            for p in sim.plants:
                key = str(p.ps_id)
                if key not in values:
                    continue
                time_moved = later[p.ps_id] != times[p.ps_id]
                values_moved = later_values[key] != values[key]
                assert time_moved == values_moved, (period, p.ps_id)
                moved[period] += time_moved
                if period == "night" and not (p.is_storage or p.is_wind):
                    assert not time_moved  # the logger of a PV-only plant sleeps at night
        assert moved["day"] > moved["night"] > 0  # storage and wind plants still upload at night


def test_update_time_style_data_freezes_a_pv_plant_at_its_last_upload_before_sunset() -> None:
    clock = Clock(NOON_UTC)
    with Simulator(plants=40, seed=5, clock=clock, update_time_style="data", data_interval=300) as sim:
        plant = next(p for p in sim.plants if not (p.is_storage or p.is_wind))
        sim.set_plant(plant.ps_id, utc_offset_h=0, update_lag_s=0.0, day_len_h=12.0)  # sunset 18:00 UTC
        token = sim.issue_tokens()["access_token"]
        clock.t = NOON_UTC + 9 * 3600  # 21:00
        rows = platform(sim, "queryPowerStationList", {"page": 1, "size": 1000, "valid_flag": "1,2,3"},
                        token)["result_data"]["pageList"]
        row = next(r for r in rows if r["ps_id"] == plant.ps_id)
        assert row["update_time"] == "2024-06-15 18:00:00"
        clock.t = NOON_UTC + 19 * 3600  # 07:00 the next day, after sunrise at 06:00
        rows = platform(sim, "queryPowerStationList", {"page": 1, "size": 1000, "valid_flag": "1,2,3"},
                        token)["result_data"]["pageList"]
        assert next(r for r in rows if r["ps_id"] == plant.ps_id)["update_time"] == "2024-06-16 07:00:00"


@pytest.mark.parametrize("shape", ["result_data", "top_level", "both"])
def test_token_answer_shape(shape: str) -> None:
    with Simulator(plants=2, token_answer_shape=shape) as sim:
        refresh = sim.issue_tokens()["refresh_token"]
        doc = post(sim, "/openapi/apiManage/refreshToken", {"refresh_token": refresh})
        assert doc["result_code"] == "1" and doc["result_data"]["code"] == "1"
        assert ("access_token" in doc) == (shape != "result_data")
        assert ("access_token" in doc["result_data"]) == (shape != "top_level")
        token = doc.get("access_token") or doc["result_data"]["access_token"]
        assert platform(sim, "queryPowerStationList", {"page": 1, "size": 1}, token)["result_code"] == "1"
        code = sim.create_authorization_code("https://example.com/cb")
        doc = post(sim, "/openapi/apiManage/token", {"grant_type": "authorization_code", "code": code,
                                                      "redirect_uri": "https://example.com/cb"})
        assert ("refresh_token" in doc) == (shape != "result_data")
        assert "auth_ps_list" in doc["result_data"]  # the rest of the answer stays where it was
        failed = post(sim, "/openapi/apiManage/refreshToken", {"refresh_token": refresh})  # spent: no tokens
        assert failed["result_data"] == {"code": "5"} and "access_token" not in failed


def test_token_answer_shape_rejects_an_unknown_value() -> None:
    with pytest.raises(ValueError):
        Simulator(token_answer_shape="nested")


@pytest.mark.parametrize(("style", "rows", "code"), [("clamp", 10, "1"), ("reject", None, "010")])
def test_page_size_over_limit(style: str, rows: int | None, code: str) -> None:
    with Simulator(plants=30, max_page_size=10, page_size_over_limit=style) as sim:
        token = sim.issue_tokens()["access_token"]
        doc = platform(sim, "queryPowerStationList", {"page": 1, "size": 20, "valid_flag": "1,2,3"}, token)
        assert doc["result_code"] == code
        if rows is not None:
            assert len(doc["result_data"]["pageList"]) == rows and doc["result_data"]["rowCount"] == 30
        else:
            assert doc["result_msg"] == "er_parameter_value_invalid:size" and doc["result_data"] is None
        ok = platform(sim, "queryPowerStationList", {"page": 1, "size": 10, "valid_flag": "1,2,3"}, token)
        assert len(ok["result_data"]["pageList"]) == 10


def test_call_info_lists_the_hourly_limits_and_what_is_left() -> None:
    clock = Clock(NOON_UTC + 120)
    with Simulator(plants=2, clock=clock, hourly_quota=50) as sim:
        login = post(sim, "/openapi/login", {"user_account": "demo@example.com", "user_password": "demo-password"},
                     {"sys_code": "901"})["result_data"]
        data = post(sim, "/openapi/getOpenApiCallInfo", {"token": login["token"]}, {"sys_code": "901"})["result_data"]
        assert data["curr_hour_accessed_times"] == "2" and data["per_day_access_times_config"] == "1200"
        assert data["per_hour_access_times_config"] == [{"hour": h, "max_call_times": 50} for h in range(24)]
        assert data["per_hour_residue_times"] == [{"hour": time.gmtime(clock.t).tm_hour, "times": 48}]
    with Simulator(plants=2) as sim:  # no quota configured: nothing to list
        login = post(sim, "/openapi/login", {"user_account": "demo@example.com", "user_password": "demo-password"},
                     {"sys_code": "901"})["result_data"]
        data = post(sim, "/openapi/getOpenApiCallInfo", {"token": login["token"]}, {"sys_code": "901"})["result_data"]
        assert data["per_hour_access_times_config"] == [] and data["per_hour_residue_times"] == []
