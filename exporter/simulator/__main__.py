"""`python -m exporter.simulator` / `isolarcloud-simulator`: serve a simulated gateway until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from .simulator import Simulator

DEMO_REDIRECT_URI = "http://localhost/callback"


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def _rate(value: str) -> tuple[int, float]:
    burst, sep, rate = value.partition(":")
    try:
        parsed = (int(burst), float(rate))
    except ValueError:
        parsed = (0, 0.0)
    if not sep or parsed[0] < 1 or not parsed[1] > 0:
        raise argparse.ArgumentTypeError("expected BURST:PER_SECOND, e.g. 15:10")
    return parsed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="isolarcloud-simulator", description=__doc__)
    p.add_argument("--listen-address", type=_listen, default=("127.0.0.1", 8080), metavar="HOST:PORT")
    p.add_argument("--plants", type=int, default=25)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--total-key", choices=("rowCount", "row_count", "none"), default="rowCount")
    p.add_argument("--max-page-size", type=int, default=None)
    p.add_argument("--max-realtime-plants", type=int, default=None, metavar="N",
                   help="refuse real-time calls for more than N plants (the limit is undocumented)")
    p.add_argument("--realtime-limit-style", choices=("010", "009", "message"), default="010",
                   help="how a real-time batch over --max-realtime-plants is refused")
    p.add_argument("--expired-token-style", choices=("envelope", "oauth_error"), default="oauth_error")
    p.add_argument("--legacy-units", choices=("portal", "varied"), default="portal",
                   help="varied: legacy energy units kW·h, 千瓦时, 万千瓦时 and an empty unit on some plants")
    p.add_argument("--rate-limit", type=_rate, default=None, metavar="BURST:PER_SECOND",
                   help="the gateway's limiter scenario (HTTP 429 beyond it), e.g. 15:10 as recorded")
    p.add_argument("--no-retry-after", action="store_true", help="429 answers without Retry-After")
    p.add_argument("--access-token-calls", type=int, default=None, metavar="N",
                   help="revoke each access token after N calls (a gateway that revokes tokens early)")
    p.add_argument("--install-power-unit", choices=("W", "kW"), default="W",
                   help="unit of getPowerStationDetail install_power (the reference does not say)")
    p.add_argument("--device-fail-keys", choices=("recorded", "table"), default="recorded",
                   help="fail_ps_key_list/fail_sn_list (recorded) or illegal_ps_key_list/illgal_sn_list (table)")
    p.add_argument("--device-claim-key", choices=("mixed", "claim_state", "rel_state", "both"), default="mixed")
    p.add_argument("--update-time-style", choices=("clock", "data"), default="clock",
                   help="update_time follows the clock (default) or the plant's data uploads")
    p.add_argument("--token-answer-shape", choices=("result_data", "top_level", "both"), default="result_data")
    p.add_argument("--page-size-over-limit", choices=("clamp", "reject"), default="clamp",
                   help="what a page size above --max-page-size gets")
    p.add_argument("--history-current-day", choices=("none", "lagged"), default="none",
                   help="minute history of the current day: none (reference text) or up to 5 minutes ago (recorded)")
    p.add_argument("--history-window", choices=("closed", "left_open"), default="closed",
                   help="whether a minute window's start row is included (closed) or not (left_open)")
    p.add_argument("--history-types", choices=("recorded", "table"), default="recorded",
                   help="history values and time_stamp as strings (recorded) or numbers (field tables)")
    p.add_argument("--history-gap-rate", type=float, default=0.08, metavar="R",
                   help="share of plant-days with a stretch of missing minute rows")
    p.add_argument("--open-faults", type=int, default=None, metavar="N",
                   help="exactly N open fault/alarm records across the fleet")
    p.add_argument("--appkey", default="DEMOAPPKEY00000000000000000000001")
    p.add_argument("--secret-key", default="demo-secret-key")
    p.add_argument("--user", default="demo@example.com")
    p.add_argument("--password", default="demo-password")
    p.add_argument("--tokens-file", default=None,
                   help="write freshly issued OAuth tokens (JSON) here, for a demo exporter to pick up")
    p.add_argument("--log-requests", action="store_true", help="an access log line per request on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    host, port = args.listen_address
    sim = Simulator(
        plants=args.plants, seed=args.seed, host=host, port=port, appkey=args.appkey,
        secret_key=args.secret_key, users={args.user: args.password},
        total_key=None if args.total_key == "none" else args.total_key, max_page_size=args.max_page_size,
        max_realtime_plants=args.max_realtime_plants, realtime_limit_style=args.realtime_limit_style,
        expired_token_style=args.expired_token_style, log_requests=args.log_requests,
        install_power_unit=args.install_power_unit, device_fail_keys=args.device_fail_keys,
        device_claim_key=args.device_claim_key, legacy_units=args.legacy_units,
        rate_limit=args.rate_limit, rate_limit_retry_after=not args.no_retry_after,
        access_token_calls=args.access_token_calls, update_time_style=args.update_time_style,
        token_answer_shape=args.token_answer_shape, page_size_over_limit=args.page_size_over_limit,
        history_current_day=args.history_current_day,
        history_window=args.history_window, history_types=args.history_types,
        history_gap_rate=args.history_gap_rate,
    )
    if args.open_faults is not None:
        sim.set_open_fault_count(args.open_faults)
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sim.start()
    tokens = sim.issue_tokens()
    if args.tokens_file:
        with open(args.tokens_file, "w", encoding="utf-8") as fh:
            json.dump(tokens, fh)
    print(f"iSolarCloud simulator listening on {sim.url} ({args.plants} plants, seed {args.seed})")
    print(f"  appkey:        {args.appkey}")
    print(f"  secret key:    {args.secret_key}  (header x-access-key)")
    print(f"  legacy login:  {args.user} / {args.password}")
    print(f"  access token:  {tokens['access_token']}")
    print(f"  refresh token: {tokens['refresh_token']}")
    print(f"  authorize:     {sim.url}/authorized-app?redirectUrl={DEMO_REDIRECT_URI}")
    sys.stdout.flush()
    while not done.wait(1.0):
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
