"""Command line: Go-exporter-style dotted flags, the `authorize` subcommand and the `--demo` mode.

Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad configuration or flags (printed as one line).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlparse

from . import __version__
from .app import Exporter
from .config import REGIONS, Config, ConfigError, load_config, parse_config
from .fetch.auth import OAuth2Auth, TokenFile, TokenFileError, Tokens, authorize_url
from .fetch.envelope import ApiError
from .fetch.transport import Transport
from .logs import FORMATS, LEVELS, register_secrets, setup_logging
from .serve.web import Server, WebConfigError, load_web_config

log = logging.getLogger("exporter")
DEFAULT_LISTEN = ":10027"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _serve_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="isolarcloud-exporter",
                description="Prometheus exporter for the Sungrow iSolarCloud cloud API.",
                epilog="Subcommand: `isolarcloud-exporter authorize --help` sets up OAuth2 tokens.")
    p.add_argument("--config.file", dest="config_file", metavar="PATH", help="YAML configuration file")
    p.add_argument("--web.listen-address", dest="listen", default=DEFAULT_LISTEN, metavar="ADDR",
                   help=f"address to serve on, [host]:port (default {DEFAULT_LISTEN})")
    p.add_argument("--web.config.file", dest="web_config", metavar="PATH",
                   help="exporter-toolkit web configuration: TLS, client certificates, basic auth")
    p.add_argument("--log.level", dest="log_level", default="info", choices=sorted(LEVELS))
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=FORMATS)
    p.add_argument("--demo", action="store_true",
                   help="run against the built-in iSolarCloud simulator: no account needed")
    p.add_argument("--demo.plants", dest="demo_plants", type=int, default=40, metavar="N",
                   help="plants per simulated account in --demo (default 40)")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "authorize":
        return authorize(_authorize_parser().parse_args(args[1:]))
    return serve(_serve_parser().parse_args(args))


def _fail(message: str) -> int:
    print(f"isolarcloud-exporter: {message}", file=sys.stderr)
    return 2


def serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    demo: list[Any] = []
    try:
        if args.demo:
            config, demo = _demo_config(args.demo_plants)
        elif args.config_file:
            config = load_config(args.config_file)
        else:
            return _fail("--config.file is required (or try --demo)")
        register_secrets(config.secrets())
        web = load_web_config(args.web_config)
        exporter = Exporter(config)
        server = Server(args.listen, exporter, web)
    except (ConfigError, WebConfigError, TokenFileError) as exc:
        return _fail(str(exc))
    for warning in config.warnings:
        log.warning("%s", warning)
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
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
    stop.wait()
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
    account = next((a for a in config.accounts if a.name == args.account), None)
    if account is None:
        return _fail(f"--account: no account named {args.account!r} in {args.config_file}")
    auth_config = account.auth
    if auth_config.mode != "oauth2" or auth_config.token_file is None:
        return _fail(f"accounts.{account.name}: authorize needs auth.mode oauth2 and a token_file")
    redirect_uri = args.redirect_uri or auth_config.redirect_uri
    application_id = args.application_id or auth_config.application_id
    if not redirect_uri:
        return _fail(f"accounts.{account.name}.auth.redirect_uri: required (the one registered for the app)")
    register_secrets(config.secrets())
    code = args.code
    if not code:
        if not application_id:
            return _fail(f"accounts.{account.name}.auth.application_id: required to build the authorisation URL")
        region = REGIONS.get(account.region or "")
        host = account.authorize_host or (region.web_host if region else None)
        if host is None or region is None:
            return _fail(f"accounts.{account.name}: set region (or authorize_host) to build the authorisation URL")
        print("Open this URL as the plant owner, approve, and paste the address you are redirected to:\n")
        print(authorize_url(host, region.cloud_id, application_id, redirect_uri) + "\n")
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


if __name__ == "__main__":
    raise SystemExit(main())
