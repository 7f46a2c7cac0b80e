"""Devices as a specification (exporter/fetch/devices.py, exporter/collect/devices.py): the device list read page by
page with both spellings of the fields that differ, device real-time calls of one device type each within the
point limit, the inventory spread over its interval within its share of the budget, and the device state kept
current from the freshest source. In-memory gateway and a settable clock: no sockets, no sleeping."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

import pytest

from exporter.collect.devices import DeviceInventoryCollection, DeviceRealtimeCollection
from exporter.collect.engine import AccountEngine
from exporter.data import (
    DEVICE_NORMAL,
    Device,
    DeviceReading,
    device_fault_status,
    worst_open_status,
)
from exporter.fetch.devices import DeviceListApi, DeviceRealtimeApi, parse_device
from exporter.fetch.envelope import QuotaError, ResponseError
from tests.conftest import Clock
from tests.fakes import (
    FakeGateway,
    engine_on,
    fail,
    login_session,
    oauth_session,
    ok,
    paged_list,
    plant_row,
    token_answers,
)

LIST, REALTIME = "queryPowerStationList", "getPowerStationRealTimeData"
DEVICES, DEVICE_RT = "getDeviceListByPsId", "getDeviceRealTimeData"
HOUR, DAY = 3600.0, 86400.0


def device_row(ps_id: int, n: int, device_type: int = 1, **fields: Any) -> dict[str, Any]:
    """A getDeviceListByPsId row with the table's fields, in the recorded shapes (dev_status a string)."""
    row: dict[str, Any] = {
        "uuid": f"{ps_id}{n:03d}", "ps_key": f"{ps_id}_{device_type}_1_{n}", "device_sn": f"A{ps_id}{n:03d}",
        "device_name": f"Device {n}", "device_type": device_type, "type_name": "逆变器", "device_model_id": 1,
        "device_model_code": "SG10RT", "dev_fault_status": 4, "dev_status": "1", "claim_state": 1,
        "communication_dev_sn": f"B{ps_id}", "factory_name": "阳光电源", "ps_id": ps_id}
    row.update(fields)
    return row


def device_lists(devices: dict[int, list[dict[str, Any]]], *, total_key: str = "row_count",
                 max_size: int | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A device-list endpoint that pages each plant's rows as asked (`page` or `curPage`)."""

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        rows = devices.get(int(body["ps_id"]), [])
        size = int(body["size"]) if max_size is None else min(int(body["size"]), max_size)
        page = int(body.get("page", body.get("curPage")))
        return ok({"pageList": rows[(page - 1) * size: page * size], total_key: len(rows)})

    return answer


def device_realtime(values: Callable[[str, str], str | None] = lambda key, point: "1000",
                    fail_key: str = "fail_ps_key_list") -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Device real-time data as the recorded answers give it: entries nested under device_point, strings or null;
    keys of more than one device type refused with 010, as the table's "must pass the same device type" implies."""

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        keys = body["ps_key_list"]
        types = {k.split("_")[1] for k in keys}
        if len(types) > 1:
            return fail("010", "er_parameter_value_invalid:ps_key_list")
        assert types == {str(body["device_type"])}
        assert len(body["point_id_list"]) <= 100
        entries = [{"device_point": {"ps_key": k, "ps_id": int(k.split("_")[0]), "device_sn": "A", "uuid": 1,
                                     "device_name": "Device", "device_time": "20241127151500", "dev_status": 1,
                                     "dev_fault_status": 4, "communication_dev_sn": "B",
                                     **{f"p{p}": values(k, p) for p in body["point_id_list"]}}}
                   for k in keys if not k.endswith("_99")]
        return ok({"device_point_list": entries, fail_key: [k for k in keys if k.endswith("_99")],
                   "point_dict": [{"point_id": int(p), "point_name": f"Point {p}", "point_unit": "W"}
                                  for p in body["point_id_list"]]})

    return answer


# --------------------------------------------------------------------------- the device list


def test_a_plant_with_many_devices_is_read_page_by_page() -> None:
    gateway = FakeGateway({DEVICES: device_lists({7: [device_row(7, n) for n in range(1, 251)]})})
    api = DeviceListApi(oauth_session(gateway, clock=Clock()), page_size=100, firmware=False)
    devices, calls = api.devices("7")
    assert calls == 3 and [b["page"] for _n, b, _h in gateway.calls] == [1, 2, 3]
    assert len({d.ps_key for d in devices}) == 250
    assert api.calls(len(devices)) == 3 and api.calls(None) == 1 and api.calls(0) == 1


def test_a_gateway_that_clamps_the_page_size_is_noticed() -> None:
    gateway = FakeGateway({DEVICES: device_lists({7: [device_row(7, n) for n in range(1, 121)]}, max_size=50)})
    api = DeviceListApi(oauth_session(gateway, clock=Clock()), page_size=100, firmware=False)
    devices, calls = api.devices("7")
    assert (len(devices), calls) == (120, 3)
    assert api.calls(120) == 3  # the next read of this plant is forecast at 50 rows a page


def test_a_plant_without_devices_is_one_call_and_an_empty_list() -> None:
    gateway = FakeGateway({DEVICES: device_lists({})})
    api = DeviceListApi(oauth_session(gateway, clock=Clock()), page_size=100, firmware=False)
    assert api.devices("7") == ([], 1)


def test_both_spellings_and_the_recorded_value_shapes() -> None:
    rows = [device_row(7, 1, dev_status="1", claim_state=None, rel_state="0", dev_fault_status="1",
                       firmware_version_info={"lcd_version": "LCD_1", "m_version": None, "new_key": "x"}),
            device_row(7, 2, device_type=None, ps_key="7_14_1_2", dev_status=0, claim_state=1,
                       firmware_version_info=None, device_name="Line1\rLine2"),
            device_row(7, 3, ps_key=None),
            device_row(7, 4, ps_key="  ", device_sn="X")]
    gateway = FakeGateway({DEVICES: device_lists({7: rows}, total_key="rowCount")})
    devices, _calls = DeviceListApi(oauth_session(gateway, clock=Clock()), page_size=100, firmware=True).devices("7")
    first, second = devices
    assert (first.deployment_status, first.fault_status, first.claim_state) == (1, 1, 0)
    assert dict(first.firmware or ())["lcd_version"] == "LCD_1" and dict(first.firmware or ())["m_version"] == ""
    assert "new_key" not in dict(first.firmware or ())  # the nine documented keys: bounded labels
    assert (first.device_type, first.model, first.factory_name) == ("inverter", "SG10RT", "阳光电源")
    # A row without device_type: the ps_key's second part, as in every example of the reference.
    assert (second.device_type_code, second.device_type, second.claim_state) == (14, "energy_storage_system", 1)
    assert second.device_name == "Line1 Line2" and second.firmware is not None
    assert gateway.calls[0][1]["is_get_firmware_version"] == 1


def test_the_legacy_list_for_login_apps() -> None:
    gateway = FakeGateway({"getDeviceList": device_lists({7: [device_row(7, n, rel_state=1) for n in range(1, 8)]},
                                                          total_key="rowCount"),
                           "login": lambda body: ok({"token": "t_1", "login_state": "1", "user_id": "1"})})
    api = DeviceListApi(login_session(gateway, clock=Clock()), page_size=5, firmware=False, device_types=(1, 14))
    devices, calls = api.devices("7")
    bodies = [b for name, b, _h in gateway.calls if name == "getDeviceList"]
    assert [b["curPage"] for b in bodies] == [1, 2] and "page" not in bodies[0]
    assert bodies[0]["device_type_list"] == [1, 14] and bodies[0]["ps_id"] == 7  # as the legacy example
    assert calls == 2 and len(devices) == 7


def test_a_list_that_changes_while_paged_is_read_again_and_then_refused() -> None:
    rows = [device_row(7, n) for n in range(1, 6)]
    grown = [*rows, device_row(7, 6)]
    answers = iter([rows, grown, rows, grown])

    def shifting(body: dict[str, Any]) -> dict[str, Any]:
        current = next(answers)
        page, size = int(body["page"]), int(body["size"])
        return ok({"pageList": current[(page - 1) * size: page * size], "row_count": len(current)})

    api = DeviceListApi(oauth_session(FakeGateway({DEVICES: shifting}), clock=Clock()), page_size=3, firmware=False)
    with pytest.raises(ResponseError, match="inconsistent twice"):
        api.devices("7")
    answers = iter([rows, grown, rows, grown])
    devices, calls = api.devices("7", strict=False)
    assert calls == 4 and len(devices) == 6


# --------------------------------------------------------------------------- device real-time data


def test_one_device_type_per_call_and_at_most_100_points() -> None:
    gateway = FakeGateway({DEVICE_RT: device_realtime()})
    points = [str(p) for p in range(1, 151)]
    api = DeviceRealtimeApi(oauth_session(gateway, clock=Clock()), batch_size=2, points=points)
    groups = {1: ["7_1_1_1", "7_1_1_2", "8_1_1_1"], 14: ["7_14_1_1"]}
    assert api.calls({t: len(k) for t, k in groups.items()}) == (2 + 1) * 2
    result = api.read(groups, {})
    calls = [b for name, b, _h in gateway.calls if name == DEVICE_RT]
    assert len(calls) == 6 and not result.refused
    assert all(len({k.split("_")[1] for k in b["ps_key_list"]}) == 1 for b in calls)
    assert [len(b["point_id_list"]) for b in calls] == [100, 50, 100, 50, 100, 50]
    assert {b["device_type"] for b in calls} == {"1", "14"}  # strings, as the platform example sends them
    assert all(b["is_get_point_dict"] == "1" for b in calls)
    assert set(result.readings) == {"7_1_1_1", "7_1_1_2", "8_1_1_1", "7_14_1_1"}
    assert len(result.readings["7_1_1_1"].points) == 150  # both point chunks merged
    assert result.point_names[(14, "24")] == ("Point 24", "W")


def test_values_null_times_and_fail_lists() -> None:
    def values(key: str, point: str) -> str | None:
        return {"1": "12.5", "2": None, "24": ""}.get(point)

    for fail_key in ("fail_ps_key_list", "illegal_ps_key_list"):
        gateway = FakeGateway({DEVICE_RT: device_realtime(values, fail_key)})
        api = DeviceRealtimeApi(oauth_session(gateway, clock=Clock()), batch_size=50, points=["1", "2", "24"])
        result = api.read({1: ["7_1_1_1", "7_1_1_99"]}, {"7": timezone(timedelta(hours=8))})
        reading = result.readings["7_1_1_1"]
        assert reading.points == {"1": 12.5}  # null and "" are absent, never 0
        assert (reading.fault_status, reading.deployment_status) == (4, 1)
        assert reading.data_ts == 1732691700.0  # 2024-11-27 15:15:00 at GMT+8
        assert result.failed == {"7_1_1_99"}


def test_a_refused_device_type_leaves_the_others_and_account_errors_end_the_pass() -> None:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        if body["device_type"] == "43":
            return fail("010", "er_parameter_value_invalid:device_type")
        return device_realtime()(body)

    gateway = FakeGateway({DEVICE_RT: answer})
    api = DeviceRealtimeApi(oauth_session(gateway, clock=Clock()), batch_size=50, points=["24"])
    result = api.read({43: ["7_43_1_1"], 1: ["7_1_1_1"]}, {})
    assert set(result.refused) == {43} and set(result.readings) == {"7_1_1_1"}
    gateway.on(DEVICE_RT, lambda body: fail("E999"))
    with pytest.raises(QuotaError):
        api.read({1: ["7_1_1_1"]}, {})


def test_legacy_device_realtime_has_no_point_dictionary() -> None:
    gateway = FakeGateway({DEVICE_RT: device_realtime(),
                           "login": lambda body: ok({"token": "t_1", "login_state": "1", "user_id": "1"})})
    api = DeviceRealtimeApi(login_session(gateway, clock=Clock()), batch_size=50, points=["24"])
    result = api.read({1: ["7_1_1_1"]}, {})
    body = next(b for name, b, _h in gateway.calls if name == DEVICE_RT)
    assert "is_get_point_dict" not in body and body["device_type"] == 1  # a number, as the legacy example
    assert result.readings["7_1_1_1"].points == {"24": 1000.0}


# --------------------------------------------------------------------------- the collections under the engine


def make(gateway: FakeGateway, clock: Clock, plants: int = 20, devices_per_plant: int = 3,
         **account: Any) -> AccountEngine:
    ids = [1000 + i for i in range(plants)]
    gateway.handlers.setdefault(LIST, paged_list([plant_row(i) for i in ids]))
    gateway.handlers.setdefault(REALTIME, lambda body: ok({"device_point_list": [], "fail_ps_id_list": []}))
    gateway.handlers.setdefault("refreshToken", token_answers())
    gateway.handlers.setdefault(DEVICES, device_lists({i: [device_row(i, n) for n in range(1, devices_per_plant + 1)]
                                                       for i in ids}))
    gateway.handlers.setdefault(DEVICE_RT, device_realtime())
    # The device collections beside the plant list and real-time data: the other collections are specified
    # in their own tests.
    account.setdefault("faults", {"enabled": False})
    account.setdefault("details", {"enabled": False})
    return engine_on(gateway, clock, account)


@pytest.fixture
def clock() -> Clock:
    return Clock(1000 * HOUR + 60)


def inventory_of(engine: AccountEngine) -> DeviceInventoryCollection:
    return next(c for c in engine.collections if isinstance(c, DeviceInventoryCollection))


def test_the_collections_come_after_the_plant_collections_and_device_realtime_is_off_by_default(
        clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock)
    assert [c.name for c in engine.collections][:2] == ["plants", "faults"]  # the plant collections first
    assert [c.name for c in engine.collections][-3:] == ["devices", "device_realtime", "quota"]
    engine.refresh()
    assert [name for name, _b, _h in gateway.calls] == ["refreshToken", LIST, REALTIME] + [DEVICES] * 20
    state = engine.state()
    assert [c.name for c in state.collections] == ["plants", "realtime", "devices"]
    assert state.devices is not None and len(state.devices.plants) == 20 and state.device_readings is None
    devices = next(c for c in state.collections if c.name == "devices")
    assert devices.up and devices.interval == DAY and devices.max_age == 3 * DAY


def test_each_plant_once_a_day_in_a_steady_trickle(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=50, realtime={"enabled": False}, refresh_interval=900)
    engine.refresh()
    last = {str(1000 + i): clock.now for i in range(50)}
    longest, per_cycle = 0.0, []
    for _ in range(2 * 96):  # two days of 15-minute cycles
        clock.advance(900)
        before = len(gateway.calls)
        engine.refresh()
        asked = [str(b["ps_id"]) for name, b, _h in gateway.calls[before:] if name == DEVICES]
        per_cycle.append(len(asked))
        for plant in asked:
            longest = max(longest, clock.now - last[plant])
            last[plant] = clock.now
    assert DAY <= longest <= DAY + 2 * HOUR  # its turn, plus at most the wait for a token
    assert max(per_cycle) <= 2 and sum(per_cycle) == 100  # 50 plants a day, never a burst


def test_a_new_plant_is_read_at_the_next_cycle(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=5)
    engine.refresh()
    gateway.on(LIST, paged_list([plant_row(1000 + i) for i in range(6)]))
    gateway.on(DEVICES, device_lists({1005: [device_row(1005, 1)]}))
    clock.advance(300)
    engine.refresh()
    assert [b["ps_id"] for name, b, _h in gateway.calls[-1:] if name == DEVICES] == ["1005"]
    state = engine.state()
    assert state.devices is not None and [d.ps_key for d in state.devices.plants["1005"].devices] == ["1005_1_1_1"]


def test_a_new_plant_goes_before_a_first_pass_still_under_way(clock: Clock) -> None:
    """500 plants at 5 inventory calls an hour take four days for the first pass; a plant added meanwhile is
    read at the next cycle with a call to spend, not after the 500."""
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=500, api_budget_per_hour=50, realtime={"enabled": False})
    for _ in range(12):
        engine.refresh()
        clock.advance(300)
    gateway.on(LIST, paged_list([plant_row(1000 + i) for i in range(501)]))
    gateway.on(DEVICES, device_lists({1500: [device_row(1500, 1)]}))
    before = len(gateway.calls)
    for _ in range(9):  # 45 minutes: the (stretched) list runs again within it, and the bucket holds calls
        engine.refresh()
        clock.advance(300)
    calls = [name for name, _b, _h in gateway.calls[before:]]
    after_list = [b["ps_id"] for name, b, _h in gateway.calls[before + calls.index(LIST):] if name == DEVICES]
    assert after_list[0] == "1500"  # the first device list read once the plant list shows the new plant
    assert "1500" in inventory_of(engine).inventory


def test_the_forecast_counts_pages_and_a_big_plant_waits_for_a_full_bucket(clock: Clock) -> None:
    """Plants of 250 devices cost 3 calls a read at page 100: the demand says so, and at a share of 1 call an
    hour each such plant is read when 3 calls have been saved, never more often."""
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=4, devices_per_plant=250, api_budget_per_hour=100,
                  realtime={"enabled": False}, devices={"inventory_interval": "12h"})
    engine.refresh()  # spare budget: the start-up backlog at once (4 plants x 3 pages)
    inventory = inventory_of(engine)
    assert gateway.count(DEVICES) == 12
    assert inventory.calls_per_pass(4) == 12
    share = engine.shares["devices"]
    assert share.calls_per_hour == pytest.approx(12 * 3600 / (12 * HOUR))  # 1 call an hour for 12 calls a pass
    calls = gateway.count(DEVICES)
    for _ in range(24 * 12):
        clock.advance(300)
        engine.refresh()
    assert gateway.count(DEVICES) - calls == 24  # 2 reads of each plant in a day, 3 pages each
    assert engine.stats.calls_this_hour(clock.now) <= 100


def test_plants_bigger_than_forecast_never_overrun_the_hour(clock: Clock) -> None:
    """Plants not read yet are forecast at one page; these have ten. Their first page tells, and a read that
    would overrun the clock hour's budget stops there: the plant is read later, at its real cost."""
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=4, devices_per_plant=1000, api_budget_per_hour=30,
                  realtime={"enabled": False})
    hours: dict[int, int] = {}
    for _ in range(24 * 12):
        before = len(gateway.calls)
        engine.refresh()
        hour = int(clock.now // HOUR)
        hours[hour] = hours.get(hour, 0) + len(gateway.calls) - before
        clock.advance(300)
    assert max(hours.values()) <= 30
    inventory = inventory_of(engine)
    assert set(inventory.inventory) == {"1000", "1001", "1002", "1003"}
    assert all(len(entry.devices) == 1000 for entry in inventory.inventory.values())
    assert inventory.read_calls == dict.fromkeys(("1000", "1001", "1002", "1003"), 10)
    assert inventory.calls_per_pass(4) == 40


def test_catching_up_never_crowds_out_the_plant_list(clock: Clock) -> None:
    """A budget that carries everything at its wanted interval with little to spare (1,000 plants at 410 calls an
    hour; 10,000 at 4,100 scale alike): the first inventory pass spends only the spare part of each clock hour,
    so the plant list and real-time data keep their 5 minutes and never go stale."""
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=1000, api_budget_per_hour=410)
    lists, realtimes, devices = [], [], []
    for _hour in range(3):
        counts = (gateway.count(LIST), gateway.count(REALTIME), gateway.count(DEVICES))
        for _ in range(12):
            engine.refresh()
            assert engine.state().up and engine.state().production is not None
            clock.advance(300)
        lists.append(gateway.count(LIST) - counts[0])
        realtimes.append(gateway.count(REALTIME) - counts[1])
        devices.append(gateway.count(DEVICES) - counts[2])
        assert engine.stats.calls_this_hour(clock.now - 1) <= 410
    assert lists == [120] * 3 and realtimes == [240] * 3  # every 5 minutes, every hour
    share = engine.shares["devices"]
    assert all(n <= share.calls_per_hour + share.spare_per_hour + 1 for n in devices)


def test_a_short_budget_stretches_the_inventory_and_says_so(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """500 plants at 50 calls an hour (10,000 at 1,000 scale alike): the list wants 60/h, the inventory's floor is
    5 calls an hour, so an inventory pass takes 100 hours. Logged once, shown as the interval, never overspent."""
    gateway = FakeGateway()
    with caplog.at_level(logging.INFO):
        engine = make(gateway, clock, plants=500, api_budget_per_hour=50, realtime={"enabled": False})
        for _ in range(12 * 6):
            engine.refresh()
            assert engine.stats.calls_this_hour(clock.now) <= 50
            clock.advance(300)
    devices = next(c for c in engine.state().collections if c.name == "devices")
    assert devices.calls_per_hour == pytest.approx(5) and devices.interval == pytest.approx(100 * HOUR)
    assert engine.state().interval > 300  # the list stretched too: 45 calls an hour for 5 a pass
    stretched = [r.getMessage() for r in caplog.records if "carries one pass every" in r.getMessage()]
    assert len(stretched) == 1 and "4.17 d instead of every 1 d" in stretched[0]
    assert 25 <= gateway.count(DEVICES) <= 35  # ~5 an hour over six hours


def test_a_failing_plant_keeps_its_devices_and_is_asked_again_after_an_hour(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=3, devices={"inventory_interval": "6h"})
    engine.refresh()  # all three at once; next turns staggered at +2 h, +4 h, +6 h
    first = clock.now
    good = gateway.handlers[DEVICES]
    gateway.on(DEVICES, lambda body: fail("-1") if str(body["ps_id"]) == "1000" else good(body))  # type: ignore
    while gateway.count(DEVICES) == 3:
        clock.advance(300)
        engine.refresh()
    state = engine.state()
    assert state.devices is not None and "1000" in state.devices.failed
    assert state.devices.plants["1000"].taken_at == first  # the older entry, kept
    assert next(c for c in state.collections if c.name == "devices").up  # one plant's trouble, not the endpoint's
    inventory = inventory_of(engine)
    assert inventory.schedule.next_due["1000"] == clock.now + HOUR
    gateway.on(DEVICES, good)  # type: ignore[arg-type]
    failed_at, calls = clock.now, gateway.count(DEVICES)
    while gateway.count(DEVICES) == calls:  # its turn, once the bucket (0.5 calls an hour here) holds a call
        clock.advance(300)
        engine.refresh()
    assert HOUR <= clock.now - failed_at <= 2 * HOUR + 300
    assert gateway.calls[-1][1]["ps_id"] == "1000"
    state = engine.state()
    assert state.devices is not None and not state.devices.failed
    assert state.devices.plants["1000"].taken_at == clock.now


def test_plants_failing_one_after_the_other_take_the_collection_down(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=3, devices={"inventory_interval": "30m"})
    engine.refresh()
    good = gateway.handlers[DEVICES]
    gateway.on(DEVICES, lambda body: fail("E997"))
    for _ in range(12):
        clock.advance(300)
        engine.refresh()
    devices = next(c for c in engine.state().collections if c.name == "devices")
    assert not devices.up and "E997" in (devices.last_error or "")
    assert engine.state().up
    gateway.on(DEVICES, good)  # type: ignore[arg-type]
    for _ in range(12):
        clock.advance(300)
        engine.refresh()
    assert next(c for c in engine.state().collections if c.name == "devices").up


def test_an_entry_older_than_max_age_is_dropped(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=3, devices={"inventory_interval": "1h"}, max_age="2h")
    engine.refresh()
    good = gateway.handlers[DEVICES]
    gateway.on(DEVICES, lambda body: fail("-1") if str(body["ps_id"]) == "1001" else good(body))  # type: ignore
    for _ in range(3 * 12):
        clock.advance(300)
        engine.refresh()
    state = engine.state()
    assert state.devices is not None and "1001" not in state.devices.plants and "1001" in state.devices.failed
    assert {"1000", "1002"} <= set(state.devices.plants)


def test_an_app_refused_the_device_endpoint_fails_the_collection_not_the_account(clock: Clock) -> None:
    gateway = FakeGateway({DEVICES: lambda body: fail("E900", "Unauthorized access")})
    engine = make(gateway, clock, plants=5)
    engine.refresh()
    state = engine.state()
    devices = next(c for c in state.collections if c.name == "devices")
    assert state.up and state.backoff_until == 0 and not devices.up and "E900" in (devices.last_error or "")
    assert gateway.count(DEVICES) == 1  # one call, not one per plant
    clock.advance(300)
    engine.refresh()
    assert gateway.count(LIST) == 2  # the plant list carries on


def test_a_quota_error_ends_the_run_but_keeps_what_was_read(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=5)
    good = gateway.handlers[DEVICES]
    gateway.on(DEVICES, lambda body: fail("E999") if str(body["ps_id"]) == "1003" else good(body))  # type: ignore
    engine.refresh()
    state = engine.state()
    assert state.backoff_until > clock.now and state.devices is None  # the engine backs the account off
    inventory = inventory_of(engine)
    assert set(inventory.inventory) == {"1000", "1001", "1002"}  # the calls spent are not lost
    assert set(inventory.schedule.next_due) == {"1000", "1001", "1002"}
    gateway.on(DEVICES, good)  # type: ignore[arg-type]
    clock.now = state.backoff_until + 1
    engine.refresh()
    asked = [b["ps_id"] for name, b, _h in gateway.calls if name == DEVICES]
    assert asked[-2:] == ["1003", "1004"]
    assert engine.state().devices is not None and len(engine.state().devices.plants) == 5  # type: ignore[union-attr]


def test_device_realtime_asks_the_deployed_devices_of_the_chosen_types_by_type(clock: Clock) -> None:
    gateway = FakeGateway()
    rows = {1000: [device_row(1000, 1), device_row(1000, 2, device_type=14), device_row(1000, 3, device_type=43),
                   device_row(1000, 4, dev_status="0"), device_row(1000, 5, device_type=9)],
            1001: [device_row(1001, 1), device_row(1001, 2, device_type=43)]}
    gateway.on(DEVICES, device_lists(rows))
    engine = make(gateway, clock, plants=2, devices={"realtime": {
        "enabled": True, "device_types": ["battery", 1], "points": ["24", "58604"]}})
    engine.refresh()
    calls = [b for name, b, _h in gateway.calls if name == DEVICE_RT]
    assert [(b["device_type"], b["ps_key_list"]) for b in calls] == [
        ("43", ["1000_43_1_3", "1001_43_1_2"]), ("1", ["1000_1_1_1", "1001_1_1_1"])]
    state = engine.state()
    assert state.device_readings is not None and set(state.device_readings.devices) == {
        "1000_43_1_3", "1001_43_1_2", "1000_1_1_1", "1001_1_1_1"}
    realtime = next(c for c in engine.collections if isinstance(c, DeviceRealtimeCollection))
    assert realtime.calls_per_pass(2) == 2 and engine.shares["device_realtime"].interval == 300


# --------------------------------------------------------------------------- the freshest device state


def device(status: int | None = 4, ps_key: str = "7_1_1_1") -> Device:
    return Device(ps_key, "7", "A1", "Inverter 1", 1, "SG10RT", "Sungrow", "B1", status, 1, 1)


@dataclass(frozen=True)
class _Record:
    ps_key: str
    fault_type_code: int | None


def test_the_open_fault_records_say_the_worst_open_state_per_device() -> None:
    records = [_Record("7_1_1_1", 2), _Record("7_1_1_1", 1), _Record("7_1_1_2", 2), _Record("7_1_1_3", 3),
               _Record("7_1_1_4", 4), _Record("", 1), _Record("7_1_1_5", None)]
    assert worst_open_status(records) == {"7_1_1_1": 1, "7_1_1_2": 2}


@pytest.mark.parametrize(("inventory_at", "reading", "read_at", "open_status", "open_at", "expected"), [
    (100, None, 0, None, 0, 1),  # the inventory alone
    (100, DeviceReading({}, 4, 1, None), 200, None, 0, 4),  # a newer real-time pass: recovered
    (100, DeviceReading({}, 4, 1, None), 50, None, 0, 1),  # an older one does not count
    (100, DeviceReading({}, None, 1, None), 200, None, 0, 1),  # no status in the answer: the inventory's
    (100, None, 0, {}, 300, DEVICE_NORMAL),  # a newer pass over open records without this device: normal
    (100, None, 0, {"7_1_1_1": 2}, 300, 2),
    (100, DeviceReading({}, 1, 1, None), 300, {}, 200, 1),  # the real-time pass is the newest
    (400, None, 0, {"7_1_1_1": 1}, 300, 1),  # an inventory newer than the open records wins
])
def test_the_fault_status_comes_from_the_freshest_source(inventory_at: float, reading: DeviceReading | None,
                                                          read_at: float, open_status: dict[str, int] | None,
                                                          open_at: float, expected: int) -> None:
    assert device_fault_status(device(1), inventory_at, reading, read_at, open_status, open_at) == expected


def test_parse_device_without_a_ps_key_is_nothing() -> None:
    assert parse_device({"device_sn": "A"}, "7") is None
