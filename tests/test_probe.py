"""`isolarcloud-exporter probe` (issue 14, item 5) against the simulator set to each variant of each unknown it
settles: the list's total key, the page-size limit (none, a silent cap, a refusal), the real-time batch limit, the
token answer's shape, the rejected-token answer, the time-zone sign, whether update_time follows the values, and a
login app's quota. Every run stays within its call budget, saves a rotated token as the exporter does, and leaks
no secret and no personal data. The probe and the simulator share one settable clock: `--wait` passes at once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.config import parse_config
from exporter.fetch.probe import MAX_CALLS, PLANNED_CALLS, plan
from exporter.probe import ProbeReport, render_text, report_json, run_probe
from exporter.simulator import Simulator
from tests.conftest import Clock, Running, login_account, oauth_account, value

REPO = Path(__file__).resolve().parents[1]
NOON_UTC = 1_718_452_800.0  # 2024-06-15 12:00 UTC


def probe(sim: Simulator, clock: Clock, tmp_path: Path, *, wait: float = 360, account: dict[str, Any] | None = None,
          **extra: Any) -> ProbeReport:
    data = {"accounts": [account or oauth_account(sim, tmp_path / "tokens.json", name="home", **extra)]}
    config = parse_config(data, env={})
    report = run_probe(config.accounts[0], config, wait=wait, clock=clock, sleep=clock.advance)
    assert report.result.calls <= PLANNED_CALLS <= MAX_CALLS
    assert report.result.calls == sum(report.result.results.values())
    return report


def finding(report: ProbeReport, question: str) -> dict[str, Any]:
    found = next(f for f in report.result.findings if f.question == question)
    return {"settled": found.settled, "summary": found.summary, **found.facts}


def suggested(report: ProbeReport) -> dict[str, Any]:
    return {s.key: s.value for s in report.suggestions}


@pytest.fixture
def clock() -> Clock:
    return Clock(NOON_UTC)


# -- the plant list ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("total_key", "keys"), [("rowCount", ["rowCount"]), ("row_count", ["row_count"]),
                                                 (None, [])])
def test_which_total_key_the_list_uses(make_sim: Callable[..., Simulator], clock: Clock, tmp_path: Path,
                                       total_key: str | None, keys: list[str]) -> None:
    sim = make_sim(plants=60, clock=clock, total_key=total_key, max_page_size=25)
    report = probe(sim, clock, tmp_path, wait=0)
    listed = finding(report, "plant_list")
    assert listed["settled"] and listed["keys"] == keys
    pages = finding(report, "page_size")
    # A silent cap is found with or without a total: without one, a second page tells the cap from the end.
    assert pages["settled"] and pages["clamped_at"] == pages["largest"] == 25
    assert suggested(report)["page_size"] == 25
    if total_key is None:
        assert "no total in the answer" in listed["summary"]
    else:
        assert listed["total"] == len(sim.fleet.query(None, "", frozenset({1, 3})))


def test_a_refused_page_size_is_narrowed_down(make_sim: Callable[..., Simulator], clock: Clock,
                                              tmp_path: Path) -> None:
    sim = make_sim(plants=30, clock=clock, max_page_size=300, page_size_over_limit="reject")
    report = probe(sim, clock, tmp_path, wait=0, page_size=500)
    pages = finding(report, "page_size")
    assert pages["settled"] and pages["refusal"] == "010" and pages["clamped_at"] is None
    assert pages["accepted"] == pages["largest"] >= 250 and pages["refused"] <= 350  # 1000, 500, 200, then halving
    assert pages["accepted"] <= 300 < pages["refused"]
    assert suggested(report)["page_size"] == pages["accepted"]  # the configured 500 would be refused


def test_a_small_account_cannot_show_a_cap_and_needs_no_change(make_sim: Callable[..., Simulator], clock: Clock,
                                                              tmp_path: Path) -> None:
    sim = make_sim(plants=20, clock=clock)
    report = probe(sim, clock, tmp_path, wait=0)
    pages = finding(report, "page_size")
    assert pages["accepted"] == 1000 and pages["limit_visible"] is False
    assert "page_size" not in suggested(report) and "realtime.batch_size" not in suggested(report)


# -- real-time batches ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "accepted"), [(None, 240), (30, 30), (8, None)])
def test_the_largest_real_time_batch(make_sim: Callable[..., Simulator], clock: Clock, tmp_path: Path,
                                     limit: int | None, accepted: int | None) -> None:
    sim = make_sim(plants=240, clock=clock, max_realtime_plants=limit)
    report = probe(sim, clock, tmp_path, wait=0, valid_flag="1,2,3")
    batch = finding(report, "realtime_batch")
    if accepted is None:  # even 20 is refused: nothing settled, nothing suggested
        assert not batch["settled"] and batch["refusal"] == "010"
        assert "realtime.batch_size" not in suggested(report)
        return
    assert batch["settled"] and batch["accepted"] == accepted and batch["unanswered"] == 0
    if limit is None:
        assert batch["refused"] is None  # all 240 plants (one page of up to 1000) answered in one call
        assert suggested(report)["realtime.batch_size"] == 240  # 1 call for 240 plants instead of 5
    else:
        assert limit < batch["refused"] <= limit + 5  # 50 refused, 20 answered, then 30, 40, 35: round sizes first
        assert "realtime.batch_size" in suggested(report)


# -- tokens --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["result_data", "top_level", "both"])
def test_the_token_answer_shape_and_the_rotated_token_is_saved(make_sim: Callable[..., Simulator], clock: Clock,
                                                               tmp_path: Path, run_exporter: Callable[..., Running],
                                                               shape: str) -> None:
    sim = make_sim(plants=5, clock=clock, token_answer_shape=shape)
    token_file = tmp_path / "tokens.json"
    account = oauth_account(sim, token_file, name="home")
    seeded = account["auth"]["refresh_token"]
    report = probe(sim, clock, tmp_path, wait=0, account=account)
    token = finding(report, "token_answer")
    assert token["settled"] and token["shape"] == shape and token["rotated"] is True
    assert token["expires_in"] == 172799
    stored = json.loads(token_file.read_text())["refresh_token"]
    assert seeded in sim.auth.spent_refresh and stored not in sim.auth.spent_refresh
    # The exporter, started after the probe, carries on with the token the probe saved.
    running = run_exporter({"accounts": [{**account, "auth": {k: v for k, v in account["auth"].items()
                                                               if k != "refresh_token"}}]}, clock=clock, start=False)
    running.refresh_now()
    assert value(running.metrics(), "isolarcloud_up", account="home") == 1


def test_a_running_exporter_carries_on_with_the_token_the_probe_rotated(
        make_sim: Callable[..., Simulator], clock: Clock, tmp_path: Path,
        run_exporter: Callable[..., Running]) -> None:
    sim = make_sim(plants=5, clock=clock)  # a refresh revokes the access token issued with the spent one
    account = oauth_account(sim, tmp_path / "tokens.json", name="home")
    running = run_exporter({"accounts": [account]}, clock=clock, start=False)
    running.refresh_now()
    probe(sim, clock, tmp_path, wait=0, account=account)
    clock.advance(300)
    running.refresh_now()  # its access token was revoked: it refreshes with the token file's newer token
    found = running.metrics()
    assert value(found, "isolarcloud_up", account="home") == 1
    assert value(found, "isolarcloud_auth_total", account="home", kind="refresh", result="failure") is None


@pytest.mark.parametrize(("style", "result"), [("envelope", "E00003"), ("oauth_error", "oauth_invalid_token")])
def test_how_a_rejected_token_is_answered(make_sim: Callable[..., Simulator], clock: Clock, tmp_path: Path,
                                          style: str, result: str) -> None:
    sim = make_sim(plants=5, clock=clock, expired_token_style=style)
    report = probe(sim, clock, tmp_path, wait=0)
    rejected = finding(report, "rejected_token")
    assert rejected["settled"] and rejected["style"] == style and rejected["result"] == result


def test_without_a_token_file_the_probe_never_refreshes(make_sim: Callable[..., Simulator], clock: Clock,
                                                        tmp_path: Path) -> None:
    sim = make_sim(plants=5, clock=clock)
    tokens = sim.issue_tokens()
    account = {"name": "home", "base_url": sim.url, "auth": {
        "mode": "oauth2", "appkey": sim.appkey, "secret_key": sim.secret_key,
        "access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"]}}
    report = probe(sim, clock, tmp_path, wait=0, account=account)
    assert sim.count("refreshToken") == 0 and tokens["refresh_token"] not in sim.auth.spent_refresh
    assert not finding(report, "token_answer")["settled"]
    assert finding(report, "plant_list")["settled"]


# -- time zones ----------------------------------------------------------------------------------------------


def test_the_fleet_s_flipped_zones_are_found_and_named(make_sim: Callable[..., Simulator], clock: Clock,
                                                       tmp_path: Path) -> None:
    sim = make_sim(plants=200, seed=2, clock=clock)
    report = probe(sim, clock, tmp_path, wait=0, valid_flag="1,2,3", page_size=200)
    zone = finding(report, "time_zone")
    flipped = [p for p in sim.plants if p.update_lag_s < 86400 and p.utc_offset_h
               and p.fields["ps_current_time_zone"].startswith("GMT-") == (p.utc_offset_h > 0)]
    assert zone["settled"] and zone["readings"]["flipped"] == len(flipped) > 0
    assert zone["readings"]["written"] > 10 * len(flipped)
    notes = next(f for f in report.result.findings if f.question == "time_zone").notes
    assert all(str(p.ps_id) in notes[0] for p in flipped[:10])
    assert "api_time_zone" not in suggested(report)  # several regions: no single setting reads all of them right


def test_one_zone_with_some_flipped_signs_suggests_the_fixed_offset(make_sim: Callable[..., Simulator],
                                                                    clock: Clock, tmp_path: Path) -> None:
    sim = make_sim(plants=40, seed=2, clock=clock)
    for i, plant in enumerate(sim.plants):
        sim.set_plant(plant.ps_id, utc_offset_h=8, ps_current_time_zone="GMT-8" if i % 7 == 0 else "GMT+8")
    report = probe(sim, clock, tmp_path, wait=0, valid_flag="1,2,3")
    zone = finding(report, "time_zone")
    assert zone["offsets"] == {"+08:00": zone["readings"]["written"] + zone["readings"]["flipped"]}
    assert suggested(report)["api_time_zone"] == "+08:00"
    assert 'api_time_zone: "+08:00"' in render_text(report)


def test_update_time_in_utc_whatever_the_zone_says(make_sim: Callable[..., Simulator], clock: Clock,
                                                   tmp_path: Path) -> None:
    sim = make_sim(plants=40, seed=2, clock=clock)
    for plant in sim.plants:
        sim.set_plant(plant.ps_id, utc_offset_h=0)  # the zone strings still say GMT+8, GMT+1, …
    report = probe(sim, clock, tmp_path, wait=0, valid_flag="1,2,3")
    zone = finding(report, "time_zone")
    assert zone["readings"]["utc"] > 0 and not zone["readings"].get("written")
    assert suggested(report)["api_time_zone"] == "UTC"


def test_when_no_plant_reported_recently_the_zone_stays_open(make_sim: Callable[..., Simulator], clock: Clock,
                                                            tmp_path: Path) -> None:
    sim = make_sim(plants=20, clock=clock)
    for plant in sim.plants:
        sim.set_plant(plant.ps_id, update_time="2024-06-01 08:00:00")
    report = probe(sim, clock, tmp_path, wait=0, valid_flag="1,2,3")
    assert not finding(report, "time_zone")["settled"] and "api_time_zone" not in suggested(report)


# -- update_time and the values ------------------------------------------------------------------------------


def test_update_time_that_follows_the_values_suggests_skip_unchanged(make_sim: Callable[..., Simulator],
                                                                     clock: Clock, tmp_path: Path) -> None:
    sim = make_sim(plants=60, clock=clock, update_time_style="data")
    report = probe(sim, clock, tmp_path, wait=360)
    follows = finding(report, "update_time")
    assert follows["settled"] and follows["summary"].startswith("yes")
    assert follows["both"] > 0 and follows["values_only"] == 0 and follows["waited_seconds"] == 360
    assert suggested(report)["realtime.skip_unchanged"] is True
    assert report.result.calls == 1 + 1 + 1 + 1 + 2  # refresh, rejected token, one page, one batch, the second look


def test_update_time_that_stands_still_while_values_move_says_no(make_sim: Callable[..., Simulator], clock: Clock,
                                                                 tmp_path: Path) -> None:
    sim = make_sim(plants=30, clock=clock)
    for plant in sim.plants:
        sim.set_plant(plant.ps_id, update_time="2024-06-15 19:55:00")  # fixed, while the model moves on
    report = probe(sim, clock, tmp_path, wait=360, realtime={"skip_unchanged": True}, valid_flag="1,2,3")
    follows = finding(report, "update_time")
    assert follows["settled"] and follows["summary"].startswith("no") and follows["values_only"] > 0
    assert suggested(report)["realtime.skip_unchanged"] is False


def test_too_short_a_wait_leaves_the_question_open(make_sim: Callable[..., Simulator], clock: Clock,
                                                   tmp_path: Path) -> None:
    clock.now = NOON_UTC + 10  # early in a 5-minute data interval: nothing moves within a minute
    sim = make_sim(plants=30, clock=clock, update_time_style="data")
    for plant in sim.plants:
        sim.set_plant(plant.ps_id, update_lag_s=0.0)
    report = probe(sim, clock, tmp_path, wait=60)
    follows = finding(report, "update_time")
    assert not follows["settled"] and follows["summary"].startswith("undecided")
    assert "realtime.skip_unchanged" not in suggested(report)


# -- login apps ----------------------------------------------------------------------------------------------


def test_a_login_app_learns_its_quota(make_sim: Callable[..., Simulator], clock: Clock, tmp_path: Path) -> None:
    sim = make_sim(plants=30, clock=clock, hourly_quota=1500, max_page_size=200)
    report = probe(sim, clock, tmp_path, account=login_account(sim, name="home"))
    quota = finding(report, "quota")
    assert quota["settled"] and quota["hour_limit"] == 1500 and quota["day_limit"] == 36000
    assert suggested(report)["api_budget_per_hour"] == "auto"
    assert finding(report, "page_size")["settled"]
    for question in ("token_answer", "rejected_token", "realtime_batch", "update_time"):
        assert finding(report, question)["applicable"] is False
    assert sim.count("getPowerStationRealTimeData") == 0
    assert report.result.calls <= plan(False)


# -- budget, failures, secrets -------------------------------------------------------------------------------


def test_every_ladder_refused_stays_within_the_plan(make_sim: Callable[..., Simulator], clock: Clock,
                                                    tmp_path: Path) -> None:
    sim = make_sim(plants=300, clock=clock, max_page_size=30, page_size_over_limit="reject",
                   max_realtime_plants=5)
    report = probe(sim, clock, tmp_path, wait=360)
    assert report.result.calls <= plan(True)
    assert finding(report, "page_size")["accepted"] == 30
    assert not finding(report, "realtime_batch")["settled"]


def test_refused_credentials_stop_the_probe_with_a_clear_report(make_sim: Callable[..., Simulator], clock: Clock,
                                                                tmp_path: Path) -> None:
    sim = make_sim(plants=5, clock=clock)
    account = oauth_account(sim, tmp_path / "tokens.json", name="home")
    sim.rotate_refresh_token_elsewhere(account["auth"]["refresh_token"])  # someone else spent it
    report = probe(sim, clock, tmp_path, account=account)
    assert report.result.stopped is not None and "refused" in report.result.stopped
    assert not any(f.settled for f in report.result.findings if f.facts.get("applicable", True))
    assert report.result.calls == 1


def test_no_secret_and_no_personal_data_in_the_report(make_sim: Callable[..., Simulator], clock: Clock,
                                                      tmp_path: Path) -> None:
    sim = make_sim(plants=40, clock=clock, update_time_style="data")
    token_file = tmp_path / "tokens.json"
    account = oauth_account(sim, token_file, name="home")
    report = probe(sim, clock, tmp_path, account=account)
    text = render_text(report)
    dumped = json.dumps(report_json(report), ensure_ascii=False)
    stored = json.loads(token_file.read_text())
    secrets = [sim.appkey, sim.secret_key, account["auth"]["refresh_token"], stored["refresh_token"],
               stored["access_token"]]
    for secret in secrets:
        assert secret not in text and secret not in dumped
    for plant in sim.plants:  # names, places and ids of the plants stay out of the file
        for personal in (plant.fields["ps_name"], plant.fields["ps_location"]):
            if personal and len(str(personal)) > 3:
                assert str(personal) not in dumped
        assert f'"{plant.ps_id}"' not in dumped and f" {plant.ps_id}" not in dumped
    assert '"home"' not in dumped  # not even the account's name


# -- the command line ----------------------------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", "probe", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_the_command_writes_a_json_report(sim: Simulator, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"accounts": [oauth_account(sim, tmp_path / "tokens.json", name="home")]}))
    done = cli("--config.file", str(config), "--account", "home", "--wait", "0", "--output",
               str(tmp_path / "report.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Largest page size" in done.stdout and "Report written to" in done.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["auth_mode"] == "oauth2" and report["calls"] <= report["planned_max_calls"] == PLANNED_CALLS
    assert {f["question"] for f in report["findings"]} >= {"plant_list", "page_size", "time_zone", "update_time"}


@pytest.mark.parametrize(("args", "message"), [
    (["--account", "nobody"], "--account: no account named 'nobody'"),
    (["--account", "home", "--wait", "soon"], "--wait: expected a duration"),
    (["--account", "home", "--output", "/nonexistent-dir/report.json"], "--output: cannot write to directory"),
    (["--account", "bare"], "accounts.bare.auth: probe needs a token_file"),
])
def test_bad_input_is_one_line_and_exit_2(sim: Simulator, tmp_path: Path, args: list[str], message: str) -> None:
    config = tmp_path / "config.yaml"
    bare = {"name": "bare", "base_url": sim.url, "auth": {"mode": "oauth2", "appkey": sim.appkey,
                                                           "secret_key": sim.secret_key, "refresh_token": "r"}}
    config.write_text(json.dumps({"accounts": [oauth_account(sim, tmp_path / "t.json", name="home"), bare]}))
    done = cli("--config.file", str(config), *args, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert sim.count() == 0  # refused before any call
