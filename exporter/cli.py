"""Command line: Go-exporter-style dotted flags, subcommands (`SUBCOMMANDS`), signals and the `--demo` mode.

Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad configuration or flags (printed as one line).
Signals: SIGTERM and SIGINT stop, SIGHUP reloads the configuration (as Prometheus does).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlparse

from . import __version__
from .app import Exporter, check_token_files
from .config import Config, ConfigError, authorization_page, load_config, parse_config, parse_duration
from .fetch.auth import OAuth2Auth, TokenFile, TokenFileError, Tokens, authorize_url
from .fetch.envelope import ApiError
from .fetch.transport import Transport
from .logs import FORMATS, LEVELS, register_secrets, setup_logging
from .serve.web import Server, WebConfigError, load_web_config

log = logging.getLogger("exporter")
DEFAULT_LISTEN = ":10027"
DEMO_PLANTS_MAX = 100_000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _serve_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="isolarcloud-exporter",
                description="Prometheus exporter for the Sungrow iSolarCloud cloud API.",
                epilog="Subcommands: `authorize` sets up OAuth2 tokens, `probe` learns an account's limits, "
                       "`backfill` fills Prometheus with the cloud's history, `assets` writes the Prometheus "
                       "rules and Grafana dashboards (`isolarcloud-exporter <subcommand> --help`).")
    p.add_argument("--config.file", dest="config_file", metavar="PATH", help="YAML configuration file")
    p.add_argument("--config.check", dest="config_check", action="store_true",
                   help="validate the configuration (and --web.config.file), print the result, exit 0 or 2")
    p.add_argument("--web.listen-address", dest="listen", default=DEFAULT_LISTEN, metavar="ADDR",
                   help=f"address to serve on, [host]:port (default {DEFAULT_LISTEN})")
    p.add_argument("--web.config.file", dest="web_config", metavar="PATH",
                   help="exporter-toolkit web configuration: TLS, client certificates, basic auth")
    p.add_argument("--web.enable-lifecycle", dest="enable_lifecycle", action="store_true",
                   help="accept POST /-/reload (SIGHUP reloads in any case)")
    p.add_argument("--web.dashboard-url", dest="dashboard_url", metavar="URL",
                   help="Grafana fleet dashboard to link from the status page, e.g. "
                        "https://grafana.example.com/d/isolarcloud-fleet")
    p.add_argument("--log.level", dest="log_level", default="info", choices=sorted(LEVELS))
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=FORMATS)
    p.add_argument("--demo", action="store_true",
                   help="run against the built-in iSolarCloud simulator: no account needed")
    p.add_argument("--demo.plants", dest="demo_plants", type=_demo_plants, default=40, metavar="N",
                   help=f"plants per simulated account in --demo, 1-{DEMO_PLANTS_MAX:,} (default 40)")
    p.add_argument("--version", action="version", version=f"isolarcloud-exporter {__version__}")
    return p


def _authorize_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="isolarcloud-exporter authorize",
                description="Print the owner's authorisation URL, then exchange the one-time code for tokens "
                            "and write them to the account's token_file.")
    p.add_argument("--config.file", dest="config_file", required=True, metavar="PATH")
    p.add_argument("--account", required=True, help="account name from the configuration")
    p.add_argument("--code", help="the code from the redirect URL (or the whole URL); prompted when omitted")
    p.add_argument("--redirect-uri", dest="redirect_uri", help="overrides auth.redirect_uri")
    p.add_argument("--application-id", dest="application_id", help="overrides auth.application_id")
    return p


def _demo_plants(text: str) -> int:
    try:
        plants = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of plants, got {text!r}") from None
    if not 1 <= plants <= DEMO_PLANTS_MAX:
        raise argparse.ArgumentTypeError(f"expected 1 to {DEMO_PLANTS_MAX}, got {plants}")
    return plants


def _assets_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="isolarcloud-exporter assets",
                description="Write the Prometheus rules (prometheus/) and Grafana dashboards and provisioning "
                            "(grafana/) of this version into a directory.")
    p.add_argument("--output", required=True, metavar="DIR", help="where prometheus/ and grafana/ are written")
    p.add_argument("--force", action="store_true", help="overwrite files that exist already")
    return p


def _probe_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="isolarcloud-exporter probe",
                description="A short, read-only experiment against one account: which total key the plant list "
                            "uses, the largest page size and real-time batch the gateway serves, the token "
                            "answer's shape, the time-zone sign of update_time, whether update_time moves with "
                            "the values, the app's quota. Prints a report and the configuration it suggests.")
    p.add_argument("--config.file", dest="config_file", required=True, metavar="PATH")
    p.add_argument("--account", required=True, help="account name from the configuration")
    p.add_argument("--output", metavar="FILE",
                   help="also write the report as JSON, for a bug report (no secrets, no personal data)")
    p.add_argument("--wait", default="6m", metavar="DURATION",
                   help="time between the two looks at the data, to see whether update_time moves with the values "
                        "(the cloud updates about every 5 minutes; default 6m, 0 skips that question)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        make_parser, run = SUBCOMMANDS[args[0]]
        return run(make_parser().parse_args(args[1:]))
    return serve(_serve_parser().parse_args(args))


def _fail(message: str) -> int:
    print(f"isolarcloud-exporter: {message}", file=sys.stderr)
    return 2


def check(args: argparse.Namespace) -> int:
    """--config.check: everything a start would refuse, without starting (no port, no API call, no write)."""
    try:
        config = load_config(args.config_file)
        check_token_files(config)
        load_web_config(args.web_config)
    except (ConfigError, WebConfigError, TokenFileError) as exc:
        return _fail(str(exc))
    for warning in config.warnings:
        print(f"isolarcloud-exporter: warning: {warning}", file=sys.stderr)
    names = ", ".join(a.name for a in config.accounts)
    print(f"{args.config_file}: configuration OK, {len(config.accounts)} account(s): {names}"
          + (f"; {args.web_config}: OK" if args.web_config else ""))
    return 0


def serve(args: argparse.Namespace) -> int:
    if args.demo and args.config_file:
        return _fail("--config.file and --demo exclude each other: --demo runs simulated accounts of its own")
    if args.config_check:
        return check(args) if args.config_file else _fail("--config.check needs --config.file")
    setup_logging(args.log_level, args.log_format)
    demo: list[Any] = []
    try:
        loader: Callable[[], Config]
        if args.demo:
            config, demo = _demo_config(args.demo_plants)
            loader = lambda: config  # noqa: E731  (nothing to read again: a reload keeps every account)
        elif args.config_file:
            config = load_config(args.config_file)
            path = args.config_file
            loader = lambda: load_config(path)  # noqa: E731
        else:
            return _fail("--config.file is required (or try --demo)")
        register_secrets(config.secrets())
        web = load_web_config(args.web_config)
        exporter = Exporter(config, loader=loader, config_path=args.config_file, dashboard_url=args.dashboard_url)
        server = Server(args.listen, exporter, web, lifecycle=args.enable_lifecycle)
    except (ConfigError, WebConfigError, TokenFileError) as exc:
        return _fail(str(exc))
    for warning in config.warnings:
        log.warning("%s", warning)
    stop = threading.Event()
    wake = threading.Event()  # the main thread sleeps on it; signals only set flags (reloads run here, not in them)
    reloads = 0

    def _stop(signum: int, _frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()
        wake.set()

    def _reload(_signum: int, _frame: Any) -> None:
        nonlocal reloads
        reloads += 1
        wake.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, _reload)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    exporter.start()
    scheme = "https" if web.tls else "http"
    log.info("isolarcloud-exporter %s serving on %s://%s/metrics for %d account(s)", __version__, scheme,
             args.listen if not args.listen.startswith(":") else "localhost" + args.listen, len(config.accounts))
    if args.demo:
        host = "localhost" + args.listen if args.listen.startswith(":") else args.listen
        print(f"\nDemo running: simulated iSolarCloud at {demo[0].url} and {demo[1].url}\n"
              f"  status page  {scheme}://{host}/\n  metrics      {scheme}://{host}/metrics\n"
              "Press Ctrl-C to stop.\n", file=sys.stderr, flush=True)
    handled = 0
    while not stop.is_set():
        # Not an endless wait: the kernel may deliver a signal to any thread, and Python runs the handler only
        # when the main thread next runs, which a wait on a lock with no timeout could postpone for ever.
        wake.wait(0.1)
        wake.clear()
        if reloads != handled and not stop.is_set():
            handled = reloads  # several SIGHUPs while one reload runs make one more reload, not several
            log.info("received SIGHUP, reloading the configuration")
            exporter.reload()
    # Refresh threads are daemons and token writes are atomic renames: stopping here cannot corrupt the file.
    server.shutdown()
    server.server_close()
    exporter.close()
    for sim in demo:
        sim.stop()
    return 0


def _demo_config(plants: int) -> tuple[Config, list[Any]]:
    """Two simulated accounts, one per auth mode, each on its own simulator with its own fleet."""
    from .simulator import Simulator

    oauth_sim = Simulator(plants=plants, seed=1).start()
    login_sim = Simulator(plants=plants, seed=2).start()
    tokens = oauth_sim.issue_tokens()
    state = Path(tempfile.mkdtemp(prefix="isolarcloud-demo-"))
    data = {
        "refresh_interval": "30s",
        "accounts": [
            {"name": "demo-oauth2", "base_url": oauth_sim.url,
             "auth": {"mode": "oauth2", "appkey": oauth_sim.appkey, "secret_key": oauth_sim.secret_key,
                      "refresh_token": tokens["refresh_token"], "token_file": str(state / "demo-oauth2.json")},
             "devices": {"firmware": True, "realtime": {"enabled": True}}},  # the device panels have data
            {"name": "demo-login", "base_url": login_sim.url,
             "auth": {"mode": "login", "appkey": login_sim.appkey, "secret_key": login_sim.secret_key,
                      "user_account": "demo@example.com", "user_password": "demo-password"}},
        ],
    }
    config = parse_config(data, env={}, base_dir=state)
    # The short interval is the point of a demo; its "spends quota" warning would only confuse here.
    return replace(config, warnings=()), [oauth_sim, login_sim]


def authorize(args: argparse.Namespace) -> int:
    setup_logging("warning", "logfmt")
    try:
        config = load_config(args.config_file)
    except ConfigError as exc:
        return _fail(str(exc))
    index = next((i for i, a in enumerate(config.accounts) if a.name == args.account), None)
    if index is None:
        return _fail(f"--account: no account named {args.account!r} in {args.config_file}")
    account = config.accounts[index]
    path = f"accounts[{index}]"  # the configuration's key-path style, also where the account is named
    auth_config = account.auth
    if auth_config.mode != "oauth2":
        return _fail(f"{path}.auth.mode: authorize needs oauth2; account {account.name!r} logs in with a password "
                     "(mode login), which needs no authorisation")
    if auth_config.token_file is None:
        return _fail(f"{path}.auth.token_file: required by authorize (the tokens are written there)")
    redirect_uri = args.redirect_uri or auth_config.redirect_uri
    application_id = args.application_id or auth_config.application_id
    if not redirect_uri:
        return _fail(f"{path}.auth.redirect_uri: required (the one registered for the app), or --redirect-uri")
    register_secrets(config.secrets())
    code = args.code
    if not code:
        if not application_id:
            return _fail(f"{path}.auth.application_id: required to build the authorisation URL, or "
                         "--application-id")
        try:
            host, cloud_id = authorization_page(account, path)
        except ConfigError as exc:
            return _fail(str(exc))
        print("Open this URL as the plant owner, approve, and paste the address you are redirected to:\n")
        print(authorize_url(host, cloud_id, application_id, redirect_uri) + "\n", flush=True)
        try:
            code = input("Redirected URL or code: ").strip()
        except EOFError:
            return _fail("no code given")
    if "code=" in code:
        parsed = urlparse(code)
        code = (parse_qs(parsed.query).get("code") or parse_qs(parsed.fragment.partition("?")[2]).get("code")
                or [""])[0]
    if not code:
        return _fail("no code found in what was given")
    # A one-off call outside any account's budget: nothing to count it in.
    transport = Transport(account.base_url, timeout=config.http_timeout, max_bytes=config.max_response_bytes,
                          record=lambda endpoint, result: None)
    # exchange_code persists the tokens to the file at once: the code cannot be exchanged twice.
    auth = OAuth2Auth(transport, appkey=auth_config.appkey, secret_key=auth_config.secret_key, lang=account.lang,
                      tokens=Tokens(), token_file=TokenFile(auth_config.token_file),
                      record_auth=lambda kind, result: None)
    try:
        fresh = auth.exchange_code(code, redirect_uri)
    except ApiError as exc:
        print(f"isolarcloud-exporter: code exchange failed: {exc}. Codes are single-use: authorise again.",
              file=sys.stderr)
        return 1
    plants = fresh.get("auth_ps_list")
    until = time.strftime("%Y-%m-%d", time.gmtime(auth.tokens.refresh_expires_at or time.time()))
    print(f"Tokens written to {auth_config.token_file} (mode 0600). The refresh token is valid until about "
          f"{until}; the exporter rotates it and keeps the file current."
          + (f" Authorised plants: {len(plants)}." if isinstance(plants, list) else ""))
    return 0


def probe(args: argparse.Namespace, *, clock: Callable[[], float] = time.time,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Exit 0 with a report; 1 when the probe had to stop early (the report says why); 2 for bad input."""
    from .probe import ProbeInputError, render_text, run_probe, write_json

    setup_logging("warning", "logfmt")
    try:
        config = load_config(args.config_file)
    except ConfigError as exc:
        return _fail(str(exc))
    account = next((a for a in config.accounts if a.name == args.account), None)
    if account is None:
        return _fail(f"--account: no account named {args.account!r} in {args.config_file}")
    try:
        wait = 0.0 if str(args.wait).strip() in ("0", "0s") else parse_duration(args.wait, "--wait")
    except ConfigError as exc:
        return _fail(str(exc))
    output = Path(args.output) if args.output else None
    if output is not None:
        if output.is_dir():
            return _fail(f"--output: {output} is a directory")
        if not output.parent.is_dir() or not os.access(output.parent, os.W_OK):
            return _fail(f"--output: cannot write to directory {output.parent}")
    register_secrets(config.secrets())

    def progress(message: str) -> None:
        print(f"probe: {message}", file=sys.stderr, flush=True)

    try:
        report = run_probe(account, config, wait=wait, clock=clock, sleep=sleep, progress=progress)
    except (ProbeInputError, TokenFileError) as exc:
        return _fail(str(exc))
    print(render_text(report), end="")
    if output is not None:
        write_json(output, report)
        print(f"Report written to {output} (no secrets, no personal data: fit for a bug report).")
    return 1 if report.result.stopped else 0


def assets(args: argparse.Namespace) -> int:
    """Copy the shipped rules and dashboards out of the installed package, so a pip user has them too."""
    sources = shipped_assets()
    if sources is None:
        print("isolarcloud-exporter: this installation ships no rules or dashboards (built without them)",
              file=sys.stderr)
        return 1
    output = Path(args.output)
    plan = [(source, output / relative) for relative, source in sources]
    if not args.force:
        existing = [str(target) for _source, target in plan if target.exists()]
        if existing:
            return _fail(f"--output: {existing[0]} exists ({len(existing)} file(s) would be overwritten); "
                         "--force overwrites")
    try:
        for source, target in plan:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    except OSError as exc:
        return _fail(f"--output: cannot write {exc.filename or output}: {exc.strerror or exc}")
    print(f"Wrote {len(plan)} files to {output}: prometheus/ (alert and recording rules, their promtool tests, "
          "their templates and generate.py for your job name, an example prometheus.yml and alertmanager.yml) "
          "and grafana/ (dashboards, provisioning).")
    return 0


# Where the rules and dashboards are, inside the package as installed, and the paths they get in --output.
ASSET_DIRS = (("assets/prometheus", "prometheus"), ("assets/grafana/dashboards", "grafana/dashboards"),
              ("assets/grafana/provisioning", "grafana/provisioning"))
ASSET_SUFFIXES = (".yml", ".yaml", ".json", ".py")  # .py: prometheus/generate.py, which renders src/


def shipped_assets() -> list[tuple[str, Path]] | None:
    """(relative output path, source file) of every shipped asset: from the installed package, or from the
    repository when running from a checkout (where the files live at the top level, not under exporter/)."""
    package = Path(__file__).resolve().parent
    roots = [(package / inside, outside) for inside, outside in ASSET_DIRS]
    if not any(root.is_dir() for root, _ in roots):
        checkout = package.parent
        roots = [(checkout / outside, outside) for _inside, outside in ASSET_DIRS]
    found = [(f"{outside}/{path.relative_to(root).as_posix()}", path)
             for root, outside in roots if root.is_dir()
             for path in sorted(root.rglob("*")) if path.is_file() and path.suffix in ASSET_SUFFIXES]
    return found or None


def _backfill() -> tuple[Callable[[argparse.Namespace], int], Callable[[], argparse.ArgumentParser]]:
    """The backfill command, imported only when asked for: the exporter itself never needs it."""
    from .backfill.cli import backfill, backfill_parser

    return backfill, backfill_parser


# Subcommands: the first argument, its parser, and what runs it. A new subcommand is one more line here.
SUBCOMMANDS: dict[str, tuple[Callable[[], argparse.ArgumentParser], Callable[[argparse.Namespace], int]]] = {
    "authorize": (_authorize_parser, authorize),
    "assets": (_assets_parser, assets),
    "probe": (_probe_parser, probe),
    "backfill": (lambda: _backfill()[1](), lambda args: _backfill()[0](args)),
}


if __name__ == "__main__":
    raise SystemExit(main())
