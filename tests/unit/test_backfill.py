"""`isolarcloud-exporter backfill` as a specification, against an in-memory cloud (tests/fakes.py): the calls are
the arithmetic exactly; the OpenMetrics file has the live exporter's names, labels and types, seconds, `# EOF`,
families together and every series in time order; gaps stay gaps; the range ends 3 hours before now and never
touches the current day; an interrupted run resumes to the same bytes; E999 waits for the next hour, E998 and
bad credentials stop resumably; the budget holds per clock hour, also beside an exporter; a dry run makes no call.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.backfill.cli import backfill, backfill_parser
from exporter.backfill.pacing import ExporterReading, Pacer, parse_exporter_metrics
from exporter.backfill.plan import Plan, last_complete_day
from exporter.fetch.history import DAILY_QUANTITIES, POINT_QUANTITIES, daily_calls, minute_calls
from exporter.serve.metrics import QUANTITY_FAMILIES
from tests.fakes import FakeGateway, fail, ok, plant_row

MINUTE = "getPowerStationPointMinuteDataList"
DAILY = "getPowerStationPointDayMonthYearDataList"
LIST = "queryPowerStationList"
NOW = datetime(2024, 3, 10, 12, 0, tzinfo=timezone.utc).timestamp()
UTC8 = timezone(timedelta(hours=8))


class Interrupt(BaseException):
    """Stands for Ctrl-C or a crash in the middle of a call."""


def local_value(ps_id: str, point: str, stamp: str) -> float:
    """A deterministic value of a point at a local stamp: the same whichever run asks."""
    minutes = int(stamp[8:10]) * 60 + int(stamp[10:12])
    day = int(stamp[6:8])
    return float(int(ps_id) % 97 * 10 + int(point[-3:]) + day * 1000 + minutes)


class Cloud:
    """The history endpoints over a small fleet: every plant reports every point except 83252 (no battery), and
    plant 1001 has no rows at all between 10:00 and 11:00 local (a logger outage: a gap)."""

    def __init__(self, plants: int = 3, zone: str = "GMT+8") -> None:
        self.rows = [plant_row(1000 + i, ps_current_time_zone=zone) for i in range(1, plants + 1)]
        self.gateway = FakeGateway({LIST: self.plant_list, MINUTE: self.minute, DAILY: self.daily})
        self.interrupt_at: int | None = None
        self.errors: dict[int, dict[str, Any]] = {}  # history call number → an error answer instead
        self.history_calls = 0
        self.clock: Callable[[], float] | None = None
        self.call_times: list[float] = []

    def plant_list(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.clock:
            self.call_times.append(self.clock())
        page, size = int(body["page"]), int(body["size"])
        return ok({"pageList": self.rows[(page - 1) * size:page * size], "rowCount": len(self.rows)})

    def _history(self) -> dict[str, Any] | None:
        self.history_calls += 1
        if self.clock:
            self.call_times.append(self.clock())
        if self.interrupt_at is not None and self.history_calls == self.interrupt_at:
            raise Interrupt
        return self.errors.pop(self.history_calls, None)

    def minute(self, body: dict[str, Any]) -> dict[str, Any]:
        error = self._history()
        if error:
            return error
        start = datetime.strptime(body["start_time_stamp"], "%Y%m%d%H%M%S")
        end = datetime.strptime(body["end_time_stamp"], "%Y%m%d%H%M%S")
        assert end - start < timedelta(hours=3) and len(body["ps_id_list"]) <= 50
        step = timedelta(minutes=int(body["minute_interval"]))
        points = body["points"].split(",")
        data: dict[str, Any] = {}
        midnight = datetime.combine(start.date(), datetime.min.time())
        first = midnight + -((midnight - start) // step) * step  # the first grid stamp at or after start
        for ps in body["ps_id_list"]:
            rows = []
            t = first
            while t <= end:
                stamp = t.strftime("%Y%m%d%H%M%S")
                if not (ps == "1001" and 10 <= t.hour < 11):
                    rows.append({"time_stamp": stamp, **{p: str(local_value(ps, p, stamp)) for p in points
                                                         if p != "p83252"}})
                t += step
            data[ps] = rows
        return ok(data)

    def daily(self, body: dict[str, Any]) -> dict[str, Any]:
        error = self._history()
        if error:
            return error
        first = datetime.strptime(body["start_time"], "%Y%m%d").date()
        last = datetime.strptime(body["end_time"], "%Y%m%d").date()
        assert (last - first).days < 100 and body["data_type"] == "2" and body["query_type"] == "day"
        data: dict[str, Any] = {}
        for ps in body["ps_id_list"]:
            data[ps] = {p: [{"2": local_value(ps, p, (first + timedelta(days=d)).strftime("%Y%m%d") + "235500"),
                             "time_stamp": (first + timedelta(days=d)).strftime("%Y%m%d")}
                            for d in range((last - first).days + 1)] for p in body["data_point"].split(",")}
        return ok(data)


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def write_config(tmp_path: Path, **account: Any) -> Path:
    path = tmp_path / "config.yaml"
    accounts = [{"name": "home", "base_url": "http://127.0.0.1:9", **account,
                 "auth": {"mode": "oauth2", "appkey": "APPKEY", "secret_key": "SECRET", "access_token": "ACCESS",
                          "refresh_token": "REFRESH"}},
                {"name": "legacy", "base_url": "http://127.0.0.1:9",
                 "auth": {"mode": "login", "appkey": "APPKEY", "secret_key": "SECRET", "user_account": "u",
                          "user_password": "p"}}]
    path.write_text(yaml.safe_dump({"accounts": accounts}))
    path.chmod(0o600)
    return path


def run(tmp_path: Path, cloud: Cloud, *flags: str, clock: FakeClock | None = None, config: Path | None = None,
        output: str | None = "out.om") -> int:
    clock = clock or FakeClock()
    cloud.clock = clock
    target = ["--output", str(tmp_path / output)] if output else []
    args = backfill_parser().parse_args(["--config.file", str(config or write_config(tmp_path)), "--account", "home",
                                         *target, *flags])
    return backfill(args, clock=clock, sleep=clock.sleep, gateway=lambda record: cloud.gateway.attach(record))


SAMPLE = re.compile(r'^([a-z_]+)\{(.*)\} (\S+) (\d+)$')


def parse(text: str) -> tuple[list[str], dict[tuple[str, str], list[tuple[int, float]]]]:
    """Families in order of their TYPE lines, and every series' samples in file order."""
    families: list[str] = []
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    lines = text.splitlines()
    assert lines[-1] == "# EOF" and text.endswith("# EOF\n")
    for line in lines[:-1]:
        if line.startswith("# TYPE "):
            families.append(line.split()[2])
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.match(line)
        assert match, line
        series.setdefault((match.group(1), match.group(2)), []).append((int(match.group(4)), float(match.group(3))))
    return families, series


def test_the_output_is_the_live_exporters_series_in_openmetrics(tmp_path: Path) -> None:
    cloud = Cloud(plants=3)
    assert run(tmp_path, cloud, "--from", "2024-03-05", "--to", "2024-03-05", "--resolution", "1h",
               "--budget-per-hour", "1000", "--label", "instance=exporter:10027") == 0
    text = (tmp_path / "out.om").read_text()
    families, series = parse(text)
    # Every minute quantity but the battery's state of charge (the cloud has none): no family without samples.
    expected = [QUANTITY_FAMILIES[q.key].name for q in POINT_QUANTITIES if q.point_id != "83252"]
    assert families == expected
    for q in POINT_QUANTITIES:
        family = QUANTITY_FAMILIES[q.key]
        if q.point_id != "83252":
            assert f"# TYPE {family.name} {'counter' if q.counter else 'gauge'}\n" in text
    # Families are contiguous: each TYPE line once, and every sample line follows its own family's TYPE.
    current = None
    for line in text.splitlines()[:-1]:
        if line.startswith("# TYPE "):
            current = line.split()[2]
        elif not line.startswith("#"):
            name = line.split("{")[0]
            assert name in (current, f"{current}_total"), line
    power = {labels: rows for (name, labels), rows in series.items() if name == "isolarcloud_plant_power_watts"}
    assert len(power) == 3
    labels = next(iter(sorted(power)))
    assert labels == ('account="home",instance="exporter:10027",job="isolarcloud",ps_id="1001",'
                      'ps_name="Plant 1001",ps_type="residential_pv"')
    # Hourly values of local day 2024-03-05 at UTC+8, in seconds; 10:00 local is missing (the gap stays a gap).
    day_start = datetime(2024, 3, 5, tzinfo=UTC8).timestamp()
    assert [ts for ts, _ in power[labels]] == [int(day_start + h * 3600) for h in range(24) if h != 10]
    assert power[labels][9][1] == local_value("1001", "p83033", "20240305090000")
    # Energy in joules, lifetime energy as a counter under the live sample name.
    lifetime = series[("isolarcloud_plant_energy_joules_total", labels)]
    assert lifetime[0][1] == local_value("1001", "p83024", "20240305000000") * 3600
    assert not any(name == "isolarcloud_plant_battery_soc_ratio" for name, _ in series)
    for rows in series.values():
        stamps = [t for t, _ in rows]
        assert stamps == sorted(set(stamps))  # every series strictly in time order


def test_calls_are_the_arithmetic_exactly(tmp_path: Path) -> None:
    cloud = Cloud(plants=120)  # three batches: 50, 50, 20
    assert run(tmp_path, cloud, "--from", "2024-03-01", "--to", "2024-03-02", "--resolution", "1h",
               "--budget-per-hour", "100000") == 0
    assert cloud.gateway.count(MINUTE) == minute_calls(120, 2) == 2 * 8 * 3
    assert cloud.gateway.count(LIST) == 2  # page size 100
    assert cloud.gateway.count(DAILY) == 0


def test_daily_resolution_writes_day_totals_at_the_end_of_each_local_day(tmp_path: Path) -> None:
    cloud = Cloud(plants=2)
    assert run(tmp_path, cloud, "--from", "2023-06-01", "--to", "2024-02-29", "--resolution", "1d",
               "--budget-per-hour", "1000") == 0
    days = (date(2024, 2, 29) - date(2023, 6, 1)).days + 1
    assert cloud.gateway.count(DAILY) == daily_calls(2, days) == 3
    families, series = parse((tmp_path / "out.om").read_text())
    assert families == [QUANTITY_FAMILIES[q.key].name for q in DAILY_QUANTITIES]
    rows = next(r for (name, labels), r in series.items()
                if name == "isolarcloud_plant_energy_today_joules" and 'ps_id="1001"' in labels)
    assert len(rows) == days
    assert rows[0] == (int(datetime(2023, 6, 1, 23, 59, 59, tzinfo=UTC8).timestamp()),
                       local_value("1001", "p83022", "20230601235500") * 3600)


def test_the_range_ends_three_hours_before_now_and_never_touches_the_current_day(tmp_path: Path) -> None:
    # 01:30 UTC on 10 March = 09:30 at UTC+8: the last day is 9 March local, ending 16:00 UTC on 9 March.
    clock = FakeClock(datetime(2024, 3, 10, 1, 30, tzinfo=timezone.utc).timestamp())
    cloud = Cloud(plants=1)
    assert run(tmp_path, cloud, "--from", "2024-03-08", "--resolution", "1h", "--budget-per-hour", "1000",
               clock=clock) == 0
    asked = {body["end_time_stamp"][:8] for name, body, _ in cloud.gateway.calls if name == MINUTE}
    assert asked == {"20240308", "20240309"}
    _families, series = parse((tmp_path / "out.om").read_text())
    newest = max(ts for rows in series.values() for ts, _ in rows)
    assert newest <= clock() - 3 * 3600
    # Plants at UTC: 01:30 UTC less 3 hours is 22:30 on 9 March: the last complete day is 8 March.
    assert last_complete_day(clock(), [timezone.utc]) == date(2024, 3, 8)
    assert last_complete_day(clock(), [timezone.utc, UTC8]) == date(2024, 3, 8)


def test_a_to_date_beyond_the_last_complete_day_is_clamped_and_from_after_it_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cloud = Cloud(plants=1)
    assert run(tmp_path, cloud, "--from", "2024-03-10", "--budget-per-hour", "1000") == 2
    assert "after the last day with history (2024-03-09)" in capsys.readouterr().err
    assert cloud.gateway.count(MINUTE) == 0


def test_an_interrupted_run_resumes_to_the_same_bytes(tmp_path: Path) -> None:
    flags = ("--from", "2024-03-04", "--to", "2024-03-05", "--resolution", "1h", "--budget-per-hour", "1000")
    (tmp_path / "a").mkdir()
    whole = Cloud(plants=60)
    assert run(tmp_path / "a", whole, *flags) == 0
    expected = (tmp_path / "a" / "out.om").read_bytes()

    (tmp_path / "b").mkdir()
    cloud = Cloud(plants=60)
    cloud.interrupt_at = 13
    with pytest.raises(Interrupt):
        run(tmp_path / "b", cloud, *flags)
    assert not (tmp_path / "b" / "out.om").exists()
    checkpoint = tmp_path / "b" / "out.om.checkpoint"
    assert checkpoint.exists()
    # A crash after lines were written but before the checkpoint: the resumed run must drop them.
    spool = tmp_path / "b" / "out.om.checkpoint.d" / "home" / "power_watts.part"
    with open(spool, "ab") as handle:
        handle.write(b'isolarcloud_plant_power_watts{ps_id="half-written"} 1 1\n')
    cloud.interrupt_at = None
    assert run(tmp_path / "b", cloud, *flags) == 0
    assert (tmp_path / "b" / "out.om").read_bytes() == expected
    # Call 13 was interrupted and made again; nothing else was repeated, the plant list not at all.
    assert cloud.history_calls == whole.history_calls + 1
    assert cloud.gateway.count(LIST) == 1
    assert not (tmp_path / "b" / "out.om.checkpoint.d").exists()


def test_a_finished_run_is_not_repeated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cloud = Cloud(plants=1)
    flags = ("--from", "2024-03-05", "--to", "2024-03-05", "--resolution", "1h", "--budget-per-hour", "1000")
    assert run(tmp_path, cloud, *flags) == 0
    calls = len(cloud.gateway.calls)
    assert run(tmp_path, cloud, *flags) == 0
    assert len(cloud.gateway.calls) == calls
    assert "already complete" in capsys.readouterr().out


def test_a_checkpoint_of_another_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cloud = Cloud(plants=1)
    cloud.interrupt_at = 2
    with pytest.raises(Interrupt):
        run(tmp_path, cloud, "--from", "2024-03-05", "--to", "2024-03-05", "--budget-per-hour", "1000")
    capsys.readouterr()
    assert run(tmp_path, cloud, "--from", "2024-03-04", "--to", "2024-03-05", "--budget-per-hour", "1000") == 2
    err = capsys.readouterr().err.strip()
    assert "belongs to another run (it differs in from)" in err and len(err.splitlines()) == 1


def test_e999_waits_for_the_next_clock_hour_and_goes_on(tmp_path: Path) -> None:
    cloud = Cloud(plants=1)
    cloud.errors[3] = fail("E999", "er_hour_call_api_times_upper_limit")
    clock = FakeClock()
    assert run(tmp_path, cloud, "--from", "2024-03-05", "--to", "2024-03-05", "--budget-per-hour", "1000",
               clock=clock) == 0
    assert clock.slept == [3600 - NOW % 3600 + 1]
    assert cloud.history_calls == 8 + 1
    _families, series = parse((tmp_path / "out.om").read_text())
    power = next(r for (name, _labels), r in series.items() if name == "isolarcloud_plant_power_watts")
    assert len(power) == 24 * 12 - 12  # the whole day at 5 minutes, less the hour without data


def test_e998_stops_resumably(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cloud = Cloud(plants=1)
    cloud.errors[4] = fail("E998", "er_month_call_api_times_upper_limit")
    flags = ("--from", "2024-03-05", "--to", "2024-03-05", "--resolution", "1h", "--budget-per-hour", "1000")
    assert run(tmp_path, cloud, *flags) == 3
    err = capsys.readouterr().err
    assert "monthly API quota is used up (E998)" in err and "run the same command again" in err
    assert run(tmp_path, cloud, *flags) == 0
    assert cloud.history_calls == 8 + 1


def test_rejected_credentials_stop_for_a_human(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cloud = Cloud(plants=1)
    cloud.errors[1] = fail("E912", "Illegal x-access-key")
    assert run(tmp_path, cloud, "--from", "2024-03-05", "--to", "2024-03-05", "--budget-per-hour", "1000") == 1
    err = capsys.readouterr().err
    assert "credentials rejected" in err and "SECRET" not in err and "ACCESS" not in err


def test_passing_failures_are_retried_and_lasting_ones_stop_resumably(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cloud = Cloud(plants=1)
    cloud.errors[2] = fail("-1", "error")
    clock = FakeClock()
    flags = ("--from", "2024-03-05", "--to", "2024-03-05", "--resolution", "1h", "--budget-per-hour", "1000")
    assert run(tmp_path, cloud, *flags, clock=clock) == 0
    assert clock.slept == [30.0]
    cloud2 = Cloud(plants=1)
    cloud2.errors.update({n: fail("-1", "error") for n in range(2, 6)})
    (tmp_path / "again").mkdir()
    assert run(tmp_path / "again", cloud2, *flags) == 3
    assert "(4 attempts)" in capsys.readouterr().err


def test_the_budget_holds_in_every_clock_hour(tmp_path: Path) -> None:
    cloud = Cloud(plants=1)
    clock = FakeClock()
    assert run(tmp_path, cloud, "--from", "2024-03-04", "--to", "2024-03-05", "--budget-per-hour", "5",
               clock=clock) == 0
    per_hour = Counter(int(t // 3600) for t in cloud.call_times)
    assert sum(per_hour.values()) == 1 + 16
    assert max(per_hour.values()) <= 5
    assert len(clock.slept) == 3


def test_beside_an_exporter_the_two_stay_within_the_accounts_budget() -> None:
    clock = FakeClock(3600 * 1000.0)  # the top of a clock hour
    reading = ExporterReading(budget=100, used=10, planned=40, plants=3)
    reads: list[float] = []

    def exporter() -> ExporterReading:
        reads.append(clock())
        return reading

    pacer = Pacer(budget_per_hour=None, exporter=exporter, clock=clock, sleep=clock.sleep)
    # 100 - 10 used - 40 planned for the whole hour - 2 reserve = 48 calls this hour.
    assert pacer.allowance(clock()) == 48
    for _ in range(48):
        pacer.acquire()
        pacer.count()
    assert clock.slept == []
    pacer.acquire()  # the 49th waits for the next hour, where the exporter is read again
    assert clock.slept == [3601.0] and len(reads) == 2
    assert pacer.per_hour() == 100 - 40 - 2
    capped = Pacer(budget_per_hour=20, exporter=exporter, clock=clock, sleep=clock.sleep)
    assert capped.per_hour() == 20


def test_the_exporters_figures_are_read_from_its_metrics() -> None:
    body = """# HELP isolarcloud_api_budget_calls_per_hour Configured hourly API call budget.
# TYPE isolarcloud_api_budget_calls_per_hour gauge
isolarcloud_api_budget_calls_per_hour{account="home"} 1000.0
isolarcloud_api_budget_calls_per_hour{account="other"} 50.0
isolarcloud_api_calls_current_hour{account="home"} 17.0
isolarcloud_plants{account="home"} 120.0
isolarcloud_collection_budget_calls_per_hour{account="home",collection="plants"} 24.0
isolarcloud_collection_budget_calls_per_hour{account="home",collection="realtime"} 36.0
isolarcloud_collection_budget_calls_per_hour{account="other",collection="plants"} 99.0
isolarcloud_plant_power_watts{account="home",ps_id="1"} 5.0
isolarcloud_plant_info{account="home",connect_type="",location="x",ps_id="1",time_zone="GMT+8"} 1.0
isolarcloud_plant_info{account="home",connect_type="",location="y",ps_id="2",time_zone="GMT-2"} 1.0
isolarcloud_plant_info{account="home",connect_type="",location="z",ps_id="3",time_zone="GMT+8"} 1.0
"""
    assert parse_exporter_metrics(body.splitlines(), "home") == ExporterReading(1000, 17, 60, 120,
                                                                                ("GMT+8", "GMT-2"))
    with pytest.raises(Exception, match="no account named 'nope'"):
        parse_exporter_metrics(body.splitlines(), "nope")


def test_a_dry_run_makes_no_call_and_tells_the_arithmetic(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    cloud = Cloud(plants=1)
    assert run(tmp_path, cloud, "--from", "2023-01-01", "--to", "2023-12-31", "--resolution", "15m",
               "--budget-per-hour", "1000", "--dry-run", "--plants", "100") == 0
    out = capsys.readouterr().out
    assert cloud.gateway.calls == []
    assert "100 plants, 2023-01-01 to 2023-12-31 (365 days of 15m values)" in out
    assert re.search(r"getPowerStationPointMinuteDataList\s+5,840 calls", out)
    assert re.search(r"queryPowerStationList\s+1 call$", out, re.M)
    assert "5,841 calls, about 5.8 h at 1,000 calls/hour" in out
    assert run(tmp_path, cloud, "--from", "2023-01-01", "--to", "2023-12-31", "--budget-per-hour", "1000",
               "--dry-run") == 2
    assert "pass --plants N" in capsys.readouterr().err


def test_plan_length_is_the_arithmetic_and_units_cover_it_once() -> None:
    for resolution, first, last, plants in (("5m", date(2024, 1, 1), date(2024, 1, 3), 101),
                                            ("1d", date(2023, 1, 1), date(2024, 6, 30), 51)):
        plan = Plan(tuple(str(i) for i in range(plants)), first, last, resolution)
        units = list(plan.units())
        assert len(units) == len(plan) and [u.index for u in units] == list(range(len(plan)))
        assert [u.index for u in plan.units(skip=5)] == list(range(5, len(plan)))
        assert sorted({ps for u in units for ps in u.batch}) == sorted(str(i) for i in range(plants))


@pytest.mark.parametrize(("flags", "message"), [
    (["--from", "2024-02-30"], "--from: expected a date YYYY-MM-DD, got '2024-02-30'"),
    (["--from", "2024-03-05", "--to", "2024-03-01"], "--to 2024-03-01: before --from 2024-03-05"),
    (["--from", "2024-03-05", "--label", "ps_id=1"], "--label ps_id: set by the backfill itself"),
    (["--from", "2024-03-05", "--label", "bad-name=1"], "--label: expected NAME=VALUE"),
    (["--from", "2024-03-05", "--budget-per-hour", "0"], "--budget-per-hour: expected a positive number"),
    (["--from", "2024-03-05", "--account", "nope"], "--account: no account named 'nope'"),
    (["--from", "2024-03-05", "--account", "legacy", "--budget-per-hour", "10"],
     "--account legacy: the history endpoints are OAuth2 platform endpoints"),
    (["--from", "2024-03-05", "--exporter.url", "http://127.0.0.1:9"], "cannot read the exporter's metrics at "
                                                                         "http://127.0.0.1:9/metrics"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               flags: list[str], message: str) -> None:
    config = write_config(tmp_path)
    args = backfill_parser().parse_args(["--config.file", str(config), "--output", str(tmp_path / "o.om"), *flags])
    cloud = Cloud(plants=1)
    clock = FakeClock()
    assert backfill(args, clock=clock, sleep=clock.sleep, gateway=lambda record: cloud.gateway.attach(record)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert cloud.gateway.calls == []


def test_plants_whose_zone_cannot_be_read_are_left_out_unless_a_fixed_zone_is_set(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cloud = Cloud(plants=2, zone="somewhere")
    assert run(tmp_path, cloud, "--from", "2024-03-05", "--to", "2024-03-05", "--budget-per-hour", "1000") == 0
    assert cloud.gateway.count(MINUTE) == 0  # no plant left: nothing to ask
    assert (tmp_path / "out.om").read_text() == "# EOF\n"
    assert "2 plants without a usable time zone left out" in capsys.readouterr().out
    config = write_config(tmp_path, api_time_zone="+08:00")
    cloud = Cloud(plants=2, zone="somewhere")
    (tmp_path / "out.om.checkpoint").unlink()
    assert run(tmp_path, cloud, "--from", "2024-03-05", "--to", "2024-03-05", "--budget-per-hour", "1000",
               config=config) == 0
    _families, series = parse((tmp_path / "out.om").read_text())
    first = min(ts for rows in series.values() for ts, _ in rows)
    assert first == int(datetime(2024, 3, 5, tzinfo=UTC8).timestamp())


class FakeTty:
    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def test_on_a_terminal_the_progress_bar_is_tqdms_and_without_it_log_lines(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """tqdm is an optional dependency (the `progress` extra), absent from the test environment: a stand-in with
    its interface shows what the backfill asks of it; without it, a terminal gets log lines."""
    import sys
    import types

    from exporter.backfill.progress import Progress

    made: list[Any] = []

    class Bar:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs, self.updates, self.postfix, self.written, self.closed = kwargs, 0, "", [], False
            made.append(self)

        def update(self, n: int) -> None:
            self.updates += n

        def set_postfix_str(self, text: str, refresh: bool = True) -> None:
            self.postfix = text

        def write(self, text: str) -> None:
            self.written.append(text)

        def close(self) -> None:
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=Bar))
    progress = Progress(total=10, done=4, days=3, plants=120, per_hour=100, stream=FakeTty())  # type: ignore[arg-type]
    progress.advance(day=1, samples=500)
    progress.note("waiting for the next clock hour")
    progress.close()
    bar = made[0]
    assert bar.kwargs["total"] == 10 and bar.kwargs["initial"] == 4 and bar.kwargs["unit"] == "call"
    assert bar.updates == 1 and bar.postfix == "day 2/3, 120 plants, 500 samples" and bar.closed
    assert bar.written == ["waiting for the next clock hour"]

    monkeypatch.setitem(sys.modules, "tqdm", None)  # not installed: the import fails
    caplog.set_level("INFO", logger="exporter.backfill")
    plain = Progress(total=10, done=0, days=3, plants=120, per_hour=3600, stream=FakeTty())  # type: ignore[arg-type]
    assert plain.bar is None
    plain.advance(day=0, samples=7)
    assert "backfill progress: 1/10 calls (10%), day 1/3, 120 plants, 7 samples, about 0m09s left" in caplog.text


def test_spool_files_shorter_than_the_checkpoint_says_are_refused(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cloud = Cloud(plants=1)
    cloud.interrupt_at = 3
    flags = ("--from", "2024-03-05", "--to", "2024-03-05", "--budget-per-hour", "1000")
    with pytest.raises(Interrupt):
        run(tmp_path, cloud, *flags)
    spool = tmp_path / "out.om.checkpoint.d" / "home" / "power_watts.part"
    spool.write_bytes(spool.read_bytes()[:10])
    capsys.readouterr()
    assert run(tmp_path, cloud, *flags) == 2
    err = capsys.readouterr().err
    assert "the interrupted run's files are incomplete" in err and "remove" in err
