"""What the real cloud may do (issue 14), end to end: the exporter on a real socket against the simulator set to
behave as a hostile or merely different gateway. One named test (or a few) per item of the issue; pacing and
HTTP 429 are in tests/test_rate_limit.py, the simulator's own behaviour in tests/test_simulator_portal.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from exporter.simulator import Simulator
from tests.conftest import Clock, Running, Samples, login_account, oauth_account, select, value

LIST = "queryPowerStationList"
LEGACY_LIST = "getPowerStationList"
REALTIME = "getPowerStationRealTimeData"


def listed(sim: Simulator) -> set[str]:
    return {str(p.ps_id) for p in sim.fleet.query(None, "", frozenset({1, 3}))}


def listed_authorised(sim: Simulator) -> list[str]:
    return [str(p.ps_id) for p in sim.fleet.query(None, "", frozenset({1, 3}), authorized_only=True)]


def shown(found: Samples, metric: str, account: str) -> dict[str, float]:
    return {dict(labels)["ps_id"]: v for labels, v in select(found, metric, account=account).items()}


def requests_total(found: Samples, account: str, endpoint: str, result: str) -> float:
    return value(found, "isolarcloud_api_requests_total", account=account, endpoint=endpoint, result=result) or 0.0


def answered(found: Samples, account: str) -> set[str]:
    """Plants with real-time values (any of three points: the model leaves a point out now and then)."""
    return {p for metric in ("isolarcloud_plant_power_watts", "isolarcloud_plant_energy_today_joules",
                             "isolarcloud_plant_energy_joules_total") for p in shown(found, metric, account)}


def start(run_exporter: Callable[..., Running], *accounts: dict[str, Any], **config: Any) -> Running:
    r = run_exporter({"accounts": list(accounts), **config}, start=False)
    r.refresh_now()
    return r


# -- 1. tokens that die again mid-cycle ------------------------------------------------------------------------


def test_access_tokens_revoked_early_are_refreshed_again_within_a_cycle(make_sim, run_exporter) -> None:
    """A gateway that revokes every access token after 3 calls: a cycle of 8 list pages and a real-time batch
    needs several refreshes. Each new token served calls before it was rejected, so each is refreshed again;
    the account keeps working, cycle after cycle."""
    sim = make_sim(plants=40, seed=11, access_token_calls=3)
    r = start(run_exporter, oauth_account(sim, None, page_size=5))
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="oauth") == 1
    assert set(shown(found, "isolarcloud_plant_info", "oauth")) == listed(sim)
    assert set(shown(found, "isolarcloud_plant_power_watts", "oauth")) <= listed(sim)
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="realtime") == 1
    first = value(found, "isolarcloud_auth_total", account="oauth", kind="refresh", result="success")
    assert first is not None and first >= 3  # the initial token, then one per 3 calls
    assert sim.count("refreshToken") == first
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="oauth") == 1
    assert value(found, "isolarcloud_refreshes_total", account="oauth", result="error") == 0
    assert (value(found, "isolarcloud_auth_total", account="oauth", kind="refresh", result="success") or 0) > first
    assert requests_total(found, "oauth", LIST, "oauth_invalid_token") >= 2


def test_login_tokens_revoked_early_log_in_again_within_a_cycle(make_sim, run_exporter) -> None:
    sim = make_sim(plants=40, seed=12, login_token_calls=3)
    # The plant list alone (8 pages): the device inventory's 40 list calls would need 14 logins a cycle, more than
    # the gateway's limit on logins (E916), which is not what this test is about.
    r = start(run_exporter, login_account(sim, page_size=5, devices={"enabled": False}))
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="login") == 1
    assert set(shown(found, "isolarcloud_plant_info", "login")) == listed(sim)
    assert value(found, "isolarcloud_refreshes_total", account="login", result="error") == 0
    assert (value(found, "isolarcloud_auth_total", account="login", kind="login", result="success") or 0) >= 5


# -- 2. memory: the default cap fits the largest realistic answer ----------------------------------------------


def test_the_default_cap_takes_the_largest_realistic_answer_and_refuses_more(make_sim, run_exporter) -> None:
    """A legacy list page of 1000 plants (the largest page_size; ~1.7 MB) passes the default max_response_bytes;
    an answer over it is abandoned as too_large, and the account keeps its list."""
    sim = make_sim(plants=1000, seed=13, huge_size=9 * 1024 * 1024)
    # The plant list alone: a thousand plants' device lists are not what this test is about.
    r = start(run_exporter, login_account(sim, page_size=1000, devices={"enabled": False}))
    found = r.metrics()
    assert value(found, "isolarcloud_plants", account="login") == len(listed(sim))
    assert sim.count(LEGACY_LIST) == 1
    sim.inject("huge", path=LEGACY_LIST)
    r.refresh_now()
    found = r.metrics()
    assert requests_total(found, "login", LEGACY_LIST, "too_large") == 1
    assert value(found, "isolarcloud_up", account="login") == 0
    assert value(found, "isolarcloud_plants", account="login") == len(listed(sim))


# -- 3. limits discovered, remembered, exported ----------------------------------------------------------------


def test_a_silently_clamped_page_size_is_learned_and_exported(make_sim, run_exporter) -> None:
    sim = make_sim(plants=50, seed=14, max_page_size=7)
    r = start(run_exporter, oauth_account(sim, None, page_size=20, realtime={"enabled": False}))
    found = r.metrics()
    assert set(shown(found, "isolarcloud_plant_info", "oauth")) == listed(sim)
    assert value(found, "isolarcloud_effective_limit", account="oauth", limit="page_size") == 7
    assert select(found, "isolarcloud_effective_limit", limit="realtime_batch_size") == {}
    sim.reset_calls()
    r.refresh_now()
    assert {c.body["size"] for c in sim.calls if c.path.endswith(LIST)} == {7}
    assert set(shown(r.metrics(), "isolarcloud_plant_info", "oauth")) == listed(sim)


@pytest.mark.parametrize("style", ["010", "009", "message"])
def test_a_refused_realtime_batch_is_halved_remembered_and_exported(style: str, make_sim, run_exporter) -> None:
    """The gateway takes at most 20 plants per real-time call (undocumented) and refuses more with `010`, `009` or
    an error naming the limit: the same plants are asked again in halves, nobody is lost, and from then on the
    batch that worked is used (no refused call in the next pass)."""
    sim = make_sim(plants=60, seed=15, max_realtime_plants=20, realtime_limit_style=style)
    r = start(run_exporter, oauth_account(sim, None))
    found = r.metrics()
    plants = listed(sim)
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="realtime") == 1
    assert answered(found, "oauth") == plants
    assert value(found, "isolarcloud_effective_limit", account="oauth", limit="realtime_batch_size") == 13
    assert value(found, "isolarcloud_realtime_unanswered_plants_total", account="oauth") == 0
    code = {"message": "-1"}.get(style, style)
    assert requests_total(found, "oauth", REALTIME, code) == 2  # 50 and 25 refused
    sim.reset_calls()
    r.refresh_now()
    assert not [c for c in sim.calls if c.result_code not in ("1", None)]
    assert max(len(c.body["ps_id_list"]) for c in sim.calls if c.path.endswith(REALTIME)) == 13


# -- 9. a negative or falling lifetime value -------------------------------------------------------------------


def test_a_negative_lifetime_value_is_never_exported_as_a_counter(make_sim, run_exporter) -> None:
    sim = make_sim(plants=8, seed=16)
    r = start(run_exporter, oauth_account(sim, None))
    plant = next(p.ps_id for p in sim.plants if str(p.ps_id) in shown(
        r.metrics(), "isolarcloud_plant_consumption_joules_total", "oauth"))
    sim.set_point_value(plant, 83124, "-478739.743")  # as recorded from a real plant
    sim.set_point_value(plant, 83118, "1234.5")  # its daily value stays positive
    r.refresh_now()
    found = r.metrics()
    assert str(plant) not in shown(found, "isolarcloud_plant_consumption_joules_total", "oauth")
    assert shown(found, "isolarcloud_plant_consumption_today_joules", "oauth")[str(plant)] == 1234.5 * 3600
    assert value(found, "isolarcloud_lifetime_values_dropped_total", account="oauth", reason="negative") == 1
    assert all(v >= 0 for v in select(found, "isolarcloud_plant_consumption_joules_total").values())


def test_a_lifetime_value_that_dips_is_dropped_until_it_persists(make_sim, run_exporter) -> None:
    sim = make_sim(plants=8, seed=17)
    r = start(run_exporter, oauth_account(sim, None))
    energy = shown(r.metrics(), "isolarcloud_plant_energy_joules_total", "oauth")
    ps_id = next(iter(energy))
    low = energy[ps_id] / 3600 / 2  # Wh, half the exported total
    sim.set_point_value(int(ps_id), 83024, f"{low:.1f}")
    for dropped in (1, 2):
        r.refresh_now()
        found = r.metrics()
        assert ps_id not in shown(found, "isolarcloud_plant_energy_joules_total", "oauth")
        assert value(found, "isolarcloud_lifetime_values_dropped_total", account="oauth", reason="decrease") == dropped
    r.refresh_now()  # the third pass in a row: a real reset (a replaced meter), believed and exported
    found = r.metrics()
    assert shown(found, "isolarcloud_plant_energy_joules_total", "oauth")[ps_id] == pytest.approx(
        float(f"{low:.1f}") * 3600)
    assert value(found, "isolarcloud_lifetime_values_dropped_total", account="oauth", reason="decrease") == 2


def test_a_negative_legacy_total_is_dropped_too(make_sim, run_exporter) -> None:
    sim = make_sim(plants=8, seed=18)
    plant = int(sorted(listed(sim))[0])
    sim.set_point_value(plant, 83024, "-5000")
    found = start(run_exporter, login_account(sim)).metrics()
    assert str(plant) not in shown(found, "isolarcloud_plant_energy_joules_total", "login")
    assert len(shown(found, "isolarcloud_plant_energy_joules_total", "login")) == len(listed(sim)) - 1
    assert value(found, "isolarcloud_lifetime_values_dropped_total", account="login", reason="negative") == 1


# -- 10. an empty real-time answer -----------------------------------------------------------------------------


@pytest.mark.parametrize("empty", ["{}", "[]"])
def test_an_empty_realtime_answer_means_no_data_not_a_failed_refresh(empty: str, make_sim, run_exporter) -> None:
    sim = make_sim(plants=12, seed=19)
    sim.inject(f"empty_result:{empty}", path=REALTIME, times=1000)
    r = start(run_exporter, oauth_account(sim, None))
    found = r.metrics()
    assert value(found, "isolarcloud_up", account="oauth") == 1
    assert set(shown(found, "isolarcloud_plant_info", "oauth")) == listed(sim)
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="realtime") == 1
    assert shown(found, "isolarcloud_plant_power_watts", "oauth") == {}
    assert value(found, "isolarcloud_realtime_unanswered_plants_total", account="oauth") == len(listed(sim))
    assert requests_total(found, "oauth", REALTIME, "1") == 1 and sim.count(REALTIME) == 1
    assert value(found, "isolarcloud_refreshes_total", account="oauth", result="error") == 0


# -- 11. silent real-time misses -------------------------------------------------------------------------------


def test_entries_nested_under_device_point_are_read(make_sim, run_exporter) -> None:
    sim = make_sim(plants=12, seed=20)
    sim.inject("nested_entries", path=REALTIME)
    r = start(run_exporter, oauth_account(sim, None))
    nested = answered(r.metrics(), "oauth")
    r.refresh_now()  # the same plants, answered flat
    assert nested == answered(r.metrics(), "oauth") == listed(sim)
    assert value(r.metrics(), "isolarcloud_realtime_unanswered_plants_total", account="oauth") == 0


def test_plants_left_out_of_an_answer_are_asked_again_then_counted(make_sim, run_exporter) -> None:
    sim = make_sim(plants=12, seed=21)
    sim.inject("drop_entries:3", path=REALTIME)  # once: the second ask answers them
    r = start(run_exporter, oauth_account(sim, None))
    found = r.metrics()
    asked = [c.body["ps_id_list"] for c in sim.calls if c.path.endswith(REALTIME)]
    assert len(asked) == 2 and asked[1] == asked[0][-3:]
    assert answered(found, "oauth") == listed(sim)
    assert value(found, "isolarcloud_realtime_unanswered_plants_total", account="oauth") == 0

    sim.inject("drop_entries:3", path=REALTIME, times=2)  # left out twice: counted, never silently missing
    r.refresh_now()
    found = r.metrics()
    assert value(found, "isolarcloud_realtime_unanswered_plants_total", account="oauth") == 3
    assert answered(found, "oauth") == listed(sim) - set(asked[1])
    assert value(found, "isolarcloud_collection_up", account="oauth", collection="realtime") == 1


def test_entries_for_plants_nobody_asked_for_do_not_answer_anyone(make_sim, run_exporter) -> None:
    """Every entry names a plant that was not asked for: none of them is taken for a plant, and all plants are
    asked once more."""
    sim = make_sim(plants=12, seed=22)
    sim.inject("foreign_entries", path=REALTIME)
    found = start(run_exporter, oauth_account(sim, None)).metrics()
    asked = [c.body["ps_id_list"] for c in sim.calls if c.path.endswith(REALTIME)]
    assert len(asked) == 2 and sorted(asked[1]) == sorted(listed(sim))
    assert answered(found, "oauth") == listed(sim)
    assert value(found, "isolarcloud_realtime_unanswered_plants_total", account="oauth") == 0


def test_a_comma_separated_fail_list_counts_plants_not_characters(make_sim, run_exporter) -> None:
    """Two plants the app may no longer see are still in the list the exporter holds; real-time refuses them in a
    fail list written as one comma-separated string (the field table types it "string")."""
    sim = make_sim(plants=12, seed=23)
    clock = Clock()
    r = run_exporter({"refresh_interval": 600, "accounts": [oauth_account(sim, None, realtime={"interval": 60})]},
                     clock=clock, start=False)
    r.refresh_now()
    refused = sorted(listed(sim))[:2]
    sim.set_authorized([int(p) for p in refused], False)
    sim.inject("fail_list_string", path=REALTIME)
    clock.advance(61)
    r.exporter.engines[0].refresh()  # only the real-time pass is due: the list it works on still has both
    fail_list = [c.response["result_data"]["fail_ps_id_list"] for c in sim.calls if c.path.endswith(REALTIME)][-1]
    assert fail_list == ",".join(refused)
    found = r.metrics()
    assert value(found, "isolarcloud_realtime_failed_plants_total", account="oauth") == 2
    assert value(found, "isolarcloud_realtime_unanswered_plants_total", account="oauth") == 0
    assert not set(refused) & answered(found, "oauth")


# -- 12. legacy timestamps and state fields --------------------------------------------------------------------


def test_login_accounts_get_the_zoned_update_time_status_and_counts(make_sim, run_exporter) -> None:
    sim = make_sim(plants=40, seed=24)
    china = next(p for p in sim.plants if p.utc_offset_h == 8 and str(p.ps_id) in listed(sim))
    sim.set_plant(china.ps_id, ps_current_time_zone="GMT-8")  # the sign seen on a plant in eastern China
    found = start(run_exporter, login_account(sim)).metrics()
    updates = shown(found, "isolarcloud_plant_update_timestamp_seconds", "login")
    assert set(updates) == listed(sim)
    rows = {str(c["ps_id"]): c for call in sim.calls if call.path.endswith(LEGACY_LIST)
            for c in call.response["result_data"]["pageList"]}
    for ps_id, ts in updates.items():
        assert ts == datetime.fromisoformat(rows[ps_id]["curr_power_update_time"]).timestamp()
        assert "update_time" not in rows[ps_id]
    assert rows[str(china.ps_id)]["curr_power_update_time"].endswith("+08:00")
    status = shown(found, "isolarcloud_plant_connection_status", "login")
    faults = shown(found, "isolarcloud_plant_reported_faults", "login")
    alarms = shown(found, "isolarcloud_plant_reported_alarms", "login")
    for ps_id in listed(sim):
        plant = sim.fleet.by_id[int(ps_id)]
        assert status[ps_id] == plant.fields["ps_status"]
        assert faults[ps_id] == plant.fields["fault_count"] and alarms[ps_id] == plant.fields["alarm_count"]
    assert set(status.values()) == {0.0, 1.0}


def test_oauth_accounts_have_no_legacy_state_series(sim: Simulator, run_exporter, tmp_path: Path) -> None:
    found = start(run_exporter, oauth_account(sim, None)).metrics()
    assert select(found, "isolarcloud_plant_connection_status") == {}
    assert select(found, "isolarcloud_plant_reported_faults") == {}


# -- 13. numbers with commas -----------------------------------------------------------------------------------


def test_thousands_separators_only_where_unambiguous(make_sim, run_exporter) -> None:
    sim = make_sim(plants=8, seed=25)
    r = start(run_exporter, oauth_account(sim, None))
    ids = sorted(shown(r.metrics(), "isolarcloud_plant_info", "oauth"))[:4]
    for ps_id, text in zip(ids, ["1,234,567.5", "12,5", "1,234", "1.234,5"], strict=True):
        sim.set_point_value(int(ps_id), 83033, text)
    r.refresh_now()
    power = shown(r.metrics(), "isolarcloud_plant_power_watts", "oauth")
    assert [power.get(i) for i in ids] == [1234567.5, 12.5, None, 1234.5]


# -- 8. the simulator closer to the portal, as the exporter meets it --------------------------------------------


def test_more_legacy_units_end_to_end(make_sim, run_exporter) -> None:
    """kW·h, 千瓦时 and 万千瓦时 are read; an empty unit is skipped and counted, never guessed."""
    sim = make_sim(plants=40, seed=26, legacy_units="varied")
    plain = make_sim(plants=40, seed=26)
    found = start(run_exporter, login_account(sim), login_account(plain, name="plain")).metrics()
    varied = shown(found, "isolarcloud_plant_energy_joules_total", "login")
    reference = shown(found, "isolarcloud_plant_energy_joules_total", "plain")
    rows = {str(c["ps_id"]): c["total_energy"] for call in sim.calls if call.path.endswith(LEGACY_LIST)
            for c in call.response["result_data"]["pageList"]}
    seen = set()
    for ps_id, energy in rows.items():
        if ps_id not in reference:
            continue
        seen.add(energy["unit"])
        if energy["unit"] == "":
            assert ps_id not in varied
        else:
            assert varied[ps_id] == pytest.approx(reference[ps_id], rel=1e-3)
    assert {"kW·h", "千瓦时", "万千瓦时", ""} <= seen
    assert (value(found, "isolarcloud_unknown_units_total", account="login", unit="") or 0) >= 1
