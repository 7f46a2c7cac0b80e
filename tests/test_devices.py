"""Devices end to end: the exporter on a real socket against the simulator over HTTP. Every plant's device list
(page by page, both auth modes), device real-time points split by device type, a plant without devices, an
undocumented and an unknown device type, a device that disappears, a device that faults and recovers between
inventories, and bad device configuration."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import ConfigError, parse_config
from exporter.data import DEVICE_TYPE_SLUGS
from exporter.fetch.devices import DeviceRealtimeApi
from exporter.simulator import Simulator
from tests.conftest import Clock, login_account, oauth_account, samples, select, value
from tests.test_config_errors import assert_one_clear_line, login, run_cli

LIST_PATH, LEGACY_LIST_PATH = "/openapi/platform/getDeviceListByPsId", "/openapi/getDeviceList"
RT_PATH = "/openapi/platform/getDeviceRealTimeData"
VALID = (1, 3)
HOUR, DAY = 3600.0, 86400.0


def listed(s: Simulator) -> list[int]:
    return [p.ps_id for p in s.plants if int(p["valid_flag"]) in VALID]


def oauth(s: Simulator, **extra: Any) -> dict[str, Any]:
    extra.setdefault("realtime", {"enabled": False})
    return oauth_account(s, None, **extra)


def realtime(**settings: Any) -> dict[str, Any]:
    return {"realtime": {"enabled": True, **settings}}


def list_calls(s: Simulator, ps_id: int | None = None) -> list[Any]:
    return [c for c in s.calls if c.path in (LIST_PATH, LEGACY_LIST_PATH)
            and (ps_id is None or str(c.body["ps_id"]) == str(ps_id))]


def rt_calls(s: Simulator) -> list[Any]:
    return [c for c in s.calls if c.path.endswith("getDeviceRealTimeData")]


def devices_of(found: dict, metric: str = "isolarcloud_device_info", **labels: str) -> dict[str, dict[str, str]]:
    return {dict(lbl)["ps_key"]: dict(lbl) for lbl in select(found, metric, **labels)}


def test_every_listed_plant_s_devices_as_the_cloud_lists_them(make_sim, run_exporter) -> None:
    sim = make_sim(plants=25, seed=1, clock=Clock())  # held still: a fault record rotating changes a device status
    r = run_exporter({"accounts": [oauth(sim, devices={"firmware": True})]}, start=False)
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="devices") == 1
    exported = devices_of(found, account="oauth")
    expected = {row["ps_key"]: row for ps_id in listed(sim) for row in sim.devices_of(ps_id, lang="_en_US")}
    assert set(exported) == set(expected) and len(expected) > 50
    for key, row in expected.items():
        labels = exported[key]
        assert labels["device_sn"] == row["device_sn"] and labels["device_model"] == row["device_model_code"]
        assert labels["device_name"] == row["device_name"] and labels["ps_id"] == str(row["ps_id"])
        assert labels["device_type"] == DEVICE_TYPE_SLUGS.get(row["device_type"], f"unknown_{row['device_type']}")
        assert labels["factory_name"] == (row["factory_name"] or "")  # null: an empty label
        assert labels["communication_dev_sn"] == (row["communication_dev_sn"] or "")
        assert labels["claim_state"] == str(row.get("claim_state", row.get("rel_state")))
        firmware = row.get("firmware_version_info") or {}
        assert labels["lcd_version"] == (firmware.get("lcd_version") or "")
        assert value(found, "isolarcloud_device_fault_status", ps_key=key) == row["dev_fault_status"]
        assert value(found, "isolarcloud_device_deployment_status", ps_key=key) == int(row["dev_status"])
    assert "unknown_99" in {lbl["device_type"] for lbl in exported.values()}  # undocumented, kept visible
    # One list call per plant (none has more than 100 devices here), a plant without devices included.
    assert sorted(int(c.body["ps_id"]) for c in list_calls(sim)) == sorted(listed(sim))
    bare = next(p for p in listed(sim) if not sim.devices_of(p))
    assert value(found, "isolarcloud_device_inventory_timestamp_seconds", ps_id=str(bare)) is not None
    assert not select(found, "isolarcloud_device_info", ps_id=str(bare))
    assert all(c.body["is_get_firmware_version"] == 1 and c.body["size"] == 100 for c in list_calls(sim))


def test_a_plant_with_hundreds_of_devices_is_read_page_by_page(make_sim, run_exporter) -> None:
    s = make_sim(plants=6, seed=5)
    big = listed(s)[0]
    s.set_plant(big, ps_type=1, capacity_w=90e6, connect_type=1)
    n = len(s.devices_of(big))
    assert n > 250
    r = run_exporter({"accounts": [oauth(s, devices={"page_size": 100})]}, start=False)
    r.refresh_now()
    found = r.metrics()
    assert [c.body["page"] for c in list_calls(s, big)] == list(range(1, math.ceil(n / 100) + 1))
    assert len(devices_of(found, ps_id=str(big))) == n
    # The budget forecast counts the big plant's pages, not one call: a pass a day of (plants - 1) + pages calls.
    pages = sum(max(1, math.ceil(len(s.devices_of(p)) / 100)) for p in listed(s))
    assert pages >= len(listed(s)) - 1 + math.ceil(n / 100)
    share = value(found, "isolarcloud_collection_budget_calls_per_hour", account="oauth", collection="devices")
    assert share == pytest.approx(pages * HOUR / DAY)


def test_login_apps_read_the_legacy_device_list(sim: Simulator, run_exporter) -> None:
    r = run_exporter({"accounts": [login_account(sim, devices={"page_size": 3})]}, start=False)
    r.refresh_now()
    found = r.metrics()
    calls = list_calls(sim)
    assert calls and all(c.path == LEGACY_LIST_PATH and "curPage" in c.body and c.body["token"] for c in calls)
    expected = {row["ps_key"] for ps_id in listed(sim) for row in sim.devices_of(ps_id)}
    exported = devices_of(found, account="login")
    assert set(exported) == expected
    served = {row["ps_key"]: row for c in calls for row in c.response["result_data"]["pageList"]}
    assert all(lbl["claim_state"] == str(served[key]["rel_state"]) for key, lbl in exported.items())  # legacy name


def test_device_points_one_device_type_per_call(sim: Simulator, run_exporter) -> None:
    types = ["inverter", "energy_storage_system", 43]
    r = run_exporter({"accounts": [oauth(sim, devices=realtime(device_types=types,
                                                                points=[1, 2, 24, 13141, 58604]))]}, start=False)
    r.refresh_now()
    found = r.metrics()
    calls = rt_calls(sim)
    assert {c.body["device_type"] for c in calls} == {"1", "14", "43"}
    for call in calls:
        assert call.result_code == "1", call.response
        assert {k.split("_")[1] for k in call.body["ps_key_list"]} == {str(call.body["device_type"])}
        assert call.body["point_id_list"] == ["1", "2", "24", "13141", "58604"]
    answered = {e["device_point"]["ps_key"]: e["device_point"] for c in calls
                for e in c.response["result_data"]["device_point_list"]}
    inverters = [k for k in answered if k.split("_")[1] == "1"]
    assert inverters
    for key in inverters:
        point = answered[key]
        for metric, field, scale in (("isolarcloud_device_power_watts", "p24", 1.0),
                                     ("isolarcloud_device_energy_today_joules", "p1", 3600.0),
                                     ("isolarcloud_device_energy_joules_total", "p2", 3600.0)):
            expected = None if point[field] is None else float(point[field]) * scale
            assert value(found, metric, ps_key=key) == expected
        assert value(found, "isolarcloud_device_data_timestamp_seconds", ps_key=key) is not None
        assert not select(found, "isolarcloud_device_point_value", ps_key=key, point_id="24")  # named above
    ess = next(k for k in answered if k.split("_")[1] == "14" and answered[k]["p13141"] is not None)
    point = select(found, "isolarcloud_device_point_value", ps_key=ess, point_id="13141")
    (labels, got), = point.items()
    assert got == float(answered[ess]["p13141"])
    assert dict(labels)["point_name"] and dict(labels)["device_type"] == "energy_storage_system"
    assert not select(found, "isolarcloud_device_power_watts", ps_key=ess)  # point 24 is an inverter point
    battery = next(k for k in answered if k.split("_")[1] == "43" and answered[k]["p58604"] is not None)
    assert value(found, "isolarcloud_device_point_value", ps_key=battery, point_id="58604") == \
        float(answered[battery]["p58604"])
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="device_realtime") == 1


def test_the_gateway_refuses_mixed_types_which_the_exporter_never_sends(sim: Simulator, run_exporter) -> None:
    """The same devices in one call (as a naive client would ask) are refused with 010; the exporter's pass asks
    them type by type and is answered."""
    r = run_exporter({"accounts": [oauth(sim, devices=realtime(device_types=[1, 43]))]}, start=False)
    r.refresh_now()
    engine = r.exporter.engines[0]
    plant = next(p for p in listed(sim) if {1, 43} <= {d["device_type"] for d in sim.devices_of(p)})
    keys = [d["ps_key"] for d in sim.devices_of(plant) if d["device_type"] in (1, 43)]
    naive = DeviceRealtimeApi(engine.session, batch_size=50, points=["24"]).read({1: keys}, {})
    assert naive.refused[1].result == "010" and not naive.readings
    assert rt_calls(sim)[-1].result_code == "010"
    assert all(c.result_code == "1" for c in rt_calls(sim)[:-1])
    assert all(value(r.metrics(), "isolarcloud_device_data_timestamp_seconds", ps_key=k) is not None for k in keys)


def test_a_device_type_the_gateway_refuses_leaves_the_others(sim: Simulator, run_exporter,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    sim.inject("code:010", path="getDeviceRealTimeData", times=1)  # the first type asked: batteries
    r = run_exporter({"accounts": [oauth(sim, devices=realtime(device_types=["battery", "inverter"]))]},
                     start=False)
    with caplog.at_level(logging.WARNING):
        r.refresh_now()
    found = r.metrics()
    assert [c.body["device_type"] for c in rt_calls(sim)][:1] == ["43"]
    assert select(found, "isolarcloud_device_power_watts", device_type="inverter")
    assert not select(found, "isolarcloud_device_data_timestamp_seconds", device_type="battery")
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="device_realtime") == 1
    assert any("device type 43 refused" in rec.getMessage() for rec in caplog.records)
    assert value(found, "isolarcloud_api_requests_total", account="oauth", endpoint="getDeviceRealTimeData",
                 result="010") == 1


def test_undocumented_device_types_are_asked_for_by_their_code(sim: Simulator, run_exporter) -> None:
    r = run_exporter({"accounts": [oauth(sim, devices=realtime(device_types=["unknown_99"], points=["24"]))]},
                     start=False)
    r.refresh_now()
    found = r.metrics()
    assert {c.body["device_type"] for c in rt_calls(sim)} == {"99"}
    assert select(found, "isolarcloud_device_data_timestamp_seconds", device_type="unknown_99")


def test_unknown_device_types_in_the_configuration_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.devices\.realtime\.device_types\[1\]: 'inverters'"):
        parse_config({"accounts": [login(devices=realtime(device_types=["inverter", "inverters"]))]}, env={})
    with pytest.raises(ConfigError, match=r"devices\.device_types\[0\]: 36 is not a device type of Appendix 1"):
        parse_config({"accounts": [login(devices={"device_types": [36]})]}, env={})
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"accounts": [login(devices=realtime(device_types=["solar_panel"]))]}))
    config.chmod(0o600)
    assert_one_clear_line(run_cli(f"--config.file={config}"), "accounts[0].devices.realtime.device_types[0]",
                          "solar_panel")


def with_device_realtime(make_sim, run_exporter) -> tuple[Simulator, Clock, Any]:  # type: ignore[no-untyped-def]
    """Eight plants with inverter real-time data every 300 s, refreshed once, on a clock the test moves."""
    s = make_sim(plants=8, seed=3)
    clock = Clock()
    r = run_exporter({"refresh_interval": 300, "accounts": [oauth(s, devices=realtime())]}, clock=clock,
                     start=False)
    r.refresh_now()
    return s, clock, r


def test_a_device_that_disappears(make_sim, run_exporter) -> None:
    s, clock, r = with_device_realtime(make_sim, run_exporter)
    found = r.metrics()
    gone = next(k for k, lbl in devices_of(found, device_type="inverter").items()
                if value(found, "isolarcloud_device_data_timestamp_seconds", ps_key=k) is not None)
    plant = int(gone.split("_")[0])
    s.remove_device(gone)
    clock.advance(300)
    r.refresh_now()  # the real-time pass: the device is in the fail list, its values gone
    found = r.metrics()
    assert value(found, "isolarcloud_device_realtime_failed_devices", account="oauth") == 1
    assert value(found, "isolarcloud_device_power_watts", ps_key=gone) is None
    assert value(found, "isolarcloud_device_info", ps_key=gone) == 1  # still listed: its plant not read again yet
    reads = len(list_calls(s, plant))
    for _ in range(30):  # its plant's next turn in the daily inventory
        clock.advance(HOUR)
        r.refresh_now()
        if len(list_calls(s, plant)) > reads:
            break
    found = r.metrics()
    assert len(list_calls(s, plant)) == reads + 1
    assert value(found, "isolarcloud_device_info", ps_key=gone) is None
    assert value(found, "isolarcloud_device_fault_status", ps_key=gone) is None
    assert value(found, "isolarcloud_device_realtime_failed_devices", account="oauth") == 0
    assert select(found, "isolarcloud_device_info", ps_id=str(plant))  # its other devices stay


def test_a_device_fault_between_inventories_shows_at_the_next_real_time_pass(make_sim, run_exporter) -> None:
    s, clock, r = with_device_realtime(make_sim, run_exporter)
    found = r.metrics()
    key = next(k for k in devices_of(found, device_type="inverter")
               if value(found, "isolarcloud_device_fault_status", ps_key=k) == 4)
    code = s.open_fault(int(key.split("_")[0]), 1, ps_key=key)
    calls = len(list_calls(s))
    clock.advance(300)
    r.refresh_now()
    assert len(list_calls(s)) == calls  # no inventory call: the real-time pass brought the news
    assert value(r.metrics(), "isolarcloud_device_fault_status", ps_key=key) == 1
    s.close_fault(code)
    clock.advance(300)
    r.refresh_now()
    assert value(r.metrics(), "isolarcloud_device_fault_status", ps_key=key) == 4


def test_devices_of_a_plant_that_leaves_the_account_go_with_it(sim: Simulator, run_exporter) -> None:
    r = run_exporter({"accounts": [oauth(sim)]}, start=False)
    r.refresh_now()
    plant = next(p for p in listed(sim) if sim.devices_of(p))
    assert select(r.metrics(), "isolarcloud_device_info", ps_id=str(plant))
    sim.set_authorized(plant, False)
    r.refresh_now()
    found = r.metrics()
    assert not select(found, "isolarcloud_device_info", ps_id=str(plant))
    assert value(found, "isolarcloud_device_inventory_timestamp_seconds", ps_id=str(plant)) is None


def test_device_series_parse_in_both_formats(sim: Simulator, run_exporter) -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

    r = run_exporter({"accounts": [oauth(sim, devices=realtime(points=[1, 2, 24, 4]))]}, start=False)
    r.refresh_now()
    text = r.scrape()
    assert len(select(samples(text), "isolarcloud_device_info")) > 50
    om = r.get(headers={"Accept": "application/openmetrics-text; version=1.0.0"}).text
    families = {f.name: f for f in parse_openmetrics(om)}
    assert families["isolarcloud_device"].type == "info"
    assert families["isolarcloud_device_energy_joules"].type == "counter"
    assert {s.name for s in families["isolarcloud_device_energy_joules"].samples} == {
        "isolarcloud_device_energy_joules_total"}
    assert len(families["isolarcloud_device_fault_status"].samples) == len(select(samples(text),
                                                                                  "isolarcloud_device_info"))
