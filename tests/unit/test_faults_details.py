"""Open faults and plant details as a specification: paging and the cost of a pass, lenient parsing, the bound on
fault series, an endpoint refused with E900, the 20-plant batches of details, and how the two collections share
the budget. In-memory gateway (tests/fakes.py) and a settable clock: no sockets, no sleeping. End to end against
the simulator: tests/test_open_faults.py."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from exporter.collect.engine import CREDENTIAL_BACKOFF, AccountEngine
from exporter.config import ConfigError, parse_config
from exporter.data import Fault
from exporter.fetch.details import parse_detail, parse_rows
from exporter.fetch.faults import device_type_code, parse_fault
from exporter.fetch.parse import zone_offset
from tests.conftest import Clock
from tests.fakes import FakeGateway, engine_on, fail, ok, paged_list, plant_row, token_answers

LIST, LEGACY_LIST, REALTIME = "queryPowerStationList", "getPowerStationList", "getPowerStationRealTimeData"
FAULTS, DETAILS = "getFaultAlarmInfo", "getPowerStationDetail"
HOUR = 3600.0
PLANTS = [1000 + i for i in range(45)]


def fault_row(ps_id: int, n: int, **fields: Any) -> dict[str, Any]:
    """A platform getFaultAlarmInfo row with the field table's fields and types."""
    row: dict[str, Any] = {
        "fault_name": f"Fault {n}", "fault_code": 700000 + n, "fault_type": 1, "fault_type_code": 1,
        "fault_level": 1, "fault_desc": "desc", "fault_reason": 532, "process_status": 1,
        "create_time": "2026-11-30 14:05:00", "over_time": None, "process_time": None, "uuid": str(9000 + n),
        "ps_key": f"{ps_id}_1_1_{n}", "device_name": f"SG10RT(COM1-{n:03d})", "device_type": 1,
        "type_name": "Inverter", "device_model": "SG10RT", "device_model_code": "SG10RT", "ps_id": str(ps_id),
        "ps_name": f"Plant {ps_id}", "grid_connection_status": 1,
    }
    row.update(fields)
    return row


def fault_list(rows: list[dict[str, Any]], *, total_key: str = "row_count", page_key: str = "page",
               max_size: int | None = None) -> Any:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        assert body["process_status"] == 8 and "ps_id" not in body  # unclosed records of every plant
        size = int(body["size"]) if max_size is None else min(int(body["size"]), max_size)
        page = int(body[page_key])
        return ok({"pageList": rows[(page - 1) * size: page * size], total_key: len(rows)})

    return answer


def detail_row(ps_id: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ps_id": ps_id, "ps_key": f"{ps_id}_11_0_0", "ps_name": f"Plant {ps_id}", "install_power": 9870,
        "ps_feedin_power_price_kwh": 0.28, "ps_feedin_power_price_wh": 0.00028,
        "ps_consumption_power_price_kwh": 0.45, "ps_consumption_power_price_wh": 0.00045,
        "power_price_unit": "EUR/kWh", "param_income_unit_name": "EUR", "fault_count": 0, "alarm_count": 0,
        "owner_mobile": "+49 30 5550101", "user_moble_tel": "+49 30 5550101", "owner_email": "owner@example.org",
        "communication_dev_detail_list": [{"sn": f"B{ps_id}", "is_enable": 1}],
    }
    row.update(fields)
    return row


def detail_answers(rows: dict[int, dict[str, Any]] | None = None, unauthorized: set[int] = frozenset()) -> Any:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        ids = [int(x) for x in body["ps_ids"].split(",")]
        assert len(ids) <= 20
        table = rows or {}
        data = [table.get(i, detail_row(i)) for i in ids if i not in unauthorized and table.get(i, True)]
        return ok({"code": "1", "not_authorization_ps_list": [str(i) for i in ids if i in unauthorized],
                   "data_list": data})

    return answer


def make(gateway: FakeGateway, clock: Clock, *, mode: str = "oauth2", plants: list[int] = PLANTS,
         records: list[dict[str, Any]] | None = None, **account: Any) -> AccountEngine:
    in_fault = {int(r["ps_id"]) for r in records or []}
    rows = [plant_row(p, ps_fault_status=1 if p in in_fault else 3) for p in plants]
    if mode == "oauth2":
        gateway.handlers.setdefault(LIST, paged_list(rows))
        gateway.handlers.setdefault(FAULTS, fault_list(records or []))
        auth = {"mode": "oauth2", "appkey": "APPKEY", "secret_key": "SECRET", "refresh_token": "r0"}
        gateway.handlers.setdefault("refreshToken", token_answers())
    else:
        gateway.handlers.setdefault(LEGACY_LIST, paged_list(rows, total_key="rowCount", page_key="curPage"))
        gateway.handlers.setdefault(FAULTS, fault_list(records or [], total_key="rowCount", page_key="curPage"))
        gateway.handlers.setdefault("login", lambda body: ok({"token": "1_" + "a" * 32, "login_state": "1"}))
        auth = {"mode": "login", "appkey": "APPKEY", "secret_key": "SECRET", "user_account": "u",
                "user_password": "p"}
    gateway.handlers.setdefault(DETAILS, detail_answers())
    account.setdefault("realtime", {"enabled": False})
    account.setdefault("devices", {"enabled": False})  # specified in tests/unit/test_devices.py
    account.setdefault("api_quota", {"enabled": False})  # specified in tests/unit/test_quota.py
    return engine_on(gateway, clock, account, auth)


@pytest.fixture
def clock() -> Clock:
    return Clock(1000 * HOUR + 60)


def collection(engine: AccountEngine, name: str) -> Any:
    return next(c for c in engine.state().collections if c.name == name)


# --------------------------------------------------------------------------- open faults: paging and cost


@pytest.mark.parametrize("mode", ["oauth2", "login"])
def test_open_faults_are_paged_and_a_pass_costs_one_call_per_page(clock: Clock, mode: str) -> None:
    rows = [fault_row(PLANTS[i % 45], i) for i in range(250)]
    gateway = FakeGateway()
    engine = make(gateway, clock, mode=mode, records=rows, faults={"page_size": 100})
    engine.refresh()
    pages = [body.get("page", body.get("curPage")) for name, body, _ in gateway.calls if name == FAULTS]
    assert pages == [1, 2, 3]
    state = engine.state()
    assert state.faults is not None and len(state.faults.faults) == 250
    assert sum(sum(c.values()) for c in state.faults.counts.values()) == 250
    assert gateway.results[(FAULTS, "1")] == 3
    # The next pass is forecast from this one: ⌈250 / 100⌉ calls.
    faults = next(c for c in engine.collections if c.name == "faults")
    assert faults.planned_calls(engine._cycle(clock.now), engine.shares["faults"]) == 3


def test_the_forecast_before_the_first_pass_counts_plants_in_fault_or_alarm(clock: Clock) -> None:
    rows = [fault_row(p, i) for i, p in enumerate(PLANTS[:30])]
    engine = make(FakeGateway(), clock, records=rows, faults={"page_size": 10})
    engine.refresh(force=True)  # nothing read yet when the budget was first shared: 30 plants in fault
    faults = next(c for c in engine.collections if c.name == "faults")
    faults.api.last_total = None
    assert faults.planned_calls(engine._cycle(clock.now), engine.shares["faults"]) == 3


def test_a_gateway_that_serves_smaller_pages_is_paged_to_the_total(clock: Clock) -> None:
    rows = [fault_row(PLANTS[i % 45], i) for i in range(120)]
    gateway = FakeGateway({FAULTS: fault_list(rows, max_size=50)})
    engine = make(gateway, clock, records=rows)
    engine.refresh()
    assert gateway.count(FAULTS) == 3 and len(engine.state().faults.faults) == 120
    faults = next(c for c in engine.collections if c.name == "faults")
    assert faults.api.calls() == 3  # 120 records at the 50 rows really served


def test_a_list_that_changes_while_paged_is_read_again_and_never_half_shown(clock: Clock) -> None:
    rows = [fault_row(PLANTS[i % 45], i) for i in range(150)]
    shifting = fault_list(rows)
    answers = iter([ok({"pageList": rows[:100], "row_count": 151}), ok({"pageList": rows[100:], "row_count": 150})])
    gateway = FakeGateway({FAULTS: lambda body: next(answers, None) or shifting(body)})
    engine = make(gateway, clock, records=rows)
    engine.refresh()
    assert gateway.count(FAULTS) == 4 and len(engine.state().faults.faults) == 150
    # Inconsistent twice: the pass fails, the previous open faults stay (within max_age), the list stays up.
    gateway.on(FAULTS, lambda body: ok({"pageList": rows[:10], "row_count": 11 + int(body["page"])}))
    clock.advance(300)
    engine.refresh()
    state = engine.state()
    assert state.up and len(state.faults.faults) == 150
    assert not collection(engine, "faults").up and "inconsistent" in collection(engine, "faults").last_error


def test_rows_repeated_across_pages_are_counted_once(clock: Clock) -> None:
    rows = [fault_row(PLANTS[i % 45], i) for i in range(15)]
    pages = {1: rows[:10], 2: rows[5:15]}  # the second page repeats five records; 20 rows, 15 records
    gateway = FakeGateway({FAULTS: lambda body: ok({"pageList": pages.get(int(body["page"]), []),
                                                    "row_count": 15})})
    engine = make(gateway, clock, records=rows, faults={"page_size": 10}, strict_row_count=False)
    engine.refresh()
    assert len(engine.state().faults.faults) == 15


# --------------------------------------------------------------------------- open faults: parsing


def test_a_record_becomes_a_fault_with_readable_type_and_device() -> None:
    tz = zone_offset("plant", "GMT+8")
    fault = parse_fault(fault_row(1001, 3, fault_type=7, device_type=99, fault_level="2",
                                  fault_code=12345678901234.0), tz)
    assert fault == Fault(ps_id="1001", ps_key="1001_1_1_3", device_name="SG10RT(COM1-003)", device_type_code=99,
                          fault_code="12345678901234", fault_name="Fault 3", fault_type_code=7, fault_level="2",
                          since=1_796_018_700.0)  # 2026-11-30 14:05 at UTC+8
    assert (fault.fault_type, fault.device_type) == ("unknown_7", "unknown_99")
    assert parse_fault({**fault_row(1001, 1), "ps_id": None}, tz) is None


def test_legacy_rows_take_their_device_type_from_the_ps_key() -> None:
    legacy = {"ps_key": "1307933_14_1_1", "fault_code": "60064.202411.47b8b34242077", "ps_id": 1307933}
    assert device_type_code(legacy) == 14
    assert device_type_code({"ps_key": "garbage"}) is None
    fault = parse_fault(legacy, None)
    assert fault is not None and fault.fault_code == "60064.202411.47b8b34242077"
    assert fault.device_type == "energy_storage_system"
    assert math.isnan(fault.since)  # no create_time (and no zone): the collection decides


def test_a_record_without_a_readable_create_time_shows_when_it_was_first_seen(clock: Clock) -> None:
    rows = [fault_row(1001, 1, create_time="soon"), fault_row(1002, 2)]
    engine = make(FakeGateway(), clock, records=rows)
    engine.refresh()
    first = {f.ps_id: f.since for f in engine.state().faults.faults}
    assert first["1001"] == clock.now
    clock.advance(300)
    engine.refresh()
    assert {f.ps_id: f.since for f in engine.state().faults.faults} == first  # stays, not "now" every pass


def test_records_of_plants_outside_the_plant_list_are_not_exported(clock: Clock) -> None:
    rows = [fault_row(1001, 1), fault_row(99999, 2)]  # the endpoint covers every plant the app may see
    engine = make(FakeGateway(), clock, records=rows)
    engine.refresh()
    faults = engine.state().faults
    assert [f.ps_id for f in faults.faults] == ["1001"] and set(faults.counts) == {"1001"}


# --------------------------------------------------------------------------- open faults: the bound


def test_beyond_max_series_the_rest_is_counted_and_logged_once(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    rows = [fault_row(1001, i, fault_type=2, create_time=f"2026-11-30 10:0{i}:00") for i in range(5)]
    rows += [fault_row(1002, 10, fault_type=1, create_time="2026-11-30 12:00:00"),
             fault_row(1003, 11, fault_type=3)]
    engine = make(FakeGateway(), clock, records=rows, faults={"max_series": 3})
    with caplog.at_level(logging.INFO):
        engine.refresh()
        clock.advance(300)
        engine.refresh()
    state = engine.state()
    kept = {(f.ps_id, f.fault_type, f.fault_code) for f in state.faults.faults}
    # The fault first, then the two oldest alarms (stable from pass to pass).
    assert kept == {("1002", "fault", "700010"), ("1001", "alarm", "700000"), ("1001", "alarm", "700001")}
    assert state.faults.counts["1001"] == {"alarm": 5} and state.faults.counts["1003"] == {"notice": 1}
    assert state.stats.faults_dropped == 8  # 4 per pass, two passes
    assert len([r for r in caplog.records if "faults.max_series" in r.getMessage()]) == 1


# --------------------------------------------------------------------------- E900 on the fault endpoint


def test_a_refused_fault_endpoint_takes_the_faults_down_not_the_account(clock: Clock,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    gateway = FakeGateway({FAULTS: lambda body: fail("E900", "Unauthorized access")})
    gateway.handlers[REALTIME] = lambda body: ok({"device_point_list": [
        {"ps_id": str(i), "p83033": "1000"} for i in body["ps_id_list"]], "point_dict": [], "fail_ps_id_list": []})
    engine = make(gateway, clock, realtime={"enabled": True})
    with caplog.at_level(logging.INFO):
        engine.refresh()
    state = engine.state()
    assert state.up and state.backoff_until == 0 and state.faults is None  # unknown, not "no faults"
    assert not collection(engine, "faults").up and "E900" in collection(engine, "faults").last_error
    assert collection(engine, "realtime").up and collection(engine, "details").up  # the cycle went on
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "may not read fault lists" in errors[0] and "faults.enabled" in errors[0]
    # A permission is changed by hand on the portal: the endpoint is asked again after 15 minutes, not every
    # refresh; the plant list keeps its cadence meanwhile.
    for _ in range(2):
        clock.advance(300)
        engine.refresh()
    assert gateway.count(FAULTS) == 1 and gateway.count(LIST) == 3
    clock.advance(CREDENTIAL_BACKOFF - 600)
    gateway.on(FAULTS, fault_list([fault_row(1001, 1)]))
    engine.refresh()
    assert collection(engine, "faults").up and len(engine.state().faults.faults) == 1


def test_e900_on_the_plant_list_still_backs_off_the_whole_account(clock: Clock) -> None:
    gateway = FakeGateway({LIST: lambda body: fail("E900", "Unauthorized access")})
    engine = make(gateway, clock)
    engine.refresh()
    state = engine.state()
    assert not state.up and state.backoff_until == pytest.approx(clock.now + CREDENTIAL_BACKOFF)
    assert gateway.count(FAULTS) == 0


# --------------------------------------------------------------------------- plant details


def test_details_ask_at_most_20_plants_per_call_and_skip_refused_and_missing_plants(clock: Clock) -> None:
    gateway = FakeGateway({DETAILS: detail_answers({1003: {}}, unauthorized={1004})})  # 1003 missing from data_list
    engine = make(gateway, clock)
    engine.refresh()
    batches = [body["ps_ids"].split(",") for name, body, _ in gateway.calls if name == DETAILS]
    assert [len(b) for b in batches] == [20, 20, 5]
    assert sorted(int(p) for b in batches for p in b) == PLANTS
    details = engine.state().details
    assert details is not None and set(details.plants) == {str(p) for p in PLANTS} - {"1003", "1004"}
    d = details.plants["1000"]
    assert (d.installed_power_watts, d.feed_in_tariff, d.consumption_tariff, d.currency, d.loggers) == (
        9870.0, 0.28, 0.45, "EUR", (("B1000", 1),))
    assert "example.org" not in repr(details) and "5550101" not in repr(details)  # personal data is not kept


def test_a_plant_that_drops_out_of_the_answer_loses_its_previous_details(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=PLANTS[:5], details={"interval": "10m"})
    engine.refresh()
    assert "1002" in engine.state().details.plants
    gateway.on(DETAILS, detail_answers(unauthorized={1002}))
    clock.advance(900)
    engine.refresh()
    assert "1002" not in engine.state().details.plants and "1001" in engine.state().details.plants


def test_details_are_oauth2_only_and_login_keeps_its_list_capacity(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, mode="login")
    engine.refresh()
    assert gateway.count(DETAILS) == 0 and "details" not in [c.name for c in engine.state().collections]


@pytest.mark.parametrize(("data", "error"), [
    ({"code": "5", "data_list": []}, "detail_code_5"),
    ({"code": 0}, "detail_code_0"),
    ({}, "invalid_response"),
])
def test_detail_answers_that_say_failure_fail_the_pass(data: dict[str, Any], error: str) -> None:
    with pytest.raises(Exception) as caught:
        parse_rows(data)
    assert getattr(caught.value, "result", None) == error


def test_detail_answers_that_find_nothing_are_empty_not_failures() -> None:
    assert parse_rows({"code": "7", "not_authorization_ps_list": ["1", "2"]}) == ([], {"1", "2"})
    assert parse_rows({"code": 6, "not_authorization_ps_list": "3,4"}) == ([], {"3", "4"})


def test_the_legacy_flat_detail_object_is_read_without_its_personal_data() -> None:
    legacy = {"ps_id": 1307933, "design_capacity": "10000", "ps_price_kwh": "0.4", "ps_price": "0.0004",
              "param_income_unit_name": "CNY", "user_moble_tel": "138****0000", "owner_email": "x@example.com",
              "email": "x@example.com", "communication_dev_detail_list": [{"sn": "B2262720904", "is_enable": "0"}]}
    rows, unauthorized = parse_rows(legacy)
    assert rows == [legacy] and unauthorized == set()
    detail = parse_detail(rows[0])
    assert detail.installed_power_watts == 10000.0 and detail.currency == "CNY"
    assert detail.loggers == (("B2262720904", 0),)
    assert detail.feed_in_tariff is None  # the legacy "current price" is not said to be either tariff
    assert "example.com" not in repr(detail) and "138" not in repr(detail)


@pytest.mark.parametrize(("fields", "unit", "expected"), [
    ({"install_power": "12.5"}, "kW", 12_500.0),
    ({"install_power": 12_500}, "W", 12_500.0),
    ({"install_power": 0}, "W", None),  # unset
    ({"install_power": None}, "W", None),
])
def test_installed_power_in_the_configured_unit(fields: dict[str, Any], unit: str, expected: float | None) -> None:
    assert parse_detail(detail_row(1, **fields), 1000.0 if unit == "kW" else 1.0).installed_power_watts == expected


@pytest.mark.parametrize(("fields", "feed_in", "currency"), [
    ({}, 0.28, "EUR"),
    ({"ps_feedin_power_price_kwh": 0, "ps_feedin_power_price_wh": 0.00008}, 0.08, "EUR"),  # truncated per-kWh
    ({"ps_feedin_power_price_kwh": None, "ps_feedin_power_price_wh": None}, None, "EUR"),  # unset: absent
    ({"ps_feedin_power_price_kwh": 0, "ps_feedin_power_price_wh": 0}, 0.0, "EUR"),  # a real zero tariff
    ({"param_income_unit_name": None, "power_price_unit": "AUD/kWh"}, 0.28, "AUD"),
])
def test_tariffs_per_kwh_and_their_currency(fields: dict[str, Any], feed_in: float | None, currency: str) -> None:
    detail = parse_detail(detail_row(1, **fields))
    assert detail.feed_in_tariff == feed_in and detail.currency == currency


def test_an_implausible_install_power_unit_is_pointed_out(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    gateway = FakeGateway({DETAILS: detail_answers({p: detail_row(p, install_power=9.87) for p in PLANTS})})
    engine = make(gateway, clock)
    with caplog.at_level(logging.WARNING):
        engine.refresh()
    assert any("details.install_power_unit: kW" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- the budget


def test_at_10000_plants_faults_and_details_get_their_want_and_the_list_the_rest(clock: Clock) -> None:
    plants = list(range(10_000, 20_000))
    rows = [fault_row(plants[i * 33], i) for i in range(300)]  # 300 open faults on 300 plants
    gateway = FakeGateway()
    gateway.handlers[REALTIME] = lambda body: ok({"device_point_list": [], "point_dict": [], "fail_ps_id_list": []})
    engine = make(gateway, clock, plants=plants, records=rows, realtime={"enabled": True})
    engine.refresh()
    assert gateway.count(FAULTS) == 3  # ⌈300 / 100⌉
    shares = {c.name: (c.calls_per_hour, c.interval) for c in engine.state().collections}
    faults_want = 3 * 12  # 3 calls every 5 minutes
    details_want = 500 / 24  # ⌈10,000 / 20⌉ calls a day
    assert shares["faults"] == (pytest.approx(faults_want), 300)
    assert shares["details"] == (pytest.approx(details_want), 86400)
    assert shares["realtime"][0] == pytest.approx(500)
    assert shares["plants"][0] == pytest.approx(1000 - 500 - faults_want - details_want)
    assert sum(s for s, _ in shares.values()) == pytest.approx(1000)
    assert shares["plants"][1] == pytest.approx(100 * HOUR / (1000 - 500 - faults_want - details_want))


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(("account", "key"), [
    ({"realtime": {"min_budget_share": 0.8}, "faults": {"min_budget_share": 0.1}, "details": {"min_budget_share": 0.1}},
     "realtime.min_budget_share 0.8 + faults.min_budget_share 0.1 + details.min_budget_share 0.1 = 1"),
    ({"details": {"install_power_unit": "MW"}}, "accounts[0].details.install_power_unit: must be W or kW"),
    ({"faults": {"max_series": -1}}, "accounts[0].faults.max_series"),
    ({"faults": {"page_size": 0}}, "accounts[0].faults.page_size"),
    ({"faults": {"interval": "soon"}}, "accounts[0].faults.interval"),
    ({"details": {"interval": 0}}, "accounts[0].details.interval"),
    ({"faults": {"enabeld": True}}, "accounts[0].faults.enabeld: unknown key"),
])
def test_configuration_errors_name_the_key(account: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"accounts": [{"name": "a", "base_url": "http://x.invalid", "devices": {"enabled": False},
                                    **account, "auth": {"mode": "oauth2", "appkey": "k", "secret_key": "s",
                                                        "refresh_token": "r"}}]}, env={})
    assert key in str(caught.value) and "\n" not in str(caught.value)


def test_shares_of_disabled_collections_do_not_count() -> None:
    config = parse_config({"accounts": [{"name": "a", "base_url": "http://x.invalid", "auth": {
        "mode": "oauth2", "appkey": "k", "secret_key": "s", "refresh_token": "r"},
        "realtime": {"min_budget_share": 0.8}, "faults": {"enabled": False}, "details": {"min_budget_share": 0.1},
        "devices": {"enabled": False}}]},
        env={})
    assert config.accounts[0].faults.enabled is False


def test_a_new_plant_gets_its_details_at_the_next_refresh(clock: Clock) -> None:
    gateway = FakeGateway()
    engine = make(gateway, clock, plants=PLANTS[:10])
    engine.refresh()
    gateway.on(LIST, paged_list([plant_row(p) for p in PLANTS[:11]]))
    clock.advance(300)
    engine.refresh()
    last = [body["ps_ids"] for name, body, _ in gateway.calls if name == DETAILS][-1]
    assert last == str(PLANTS[10]) and str(PLANTS[10]) in engine.state().details.plants


def test_a_refused_details_endpoint_takes_only_the_details_down(clock: Clock) -> None:
    gateway = FakeGateway({DETAILS: lambda body: fail("E900", "Unauthorized access")})
    engine = make(gateway, clock, records=[fault_row(1001, 1)])
    engine.refresh()
    state = engine.state()
    assert state.up and state.backoff_until == 0 and state.details is None
    assert collection(engine, "faults").up and not collection(engine, "details").up


def test_unchanged_data_keeps_its_generation_so_nothing_is_rendered_again(clock: Clock) -> None:
    rows = [fault_row(1001, 1), fault_row(1002, 2)]
    gateway = FakeGateway()
    engine = make(gateway, clock, records=rows, details={"interval": "10m"})
    engine.refresh()
    first = engine.state()
    clock.advance(600)
    engine.refresh()
    second = engine.state()
    assert gateway.count(FAULTS) == 2 and gateway.count(DETAILS) >= 4  # both read again
    assert second.faults.taken_at > first.faults.taken_at  # fresh ...
    assert second.faults.generation == first.faults.generation  # ... but the same data: no re-render
    assert second.details.generation == first.details.generation
    gateway.on(FAULTS, fault_list(rows[:1]))  # a fault closes
    gateway.on(DETAILS, detail_answers({1001: detail_row(1001, install_power=5000)}))
    clock.advance(600)
    engine.refresh()
    third = engine.state()
    assert third.faults.generation != second.faults.generation and len(third.faults.faults) == 1
    assert third.details.generation != second.details.generation
