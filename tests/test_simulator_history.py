"""The simulator's plant history endpoints, over real sockets with plain `requests`.

getPowerStationPointMinuteDataList and getPowerStationPointDayMonthYearDataList, written from the field tables
(isolarcloud-openapi.yaml) and the digest (isolarcloud-api.md §8, minute history); no exporter code is used, so a
misunderstanding on either side shows up as a failing test.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
import requests

from exporter.simulator import POINTS as TABLE
from exporter.simulator import Plant, Simulator

KEY = "demo-secret-key"
APPKEY = "DEMOAPPKEY00000000000000000000001"
MINUTE = "getPowerStationPointMinuteDataList"
DAILY = "getPowerStationPointDayMonthYearDataList"
TOO_LONG = "the query time interval exceeds the maximum limit"
# The plant points the exporter exports (docs/metrics.md): power, energy today, lifetime, load, consumption,
# grid, feed-in, purchase, battery.
EXPORTED = (83033, 83022, 83024, 83106, 83118, 83124, 83549, 83072, 83075, 83102, 83105, 83252, 83326)
POINTS = ",".join(f"p{p}" for p in EXPORTED)
NOW = float(calendar.timegm((2024, 6, 20, 9, 7, 0)))  # UTC; not on the 5-minute grid


def wall(text: str) -> int:
    """A yyyyMMddHHmmss (or yyyyMMdd) plant-local stamp as seconds, counted as if the wall clock were UTC."""
    return calendar.timegm(time.strptime(text, "%Y%m%d%H%M%S" if len(text) == 14 else "%Y%m%d"))


def fmt(seconds: float, pattern: str = "%Y%m%d%H%M%S") -> str:
    return time.strftime(pattern, time.gmtime(seconds))


def local(plant: Plant, utc: float, pattern: str = "%Y%m%d%H%M%S") -> str:
    return fmt(utc + plant.utc_offset_h * 3600, pattern)


class FakeClock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Client:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.http = requests.Session()
        self.renew()

    def renew(self) -> None:
        """A fresh access token (after the clock moved past the old one's expiry)."""
        self.token = str(self.sim.issue_tokens()["access_token"])

    def call(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(f"{self.sim.url}/openapi/platform/{name}", json={"appkey": APPKEY, **body},
                           headers={"x-access-key": KEY, "Authorization": f"Bearer {self.token}"}, timeout=30)
        assert r.status_code == 200
        return r.json()

    def ok(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        data = self.call(name, body)
        assert data["result_code"] == "1", data
        return dict(data["result_data"])

    def minute(self, ps_ids: list[int] | list[str], start: str, end: str, points: str = POINTS,
               **extra: Any) -> dict[str, Any]:
        return self.ok(MINUTE, {"ps_id_list": [str(i) for i in ps_ids], "points": points, "start_time_stamp": start,
                                "end_time_stamp": end, **extra})

    def rows(self, plant: Plant, start: str, end: str, **extra: Any) -> list[dict[str, Any]]:
        return list(self.minute([plant.ps_id], start, end, **extra).get(str(plant.ps_id), []))

    def day_rows(self, plant: Plant, date: str, **extra: Any) -> list[dict[str, Any]]:
        """A whole plant-local day of rows in 3-hour calls (both window ends count, so rows are de-duplicated)."""
        found: dict[str, dict[str, Any]] = {}
        base = wall(date)
        for k in range(8):
            for row in self.rows(plant, fmt(base + k * 10800), fmt(base + (k + 1) * 10800), **extra):
                assert found.setdefault(row["time_stamp"], row) == row
        return [found[k] for k in sorted(found) if k.startswith(date)]

    def daily(self, ps_ids: list[int] | list[str], points: str, query_type: str, start: str, end: str,
              data_type: str = "2", order: int = 0, **extra: Any) -> dict[str, Any]:
        return self.ok(DAILY, {"ps_id_list": [str(i) for i in ps_ids], "data_point": points, "query_type": query_type,
                               "data_type": data_type, "start_time": start, "end_time": end, "order": order, **extra})

    def realtime(self, plant: Plant, points: tuple[int, ...] = EXPORTED) -> dict[str, Any]:
        """The plant's real-time point values, without the points it has no value for (null or absent): the
        history leaves those out."""
        data = self.ok("getPowerStationRealTimeData", {"ps_id_list": [str(plant.ps_id)],
                                                       "point_id_list": [str(p) for p in points]})
        entry = data["device_point_list"][0]
        return {f"p{p}": entry[f"p{p}"] for p in points if entry.get(f"p{p}") is not None}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[Simulator]:
    with Simulator(plants=12, seed=11, clock=clock, history_gap_rate=0.0) as s:
        yield s


@pytest.fixture
def client(sim: Simulator) -> Client:
    return Client(sim)


def prepare(sim: Simulator, nth: int, offset: float, storage: bool = False, install: str | None = None) -> Plant:
    """The nth residential plant with (or without) a battery, moved to a zone and reporting every exported point
    (the fleet's per-plant quirks otherwise leave a few points empty, deterministically)."""
    plant = [p for p in sim.plants if p.is_storage == storage][nth]
    fields: dict[str, Any] = {"ps_type": 5 if storage else 4, "connect_type": 2, "utc_offset_h": offset}
    if install is not None:
        fields["install_date"] = install
    sim.set_plant(plant.ps_id, **fields)
    key = 0
    while not all(plant.point_quirk(p) is None for p in EXPORTED):
        sim.set_plant(plant.ps_id, quirk_key=key)
        key += 1
    return plant


def num(value: Any) -> float:
    assert isinstance(value, str), value  # recorded answers carry strings
    return float(value)


# -- minute data: shape ---------------------------------------------------------------------------------------


def test_minute_answer_shape(sim: Simulator, client: Client) -> None:
    pv = prepare(sim, 0, 8.0)
    storage = prepare(sim, 1, 8.0, storage=True)
    sim.set_authorized(sim.plants[2].ps_id, False)
    hidden = str(sim.plants[2].ps_id)
    data = client.minute([pv.ps_id, storage.ps_id, "123", hidden, "junk", pv.ps_id], "20240619100000",
                         "20240619130000", points=POINTS + ",p99999,83106", is_get_point_dict="1")
    assert set(data) == {str(pv.ps_id), str(storage.ps_id), "illegal_ps_id_list", "point_dict"}
    assert data["illegal_ps_id_list"] == ["123", hidden, "junk"]
    assert data["point_dict"] == [{"point_id": str(p), "point_name": TABLE[p][0], "point_unit": TABLE[p][1]}
                                  for p in EXPORTED]
    for plant in (pv, storage):
        rows = data[str(plant.ps_id)]
        # Both ends of the window count: 10:00, 10:05, ..., 13:00.
        assert [r["time_stamp"] for r in rows] == [fmt(wall("20240619100000") + 300 * k) for k in range(37)]
        for row in rows:
            expected = {f"p{p}" for p in EXPORTED} if plant is storage else \
                {f"p{p}" for p in EXPORTED if p not in (83252, 83326)}  # no battery, no battery points
            assert set(row) == {"time_stamp"} | expected
            assert all(isinstance(v, str) for v in row.values())
            assert 0.0 <= num(row.get("p83252", "0.5")) <= 1.0  # SOC is a fraction
            float(row["p83033"])
    # Without is_get_point_dict there is no dictionary; bare ids and unknown points are no points at all.
    data = client.minute([pv.ps_id], "20240619100000", "20240619101000", points="83033,p99999,P83033")
    assert data == {"illegal_ps_id_list": []}


def test_minute_intervals_align_to_local_midnight(sim: Simulator, client: Client) -> None:
    plant = prepare(sim, 0, 5.5)
    rows = client.rows(plant, "20240619100700", "20240619130700", minute_interval=15)
    assert [r["time_stamp"][8:12] for r in rows] == [f"{10 + k // 4:02d}{15 * (k % 4):02d}" for k in range(1, 13)]
    rows = client.rows(plant, "20240619100000", "20240619130000", minute_interval="60")
    assert [r["time_stamp"][8:] for r in rows] == ["100000", "110000", "120000", "130000"]
    assert len(client.rows(plant, "20240619100000", "20240619130000", minute_interval="")) == 37  # default 5


def test_minute_options_for_the_unknowns(clock: FakeClock) -> None:
    with Simulator(plants=12, seed=11, clock=clock, history_types="table", history_window="left_open",
                   history_gap_rate=0.0) as sim:
        client = Client(sim)
        plant = prepare(sim, 0, 1.0)
        rows = client.rows(plant, "20240619100000", "20240619130000")
        assert [r["time_stamp"] for r in rows] == [int(fmt(wall("20240619100500") + 300 * k)) for k in range(36)]
        assert all(isinstance(v, float) for r in rows for k, v in r.items() if k != "time_stamp")
        data = client.daily([plant.ps_id], "p83022", "day", "20240617", "20240618")
        assert [r["time_stamp"] for r in data[str(plant.ps_id)]["p83022"]] == [20240617, 20240618]
        assert all(isinstance(r["2"], float) for r in data[str(plant.ps_id)]["p83022"])
    with pytest.raises(ValueError):
        Simulator(history_current_day="today")


# -- minute data: limits and errors ---------------------------------------------------------------------------


def test_minute_limits(sim: Simulator, client: Client) -> None:
    plant = prepare(sim, 0, 8.0)
    ps = [str(plant.ps_id)]
    base = {"ps_id_list": ps, "points": "p83033", "start_time_stamp": "20240619100000",
            "end_time_stamp": "20240619130000"}
    assert client.call(MINUTE, base)["result_code"] == "1"  # exactly 3 hours
    over = client.call(MINUTE, {**base, "end_time_stamp": "20240619130001"})
    assert (over["result_code"], over["result_msg"], over["result_data"]) == ("010", TOO_LONG, None)
    fifty = ps + [str(n) for n in range(49)]
    assert client.ok(MINUTE, {**base, "ps_id_list": fifty})["illegal_ps_id_list"] == fifty[1:]
    assert client.call(MINUTE, {**base, "ps_id_list": [*fifty, "50"]})["result_code"] == "010"
    points = ",".join(["p83033"] + [f"p{90000 + k}" for k in range(49)])
    assert client.call(MINUTE, {**base, "points": points})["result_code"] == "1"
    assert client.call(MINUTE, {**base, "points": points + ",p83022"})["result_code"] == "010"
    for key in ("start_time_stamp", "end_time_stamp", "ps_id_list", "points"):
        got = client.call(MINUTE, {k: v for k, v in base.items() if k != key})
        assert (got["result_code"], got["result_msg"]) == ("009", f"er_missing_parameter:{key}")
    assert client.call(MINUTE, {**base, "ps_id_list": []})["result_code"] == "009"
    for key, bad in (("start_time_stamp", "2024-06-19 10:00:00"), ("start_time_stamp", "202406191000"),
                     ("start_time_stamp", "20240631100000"), ("end_time_stamp", "20240619250000"),
                     ("end_time_stamp", "20240619095959"), ("minute_interval", 7), ("minute_interval", 0),
                     ("minute_interval", "x"), ("minute_interval", 240)):
        got = client.call(MINUTE, {**base, key: bad})
        assert (got["result_code"], got["result_msg"]) == ("010", f"er_parameter_value_invalid:{key}"), (key, bad)
    # Integers are accepted where the table types the parameter integer.
    got = client.call(MINUTE, {**base, "start_time_stamp": 20240619100000, "minute_interval": 10})
    assert got["result_code"] == "1"


def test_no_minute_data_for_the_current_local_day(sim: Simulator, client: Client) -> None:
    east, west = prepare(sim, 0, 10.0), prepare(sim, 1, -3.0)
    # NOW is 19:07 on the 20th in the east, 06:07 on the 20th in the west.
    assert client.minute([east.ps_id], "20240620150000", "20240620180000") == {"illegal_ps_id_list": []}
    assert client.minute([west.ps_id], "20240620010000", "20240620040000") == {"illegal_ps_id_list": []}
    rows = client.rows(east, "20240619220000", "20240620010000")
    assert (rows[0]["time_stamp"], rows[-1]["time_stamp"]) == ("20240619220000", "20240619235500")
    # A future window is no error either: nothing to answer.
    assert client.minute([east.ps_id], "20250101000000", "20250101030000") == {"illegal_ps_id_list": []}


def test_lagged_current_day_option(clock: FakeClock) -> None:
    with Simulator(plants=12, seed=11, clock=clock, history_current_day="lagged", history_gap_rate=0.0) as sim:
        client = Client(sim)
        plant = prepare(sim, 0, 10.0)  # 19:07 local
        now = client.realtime(plant)
        rows = client.rows(plant, "20240620160000", "20240620190000")
        assert rows[-1]["time_stamp"] == "20240620190000"  # 5 minutes behind, on the grid
        clock.t -= 420  # the real-time answer at 19:00 local is that last row
        client.renew()
        assert client.realtime(plant) == {k: v for k, v in rows[-1].items() if k != "time_stamp"}
        assert now != client.realtime(plant)
        # Daily statistics still wait for the day to end.
        clock.t += 420
        got = client.daily([plant.ps_id], "p83022", "day", "20240619", "20240620")
        assert [r["time_stamp"] for r in got[str(plant.ps_id)]["p83022"]] == ["20240619"]


# -- minute data: the model ----------------------------------------------------------------------------------


def test_history_rows_are_the_real_time_answers_of_their_time(sim: Simulator, clock: FakeClock,
                                                              client: Client) -> None:
    """Two zones: the row stamped with a plant's local time T is what real-time data said at T (same points,
    same strings), so the backfilled past joins the present without a seam; lifetime counters included."""
    east, west = prepare(sim, 0, 8.0, storage=True), prepare(sim, 1, -3.0)
    instants = [NOW - 7 * 60 - 86400 * k - 3600 * h for k in (1, 2) for h in (0, 5, 11)]  # on the 5-min grid
    seen: dict[tuple[int, str], dict[str, Any]] = {}
    for t in instants:
        clock.t = t + 125  # real-time data refreshes every 5 minutes: this still answers for t
        client.renew()
        for plant in (east, west):
            seen[(plant.ps_id, local(plant, t))] = client.realtime(plant)
    clock.t = NOW + 86400
    client.renew()
    for (ps_id, stamp), expected in seen.items():
        plant = next(p for p in (east, west) if p.ps_id == ps_id)
        rows = client.rows(plant, stamp, stamp)
        assert len(rows) == 1 and rows[0]["time_stamp"] == stamp
        assert {k: v for k, v in rows[0].items() if k != "time_stamp"} == expected
    # The same UTC instant has different local stamps in the two zones.
    assert local(east, instants[0]) != local(west, instants[0])


def test_night_zero_and_energy_reset_at_local_midnight(sim: Simulator, client: Client) -> None:
    for plant in (prepare(sim, 0, 8.0, storage=True), prepare(sim, 1, -3.0)):
        before = client.rows(plant, "20240618230000", "20240619020000")
        by_time = {r["time_stamp"]: r for r in before}
        last, first = by_time["20240618235500"], by_time["20240619000000"]
        for point in ("p83022", "p83118", "p83072", "p83102"):
            assert num(first[point]) == 0.0, point  # today's counters restart at local midnight
        assert num(last["p83022"]) > 0 and num(last["p83118"]) > 0
        # Lifetime counters carry on across midnight, never down.
        for point in ("p83024", "p83124", "p83075", "p83105"):
            series = [num(r[point]) for r in before]
            assert series == sorted(series), point
        assert all(num(r["p83033"]) == 0.0 for r in before)  # no sun from 23:00 to 02:00 local
        noon = client.rows(plant, "20240619103000", "20240619133000")
        peak = max(noon, key=lambda r: num(r["p83033"]))
        assert peak["time_stamp"] == "20240619120000" and num(peak["p83033"]) > 0  # solar noon, local


def test_gaps_are_missing_rows_and_stay_gaps(clock: FakeClock) -> None:
    with Simulator(plants=12, seed=11, clock=clock, history_gap_rate=0.5) as sim:
        client = Client(sim)
        plant = prepare(sim, 0, 2.0)
        gaps = {d: sim.history_gap(plant.ps_id, d) for d in (fmt(NOW - 86400 * k, "%Y%m%d") for k in range(2, 60))}
        # One that starts and ends within its day (others run to midnight).
        date, (first_missing, first_back) = next((d, g) for d, g in gaps.items() if g is not None and
                                                 d + "000000" < g[0] and g[1][:8] == d)
        rows = client.day_rows(plant, date)
        stamps = [r["time_stamp"] for r in rows]
        expected = [fmt(wall(date) + 300 * k) for k in range(288)]
        assert stamps == [s for s in expected if not first_missing <= s < first_back]
        assert first_back in stamps and fmt(wall(first_missing) - 300) in stamps
        # Asked again, in other windows, or by another simulator with the same seed: the same gap.
        again = client.rows(plant, fmt(wall(first_missing) - 3600), fmt(wall(first_missing) + 3600))
        assert again == [r for r in rows if wall(first_missing) - 3600 <= wall(r["time_stamp"]) <=
                         wall(first_missing) + 3600]
    with Simulator(plants=12, seed=11, clock=clock, history_gap_rate=0.5) as twin:
        plant = prepare(twin, 0, 2.0)
        assert twin.history_gap(plant.ps_id, date) == (first_missing, first_back)
    with Simulator(plants=12, seed=11, clock=clock, history_gap_rate=0.0) as none:
        plant = prepare(none, 0, 2.0)
        assert none.history_gap(plant.ps_id, date) is None
        assert len(Client(none).day_rows(plant, date)) == 288


def test_history_starts_at_the_install_date(sim: Simulator, client: Client) -> None:
    plant = prepare(sim, 0, 8.0, install="2024-05-01 14:20:00")
    assert client.minute([plant.ps_id], "20240430210000", "20240430235500") == {"illegal_ps_id_list": []}
    rows = client.rows(plant, "20240430220000", "20240501010000")
    assert rows[0]["time_stamp"] == "20240501000000"
    lifetimes = "p83024,p83124,p83075,p83105"
    got = client.daily([plant.ps_id], lifetimes, "day", "20240425", "20240503", data_type="3")[str(plant.ps_id)]
    later = client.daily([plant.ps_id], lifetimes, "day", "20240619", "20240619", data_type="3")[str(plant.ps_id)]
    assert set(got) == set(later) == set(lifetimes.split(","))
    for point, series in got.items():
        assert series[0]["time_stamp"] == "20240501", point
        assert 0.0 <= num(series[0]["3"]) <= 0.1, point  # the lifetime counters start at zero
        assert num(later[point][0]["3"]) > 1000.0, point
    # Months and years only count the days since.
    months = client.daily([plant.ps_id], "p83022", "month", "202403", "202405", data_type="4")
    assert [r["time_stamp"] for r in months[str(plant.ps_id)]["p83022"]] == ["202405"]


def test_daily_totals_are_the_integral_of_the_minute_data(clock: FakeClock) -> None:
    with Simulator(plants=12, seed=11, clock=clock, history_gap_rate=0.0) as sim:
        client = Client(sim)
        for plant in (prepare(sim, 0, 8.0, storage=True), prepare(sim, 1, -3.0)):
            date = "20240617"
            rows = client.day_rows(plant, date)
            assert len(rows) == 288
            daily = client.daily([plant.ps_id], POINTS, "day", date, date, data_type="1,2,3")[str(plant.ps_id)]

            def series(point: int, rows: list[dict[str, Any]] = rows) -> list[float]:
                return [num(r[f"p{point}"]) for r in rows]

            def trapezoid(point: int) -> float:  # Wh from W at 5-minute steps
                return sum((a + b) / 2 * (5 / 60) for a, b in pairwise(series(point)))

            def stat(point: int, data_type: str, daily: dict[str, Any] = daily, date: str = date) -> float:
                (row,) = daily[f"p{point}"]
                assert row["time_stamp"] == date
                return num(row[data_type])

            for power, energy in ((83033, 83022), (83106, 83118)):
                total = stat(energy, "2")
                assert total == series(energy)[-1]  # the day's total is its last value
                assert trapezoid(power) == pytest.approx(total, rel=0.01)
                assert stat(power, "1") == pytest.approx(total / 24, rel=0.01)  # mean power = energy / 24 h
            # Lifetime counters grow by the day's total; peaks and troughs are those of the 5-minute values.
            assert stat(83024, "2") - stat(83024, "3") == pytest.approx(stat(83022, "2"), abs=0.2)
            for point in EXPORTED:
                if f"p{point}" in rows[0]:
                    assert (stat(point, "2"), stat(point, "3")) == (max(series(point)), min(series(point))), point
                    assert min(series(point)) <= stat(point, "1") <= max(series(point)), point


def test_lifetime_is_monotonic_and_grows_by_the_daily_totals(sim: Simulator, client: Client) -> None:
    plant = prepare(sim, 0, 8.0, storage=True, install="2024-02-01 09:00:00")
    lifetimes = "p83024,p83124,p83075,p83105"
    got = client.daily([plant.ps_id], lifetimes + ",p83022,p83118,p83072,p83102", "day", "20240312", "20240619",
                       data_type="2,3")[str(plant.ps_id)]
    for life, today in (("p83024", "p83022"), ("p83124", "p83118"), ("p83075", "p83072"), ("p83105", "p83102")):
        series, days = got[life], got[today]
        assert len(series) == len(days) == 100  # the most days one call may ask
        flat = [num(v) for r in series for v in (r["3"], r["2"])]
        assert flat == sorted(flat), life
        for r, nxt, d in zip(series, series[1:], days, strict=False):
            grown = num(nxt["3"]) - num(r["3"])
            if today in ("p83022", "p83072"):  # nothing is produced or exported in the last 5 minutes of a day
                assert grown == pytest.approx(num(d["2"]), abs=0.2), (life, r["time_stamp"])
            else:  # the load runs on through 23:55-24:00
                assert num(d["2"]) <= grown + 0.2 <= num(d["2"]) * 1.02 + 0.2, (life, r["time_stamp"])


# -- day / month / year data ------------------------------------------------------------------------------------


def test_day_month_year_shape_and_totals(sim: Simulator, client: Client) -> None:
    plant = prepare(sim, 0, 8.0, install="2022-03-15 10:00:00")
    key = str(plant.ps_id)
    days = client.daily([plant.ps_id, "42"], "p83022,p83033", "day", "20240501", "20240531", data_type="2",
                        is_get_point_dict=1)
    assert set(days) == {key, "illegal_ps_id_list", "point_dict"} and days["illegal_ps_id_list"] == ["42"]
    assert days["point_dict"] == [{"point_id": 83022, "point_name": "Daily Yield of Plant", "point_unit": "Wh"},
                                  {"point_id": 83033, "point_name": "Plant Power", "point_unit": "W"}]
    may = days[key]["p83022"]
    assert may[0] == {"2": may[0]["2"], "time_stamp": "20240501"} and len(may) == 31
    months = client.daily([plant.ps_id], "p83022,p83033", "month", "202401", "202405", data_type="1,2,4")[key]
    assert [r["time_stamp"] for r in months["p83022"]] == ["202401", "202402", "202403", "202404", "202405"]
    assert set(months["p83022"][0]) == {"1", "2", "4", "time_stamp"}
    assert set(months["p83033"][0]) == {"1", "2", "time_stamp"}  # a power has no total
    may_total = num(months["p83022"][-1]["4"])
    assert may_total == pytest.approx(sum(num(r["2"]) for r in may), abs=0.05 * 31)
    assert num(months["p83022"][-1]["2"]) == max(num(r["2"]) for r in may)
    years = client.daily([plant.ps_id], "p83022", "year", "2022", "2024", data_type="4", order=1)[key]["p83022"]
    assert [r["time_stamp"] for r in years] == ["2024", "2023", "2022"]  # order 1: newest first
    months_2023 = client.daily([plant.ps_id], "p83022", "month", "202301", "202312", data_type="4")[key]["p83022"]
    assert num(years[1]["4"]) == pytest.approx(sum(num(r["4"]) for r in months_2023), abs=0.05 * 12)
    # Daily data has no total: a day query for data_type 4 alone finds nothing.
    assert client.daily([plant.ps_id], "p83022", "day", "20240501", "20240502", data_type="4") == \
        {"illegal_ps_id_list": []}


def test_day_month_year_limits(sim: Simulator, client: Client) -> None:
    plant = prepare(sim, 0, 8.0)
    base = {"ps_id_list": [str(plant.ps_id)], "data_point": "p83022", "query_type": "day", "data_type": "2",
            "start_time": "20240101", "end_time": "20240409", "order": 0}
    assert client.call(DAILY, base)["result_code"] == "1"  # 100 days
    for query_type, start, end, ok in (("day", "20240101", "20240410", False), ("month", "202201", "202312", True),
                                       ("month", "202201", "202401", False), ("year", "2020", "2024", True),
                                       ("year", "2019", "2024", False)):
        got = client.call(DAILY, {**base, "query_type": query_type, "start_time": start, "end_time": end})
        assert got["result_code"] == ("1" if ok else "010"), (query_type, start, end)
        if not ok:
            assert got["result_msg"] == TOO_LONG
    assert client.call(DAILY, {**base, "ps_id_list": [str(n) for n in range(51)]})["result_code"] == "010"
    for key in ("query_type", "data_type", "ps_id_list", "data_point", "start_time", "end_time", "order"):
        got = client.call(DAILY, {k: v for k, v in base.items() if k != key})
        assert (got["result_code"], got["result_msg"]) == ("009", f"er_missing_parameter:{key}"), key
    for key, bad in (("query_type", "1"), ("query_type", "Day"), ("data_type", "5"), ("data_type", "2,x"),
                     ("start_time", "202401"), ("start_time", "20240230"), ("end_time", "2024-04-09"),
                     ("end_time", "20231231"), ("order", 2)):
        got = client.call(DAILY, {**base, key: bad})
        assert (got["result_code"], got["result_msg"]) == ("010", f"er_parameter_value_invalid:{key}"), (key, bad)
    got = client.call(DAILY, {**base, "query_type": "month", "start_time": "20240101"})
    assert got["result_code"] == "010"  # yyyyMM for months
    # The current local day has no daily data yet.
    rows = client.daily([plant.ps_id], "p83022", "day", "20240618", "20240625")[str(plant.ps_id)]["p83022"]
    assert [r["time_stamp"] for r in rows] == ["20240618", "20240619"]


# -- device minute data (what a live legacy client used for the plant's own key) ----------------------------------


def login_token(sim: Simulator) -> str:
    r = requests.post(f"{sim.url}/openapi/login", json={"appkey": APPKEY, "user_account": "demo@example.com",
                                                        "user_password": "demo-password"},
                      headers={"x-access-key": KEY, "sys_code": "901"}, timeout=10).json()
    return str(r["result_data"]["token"])


def test_legacy_device_minute_data_for_the_plant_key(sim: Simulator, client: Client) -> None:
    """The recorded legacy shape: {ps_key: [{time_stamp, p<id>}]}, the same rows as the platform plant endpoint."""
    plant = prepare(sim, 0, 10.0, storage=True)
    token = login_token(sim)

    def legacy(body: dict[str, Any]) -> dict[str, Any]:
        return requests.post(f"{sim.url}/openapi/getDevicePointMinuteDataList",
                             json={"appkey": APPKEY, "token": token, **body},
                             headers={"x-access-key": KEY, "sys_code": "901"}, timeout=30).json()

    key = f"{plant.ps_id}_11_0_0"
    body = {"ps_key_list": [key], "points": "p83033,p83252", "start_time_stamp": "20240619185000",
            "end_time_stamp": "20240619215000", "minute_interval": 5}
    got = legacy(body)
    assert got["result_code"] == "1" and list(got["result_data"]) == [key]
    assert got["result_data"][key] == client.rows(plant, "20240619185000", "20240619215000", points="p83033,p83252")
    assert legacy({**body, "points": "83033,83252"})["result_data"] == {}  # points need the p prefix
    assert legacy({**body, "points": "p99999"})["result_data"] == {}
    got = legacy({k: v for k, v in body.items() if k != "ps_key_list"})
    assert (got["result_code"], got["result_msg"]) == ("009", "er_missing_parameter:ps_key_list")
    got = legacy({**body, "end_time_stamp": "20240619225000"})
    assert (got["result_code"], got["result_msg"]) == ("010", TOO_LONG)


def test_platform_device_minute_data(sim: Simulator, client: Client) -> None:
    plant = prepare(sim, 0, 1.0)
    inverters = [d["ps_key"] for d in sim.devices_of(plant.ps_id) if d["device_type"] == 1]
    body = {"ps_key_list": [*inverters, "1_1_1_1"], "points": "p24,p1,p83033", "start_time_stamp": "20240619110000",
            "end_time_stamp": "20240619120000", "is_get_point_dict": "1"}
    got = client.ok("getDevicePointMinuteDataList", body)
    assert got["illegal_ps_key_list"] == ["1_1_1_1"]
    assert [d["point_id"] for d in got["point_dict"]] == [24, 1]  # p83033 is no inverter point
    plant_rows = client.rows(plant, "20240619110000", "20240619120000", points="p83033,p83022")
    for k, row in enumerate(plant_rows):
        # The inverters carry the plant's PV between them.
        assert sum(num(got[key][k]["p24"]) for key in inverters) == pytest.approx(num(row["p83033"]), abs=0.1 * 5)
        assert sum(num(got[key][k]["p1"]) for key in inverters) == pytest.approx(num(row["p83022"]), abs=0.1 * 5)
        assert all(set(got[key][k]) == {"time_stamp", "p24", "p1"} for key in inverters)
    mixed = client.call("getDevicePointMinuteDataList",
                        {**body, "ps_key_list": [inverters[0], f"{plant.ps_id}_11_0_0"]})
    assert (mixed["result_code"], mixed["result_msg"]) == ("010", "er_parameter_value_invalid:ps_key_list")
    many = client.call("getDevicePointMinuteDataList", {**body, "ps_key_list": [f"1_1_1_{n}" for n in range(51)]})
    assert many["result_code"] == "010"


@pytest.mark.parametrize(("ps_type", "connect_type", "offset"), [(5, 2, 8.0), (4, 3, -3.0), (9, 1, 5.5), (12, 1, 1.0)],
                         ids=["home-storage", "no-feed-in", "wind", "utility-storage"])
def test_daily_statistics_of_every_point_are_those_of_the_minute_rows(clock: FakeClock, ps_type: int,
                                                                       connect_type: int, offset: float) -> None:
    with Simulator(plants=12, seed=11, clock=clock, history_gap_rate=0.0) as sim:
        client = Client(sim)
        # A plant generated with (or without) a battery: changing the type keeps the generated battery.
        plant = next(p for p in sim.plants if p.is_storage == (ps_type in (5, 12)))
        sim.set_plant(plant.ps_id, ps_type=ps_type, connect_type=connect_type, utc_offset_h=offset)
        ids = sorted(TABLE)
        rows: dict[str, dict[str, Any]] = {}
        for part in (ids[:40], ids[40:]):  # at most 50 points per call
            for row in client.day_rows(plant, "20240617", points=",".join(f"p{p}" for p in part)):
                rows.setdefault(row["time_stamp"], {}).update(row)
        assert len(rows) == 288
        daily = client.daily([plant.ps_id], ",".join(f"p{p}" for p in ids), "day", "20240617", "20240617",
                             data_type="1,2,3")[str(plant.ps_id)]
        assert set(daily) == {key for row in rows.values() for key in row if key != "time_stamp"}
        for key, (stats,) in daily.items():
            values = [num(row[key]) for row in rows.values()]
            assert (num(stats["2"]), num(stats["3"])) == (max(values), min(values)), key
            mean = sum(values) / len(values)
            assert num(stats["1"]) == pytest.approx(mean, rel=0.01, abs=0.06 + 0.01 * (max(values) - min(values))), key
