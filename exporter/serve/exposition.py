"""Render each account's data once, gzip it once, serve the bytes until the data changes.

The per-plant section (almost all of the bytes) is rendered from `metrics.PLANT_FAMILIES` when an account's data
changes (a new plant list or new production values) and cached per exposition format (as one chunk per family,
written out without copying), together with its deflate stream up to a sync flush. A scrape only renders the
small status section through prometheus_client and deflates it after that point, so the gzip body is one
ordinary stream. Between the two, the sun's elevation per plant (`isolarcloud_plant_sun_elevation_degrees`) moves
with the clock, not with the data: it is rendered and deflated at most once a minute. The output is what
prometheus_client would render for the same families (golden files in tests/golden/ hold it).
"""

from __future__ import annotations

import math
import struct
import threading
import time
import zlib
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR
from prometheus_client import exposition as text_format
from prometheus_client.core import Metric
from prometheus_client.openmetrics import exposition as om_format
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..data import (
    EMPTY,
    NAMED_DEVICE_POINTS,
    AccountState,
    Device,
    DeviceReading,
    OpenFaults,
    PlantDetails,
    PlantList,
    Production,
    device_fault_status,
    open_device_faults,
)
from .metrics import (
    CONSUMPTION_TARIFF,
    DEVICE_DATA_TIMESTAMP,
    DEVICE_DEPLOYMENT_STATUS,
    DEVICE_FAULT_STATUS,
    DEVICE_INFO,
    DEVICE_INVENTORY_FAILED,
    DEVICE_INVENTORY_TIMESTAMP,
    DEVICE_LABELS,
    DEVICE_POINT_VALUE,
    DEVICE_QUANTITY_FAMILIES,
    DEVICE_REALTIME_FAILED,
    FAULT_ACTIVE,
    FEED_IN_TARIFF,
    LOGGER_INFO,
    PLANT_FAMILIES,
    PLANT_OPEN_FAULTS,
    POINT_VALUE,
    POINT_VALUE_HELP,
    REALTIME_TIMESTAMP,
    REALTIME_TIMESTAMP_HELP,
    SUN_ELEVATION,
    SUN_ELEVATION_HELP,
    DeviceFamily,
    SimpleFamily,
    StatusCollector,
    plant_label_values,
)
from .sun import Position, elevations, positions

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
EOF = b"# EOF\n"


def wants_openmetrics(accept: str | None) -> bool:
    return bool(accept) and "application/openmetrics-text" in accept  # type: ignore[operator]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


# One account's data for the plant section: its name, plant list, and production values (if fresh).
AccountData = tuple[str, PlantList, "Production | None"]


def account_data(states: Sequence[AccountState]) -> list[AccountData]:
    return [(s.name, s.plants, with_installed_power(s.production, s.details)) for s in states
            if s.plants is not None]


INSTALLED_POWER = "installed_power_watts"


def with_installed_power(production: Production | None, details: PlantDetails | None) -> Production | None:
    """The production values with the installed power of plant details where they have none: OAuth2 real-time
    data carries no capacity, a login account's list does (and its value stays)."""
    if details is None:
        return production
    values = dict(production.values) if production is not None else {}
    for ps_id, detail in details.plants.items():
        watts = detail.installed_power_watts
        if watts is None:
            continue
        current = values.get(ps_id)
        if current is None:
            values[ps_id] = {INSTALLED_POWER: watts}
        elif INSTALLED_POWER not in current:
            values[ps_id] = {**current, INSTALLED_POWER: watts}
    return replace(production, values=values) if production is not None else Production(values)


PIECE = 512  # plants per piece of a family


def plant_families(accounts: Sequence[AccountData], openmetrics: bool) -> Iterator[str]:
    """The per-plant section in pieces of at most PIECE plants of one family, so that it is encoded piecewise:
    one str of a whole family (let alone the section) takes 4 bytes per character as soon as a single plant
    name holds an emoji, and such large short-lived strings fragment the heap between the cached chunks."""
    rows = []
    for account, plant_list, production in accounts:
        values = production.values if production is not None else {}
        extra = production.extra if production is not None else {}
        for plant in plant_list.plants:
            a, ps_id, name, ps_type = (_label(v) for v in plant_label_values(account, plant))
            rows.append((plant, values.get(plant.ps_id, EMPTY), extra.get(plant.ps_id, EMPTY), a, ps_id, name,
                         ps_type, f'account="{a}",ps_id="{ps_id}",ps_name="{name}",ps_type="{ps_type}"'))
    for family in PLANT_FAMILIES:
        out: list[str] = []
        sample = family.name
        header, kind = family.name, family.kind
        if family.kind == "counter":
            sample += "_total"
            header = family.name if openmetrics else sample
        elif family.kind == "info":
            sample += "_info"
            header, kind = (family.name, "info") if openmetrics else (sample, "gauge")
        out.append(f"# HELP {header} {_help(family.help, openmetrics)}\n# TYPE {header} {kind}\n")
        value_of = family.value
        extra = family.extra
        for start in range(0, len(rows), PIECE):
            for plant, plant_values, _extra, a, ps_id, name, ps_type, labels in rows[start:start + PIECE]:
                value = value_of(plant, plant_values)
                if value is None:
                    continue
                if extra is not None:
                    e = dict(extra(plant))
                    labels = (f'account="{a}",connect_type="{_label(e["connect_type"])}",'
                              f'location="{_label(e["location"])}",ps_id="{ps_id}",ps_name="{name}",'
                              f'ps_type="{ps_type}",ps_type_code="{_label(e["ps_type_code"])}",'
                              f'time_zone="{_label(e["time_zone"])}"')
                out.append(f"{sample}{{{labels}}} {floatToGoString(value)}\n")
            yield "".join(out)
            out = []
        if out:
            yield "".join(out)
    out = [f"# HELP {POINT_VALUE} {_help(POINT_VALUE_HELP, openmetrics)}\n# TYPE {POINT_VALUE} gauge\n"]
    names = {account: production.point_names if production is not None else {}
             for account, _plants, production in accounts}
    for start in range(0, len(rows), PIECE):
        for _plant, _values, extra_points, a, ps_id, name, ps_type, _labels in rows[start:start + PIECE]:
            for point_id, value in extra_points.items():
                # Account names are restricted to characters that need no escaping: `a` is the name itself.
                point_name, unit = names[a].get(point_id, ("", ""))
                out.append(f'{POINT_VALUE}{{account="{a}",point_id="{_label(point_id)}",'
                           f'point_name="{_label(point_name)}",ps_id="{ps_id}",ps_name="{name}",'
                           f'ps_type="{ps_type}",unit="{_label(unit)}"}} {floatToGoString(value)}\n')
        yield "".join(out)
        out = []
    if out:
        yield "".join(out)


def _coalesce(chunks: Iterable[bytes], least: int = 1 << 20) -> list[bytes]:
    """Join small neighbouring chunks (a small fleet's families) so that a scrape is a few large writes."""
    out: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for chunk in chunks:
        group.append(chunk)
        size += len(chunk)
        if size >= least:
            out.append(b"".join(group) if len(group) > 1 else chunk)
            group, size = [], 0
    if group:
        out.append(b"".join(group))
    return out


class _One:
    """One metric family as a registry, for prometheus_client's renderers."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self.metric


def _metric_key(metric: Metric) -> Hashable | None:
    """Everything prometheus_client renders of a family; None when something in it is unhashable. A zero value
    is keyed by its repr, since 0.0 == -0.0 but they render differently (NaN never equals itself: no reuse)."""
    key = (metric.name, metric.type, metric.documentation, metric.unit,
           tuple((s.name, tuple(s.labels.items()), s.value or repr(s.value), s.timestamp, s.exemplar,
                  s.native_histogram) for s in metric.samples))
    try:
        hash(key)
    except TypeError:
        return None
    return key


STORED_TAIL = 16 * 1024  # status sections up to this size go uncompressed


def _deflate_tail(data: bytes) -> bytes:
    """The final blocks of a deflate stream that stands at a byte boundary. A status section of one or a few
    accounts (~5 kB) goes in stored blocks: a fresh zlib compressor costs ~70 us per scrape, mostly allocating
    and touching its 256 kB of state, to save ~4 kB. Larger ones (many accounts) are deflated."""
    if len(data) > STORED_TAIL:
        tail = zlib.compressobj(1, zlib.DEFLATED, -15)
        return tail.compress(data) + tail.flush()
    out = []
    for start in range(0, len(data), 0xFFFF):
        block = data[start:start + 0xFFFF]
        out.append(struct.pack("<BHH", 0, len(block), len(block) ^ 0xFFFF) + block)
    out.append(b"\x01\x00\x00\xff\xff")  # an empty final stored block: BFINAL=1, LEN=0, NLEN=0xFFFF
    return b"".join(out)


_STATE_FIELDS = tuple(f.name for f in fields(AccountState))


def _state_key(state: AccountState) -> tuple[object, ...]:
    """Every field of the state, compared by value; data objects by generation (comparing two plant lists by
    value would compare every plant)."""
    return tuple(_data_key(value) if hasattr(value, "generation") else value
                 for value in (getattr(state, name) for name in _STATE_FIELDS))


def _data_key(data: object) -> object:
    return (type(data).__name__, data.generation)  # type: ignore[attr-defined]


def _sections_key(states: Sequence[AccountState]) -> tuple[object, ...]:
    """What the cached section depends on: each account's data objects, by generation."""
    return tuple((s.name, *(_data_key(v) if hasattr(v, "generation") else None
                            for v in (getattr(s, name) for name in _STATE_FIELDS)))
                 for s in states if s.plants is not None)


def _plant_section(states: Sequence[AccountState], openmetrics: bool) -> Iterator[str]:
    return plant_families(account_data(states), openmetrics)


def _realtime_timestamp_section(states: Sequence[AccountState], openmetrics: bool) -> Iterator[str]:
    """When each plant's real-time values were read, for accounts whose values may be older than their last pass
    (realtime.skip_unchanged); nothing at all when no account has such values."""
    accounts = [(s.name, s.plants, s.production.fetched_at) for s in states
                if s.plants is not None and s.production is not None and s.production.fetched_at]
    if not accounts:
        return
    yield (f"# HELP {REALTIME_TIMESTAMP} {_help(REALTIME_TIMESTAMP_HELP, openmetrics)}\n"
           f"# TYPE {REALTIME_TIMESTAMP} gauge\n")
    for account, plant_list, fetched_at in accounts:
        plants = plant_list.plants
        for start in range(0, len(plants), PIECE):
            out = []
            for plant in plants[start:start + PIECE]:
                ts = fetched_at.get(plant.ps_id)
                if ts is None:
                    continue
                a, ps_id, name, ps_type = (_label(v) for v in plant_label_values(account, plant))
                out.append(f'{REALTIME_TIMESTAMP}{{account="{a}",ps_id="{ps_id}",ps_name="{name}",'
                           f'ps_type="{ps_type}"}} {floatToGoString(ts)}\n')
            yield "".join(out)


# -- open faults and plant details ---------------------------------------------------------------------------


def _header(family: SimpleFamily, openmetrics: bool) -> str:
    return f"# HELP {family.name} {_help(family.help, openmetrics)}\n# TYPE {family.name} {family.kind}\n"


def _pieces(lines: Iterable[str]) -> Iterator[str]:
    """Lines joined into pieces of at most PIECE lines (see plant_families)."""
    out: list[str] = []
    for line in lines:
        out.append(line)
        if len(out) >= PIECE:
            yield "".join(out)
            out = []
    if out:
        yield "".join(out)


def fault_families(states: Sequence[AccountState], openmetrics: bool) -> Iterator[str]:
    """isolarcloud_fault_active and isolarcloud_plant_open_faults of the accounts whose open faults are known.
    Plant names and types come from the plant list, so they join with every other plant series; records of
    plants the current list does not hold are left out. No family at all while no account has open-fault data
    (faults disabled or not yet read): absent, not "no faults"."""
    accounts: list[tuple[str, PlantList, OpenFaults]] = [
        (s.name, s.plants, s.faults) for s in states if s.plants is not None and s.faults is not None]
    if not accounts:
        return
    yield _header(FAULT_ACTIVE, openmetrics)
    yield from _pieces(_fault_lines(accounts))
    yield _header(PLANT_OPEN_FAULTS, openmetrics)
    yield from _pieces(_open_fault_lines(accounts))


def _fault_lines(accounts: Sequence[tuple[str, PlantList, OpenFaults]]) -> Iterator[str]:
    name = FAULT_ACTIVE.name
    for account, plant_list, faults in accounts:
        plants = {p.ps_id: p for p in plant_list.plants}
        for f in faults.faults:
            plant = plants.get(f.ps_id)
            if plant is None:
                continue
            yield (f'{name}{{account="{account}",device_name="{_label(f.device_name)}",'
                   f'device_type="{f.device_type}",fault_code="{_label(f.fault_code)}",'
                   f'fault_level="{_label(f.fault_level)}",fault_name="{_label(f.fault_name)}",'
                   f'fault_type="{f.fault_type}",ps_id="{f.ps_id}",ps_key="{_label(f.ps_key)}",'
                   f'ps_name="{_label(plant.ps_name)}"}} {floatToGoString(f.since)}\n')


def _open_fault_lines(accounts: Sequence[tuple[str, PlantList, OpenFaults]]) -> Iterator[str]:
    name = PLANT_OPEN_FAULTS.name
    for account, plant_list, faults in accounts:
        for plant in plant_list.plants:
            counts = faults.counts.get(plant.ps_id)
            if not counts:
                continue
            a, ps_id, ps_name, ps_type = (_label(v) for v in plant_label_values(account, plant))
            for fault_type, count in sorted(counts.items()):
                yield (f'{name}{{account="{a}",fault_type="{fault_type}",ps_id="{ps_id}",ps_name="{ps_name}",'
                       f'ps_type="{ps_type}"}} {floatToGoString(count)}\n')


def detail_families(states: Sequence[AccountState], openmetrics: bool) -> Iterator[str]:
    """Tariffs and data loggers from plant details (installed power joins the plant section, see
    `with_installed_power`). No family while no account has details."""
    accounts: list[tuple[str, PlantList, PlantDetails]] = [
        (s.name, s.plants, s.details) for s in states if s.plants is not None and s.details is not None]
    if not accounts:
        return
    for family, attribute in ((FEED_IN_TARIFF, "feed_in_tariff"), (CONSUMPTION_TARIFF, "consumption_tariff")):
        yield _header(family, openmetrics)
        yield from _pieces(_tariff_lines(accounts, family.name, attribute))
    yield _header(LOGGER_INFO, openmetrics)
    yield from _pieces(_logger_lines(accounts))


def _tariff_lines(accounts: Sequence[tuple[str, PlantList, PlantDetails]], name: str,
                  attribute: str) -> Iterator[str]:
    for account, plant_list, details in accounts:
        for plant in plant_list.plants:
            detail = details.plants.get(plant.ps_id)
            value = getattr(detail, attribute) if detail is not None else None
            if detail is None or value is None:
                continue
            a, ps_id, ps_name, ps_type = (_label(v) for v in plant_label_values(account, plant))
            yield (f'{name}{{account="{a}",currency="{_label(detail.currency)}",ps_id="{ps_id}",'
                   f'ps_name="{ps_name}",ps_type="{ps_type}"}} {floatToGoString(value)}\n')


def _logger_lines(accounts: Sequence[tuple[str, PlantList, PlantDetails]]) -> Iterator[str]:
    name = LOGGER_INFO.name
    for account, plant_list, details in accounts:
        for plant in plant_list.plants:
            detail = details.plants.get(plant.ps_id)
            if detail is None or not detail.loggers:
                continue
            a, ps_id, ps_name, ps_type = (_label(v) for v in plant_label_values(account, plant))
            for sn, enabled in detail.loggers:
                yield (f'{name}{{account="{a}",ps_id="{ps_id}",ps_name="{ps_name}",ps_type="{ps_type}",'
                       f'sn="{_label(sn)}"}} {floatToGoString(enabled)}\n')


# -- devices ------------------------------------------------------------------------------------------------


def _device_header(family: DeviceFamily, openmetrics: bool) -> tuple[str, str]:
    """(HELP and TYPE lines, sample name) of a family, as prometheus_client writes them in either format."""
    sample = header = family.name
    kind = family.kind
    if kind == "counter":
        sample += "_total"
        header = family.name if openmetrics else sample
    elif kind == "info":
        sample += "_info"
        header, kind = (family.name, "info") if openmetrics else (sample, "gauge")
    return f"# HELP {header} {_help(family.help, openmetrics)}\n# TYPE {header} {kind}\n", sample


def _escaped(value: str) -> str:
    """_label, with a fast path for the usual value that needs no escaping."""
    return _label(value) if ("\\" in value or "\n" in value or '"' in value) else value


def _joined(names: Sequence[str], values: Mapping[str, str]) -> str:
    """Already escaped label values in the given (sorted) order of names, as prometheus_client writes them."""
    return ",".join(f'{name}="{values[name]}"' for name in names)


@dataclass
class _DeviceRow:
    account: str
    device: Device
    values: dict[str, str]  # the DEVICE_LABELS, escaped
    labels: str  # the same, rendered
    fault: int | None
    deployment: int | None
    reading: DeviceReading | None


DEVICE_NAMES = tuple(sorted(DEVICE_LABELS))
POINT_NAMES = tuple(sorted((*DEVICE_LABELS, "point_id", "point_name", "unit")))


def device_families(states: Sequence[AccountState], openmetrics: bool) -> Iterator[str]:
    """The per-device section: inventory families for every account with a fresh inventory, real-time families
    for those with fresh readings too. Nothing at all (not even HELP lines) while no account has an inventory.
    Series of a device carry its plant's current name; plants no longer listed have none. Label values are
    escaped once per device, and each family's label names are sorted once: 30,000 devices take ~0.5 s."""
    rows: list[_DeviceRow] = []
    plants: list[tuple[str, float]] = []  # (labels, inventory taken_at) per inventoried plant
    failed: list[tuple[str, float]] = []
    realtime: list[tuple[str, float]] = []
    names: dict[tuple[str, int, str], tuple[str, str]] = {}
    for state in states:
        inventory = state.devices
        if state.plants is None or inventory is None:
            continue
        readings = state.device_readings
        faults = open_device_faults(state)
        open_status = faults.device_fault_status() if faults is not None else None
        open_at = faults.taken_at if faults is not None else 0.0
        read_at = readings.taken_at if readings is not None else 0.0
        a = state.name  # account names need no escaping (the configuration restricts them)
        failed.append((f'account="{a}"', len(inventory.failed)))
        if readings is not None:
            realtime.append((f'account="{a}"', len(readings.failed)))
            for (code, point_id), named in readings.point_names.items():
                names[(a, code, point_id)] = named
        for plant in state.plants.plants:
            entry = inventory.plants.get(plant.ps_id)
            if entry is None:
                continue
            ps_id, ps_name = _escaped(plant.ps_id), _escaped(plant.ps_name)
            plants.append((f'account="{a}",ps_id="{ps_id}",ps_name="{ps_name}"', entry.taken_at))
            for device in entry.devices:
                reading = readings.devices.get(device.ps_key) if readings is not None else None
                values = {"account": a, "ps_id": ps_id, "ps_name": ps_name, "ps_key": _escaped(device.ps_key),
                          "device_name": _escaped(device.device_name), "device_type": device.device_type}
                deployment = device.deployment_status
                if reading is not None and reading.deployment_status is not None and read_at >= entry.taken_at:
                    deployment = reading.deployment_status
                rows.append(_DeviceRow(
                    a, device, values, _joined(DEVICE_NAMES, values),
                    device_fault_status(device, entry.taken_at, reading, read_at, open_status, open_at),
                    deployment, reading))
    if not failed:
        return

    codes: dict[float, str] = {}  # the few values of codes (status, 1 of info); never a -0.0, which equals 0.0

    def family(spec: DeviceFamily, samples: Iterable[tuple[str, float | None]], coded: bool = False) -> Iterator[str]:
        head, sample = _device_header(spec, openmetrics)
        out = [head]
        for count, (labels, value) in enumerate(samples, start=1):
            if value is not None:
                if coded:
                    text = codes.get(value)
                    if text is None:
                        text = codes[value] = floatToGoString(value)
                else:
                    text = floatToGoString(value)
                out.append(f"{sample}{{{labels}}} {text}\n")
            if count % PIECE == 0:
                yield "".join(out)
                out = []
        if out:
            yield "".join(out)

    info_names: dict[tuple[str, ...], tuple[str, ...]] = {}

    def info(row: _DeviceRow) -> tuple[str, float]:
        d = row.device
        values = {**row.values, "device_sn": _escaped(d.device_sn), "device_model": _escaped(d.model),
                  "factory_name": _escaped(d.factory_name), "communication_dev_sn": _escaped(d.communication_dev_sn),
                  "claim_state": "" if d.claim_state is None else str(d.claim_state)}
        firmware = d.firmware or ()
        for key, version in firmware:
            values[key] = _escaped(version)
        keys = tuple(key for key, _version in firmware)
        order = info_names.get(keys)
        if order is None:
            order = info_names[keys] = tuple(sorted(values))
        return _joined(order, values), 1.0

    yield from family(DEVICE_INFO, (info(r) for r in rows), coded=True)
    yield from family(DEVICE_FAULT_STATUS, ((r.labels, r.fault) for r in rows), coded=True)
    yield from family(DEVICE_DEPLOYMENT_STATUS, ((r.labels, r.deployment) for r in rows), coded=True)
    yield from family(DEVICE_INVENTORY_TIMESTAMP, plants)
    yield from family(DEVICE_INVENTORY_FAILED, failed)
    if not realtime:
        return
    read = [r for r in rows if r.reading is not None]
    for spec, quantity in DEVICE_QUANTITY_FAMILIES:
        yield from family(spec, (
            (r.labels, _scaled(r.reading.points.get(quantity.point_id), quantity.scale))  # type: ignore[union-attr]
            for r in read if r.device.device_type_code == quantity.device_type))
    yield from family(DEVICE_DATA_TIMESTAMP, ((r.labels, r.reading.data_ts) for r in read))  # type: ignore[union-attr]

    def points(row: _DeviceRow) -> Iterator[tuple[str, float | None]]:
        code = row.device.device_type_code
        for point_id, value in row.reading.points.items():  # type: ignore[union-attr]
            if (code, point_id) in NAMED_DEVICE_POINTS:
                continue
            point_name, unit = names.get((row.account, code or 0, point_id), ("", ""))
            values = {**row.values, "point_id": _escaped(point_id), "point_name": _escaped(point_name),
                      "unit": _escaped(unit)}
            yield _joined(POINT_NAMES, values), value

    yield from family(DEVICE_POINT_VALUE, (sample for r in read for sample in points(r)))
    yield from family(DEVICE_REALTIME_FAILED, realtime)


def _scaled(value: float | None, scale: float) -> float | None:
    if value is None:
        return None
    scaled = value * scale
    return scaled if math.isfinite(scaled) else None


# The cached part of /metrics, in order: each renders its families from the accounts' data (never from the
# per-scrape status). A new kind of data (faults, details, devices) adds its renderer here.
SECTIONS: tuple[Callable[[Sequence[AccountState], bool], Iterator[str]], ...] = (
    _plant_section, _realtime_timestamp_section, fault_families, detail_families, device_families)


def cached_section(states: Sequence[AccountState], openmetrics: bool) -> Iterator[str]:
    for section in SECTIONS:
        yield from section(states, openmetrics)


# -- the sun: computed from the plant lists, but moving; rendered at most once a minute ----------------------------

SUN_PERIOD = 60  # seconds between two renders of the sun family: the sun moves 0.25 degree a minute
SunRow = tuple[str, Position]  # a plant's labels (rendered) and where its sun is computed


def sun_rows(states: Sequence[AccountState]) -> list[SunRow]:
    """Every listed plant that has a position (serve/sun.py `positions`: its coordinates, or its time zone), with
    its labels: the plant's, `source` and `time_zone`."""
    rows: list[SunRow] = []
    for account, plant_list, _production in account_data(states):
        where = positions((p.latitude, p.longitude, p.time_zone) for p in plant_list.plants)
        for plant, position in zip(plant_list.plants, where, strict=True):
            if position is None:
                continue
            a, ps_id, name, ps_type = (_label(v) for v in plant_label_values(account, plant))
            # The zone is also a label here (it is on isolarcloud_plant_info too): rules compare a plant with the
            # daylit plants of its zone, and a join with the info series for it costs ~15 us a plant per evaluation.
            rows.append((f'account="{a}",ps_id="{ps_id}",ps_name="{name}",ps_type="{ps_type}",'
                         f'source="{position.source}",time_zone="{_label(plant.time_zone)}"', position))
    return rows


def sun_family(rows: Sequence[SunRow], t: float, openmetrics: bool) -> Iterator[str]:
    """isolarcloud_plant_sun_elevation_degrees at Unix time `t`, in pieces of PIECE plants. One decimal: the
    family is recomputed once a minute, in which the sun moves 0.25 degree."""
    yield f"# HELP {SUN_ELEVATION} {_help(SUN_ELEVATION_HELP, openmetrics)}\n# TYPE {SUN_ELEVATION} gauge\n"
    values = elevations([position for _labels, position in rows], t)
    for start in range(0, len(rows), PIECE):
        yield "".join(f"{SUN_ELEVATION}{{{labels}}} {floatToGoString(round(value, 1))}\n"
                      for (labels, _position), value in zip(rows[start:start + PIECE], values[start:start + PIECE],
                                                            strict=True))


class _Collectors:
    """Just enough of a registry for prometheus_client's renderers."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self.collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


@dataclass
class _Rendered:
    key: tuple[object, ...]
    chunks: list[bytes]  # the plant section, one chunk per family: never copied into one string or body
    gzip_prefix: bytes | None = None  # gzip header + the section's deflate stream, sync-flushed (byte-aligned)
    crc: int = 0  # CRC-32 and length of the section, for the gzip trailer
    size: int = 0


@dataclass
class _Sun:
    key: tuple[object, ...]  # the plant section's key and the minute
    chunks: list[bytes]
    deflated: bytes | None = None  # raw deflate blocks continuing the plant section's stream, sync-flushed
    crc: int = 0  # CRC-32 of the plant section followed by this one
    size: int = 0


class Exposition:
    """Serves /metrics bytes for the states of one scrape, reusing the per-plant bytes while they are current."""

    def __init__(self, runtime_collectors: Sequence[Collector] | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.runtime = list(runtime_collectors) if runtime_collectors is not None else [
            PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR]
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[bool, _Rendered] = {}
        self._sun: dict[bool, _Sun] = {}
        self._sun_rows: tuple[object, list[SunRow]] | None = None  # by the plant lists' generations
        self._sun_busy: set[bool] = set()  # formats whose sun one scrape is computing
        self._sun_ready = threading.Condition(self._lock)
        # Status families as last rendered, by (format, name): most of them are unchanged from one scrape to the
        # next, and prometheus_client's renderer costs far more than comparing what it would render.
        self._status_memo: dict[tuple[bool, str], tuple[Hashable, bytes]] = {}
        self._accounts_memo: dict[bool, tuple[tuple[tuple[object, ...], ...], bytes]] = {}

    def _plants(self, states: Sequence[AccountState], openmetrics: bool, gzip: bool) -> _Rendered:
        key = _sections_key(states)
        with self._lock:
            cached = self._cache.get(openmetrics)
            if cached is None or cached.key != key:
                # Let every outdated section go (either format) before the new one is built.
                cached = None
                self._cache = {fmt: r for fmt, r in self._cache.items() if r.key == key}
                cached = _Rendered(key, _coalesce(f.encode() for f in cached_section(states, openmetrics)))
                self._cache[openmetrics] = cached
            if gzip and cached.gzip_prefix is None:
                state = zlib.compressobj(6, zlib.DEFLATED, 31)
                parts = [state.compress(chunk) for chunk in cached.chunks]
                parts.append(state.flush(zlib.Z_SYNC_FLUSH))
                for chunk in cached.chunks:
                    cached.crc = zlib.crc32(chunk, cached.crc)
                    cached.size += len(chunk)
                cached.gzip_prefix = b"".join(parts)
            return cached

    def _sun_section(self, states: Sequence[AccountState], plants: _Rendered, openmetrics: bool,
                     gzip: bool) -> _Sun:
        """The sun family for the current minute. Positions are worked out once per plant list; elevations once a
        minute per format (~2 us a plant), so a scrape almost always reuses the bytes. The minute's new bytes are
        computed by one scrape outside the lock (~0.16 s at 10,000 plants); scrapes meanwhile get the previous
        minute's bytes for the same plant section (the sun has moved at most 0.25 degree), or wait for the new
        ones where the plant section is new too."""
        minute = int(self.clock() // SUN_PERIOD)
        key = (plants.key, minute)
        with self._sun_ready:
            while True:
                cached = self._sun.get(openmetrics)
                if cached is not None and cached.key == key:
                    break
                if openmetrics not in self._sun_busy:
                    self._sun_busy.add(openmetrics)
                    cached = None
                    break
                if cached is not None and cached.key[0] == plants.key:
                    break  # the previous minute's, while another scrape computes this one's
                self._sun_ready.wait()
        if cached is None:
            try:
                cached = self._compute_sun(states, key, minute, openmetrics)
            finally:
                with self._sun_ready:
                    self._sun_busy.discard(openmetrics)
                    self._sun_ready.notify_all()
        if gzip and cached.deflated is None:
            state = zlib.compressobj(6, zlib.DEFLATED, -15)
            parts = [state.compress(chunk) for chunk in cached.chunks]
            parts.append(state.flush(zlib.Z_SYNC_FLUSH))
            crc = plants.crc
            for chunk in cached.chunks:
                crc = zlib.crc32(chunk, crc)
            # Set together, by whichever scrape gets here first: the values are the same for any of them.
            cached.crc, cached.size, cached.deflated = crc, sum(len(c) for c in cached.chunks), b"".join(parts)
        return cached

    def _compute_sun(self, states: Sequence[AccountState], key: tuple[object, ...], minute: int,
                     openmetrics: bool) -> _Sun:
        lists = tuple((s.name, s.plants.generation) for s in states if s.plants is not None)
        rows = self._sun_rows
        if rows is None or rows[0] != lists:
            rows = (lists, sun_rows(states))
            self._sun_rows = rows
        t = minute * SUN_PERIOD + SUN_PERIOD / 2  # the middle of the minute: off by at most 0.125 degree
        fresh = _Sun(key, _coalesce(f.encode() for f in sun_family(rows[1], t, openmetrics)))
        with self._sun_ready:
            self._sun[openmetrics] = fresh
        return fresh

    def prepare(self, states: Sequence[AccountState]) -> None:
        """Render these states' plant section (and the sun's, for this minute) now in every format (and encoding)
        rendered before, so that the next scrapes find them ready."""
        with self._lock:
            wanted = [(openmetrics, r.gzip_prefix is not None) for openmetrics, r in self._cache.items()]
        for openmetrics, gzip in wanted:
            self._sun_section(states, self._plants(states, openmetrics, gzip), openmetrics, gzip)

    def render_parts(self, states: Sequence[AccountState], *, openmetrics: bool, gzip: bool) -> list[bytes]:
        """The body as a list of byte strings to be written in order: the cached section is never copied."""
        plants = self._plants(states, openmetrics, gzip)
        sun = self._sun_section(states, plants, openmetrics, gzip)
        status = self._status(states, openmetrics)
        if not gzip:
            return [*plants.chunks, *sun.chunks, status]
        assert plants.gzip_prefix is not None and sun.deflated is not None
        # The cached stream stops at a sync flush, so the sun's blocks and then the status section can follow as
        # the stream's last blocks (a copy of a paused compressor costs more than deflating the small status
        # section anew).
        size = plants.size + sun.size + len(status)
        trailer = struct.pack("<II", zlib.crc32(status, sun.crc), size & 0xFFFFFFFF)
        return [plants.gzip_prefix, sun.deflated, _deflate_tail(status) + trailer]

    def _status(self, states: Sequence[AccountState], openmetrics: bool) -> bytes:
        """What prometheus_client renders for the status and runtime collectors. StatusCollector is a function of
        the states alone: while they are unchanged (between refreshes) its bytes are reused without collecting
        it. The runtime collectors are collected on every scrape and rendered family by family, reusing the bytes
        of a family whose samples are unchanged since the last scrape."""
        key = tuple(_state_key(s) for s in states)
        memo = self._accounts_memo.get(openmetrics)
        if memo is not None and memo[0] == key:
            accounts = memo[1]
        else:
            accounts = self._families([StatusCollector(lambda: states)], openmetrics)
            self._accounts_memo[openmetrics] = (key, accounts)
        runtime = self._families(self.runtime, openmetrics)
        return accounts + runtime + EOF if openmetrics else accounts + runtime

    def _families(self, collectors: Sequence[Collector], openmetrics: bool) -> bytes:
        render = om_format.generate_latest if openmetrics else text_format.generate_latest
        out = []
        for metric in _Collectors(collectors).collect():
            key = _metric_key(metric)
            memo = self._status_memo.get((openmetrics, metric.name))
            if key is not None and memo is not None and memo[0] == key:
                out.append(memo[1])
                continue
            text = render(_One(metric))
            if openmetrics:
                text = text[:-len(EOF)]
            if key is not None:
                self._status_memo[(openmetrics, metric.name)] = (key, text)
            out.append(text)
        return b"".join(out)


def content_type(openmetrics: bool) -> str:
    return OPENMETRICS if openmetrics else TEXT

