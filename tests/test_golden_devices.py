"""Golden files of the device section: the exact bytes of the device families for fixed account states, in both
formats, and proof that they are what prometheus_client renders (parsed and rendered again by it, the OpenMetrics
file comes back byte for byte). To accept an intended change: `UPDATE_GOLDEN=1 pytest tests/test_golden_devices.py`,
then read the diff."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from exporter import data
from exporter.data import AccountState, Device, DeviceInventory, DeviceReading, DeviceReadings, PlantDevices
from exporter.serve.exposition import device_families
from tests.test_golden import GOLDEN, STATES, T, assert_golden, assert_round_trip

FIRMWARE = (("bat_version", ""), ("lcd_version", "LCD_SG10RT_V11"), ("mdsp_version", "MDSP_1"), ("sdsp_version", ""),
            ("pvd_version", ""), ("cpld_version", ""), ("temp_version", ""), ("m_version", ""),
            ("system_version", ""))


def device(ps_key: str, name: str, code: int | None, *, fault: int | None = 4, deployed: int | None = 1,
           **fields: object) -> Device:
    base: dict[str, object] = dict(ps_key=ps_key, ps_id=ps_key.split("_")[0], device_sn=f"A{ps_key[-3:]}",
                                   device_name=name, device_type_code=code, model="SG10RT", factory_name="Sungrow",
                                   communication_dev_sn="B2021", fault_status=fault, deployment_status=deployed,
                                   claim_state=1, firmware=FIRMWARE)
    base.update(fields)
    return Device(**base)  # type: ignore[arg-type]


INVENTORY = DeviceInventory(
    plants=MappingProxyType({
        "1001": PlantDevices((
            device("1001_1_1_1", "SG10RT(COM1-001)", 1),
            device("1001_43_1_2", 'Battery "A" \\ Line1\nLine2', 43, model="", factory_name="阳光电源"),
            device("1001_9_247_1", "Logger 🌞", 9, fault=None, claim_state=None,
                   firmware=tuple((key, "") for key, _version in FIRMWARE)),
            # ^ no status in the list: the open records (newer, none for it) say normal
            device("1001_99_1_4", "Mystery", 99, deployed=0),
        ), T - 3600),
        "1002": PlantDevices((
            device("1002_1_1_1", "Inverter 1", 1, fault=1),  # recovered since: no open record
            device("1002_7_1_2", "Meter", 7),  # an open alarm since the inventory
            device("1002_1_1_2", "Inverter 2", 1),
        ), T - 7200),
        "1003": PlantDevices((), T - 600),  # read, without devices
        "9999": PlantDevices((device("9999_1_1_1", "Gone", 1),), T),  # no longer in the plant list
    }),
    failed=MappingProxyType({"1002": "getDeviceListByPsId: result_code -1 error"}),
    firmware=True, taken_at=T, generation=7)
READINGS = DeviceReadings(
    devices=MappingProxyType({
        "1001_1_1_1": DeviceReading({"1": 12_000.0, "2": 5_000_000.0, "24": 2500.0, "4": 35.5}, 4, 1, T - 300),
        "1001_43_1_2": DeviceReading({"58604": 0.81, "24": 11.0}, 4, 1, T - 300),
        "1002_1_1_1": DeviceReading({"24": 0.0}, 1, 1, None),  # in fault, before the open records said normal
    }),
    point_names=MappingProxyType({(1, "4"): ("Internal Air Temperature", "℃"), (43, "58604"): ('Battery "SOC"', "%"),
                                  (43, "24"): ("Total Active Power", "W")}),
    failed=frozenset({"1002_1_1_2"}), taken_at=T - 60, generation=8)


@dataclass(frozen=True)
class OpenFaults:
    """A stand-in for the faults collection's data: what device state needs of it (data.OpenDeviceFaults)."""

    status: Mapping[str, int]
    taken_at: float
    generation: int = 9

    def device_fault_status(self) -> Mapping[str, int]:
        return self.status


@dataclass(frozen=True)
class WithOpenFaults(AccountState):
    open_faults: OpenFaults | None = None


def states() -> list[AccountState]:
    home = STATES[0]
    with_faults = WithOpenFaults(**{f: getattr(home, f) for f in home.__dataclass_fields__},
                                 open_faults=OpenFaults({"1002_7_1_2": 2, "1001_1_1_1": 1}, T - 30))
    return [replace(with_faults, devices=INVENTORY, device_readings=READINGS), STATES[1]]


@pytest.fixture(autouse=True)
def _open_faults_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The faults collection's slot, as the open-faults branch adds it to DATA_SLOTS."""
    monkeypatch.setattr(data, "DATA_SLOTS", data.DATA_SLOTS | {"open_faults"})


def render(openmetrics: bool) -> str:
    return "".join(device_families(states(), openmetrics))


@pytest.mark.parametrize(("openmetrics", "name"), [(False, "devices.prom"), (True, "devices.openmetrics")])
def test_device_section_matches_the_golden_file(openmetrics: bool, name: str) -> None:
    assert_golden(render(openmetrics), name, "the device section")


def test_the_device_golden_file_is_what_prometheus_client_renders() -> None:
    assert_round_trip((GOLDEN / "devices.openmetrics").read_text(encoding="utf-8") + "# EOF\n")


def test_the_device_golden_files_show_what_they_must() -> None:
    text = (GOLDEN / "devices.prom").read_text(encoding="utf-8")
    assert 'device_name="Battery \\"A\\" \\\\ Line1\\nLine2"' in text  # escapes
    assert 'device_type="unknown_99"' in text and 'device_type="battery"' in text
    assert 'ps_key="9999_1_1_1"' not in text  # not in the plant list: no series
    # The freshest source wins: open records (T - 30) over the real-time pass (T - 60) over the inventory.
    status = {dict(s.labels)["ps_key"]: s.value for f in parse_openmetrics(
        (GOLDEN / "devices.openmetrics").read_text(encoding="utf-8") + "# EOF\n")
        if f.name == "isolarcloud_device_fault_status" for s in f.samples}
    assert status == {"1001_1_1_1": 1, "1001_43_1_2": 4, "1001_9_247_1": 4, "1001_99_1_4": 4, "1002_1_1_1": 4,
                      "1002_7_1_2": 2, "1002_1_1_2": 4}
    assert 'isolarcloud_device_energy_joules_total{account="home",device_name="SG10RT(COM1-001)"' in text
    assert "1.8e+10" in text and "4.32e+07" in text  # Wh x 3600
    assert 'point_id="4",point_name="Internal Air Temperature"' in text and 'unit="℃"' in text
    assert 'isolarcloud_device_power_watts{account="home",device_name="Battery' not in text  # 24: an inverter point
    assert 'point_id="24",point_name="Total Active Power",ps_id="1001",ps_key="1001_43_1_2"' in text
    assert 'isolarcloud_device_inventory_timestamp_seconds{account="home",ps_id="1003"' in text
    assert 'isolarcloud_device_inventory_failed_plants{account="home"} 1.0' in text
    assert 'isolarcloud_device_realtime_failed_devices{account="home"} 1.0' in text
    assert 'account="stale"' not in text
    assert 'lcd_version="LCD_SG10RT_V11"' in text


def test_no_inventory_no_device_section() -> None:
    assert render(False) and "".join(device_families(STATES, False)) == ""


def test_without_a_fresher_source_a_missing_status_stays_missing() -> None:
    logger = INVENTORY.plants["1001"].devices[2]
    assert data.device_fault_status(logger, T, None, 0.0, None, 0.0) is None
