"""The exporter: one engine per account, the exposition cache, the status page, and configuration reloads.

The only place that wires the fetch side (transport, auth, API families, collections) to the serve side; the
HTTP server sees it as a `web.Site` through four calls (`metrics`, `index_html`, `ready`, `reload`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR

from . import __version__
from .collect.collection import Collection
from .collect.details import DetailsCollection
from .collect.devices import DeviceInventoryCollection, DeviceRealtimeCollection
from .collect.engine import AccountEngine, Settings
from .collect.faults import FaultsCollection
from .collect.plant_list import PlantListCollection
from .collect.quota import QuotaCollection
from .collect.realtime import RealtimeCollection
from .collect.stats import Stats
from .config import AccountConfig, Config, ConfigError
from .data import AccountState
from .fetch.auth import Auth, LoginAuth, OAuth2Auth, TokenFile, TokenFileError, WriteRecorder
from .fetch.details import DetailApi
from .fetch.devices import DeviceListApi, DeviceRealtimeApi
from .fetch.faults import FaultApi
from .fetch.pacing import Pace, Pacers
from .fetch.plants import PlantListApi
from .fetch.quota import CallInfoApi
from .fetch.realtime import RealtimeApi
from .fetch.session import ApiSession
from .fetch.transport import Gateway, PaceRecorder, Recorder, Transport
from .logs import register_secrets
from .serve import status_page
from .serve.exposition import Exposition, content_type, wants_openmetrics
from .serve.metrics import ConfigCollector

log = logging.getLogger("exporter")
SCRAPE_MARGIN = 0.5  # answer this long before Prometheus gives up on the scrape
# How long a reload waits for a token refresh in flight of an account it restarts (the refresh's HTTP call has
# its own deadline, http_timeout; this bounds the wait if that is longer).
RELEASE_TIMEOUT = 35.0
KEEPALIVE_CHECK = 900.0  # seconds between the keep-alive thread's looks at the accounts' refresh tokens


def build_engine(account: AccountConfig, config: Config, clock: Callable[[], float] = time.time, *,
                 gateway: Callable[[Recorder], Gateway] | None = None, pacers: Pacers | None = None,
                 stats: Stats | None = None) -> AccountEngine:
    """An account's engine with its collections, in priority order. `gateway` makes the transport (given the
    recorder of the account's request counters); by default HTTP to the account's base_url, paced by the
    gateway's pacer from `pacers` (shared by the accounts of one gateway; by default the account's own).
    `stats` carries an account's counters (and its hourly budget) over from the engine a reload replaces."""
    stats = stats or Stats(clock)
    session = account_session(account, config, stats.record_request, stats.record_auth, clock, gateway=gateway,
                              pacers=pacers, record_pace=stats.record_pace, record_write=stats.record_token_write)
    collections: list[Collection] = [
        PlantListCollection(plant_list_api(session, account), account, config, stats),
        # Open faults before real-time data: a few calls that name what the plant list only flags.
        FaultsCollection(FaultApi(session, page_size=account.faults.page_size), account, config, stats),
        RealtimeCollection(RealtimeApi(session, batch_size=account.realtime.batch_size,
                                       extra_points=account.realtime.extra_points), account, config, stats),
        DetailsCollection(DetailApi(session, install_power_unit=account.details.install_power_unit), account,
                          config, stats),
        *device_collections(session, account, config, stats),
        QuotaCollection(CallInfoApi(session), account),
    ]
    settings = Settings(name=account.name, gateway=account.base_url, budget=account.api_budget_per_hour,
                        max_age=config.max_age, refresh_token_renew_before=config.refresh_token_renew_before,
                        budget_auto=account.api_budget_auto, budget_margin=account.api_quota.margin)
    return AccountEngine(settings, session, collections, stats, clock=clock)


def account_session(account: AccountConfig, config: Config, record: Recorder, record_auth: Callable[[str, str], None],
                    clock: Callable[[], float] = time.time, *,
                    gateway: Callable[[Recorder], Gateway] | None = None, pacers: Pacers | None = None,
                    record_pace: PaceRecorder | None = None,
                    record_write: WriteRecorder | None = None) -> ApiSession:
    """An account's signed session: its transport (HTTP to base_url, paced by its gateway's pacer from `pacers`,
    unless `gateway` makes one) and its auth, counting every request through `record`, every token refresh or
    login through `record_auth`, pacing events through `record_pace` and token file writes through
    `record_write`. The exporter and `isolarcloud-exporter backfill` build theirs here."""
    transport = gateway(record) if gateway is not None else Transport(
        account.base_url, timeout=config.http_timeout, max_bytes=config.max_response_bytes, record=record,
        pacer=(pacers or Pacers()).get(account.base_url, pace(account)), record_pace=record_pace)
    a = account.auth
    auth: Auth
    if a.mode == "oauth2":
        auth = OAuth2Auth.from_config(transport, appkey=a.appkey, secret_key=a.secret_key, lang=account.lang,
                                      access_token=a.access_token, refresh_token=a.refresh_token,
                                      token_file=a.token_file, record_auth=record_auth, clock=clock,
                                      record_write=record_write, account=account.name)
    else:
        auth = LoginAuth(transport, appkey=a.appkey, secret_key=a.secret_key, lang=account.lang,
                         user_account=a.user_account or "", user_password=a.user_password or "",
                         record_auth=record_auth, clock=clock, account=account.name)
    return ApiSession(transport, auth)


def plant_list_api(session: ApiSession, account: AccountConfig) -> PlantListApi:
    """The account's plant list with its configured filters."""
    filters = {"valid_flag": account.valid_flag}
    if account.ps_type:
        filters["ps_type"] = account.ps_type
    if account.ps_name:
        filters["ps_name"] = account.ps_name
    return PlantListApi(session, page_size=account.page_size, filters=filters)


def pace(account: AccountConfig) -> Pace:
    limit = account.rate_limit
    return Pace(burst=limit.burst, per_second=limit.per_second, max_retry_after=limit.max_retry_after)


def check_token_files(config: Config) -> None:
    """Every existing token file parses (read only: a running engine may own it). Raises TokenFileError."""
    for account in config.accounts:
        if account.auth.mode == "oauth2" and account.auth.token_file is not None:
            TokenFile(account.auth.token_file).load()


def _engine_key(account: AccountConfig, config: Config) -> tuple[AccountConfig, Config]:
    """What an account's engine is built from: its own settings and the global ones that reach the engines (all
    but the account list, the warnings and the first scrapes' timeout). A reload restarts an account when this
    changes."""
    return account, replace(config, accounts=(), warnings=(), scrape_timeout=0.0)


def device_collections(session: ApiSession, account: AccountConfig, config: Config,
                       stats: Stats) -> list[Collection]:
    """The device inventory and device real-time data, after the plant collections in priority."""
    devices = account.devices
    inventory = DeviceInventoryCollection(
        DeviceListApi(session, page_size=devices.page_size, firmware=devices.firmware,
                      device_types=devices.device_types), account, config, stats)
    realtime = DeviceRealtimeCollection(
        DeviceRealtimeApi(session, batch_size=devices.realtime.batch_size, points=devices.realtime.points),
        inventory, account, config)
    return [inventory, realtime]


class Exporter:
    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time,
                 exposition: Exposition | None = None, loader: Callable[[], Config] | None = None,
                 config_path: str | Path | None = None, dashboard_url: str | None = None) -> None:
        """`loader` reads the configuration again for a reload (None: nothing to reload); `config_path` and
        `dashboard_url` are shown on the status page."""
        self.config = config
        register_secrets(config.secrets())  # scrubbed from logs and error texts, whoever embeds us
        self.clock = clock
        # One pacer per gateway for the whole process: accounts sharing a gateway share its rate limit.
        self.pacers = Pacers()
        self.loader = loader
        self.config_path = str(config_path) if config_path is not None else None
        self.dashboard_url = dashboard_url
        self.started = clock()
        self.reload_ok = True
        self.reload_success_at = self.started
        self._reload_lock = threading.Lock()
        self.engines = [build_engine(account, config, clock, pacers=self.pacers) for account in config.accounts]
        self._keys = {account.name: _engine_key(account, config) for account in config.accounts}
        self.exposition = exposition or Exposition(runtime_collectors=[
            ConfigCollector(lambda: (self.reload_ok, self.reload_success_at)),
            PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR], clock=clock)
        for engine in self.engines:
            engine.on_success = self._prerender
        self._stopping = threading.Event()
        self._keepalive_thread: threading.Thread | None = None

    def _prerender(self) -> None:
        """After a refresh, render the new data in the formats scrapes have asked for, in the refresh thread:
        no scrape waits for a render (0.3 s at 10,000 plants, seconds at 50,000)."""
        self.exposition.prepare(self.states())

    def start(self) -> None:
        """The first refresh starts at start-up, so /-/ready turns true without waiting for a scrape; the
        keep-alive thread starts with it."""
        for engine in self.engines:
            engine.trigger()
        if self._keepalive_thread is None and any(e.auth.mode == "oauth2" for e in self.engines):
            self._keepalive_thread = threading.Thread(target=self._keepalive_loop, name="token-keepalive",
                                                      daemon=True)
            self._keepalive_thread.start()

    def keepalive(self) -> int:
        """Renew every OAuth2 refresh token that would lapse soon, also when nobody scrapes; the number
        renewed. What the keep-alive thread runs every KEEPALIVE_CHECK seconds."""
        return sum(1 for engine in self.engines if engine.keepalive_due() and engine.keepalive())

    def _keepalive_loop(self) -> None:
        while not self._stopping.wait(KEEPALIVE_CHECK):
            try:
                self.keepalive()
            except Exception:  # never let the thread die: the next look may succeed
                logging.getLogger(__name__).exception("token keep-alive failed")

    def close(self, grace: float = 0.6) -> None:
        """Stop: first let a token rotation in flight save its new refresh token (within `grace` seconds)."""
        self._stopping.set()
        deadline = time.monotonic() + grace
        with self._reload_lock:  # not halfway through a reload
            for engine in self.engines:
                engine.close(max(0.0, deadline - time.monotonic()))

    def states(self, engines: Sequence[AccountEngine] | None = None) -> list[AccountState]:
        return [engine.state() for engine in (self.engines if engines is None else engines)]

    def metrics(self, accept: str | None, gzip: bool, timeout: float | None) -> tuple[list[bytes], str]:
        """Trigger due refreshes, wait only for accounts that have never finished one, render. The body comes
        as pieces to write in order, so that the cached plant section is never copied per scrape."""
        engines = self.engines  # one list for the whole scrape, even if a reload swaps it meanwhile
        for engine in engines:
            engine.trigger()
        budget = (timeout if timeout and timeout > 0 else self.config.scrape_timeout) - SCRAPE_MARGIN
        deadline = time.monotonic() + max(0.1, budget)
        for engine in engines:
            engine.wait_first(deadline)
        openmetrics = wants_openmetrics(accept)
        parts = self.exposition.render_parts(self.states(engines), openmetrics=openmetrics, gzip=gzip)
        return parts, content_type(openmetrics)

    def ready(self) -> str | None:
        """None when ready; else why not, in one line."""
        states = self.states()
        pending = [s.name for s in states if not s.attempted]
        if pending:
            return f"first refresh pending: {', '.join(pending)}"
        unsaved = [f"{s.name}: token file {s.stats.token_file_error}" for s in states if s.stats.token_file_error]
        if unsaved:
            return "; ".join(unsaved)
        return None

    def index_html(self) -> str:
        return status_page.render(
            self.states(), __version__, now=self.clock(), started=self.started, config_path=self.config_path,
            dashboard_url=self.dashboard_url, reload_ok=self.reload_ok, reload_success_at=self.reload_success_at)

    # -- reload -------------------------------------------------------------------------------------------

    def reload(self) -> tuple[bool, str]:
        """Read the configuration again and apply it: accounts whose settings are unchanged keep their engine
        (data, tokens, counters); changed ones restart (keeping their counters, so the hourly budget holds);
        removed ones stop and their series go; new ones start. A configuration that does not load changes
        nothing. Returns whether it worked and a one-line message."""
        with self._reload_lock:
            if self.loader is None:
                return self._reload_failed("no configuration file to read again")
            try:
                config = self.loader()
                check_token_files(config)
            except (ConfigError, TokenFileError) as exc:
                return self._reload_failed(str(exc))
            return self._apply(config)

    def _reload_failed(self, why: str) -> tuple[bool, str]:
        self.reload_ok = False
        log.error("configuration reload failed, keeping the running configuration: %s", why)
        return False, f"reload failed: {why}"

    def _apply(self, config: Config) -> tuple[bool, str]:
        old = {engine.name: engine for engine in self.engines}
        keys = {account.name: _engine_key(account, config) for account in config.accounts}
        unchanged = {name for name, key in keys.items() if self._keys.get(name) == key}
        retiring = [engine for name, engine in old.items() if name not in unchanged]
        held: dict[str, AccountEngine] = {}
        for engine in retiring:
            # One owner per token file: the old engine lets go (a token refresh in flight saves first) before
            # its successor reads the file.
            if not engine.retire(RELEASE_TIMEOUT):
                held[engine.name] = engine
        problems = [f"account {name} kept its previous settings: its credentials could not be handed over ("
                    + (f"the rotated refresh token is only in memory: token file {error}"
                       if (error := engine.stats.view().token_file_error) else "a token refresh is still in flight")
                    + ")" for name, engine in held.items()]
        engines: list[AccountEngine] = []
        new_keys: dict[str, tuple[AccountConfig, Config]] = {}
        started: list[str] = []
        for account in config.accounts:
            name = account.name
            if name in unchanged:
                engines.append(old[name])
                new_keys[name] = keys[name]
                continue
            if name in held:
                engines.append(held[name])
                new_keys[name] = self._keys[name]
                continue
            previous = old.get(name)
            try:
                engine = build_engine(account, config, self.clock, pacers=self.pacers,
                                      stats=previous.stats if previous else None)
            except (TokenFileError, OSError) as exc:
                problems.append(f"account {name} not started: {exc}")
                continue
            engine.on_success = self._prerender
            engines.append(engine)
            new_keys[name] = keys[name]
            started.append(name)
        for name, engine in held.items():  # a held account the new file removes keeps running too
            if name not in keys:
                engines.append(engine)
                new_keys[name] = self._keys[name]
        register_secrets(config.secrets())
        removed = sorted(set(old) - set(keys) - set(held))
        restarted = [name for name in started if name in old]
        added = [name for name in started if name not in old]
        # Swapped in one assignment: a scrape uses either the old list or the new one, never a mix.
        self.engines, self._keys, self.config = engines, new_keys, config
        for warning in config.warnings:
            log.warning("%s", warning)
        for engine in engines:
            engine.trigger()
        summary = (f"{len(unchanged)} unchanged, restarted [{', '.join(restarted)}], added [{', '.join(added)}], "
                   f"removed [{', '.join(removed)}]")
        if problems:
            return self._reload_failed(f"{'; '.join(problems)} ({summary})")
        self.reload_ok = True
        self.reload_success_at = self.clock()
        log.info("configuration reloaded: %s", summary)
        return True, f"configuration reloaded: {summary}"
