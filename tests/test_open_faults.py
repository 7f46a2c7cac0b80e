"""Open faults and plant details end to end: the exporter on a real socket against the simulator over HTTP.

The fault names the device and the fault (OAuth2 and login apps, in the account's language), pages across
several calls, disappears when it closes, keeps odd names intact, shows undocumented codes as `unknown_<n>`, and
an app refused the fault endpoint (E900) shows the faults collection down while the plant list stays up. Plant
details come 20 plants a call, give OAuth2 accounts their installed power, tariffs and loggers, leave out
plants the answer omits or refuses, and never let the owner's phone number or e-mail out.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from exporter.collect.engine import CREDENTIAL_BACKOFF
from exporter.data import DEVICE_TYPE_SLUGS, FAULT_TYPE_SLUGS, slug
from exporter.simulator import Simulator
from tests.conftest import Clock, Running, Samples, login_account, oauth_account, select, value

ACTIVE, OPEN = "isolarcloud_fault_active", "isolarcloud_plant_open_faults"
FAULTS, DETAILS = "getFaultAlarmInfo", "getPowerStationDetail"
VALID = {1, 3}  # the default valid_flag filter
ZONE = re.compile(r"^(?:GMT|UTC)([+-])(\d{1,2})(?::?(\d{2}))?$")


def listed(s: Simulator) -> dict[str, Any]:
    return {str(p.ps_id): p for p in s.plants if int(p["valid_flag"]) in VALID}


def local_time(text: str, zone: str) -> float:
    """A plant-local `yyyy-MM-dd HH:mm:ss` in the plant's `GMT+8` zone, as Unix seconds."""
    match = ZONE.match(zone)
    assert match, zone
    offset = timedelta(hours=int(match[2]), minutes=int(match[3] or 0)) * (1 if match[1] == "+" else -1)
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone(offset)).timestamp()


def fault_series(found: Samples, account: str) -> dict[str, tuple[dict[str, str], float]]:
    """Exported open faults of an account by fault_code: labels and value."""
    out = {}
    for labels, v in select(found, ACTIVE, account=account).items():
        lbl = dict(labels)
        assert lbl["fault_code"] not in out
        out[lbl["fault_code"]] = (lbl, v)
    return out


def zones(found: Samples, account: str) -> dict[str, str]:
    return {dict(lbl)["ps_id"]: dict(lbl)["time_zone"]
            for lbl in select(found, "isolarcloud_plant_info", account=account)}


def calls_to(s: Simulator, endpoint: str) -> list[Any]:
    return [c for c in s.calls if c.path.endswith(endpoint)]


def start(run_exporter: Any, s: Simulator, *accounts: dict[str, Any], clock: Clock | None = None,
          **top: Any) -> Running:
    kwargs = {"clock": clock} if clock is not None else {}
    r = run_exporter({**top, "accounts": list(accounts)}, start=False, **kwargs)
    r.refresh_now()
    return r


# --------------------------------------------------------------------------- open faults


def test_each_open_fault_names_plant_device_fault_and_since_when(make_sim, run_exporter) -> None:
    # The simulator's records rotate at its 5-minute data boundaries; a test that compares what was exported
    # with what the simulator serves afterwards holds its clock still, or a boundary crossed between the two
    # (1 in a few hundred runs) swaps a record.
    s = make_sim(plants=45, seed=1, clock=Clock())
    r = start(run_exporter, s, oauth_account(s, None, realtime={"enabled": False}), login_account(s))
    found = r.metrics()
    plants = listed(s)
    served = [row for row in s.open_faults(lang="_en_US") if row["ps_id"] in plants]
    assert len({row["ps_id"] for row in served}) >= 5, "the fleet should have open records on several plants"
    names = {dict(lbl)["ps_id"]: dict(lbl)["ps_name"] for lbl in select(found, "isolarcloud_plant_info",
                                                                        account="oauth")}

    # OAuth2: every field of the record, the value its create_time in the plant's zone.
    exported = fault_series(found, "oauth")
    assert set(exported) == {str(row["fault_code"]) for row in served}
    tz = zones(found, "oauth")
    for row in served:
        labels, since = exported[str(row["fault_code"])]
        assert labels == {"account": "oauth", "ps_id": row["ps_id"], "ps_name": names[row["ps_id"]],
                          "ps_key": row["ps_key"], "device_name": row["device_name"],
                          "device_type": slug(DEVICE_TYPE_SLUGS, row["device_type"]),
                          "fault_code": str(row["fault_code"]), "fault_name": row["fault_name"],
                          "fault_type": slug(FAULT_TYPE_SLUGS, row["fault_type"]),
                          "fault_level": str(row["fault_level"])}
        assert since == local_time(row["create_time"], tz[row["ps_id"]])

    # Login (the legacy endpoint): the same records with their legacy codes; the device type from the ps_key.
    legacy = fault_series(found, "login")
    assert len(legacy) == len(served)
    by_record = {(lbl["ps_key"], lbl["fault_name"], v) for lbl, v in legacy.values()}
    assert by_record == {(row["ps_key"], row["fault_name"], local_time(row["create_time"], tz[row["ps_id"]]))
                         for row in served}
    assert {lbl["device_type"] for lbl, _ in legacy.values()} == {lbl["device_type"] for lbl, _ in exported.values()}

    # Per plant and type: every open record counted, absent where there is none.
    for account in ("oauth", "login"):
        counts = {(dict(lbl)["ps_id"], dict(lbl)["fault_type"]): v
                  for lbl, v in select(found, OPEN, account=account).items()}
        assert counts == Counter((row["ps_id"], slug(FAULT_TYPE_SLUGS, row["fault_type"])) for row in served)
        assert value(found, "isolarcloud_collection_up", account=account, collection="faults") == 1
        assert value(found, "isolarcloud_api_requests_total", account=account, endpoint=FAULTS, result="1") == 1
    assert all(c.body.get("process_status") == 8 and "ps_id" not in c.body for c in calls_to(s, FAULTS))


def test_fault_names_come_in_the_accounts_language(make_sim, run_exporter) -> None:
    s = make_sim(plants=45, seed=1, clock=Clock())
    r = start(run_exporter, s, oauth_account(s, None, lang="_zh_CN", realtime={"enabled": False}))
    exported = {lbl["fault_name"] for lbl, _ in fault_series(r.metrics(), "oauth").values()}
    chinese = {row["fault_name"] for row in s.open_faults(lang="_zh_CN") if row["ps_id"] in listed(s)}
    assert exported == chinese and any(re.search(r"[\u4e00-\u9fff]", name) for name in exported)


def test_faults_page_across_calls_and_a_closed_fault_is_gone_at_the_next_refresh(make_sim, run_exporter) -> None:
    s = make_sim(plants=300, seed=2, clock=Clock())
    s.set_open_fault_count(250, fault_types=[1, 2])
    r = start(run_exporter, s, oauth_account(s, None, realtime={"enabled": False}, details={"enabled": False},
                                             valid_flag="1,2,3", faults={"page_size": 100}))
    found = r.metrics()
    pages = [c.body["page"] for c in calls_to(s, FAULTS)]
    assert pages == [1, 2, 3] and all(c.body["size"] == 100 for c in calls_to(s, FAULTS))
    exported = fault_series(found, "oauth")
    assert set(exported) == {str(row["fault_code"]) for row in s.open_faults()} and len(exported) == 250

    closing = next(iter(exported))
    s.close_fault(int(closing))
    r.refresh_now()
    after = fault_series(r.metrics(), "oauth")
    assert closing not in after
    assert set(after) == {str(row["fault_code"]) for row in s.open_faults()}
    assert value(r.metrics(), "isolarcloud_api_requests_total", account="oauth", endpoint=FAULTS, result="1") == 6


def test_odd_names_and_undocumented_codes_stay_intact(make_sim, run_exporter) -> None:
    s = make_sim(plants=300, seed=1)
    plant = next(p for p in s.plants if int(p["valid_flag"]) in VALID
                 and any(d["device_type"] == 99 for d in s.devices_of(p.ps_id)))
    odd_device = next(d for d in s.devices_of(plant.ps_id) if d["device_type"] == 99)
    name = 'Grid "over" voltage \\ L1\n电网过压 ⚡'
    code = s.open_fault(plant.ps_id, fault_type=7, ps_key=odd_device["ps_key"], name=name, level=9)
    r = start(run_exporter, s, oauth_account(s, None, realtime={"enabled": False}, details={"enabled": False}))
    labels, _ = fault_series(r.metrics(), "oauth")[str(code)]
    assert (labels["fault_name"], labels["fault_type"], labels["device_type"], labels["fault_level"]) == (
        name, "unknown_7", "unknown_99", "9")
    assert labels["device_name"] == odd_device["device_name"]
    # The OpenMetrics rendering carries it identically.
    body = r.scrape(headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    samples = [x for f in parse_openmetrics(body) if f.name == ACTIVE for x in f.samples
               if x.labels["fault_code"] == str(code)]
    assert [x.labels["fault_name"] for x in samples] == [name]
    assert value(r.metrics(), OPEN, ps_id=str(plant.ps_id), fault_type="unknown_7") >= 1


def test_an_app_refused_the_fault_endpoint_shows_the_faults_down_not_none(make_sim, run_exporter,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    s = make_sim(plants=45, seed=1)
    clock = Clock()
    s.inject("code:E900", path=FAULTS, times=1)
    with caplog.at_level(logging.INFO):
        r = start(run_exporter, s, oauth_account(s, None), clock=clock, refresh_interval=60)
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="oauth") == 1
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="faults") == 0
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="realtime") == 1
    assert value(found, "isolarcloud_backoff_until_timestamp_seconds", account="oauth") == 0
    assert value(found, "isolarcloud_api_requests_total", account="oauth", endpoint=FAULTS, result="E900") == 1
    assert select(found, "isolarcloud_plant_fault_status", account="oauth")  # the plant list is served
    assert not select(found, ACTIVE) and not select(found, OPEN)  # unknown: absent, never "no open faults"
    assert "# TYPE isolarcloud_fault_active" not in r.scrape()
    lines = [rec.getMessage() for rec in caplog.records if "may not read fault lists" in rec.getMessage()]
    assert len(lines) == 1 and "E900" in lines[0]

    clock.advance(CREDENTIAL_BACKOFF)  # the refused endpoint is asked again after 15 minutes
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="faults") == 1
    assert fault_series(found, "oauth")


def test_faults_known_before_a_refusal_are_withheld_after_their_max_age(make_sim, run_exporter) -> None:
    s = make_sim(plants=45, seed=1)
    clock = Clock()
    r = start(run_exporter, s, oauth_account(s, None, realtime={"enabled": False}, details={"enabled": False}),
              clock=clock, refresh_interval=60)
    assert fault_series(r.metrics(), "oauth")
    s.inject("code:E900", path=FAULTS, times=100)
    clock.advance(60)
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="faults") == 0
    assert fault_series(found, "oauth"), "the last open faults stay while within the collection's max_age"
    clock.advance(181)  # past 3 x the 60 s interval
    for engine in r.exporter.engines:
        engine.refresh()  # the plant list only: the refused endpoint waits 15 minutes
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="oauth") == 1
    assert not select(found, ACTIVE) and not select(found, OPEN)
    s.clear_faults()


# --------------------------------------------------------------------------- plant details


def personal_data(s: Simulator) -> set[str]:
    found = set()
    for call in calls_to(s, DETAILS):
        for row in (call.response.get("result_data") or {}).get("data_list") or []:
            for key in ("owner_mobile", "user_moble_tel", "owner_email", "email"):
                if isinstance(row.get(key), str) and len(row[key].strip()) > 4:
                    found.add(row[key].strip())
    return found


def test_details_give_oauth2_accounts_capacity_tariffs_and_loggers(make_sim, run_exporter,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    s = make_sim(plants=45, seed=3)
    for p in s.plants:
        s.set_plant(p.ps_id, valid_flag=1)
    with caplog.at_level(logging.DEBUG):
        r = start(run_exporter, s, oauth_account(s, None), login_account(s))
        found = r.metrics()
        page = r.get("/").text
        body = r.scrape()
    calls = calls_to(s, DETAILS)
    batches = [c.body["ps_ids"].split(",") for c in calls]
    assert [len(b) for b in batches] == [20, 20, 5]  # 45 plants, at most 20 a call
    assert sorted(x for b in batches for x in b) == sorted(listed(s))
    assert all(c.path.startswith("/openapi/platform/") for c in calls)  # login accounts do not call it
    assert value(found, "isolarcloud_api_requests_total", account="oauth", endpoint=DETAILS, result="1") == 3
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="details") == 1

    rows = {str(row["ps_id"]): row for c in calls for row in c.response["result_data"]["data_list"]}
    tariffs = 0
    for ps_id, row in rows.items():
        assert value(found, "isolarcloud_plant_installed_power_watts", account="oauth", ps_id=ps_id) == (
            float(row["install_power"]))
        price = row.get("ps_feedin_power_price_kwh")
        feed_in = select(found, "isolarcloud_plant_feed_in_tariff", account="oauth", ps_id=ps_id)
        if price is None:
            assert not feed_in
        else:
            tariffs += 1
            assert list(feed_in.values()) == [pytest.approx(float(price))]
            assert dict(next(iter(feed_in)))["currency"] == row["param_income_unit_name"]
            assert value(found, "isolarcloud_plant_consumption_tariff", account="oauth", ps_id=ps_id) == (
                pytest.approx(float(row["ps_consumption_power_price_kwh"])))
        loggers = {dict(lbl)["sn"]: v for lbl, v in select(found, "isolarcloud_plant_logger_info", account="oauth",
                                                           ps_id=ps_id).items()}
        assert loggers == {d["sn"]: float(d["is_enable"]) for d in row["communication_dev_detail_list"]}
    assert tariffs >= 30

    # The login account's installed power still comes from its plant list (total_capcity), for every plant.
    login_capacity = select(found, "isolarcloud_plant_installed_power_watts", account="login")
    assert len(login_capacity) == len(listed(s))
    assert not select(found, "isolarcloud_plant_feed_in_tariff", account="login")

    # Personal data is in every answer and nowhere else.
    secrets = personal_data(s)
    assert len(secrets) >= 20
    logs = "\n".join(rec.getMessage() for rec in caplog.records)
    leaked = [x for x in secrets if x in body or x in page or x in logs]
    assert leaked == []


def test_a_plant_left_out_of_the_answer_or_refused_gets_no_details(make_sim, run_exporter) -> None:
    s = make_sim(plants=30, seed=4)
    ids = list(listed(s))
    refused, vanished = int(ids[3]), int(ids[25])

    def change_the_fleet(sim: Simulator) -> None:  # between the plant list and the details
        sim.set_authorized(refused, False)
        sim.remove_plant(vanished)

    s.inject("hook", path=DETAILS, hook=change_the_fleet)
    r = start(run_exporter, s, oauth_account(s, None, realtime={"enabled": False}))
    found = r.metrics()
    first = calls_to(s, DETAILS)[0].response["result_data"]
    assert str(refused) in first["not_authorization_ps_list"]
    assert vanished not in {int(row["ps_id"]) for c in calls_to(s, DETAILS)
                            for row in c.response["result_data"]["data_list"]}
    with_details = {dict(lbl)["ps_id"] for lbl in select(found, "isolarcloud_plant_installed_power_watts",
                                                         account="oauth")}
    assert with_details == set(ids) - {str(refused), str(vanished)}
    for ps_id in (str(refused), str(vanished)):
        assert value(found, "isolarcloud_plant_fault_status", account="oauth", ps_id=ps_id) is not None  # listed
        assert not select(found, "isolarcloud_plant_logger_info", ps_id=ps_id)
        assert not select(found, "isolarcloud_plant_feed_in_tariff", ps_id=ps_id)
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="details") == 1


def test_install_power_in_kw_is_read_with_the_unit_option(make_sim, run_exporter) -> None:
    s = make_sim(plants=10, seed=5, install_power_unit="kW")
    r = start(run_exporter, s, oauth_account(s, None, realtime={"enabled": False},
                                             details={"install_power_unit": "kW"}))
    found = r.metrics()
    rows = {str(row["ps_id"]): row for c in calls_to(s, DETAILS) for row in c.response["result_data"]["data_list"]}
    assert rows
    for ps_id, row in rows.items():
        assert value(found, "isolarcloud_plant_installed_power_watts", ps_id=ps_id) == pytest.approx(
            float(row["install_power"]) * 1000)
