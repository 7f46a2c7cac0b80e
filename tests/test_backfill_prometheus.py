"""The backfill's output in the real tools: promtool turns it into blocks (--tsdb-dir), a real Prometheus started
on them answers every sample at its timestamp, and two overlapping runs (or the same run twice) leave no
duplicate or conflicting sample once both sets of blocks are in: Prometheus merges overlapping blocks and keeps
one sample per series and timestamp, and the backfill writes the same value for the same stamp every time.

The cloud here is the in-memory one of tests/unit/test_backfill.py (deterministic values, a one-hour gap);
tests/test_backfill_e2e.py runs the same path against the simulator over HTTP.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests._backfill_support import move_blocks, prometheus_on
from tests.unit.test_backfill import UTC8, Cloud, Interrupt, local_value, parse, run

pytestmark = pytest.mark.e2e


def block_samples(blocks: Path) -> int:
    return sum(json.loads((b / "meta.json").read_text())["stats"]["numSamples"]
               for b in blocks.iterdir() if (b / "meta.json").exists())


def test_overlapping_and_repeated_runs_leave_one_sample_per_stamp_in_prometheus(tmp_path: Path,
                                                                                  promtool: str) -> None:
    runs = {"a": ("2024-03-04", "2024-03-05"), "b": ("2024-03-05", "2024-03-06"), "again": ("2024-03-05",
                                                                                            "2024-03-06")}
    flags = ("--resolution", "15m", "--budget-per-hour", "1000", "--label", "instance=exporter:10027")
    files = {}
    for name, (first, last) in runs.items():
        (tmp_path / name).mkdir()
        assert run(tmp_path / name, Cloud(plants=2), "--from", first, "--to", last, *flags,
                   output="backfill.om") == 0
        files[name] = parse((tmp_path / name / "backfill.om").read_text())[1]
    # Run a as a user without --tsdb-dir would (promtool by hand, its defaults); b and again with --tsdb-dir.
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(tmp_path / "a" / "backfill.om"),
                    str(tmp_path / "a" / "blocks")], check=True, capture_output=True)
    for name in ("b", "again"):
        first, last = runs[name]
        assert run(tmp_path / name, Cloud(plants=2), "--from", first, "--to", last, *flags, "--tsdb-dir",
                   str(tmp_path / name / "blocks"), output=None) == 0
        assert block_samples(tmp_path / name / "blocks") == sum(len(r) for r in files[name].values())
    # What the files hold together, one value per series and stamp (the overlap agrees: no conflict).
    union: dict[tuple[str, str], dict[int, float]] = {}
    for series in files.values():
        for key, rows in series.items():
            for ts, value in rows:
                assert union.setdefault(key, {}).setdefault(ts, value) == value
    data = tmp_path / "data"
    moved = [b for name in runs for b in move_blocks(tmp_path / name / "blocks", data)]
    assert len(moved) >= 3
    with prometheus_on(data, tmp_path) as prom:
        start = datetime(2024, 3, 4, tzinfo=UTC8).timestamp()
        end = datetime(2024, 3, 7, tzinfo=UTC8).timestamp() - 1
        for name in ("isolarcloud_plant_power_watts", "isolarcloud_plant_energy_joules_total"):
            result = prom.query_range(f'{name}{{ps_id="1001"}}', start, end, 900)
            assert len(result) == 1
            metric = result[0]["metric"]
            assert metric == {"__name__": name, "account": "home", "instance": "exporter:10027",
                              "job": "isolarcloud", "ps_id": "1001", "ps_name": "Plant 1001",
                              "ps_type": "residential_pv"}
            key = next(k for k in union if k[0] == name and 'ps_id="1001"' in k[1])
            got = {int(float(t)): float(v) for t, v in result[0]["values"]}
            assert got == union[key]  # every sample at its stamp; the gap hour stays empty
        # Day 5 is in all three runs' blocks; still 92 samples of the 96 quarter hours (one hour is a gap).
        day5_end = datetime(2024, 3, 6, tzinfo=UTC8).timestamp() - 1
        counts = prom.query('count_over_time(isolarcloud_plant_power_watts{ps_id="1001"}[1d])', day5_end)
        assert [float(r["value"][1]) for r in counts] == [92.0]
        first = prom.query('isolarcloud_plant_power_watts{ps_id="1001"}', start)
        assert float(first[0]["value"][1]) == local_value("1001", "p83033", "20240304000000")


def test_promtool_takes_daily_data_in_large_blocks(tmp_path: Path, promtool: str) -> None:
    assert run(tmp_path, Cloud(plants=3), "--from", "2023-09-01", "--to", "2024-03-01", "--resolution", "1d",
               "--budget-per-hour", "1000", "--tsdb-dir", str(tmp_path / "blocks"), output=None) == 0
    blocks = [b for b in (tmp_path / "blocks").iterdir() if (b / "meta.json").exists()]
    # One segment per 100-day call; blocks of up to 486 h (promtool's range below the default 486h flag).
    assert 10 <= len(blocks) <= 14
    assert block_samples(tmp_path / "blocks") == 3 * 8 * 183  # 3 plants, 8 energies, 183 days: all of them
    assert not (tmp_path / "blocks.checkpoint.d").exists()


def test_an_interrupted_tsdb_run_resumes_without_converting_a_day_twice(tmp_path: Path, promtool: str) -> None:
    flags = ("--from", "2024-03-04", "--to", "2024-03-06", "--resolution", "1h", "--budget-per-hour", "1000",
             "--tsdb-dir", str(tmp_path / "blocks"))
    cloud = Cloud(plants=1)
    cloud.interrupt_at = 12  # in the second day: the first is in blocks, the second half in spools
    with pytest.raises(Interrupt):
        run(tmp_path, cloud, *flags, output=None)
    first_day = block_samples(tmp_path / "blocks")
    assert first_day == 12 * 23  # 12 quantities (no battery SOC), 23 hours (one is a gap)
    cloud.interrupt_at = None
    assert run(tmp_path, cloud, *flags, output=None) == 0
    assert block_samples(tmp_path / "blocks") == 3 * first_day
