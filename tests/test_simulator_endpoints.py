"""The simulator's fault, plant-detail and device endpoints, over real sockets with plain `requests`.

Written from the API reference (field tables in isolarcloud-openapi.yaml, the digest isolarcloud-api.md); no
exporter code is used, so a misunderstanding on either side shows up as a failing test.
"""

from __future__ import annotations

import calendar
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from exporter.simulator import Simulator

KEY = "demo-secret-key"
APPKEY = "DEMOAPPKEY00000000000000000000001"
T0 = float(calendar.timegm((2024, 6, 15, 0, 0, 0)))  # a UTC midnight in June, on a 5-minute boundary
APPENDIX_1 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
              29, 30, 31, 32, 33, 34, 37, 41, 43, 44, 45, 51, 52, 55, 63}
PLATFORM_FAULT_FIELDS = {
    "fault_name", "fault_code", "fault_type", "fault_type_code", "fault_level", "fault_desc", "fault_reason",
    "process_status", "create_time", "over_time", "process_time", "uuid", "ps_key", "device_name", "device_type",
    "type_name", "device_model", "device_model_code", "ps_id", "ps_name", "grid_connection_status",
}
LEGACY_FAULT_FIELDS = {
    "create_time", "device_model_code", "device_name", "fault_code", "fault_desc", "fault_level", "fault_name",
    "fault_type", "fault_type_code", "fault_reason", "over_time", "process_status", "ps_id", "ps_key", "ps_name",
    "type_name", "uuid", "grid_connection_status",
}
DETAIL_FIELDS = {
    "ps_id", "ps_key", "ps_name", "description", "ps_type", "ps_type_name", "online_status", "build_status",
    "install_date", "connect_type", "grid_connection_time", "ps_fault_status", "fault_count", "alarm_count",
    "ps_location", "latitude", "longitude", "install_power", "ps_feedin_power_price_wh", "ps_feedin_power_price_kwh",
    "ps_consumption_power_price_wh", "ps_consumption_power_price_kwh", "power_price_unit", "ps_current_time_zone",
    "owner_mobile", "owner_email", "user_moble_tel", "communication_dev_detail_list", "param_income_unit_name",
}
DEVICE_FIELDS = {
    "uuid", "ps_key", "device_sn", "device_name", "device_type", "type_name", "device_model_id", "device_model_code",
    "dev_fault_status", "dev_status", "device_code", "chnnl_id", "communication_dev_sn", "factory_name", "rel_time",
    "grid_connection_date", "ps_id",
}
LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Client:
    """A minimal client written from the reference: platform calls with a Bearer token, legacy calls with a
    login token in the body and sys_code 901."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.http = requests.Session()
        self.token = str(sim.issue_tokens()["access_token"])
        self._login: str | None = None

    def raw(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> requests.Response:
        h = {"Content-Type": "application/json;charset=UTF-8", "x-access-key": KEY, **headers}
        return self.http.post(self.sim.url + path, json={"appkey": APPKEY, **body}, headers=h, timeout=10)

    def platform(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.raw("/openapi/platform/" + name, body, {"Authorization": f"Bearer {self.token}"})
        assert r.status_code == 200
        return r.json()

    def legacy(self, name: str, body: dict[str, Any], token: str | None = "login") -> dict[str, Any]:
        payload = dict(body)
        if token == "login":
            payload["token"] = self.login_token()
        elif token is not None:
            payload["token"] = token
        return self.raw("/openapi/" + name, payload, {"sys_code": "901"}).json()

    def login_token(self) -> str:
        if self._login is None:
            r = self.raw("/openapi/login", {"user_account": "demo@example.com", "user_password": "demo-password"},
                         {"sys_code": "901"}).json()
            self._login = str(r["result_data"]["token"])
        return self._login

    def renew(self) -> None:
        """A fresh access token, after the clock moved past the old one's expiry."""
        self.token = str(self.sim.issue_tokens()["access_token"])
        self._login = None

    def ok(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        data = self.platform(name, body)
        assert data["result_code"] == "1", data
        return dict(data["result_data"])

    def all_pages(self, name: str, body: dict[str, Any], size: int = 50) -> tuple[list[dict[str, Any]], int]:
        rows: list[dict[str, Any]] = []
        page, total = 1, -1
        while True:
            data = self.ok(name, {**body, "page": page, "size": size})
            total = data["row_count"]
            rows += data["pageList"]
            if len(data["pageList"]) < size:
                return rows, total
            page += 1

    def plants(self) -> list[dict[str, Any]]:
        return self.all_pages("queryPowerStationList", {"valid_flag": "1,2,3"}, size=100)[0]


def error_of(data: dict[str, Any]) -> tuple[str, str]:
    assert data["result_data"] is None
    return data["result_code"], data["result_msg"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[Simulator]:
    with Simulator(plants=60, seed=7, clock=clock, total_key="row_count") as s:
        yield s


@pytest.fixture
def api(sim: Simulator) -> Client:
    return Client(sim)


def open_by_plant(rows: list[dict[str, Any]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        out[row["ps_id"]].append(row["fault_type"])
    return out


def plant_with_status(api: Client, status: int) -> dict[str, Any]:
    return next(p for p in api.plants() if int(p["ps_fault_status"]) == status)


# Faults and alarms ----------------------------------------------------------------------------------
def test_fault_rows_have_the_platform_table_fields_and_types(api: Client) -> None:
    data = api.ok("getFaultAlarmInfo", {"page": 1, "size": 5})
    assert set(data) == {"pageList", "row_count"} and data["row_count"] > 5
    for row in data["pageList"]:
        assert set(row) == PLATFORM_FAULT_FIELDS
        assert isinstance(row["ps_id"], str) and isinstance(row["uuid"], str) and isinstance(row["ps_key"], str)
        assert isinstance(row["fault_code"], int) and isinstance(row["device_type"], int)
        assert row["fault_type"] in (1, 2, 3, 4, 7) and row["process_status"] in (1, 2, 3, 4)
        assert LOCAL_TIME.match(row["create_time"]) and row["over_time"] is None
        assert row["ps_key"].startswith(row["ps_id"] + "_")
    one = api.ok("getFaultAlarmInfo", {"page": 1, "size": 50, "ps_id": data["pageList"][0]["ps_id"]})["pageList"]
    starts = [r["create_time"] for r in one]  # local times: comparable within one plant
    assert starts == sorted(starts, reverse=True)  # newest first


def test_fault_paging_counts_every_open_record_once(api: Client, sim: Simulator) -> None:
    rows, total = api.all_pages("getFaultAlarmInfo", {}, size=7)
    assert len(rows) == total == len(sim.open_faults())
    assert len({r["fault_code"] for r in rows}) == total
    assert api.ok("getFaultAlarmInfo", {"page": 99, "size": 7}) == {"pageList": [], "row_count": total}


def test_open_faults_agree_with_every_plants_fault_status(api: Client) -> None:
    rows, _ = api.all_pages("getFaultAlarmInfo", {"process_status": ""}, size=200)
    by_plant = open_by_plant(rows)
    plants = api.plants()
    details = {}
    for i in range(0, len(plants), 20):
        ids = ",".join(str(p["ps_id"]) for p in plants[i:i + 20])
        details.update({d["ps_id"]: d for d in api.ok("getPowerStationDetail", {"ps_ids": ids})["data_list"]})
    seen = set()
    for p in plants:
        types = by_plant.get(str(p["ps_id"]), [])
        status = int(p["ps_fault_status"])
        seen.add(status)
        if status == 1:
            assert 1 in types
        elif status == 2:
            assert 2 in types and 1 not in types
        else:
            assert status == 3 and not {1, 2}.intersection(types)
        d = details[p["ps_id"]]
        assert (d["fault_count"], d["alarm_count"]) == (types.count(1), types.count(2))
    assert seen == {1, 2, 3}
    legacy = api.legacy("getPowerStationList", {"curPage": 1, "size": 100, "valid_flag": "1,2,3"})
    for p in legacy["result_data"]["pageList"]:
        types = by_plant.get(str(p["ps_id"]), [])
        assert (p["fault_count"], p["alarm_count"]) == (types.count(1), types.count(2))


def test_a_fault_closes_as_the_clock_advances(api: Client, clock: FakeClock) -> None:
    plant = plant_with_status(api, 1)
    before = api.ok("getFaultAlarmInfo", {"ps_id": str(plant["ps_id"]), "page": 1, "size": 50})["pageList"]
    record = next(r for r in before if r["fault_type"] == 1)
    clock.advance(8 * 86400)  # longer than any record lasts
    api.renew()
    after = api.ok("getFaultAlarmInfo", {"ps_id": str(plant["ps_id"]), "page": 1, "size": 50})["pageList"]
    assert record["fault_code"] not in {r["fault_code"] for r in after}
    assert len(after) == len(before) and 1 in {r["fault_type"] for r in after}  # the next record took its place
    month = record["create_time"][:7].replace("-", "")
    closed = api.ok("getFaultAlarmInfo", {"ps_id": str(plant["ps_id"]), "process_status": 9, "page": 1,
                                          "size": 200, "startTime": month + "010000", "endTime": month + "282359"})
    mine = [r for r in closed["pageList"] if r["fault_code"] == record["fault_code"]]
    assert len(mine) == 1 and mine[0]["process_status"] == 9
    assert LOCAL_TIME.match(mine[0]["over_time"]) and mine[0]["over_time"] > record["create_time"]
    assert all(r["process_status"] == 9 and r["over_time"] for r in closed["pageList"])


def test_closed_and_both_queries_stay_within_one_calendar_month(api: Client) -> None:
    across = {"page": 1, "size": 10, "startTime": "202405201000", "endTime": "202406101000"}
    for status in (9, 999, "9"):
        assert error_of(api.platform("getFaultAlarmInfo", {**across, "process_status": status})) == \
            ("010", "er_parameter_value_invalid:endTime")
    assert api.platform("getFaultAlarmInfo", {**across, "process_status": 8})["result_code"] == "1"
    same = api.ok("getFaultAlarmInfo", {"page": 1, "size": 500, "startTime": "2024-06-01 00:00",
                                        "endTime": "2024-06-30 23:59", "process_status": 999})
    assert {r["process_status"] == 9 for r in same["pageList"]} == {True, False}
    default = api.ok("getFaultAlarmInfo", {"page": 1, "size": 200, "process_status": 9})  # this month
    assert default["row_count"] > 0 and all(r["create_time"].startswith("2024-06") for r in default["pageList"])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"size": 10}, ("009", "er_missing_parameter:page")),
        ({"page": 1}, ("009", "er_missing_parameter:size")),
        ({"page": 0, "size": 10}, ("010", "er_parameter_value_invalid:page")),
        ({"page": 1, "size": 10, "process_status": 7}, ("010", "er_parameter_value_invalid:process_status")),
        ({"page": 1, "size": 10, "fault_type": "1,x"}, ("010", "er_parameter_value_invalid:fault_type")),
        ({"page": 1, "size": 10, "startTime": "yesterday"}, ("010", "er_parameter_value_invalid:startTime")),
        ({"page": 1, "size": 10, "ps_id": "abc"}, ("010", "er_parameter_value_invalid:ps_id")),
    ],
)
def test_fault_list_parameter_errors(api: Client, body: dict[str, Any], expected: tuple[str, str]) -> None:
    assert error_of(api.platform("getFaultAlarmInfo", body)) == expected


def test_fault_names_follow_lang(api: Client, sim: Simulator) -> None:
    zh = api.ok("getFaultAlarmInfo", {"page": 1, "size": 500})["pageList"]
    en = api.ok("getFaultAlarmInfo", {"page": 1, "size": 500, "lang": "_en_US"})["pageList"]
    assert [r["fault_code"] for r in zh] == [r["fault_code"] for r in en]
    assert any(re.search(r"[\u4e00-\u9fff]", r["fault_name"]) for r in zh)
    assert sum(bool(re.search(r"[\u4e00-\u9fff]", r["fault_name"])) for r in en) < len(en) // 4
    assert {r["type_name"] for r in zh} & {"逆变器", "储能逆变器", "数据采集器", "电池", "电表", "电站"}
    assert {r["type_name"] for r in en} & {"Inverter", "Energy Storage System", "Data Logger", "Battery", "Meter"}
    filtered = api.ok("getFaultAlarmInfo", {"page": 1, "size": 500, "lang": "_en_US", "fault_name": "fan"})
    assert filtered["pageList"] and all("fan" in r["fault_name"].lower() for r in filtered["pageList"])


def test_awkward_fault_names_survive_json(api: Client, sim: Simulator) -> None:
    plant = plant_with_status(api, 3)
    name = 'Zähler "L1" \\ C:\\PV\nnext line\t中文 🔥 {label="x"}'
    code = sim.open_fault(int(plant["ps_id"]), 2, name=name)
    r = api.raw("/openapi/platform/getFaultAlarmInfo", {"ps_id": str(plant["ps_id"]), "page": 1, "size": 10},
                {"Authorization": f"Bearer {api.token}"})
    rows = json.loads(r.content.decode("utf-8"))["result_data"]["pageList"]
    assert next(row for row in rows if row["fault_code"] == code)["fault_name"] == name
    catalog_names = {row["fault_name"] for row in api.ok("getFaultAlarmInfo", {"page": 1, "size": 500,
                                                                              "lang": "_en_US"})["pageList"]}
    assert any(set(n) & set('"\\\n') for n in catalog_names)


def test_open_and_close_fault_keep_the_plant_consistent(api: Client, sim: Simulator) -> None:
    plant = plant_with_status(api, 3)
    ps_id = int(plant["ps_id"])
    code = sim.open_fault(ps_id, 1, level=1)
    listed = {p["ps_id"]: p for p in api.plants()}
    assert int(listed[ps_id]["ps_fault_status"]) == 1
    detail = api.ok("getPowerStationDetail", {"ps_ids": str(ps_id)})["data_list"][0]
    assert (detail["fault_count"], int(detail["ps_fault_status"])) == (1, 1)
    row = next(r for r in api.ok("getFaultAlarmInfo", {"ps_id": ps_id, "page": 1, "size": 50})["pageList"]
               if r["fault_code"] == code)
    assert row["fault_type"] == 1 and row["fault_level"] == 1 and row["ps_key"].split("_")[1] == "1"
    sim.close_fault(code)
    assert code not in {r["fault_code"] for r in sim.open_faults(ps_id)}
    assert int({p["ps_id"]: p for p in api.plants()}[ps_id]["ps_fault_status"]) == 3
    with pytest.raises(KeyError):
        sim.close_fault(code)
    # Closing one of the simulator's own records ends that slot: one open record fewer, status follows.
    faulty = plant_with_status(api, 1)
    own = [r for r in sim.open_faults(int(faulty["ps_id"])) if r["fault_type"] == 1]
    for r in own:
        sim.close_fault(r["fault_code"])
    types = [r["fault_type"] for r in sim.open_faults(int(faulty["ps_id"]))]
    assert 1 not in types
    status = int({p["ps_id"]: p for p in api.plants()}[int(faulty["ps_id"])]["ps_fault_status"])
    assert status == (2 if 2 in types else 3)


def test_set_open_fault_count_is_exact_and_stays_exact(clock: FakeClock) -> None:
    with Simulator(plants=10_000, seed=3, clock=clock, total_key="row_count") as sim:
        sim.set_open_fault_count(300)
        api = Client(sim)
        first = api.ok("getFaultAlarmInfo", {"page": 1, "size": 1})
        assert first["row_count"] == 300
        codes = {r["fault_code"] for r in sim.open_faults()}
        clock.advance(3 * 86400)
        api.renew()
        assert api.ok("getFaultAlarmInfo", {"page": 1, "size": 1})["row_count"] == 300
        assert codes != {r["fault_code"] for r in sim.open_faults()}  # records rotated, the count did not
        faulty = {p.ps_id for p in sim.plants if int(p["ps_fault_status"]) != 3}
        assert faulty == {int(r["ps_id"]) for r in sim.open_faults() if r["fault_type"] in (1, 2)}


def test_undocumented_fault_and_device_types_occur(clock: FakeClock) -> None:
    with Simulator(plants=300, seed=7, clock=clock) as sim:
        rows = sim.open_faults()
        assert {r["fault_type"] for r in rows} == {1, 2, 3, 4, 7}
        odd = [p.ps_id for p in sim.plants if any(d["device_type"] not in APPENDIX_1 for d in sim.devices_of(p.ps_id))]
        assert odd
        sim.open_fault(odd[0], 2, ps_key=next(d["ps_key"] for d in sim.devices_of(odd[0])
                                              if d["device_type"] not in APPENDIX_1))
        assert any(r["device_type"] not in APPENDIX_1 for r in sim.open_faults(odd[0]))


def test_legacy_fault_list_with_login_token(api: Client, sim: Simulator) -> None:
    data = api.legacy("getFaultAlarmInfo", {"curPage": 1, "size": 10, "lang": "_en_US"})
    assert data["result_code"] == "1"
    result = data["result_data"]
    assert set(result) == {"pageList", "rowCount"} and result["rowCount"] == len(sim.open_faults())
    for row in result["pageList"]:
        assert set(row) == LEGACY_FAULT_FIELDS
        assert isinstance(row["ps_id"], int) and isinstance(row["uuid"], int)
        assert re.match(r"^\d+\.\d{6}\.[0-9a-f]{13}$", row["fault_code"])
    legacy_code = result["pageList"][0]["fault_code"]
    one = api.legacy("getFaultAlarmInfo", {"curPage": 1, "size": 10, "fault_code": legacy_code})
    assert [r["fault_code"] for r in one["result_data"]["pageList"]] == [legacy_code]
    assert error_of(api.legacy("getFaultAlarmInfo", {"curPage": 1, "size": 10}, token=None)) == \
        ("002", "er_missing_parameter:token")
    assert error_of(api.legacy("getFaultAlarmInfo", {"page": 1, "size": 10})) == \
        ("009", "er_missing_parameter:curPage")


# Plant detail ---------------------------------------------------------------------------------------
def test_detail_fields_types_and_owner_data(api: Client, sim: Simulator) -> None:
    ids = [p.ps_id for p in sim.plants[:3]]
    data = api.ok("getPowerStationDetail", {"ps_ids": ",".join(map(str, ids)), "is_get_ps_remarks": "1"})
    assert data["code"] == "1" and data["not_authorization_ps_list"] == []
    assert [d["ps_id"] for d in data["data_list"]] == ids
    for d in data["data_list"]:
        assert set(d) == DETAIL_FIELDS | {"ps_remarks"}
        plant = sim.fleet.by_id[d["ps_id"]]
        assert d["install_power"] == round(plant.capacity_w) and isinstance(d["install_power"], int)
        assert d["ps_key"] == f"{d['ps_id']}_11_0_0"
        assert set(d["ps_remarks"]) == {f"remark{i}" for i in range(1, 6)}
        loggers = [x for x in sim.devices_of(d["ps_id"]) if x["device_type"] == 9]
        assert {c["sn"] for c in d["communication_dev_detail_list"]} == {x["device_sn"] for x in loggers}
    contacts = [(d["owner_mobile"], d["owner_email"]) for d in
                api.ok("getPowerStationDetail", {"ps_ids": ",".join(str(p.ps_id) for p in sim.plants[:20])})
                ["data_list"]]
    assert any(m and "@" in (e or "") for m, e in contacts)  # personal data, as the real API has it


def test_detail_refuses_more_than_20_ids(api: Client, sim: Simulator) -> None:
    ids = ",".join(str(p.ps_id) for p in sim.plants[:21])
    assert api.ok("getPowerStationDetail", {"ps_ids": ids}) == {
        "code": "5", "not_authorization_ps_list": [], "data_list": []}
    assert api.ok("getPowerStationDetail", {"ps_ids": ids.rsplit(",", 1)[0]})["code"] == "1"


def test_detail_authorisation_and_missing_plants(api: Client, sim: Simulator) -> None:
    a, b, c = (p.ps_id for p in sim.plants[:3])
    sim.set_authorized(a, False)
    data = api.ok("getPowerStationDetail", {"ps_ids": f"{a},{b},999,{c}"})
    assert data["code"] == "1" and data["not_authorization_ps_list"] == [str(a)]
    assert [d["ps_id"] for d in data["data_list"]] == [b, c]  # 999 does not exist: simply missing
    assert api.ok("getPowerStationDetail", {"ps_ids": str(a)})["code"] == "7"
    assert api.ok("getPowerStationDetail", {"ps_ids": "999,998"})["code"] == "6"
    assert a not in {p["ps_id"] for p in api.plants()}  # nor in the app's plant list
    assert str(a) not in {r["ps_id"] for r in api.all_pages("getFaultAlarmInfo", {}, 200)[0]}
    sim.set_authorized([a])
    assert api.ok("getPowerStationDetail", {"ps_ids": str(a)})["code"] == "1"


def test_detail_by_communication_device_serial(api: Client, sim: Simulator) -> None:
    plant = next(p for p in sim.plants if any(d["device_type"] == 9 for d in sim.devices_of(p.ps_id)))
    sn = next(d["device_sn"] for d in sim.devices_of(plant.ps_id) if d["device_type"] == 9)
    for body in ({"sns": sn}, {"ps_ids": "999", "sns": sn}, {"sn": sn}):
        assert [d["ps_id"] for d in api.ok("getPowerStationDetail", body)["data_list"]] == [plant.ps_id]
    assert api.ok("getPowerStationDetail", {"sns": "B000000000000"})["code"] == "4"


def test_detail_parameter_errors_and_install_power_option(api: Client, clock: FakeClock) -> None:
    assert error_of(api.platform("getPowerStationDetail", {})) == ("009", "er_missing_parameter:ps_ids")
    assert error_of(api.platform("getPowerStationDetail", {"ps_ids": "1,x"})) == \
        ("010", "er_parameter_value_invalid:ps_ids")
    with Simulator(plants=3, seed=7, clock=clock, install_power_unit="kW") as sim:
        p = sim.plants[0]
        d = Client(sim).ok("getPowerStationDetail", {"ps_ids": [p.ps_id]})["data_list"][0]
        assert d["install_power"] == pytest.approx(p.capacity_w / 1000.0)


def test_legacy_detail_is_one_flat_object(api: Client, sim: Simulator) -> None:
    plant = next(p for p in sim.plants if sim.devices_of(p.ps_id))
    sn = sim.devices_of(plant.ps_id)[0]["device_sn"]
    data = api.legacy("getPowerStationDetail", {"sn": sn, "is_get_ps_remarks": "0"})
    d = data["result_data"]
    assert data["result_code"] == "1" and d["ps_id"] == plant.ps_id and "data_list" not in d
    assert d["design_capacity"] == round(plant.capacity_w)  # W
    assert {"user_moble_tel", "owner_email", "email", "ps_price", "ps_price_kwh"} <= set(d)
    assert d["ps_price"] is None or re.match(r"^\d+(\.\d+)?(e-\d+)?$", d["ps_price"])
    assert error_of(api.legacy("getPowerStationDetail", {"sn": sn})) == \
        ("009", "er_missing_parameter:is_get_ps_remarks")
    assert api.legacy("getPowerStationDetail", {"sn": "A000", "is_get_ps_remarks": 1})["result_data"] == {}


# Device inventory -----------------------------------------------------------------------------------
def test_device_rows_fields_and_types(api: Client, sim: Simulator) -> None:
    plant = next(p for p in sim.plants if sim.devices_of(p.ps_id))
    data = api.ok("getDeviceListByPsId", {"ps_id": str(plant.ps_id), "page": 1, "size": 50,
                                          "is_get_firmware_version": 1})
    assert data["row_count"] == len(data["pageList"]) > 0
    for row in data["pageList"]:
        assert set(row) >= DEVICE_FIELDS and {"claim_state", "rel_state"} & set(row)
        assert row["dev_status"] in ("0", "1") and row["dev_fault_status"] in (1, 2, 4)
        assert isinstance(row["uuid"], str) and isinstance(row["device_type"], int)
        assert re.match(rf"^{plant.ps_id}_{row['device_type']}_\d+_\d+$", row["ps_key"])
        assert set(row["firmware_version_info"]) >= {"lcd_version", "m_version", "bat_version"}
    assert any(row["type_name"] == "逆变器" for row in data["pageList"])  # Chinese without lang
    types = {row["device_type"] for row in data["pageList"]}
    assert 1 in types and 9 in types
    assert "firmware_version_info" not in api.ok("getDeviceListByPsId", {"ps_id": plant.ps_id, "page": 1,
                                                                         "size": 1})["pageList"][0]


def test_claim_state_spelling_options(clock: FakeClock) -> None:
    def keys(style: str) -> set[str]:
        with Simulator(plants=40, seed=7, clock=clock, device_claim_key=style) as sim:
            api = Client(sim)
            out: set[str] = set()
            for p in sim.plants:
                for row in api.ok("getDeviceListByPsId", {"ps_id": p.ps_id, "page": 1, "size": 5})["pageList"]:
                    out |= {"claim_state", "rel_state"} & set(row)
            return out

    assert keys("claim_state") == {"claim_state"} and keys("rel_state") == {"rel_state"}
    assert keys("mixed") == {"claim_state", "rel_state"}


def test_device_paging_on_a_plant_with_many_devices(api: Client, sim: Simulator) -> None:
    ps_id = sim.plants[0].ps_id
    sim.set_plant(ps_id, ps_type=1, capacity_w=90e6, connect_type=1)
    rows, total = api.all_pages("getDeviceListByPsId", {"ps_id": ps_id}, size=100)
    assert total == len(rows) >= 250
    assert len({r["ps_key"] for r in rows}) == len({r["device_sn"] for r in rows}) == total
    loggers = {r["device_sn"] for r in rows if r["device_type"] == 9}
    assert {r["communication_dev_sn"] for r in rows if r["device_type"] == 1} <= loggers
    detail = api.ok("getPowerStationDetail", {"ps_ids": str(ps_id)})["data_list"][0]
    assert {c["sn"] for c in detail["communication_dev_detail_list"]} == loggers
    assert detail["install_power"] == 90_000_000


def test_plant_without_devices(api: Client, sim: Simulator) -> None:
    bare = next(p.ps_id for p in sim.plants if not sim.devices_of(p.ps_id))
    for virtual in (0, 1):
        assert api.ok("getDeviceListByPsId", {"ps_id": bare, "page": 1, "size": 10, "is_virtual_unit": virtual}) \
            == {"pageList": [], "row_count": 0}
    assert api.ok("getPowerStationDetail", {"ps_ids": str(bare)})["data_list"][0][
        "communication_dev_detail_list"] == []


def test_storage_plants_have_ess_and_battery(api: Client, sim: Simulator) -> None:
    storage = [p for p in sim.plants if int(p["ps_type"]) in (5, 7, 10, 12) and sim.devices_of(p.ps_id)]
    assert storage
    for p in storage:
        types = {d["device_type"] for d in sim.devices_of(p.ps_id)}
        assert {1, 9, 14, 43} <= types
    non_storage = [p for p in sim.plants if int(p["ps_type"]) in (1, 3, 4) and sim.devices_of(p.ps_id)]
    assert all(not {14, 43} & {d["device_type"] for d in sim.devices_of(p.ps_id)} for p in non_storage)


def test_device_list_filters_and_errors(api: Client, sim: Simulator) -> None:
    plant = next(p for p in sim.plants if sim.devices_of(p.ps_id))
    loggers = api.ok("getDeviceListByPsId", {"ps_id": plant.ps_id, "page": 1, "size": 50, "device_type_list": [9]})
    assert {r["device_type"] for r in loggers["pageList"]} == {9}
    virtual = api.ok("getDeviceListByPsId", {"ps_id": plant.ps_id, "page": 1, "size": 50, "is_virtual_unit": "1"})
    assert f"{plant.ps_id}_11_0_0" in {r["ps_key"] for r in virtual["pageList"]}
    assert error_of(api.platform("getDeviceListByPsId", {"page": 1, "size": 5})) == \
        ("009", "er_missing_parameter:ps_id")
    assert error_of(api.platform("getDeviceListByPsId", {"ps_id": plant.ps_id, "size": 5})) == \
        ("009", "er_missing_parameter:page")
    assert error_of(api.platform("getDeviceListByPsId", {"ps_id": plant.ps_id, "page": 1, "size": 5,
                                                         "device_type_list": "1,a"})) == \
        ("010", "er_parameter_value_invalid:device_type_list")
    assert api.ok("getDeviceListByPsId", {"ps_id": 999, "page": 1, "size": 5}) == {"pageList": [], "row_count": 0}


def test_removed_device_disappears(api: Client, sim: Simulator) -> None:
    plant = next(p for p in sim.plants if len(sim.devices_of(p.ps_id)) >= 3)
    before = api.ok("getDeviceListByPsId", {"ps_id": plant.ps_id, "page": 1, "size": 100})
    gone = next(r for r in before["pageList"] if r["device_type"] == 1)
    sim.remove_device(gone["ps_key"])
    after = api.ok("getDeviceListByPsId", {"ps_id": plant.ps_id, "page": 1, "size": 100})
    assert after["row_count"] == before["row_count"] - 1
    assert gone["ps_key"] not in {r["ps_key"] for r in after["pageList"]}
    rt = api.ok("getDeviceRealTimeData", {"device_type": 1, "ps_key_list": [gone["ps_key"]], "point_id_list": ["24"]})
    assert rt["device_point_list"] == [] and rt["fail_ps_key_list"] == [gone["ps_key"]]
    sim.restore_device(gone["ps_key"])
    assert api.ok("getDeviceListByPsId", {"ps_id": plant.ps_id, "page": 1, "size": 100})["row_count"] == \
        before["row_count"]


def test_device_fault_status_follows_that_devices_faults(api: Client, sim: Simulator) -> None:
    plant = next(p for p in sim.plants if int(p["ps_fault_status"]) == 3 and sim.devices_of(p.ps_id))
    inverter = next(d for d in sim.devices_of(plant.ps_id) if d["device_type"] == 1)
    assert inverter["dev_fault_status"] == 4
    code = sim.open_fault(plant.ps_id, 1, ps_key=inverter["ps_key"])

    def status() -> tuple[int, int]:
        rows = api.ok("getDeviceListByPsId", {"ps_id": plant.ps_id, "page": 1, "size": 100})["pageList"]
        listed = next(r for r in rows if r["ps_key"] == inverter["ps_key"])["dev_fault_status"]
        rt = api.ok("getDeviceRealTimeData", {"device_type": 1, "ps_key_list": [inverter["ps_key"]],
                                              "point_id_list": ["24"]})
        return listed, rt["device_point_list"][0]["device_point"]["dev_fault_status"]

    assert status() == (1, 1)
    sim.close_fault(code)
    assert status() == (4, 4)
    # Every open fault of a device shows on that device in the device list.
    rows, _ = api.all_pages("getFaultAlarmInfo", {"fault_type": "1,2"}, size=200)
    faulty = next(r for r in rows if r["device_type"] == 1)
    listed = api.ok("getDeviceListByPsId", {"ps_id": faulty["ps_id"], "page": 1, "size": 500})["pageList"]
    assert next(d for d in listed if d["ps_key"] == faulty["ps_key"])["dev_fault_status"] in (1, 2)


def test_legacy_device_list(api: Client, sim: Simulator) -> None:
    plant = next(p for p in sim.plants if sim.devices_of(p.ps_id))
    data = api.legacy("getDeviceList", {"ps_id": plant.ps_id, "curPage": 1, "size": 2})
    result = data["result_data"]
    assert data["result_code"] == "1" and set(result) == {"pageList", "rowCount"}
    assert result["rowCount"] == len(sim.devices_of(plant.ps_id))
    assert len(result["pageList"]) == min(2, result["rowCount"])
    assert all("rel_state" in r and "claim_state" not in r for r in result["pageList"])
    assert error_of(api.legacy("getDeviceList", {"ps_id": plant.ps_id, "page": 1, "size": 2})) == \
        ("009", "er_missing_parameter:curPage")


# Device real-time data ------------------------------------------------------------------------------
def inverter_keys(sim: Simulator, ps_id: int) -> list[str]:
    return [d["ps_key"] for d in sim.devices_of(ps_id) if d["device_type"] == 1]


def test_device_points_are_nested_under_device_point(api: Client, sim: Simulator, clock: FakeClock) -> None:
    plant = next(p for p in sim.plants if inverter_keys(sim, p.ps_id))
    clock.advance(12 * 3600)
    data = api.ok("getDeviceRealTimeData", {"device_type": "1", "ps_key_list": inverter_keys(sim, plant.ps_id),
                                            "point_id_list": ["1", "2", "24"]})
    assert set(data) == {"device_point_list", "fail_ps_key_list"} and data["fail_ps_key_list"] == []
    for entry in data["device_point_list"]:
        assert list(entry) == ["device_point"]
        point = entry["device_point"]
        assert re.match(r"^\d{14}$", point["device_time"]) and isinstance(point["device_time"], str)
        assert isinstance(point["dev_status"], int) and isinstance(point["dev_fault_status"], int)
        assert point["ps_id"] == plant.ps_id and point["device_sn"]
        assert all(point[k] is None or isinstance(point[k], str) for k in ("p1", "p2", "p24"))


def test_unsupported_points_are_null_and_point_dict_names_the_known(api: Client, sim: Simulator) -> None:
    plant = next(p for p in sim.plants if int(p["ps_type"]) == 4 and inverter_keys(sim, p.ps_id))
    ids = [str(i) for i in (*range(1, 100), 7708)]
    data = api.ok("getDeviceRealTimeData", {"device_type": 1, "ps_key_list": inverter_keys(sim, plant.ps_id)[:1],
                                            "point_id_list": ids, "is_get_point_dict": 1})
    point = data["device_point_list"][0]["device_point"]
    values = [point[f"p{i}"] for i in ids]
    assert sum(v is None for v in values) >= 60 and all(isinstance(point[f"p{i}"], str) for i in (1, 2, 24))
    names = {d["point_id"]: (d["point_name"], d["point_unit"]) for d in data["point_dict"]}
    assert names[1] == ("Daily Yield by Inverter", "Wh") and names[24] == ("Total Active Power", "W")
    assert names[2] == ("Total Yield", "Wh") and 3 not in names  # 3 is no documented inverter point
    assert "point_dict" not in api.ok("getDeviceRealTimeData", {"device_type": 1, "point_id_list": ["24"],
                                                                "ps_key_list": inverter_keys(sim, plant.ps_id)})


def test_inverters_add_up_to_the_plant(api: Client, sim: Simulator, clock: FakeClock) -> None:
    clock.advance(11 * 3600 + 1234)
    checked = 0
    for plant in sim.plants:
        keys = inverter_keys(sim, plant.ps_id)
        if len(keys) < 2:
            continue
        plant_pts = api.ok("getPowerStationRealTimeData", {"ps_id_list": [str(plant.ps_id)],
                                                          "point_id_list": ["83033", "83022", "83024"]})
        values = plant_pts["device_point_list"][0]
        if not all(values.get(k) for k in ("p83033", "p83022", "p83024")):
            continue  # a plant point with a null/"" quirk
        devs = api.ok("getDeviceRealTimeData", {"device_type": 1, "ps_key_list": keys,
                                                "point_id_list": ["24", "1", "2"]})["device_point_list"]
        for dev_point, plant_point in (("p24", "p83033"), ("p1", "p83022"), ("p2", "p83024")):
            total = sum(float(d["device_point"][dev_point]) for d in devs)
            assert total == pytest.approx(float(values[plant_point]), rel=1e-4, abs=0.1 * len(keys))
        checked += 1
    assert checked >= 2


def test_storage_device_points(api: Client, sim: Simulator, clock: FakeClock) -> None:
    clock.advance(20 * 3600)  # evening: the battery discharges
    plant = next(p for p in sim.plants if 14 in {d["device_type"] for d in sim.devices_of(p.ps_id)})
    ess = [d["ps_key"] for d in sim.devices_of(plant.ps_id) if d["device_type"] == 14]
    bat = [d["ps_key"] for d in sim.devices_of(plant.ps_id) if d["device_type"] == 43]
    ids = ["13119", "13121", "13126", "13141", "13149", "13150"]
    data = api.ok("getDeviceRealTimeData", {"device_type": 14, "ps_key_list": ess, "point_id_list": ids,
                                            "is_get_point_dict": "1"})
    assert {d["point_id"] for d in data["point_dict"]} == {int(i) for i in ids}
    pts = [e["device_point"] for e in data["device_point_list"]]
    assert all(float(p[f"p{i}"]) >= 0 for p in pts for i in ids)
    plant_pts = sim.plants[sim.plants.index(plant)]
    rt = api.ok("getPowerStationRealTimeData", {"ps_id_list": [str(plant_pts.ps_id)], "point_id_list": ["83326"]})
    battery_w = rt["device_point_list"][0].get("p83326")
    if battery_w:
        charge = sum(float(p["p13126"]) - float(p["p13150"]) for p in pts)
        assert charge == pytest.approx(float(battery_w), abs=1.0)
    socs = api.ok("getDeviceRealTimeData", {"device_type": 43, "ps_key_list": bat, "point_id_list": ["58604"]})
    assert all(0.0 <= float(e["device_point"]["p58604"]) <= 1.0 for e in socs["device_point_list"])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"point_id_list": ["24"], "ps_key_list": ["1_1_1_1"]}, ("009", "er_missing_parameter:device_type")),
        ({"device_type": 1, "ps_key_list": ["1_1_1_1"]}, ("009", "er_missing_parameter:point_id_list")),
        ({"device_type": 1, "point_id_list": ["24"]}, ("009", "er_missing_parameter:ps_key_list")),
        ({"device_type": 36, "point_id_list": ["24"], "ps_key_list": ["1_36_1_1"]},
         ("010", "er_parameter_value_invalid:device_type")),
        ({"device_type": "inverter", "point_id_list": ["24"], "ps_key_list": ["1_1_1_1"]},
         ("010", "er_parameter_value_invalid:device_type")),
        ({"device_type": 1, "point_id_list": [str(i) for i in range(101)], "ps_key_list": ["1_1_1_1"]},
         ("010", "er_parameter_value_invalid:point_id_list")),
        ({"device_type": 14, "point_id_list": ["24"], "ps_key_list": ["1_14_1_2", "1_22_247_3"]},
         ("010", "er_parameter_value_invalid:ps_key_list")),
    ],
)
def test_device_realtime_parameter_errors(api: Client, body: dict[str, Any], expected: tuple[str, str]) -> None:
    assert error_of(api.platform("getDeviceRealTimeData", body)) == expected


def test_mixed_device_types_of_real_devices_are_refused(api: Client, sim: Simulator) -> None:
    plant = next(p for p in sim.plants if len({d["device_type"] for d in sim.devices_of(p.ps_id)}) >= 2)
    devs = sim.devices_of(plant.ps_id)
    keys = [next(d["ps_key"] for d in devs if d["device_type"] == 1),
            next(d["ps_key"] for d in devs if d["device_type"] != 1)]
    assert error_of(api.platform("getDeviceRealTimeData", {"device_type": 1, "ps_key_list": keys,
                                                           "point_id_list": ["24"]})) == \
        ("010", "er_parameter_value_invalid:ps_key_list")
    # One type, but not the one asked for: those keys fail instead.
    data = api.ok("getDeviceRealTimeData", {"device_type": 14, "ps_key_list": keys[:1], "point_id_list": ["24"]})
    assert data["fail_ps_key_list"] == keys[:1]


def test_fail_list_names_and_serials(api: Client, sim: Simulator, clock: FakeClock) -> None:
    plant = next(p for p in sim.plants if inverter_keys(sim, p.ps_id))
    sn = next(d["device_sn"] for d in sim.devices_of(plant.ps_id) if d["device_type"] == 1)
    by_sn = api.ok("getDeviceRealTimeData", {"device_type": 1, "sn_list": f"['{sn}','A999']", "point_id_list": "24"})
    assert [e["device_point"]["device_sn"] for e in by_sn["device_point_list"]] == [sn]
    assert by_sn["fail_sn_list"] == ["A999"] and "fail_ps_key_list" not in by_sn
    with Simulator(plants=60, seed=7, clock=clock, device_fail_keys="table") as table_sim:
        table = Client(table_sim)
        got = table.ok("getDeviceRealTimeData", {"device_type": 1, "ps_key_list": ["1_1_1_1"], "point_id_list": ["24"]})
        assert got["illegal_ps_key_list"] == ["1_1_1_1"] and "fail_ps_key_list" not in got
        got = table.ok("getDeviceRealTimeData", {"device_type": 1, "sn_list": ["A999"], "point_id_list": ["24"]})
        assert got["illgal_sn_list"] == ["A999"]


def test_legacy_device_realtime_with_plant_keys(api: Client, sim: Simulator) -> None:
    keys = [f"{p.ps_id}_11_0_0" for p in sim.plants[:5]]
    data = api.legacy("getDeviceRealTimeData", {"device_type": 11, "ps_key_list": [*keys, "1_11_0_0"],
                                                "point_id_list": ["83022", "83033"]})
    result = data["result_data"]
    assert data["result_code"] == "1" and result["fail_ps_key_list"] == ["1_11_0_0"]
    assert [e["device_point"]["ps_key"] for e in result["device_point_list"]] == keys
    assert "point_dict" not in result


def test_unauthorised_plants_have_no_devices_for_the_app(api: Client, sim: Simulator) -> None:
    plant = next(p for p in sim.plants if inverter_keys(sim, p.ps_id))
    keys = inverter_keys(sim, plant.ps_id)
    sim.set_authorized(plant.ps_id, False)
    assert api.ok("getDeviceListByPsId", {"ps_id": plant.ps_id, "page": 1, "size": 5})["row_count"] == 0
    assert api.ok("getDeviceRealTimeData", {"device_type": 1, "ps_key_list": keys,
                                            "point_id_list": ["24"]})["fail_ps_key_list"] == keys
    rt = api.ok("getPowerStationRealTimeData", {"ps_id_list": [str(plant.ps_id)], "point_id_list": ["83033"]})
    assert rt["fail_ps_id_list"] == [str(plant.ps_id)]
    legacy = api.legacy("getDeviceList", {"ps_id": plant.ps_id, "curPage": 1, "size": 5})  # the user still sees it
    assert legacy["result_data"]["rowCount"] > 0


def test_same_seed_same_answers(clock: FakeClock) -> None:
    def snapshot() -> tuple[Any, ...]:
        with Simulator(plants=40, seed=11, clock=clock) as sim:
            api = Client(sim)
            faults = api.ok("getFaultAlarmInfo", {"page": 1, "size": 500})
            plant = sim.plants[5].ps_id
            devices = api.ok("getDeviceListByPsId", {"ps_id": plant, "page": 1, "size": 50})
            return faults["pageList"], devices["pageList"]

    assert snapshot() == snapshot()


def test_cli_options_for_the_new_endpoints() -> None:
    from exporter.simulator.__main__ import build_parser

    args = build_parser().parse_args(["--install-power-unit", "kW", "--device-fail-keys", "table",
                                      "--device-claim-key", "both", "--open-faults", "300"])
    assert (args.install_power_unit, args.device_fail_keys, args.device_claim_key, args.open_faults) == \
        ("kW", "table", "both", 300)
    with pytest.raises(ValueError, match="install_power_unit"):
        Simulator(plants=1, install_power_unit="MW")
    with pytest.raises(ValueError, match="device_fail_keys"):
        Simulator(plants=1, device_fail_keys="illegal")
