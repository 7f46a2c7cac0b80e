"""The exporter: one engine per account, the exposition cache, and the status page.

The only place that wires the fetch side (transport, auth, API families, collections) to the serve side; the
HTTP server sees it as a `web.Site` through three calls (`metrics`, `index_html`, `ready`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from . import __version__
from .collect.collection import Collection
from .collect.engine import AccountEngine, Settings
from .collect.plant_list import PlantListCollection
from .collect.realtime import RealtimeCollection
from .collect.stats import Stats
from .config import AccountConfig, Config
from .data import AccountState
from .fetch.auth import Auth, LoginAuth, OAuth2Auth
from .fetch.plants import PlantListApi
from .fetch.realtime import RealtimeApi
from .fetch.session import ApiSession
from .fetch.transport import Gateway, Recorder, Transport
from .logs import register_secrets
from .serve import status_page
from .serve.exposition import Exposition, content_type, wants_openmetrics

SCRAPE_MARGIN = 0.5  # answer this long before Prometheus gives up on the scrape


def build_engine(account: AccountConfig, config: Config, clock: Callable[[], float] = time.time, *,
                 gateway: Callable[[Recorder], Gateway] | None = None) -> AccountEngine:
    """An account's engine with its collections, in priority order. `gateway` makes the transport (given the
    recorder of the account's request counters); by default HTTP to the account's base_url."""
    stats = Stats(clock)
    transport = gateway(stats.record_request) if gateway is not None else Transport(
        account.base_url, timeout=config.http_timeout, max_bytes=config.max_response_bytes,
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
    session = ApiSession(transport, auth)
    filters = {"valid_flag": account.valid_flag}
    if account.ps_type:
        filters["ps_type"] = account.ps_type
    if account.ps_name:
        filters["ps_name"] = account.ps_name
    collections: list[Collection] = [
        PlantListCollection(PlantListApi(session, page_size=account.page_size, filters=filters), account, config,
                            stats),
        RealtimeCollection(RealtimeApi(session, batch_size=account.realtime.batch_size,
                                       extra_points=account.realtime.extra_points), account, config, stats),
    ]
    settings = Settings(name=account.name, gateway=account.base_url, budget=account.api_budget_per_hour,
                        max_age=config.max_age)
    return AccountEngine(settings, session, collections, stats, clock=clock)


class Exporter:
    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time,
                 exposition: Exposition | None = None) -> None:
        self.config = config
        register_secrets(config.secrets())  # scrubbed from logs and error texts, whoever embeds us
        self.clock = clock
        self.engines = [build_engine(account, config, clock) for account in config.accounts]
        self.exposition = exposition or Exposition(clock=clock)
        for engine in self.engines:
            engine.on_success = self._prerender

    def _prerender(self) -> None:
        """After a refresh, render the new data in the formats scrapes have asked for, in the refresh thread:
        no scrape waits for a render (0.3 s at 10,000 plants, seconds at 50,000)."""
        self.exposition.prepare(self.states())

    def start(self) -> None:
        """The first refresh starts at start-up, so /-/ready turns true without waiting for a scrape."""
        for engine in self.engines:
            engine.trigger()

    def close(self, grace: float = 0.6) -> None:
        """Stop: first let a token rotation in flight save its new refresh token (within `grace` seconds)."""
        deadline = time.monotonic() + grace
        for engine in self.engines:
            engine.close(max(0.0, deadline - time.monotonic()))

    def states(self) -> list[AccountState]:
        return [engine.state() for engine in self.engines]

    def metrics(self, accept: str | None, gzip: bool, timeout: float | None) -> tuple[list[bytes], str]:
        """Trigger due refreshes, wait only for accounts that have never finished one, render. The body comes
        as pieces to write in order, so that the cached plant section is never copied per scrape."""
        for engine in self.engines:
            engine.trigger()
        budget = (timeout if timeout and timeout > 0 else self.config.scrape_timeout) - SCRAPE_MARGIN
        deadline = time.monotonic() + max(0.1, budget)
        for engine in self.engines:
            engine.wait_first(deadline)
        openmetrics = wants_openmetrics(accept)
        parts = self.exposition.render_parts(self.states(), openmetrics=openmetrics, gzip=gzip)
        return parts, content_type(openmetrics)

    def ready(self) -> bool:
        return all(engine.attempted for engine in self.engines)

    def index_html(self) -> str:
        return status_page.render(self.states(), __version__)
