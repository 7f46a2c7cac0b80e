"""The exporter: one poller per account, the exposition cache, and the status page.

This is the only place that wires configuration, API client, auth and pollers together; the HTTP layer sees it
through three calls (`metrics`, `index_html`, `ready`).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from datetime import datetime, timezone

from . import __version__
from .api import IsolarcloudApi
from .auth import Auth, LoginAuth, OAuth2Auth
from .client import Transport
from .config import AccountConfig, Config
from .exposition import Exposition, content_type, wants_openmetrics
from .logs import register_secrets
from .poller import AccountPoller, AccountState, Stats

SCRAPE_MARGIN = 0.5  # answer this long before Prometheus gives up on the scrape


def build_poller(account: AccountConfig, config: Config, clock: Callable[[], float] = time.time) -> AccountPoller:
    stats = Stats(clock)
    transport = Transport(account.base_url, timeout=config.http_timeout, max_bytes=config.max_response_bytes,
                          record=stats.record_request)
    a = account.auth
    auth: Auth
    if a.mode == "oauth2":
        auth = OAuth2Auth.from_config(transport, appkey=a.appkey, secret_key=a.secret_key, lang=account.lang,
                                      access_token=a.access_token, refresh_token=a.refresh_token,
                                      token_file=a.token_file, record_auth=stats.record_auth, clock=clock)
    else:
        auth = LoginAuth(transport, appkey=a.appkey, secret_key=a.secret_key, lang=account.lang,
                         user_account=a.user_account or "", user_password=a.user_password or "",
                         record_auth=stats.record_auth, clock=clock)
    filters = {"valid_flag": account.valid_flag}
    if account.ps_type:
        filters["ps_type"] = account.ps_type
    if account.ps_name:
        filters["ps_name"] = account.ps_name
    api = IsolarcloudApi(transport, auth, page_size=account.page_size, filters=filters)
    return AccountPoller(account, config, api, auth, stats, clock=clock)


class Exporter:
    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time,
                 exposition: Exposition | None = None) -> None:
        self.config = config
        register_secrets(config.secrets())  # scrubbed from logs and error texts, whoever embeds us
        self.clock = clock
        self.pollers = [build_poller(account, config, clock) for account in config.accounts]
        self.exposition = exposition or Exposition()
        for poller in self.pollers:
            poller.on_success = self._prerender

    def _prerender(self) -> None:
        """After a refresh, render the new snapshot in the formats scrapes have asked for, in the refresh thread:
        no scrape waits for a render (0.3 s at 10,000 plants, seconds at 50,000)."""
        self.exposition.prepare(self.states())

    def start(self) -> None:
        """The first refresh starts at start-up, so /-/ready turns true without waiting for a scrape."""
        for poller in self.pollers:
            poller.trigger()

    def close(self, grace: float = 0.6) -> None:
        """Stop: first let a token rotation in flight save its new refresh token (within `grace` seconds)."""
        deadline = time.monotonic() + grace
        for poller in self.pollers:
            settle = getattr(poller.auth, "settle", None)
            if settle is not None:
                settle(max(0.0, deadline - time.monotonic()))
        for poller in self.pollers:
            poller.api.transport.close()

    def states(self) -> list[AccountState]:
        return [poller.state() for poller in self.pollers]

    def metrics(self, accept: str | None, gzip: bool, timeout: float | None) -> tuple[list[bytes], str]:
        """Trigger due refreshes, wait only for accounts that have never finished one, render. The body comes
        as pieces to write in order, so that the cached plant section is never copied per scrape."""
        for poller in self.pollers:
            poller.trigger()
        budget = (timeout if timeout and timeout > 0 else self.config.scrape_timeout) - SCRAPE_MARGIN
        deadline = time.monotonic() + max(0.1, budget)
        for poller in self.pollers:
            poller.wait_first(deadline)
        openmetrics = wants_openmetrics(accept)
        parts = self.exposition.render_parts(self.states(), openmetrics=openmetrics, gzip=gzip)
        return parts, content_type(openmetrics)

    def ready(self) -> bool:
        return all(poller.attempted for poller in self.pollers)

    def index_html(self) -> str:
        rows = []
        for poller, state in zip(self.pollers, self.states(), strict=True):
            plants = len(state.snapshot.plants) if state.snapshot else "–"
            status = "up" if state.up else ("starting" if not state.attempted else "down")
            rows.append(
                "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in (
                    state.name, poller.auth.mode, poller.account.base_url, status, plants,
                    _when(state.last_success), _when(state.last_attempt),
                    f"{state.interval:.0f}s", _when(state.backoff_until),
                    state.last_error or "")) + "</tr>")
        header = "".join(f"<th>{h}</th>" for h in (
            "account", "auth", "gateway", "state", "plants", "last success", "last attempt", "interval",
            "backing off until", "last error"))
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>iSolarCloud exporter</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}</style></head><body>"
            f"<h1>iSolarCloud exporter</h1><p>Version {html.escape(__version__)}. "
            "<a href='/metrics'>Metrics</a> · <a href='/-/healthy'>healthy</a> · <a href='/-/ready'>ready</a></p>"
            f"<table><tr>{header}</tr>{''.join(rows)}</table></body></html>"
        )


def _when(ts: float | None) -> str:
    if not ts:
        return "never" if ts is None else ""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
