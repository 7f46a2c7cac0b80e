"""Golden exposition files of the open-fault and plant-detail families: the exact bytes of the cached section for
fixed states, both formats (`tests/golden/faults.prom`, `faults.openmetrics`). Awkward names, undocumented codes,
a plant the list no longer holds, installed power from details beside a login account's list value, a disabled
logger, an unset tariff. To accept an intended change: `UPDATE_GOLDEN=1 pytest tests/test_golden_faults.py`,
then read the diff."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from exporter.data import AccountState, Fault, OpenFaults, PlantDetail, PlantDetails, PlantList, Production, StatsView
from exporter.serve.exposition import cached_section
from tests.test_golden import GOLDEN, PLANTS, T, assert_golden, assert_round_trip, collection

FAULTS = OpenFaults(
    faults=(
        Fault("1001", "1001_1_1_1", "SG10RT(COM1-001)", 1, "489905065875011", "Grid Overvoltage", 1, "1",
              T - 3600),
        Fault("1002", "1002_99_1_1", 'WR "Süd" \\ 2', 99, "7", 'Alarm "x" \\ with\nnewline 电网过压', 7, "",
              T - 86400.5),
        Fault("1002", "1002_9_247_1", "B2262720904", 9, "60064.202411.47b8b34242077", "Data Logger Offline", 2, "2",
              T - 120),
        Fault("9999", "9999_1_1_1", "gone", 1, "1", "of a plant no longer listed", 1, "1", T),
    ),
    counts=MappingProxyType({"1001": {"fault": 1}, "1002": {"alarm": 1, "unknown_7": 1, "notice": 3},
                             "9999": {"fault": 1}}),
    taken_at=T, generation=3)
DETAILS = PlantDetails(
    plants=MappingProxyType({
        "1001": PlantDetail(9870.0, 0.28, 0.45, "EUR", (("B1001", 1), ("B1001-OLD", 0))),
        "1002": PlantDetail(12_500.0, None, 0.3, "EUR", ()),  # list value 10 kW wins; no feed-in tariff
        "1003": PlantDetail(None, 0.4, 1.5, "", (("A阳光", 1),)),
    }),
    taken_at=T, generation=4)
PRODUCTION = Production(values={"1001": {"power_watts": 2500.0}, "1002": {"installed_power_watts": 10_000.0}},
                        taken_at=T, generation=2)
STATES = [
    AccountState(name="home", auth_mode="oauth2", gateway="https://gateway.isolarcloud.eu",
                 plants=PlantList(PLANTS, T, 1), production=PRODUCTION, faults=FAULTS, details=DETAILS, up=True,
                 attempted=True, last_success=T, last_attempt=T, last_error=None, duration=1.0, backoff_until=0.0,
                 interval=300.0, max_age=900.0, budget=1000, stats=StatsView({}, {}, {}, {}, 0, 0, 4),
                 token_expiries={}, collections=(collection("plants", True, 300.0),)),
    # An account whose faults are unknown (refused, stale) contributes nothing to these families.
    AccountState(name="denied", auth_mode="login", gateway="https://augateway.isolarcloud.com",
                 plants=PlantList(PLANTS[:1], T, 1), up=True, attempted=True, last_success=T, last_attempt=T,
                 last_error=None, duration=1.0, backoff_until=0.0, interval=300.0, max_age=900.0, budget=1000,
                 stats=StatsView({}, {}, {}, {}, 0, 0), token_expiries={}, collections=()),
]


def render(openmetrics: bool) -> str:
    # Everything after the plant families (which tests/test_golden.py pins), plus the installed-power family.
    text = "".join(cached_section(STATES, openmetrics))
    start = text.index("# HELP isolarcloud_plant_installed_power_watts")
    end = text.index("# HELP", start + 1)
    rest = text.index("# HELP isolarcloud_fault_active")
    return text[start:end] + text[rest:] + ("# EOF\n" if openmetrics else "")


@pytest.mark.parametrize(("openmetrics", "name"), [(False, "faults.prom"), (True, "faults.openmetrics")])
def test_fault_and_detail_families_match_the_golden_file(openmetrics: bool, name: str) -> None:
    assert_golden(render(openmetrics), name)


def test_the_golden_file_is_what_prometheus_client_renders() -> None:
    assert_round_trip((GOLDEN / "faults.openmetrics").read_text(encoding="utf-8"))


def test_the_golden_files_show_what_they_must() -> None:
    text = (GOLDEN / "faults.prom").read_text(encoding="utf-8")
    assert 'fault_name="Alarm \\"x\\" \\\\ with\\nnewline 电网过压"' in text  # escapes
    assert 'device_type="unknown_99"' in text and 'fault_type="unknown_7"' in text
    assert 'ps_id="9999"' not in text  # not in the plant list
    assert 'account="denied"' not in text  # open faults unknown: absent, not "none"
    assert 'isolarcloud_plant_installed_power_watts{account="home",ps_id="1001",ps_name="Roof",' \
           'ps_type="residential_pv"} 9870.0' in text  # from details
    assert 'isolarcloud_plant_installed_power_watts{account="home",ps_id="1002"' in text
    assert '} 10000.0' in text and "12500" not in text  # the list's value is kept
    assert 'isolarcloud_plant_feed_in_tariff{account="home",currency="EUR",ps_id="1002"' not in text  # unset
    assert 'sn="B1001-OLD"} 0.0' in text
    assert 'isolarcloud_fault_active{account="home",device_name="SG10RT(COM1-001)",device_type="inverter",' \
           'fault_code="489905065875011",fault_level="1",fault_name="Grid Overvoltage",fault_type="fault",' \
           'ps_id="1001",ps_key="1001_1_1_1",ps_name="Roof"} 1.7499964e+09' in text
