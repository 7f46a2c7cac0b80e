"""`isolarcloud-exporter backfill`: the wiring of a run, from the configuration to an OpenMetrics file (and blocks).

For each account:
1. its plant list (or, resumed, the one the interrupted run saved);
2. the plan: every plant's days from --from to the last local day that ended 3 hours ago, as minute windows or
   100-day chunks, in batches of 50 plants (`plan.py`);
3. each call when the account's budget allows it (`pacing.py`), its rows written to per-family spools
   (`openmetrics.py`), the checkpoint updated (`checkpoint.py`).
Then the spools of every account are joined into one OpenMetrics file; with --tsdb-dir, promtool turns it into
TSDB blocks. Any stop keeps what is needed to continue: the same command again resumes at the first call not done.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO, TypeVar, cast

from ..app import account_session, plant_list_api
from ..config import AccountConfig, Config
from ..data import Plant
from ..fetch.envelope import ApiError, CredentialError, QuotaError, TokenError
from ..fetch.history import HistoryApi, HistoryResult
from ..fetch.parse import zone_offset
from ..fetch.plants import parse_plant
from ..fetch.session import ApiSession
from ..fetch.transport import Gateway, Recorder
from ..serve.metrics import PLANT_LABELS, plant_label_values
from .checkpoint import AccountProgress, Checkpoint, CheckpointError, load_plants, save_plants
from .openmetrics import EOF, Spools, assemble, label_text
from .pacing import ExporterReading, Pacer
from .plan import RESOLUTIONS, Plan, Unit, last_complete_day, plant_zones
from .progress import Progress

log = logging.getLogger("exporter.backfill")
T = TypeVar("T")

RETRY_DELAYS = (30.0, 120.0, 300.0)  # after a network or answer error, before the call is tried again
RATE_DELAYS = (60.0, 120.0, 300.0, 600.0, 900.0)  # after E901 (calls too frequent) and its kin
MAX_E999_IN_A_ROW = 3  # hours that ended in E999 without one good call: the budget is wrong, stop
SAVE_EVERY = 2.0  # seconds between checkpoint writes (and at every stop and at the end, always)


class BackfillError(Exception):
    """Ends a run with one line on stderr and an exit code: 2 bad input, 1 needs a human, 3 stopped (resumable)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def bad_input(message: str) -> BackfillError:
    return BackfillError(message, 2)


@dataclass(frozen=True)
class Options:
    accounts: tuple[AccountConfig, ...]
    config: Config
    first: date
    last: date | None  # None: the last complete day
    resolution: str
    output: Path
    checkpoint: Path
    labels: Mapping[str, str] = field(default_factory=dict)  # besides the plant labels: job, instance, …
    tsdb_dir: Path | None = None
    max_block_duration: str | None = None
    dry_run: bool = False
    plants: int | None = None  # --plants: the plant count a dry run assumes

    @property
    def work_dir(self) -> Path:
        return self.checkpoint.with_name(self.checkpoint.name + ".d")

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be continued."""
        return {"accounts": [a.name for a in self.accounts], "from": self.first.isoformat(),
                "to": self.last.isoformat() if self.last else None, "resolution": self.resolution,
                "labels": dict(sorted(self.labels.items())), "output": str(self.output.resolve()),
                "api_time_zone": {a.name: a.api_time_zone for a in self.accounts}}


@dataclass
class AccountSummary:
    name: str
    plants: int = 0
    first: date | None = None
    last: date | None = None
    calls: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    skipped: list[str] = field(default_factory=list)  # plants without a usable time zone
    illegal: list[str] = field(default_factory=list)


@dataclass
class Summary:
    accounts: list[AccountSummary] = field(default_factory=list)
    output: Path | None = None
    size: int = 0
    blocks: Path | None = None
    already_complete: bool = False

    @property
    def samples(self) -> int:
        return sum(a.samples for a in self.accounts)


class _PacedSession(ApiSession):
    """Every call waits for the budget first, the plant list's pages included."""

    def __init__(self, session: ApiSession, pacer: Pacer) -> None:
        super().__init__(session.transport, session.auth)
        self.pacer = pacer

    def call(self, path: str, params: dict[str, Any], require_list: str | None = None) -> dict[str, Any]:
        self.pacer.acquire()
        return super().call(path, params, require_list)


class AccountRun:
    """One account's part of the run: its session, plants, plan, calls and spools."""

    def __init__(self, backfill: Backfill, account: AccountConfig, pacer: Pacer, state: AccountProgress) -> None:
        self.backfill = backfill
        self.options = backfill.options
        self.account = account
        self.pacer = pacer
        self.state = state
        self.dir = self.options.work_dir / account.name
        self.requests: Counter[str] = Counter()
        self._session: ApiSession | None = None

    def session(self) -> ApiSession:
        if self._session is None:
            def record(endpoint: str, result: str) -> None:
                self.requests[endpoint] += 1
                self.pacer.count()

            inner = account_session(self.account, self.options.config, record, lambda kind, result: None,
                                    self.backfill.clock, gateway=self.backfill.gateway)
            self._session = _PacedSession(inner, self.pacer)
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def plants(self) -> list[Plant]:
        path = self.dir / "plants.json"
        if self.state.last is not None and path.exists():
            return load_plants(path)
        api = plant_list_api(self.session(), self.account)
        listing = self._retrying(api.read, "the plant list", None)
        plants = [p for p in (parse_plant(row, self.account.api_time_zone) for row in listing.rows) if p]
        save_plants(path, plants)
        return plants

    def fetch(self, save: Callable[[], None]) -> AccountSummary:
        o, state = self.options, self.state
        summary = AccountSummary(self.account.name)
        base_calls = Counter(state.calls)
        everyone = self.plants()
        zones, unplaced = plant_zones(everyone, self.account.api_time_zone)
        for plant in unplaced:
            log.warning("account %s, plant %s: time zone %r cannot be read: its history is left out (set "
                        "api_time_zone to read its stamps in a fixed offset)", self.account.name, plant.ps_id,
                        plant.time_zone)
        plants = [p for p in everyone if p.ps_id in zones]
        if state.last is None:
            last_possible = last_complete_day(self.backfill.clock(), list(zones.values()))
            last = min(o.last, last_possible) if o.last else last_possible
            if o.last and o.last > last_possible:
                log.info("account %s: --to %s is not a day that ended 3 hours ago in every plant's zone: ending "
                         "at %s", self.account.name, o.last, last)
            if o.first > last:
                raise bad_input(f"--from {o.first}: after the last day with history ({last}): the history "
                                "endpoints give nothing for the current day, and the last 3 hours are Prometheus' "
                                "own")
            state.last = last.isoformat()
        plan = Plan(tuple(p.ps_id for p in plants), o.first, date.fromisoformat(state.last), o.resolution)
        state.total = len(plan)
        save()
        summary.plants, summary.first, summary.last = len(plants), plan.first, plan.last
        summary.skipped = [p.ps_id for p in unplaced]
        spools = Spools(self.dir, plan.quantities)
        try:
            spools.resume(state.sizes)
        except OSError as exc:
            raise bad_input(f"{self.dir}: the interrupted run's files are incomplete ({exc}); remove "
                            f"{o.checkpoint} to start afresh") from None
        labels = {p.ps_id: label_text({**o.labels, **dict(zip(PLANT_LABELS, plant_label_values(self.account.name, p),
                                                            strict=True))}) for p in plants}
        if state.done:
            log.info("account %s: resuming at call %d of %d", self.account.name, state.done + 1, len(plan))
        progress = Progress(total=len(plan), done=state.done, days=plan.days, plants=len(plants),
                            per_hour=self.pacer.per_hour(), stream=self.backfill.stream)
        history = HistoryApi(self.session())
        illegal = set(state.illegal)
        saved_at = time.monotonic()

        def checkpoint() -> None:
            state.sizes = spools.sync()
            state.calls = dict(base_calls + self.requests)
            state.illegal = sorted(illegal)
            save()

        segments = o.tsdb_dir is not None
        current = _segment(next(plan.units(skip=state.done - 1))) if state.done else None
        try:
            for unit in plan.units(skip=state.done):
                if segments and current not in (None, state.converted) and _segment(unit) != current:
                    self._convert_segment(spools, plan, current, checkpoint)
                current = _segment(unit)
                result = self._call(history, plan, unit, {ps: zones[ps] for ps in unit.batch}, progress)
                written = 0
                for ps, rows in result.rows.items():
                    for ts, values in rows:
                        written += spools.write(labels[ps], ts, values)
                new = result.illegal - illegal
                if new:
                    log.warning("account %s: the API does not know plants %s (illegal_ps_id_list): no history for "
                                "them", self.account.name, ", ".join(sorted(new)))
                    illegal |= new
                spools.flush()
                state.done = unit.index + 1
                state.samples += written
                progress.advance(unit.day, written)
                if time.monotonic() - saved_at >= self.backfill.save_every:
                    checkpoint()
                    saved_at = time.monotonic()
            if segments and current not in (None, state.converted):
                self._convert_segment(spools, plan, current, checkpoint)
        finally:
            checkpoint()
            spools.close()
            progress.close()
        summary.samples = state.samples
        summary.calls = dict(state.calls)
        summary.illegal = sorted(illegal)
        return summary

    def _convert_segment(self, spools: Spools, plan: Plan, segment: str, checkpoint: Callable[[], None]) -> None:
        """--tsdb-dir: the segment's samples (a local day of minute data, or a 100-day chunk of daily data) into
        blocks now, so that promtool reads a short file once per block range instead of the whole run's file
        once per block range, and the disk never holds more than a day of spools. A crash before the
        checkpoint notes the segment converts it again: identical samples, which Prometheus keeps once."""
        o = self.options
        assert o.tsdb_dir is not None
        spools.sync()
        segment_file = self.dir / f"segment-{segment}.om"
        if assemble(segment_file, plan.quantities, [self.dir]) > len(EOF):  # a day without samples: no blocks
            run_promtool(self.backfill.promtool, segment_file, o.tsdb_dir,
                         o.max_block_duration or default_block_duration(o.resolution))
        self.state.converted = segment
        self.state.sizes = {}
        spools.remove()
        segment_file.unlink()
        checkpoint()

    def _call(self, history: HistoryApi, plan: Plan, unit: Unit, zones: Mapping[str, timezone],
              progress: Progress | None) -> HistoryResult:
        if plan.minute_interval is None:
            return self._retrying(lambda: history.daily(zones, unit.quantities, unit.start.date(), unit.end.date()),
                                  _unit_text(unit), progress)
        interval = plan.minute_interval
        return self._retrying(lambda: history.minute(zones, unit.quantities, unit.start, unit.end, interval),
                              _unit_text(unit), progress)

    def _retrying(self, action: Callable[[], T], what: str, progress: Progress | None) -> T:
        """`action` (one API call), waiting out quota and rate limits and retrying passing failures; a stop
        raises BackfillError, with everything done so far saved."""
        failures = rate_limited = quota_hours = 0
        checkpoint = self.options.checkpoint
        note = progress.note if progress is not None else log.info
        while True:
            try:
                return action()
            except QuotaError as exc:
                if exc.result == "E998":
                    raise BackfillError(f"account {self.account.name}: the app's monthly API quota is used up "
                                        f"(E998); the run is saved in {checkpoint}: run the same command again "
                                        "once the quota is renewed", 3) from None
                if exc.result == "E999":
                    quota_hours += 1
                    if quota_hours > MAX_E999_IN_A_ROW:
                        raise BackfillError(f"account {self.account.name}: the hourly API quota (E999) ran out "
                                            f"{MAX_E999_IN_A_ROW} hours in a row before a single call: the app's "
                                            "quota is smaller than the budget assumed; lower api_budget_per_hour "
                                            "or --budget-per-hour, then run the same command again to continue",
                                            3) from None
                    note(f"hourly API quota used up (E999) at {what}: waiting for the next clock hour")
                    self.pacer.wait_next_hour(self.backfill.clock(), "hourly API quota used up (E999)")
                    continue
                if rate_limited >= len(RATE_DELAYS):
                    raise BackfillError(f"{exc}: the gateway keeps refusing calls; the run is saved in "
                                        f"{checkpoint}: run the same command again later to continue", 3) from None
                delay = RATE_DELAYS[rate_limited]
                rate_limited += 1
                note(f"{exc}: waiting {delay:.0f} s")
                self.backfill.sleep(delay)
            except (CredentialError, TokenError) as exc:
                raise BackfillError(f"account {self.account.name}: {exc}: fix the credentials (or re-authorise with "
                                    "`isolarcloud-exporter authorize`), then run the same command again to "
                                    "continue", 1) from None
            except ApiError as exc:
                if failures >= len(RETRY_DELAYS):
                    raise BackfillError(f"account {self.account.name}, {what}: {exc} ({failures + 1} "
                                        f"attempts); the run is saved in {checkpoint}: run the same command again "
                                        "to continue", 3) from None
                delay = RETRY_DELAYS[failures]
                failures += 1
                note(f"{what}: {exc}: trying again in {delay:.0f} s")
                self.backfill.sleep(delay)


def _segment(unit: Unit) -> str:
    """The segment a call's samples belong to: its local day (minute data) or its first day (daily data)."""
    return unit.start.date().isoformat()


def default_block_duration(resolution: str) -> str:
    """promtool reads its input once per block range: a day of minute data in blocks of up to a day (promtool
    picks 18 h) is read twice; a 100-day chunk of daily samples in blocks of up to ~20 days five times."""
    return "486h" if RESOLUTIONS[resolution] is None else "24h"


def run_promtool(promtool: str, source: Path, blocks: Path, max_block_duration: str) -> None:
    blocks.mkdir(parents=True, exist_ok=True)
    command = [promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
               f"--max-block-duration={max_block_duration}", str(source), str(blocks)]
    log.debug("creating blocks: %s", " ".join(command))
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BackfillError(f"cannot run {promtool}: {exc.strerror} (--tsdb-dir needs promtool on the PATH; "
                            "--output writes the OpenMetrics file alone)", 1) from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise BackfillError(f"promtool failed on {source} ({lines[-1] if lines else f'exit {done.returncode}'}); "
                            "run the same command again to retry", 1)


def _unit_text(unit: Unit) -> str:
    return (f"call {unit.index + 1} ({unit.start:%Y-%m-%d %H:%M:%S} to {unit.end:%Y-%m-%d %H:%M:%S}, "
            f"{len(unit.batch)} plants from {unit.batch[0]})")


class Backfill:
    """A whole run: every account's fetch, then one OpenMetrics file, then (with --tsdb-dir) the blocks."""

    def __init__(self, options: Options, *, pacers: Callable[[AccountConfig], Pacer],
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 gateway: Callable[[Recorder], Gateway] | None = None, stream: TextIO | None = None,
                 promtool: str = "promtool", save_every: float = SAVE_EVERY) -> None:
        self.options = options
        self.pacers = pacers
        self.clock = clock
        self.sleep = sleep
        self.gateway = gateway
        self.stream = stream
        self.promtool = promtool
        self.save_every = save_every

    def _checkpoint(self) -> Checkpoint | None:
        try:
            checkpoint = Checkpoint.load(self.options.checkpoint)
        except CheckpointError as exc:
            raise bad_input(str(exc)) from None
        if checkpoint is None:
            return None
        wanted, saved = self.options.identity(), dict(checkpoint.run)
        differing = sorted(k for k in set(wanted) | set(saved) if wanted.get(k) != saved.get(k))
        if differing:
            raise bad_input(f"--checkpoint.file {self.options.checkpoint}: belongs to another run (it differs in "
                            f"{', '.join(differing)}); remove it to start afresh, or name another checkpoint file")
        return checkpoint

    def run(self) -> Summary:
        o = self.options
        for account in o.accounts:
            if account.auth.mode != "oauth2":
                raise bad_input(f"--account {account.name}: the history endpoints are OAuth2 platform endpoints; a "
                                "login (legacy) app cannot backfill")
        checkpoint = self._checkpoint()
        summary = Summary(output=o.output)
        if checkpoint is not None and checkpoint.phase != "fetch":
            summary.already_complete = True
            summary.accounts = [AccountSummary(name, samples=s.samples, calls=s.calls)
                                for name, s in checkpoint.accounts.items()]
            return summary
        checkpoint = checkpoint or Checkpoint(run=o.identity())

        def save() -> None:
            checkpoint.save(o.checkpoint)

        for account in o.accounts:
            run = AccountRun(self, account, self.pacers(account), checkpoint.account(account.name))
            try:
                summary.accounts.append(run.fetch(save))
            finally:
                run.close()
        if o.tsdb_dir is None:
            quantities = Plan((), o.first, o.first, o.resolution).quantities
            assemble(o.output, quantities, [o.work_dir / a.name for a in o.accounts])
            summary.size = o.output.stat().st_size
        else:
            summary.blocks = o.tsdb_dir
        checkpoint.phase = "written" if o.tsdb_dir is None else "converted"
        save()
        shutil.rmtree(o.work_dir, ignore_errors=True)
        return summary


# -- the dry run ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    account: str
    plants: int
    first: date
    last: date
    calls: dict[str, int]  # endpoint → calls
    per_hour: float
    done: int = 0  # calls of the plan already done (a resumed run)
    exact: bool = True  # False: the plants' zones are unknown and the last day may be one too late

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def hours(self) -> float:
        return self.total / self.per_hour if self.per_hour > 0 else float("inf")


def estimate(options: Options, account: AccountConfig, pacer: Pacer, reading: ExporterReading | None,
             now: float) -> Estimate:
    """What a run would cost the account, without a single call: the plants from --plants, a resumable
    checkpoint's plant list, or the running exporter's isolarcloud_plants."""
    try:
        checkpoint = Checkpoint.load(options.checkpoint)
    except CheckpointError as exc:
        raise bad_input(str(exc)) from None
    state = checkpoint.accounts.get(account.name) if checkpoint and checkpoint.phase == "fetch" else None
    plants_file = options.work_dir / account.name / "plants.json"
    saved = load_plants(plants_file) if state is not None and state.last and plants_file.exists() else None
    if options.plants is not None:
        count = options.plants
    elif saved is not None:
        count = len(saved)
    elif reading is not None and reading.plants is not None:
        count = reading.plants
    else:
        raise bad_input("--dry-run: the plant count is unknown without a call: pass --plants N, or run it beside "
                        "the exporter (--exporter.url)")
    exact = True
    if state is not None and state.last:
        last = date.fromisoformat(state.last)
    else:
        if saved:
            zones = list(plant_zones(saved, account.api_time_zone)[0].values())
        else:
            known = [zone_offset(account.api_time_zone, z) for z in (reading.zones if reading else ())]
            zones = [z for z in known if z is not None]
        if not zones:
            # Without the plants' zones the last day is not known to the day: assume the zone furthest ahead,
            # whose last day is the latest, so that the estimate is never short.
            zones, exact = [timezone(timedelta(hours=14))], False
        last = last_complete_day(now, zones)
        if options.last is not None:
            exact = exact or options.last <= last_complete_day(now, [timezone(timedelta(hours=-12))])
            last = min(options.last, last)
    plan = Plan(tuple(str(i) for i in range(count)), options.first, last, options.resolution)
    done = state.done if state is not None else 0
    calls: dict[str, int] = {}
    if saved is None:
        calls["queryPowerStationList"] = plant_list_api(cast(ApiSession, None), account).calls(count)
    calls[plan.path.rsplit("/", 1)[-1]] = max(0, len(plan) - done)
    return Estimate(account.name, count, options.first, last, calls, pacer.per_hour(), done, exact)


def describe(estimates: Sequence[Estimate], resolution: str) -> str:
    """The dry run's report: the calls per endpoint and the time at the budget, per account."""
    lines = []
    kind = "daily peaks" if RESOLUTIONS[resolution] is None else f"{resolution} values"
    for e in estimates:
        days = (e.last - e.first).days + 1
        lines.append(f"account {e.account}: {e.plants} plants, {e.first} to {e.last} ({days} days of {kind})"
                     + (f", {e.done} calls already done" if e.done else "")
                     + ("" if e.exact else " (at most: the plants' time zones are unknown, the last day may be "
                        "one earlier)"))
        for endpoint, calls in e.calls.items():
            lines.append(f"  {endpoint:<42} {calls:>9,} call{'' if calls == 1 else 's'}")
        hours = e.hours
        at = f"{e.per_hour:,.0f} calls/hour" if e.per_hour > 0 else "no calls left in the budget"
        lines.append(f"  {'total':<42} {e.total:>9,} calls, about {hours:,.1f} h at {at}"
                     if hours != float("inf") else f"  {'total':<42} {e.total:>9,} calls; {at}")
    return "\n".join(lines)
