"""Device faults and alarms over time (getFaultAlarmInfo), consistent with each plant's `ps_fault_status`.

Model: a plant has a few *slots*, each of one fault type. A slot always holds exactly one open record; records
follow each other without a gap (record k opens when record k-1 closes), so faults open and close over time
while the number of open records per plant stays constant. Record boundaries are a closed-form function of
(seed, plant, slot, k): the record open at any clock value is found in O(1) and a month of history in
O(records), with no state kept for untouched plants.

Slots are derived from the plant's fields: `fault_count` slots of type 1 and `alarm_count` slots of type 2
(the legacy list's counts), at least one fault slot for `ps_fault_status` 1 and one alarm slot for 2, none of
either for 3; a few plants also get a notice (3), suggestion (4) or undocumented type-7 slot, which do not
affect the status. Hence: status 1 <=> >= 1 open fault; status 2 <=> no open fault and >= 1 open alarm;
status 3 <=> neither. Control methods (open/close a fault, set the fleet's open count) keep the plant's
status and counts in step with what they change.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from . import catalog
from .catalog import FaultKind
from .common import lenient_int, mix, unit_float
from .devices import DeviceRegistry
from .fleet import Fleet, Plant

HOUR = 3600.0
DAY = 86400.0
# Record length ranges (seconds) per fault type: a record lasts between 1x and 1.5x its slot's period.
PERIODS = {1: (12 * HOUR, 3 * DAY), 2: (6 * HOUR, 2 * DAY)}
OTHER_PERIOD = (1 * DAY, 5 * DAY)
CODE_SPACE = 10**15  # fits a JSON number without precision loss (< 2**53) and 13 hex digits
UNDOCUMENTED_FAULT_TYPE = 7


@dataclass(slots=True)
class Record:
    code: int
    ps_id: int
    ftype: int
    kind: FaultKind
    device_index: int | None  # None: the plant itself (ps_key <ps_id>_11_0_0)
    start: float
    end: float | None  # None: open
    process_status: int  # 1-4 while open, 9 once closed
    slot: int  # -1 for records made by open_fault
    name: tuple[str, str | None] | None = None  # (zh, en) override from open_fault
    level: int | None = None

    @property
    def is_open(self) -> bool:
        return self.end is None

    def title(self, english: bool) -> str:
        zh, en = self.name if self.name is not None else (self.kind.zh, self.kind.en)
        return en if english and en is not None else zh

    def description(self, english: bool) -> str:
        return self.kind.desc_en if english and self.kind.desc_en is not None else self.kind.desc_zh


@dataclass
class _State:
    """Kept only for plants a control method touched."""

    sig: tuple[object, ...]  # the plant fields this state was synced to; a set_plant() elsewhere resets it
    spec: tuple[int, ...]
    retired: dict[int, float] = field(default_factory=dict)  # slot -> when close_fault() closed it
    manual: list[Record] = field(default_factory=list)


def _sig(plant: Plant) -> tuple[object, ...]:
    f = plant.fields
    return (f.get("ps_fault_status"), f.get("fault_count"), f.get("alarm_count"))


def worst(types: Iterable[int]) -> int:
    """Plant fault status from open record types: 1 fault, 2 alarm, 3 normal."""
    got = set(types)
    return 1 if 1 in got else 2 if 2 in got else 3


class AlarmBook:
    def __init__(self, seed: int, devices: DeviceRegistry) -> None:
        self.seed = seed
        self.devices = devices
        self._lock = threading.RLock()
        self._states: dict[int, _State] = {}
        self._extras: dict[int, tuple[int, ...]] = {}
        self._by_code: dict[int, tuple[int, int, int]] = {}  # code -> (ps_id, slot, k) of served records
        self._manual_codes: dict[int, Record] = {}
        self._manual_counter = 0
        self.version = 0
        # Answers of fleet-wide list queries, keyed by their parameters, the evaluation time and the versions
        # of everything they depend on (see api_faults).
        self.query_cache: dict[tuple[object, ...], list[Record]] = {}
        self._kinds: dict[tuple[frozenset[int], int], list[FaultKind]] = {}
        self._salt_timing, self._salt_start, self._salt_record = (mix(seed, tag) for tag in (0xA1, 0xA3, 0xA6))

    # Slots ---------------------------------------------------------------------------------------
    def _extra_slots(self, ps_id: int) -> tuple[int, ...]:
        got = self._extras.get(ps_id)
        if got is None:
            u = unit_float(self.seed, ps_id, 0xA0)
            got = (3,) if u < 0.06 else (4,) if u < 0.10 else (UNDOCUMENTED_FAULT_TYPE,) if u < 0.11 else ()
            self._extras[ps_id] = got
        return got

    def _derived_spec(self, plant: Plant) -> tuple[int, ...]:
        f = plant.fields
        status, n_fault, n_alarm = f.get("ps_fault_status"), f.get("fault_count"), f.get("alarm_count")
        if type(status) is not int:
            status = lenient_int(status, 3)
        n_fault = max(0, n_fault if type(n_fault) is int else lenient_int(n_fault, 0) or 0)
        n_alarm = max(0, n_alarm if type(n_alarm) is int else lenient_int(n_alarm, 0) or 0)
        if status == 1:
            n_fault = max(1, n_fault)
        elif status == 2:
            n_fault, n_alarm = 0, max(1, n_alarm)
        else:
            n_fault = n_alarm = 0
        return (1,) * n_fault + (2,) * n_alarm + self._extra_slots(plant.ps_id)

    def _state(self, plant: Plant) -> _State | None:
        st = self._states.get(plant.ps_id)
        if st is not None and st.sig != _sig(plant):
            del self._states[plant.ps_id]  # the plant's status was set from outside: derive afresh
            return None
        return st

    # Hashing is most of the cost of a fleet-wide listing, so each record uses few, short mix() calls: one per
    # slot for its timing, one per record boundary, two for a record's attributes.
    def _timing(self, key: int, ftype: int) -> tuple[float, float]:
        lo, hi = PERIODS.get(ftype, OTHER_PERIOD)
        h = mix(self._salt_timing, key, ftype)
        period = lo + (hi - lo) * ((h & 0xFFFFFFFF) / 4294967296.0)
        return period, ((h >> 32) / 4294967296.0) * period

    def _start(self, key: int, period: float, phase: float, k: int) -> float:
        return phase + k * period + mix(self._salt_start, key, k) / 18446744073709551616.0 * period / 2.0

    def _k_at(self, key: int, period: float, phase: float, t: float) -> tuple[int, float]:
        """The record open at t, with its start."""
        k = math.floor((t - phase) / period)
        start = self._start(key, period, phase, k)
        if t < start:
            k -= 1
            start = self._start(key, period, phase, k)
        return k, start

    # Records -------------------------------------------------------------------------------------
    def _record(self, plant: Plant, key: int, slot: int, ftype: int, k: int, start: float,
                end: float | None) -> Record:
        h = mix(self._salt_record, key, k)
        code = h % CODE_SPACE
        h2 = mix(h)
        kind, device = self._kind_and_device(plant, ftype, (h2 & 0xFFFF) / 65536.0,
                                             ((h2 >> 16) & 0xFFFFFFFF) / 4294967296.0)
        u = (h2 >> 48) / 65536.0
        status = 9 if end is not None else 1 if u < 0.7 else 2 if u < 0.8 else 3 if u < 0.95 else 4
        self._by_code[code] = (plant.ps_id, slot, k)
        return Record(code, plant.ps_id, ftype, kind, device, start, end, status, slot)

    def _kind_and_device(self, plant: Plant, ftype: int, u_kind: float, u_dev: float) -> tuple[FaultKind, int | None]:
        present = self.devices.present_types(plant)
        ck = (present, ftype)
        kinds = self._kinds.get(ck)
        if kinds is None:
            of_type = [k for k in catalog.FAULT_KINDS if k.ftype == ftype]
            # Kinds that fit the plant's devices; the plant-level ones only for a plant without devices.
            kinds = [k for k in of_type if present.intersection(k.targets)] or [k for k in of_type if 11 in k.targets]
            self._kinds[ck] = kinds
        kind = kinds[int(u_kind * len(kinds))]
        device = self.devices.pick(plant, kind.targets, u_dev)
        return kind, device

    def records(self, plant: Plant, t: float, now: float, lo: float | None = None,
                hi: float | None = None) -> list[Record]:
        """The plant's records as of time `t` (slot boundaries; `now` for control-made closes): the open ones
        when lo is None, else every record (open or closed) that started in [lo, hi]."""
        with self._lock:
            st = self._state(plant)
            spec = st.spec if st is not None else self._derived_spec(plant)
            out: list[Record] = []
            ps_id = plant.ps_id
            for slot, ftype in enumerate(spec):
                retired = st.retired.get(slot) if st is not None else None
                key = ps_id << 16 | slot
                period, phase = self._timing(key, ftype)
                if lo is None:
                    if retired is not None:
                        continue
                    k, start = self._k_at(key, period, phase, t)
                    out.append(self._record(plant, key, slot, ftype, k, start, None))
                    continue
                top = min(hi if hi is not None else t, t)
                if retired is not None:
                    top = min(top, retired)
                if top < lo:
                    continue
                k, start = self._k_at(key, period, phase, lo)
                while start <= top:
                    nxt = self._start(key, period, phase, k + 1)
                    end: float | None = nxt if nxt <= t else None
                    if retired is not None and (end is None or end > retired):
                        end = retired
                    if start >= lo:
                        out.append(self._record(plant, key, slot, ftype, k, start, end))
                    k, start = k + 1, nxt
            if st is not None:
                for rec in st.manual:
                    if rec.start > now:
                        continue
                    if (rec.is_open if lo is None else lo <= rec.start <= (now if hi is None else hi)):
                        out.append(rec)
            return out

    def open_types(self, plant: Plant, t: float, now: float) -> list[int]:
        return [r.ftype for r in self.records(plant, t, now)]

    def device_status(self, plant: Plant, t: float, now: float) -> dict[int | None, int]:
        """dev_fault_status per device index (1 fault, 2 alarm, 4 normal; devices not listed are normal)."""
        out: dict[int | None, int] = {}
        for rec in self.records(plant, t, now):
            if rec.ftype in (1, 2):
                out[rec.device_index] = min(out.get(rec.device_index, 4), rec.ftype)
        return out

    # Control -------------------------------------------------------------------------------------
    def _touch(self, plant: Plant) -> _State:
        st = self._state(plant)
        if st is None:
            st = _State(_sig(plant), self._derived_spec(plant))
            self._states[plant.ps_id] = st
        return st

    def _sync_fields(self, plant: Plant, st: _State, t: float, now: float) -> None:
        """Write the plant's status and counts from its open records, keeping each field's JSON type."""
        types = self.open_types(plant, t, now)
        values = {"ps_fault_status": worst(types), "fault_count": types.count(1), "alarm_count": types.count(2)}
        for key, value in values.items():
            plant.fields[key] = str(value) if isinstance(plant.fields.get(key), str) else value
        st.sig = _sig(plant)
        self.version += 1

    def open_fault(self, plant: Plant, ftype: int, device_index: int | None, name: str | None, level: int | None,
                   t: float, now: float) -> Record:
        with self._lock:
            st = self._touch(plant)
            self._manual_counter += 1
            kinds = [k for k in catalog.FAULT_KINDS if k.ftype == ftype] or [catalog.FAULT_KINDS[-1]]
            kind = kinds[self._manual_counter % len(kinds)]
            code = mix(self.seed, 0xFA, self._manual_counter) % CODE_SPACE
            rec = Record(code, plant.ps_id, ftype, kind, device_index, now, None, 1, -1,
                         (name, name) if name is not None else None, level)
            st.manual.append(rec)
            self._manual_codes[code] = rec
            self._sync_fields(plant, st, t, now)
            return rec

    def close_fault(self, fleet: Fleet, code: int, t: float, now: float) -> Record:
        with self._lock:
            manual = self._manual_codes.get(code)
            if manual is not None:
                plant = fleet.by_id.get(manual.ps_id)
                if plant is None or not manual.is_open:
                    raise KeyError(f"fault {code} is not open")
                manual.end, manual.process_status = now, 9
                self._sync_fields(plant, self._touch(plant), t, now)
                return manual
            where = self._by_code.get(code)
            plant = fleet.by_id.get(where[0]) if where is not None else None
            if where is None or plant is None:
                raise KeyError(f"unknown fault code {code} (codes are known once served or listed)")
            _, slot, _ = where
            current = [r for r in self.records(plant, t, now) if r.code == code]
            if not current:
                raise KeyError(f"fault {code} is not open")
            st = self._touch(plant)
            st.retired[slot] = now
            self._sync_fields(plant, st, t, now)
            rec = current[0]
            rec.end, rec.process_status = now, 9
            return rec

    def forget(self, ps_id: int) -> None:
        with self._lock:
            self._states.pop(ps_id, None)
            self.version += 1

    def normalise_fields(self, plant: Plant) -> None:
        """After set_plant(): make the stored counts agree with the status (status wins)."""
        with self._lock:
            self._states.pop(plant.ps_id, None)
            spec = self._derived_spec(plant)
            for key, value in (("fault_count", spec.count(1)), ("alarm_count", spec.count(2))):
                plant.fields[key] = str(value) if isinstance(plant.fields.get(key), str) else value
            self.version += 1

    def set_open_count(self, plants: Sequence[Plant], n: int, types: Sequence[int] | None, t: float,
                       now: float) -> None:
        """Exactly `n` open records across `plants` from now on (records keep rotating): one per chosen plant
        while n <= len(plants), round-robin beyond. Every other plant becomes normal with no open record."""
        if n < 0:
            raise ValueError("n must be >= 0")
        if n and not plants:
            raise ValueError("no plants to put faults on")
        rng = random.Random(mix(self.seed, 0xC0, n, len(plants)))
        order = list(range(len(plants)))
        rng.shuffle(order)
        mix_types = list(types) if types else [1] * 35 + [2] * 45 + [3] * 12 + [4] * 7 + [UNDOCUMENTED_FAULT_TYPE]
        specs: dict[int, list[int]] = {}
        for i in range(n):
            ftype = mix_types[i % len(mix_types)] if types else mix_types[int(rng.random() * len(mix_types))]
            specs.setdefault(order[i % len(plants)], []).append(ftype)
        with self._lock:
            for idx, plant in enumerate(plants):
                spec = tuple(sorted(specs.get(idx, ())))
                st = _State((), spec)
                self._states[plant.ps_id] = st
                self._sync_fields_from_spec(plant, st)
            self.version += 1

    def _sync_fields_from_spec(self, plant: Plant, st: _State) -> None:
        values = {"ps_fault_status": worst(st.spec), "fault_count": st.spec.count(1),
                  "alarm_count": st.spec.count(2)}
        for key, value in values.items():
            plant.fields[key] = str(value) if isinstance(plant.fields.get(key), str) else value
        st.sig = _sig(plant)
