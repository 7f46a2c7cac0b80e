"""The simulator closer to the portal, and the hostile-gateway scenarios of issue 14, over real sockets with plain
`requests` (written from the reference, not with the exporter's client)."""

from __future__ import annotations

import calendar
import json
import re
import subprocess
import sys
import time
from typing import Any

import pytest
import requests

from exporter.simulator import Simulator
from tests.test_simulator import FakeClock

KEY = "demo-secret-key"
APPKEY = "DEMOAPPKEY00000000000000000000001"
LIST = "/openapi/platform/queryPowerStationList"
REALTIME = "/openapi/platform/getPowerStationRealTimeData"
LEGACY_LIST = "/openapi/getPowerStationList"
T0 = float(calendar.timegm((2024, 6, 15, 10, 0, 0)))
JSON = "application/json;charset=UTF-8"


def post(sim: Simulator, path: str, body: dict[str, Any], *, token: str | None = None, content_type: str | None = JSON,
         headers: dict[str, str] | None = None) -> requests.Response:
    h = {"x-access-key": KEY, **(headers or {})}
    if content_type is not None:
        h["Content-Type"] = content_type
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return requests.post(sim.url + path, data=json.dumps({"appkey": APPKEY, **body}).encode(), headers=h, timeout=10)


def login_token(sim: Simulator) -> str:
    r = post(sim, "/openapi/login", {"user_account": "demo@example.com", "user_password": "demo-password"},
             headers={"sys_code": "901"})
    return str(r.json()["result_data"]["token"])


def realtime(sim: Simulator, token: str, ps_ids: list[int], points: list[str] | None = None) -> requests.Response:
    return post(sim, REALTIME, {"ps_id_list": [str(p) for p in ps_ids], "point_id_list": points or ["83033", "83024"],
                                "is_get_point_dict": "1"}, token=token)


# -- Content-Type --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json;charset=UTF-8", "application/json",
                                          "Application/JSON; charset=utf-8"])
def test_documented_content_types_are_accepted(content_type: str) -> None:
    with Simulator(plants=3) as sim:
        token = sim.issue_tokens()["access_token"]
        assert post(sim, LIST, {"page": 1, "size": 1}, token=token, content_type=content_type).json()[
            "result_code"] == "1"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/json;charset=ISO-8859-1"])
def test_other_content_types_are_refused_with_415(content_type: str | None) -> None:
    with Simulator(plants=3) as sim:
        token = sim.issue_tokens()["access_token"]
        r = post(sim, LIST, {"page": 1, "size": 1}, token=token, content_type=content_type)
        assert r.status_code == 415 and r.json()["error"] == "Unsupported Media Type"
    with Simulator(plants=3, check_content_type=False) as sim:
        token = sim.issue_tokens()["access_token"]
        assert post(sim, LIST, {"page": 1, "size": 1}, token=token, content_type=content_type).status_code == 200


# -- point units, legacy list --------------------------------------------------------------------------------


def test_point_units_as_the_cloud_writes_them() -> None:
    with Simulator(plants=3) as sim:
        token = sim.issue_tokens()["access_token"]
        data = realtime(sim, token, [sim.plants[0].ps_id], ["83012", "83013", "83033"]).json()["result_data"]
        units = {d["point_id"]: d["point_unit"] for d in data["point_dict"]}
        assert units == {83012: "W/㎡", 83013: "Wh/㎡", 83033: "W"}


def test_legacy_list_has_no_update_time_but_zoned_update_times() -> None:
    clock = FakeClock(T0)
    with Simulator(plants=30, seed=2, clock=clock) as sim:
        rows = post(sim, LEGACY_LIST, {"curPage": 1, "size": 30, "token": login_token(sim), "valid_flag": "1,2,3"},
                    headers={"sys_code": "901"}).json()["result_data"]["pageList"]
        for row in rows:
            assert "update_time" not in row
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", row["curr_power_update_time"])
            assert row["ps_status"] in (0, 1) and isinstance(row["fault_count"], int)


def _legacy_rows(sim: Simulator) -> list[dict[str, Any]]:
    body = {"curPage": 1, "size": 100, "token": login_token(sim), "valid_flag": "1,2,3", "lang": "_en_US"}
    return list(post(sim, LEGACY_LIST, body, headers={"sys_code": "901"}).json()["result_data"]["pageList"])


def test_varied_legacy_units() -> None:
    clock = FakeClock(T0)
    factors = {"Wh": 1.0, "kWh": 1e3, "MWh": 1e6, "GWh": 1e9}
    with Simulator(plants=60, seed=3, clock=clock, legacy_units="varied") as varied, \
            Simulator(plants=60, seed=3, clock=clock) as portal:
        rows = _legacy_rows(varied)
        units = {row["total_energy"]["unit"] for row in rows}
        assert {"kW·h", "千瓦时", "万千瓦时", ""} <= units
        assert units & set(factors)  # every fifth plant keeps the portal's ladder
        same = {row["ps_id"]: row["total_energy"] for row in _legacy_rows(portal)}
        kwh = {"kW·h": 1.0, "千瓦时": 1.0, "万千瓦时": 1e4, "": 1.0}
        for row in rows:
            unit, value = row["total_energy"]["unit"], float(row["total_energy"]["value"])
            reference = same[row["ps_id"]]
            wh = float(reference["value"]) * factors[reference["unit"]]
            assert value * (factors[unit] if unit in factors else kwh[unit] * 1e3) == pytest.approx(wh, rel=1e-4)


# -- tokens ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fields", ["result_data", "both", "top_level"])
def test_token_fields_scenario(fields: str) -> None:
    with Simulator(plants=3, token_answer_shape=fields) as sim:
        code = sim.create_authorization_code("http://localhost/cb")
        doc = post(sim, "/openapi/apiManage/token", {"grant_type": "authorization_code", "code": code,
                                                      "redirect_uri": "http://localhost/cb"}).json()
        assert doc["result_code"] == "1"
        assert ("access_token" in doc["result_data"]) == (fields != "top_level")
        assert ("access_token" in doc) == (fields != "result_data")
        assert doc["result_data"]["auth_ps_list"]  # the rest of the answer stays in result_data
        refresh = doc.get("refresh_token") or doc["result_data"]["refresh_token"]
        again = post(sim, "/openapi/apiManage/refreshToken", {"refresh_token": refresh}).json()
        assert ("access_token" in again) == (fields != "result_data")


def test_access_tokens_revoked_after_n_calls() -> None:
    with Simulator(plants=3, access_token_calls=2) as sim:
        token = sim.issue_tokens()["access_token"]
        codes = [post(sim, LIST, {"page": 1, "size": 1}, token=token).status_code for _ in range(3)]
        assert codes == [200, 200, 401]
    with Simulator(plants=3, login_token_calls=1) as sim:
        token = login_token(sim)
        answers = [post(sim, LEGACY_LIST, {"curPage": 1, "size": 1, "token": token},
                        headers={"sys_code": "901"}).json()["result_code"] for _ in range(2)]
        assert answers == ["1", "E00003"]


# -- the rate limiter scenario ---------------------------------------------------------------------------------


def test_rate_limiter_scenario() -> None:
    clock = FakeClock(T0)
    with Simulator(plants=3, clock=clock, rate_limit=(3, 2.0)) as sim:
        token = sim.issue_tokens()["access_token"]
        answers = [post(sim, LIST, {"page": 1, "size": 1}, token=token) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
        assert answers[0].headers["X-RateLimit-Burst-Capacity"] == "3"
        assert answers[0].headers["X-RateLimit-Replenish-Rate"] == "2"
        assert answers[3].headers["Retry-After"] == "1" and answers[3].content == b""
        assert sim.calls[-1].status == 429
        clock.advance(0.5)  # one token back
        assert post(sim, LIST, {"page": 1, "size": 1}, token=token).status_code == 200
    with Simulator(plants=3, clock=clock, rate_limit=(1, 0.25), rate_limit_retry_after=False) as sim:
        token = sim.issue_tokens()["access_token"]
        post(sim, LIST, {"page": 1, "size": 1}, token=token)
        refused = post(sim, LIST, {"page": 1, "size": 1}, token=token)
        assert refused.status_code == 429 and "Retry-After" not in refused.headers


def test_rate_limited_fault() -> None:
    with Simulator(plants=3) as sim:
        token = sim.issue_tokens()["access_token"]
        sim.inject("rate_limited:7", path="queryPowerStationList")
        r = post(sim, LIST, {"page": 1, "size": 1}, token=token)
        assert r.status_code == 429 and r.headers["Retry-After"] == "7"
        assert post(sim, LIST, {"page": 1, "size": 1}, token=token).status_code == 200


# -- real-time answers: limits and the recorded oddities -------------------------------------------------------


@pytest.mark.parametrize(("style", "code"), [("010", "010"), ("009", "009"), ("message", "-1")])
def test_realtime_batch_limit_styles(style: str, code: str) -> None:
    with Simulator(plants=10, max_realtime_plants=4, realtime_limit_style=style) as sim:
        token = sim.issue_tokens()["access_token"]
        ids = [p.ps_id for p in sim.plants]
        refused = realtime(sim, token, ids[:5]).json()
        assert refused["result_code"] == code and refused["result_data"] is None
        assert "ps_id_list" in refused["result_msg"]
        assert realtime(sim, token, ids[:4]).json()["result_code"] == "1"


def test_realtime_answer_faults() -> None:
    with Simulator(plants=6, seed=4) as sim:
        token = sim.issue_tokens()["access_token"]
        ids = [p.ps_id for p in sim.plants[:3]]
        sim.inject("empty_result:{}", path="RealTime")
        assert realtime(sim, token, ids).json()["result_data"] == {}
        sim.inject("empty_result:[]", path="RealTime")
        assert realtime(sim, token, ids).json()["result_data"] == []
        sim.inject("nested_entries", path="RealTime")
        entries = realtime(sim, token, ids).json()["result_data"]["device_point_list"]
        assert [e["device_point"]["ps_id"] for e in entries] == [str(i) for i in ids]
        sim.inject("drop_entries:2", path="RealTime")
        assert len(realtime(sim, token, ids).json()["result_data"]["device_point_list"]) == 1
        sim.inject("foreign_entries", path="RealTime")
        entries = realtime(sim, token, ids).json()["result_data"]["device_point_list"]
        assert [e["ps_id"] for e in entries] == [str(i + 1) for i in ids]
        sim.set_authorized(ids[0], False)
        sim.inject("fail_list_string", path="RealTime")
        assert realtime(sim, token, [*ids, 1]).json()["result_data"]["fail_ps_id_list"] == f"{ids[0]},1"


def test_point_value_overrides() -> None:
    with Simulator(plants=3, seed=5) as sim:
        token = sim.issue_tokens()["access_token"]
        plant = sim.plants[0].ps_id
        sim.set_point_value(plant, 83124, "-478739.743")
        entry = realtime(sim, token, [plant], ["83124", "83024"]).json()["result_data"]["device_point_list"][0]
        assert entry["p83124"] == "-478739.743" and float(entry["p83024"]) > 0
        sim.clear_point_values()
        entry = realtime(sim, token, [plant], ["83124"]).json()["result_data"]["device_point_list"][0]
        assert float(entry["p83124"]) > 0


# -- --log-requests --------------------------------------------------------------------------------------------


def test_cli_log_requests_logs_each_request_without_secrets() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "exporter.simulator", "--listen-address", "127.0.0.1:0",
                             "--plants", "3", "--log-requests"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        url = re.search(r"http://\S+", proc.stdout.readline())
        assert url is not None
        lines = [proc.stdout.readline() for _ in range(6)]
        token = next(line.split()[-1] for line in lines if "access token" in line)
        r = requests.post(url.group(0) + LIST, json={"appkey": APPKEY, "page": 1, "size": 1}, timeout=10,
                          headers={"x-access-key": KEY, "Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        time.sleep(0.2)
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
    assert re.search(r'"POST /openapi/platform/queryPowerStationList HTTP/1.1" 200 \d+', err)
    assert token not in err and KEY not in err
