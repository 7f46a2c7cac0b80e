"""Per-plant device inventory and device real-time values (getDeviceListByPsId / getDeviceList /
getDeviceRealTimeData).

Devices are generated lazily, per plant, from (seed, ps_id) and the plant's type and capacity, so a 50 000-plant
fleet costs nothing until a device is asked for. A plant's layout is a short tuple of (device_type, count)
groups; a device is built on demand from (plant, index). Serial numbers encode (ps_id, index) reversibly, so a
serial can be looked up without generating every plant's devices.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from . import catalog
from .catalog import Model
from .common import lenient_int, mix, unit_float
from .fleet import Fleet, Plant
from .realtime import POINTS, day_model, lifetime, local_day_hour, point_values

PLANT_DEVICE = 11
RESIDENTIAL_TYPES = frozenset({4, 5})
UTILITY_TYPES = frozenset({1, 9, 10})
STORAGE_TYPES = frozenset({5, 7, 10, 12})
INVERTERS_PER_LOGGER = 100
# Order of the physical groups in a plant's device list.
_ORDER = (1, 14, 43, 7, 9, catalog.UNDOCUMENTED_DEVICE_TYPE)

_SN_MOD = 10**12
_SN_MUL = 7_919_000_003  # odd and not a multiple of 5: invertible modulo 10**12
_SN_INV = pow(_SN_MUL, -1, _SN_MOD)
_SN_PREFIX = {1: "A", 14: "S", 43: "C", 7: "M", 9: "B", catalog.UNDOCUMENTED_DEVICE_TYPE: "X"}
_PREFIX_TYPE = {v: k for k, v in _SN_PREFIX.items()}
_AWKWARD_DEVICE_NAMES = ('Inverter "West" \\ roof', "逆变器 🌞 1", "Line1\nLine2", "", "Müller's WR ☀️")


@dataclass(frozen=True, slots=True)
class Layout:
    sig: tuple[Any, ...]
    groups: tuple[tuple[int, int], ...]  # physical devices: (device_type, count), in list order
    virtual: tuple[tuple[int, int], ...]
    disabled_logger: bool  # the last logger is an old, disabled one (dev_status 0, is_enable 0)
    types: frozenset[int] = frozenset()  # physical device types present

    @property
    def physical_count(self) -> int:
        return sum(n for _, n in self.groups)

    def count(self, device_type: int) -> int:
        return sum(n for t, n in self.groups if t == device_type)

    def locate(self, index: int) -> tuple[int, int, bool] | None:
        """(device_type, index within its group, virtual?) of a plant-level device index."""
        i = index
        for t, n in self.groups:
            if i < n:
                return t, i, False
            i -= n
        for t, n in self.virtual:
            if i < n:
                return t, i, True
            i -= n
        return None

    def first_index(self, device_type: int, virtual: bool = False) -> int | None:
        base = 0 if not virtual else self.physical_count
        for t, n in self.virtual if virtual else self.groups:
            if t == device_type and n:
                return base
            base += n
        return None


@dataclass(frozen=True, slots=True)
class Device:
    ps_id: int
    index: int
    device_type: int
    chnnl_id: int
    device_code: int
    uuid: int
    sn: str
    name: str
    model: Model
    dev_status: int  # 1 deployed, 0 not
    claim_state: int
    comm_sn: str
    share: float  # this device's share of the plant's PV (inverters) or storage (ESS, battery) flows
    virtual: bool
    firmware: dict[str, str | None]

    @property
    def ps_key(self) -> str:
        return f"{self.ps_id}_{self.device_type}_{self.chnnl_id}_{self.device_code}"

    def type_name(self, lang: object) -> str:
        names = catalog.DEVICE_TYPES.get(self.device_type, catalog.UNDOCUMENTED_DEVICE_NAMES)
        return names[1] if catalog.is_english(lang) else names[0]

    def factory_name(self, lang: object) -> str:
        return self.model.factory[1] if catalog.is_english(lang) else self.model.factory[0]


def encode_sn(device_type: int, ps_id: int, index: int, seed: int) -> str:
    n = (ps_id * 1000 + index) % _SN_MOD
    return _SN_PREFIX.get(device_type, "X") + f"{(n * _SN_MUL + mix(seed, 0x5E) % _SN_MOD) % _SN_MOD:012d}"


def decode_sn(sn: str, seed: int) -> tuple[int, int, int] | None:
    """(device_type, ps_id, index) a serial was made from, or None for a serial the simulator never makes."""
    if len(sn) != 13 or sn[0] not in _PREFIX_TYPE or not sn[1:].isdigit():
        return None
    n = ((int(sn[1:]) - mix(seed, 0x5E) % _SN_MOD) * _SN_INV) % _SN_MOD
    return _PREFIX_TYPE[sn[0]], n // 1000, n % 1000


def address(device_type: int, j: int, virtual: bool) -> tuple[int, int]:
    """(chnnl_id, device_code) of the j-th device of a type: the two last parts of its ps_key."""
    if virtual:
        return (0, 0) if device_type == PLANT_DEVICE else (0, j + 1)
    if device_type == 1:
        return 1 + j // INVERTERS_PER_LOGGER, 1 + j % INVERTERS_PER_LOGGER
    if device_type == 9:
        return 247, j + 1
    return 1, j + 1


def parse_ps_key(key: str) -> tuple[int, int, int, int] | None:
    parts = key.split("_")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    ps_id, dtype, chnnl, code = (int(p) for p in parts)
    return ps_id, dtype, chnnl, code


class DeviceRegistry:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._lock = threading.RLock()
        self._layouts: dict[int, Layout] = {}
        self._shares: dict[int, tuple[tuple[Any, ...], tuple[float, ...]]] = {}
        self._removed: set[str] = set()
        self.version = 0

    # Layout --------------------------------------------------------------------------------------
    def layout(self, plant: Plant) -> Layout:
        ps_type = lenient_int(plant.fields.get("ps_type"))
        connect = lenient_int(plant.fields.get("connect_type"))
        sig = (ps_type, plant.capacity_w, connect)
        with self._lock:
            cached = self._layouts.get(plant.ps_id)
            if cached is not None and cached.sig == sig:
                return cached
            built = self._build_layout(plant, sig, ps_type, connect)
            self._layouts[plant.ps_id] = built
            return built

    def _build_layout(self, plant: Plant, sig: tuple[Any, ...], ps_type: int | None,
                      connect: int | None) -> Layout:
        def u(*parts: int) -> float:
            return unit_float(self.seed, plant.ps_id, 0xD1, *parts)

        if u(0) < 0.02:
            return Layout(sig, (), (), False)  # a plant registered before any device was connected
        cap = plant.capacity_w
        if ps_type in RESIDENTIAL_TYPES:
            n_inv = 2 if u(1) < 0.15 else 1
        elif ps_type in UTILITY_TYPES:
            n_inv = max(5, min(300, round(cap / 350_000)))
        else:
            n_inv = max(1, min(40, round(cap / 60_000)))
        counts = {1: n_inv}
        if ps_type in STORAGE_TYPES:
            n_ess = 1 if ps_type == 5 else max(1, min(20, round(cap / 500_000)))
            counts[14] = counts[43] = n_ess
        if (connect in (2, 3) and u(2) < 0.6) or (ps_type in UTILITY_TYPES and u(2) < 0.3):
            counts[7] = 1
        disabled = u(3) < 0.05
        counts[9] = -(-n_inv // INVERTERS_PER_LOGGER) + (1 if disabled else 0)
        if u(4) < 0.02:
            counts[catalog.UNDOCUMENTED_DEVICE_TYPE] = 1
        groups = tuple((t, counts[t]) for t in _ORDER if counts.get(t))
        virtual = ((PLANT_DEVICE, 1), (3, 1)) if ps_type in UTILITY_TYPES or ps_type == 12 else ((PLANT_DEVICE, 1),)
        return Layout(sig, groups, virtual, disabled, frozenset(t for t, _ in groups))

    def _inverter_shares(self, plant: Plant, layout: Layout) -> tuple[float, ...]:
        with self._lock:
            cached = self._shares.get(plant.ps_id)
            if cached is not None and cached[0] == layout.sig:
                return cached[1]
            n = layout.count(1)
            raw = [0.85 + 0.3 * unit_float(self.seed, plant.ps_id, 0xD2, i) for i in range(n)]
            total = sum(raw) or 1.0
            shares = tuple(r / total for r in raw)
            self._shares[plant.ps_id] = (layout.sig, shares)
            return shares

    # Devices -------------------------------------------------------------------------------------
    def device(self, plant: Plant, index: int) -> Device | None:
        layout = self.layout(plant)
        where = layout.locate(index)
        if where is None:
            return None
        dtype, j, virtual = where
        seed, ps_id = self.seed, plant.ps_id

        def u(*parts: int) -> float:
            return unit_float(seed, ps_id, 0xD3, index, *parts)

        chnnl, code = address(dtype, j, virtual)
        if virtual:
            if dtype == PLANT_DEVICE:
                return self.plant_device(plant)
            return Device(ps_id, index, dtype, chnnl, code, ps_id * 1000 + index + 1, "",
                          catalog.DEVICE_TYPES[dtype][0], Model("", 0), 1, 1, "", 1.0, True, {})
        n_loggers = layout.count(9)
        sn = encode_sn(dtype, ps_id, index, seed)
        ps_type = lenient_int(plant.fields.get("ps_type"))
        share = 1.0
        logger_j = 0
        if dtype == 1:
            models = (catalog.INVERTERS_RESIDENTIAL if ps_type in RESIDENTIAL_TYPES else
                      catalog.INVERTERS_UTILITY if ps_type in UTILITY_TYPES else catalog.INVERTERS_CI)
            # Most plants use one model throughout; a few mix models.
            pick = unit_float(seed, ps_id, 0xD4) if unit_float(seed, ps_id, 0xD5) < 0.9 else u(1)
            model = models[int(pick * len(models))]
            logger_j = j // INVERTERS_PER_LOGGER
            share = self._inverter_shares(plant, layout)[j]
            name = f"{model.code}(COM{chnnl}-{code:03d})"
        elif dtype == 14:
            models = catalog.ESS_RESIDENTIAL if ps_type == 5 else catalog.ESS_LARGE
            model = models[int(unit_float(seed, ps_id, 0xD6) * len(models))]
            share = 1.0 / layout.count(14)
            name = f"{model.code}(COM1-{code:03d})"
        elif dtype == 43:
            models = catalog.BATTERIES_RESIDENTIAL if ps_type == 5 else catalog.BATTERIES_LARGE
            model = models[int(unit_float(seed, ps_id, 0xD7) * len(models))]
            share = 1.0 / layout.count(43)
            name = f"{model.code}-{code}"
        elif dtype == 7:
            model = catalog.METERS[int(u(1) * len(catalog.METERS))]
            name = f"{model.code}(COM1-{code:03d})"
        elif dtype == 9:
            model = catalog.LOGGERS[int(u(1) * len(catalog.LOGGERS))]
            logger_j = j
            name = sn
        else:
            model = catalog.UNDOCUMENTED_MODELS[0]
            name = "X-DEV"
        if u(2) < 0.03:
            name = _AWKWARD_DEVICE_NAMES[int(u(3) * len(_AWKWARD_DEVICE_NAMES))]
        disabled_logger = dtype == 9 and layout.disabled_logger and j == n_loggers - 1
        # Undeployed: the old logger, and a few meters / unknown devices. Never an inverter, ESS or battery: their
        # shares of the plant's flows must add up to the plant's values.
        dev_status = 0 if disabled_logger or (dtype in (7, catalog.UNDOCUMENTED_DEVICE_TYPE) and u(4) < 0.05) else 1
        comm_sn = self.logger_sn(plant, min(logger_j, max(0, n_loggers - 1))) if n_loggers else ""
        if dtype == 9:
            comm_sn = sn
        return Device(ps_id, index, dtype, chnnl, code, ps_id * 1000 + index + 1, sn, name, model, dev_status,
                      0 if u(5) < 0.03 else 1, comm_sn, share, False, self._firmware(dtype, model, u(6)))

    def plant_device(self, plant: Plant) -> Device:
        """The plant itself as a (virtual) device, ps_key <ps_id>_11_0_0: exists even for a plant without devices
        (plant-level faults point at it, and getDeviceRealTimeData answers plant points for it)."""
        layout = self.layout(plant)
        index = layout.first_index(PLANT_DEVICE, virtual=True)
        return Device(plant.ps_id, layout.physical_count if index is None else index, PLANT_DEVICE, 0, 0, plant.uuid,
                      "", str(plant.fields.get("ps_name") or ""), Model("", 0), 1, 1, "", 1.0, True, {})

    def logger_sn(self, plant: Plant, j: int) -> str:
        layout = self.layout(plant)
        first = layout.first_index(9)
        return encode_sn(9, plant.ps_id, (first or 0) + j, self.seed)

    def _firmware(self, dtype: int, model: Model, r: float) -> dict[str, str | None]:
        build = 10 + int(r * 80)
        fw: dict[str, str | None] = dict.fromkeys(("bat_version", "lcd_version", "mdsp_version", "sdsp_version",
                                                   "pvd_version", "cpld_version", "temp_version", "m_version",
                                                   "system_version"), "")
        name = model.code.upper().replace(".", "")
        if dtype in (1, 14):
            fw["lcd_version"] = f"LCD_{name}_V11_V01_A.{build}"
            fw["mdsp_version"] = f"MDSP_{name}_V11_V01_A.{build - 3}"
            fw["sdsp_version"] = None if r < 0.3 else f"SDSP_{name}_V11_V01_A.{build - 5}"
            fw["cpld_version"] = "CPLD_V11_V01_A" if r > 0.5 else ""
        if dtype == 14:
            fw["bat_version"] = f"SBRBCU-S_22011.01.{build}"
        if dtype == 43:
            fw["bat_version"] = f"{name}_BMS_V1.{build}"
        if dtype == 9:
            fw["m_version"] = f"{name}-SV200.001.00.P{build:03d}"
            fw["system_version"] = f"{name}-SV200"
        return fw

    def devices(self, plant: Plant, *, virtual: bool = False) -> list[Device]:
        """The plant's devices in list order, physical or virtual, without removed ones."""
        layout = self.layout(plant)
        start = layout.physical_count if virtual else 0
        stop = start + (sum(n for _, n in layout.virtual) if virtual else layout.physical_count)
        out = []
        for i in range(start, stop):
            d = self.device(plant, i)
            if d is not None and d.ps_key not in self._removed:
                out.append(d)
        return out

    def device_indices(self, plant: Plant, types: frozenset[int] | None = None) -> list[int]:
        """Physical device indices (removed ones excluded), optionally of some types only; cheap (no Device)."""
        layout = self.layout(plant)
        out, base = [], 0
        for t, n in layout.groups:
            if types is None or t in types:
                out.extend(range(base, base + n))
            base += n
        if self._removed:
            out = [i for i in out if self._key_of(plant, layout, i) not in self._removed]
        return out

    def present_types(self, plant: Plant) -> frozenset[int]:
        layout = self.layout(plant)
        if not self._removed:
            return layout.types
        return frozenset(t for t in layout.types if self.device_indices(plant, frozenset({t})))

    def pick(self, plant: Plant, types: Collection[int], u: float) -> int | None:
        """A physical device index of one of `types`, chosen by u in [0, 1); None when the plant has none."""
        layout = self.layout(plant)
        if self._removed:
            candidates = self.device_indices(plant, frozenset(types))
            return candidates[int(u * len(candidates))] if candidates else None
        total = sum(n for t, n in layout.groups if t in types)
        if not total:
            return None
        nth, base = int(u * total), 0
        for t, n in layout.groups:
            if t in types:
                if nth < n:
                    return base + nth
                nth -= n
            base += n
        return None

    def _key_of(self, plant: Plant, layout: Layout, index: int) -> str:
        where = layout.locate(index)
        if where is None:
            return ""
        dtype, j, virtual = where
        chnnl, code = address(dtype, j, virtual)
        return f"{plant.ps_id}_{dtype}_{chnnl}_{code}"

    def by_ps_key(self, fleet: Fleet, key: str) -> Device | None:
        parsed = parse_ps_key(key)
        if parsed is None:
            return None
        ps_id, dtype, chnnl, code = parsed
        plant = fleet.by_id.get(ps_id)
        if plant is None or key in self._removed:
            return None
        if (dtype, chnnl, code) == (PLANT_DEVICE, 0, 0):
            return self.plant_device(plant)
        layout = self.layout(plant)
        virtual = dtype in (PLANT_DEVICE, 3)
        first = layout.first_index(dtype, virtual=virtual)
        if first is None:
            return None
        if dtype == 1:
            j = (chnnl - 1) * INVERTERS_PER_LOGGER + code - 1 if 1 <= code <= INVERTERS_PER_LOGGER else -1
        else:
            j = code - 1
        n = (dict(layout.virtual) if virtual else dict(layout.groups)).get(dtype, 0)
        if not 0 <= j < n:
            return None
        dev = self.device(plant, first + j)
        return dev if dev is not None and dev.ps_key == key else None

    def by_sn(self, fleet: Fleet, sn: str) -> Device | None:
        decoded = decode_sn(sn, self.seed)
        if decoded is None:
            return None
        _, ps_id, index = decoded
        plant = fleet.by_id.get(ps_id)
        if plant is None:
            return None
        dev = self.device(plant, index)
        if dev is None or dev.sn != sn or dev.ps_key in self._removed:
            return None
        return dev

    def communication_devices(self, plant: Plant) -> list[tuple[str, int]]:
        """(sn, is_enable) of the plant's data loggers, as getPowerStationDetail lists them."""
        layout = self.layout(plant)
        n = layout.count(9)
        out = []
        for j in range(n):
            disabled = layout.disabled_logger and j == n - 1
            out.append((self.logger_sn(plant, j), 0 if disabled else 1))
        return out

    # Control -------------------------------------------------------------------------------------
    def remove(self, key: str) -> None:
        with self._lock:
            self._removed.add(key)
            self.version += 1

    def restore(self, key: str) -> None:
        with self._lock:
            self._removed.discard(key)
            self.version += 1


# Real-time values --------------------------------------------------------------------------------
def supported_points(device_type: int) -> dict[int, tuple[str, str]]:
    """Point dictionary of a device type (for point_dict); empty for types without open points here."""
    return {1: catalog.INVERTER_POINTS, 14: catalog.ESS_POINTS, 43: catalog.BATTERY_DEVICE_POINTS,
            PLANT_DEVICE: POINTS}.get(device_type, {})


def _f1(v: float) -> str:
    return f"{v:.1f}"


def _f2(v: float) -> str:
    return f"{v:.2f}"


def _f3(v: float) -> str:
    return f"{v:.3f}"


class PlantNow:
    """The plant model evaluated once per request, shared by all of that plant's devices."""

    def __init__(self, plant: Plant, t: float) -> None:
        self.plant = plant
        self.t = t
        self.day, self.hour = local_day_hour(t, plant.utc_offset_h)
        self.s = day_model(plant, self.day, self.hour)
        self.total_pv = lifetime(plant, self.day)[0] + self.s.pv_wh
        self._month: float | None = None
        self._year: float | None = None

    def _since(self, field: str) -> float:
        tm = time.gmtime(self.day * 86400.0)
        back = tm.tm_mday - 1 if field == "month" else tm.tm_yday - 1
        return self.total_pv - lifetime(self.plant, self.day - back)[0]

    @property
    def month_wh(self) -> float:
        if self._month is None:
            self._month = self._since("month")
        return self._month

    @property
    def year_wh(self) -> float:
        if self._year is None:
            self._year = self._since("year")
        return self._year


def device_values(dev: Device, now: PlantNow, point_ids: Iterable[int], fault_status: int, seed: int,
                  interval: float) -> dict[int, str | None]:
    """`p<id>` values for every requested id: a string when this device supports the point, else None."""
    ids = list(point_ids)
    if dev.dev_status == 0:
        return dict.fromkeys(ids, None)
    if dev.device_type == PLANT_DEVICE:
        got = point_values(now.plant, now.t, ids, interval)
        return {pid: got.get(pid) for pid in ids}
    calc = _calculators(dev, now, fault_status, seed)
    return {pid: (fn() if (fn := calc.get(pid)) is not None else None) for pid in ids}


def _calculators(dev: Device, now: PlantNow, fault_status: int, seed: int) -> dict[int, Callable[[], str]]:
    p, s = now.plant, now.s
    noise = unit_float(seed, dev.uuid, int(now.t // 300))
    if dev.device_type == 1:
        return _inverter(dev, now, fault_status, noise)
    if dev.device_type == 14:
        k = dev.share
        return {
            13119: lambda: _f1(s.load_w * k), 13121: lambda: _f1(s.feed_w * k), 13149: lambda: _f1(s.buy_w * k),
            13126: lambda: _f1(max(0.0, s.battery_w) * k), 13150: lambda: _f1(max(0.0, -s.battery_w) * k),
            13141: lambda: _f3(s.soc),
        }
    if dev.device_type == 43:
        volts = dev.model.nominal_v * (0.95 + 0.1 * s.soc)
        amps = s.battery_w * dev.share / volts if volts else 0.0
        return {
            58601: lambda: _f1(volts), 58602: lambda: _f2(amps), 58604: lambda: _f3(s.soc),
            58603: lambda: _f1(p.ambient_c + 5.0 + min(15.0, abs(amps) * 0.2)),
            58605: lambda: _f3(0.9 + 0.1 * unit_float(seed, dev.uuid, 0x50)),
        }
    return {}


def _inverter(dev: Device, now: PlantNow, fault_status: int, noise: float) -> dict[int, Callable[[], str]]:
    p, s, k, model = now.plant, now.s, dev.share, dev.model
    ac_w = s.pv_w * k
    dc_w = ac_w / 0.975 if ac_w > 0 else 0.0
    q_var = ac_w * 0.05
    apparent = math.hypot(ac_w, q_var)
    us = p.currency == "USD"
    v_phase = (277.0 if us else 230.0) + 4.0 * (noise - 0.5)
    hz = (60.0 if us else 50.0) + 0.04 * (noise - 0.5)
    rated = p.capacity_w * k or 1.0
    one_phase = model.phases == 1
    amps = ac_w / (v_phase if one_phase else 3.0 * v_phase)
    v_mppt = 0.0 if dc_w <= 0 else 520.0 + 60.0 * noise
    calc: dict[int, Callable[[], str]] = {
        1: lambda: _f1(s.pv_wh * k), 2: lambda: _f1(now.total_pv * k), 24: lambda: _f1(ac_w),
        14: lambda: _f1(dc_w), 25: lambda: _f1(q_var), 43: lambda: _f1(apparent),
        26: lambda: _f3(ac_w / apparent if apparent > 0 else 1.0), 27: lambda: _f2(hz),
        4: lambda: _f1(p.ambient_c + 8.0 + 20.0 * ac_w / rated), 18: lambda: _f1(v_phase), 21: lambda: _f2(amps),
        87: lambda: _f1(now.month_wh * k), 88: lambda: _f1(now.year_wh * k), 304: lambda: str(fault_status),
    }
    if not one_phase:
        calc.update({19: lambda: _f1(v_phase + 1.1), 20: lambda: _f1(v_phase - 0.9), 22: lambda: _f2(amps),
                     23: lambda: _f2(amps), 15: lambda: _f1(v_phase * 1.732), 16: lambda: _f1((v_phase + 1.1) * 1.732),
                     17: lambda: _f1((v_phase - 0.9) * 1.732)})
    n_mppt = min(model.mppt, len(catalog.MPPT_POINTS))
    mppt_a = dc_w / (n_mppt * v_mppt) if n_mppt and v_mppt else 0.0
    for v_id, a_id in catalog.MPPT_POINTS[:n_mppt]:
        calc[v_id] = lambda: _f1(v_mppt)
        calc[a_id] = lambda: _f2(mppt_a)
    n_str = min(model.strings, len(catalog.STRING_CURRENT_POINTS))
    str_a = dc_w / (n_str * v_mppt) if n_str and v_mppt else 0.0
    for pid in catalog.STRING_CURRENT_POINTS[:n_str]:
        calc[pid] = lambda: _f2(str_a)
    for pid in catalog.STRING_VOLTAGE_POINTS[:n_str]:
        calc[pid] = lambda: _f1(v_mppt)
    return calc


def device_time(plant: Plant, t: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t + plant.utc_offset_h * 3600.0))
