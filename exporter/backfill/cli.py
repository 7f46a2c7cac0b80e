"""The `backfill` subcommand's flags, their checks (one line and exit code 2 for bad input) and its report.

Exit codes: 0 done (or already done), 1 needs a human (credentials, promtool), 2 bad input, 3 stopped and
resumable (monthly quota, repeated failures, interrupted): the same command again continues.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

from ..config import AccountConfig, ConfigError, load_config
from ..fetch.envelope import ApiError
from ..fetch.transport import get_lines
from ..logs import FORMATS, LEVELS, register_secrets, setup_logging
from ..serve.metrics import PLANT_LABELS
from .pacing import ExporterError, ExporterReading, Pacer, parse_exporter_metrics
from .plan import RESOLUTIONS
from .run import Backfill, BackfillError, Options, describe, estimate

log = logging.getLogger("exporter.backfill")

DEFAULT_EXPORTER = "http://localhost:10027"
DEFAULT_LABELS = {"job": "isolarcloud"}
MAX_METRICS_BYTES = 1 << 30
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION = re.compile(r"^\d+[smhdw]$")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def backfill_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="isolarcloud-exporter backfill",
                description="Fetch the history of every plant from iSolarCloud and write it as OpenMetrics under "
                            "the live exporter's metric names (or straight into TSDB blocks with --tsdb-dir), for "
                            "Prometheus to import. Resumable; paced within the account's API budget.",
                epilog="docs/backfill.md walks through a backfill beside a running exporter and Prometheus.")
    p.add_argument("--config.file", dest="config_file", required=True, metavar="PATH",
                   help="the exporter's YAML configuration")
    p.add_argument("--account", action="append", metavar="NAME",
                   help="an account to backfill (repeatable; default: every OAuth2 account)")
    p.add_argument("--from", dest="first", required=True, metavar="DATE",
                   help="first day, YYYY-MM-DD, in each plant's local time")
    p.add_argument("--to", dest="last", metavar="DATE",
                   help="last day, YYYY-MM-DD (default and latest: the last day that ended 3 hours ago)")
    p.add_argument("--resolution", default="5m", choices=list(RESOLUTIONS),
                   help="5m, 15m, 1h (minute data, same calls for each) or 1d (daily totals, ~800 times "
                        "fewer calls); default 5m")
    p.add_argument("--output", metavar="FILE", help="the OpenMetrics file to write")
    p.add_argument("--tsdb-dir", dest="tsdb_dir", metavar="DIR",
                   help="instead: TSDB blocks in DIR, made with promtool a day (of daily data: 100 days) at a time")
    p.add_argument("--tsdb.max-block-duration", dest="max_block_duration", metavar="DURATION",
                   help="promtool's --max-block-duration (default 24h for minute data, 486h for daily data)")
    p.add_argument("--checkpoint.file", dest="checkpoint", metavar="PATH",
                   help="resumable state of the run (default FILE.checkpoint or DIR.checkpoint)")
    p.add_argument("--label", action="append", default=[], metavar="NAME=VALUE",
                   help="a label for every series, as Prometheus attaches it when scraping (repeatable; default "
                        "job=isolarcloud; add instance=HOST:PORT as your scrape target is named)")
    p.add_argument("--budget-per-hour", dest="budget", type=int, metavar="N",
                   help="the backfill's own calls per clock hour (default: what the running exporter leaves of "
                        "the account's api_budget_per_hour)")
    p.add_argument("--exporter.url", dest="exporter_url", metavar="URL",
                   help=f"the running exporter, read for its API spending (default {DEFAULT_EXPORTER} unless "
                        "--budget-per-hour is given)")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="print the calls per endpoint and the time at the budget, and make none")
    p.add_argument("--plants", type=int, metavar="N",
                   help="with --dry-run: the plant count to assume (default: the running exporter's)")
    p.add_argument("--log.level", dest="log_level", default="info", choices=sorted(LEVELS))
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=FORMATS)
    return p


def _fail(message: str, code: int = 2) -> int:
    print(f"isolarcloud-exporter backfill: {message}", file=sys.stderr)
    return code


def _date(flag: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BackfillError(f"{flag}: expected a date YYYY-MM-DD, got {text!r}", 2) from None


def _labels(items: list[str]) -> dict[str, str]:
    labels = dict(DEFAULT_LABELS)
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _LABEL_NAME.match(name) or name.startswith("__"):
            raise BackfillError(f"--label: expected NAME=VALUE with a Prometheus label name, got {item!r}", 2)
        if name in PLANT_LABELS:
            raise BackfillError(f"--label {name}: set by the backfill itself, like the exporter does", 2)
        labels[name] = value
    return {k: v for k, v in labels.items() if v != ""}  # NAME= removes a default


def _accounts(config_accounts: tuple[AccountConfig, ...], names: list[str] | None) -> tuple[AccountConfig, ...]:
    if not names:
        chosen = tuple(a for a in config_accounts if a.auth.mode == "oauth2")
        if not chosen:
            raise BackfillError("the configuration has no OAuth2 account: the history endpoints need one", 2)
        return chosen
    by_name = {a.name: a for a in config_accounts}
    for name in names:
        if name not in by_name:
            raise BackfillError(f"--account: no account named {name!r} in the configuration", 2)
    return tuple(by_name[n] for n in dict.fromkeys(names))


def _exporter_reader(url: str, account: str, timeout: float) -> Callable[[], ExporterReading]:
    target = url.rstrip("/")
    if not target.endswith("/metrics"):
        target += "/metrics"

    def read() -> ExporterReading:
        try:
            return parse_exporter_metrics(get_lines(target, timeout=timeout, max_bytes=MAX_METRICS_BYTES), account)
        except ApiError as exc:
            raise ExporterError(f"cannot read the exporter's metrics at {target}: {str(exc).split(': ', 1)[-1]}") \
                from None
        except ExporterError as exc:
            raise ExporterError(f"{target}: {exc}") from None

    return read


def backfill(args: argparse.Namespace, *, clock: Callable[[], float] = time.time,
             sleep: Callable[[float], None] = time.sleep, gateway: Any = None) -> int:
    setup_logging(args.log_level, args.log_format)
    try:
        config = load_config(args.config_file)
    except ConfigError as exc:
        return _fail(str(exc))
    register_secrets(config.secrets())
    options: Options | None = None
    try:
        options, readers = _options(args, config)
        pacers = {a.name: Pacer(budget_per_hour=args.budget, exporter=readers.get(a.name), clock=clock, sleep=sleep)
                  for a in options.accounts}
        for account in options.accounts:
            pacer = pacers[account.name]
            if pacer.per_hour() < 1:
                reading = pacer.reading
                planned = f"{reading.planned:,.0f} of its {reading.budget:,.0f}" if reading else "all its"
                raise BackfillError(f"account {account.name}: the exporter plans {planned} calls per hour: nothing "
                                    "is left for a backfill; raise api_budget_per_hour if the app's quota allows, "
                                    "or pass --budget-per-hour alone to set the backfill's own budget", 2)
        if args.dry_run:
            now = clock()
            estimates = [estimate(options, a, pacers[a.name], pacers[a.name].reading, now) for a in options.accounts]
            print(describe(estimates, options.resolution))
            print("(dry run: no call made)")
            return 0
        run = Backfill(options, pacers=lambda account: pacers[account.name], clock=clock, sleep=sleep,
                       gateway=gateway, stream=sys.stderr)
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            summary = run.run()
        finally:
            signal.signal(signal.SIGTERM, previous)
    except (BackfillError, ExporterError) as exc:
        code = exc.code if isinstance(exc, BackfillError) else 2
        return _fail(str(exc), code)
    except KeyboardInterrupt:
        where = f" in {options.checkpoint}" if options is not None else ""
        return _fail(f"interrupted; the run is saved{where}: run the same command again to continue", 3)
    if summary.already_complete:
        print(f"already complete: {summary.output} ({summary.samples:,} samples); remove {options.checkpoint} to "
              "run it again")
        return 0
    for a in summary.accounts:
        calls = ", ".join(f"{n:,} {endpoint}" for endpoint, n in sorted(a.calls.items()))
        span = f", {a.first} to {a.last}" if a.first else ""
        print(f"account {a.name}: {a.plants} plants{span}: {calls or 'no calls'}; {a.samples:,} samples"
              + (f"; {len(a.skipped)} plants without a usable time zone left out" if a.skipped else "")
              + (f"; {len(a.illegal)} plants unknown to the API" if a.illegal else ""))
    if summary.blocks is not None:
        print(f"blocks in {summary.blocks}: move them into Prometheus' data directory (docs/backfill.md)")
    else:
        print(f"wrote {summary.output} ({summary.size:,} bytes, OpenMetrics): `promtool tsdb create-blocks-from "
              "openmetrics` turns it into blocks (docs/backfill.md)")
    return 0


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _options(args: argparse.Namespace, config: Any) -> tuple[Options, dict[str, Callable[[], ExporterReading]]]:
    first = _date("--from", args.first)
    last = _date("--to", args.last)
    assert first is not None
    if last is not None and last < first:
        raise BackfillError(f"--to {last}: before --from {first}", 2)
    if (args.output is None) == (args.tsdb_dir is None):
        raise BackfillError("one of --output FILE (an OpenMetrics file) and --tsdb-dir DIR (TSDB blocks) is "
                            "required", 2)
    if args.budget is not None and args.budget < 1:
        raise BackfillError(f"--budget-per-hour: expected a positive number of calls, got {args.budget}", 2)
    if args.plants is not None and (args.plants < 0 or not args.dry_run):
        raise BackfillError("--plants: only with --dry-run, and not negative", 2)
    if args.max_block_duration is not None and not _DURATION.match(args.max_block_duration):
        raise BackfillError(f"--tsdb.max-block-duration: expected a duration such as 24h, got "
                            f"{args.max_block_duration!r}", 2)
    tsdb_dir = Path(args.tsdb_dir) if args.tsdb_dir else None
    output = Path(args.output) if args.output else Path(str(tsdb_dir).rstrip("/"))
    if tsdb_dir is None and output.is_dir():
        raise BackfillError(f"--output {output}: is a directory", 2)
    if tsdb_dir is not None and tsdb_dir.exists() and not tsdb_dir.is_dir():
        raise BackfillError(f"--tsdb-dir {tsdb_dir}: is not a directory", 2)
    checkpoint = Path(args.checkpoint) if args.checkpoint else output.with_name(output.name + ".checkpoint")
    accounts = _accounts(config.accounts, args.account)
    url = args.exporter_url or (DEFAULT_EXPORTER if args.budget is None else None)
    readers = {a.name: _exporter_reader(url, a.name, config.http_timeout) for a in accounts} if url else {}
    options = Options(accounts=accounts, config=config, first=first, last=last, resolution=args.resolution,
                      output=output, checkpoint=checkpoint, labels=_labels(args.label), tsdb_dir=tsdb_dir,
                      max_block_duration=args.max_block_duration, dry_run=args.dry_run, plants=args.plants)
    return options, readers
