"""Rules of the probe that the simulator has no variant for, in memory: the hard call cap, the choice of sizes
to try, a real-time answer that silently drops plants, and a refusal that only its message names."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.fetch.probe import MAX_CALLS, CountingGateway, Probe, ProbeBudgetSpent, _middle, plan
from tests.conftest import Clock
from tests.fakes import FakeGateway, fail, oauth_session, ok, plant_row, token_answers

LIST, REALTIME = "queryPowerStationList", "getPowerStationRealTimeData"


def test_the_plan_fits_the_cap() -> None:
    assert plan(True) <= MAX_CALLS and plan(False) <= MAX_CALLS


def test_no_call_beyond_the_cap_is_sent() -> None:
    inner = FakeGateway({LIST: lambda body: ok({"pageList": []})})
    gateway = CountingGateway(inner, limit=2)
    gateway.post("/openapi/platform/" + LIST, {}, {})
    gateway.post("/openapi/platform/" + LIST, {}, {})
    with pytest.raises(ProbeBudgetSpent):
        gateway.post("/openapi/platform/" + LIST, {}, {})
    assert inner.count(LIST) == 2 and gateway.sent == 2 and gateway.results == {(LIST, "1"): 2}


@pytest.mark.parametrize(("low", "high", "tried"), [(20, 50, 30), (200, 500, 300), (300, 400, 350), (30, 40, 35),
                                                    (27, 31, 30), (7, 9, 8)])
def test_round_sizes_are_tried_first(low: int, high: int, tried: int) -> None:
    assert _middle(low, high) == tried


def run(gateway: FakeGateway, **kwargs: Any) -> Any:
    gateway.handlers.setdefault("refreshToken", token_answers())
    clock = Clock(1_718_452_800.0)
    counted = CountingGateway(gateway)
    session = oauth_session(counted, clock=clock)
    return Probe(counted, session, filters={}, may_refresh=True, wait=0, clock=clock, sleep=clock.advance,
                 **kwargs).run()


def test_plants_silently_left_out_of_a_real_time_answer_are_counted() -> None:
    rows = [plant_row(1000 + i) for i in range(30)]

    def realtime(body: dict[str, Any]) -> dict[str, Any]:
        kept = body["ps_id_list"][:10]  # answers ten, says nothing of the rest
        return ok({"device_point_list": [{"ps_id": i, "p83033": "1"} for i in kept], "fail_ps_id_list": "1029"})

    result = run(FakeGateway({LIST: lambda body: ok({"pageList": rows[:int(body["size"])], "row_count": 30}),
                              REALTIME: realtime}))
    batch = next(f for f in result.findings if f.question == "realtime_batch")
    assert batch.settled and batch.facts["accepted"] == 30
    # A comma-separated fail_ps_id_list (the table types it a string) is read as ids.
    assert batch.facts["failed"] == 1 and batch.facts["unanswered"] == 19
    assert "19 of them neither answered nor listed as failed" in batch.summary


def test_a_refusal_named_only_by_its_message_counts_as_too_large() -> None:
    rows = [plant_row(1000 + i) for i in range(300)]

    def plant_list(body: dict[str, Any]) -> dict[str, Any]:
        if int(body["size"]) > 200:
            return fail("-1", "page size exceeds the limit")
        return ok({"pageList": rows[:int(body["size"])], "rowCount": 300})

    result = run(FakeGateway({LIST: plant_list, REALTIME: lambda body: ok({"device_point_list": []})}))
    pages = next(f for f in result.findings if f.question == "page_size")
    assert pages.facts["accepted"] == 200 and pages.facts["refusal"] == "-1"


def test_an_unrelated_failure_is_not_read_as_a_limit() -> None:
    result = run(FakeGateway({LIST: lambda body: fail("E996", "api not found")}))
    listed = next(f for f in result.findings if f.question == "plant_list")
    assert not listed.settled and listed.facts["result"] == "E996"
    assert result.calls == 3  # the refresh, the made-up token, one list call: no ladder on an unrelated error
