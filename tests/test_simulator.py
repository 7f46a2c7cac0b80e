"""Tests of the iSolarCloud gateway simulator itself, over real sockets with plain `requests`.

The helpers here are written from the API reference on purpose; they must not use the exporter's client.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from exporter.simulator import Simulator

KEY = "demo-secret-key"
APPKEY = "DEMOAPPKEY00000000000000000000001"
PLATFORM = "/openapi/platform/"
LIST = PLATFORM + "queryPowerStationList"
REALTIME = PLATFORM + "getPowerStationRealTimeData"
T0 = float(calendar.timegm((2024, 6, 15, 0, 0, 0)))  # a UTC midnight in June


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def post(sim: Simulator, path: str, body: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None,
         appkey: str | None = APPKEY, key: str | None = KEY, timeout: float = 10) -> requests.Response:
    h = {"Content-Type": "application/json;charset=UTF-8"}
    if key is not None:
        h["x-access-key"] = key
    h.update(headers or {})
    payload = dict(body or {})
    if appkey is not None:
        payload.setdefault("appkey", appkey)
    return requests.post(sim.url + path, json=payload, headers=h, timeout=timeout)


def platform(sim: Simulator, name: str, body: dict[str, Any], token: str, **kw: Any) -> dict[str, Any]:
    r = post(sim, PLATFORM + name, body, headers={"Authorization": f"Bearer {token}"}, **kw)
    return r.json()


def legacy(sim: Simulator, name: str, body: dict[str, Any], token: str | None) -> dict[str, Any]:
    payload = dict(body)
    if token is not None:
        payload["token"] = token
    return post(sim, "/openapi/" + name, payload, headers={"sys_code": "901"}).json()


def login(sim: Simulator, user: str = "demo@example.com", password: str = "demo-password") -> dict[str, Any]:
    return post(sim, "/openapi/login", {"user_account": user, "user_password": password},
                headers={"sys_code": "901"}).json()


def all_pages(sim: Simulator, token: str, size: int, **filters: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        data = platform(sim, "queryPowerStationList", {"page": page, "size": size, **filters}, token)
        rows = data["result_data"]["pageList"]
        out += rows
        if len(rows) < size:
            return out
        page += 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[Simulator]:
    with Simulator(plants=40, seed=7, clock=clock) as s:
        yield s


@pytest.fixture
def token(sim: Simulator) -> str:
    return str(sim.issue_tokens()["access_token"])


# Envelope and gateway checks -----------------------------------------------------------------------
def test_envelope_success(sim: Simulator, token: str) -> None:
    r = post(sim, LIST, {"page": 1, "size": 5}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    data = r.json()
    assert set(data) == {"req_serial_num", "result_code", "result_msg", "result_data"}
    assert len(data["req_serial_num"]) == 32
    assert data["result_code"] == "1" and data["result_msg"] == "success"
    assert sim.calls[-1].result_code == "1" and sim.calls[-1].response == data


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"key": None}, "E911"),
        ({"key": "wrong"}, "E912"),
        ({"appkey": None}, "001"),
        ({"appkey": "WRONG"}, "E00000"),
    ],
)
def test_gateway_key_errors(sim: Simulator, token: str, kwargs: dict[str, Any], code: str) -> None:
    r = post(sim, LIST, {"page": 1, "size": 5}, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    assert r.status_code == 200
    assert r.json()["result_code"] == code and r.json()["result_data"] is None


def test_unknown_path_missing_params_and_legacy_headers(sim: Simulator, token: str) -> None:
    assert platform(sim, "noSuchApi", {}, token)["result_code"] == "E996"
    assert platform(sim, "queryPowerStationList", {"page": 1}, token)["result_code"] == "009"
    assert platform(sim, "queryPowerStationList", {"size": 1}, token)["result_code"] == "009"
    # Legacy calls: sys_code header and body token are required.
    r = post(sim, "/openapi/getPowerStationList", {"curPage": 1, "size": 1, "token": "x"})
    assert r.json()["result_code"] == "003"
    tok = login(sim)["result_data"]["token"]
    assert legacy(sim, "getPowerStationList", {"curPage": 1, "size": 1}, None)["result_code"] == "002"
    assert legacy(sim, "getPowerStationList", {"size": 1}, tok)["result_code"] == "009"


# OAuth2 ----------------------------------------------------------------------------------------------
def exchange(sim: Simulator, code: str, redirect: str, grant: str = "authorization_code") -> dict[str, Any]:
    body = {"grant_type": grant, "code": code, "redirect_uri": redirect}
    return post(sim, "/openapi/apiManage/token", body).json()


def refresh(sim: Simulator, rt: str) -> dict[str, Any]:
    return post(sim, "/openapi/apiManage/refreshToken", {"refresh_token": rt}).json()


def test_oauth_code_exchange(sim: Simulator) -> None:
    redirect = "https://example.com/cb"
    code = sim.create_authorization_code(redirect)
    data = exchange(sim, code, redirect)
    assert data["result_code"] == "1"
    rd = data["result_data"]
    assert rd["token_type"] == "bearer" and rd["expires_in"] == 172799
    assert rd["auth_ps_list"] == [str(p.ps_id) for p in sim.plants]
    assert isinstance(rd["auth_user"], int)
    assert platform(sim, "queryPowerStationList", {"page": 1, "size": 1}, rd["access_token"])["result_code"] == "1"
    assert exchange(sim, code, redirect)["result_code"] == "2"  # single use
    assert exchange(sim, sim.create_authorization_code(redirect), "https://other")["result_code"] == "5"
    assert exchange(sim, "x", redirect, grant="password")["result_code"] == "6"


def test_refresh_rotation(sim: Simulator) -> None:
    t1 = sim.issue_tokens()
    d = refresh(sim, t1["refresh_token"])
    assert d["result_code"] == "1"
    t2 = d["result_data"]
    assert t2["code"] == "1" and t2["access_token"] != t1["access_token"]
    assert t2["refresh_token"] != t1["refresh_token"]
    again = refresh(sim, t1["refresh_token"])["result_data"]
    assert "access_token" not in again and again["code"] == "5"
    assert platform(sim, "queryPowerStationList", {"page": 1, "size": 1}, t2["access_token"])["result_code"] == "1"
    # The access token bound to a used refresh token is revoked (Spring token-services behaviour).
    assert_invalid_token(post(sim, LIST, {"page": 1, "size": 1},
                              headers={"Authorization": f"Bearer {t1['access_token']}"}), t1["access_token"])
    t3 = sim.rotate_refresh_token_elsewhere(t2["refresh_token"])
    assert refresh(sim, t2["refresh_token"])["result_data"]["code"] == "5"
    assert refresh(sim, t3["refresh_token"])["result_data"]["code"] == "1"


def assert_invalid_token(r: requests.Response, token: str) -> None:
    """The default answer to a dead Bearer token: the portal's failure example, HTTP 401 (RFC 6750), and a
    description that does not quote the token."""
    assert r.status_code == 401
    body = r.json()
    assert body["error"] == "invalid_token" and body["error_description"] == "Invalid access token"
    assert len(body["req_serial_num"]) == 32 and "result_code" not in body
    assert token not in r.text and token not in r.headers.get("WWW-Authenticate", "")
    assert r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_token_expiry(sim: Simulator, clock: FakeClock) -> None:
    t = sim.issue_tokens()
    body = {"page": 1, "size": 1}
    clock.advance(172798)
    assert platform(sim, "queryPowerStationList", body, t["access_token"])["result_code"] == "1"
    clock.advance(2)
    assert_invalid_token(post(sim, LIST, body, headers={"Authorization": f"Bearer {t['access_token']}"}),
                         t["access_token"])
    assert refresh(sim, t["refresh_token"])["result_data"]["code"] == "1"
    t2 = sim.issue_tokens()
    clock.advance(30 * 86400 + 1)
    assert refresh(sim, t2["refresh_token"])["result_data"]["code"] == "-2"
    t3 = sim.issue_tokens()
    sim.expire_access_tokens()
    assert_invalid_token(post(sim, LIST, body, headers={"Authorization": f"Bearer {t3['access_token']}"}),
                         t3["access_token"])


def test_invalid_bearer_token_default_and_envelope_scenario(clock: FakeClock) -> None:
    with Simulator(plants=3, clock=clock) as s:
        assert_invalid_token(post(s, LIST, {"page": 1, "size": 1}, headers={"Authorization": "Bearer nope-123"}),
                             "nope-123")
        r = post(s, LIST, {"page": 1, "size": 1})  # no Authorization header at all
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    with Simulator(plants=3, clock=clock, expired_token_style="envelope") as s:
        r = post(s, LIST, {"page": 1, "size": 1}, headers={"Authorization": "Bearer nope-123"})
        assert r.status_code == 200
        assert r.json()["result_code"] == "E00003" and r.json()["result_data"] is None
    with Simulator(plants=3, clock=clock, oauth_error_status=400) as s:
        r = post(s, LIST, {"page": 1, "size": 1}, headers={"Authorization": "Bearer nope-123"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_token"


# Legacy login ------------------------------------------------------------------------------------------
def test_legacy_login(sim: Simulator, clock: FakeClock) -> None:
    ok = login(sim)
    rd = ok["result_data"]
    assert ok["result_code"] == "1" and rd["login_state"] == "1"
    assert re.fullmatch(rf"{rd['user_id']}_[0-9a-f]{{32}}", rd["token"])
    assert all(isinstance(v, str) for v in rd.values() if v is not None)
    bad = login(sim, password="wrong")
    assert bad["result_code"] == "1" and bad["result_data"]["login_state"] == "0"
    assert not bad["result_data"].get("token")
    assert login(sim, user="nobody")["result_data"]["login_state"] == "-1"
    tok = rd["token"]
    body = {"curPage": 1, "size": 2}
    for _ in range(3):  # sliding validity: each call resets 24 h
        clock.advance(23 * 3600)
        assert legacy(sim, "getPowerStationList", body, tok)["result_code"] == "1"
    clock.advance(24 * 3600 + 1)
    assert legacy(sim, "getPowerStationList", body, tok)["result_code"] == "E00003"
    tok2 = login(sim)["result_data"]["token"]
    sim.expire_login_tokens()
    assert legacy(sim, "getPowerStationList", body, tok2)["result_code"] == "E00003"


def test_login_rate_limit(sim: Simulator, clock: FakeClock) -> None:
    codes = [login(sim)["result_code"] for _ in range(11)]
    assert codes[:10] == ["1"] * 10 and codes[10] == "E916"
    clock.advance(61)
    assert login(sim)["result_code"] == "1"


# Plant lists -------------------------------------------------------------------------------------------
FIELDS = {"ps_id", "ps_name", "description", "ps_type", "online_status", "valid_flag", "grid_connection_status",
          "install_date", "ps_location", "latitude", "longitude", "ps_fault_status", "connect_type", "update_time",
          "ps_current_time_zone", "grid_connection_time", "build_status"}


def test_pagination_and_filters(sim: Simulator, token: str) -> None:
    rows = all_pages(sim, token, 7, valid_flag="1,2,3")
    assert [r["ps_id"] for r in rows] == [p.ps_id for p in sim.plants]
    assert all(set(r) == FIELDS for r in rows)
    first = platform(sim, "queryPowerStationList", {"page": 1, "size": 7, "valid_flag": "1,2,3"}, token)
    assert first["result_data"]["rowCount"] == len(sim.plants)
    default = all_pages(sim, token, 100)
    assert default and all(str(r["valid_flag"]) == "1" for r in default)
    storage = all_pages(sim, token, 100, ps_type="5,7", valid_flag="1,2,3")
    assert storage and {int(r["ps_type"]) for r in storage} <= {5, 7}
    target = sim.plants[3].ps_id
    sim.set_plant(target, ps_name="Zoë's Scheune", valid_flag=1)
    found = all_pages(sim, token, 100, ps_name="zoë")
    assert target in [r["ps_id"] for r in found]
    assert platform(sim, "queryPowerStationList", {"page": 99, "size": 10}, token)["result_data"]["pageList"] == []


@pytest.mark.parametrize("total_key", ["row_count", None])
def test_total_key_variants(clock: FakeClock, total_key: str | None) -> None:
    with Simulator(plants=5, clock=clock, total_key=total_key, max_page_size=2) as s:
        rd = platform(s, "queryPowerStationList", {"page": 1, "size": 50, "valid_flag": "1,2,3"},
                      s.issue_tokens()["access_token"])["result_data"]
        assert len(rd["pageList"]) == 2  # clamped silently
        if total_key is None:
            assert set(rd) == {"pageList"}
        else:
            assert rd[total_key] == 5 and "rowCount" not in rd


def test_legacy_list_units_match_realtime(sim: Simulator, clock: FakeClock, token: str) -> None:
    clock.advance(12 * 3600)
    tok = login(sim)["result_data"]["token"]
    rd = legacy(sim, "getPowerStationList", {"curPage": 1, "size": 100, "valid_flag": "1,2,3", "lang": "_en_US"},
                tok)["result_data"]
    assert rd["rowCount"] == len(sim.plants)
    scale = {"W": 1, "kW": 1e3, "MW": 1e6, "GW": 1e9, "Wh": 1, "kWh": 1e3, "MWh": 1e6, "GWh": 1e9}
    row = rd["pageList"][0]
    for key in ("curr_power", "today_energy", "total_energy", "total_capcity", "ps_status", "share_type",
                "city_name", "curr_power_update_time"):
        assert key in row
    assert isinstance(row["curr_power"]["value"], str)
    ids = [str(r["ps_id"]) for r in rd["pageList"]]
    rt = platform(sim, "getPowerStationRealTimeData", {"ps_id_list": ids, "point_id_list": ["83033", "83022"]},
                  token)["result_data"]["device_point_list"]
    by_id = {e["ps_id"]: e for e in rt}
    compared = 0
    for r in rd["pageList"]:
        e = by_id[str(r["ps_id"])]
        if e.get("p83033") and e.get("p83022"):
            power = float(r["curr_power"]["value"]) * scale[r["curr_power"]["unit"]]
            energy = float(r["today_energy"]["value"]) * scale[r["today_energy"]["unit"]]
            assert power == pytest.approx(float(e["p83033"]), rel=1e-6, abs=0.2)
            assert energy == pytest.approx(float(e["p83022"]), rel=1e-6, abs=0.2)
            compared += 1
    assert compared > 10


# Real-time data ----------------------------------------------------------------------------------------
def test_realtime_shape(sim: Simulator, token: str) -> None:
    ids = [str(p.ps_id) for p in sim.plants[:5]]
    body = {"ps_id_list": [*ids, "123"], "point_id_list": ["83022", "83024", "99999", "83033"],
            "is_get_point_dict": "1"}
    data = platform(sim, "getPowerStationRealTimeData", body, token)
    rd = data["result_data"]
    assert data["result_code"] == "1" and rd["fail_ps_id_list"] == ["123"]
    assert [e["ps_id"] for e in rd["device_point_list"]] == ids
    e = rd["device_point_list"][0]
    assert e["ps_key"] == f"{e['ps_id']}_11_0_0" and "uuid" in e and "ps_name" in e
    assert "p99999" not in e
    assert {d["point_id"] for d in rd["point_dict"]} == {83022, 83024, 83033}
    too_many = {"ps_id_list": ids, "point_id_list": [str(83000 + i) for i in range(101)]}
    assert platform(sim, "getPowerStationRealTimeData", too_many, token)["result_code"] == "010"


def test_realtime_battery_points_only_for_storage(sim: Simulator, token: str) -> None:
    storage = next(p for p in sim.plants if p.fields["ps_type"] in (5, 7, 10, 12))
    pv = next(p for p in sim.plants if p.fields["ps_type"] in (3, 4))
    rd = platform(sim, "getPowerStationRealTimeData",
                  {"ps_id_list": [str(storage.ps_id), str(pv.ps_id)], "point_id_list": ["83252", "83326"]},
                  token)["result_data"]
    st, pv_e = rd["device_point_list"]
    values = [st.get("p83252"), st.get("p83326")]
    assert any(v not in (None, "") for v in values)
    if st.get("p83252"):
        assert 0.0 <= float(st["p83252"]) <= 1.0
    assert pv_e.get("p83252") is None and pv_e.get("p83326") is None


def _series(sim: Simulator, clock: FakeClock, token: str, ps_id: int, hours: int) -> list[tuple[float, ...]]:
    out = []
    for _ in range(hours):
        token = str(sim.issue_tokens()["access_token"])  # the series outlives one access token
        e = platform(sim, "getPowerStationRealTimeData",
                     {"ps_id_list": [str(ps_id)], "point_id_list": ["83033", "83022", "83024", "83118"]},
                     token)["result_data"]["device_point_list"][0]
        out.append((clock.t, float(e["p83033"]), float(e["p83022"]), float(e["p83024"]), float(e["p83118"])))
        clock.advance(3600)
    return out


def test_realtime_consistency_over_days(sim: Simulator, clock: FakeClock, token: str) -> None:
    plant = sim.plants[0]
    sim.set_plant(plant.ps_id, ps_type=4, connect_type=2, utc_offset_h=2.0)
    # Pick a quirk key under which the sampled points are present (missing points are deterministic).
    for qk in range(1000):
        plant.quirk_key = qk
        if all(plant.point_quirk(i) is None for i in (83033, 83022, 83024, 83118)):
            break
    series = _series(sim, clock, token, plant.ps_id, 72)
    lifetimes = [s[3] for s in series]
    assert lifetimes == sorted(lifetimes) and lifetimes[-1] > lifetimes[0]
    for t, power, today, _, load_today in series:
        local_hour = ((t + 2 * 3600) % 86400) / 3600
        if local_hour < 3:
            assert power == 0.0
        if local_hour == 0:
            assert today == 0.0 and load_today == 0.0  # reset at local midnight
    # Within a local day today's energy never decreases and grows while the sun shines.
    todays = [s[2] for s in series[22:46]]  # local 00:00 .. 23:00 of the second day
    assert todays == sorted(todays) and todays[-1] > 0
    assert max(s[1] for s in series) > 0


# Faults ------------------------------------------------------------------------------------------------
def test_http_and_body_faults(sim: Simulator, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    body = {"page": 1, "size": 2}
    sim.inject("http:503", path="queryPowerStationList")
    r = post(sim, LIST, body, headers=auth)
    assert r.status_code == 503 and "<html" in r.text
    sim.inject("empty_body")
    r = post(sim, LIST, body, headers=auth)
    assert r.status_code == 200 and r.content == b""
    sim.inject("invalid_json")
    with pytest.raises(ValueError):
        post(sim, LIST, body, headers=auth).json()
    sim.inject("json_list")
    assert isinstance(post(sim, LIST, body, headers=auth).json(), list)
    sim.inject("result_data_null")
    d = post(sim, LIST, body, headers=auth).json()
    assert d["result_code"] == "1" and d["result_data"] is None
    sim.inject("pagelist_missing")
    assert "pageList" not in post(sim, LIST, body, headers=auth).json()["result_data"]
    sim.inject("code:E999", times=2)
    assert [post(sim, LIST, body, headers=auth).json()["result_code"] for _ in range(3)] == ["E999", "E999", "1"]
    sim.inject("oauth_error:invalid_token")
    r = post(sim, LIST, body, headers=auth)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    sim.inject("close")
    with pytest.raises(requests.ConnectionError):
        post(sim, LIST, body, headers=auth)
    assert post(sim, LIST, body, headers=auth).json()["result_code"] == "1"


def test_paging_faults(sim: Simulator, token: str) -> None:
    body = {"size": 5, "valid_flag": "1,2,3"}
    p1 = platform(sim, "queryPowerStationList", {**body, "page": 1}, token)["result_data"]["pageList"]
    sim.inject("repeat_page", page=2)
    p2 = platform(sim, "queryPowerStationList", {**body, "page": 2}, token)["result_data"]["pageList"]
    assert [r["ps_id"] for r in p2] == [r["ps_id"] for r in p1]
    sim.inject("skip_plants", page=1)
    short = platform(sim, "queryPowerStationList", {**body, "page": 1}, token)["result_data"]
    assert 0 < len(short["pageList"]) < 5 and short["rowCount"] == len(sim.plants)
    added: list[int] = []
    sim.inject("hook", path="queryPowerStationList", page=2, hook=lambda s: added.extend(s.add_plants(1)))
    rd = platform(sim, "queryPowerStationList", {**body, "page": 2}, token)["result_data"]
    assert len(added) == 1 and rd["rowCount"] == 41
    assert sim.calls[-1].fault == "hook"


def test_hang_and_slow_do_not_block_stop(clock: FakeClock) -> None:
    s = Simulator(plants=2, clock=clock).start()
    tok = s.issue_tokens()["access_token"]
    s.inject("hang", times=1)
    s.inject("slow", times=1)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            post(s, LIST, {"page": 1, "size": 1}, headers={"Authorization": f"Bearer {tok}"}, timeout=30)
        except Exception as exc:  # any outcome is fine, only stop() timing matters
            errors.append(exc)

    threads = [threading.Thread(target=call, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while s.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert s.count() == 2
    started = time.monotonic()
    s.stop()
    assert time.monotonic() - started < 3
    for t in threads:
        t.join(5)
        assert not t.is_alive()


def test_slow_trickles_a_correct_answer(sim: Simulator, token: str) -> None:
    sim.inject("slow")
    with socket.create_connection((sim.host, sim.port), timeout=5) as conn:
        body = json.dumps({"appkey": APPKEY, "page": 1, "size": 1}).encode()
        conn.sendall(f"POST {LIST} HTTP/1.1\r\nHost: x\r\nx-access-key: {KEY}\r\nAuthorization: Bearer {token}"
                     f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        started = time.monotonic()
        assert conn.recv(100) == b"H"  # one byte at a time, even the status line
        assert conn.recv(100) == b"T"
        assert time.monotonic() - started >= 0.4
    sim.slow_byte_interval = 0.001
    sim.inject("slow")
    r = post(sim, LIST, {"page": 1, "size": 1}, headers={"Authorization": f"Bearer {token}"})
    assert r.json()["result_code"] == "1" and len(r.json()["result_data"]["pageList"]) == 1


def test_huge_is_streamed(sim: Simulator, token: str) -> None:
    sim.inject("huge")
    r = requests.post(sim.url + LIST, json={"appkey": APPKEY, "page": 1, "size": 1},
                      headers={"x-access-key": KEY, "Authorization": f"Bearer {token}"}, stream=True, timeout=10)
    assert int(r.headers["Content-Length"]) >= 64 * 1024 * 1024
    chunk = next(r.iter_content(1024 * 1024))
    assert chunk.startswith(b'{"req_serial_num"')
    r.close()


def test_inject_rejects_unknown_fault(sim: Simulator) -> None:
    with pytest.raises(ValueError):
        sim.inject("explode")


# Quotas ------------------------------------------------------------------------------------------------
def test_quotas(clock: FakeClock) -> None:
    with Simulator(plants=2, clock=clock, hourly_quota=3) as s:
        tok = s.issue_tokens()["access_token"]
        codes = [platform(s, "queryPowerStationList", {"page": 1, "size": 1}, tok)["result_code"] for _ in range(4)]
        assert codes == ["1", "1", "1", "E999"]
        clock.advance(3600)
        assert platform(s, "queryPowerStationList", {"page": 1, "size": 1}, tok)["result_code"] == "1"
    with Simulator(plants=2, clock=clock, monthly_quota=2) as s:
        tok = s.issue_tokens()["access_token"]
        codes = [platform(s, "queryPowerStationList", {"page": 1, "size": 1}, tok)["result_code"] for _ in range(3)]
        assert codes == ["1", "1", "E998"]
    with Simulator(plants=2, clock=clock, min_call_interval=10) as s:
        tok = s.issue_tokens()["access_token"]
        assert platform(s, "queryPowerStationList", {"page": 1, "size": 1}, tok)["result_code"] == "1"
        assert platform(s, "queryPowerStationList", {"page": 1, "size": 1}, tok)["result_code"] == "E901"
        clock.advance(10)
        assert platform(s, "queryPowerStationList", {"page": 1, "size": 1}, tok)["result_code"] == "1"


# Fleet -------------------------------------------------------------------------------------------------
def test_fleet_control(sim: Simulator, token: str) -> None:
    ps_id = sim.plants[0].ps_id
    sim.set_plant(ps_id, ps_fault_status=1, valid_flag=1)
    row = platform(sim, "queryPowerStationList", {"page": 1, "size": 1}, token)["result_data"]["pageList"][0]
    assert row["ps_id"] == ps_id and row["ps_fault_status"] == 1
    sim.remove_plant(ps_id)
    assert ps_id not in [p.ps_id for p in sim.plants]
    sim.set_fleet_size(10)
    assert len(sim.plants) == 10
    with pytest.raises(KeyError):
        sim.set_plant(sim.plants[0].ps_id, no_such_field=1)


def test_big_fleet_is_fast_deterministic_and_awkward() -> None:
    started = time.monotonic()
    a = Simulator(plants=50_000, seed=3)
    assert time.monotonic() - started < 10  # generous: the target is well under 2 s
    b = Simulator(plants=200, seed=3)
    assert [p.fields["ps_name"] for p in b.plants] == [p.fields["ps_name"] for p in a.plants[:200]]
    names = [p.fields["ps_name"] for p in a.plants]
    assert "" in names and any("\n" in n for n in names) and any('"' in n for n in names)
    assert any("\\" in n for n in names) and len(set(names)) < len(names)
    types = {p.fields["ps_type"] for p in a.plants}
    assert 99 in types and {1, 3, 4, 5, 6, 7, 8, 9, 12} <= types
    assert any(p.fields["grid_connection_time"] is None for p in a.plants)
    assert any(isinstance(p.fields["grid_connection_time"], str) for p in a.plants)
    assert any(p.fields["latitude"] in (0, None) for p in a.plants)
    faults = [p.fields["ps_fault_status"] for p in a.plants]
    assert faults.count(3) > len(faults) / 2 and {1, 2} <= set(faults)
    with a:
        tok = a.issue_tokens()["access_token"]
        started = time.monotonic()
        for page in range(1, 21):
            rows = platform(a, "queryPowerStationList", {"page": page, "size": 100}, tok)["result_data"]["pageList"]
            assert len(rows) == 100
        assert time.monotonic() - started < 10


# CLI ---------------------------------------------------------------------------------------------------
def test_cli_serves_and_exits_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator", "--listen-address", "127.0.0.1:0", "--plants", "3"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://\S+", line)
        assert url, line
        r = requests.post(url.group(0).rstrip(")") + "/openapi/login", timeout=5,
                          json={"appkey": APPKEY, "user_account": "demo@example.com", "user_password": "demo-password"},
                          headers={"x-access-key": KEY, "sys_code": "901"})
        assert r.json()["result_data"]["login_state"] == "1"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
