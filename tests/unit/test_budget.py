"""The hourly budget shared by priority (exporter/collect/budget.py), as arithmetic examples."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.collect.budget import Demand, allocate


def test_everything_fits_nothing_stretches() -> None:
    """1,000 plants: 10 list + 20 real-time calls every 5 minutes = 360 calls/h of 1000."""
    shares = allocate(1000, [Demand("plants", 10, 300), Demand("realtime", 20, 300, min_share=0.5)])
    assert [(s.calls_per_hour, s.interval) for s in shares] == [(120, 300), (240, 300)]


def test_10000_plants_at_the_default_budget() -> None:
    """List 100 calls (1200/h wanted), real-time 200 calls (2400/h wanted), budget 1000/h: real-time keeps its
    floor of half the budget, the list takes the other half; both stretch, and together they spend 1000/h."""
    plants, realtime = allocate(1000, [Demand("plants", 100, 300), Demand("realtime", 200, 300, min_share=0.5)])
    assert plants.calls_per_hour == 500 and plants.interval == pytest.approx(720)
    assert realtime.calls_per_hour == 500 and realtime.interval == pytest.approx(1440)


def test_lower_collections_stretch_first() -> None:
    """A cheap list fits whole; the collections below share what is left, down to their floors."""
    shares = allocate(1000, [Demand("plants", 10, 60),  # 600/h
                             Demand("faults", 50, 300, min_share=0.1),  # 600/h wanted
                             Demand("details", 500, 86400, min_share=0.05)])  # 20.8/h wanted
    plants, faults, details = shares
    assert plants.calls_per_hour == 600 and plants.interval == 60
    assert details.calls_per_hour == pytest.approx(500 * 3600 / 86400) and details.interval == 86400  # under floor
    assert faults.calls_per_hour == pytest.approx(1000 - 600 - details.calls_per_hour)
    assert faults.interval > 300


def test_a_floor_protects_a_low_collection_from_a_greedy_list() -> None:
    shares = allocate(1000, [Demand("plants", 1000, 60), Demand("devices", 10000, 86400, min_share=0.1)])
    assert shares[1].calls_per_hour == 100 and shares[0].calls_per_hour == 900
    assert shares[1].interval == pytest.approx(10000 * 3600 / 100)


def test_backlogs_only_use_what_nobody_else_wants() -> None:
    """Catching up (items never fetched) never slows a higher collection's steady passes."""
    full = allocate(1000, [Demand("plants", 100, 300), Demand("details", 500, 86400, 0.05, backlog_calls=500)])
    assert full[1].backlog_per_hour == 0 and full[0].calls_per_hour == pytest.approx(1000 - 500 * 3600 / 86400)
    spare = allocate(1000, [Demand("plants", 1, 300), Demand("details", 5, 86400, 0.05, backlog_calls=5)])
    assert spare[1].backlog_per_hour == 5 and spare[1].total_per_hour == pytest.approx(5 + 5 * 3600 / 86400)


def test_floors_above_the_budget_are_scaled_never_overspent() -> None:
    shares = allocate(100, [Demand("a", 1000, 60), Demand("b", 1000, 60, 0.9), Demand("c", 1000, 60, 0.9)])
    assert sum(s.total_per_hour for s in shares) == pytest.approx(100)
    assert shares[0].calls_per_hour == 0 and shares[0].interval == math.inf


def test_nothing_to_fetch_costs_nothing() -> None:
    share, = allocate(1000, [Demand("realtime", 0, 300)])
    assert share.calls_per_hour == 0 and share.interval == 300


demands = st.lists(st.builds(Demand, st.just("c"), st.integers(0, 5000), st.floats(1, 86400 * 7),
                             st.floats(0, 0.9), st.integers(0, 5000)), min_size=1, max_size=6)


@given(st.integers(1, 100_000), demands)
def test_never_overspends_and_never_gives_more_than_wanted(budget: int, wanted: list[Demand]) -> None:
    shares = allocate(budget, wanted)
    assert sum(s.total_per_hour for s in shares) <= budget * (1 + 1e-9)
    for demand, share in zip(wanted, shares, strict=True):
        assert share.calls_per_hour <= demand.calls_per_hour * (1 + 1e-9) + 1e-9
        assert share.interval >= demand.interval * (1 - 1e-9)
        if share.calls_per_hour > 0 and demand.calls_per_pass > 0:  # a pass per effective interval fits the share
            assert demand.calls_per_pass * 3600 / share.interval <= share.calls_per_hour * (1 + 1e-9)
