"""The plant list, as a specification: every page read, each plant once, the total trusted but checked, a silently
clamped page size noticed and counted in the budget forecast. No sockets: an in-memory gateway (tests/fakes.py)."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.fetch.envelope import ResponseError
from exporter.fetch.plants import PlantListApi
from tests.fakes import FakeGateway, login_session, oauth_session, ok, paged_list, plant_row

LIST = "queryPowerStationList"


def api(gateway: FakeGateway, page_size: int = 10, legacy: bool = False) -> PlantListApi:
    session = (login_session if legacy else oauth_session)(gateway, clock=lambda: 1e9)
    return PlantListApi(session, page_size=page_size, filters={"valid_flag": "1,3"})


def rows(n: int) -> list[dict[str, Any]]:
    return [plant_row(1000 + i) for i in range(n)]


@pytest.mark.parametrize(("plants", "size", "pages"), [(0, 10, 1), (1, 10, 1), (10, 10, 1), (11, 10, 2),
                                                      (100, 10, 10), (101, 10, 11), (5, 1, 5)])
def test_every_page_once(plants: int, size: int, pages: int) -> None:
    gateway = FakeGateway({LIST: paged_list(rows(plants))})
    listing = api(gateway, size).read()
    assert [r["ps_id"] for r in listing.rows] == [1000 + i for i in range(plants)]
    assert listing.pages == pages == gateway.count(LIST)
    assert listing.consistent
    assert [body["page"] for _, body, _ in gateway.calls] == list(range(1, pages + 1))
    assert all(body["size"] == size and body["valid_flag"] == "1,3" for _, body, _ in gateway.calls)


@pytest.mark.parametrize("total_key", ["rowCount", "row_count", None])
def test_total_under_either_name_or_none(total_key: str | None) -> None:
    gateway = FakeGateway({LIST: paged_list(rows(25), total_key=total_key)})
    listing = api(gateway, 10).read()
    assert len(listing.rows) == 25 and gateway.count(LIST) == 3
    assert listing.reported_total == (25 if total_key else None)


def test_without_a_total_a_full_last_page_costs_one_empty_page() -> None:
    gateway = FakeGateway({LIST: paged_list(rows(20), total_key=None)})
    assert len(api(gateway, 10).read().rows) == 20
    assert gateway.count(LIST) == 3  # page 3 comes back empty: the only way to know the end


def test_a_silently_clamped_page_size_is_paged_through_and_remembered() -> None:
    """The gateway serves 7 rows whatever size is asked (the maximum is undocumented): the total says more
    remain, so paging goes on, and the budget forecast counts pages of 7 from then on."""
    gateway = FakeGateway({LIST: paged_list(rows(30), max_size=7)})
    plants = api(gateway, 10)
    assert plants.calls(30) == 3  # before: pages of 10 as configured
    listing = plants.read()
    assert len(listing.rows) == 30 and gateway.count(LIST) == 5 and listing.consistent
    assert plants.served_page_size == 7
    assert plants.calls(30) == 5 and plants.calls(0) == 1


def test_the_same_plant_in_any_id_form_is_read_once() -> None:
    """Lists send integers; a gateway may repeat a row across pages, or write the id as a string or float."""
    answers = [ok({"pageList": [plant_row(123), plant_row("124"), plant_row(123.0)], "row_count": 4}),
               ok({"pageList": [plant_row("125"), plant_row(124.0), plant_row(" 126 ")], "row_count": 4})]
    gateway = FakeGateway({LIST: list(answers)})
    listing = api(gateway, 3).read()
    assert [r["ps_id"] for r in listing.rows] == [123, "124", "125", " 126 "]
    assert listing.duplicates == 2 and listing.consistent


def test_rows_without_a_usable_id_count_against_the_total_but_are_dropped() -> None:
    gateway = FakeGateway({LIST: paged_list([plant_row(1), plant_row(None), plant_row("x"), plant_row(2)])})
    listing = api(gateway, 10).read()
    assert [r["ps_id"] for r in listing.rows] == [1, 2] and listing.unusable == 2 and listing.consistent


def test_a_total_that_changes_between_pages_is_inconsistent() -> None:
    answers = [ok({"pageList": [plant_row(i) for i in range(10)], "row_count": 20}),
               ok({"pageList": [plant_row(i) for i in range(10, 19)], "row_count": 19})]
    listing = api(FakeGateway({LIST: answers}), 10).read()
    assert len(listing.rows) == 19 and listing.totals == [20, 19] and not listing.consistent


def test_a_gateway_repeating_full_pages_forever_is_stopped() -> None:
    """Page after page of the same 10 plants while the total says 20: paging ends once the total's worth of
    pages is read; the caller sees the list as inconsistent."""
    gateway = FakeGateway({LIST: lambda body: ok({"pageList": [plant_row(i) for i in range(10)], "row_count": 20})})
    listing = api(gateway, 10).read()
    assert gateway.count(LIST) == 2 and len(listing.rows) == 10 and not listing.consistent


def test_legacy_list_pages_by_cur_page() -> None:
    gateway = FakeGateway({"login": lambda body: ok({"login_state": "1", "token": "u_" + "a" * 32}),
                           "getPowerStationList": paged_list(rows(15), total_key="rowCount", page_key="curPage")})
    assert len(api(gateway, 10, legacy=True).read().rows) == 15
    bodies = [body for name, body, _ in gateway.calls if name == "getPowerStationList"]
    assert [b["curPage"] for b in bodies] == [1, 2] and all("page" not in b for b in bodies)
    assert all(b["token"] == "u_" + "a" * 32 for b in bodies)


def test_a_page_without_page_list_is_an_invalid_response_and_recorded() -> None:
    gateway = FakeGateway({LIST: lambda body: ok({"row_count": 3})})
    with pytest.raises(ResponseError) as caught:
        api(gateway, 10).read()
    assert caught.value.result == "invalid_response"
    assert gateway.results[(LIST, "invalid_response")] == 1
