"""An iSolarCloud gateway in memory, for unit tests of the fetch side and the engine without sockets.

Each test says what the gateway answers, per endpoint, as a function of the request body (or a list of
answers, one per call). Answers are whole JSON documents (envelopes), judged by the real `Gateway.post`, so
these tests exercise the exporter's own envelope handling. End-to-end behaviour is tested against the
simulator over HTTP; these tests pin the rules (paging, budgets, scheduling) in milliseconds.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from exporter.fetch.auth import Auth, LoginAuth, OAuth2Auth, Tokens
from exporter.fetch.envelope import decode, endpoint_name
from exporter.fetch.session import ApiSession
from exporter.fetch.transport import Gateway

if TYPE_CHECKING:
    from exporter.collect.engine import AccountEngine

Answer = dict[str, Any] | Exception
Handler = Callable[[dict[str, Any]], Answer]


def ok(data: Any) -> dict[str, Any]:
    return {"req_serial_num": "0" * 32, "result_code": "1", "result_msg": "success", "result_data": data}


def fail(code: str, message: str = "error") -> dict[str, Any]:
    return {"req_serial_num": "0" * 32, "result_code": code, "result_msg": message, "result_data": None}


class FakeGateway(Gateway):
    def __init__(self, handlers: dict[str, Handler | list[Answer]] | None = None) -> None:
        self.handlers: dict[str, Handler | list[Answer]] = dict(handlers or {})
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.results: Counter[tuple[str, str]] = Counter()
        self.record = self._record

    def _record(self, endpoint: str, result: str) -> None:
        self.results[(endpoint, result)] += 1

    def attach(self, record: Callable[[str, str], None]) -> FakeGateway:
        """Also report every call to `record` (an account's request counters), as the real transport does."""

        def both(endpoint: str, result: str) -> None:
            self._record(endpoint, result)
            record(endpoint, result)

        self.record = both
        return self

    def on(self, endpoint: str, handler: Handler | list[Answer]) -> None:
        self.handlers[endpoint] = handler

    def post_document(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        endpoint = endpoint_name(path)
        self.calls.append((endpoint, body, headers))
        handler = self.handlers.get(endpoint)
        if handler is None:
            raise AssertionError(f"unexpected call to {endpoint}")
        answer = handler.pop(0) if isinstance(handler, list) else handler(body)
        if isinstance(answer, Exception):
            raise answer
        # Through JSON and the real decoder, as an answer from the wire would go (OAuth-style errors included).
        return decode(endpoint, json.dumps(answer).encode())

    def count(self, endpoint: str) -> int:
        return sum(1 for name, _body, _headers in self.calls if name == endpoint)


def token_answers(prefix: str = "t") -> Handler:
    """A refreshToken endpoint that rotates: each call issues access/refresh tokens numbered 1, 2, …"""
    issued = Counter[str]()

    def refresh(body: dict[str, Any]) -> dict[str, Any]:
        issued["n"] += 1
        n = issued["n"]
        return ok({"access_token": f"{prefix}-access-{n}", "refresh_token": f"{prefix}-refresh-{n}",
                   "token_type": "bearer", "expires_in": 172799, "code": "1"})

    return refresh


def oauth_session(gateway: FakeGateway, *, clock: Callable[[], float], refresh_token: str = "r0",
                  access_token: str | None = "a0", auth_log: Counter[tuple[str, str]] | None = None) -> ApiSession:
    log = auth_log if auth_log is not None else Counter()
    auth: Auth = OAuth2Auth(gateway, appkey="APPKEY", secret_key="SECRET", lang="_en_US",
                            tokens=Tokens(access_token=access_token, refresh_token=refresh_token), token_file=None,
                            record_auth=lambda kind, result: log.update([(kind, result)]), clock=clock)
    return ApiSession(gateway, auth)


def login_session(gateway: FakeGateway, *, clock: Callable[[], float],
                  auth_log: Counter[tuple[str, str]] | None = None) -> ApiSession:
    log = auth_log if auth_log is not None else Counter()
    auth: Auth = LoginAuth(gateway, appkey="APPKEY", secret_key="SECRET", lang="_en_US", user_account="user",
                           user_password="password", record_auth=lambda kind, result: log.update([(kind, result)]),
                           clock=clock)
    return ApiSession(gateway, auth)


def plant_row(ps_id: Any, **fields: Any) -> dict[str, Any]:
    """A queryPowerStationList row with the documented fields (the Quick Start example's values)."""
    row: dict[str, Any] = {
        "ps_id": ps_id, "ps_name": f"Plant {ps_id}", "description": None, "ps_type": 4, "online_status": 1,
        "valid_flag": 1, "grid_connection_status": 1, "install_date": "2023-08-08 15:28:00", "ps_location": "Hefei",
        "latitude": 31.86, "longitude": 117.28, "ps_fault_status": 3, "connect_type": 2,
        "update_time": "2024-01-02 03:04:05", "ps_current_time_zone": "GMT+8",
        "grid_connection_time": 20230808152800, "build_status": 2,
    }
    row.update(fields)
    return row


def paged_list(rows: list[dict[str, Any]], *, total_key: str | None = "row_count", max_size: int | None = None,
               page_key: str = "page") -> Handler:
    """A plant list that pages `rows` as asked (clamped to `max_size` rows per page, silently)."""

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        size = int(body["size"]) if max_size is None else min(int(body["size"]), max_size)
        page = int(body[page_key])
        data: dict[str, Any] = {"pageList": rows[(page - 1) * size: page * size]}
        if total_key:
            data[total_key] = len(rows)
        return ok(data)

    return answer


OAUTH2 = {"mode": "oauth2", "appkey": "APPKEY", "secret_key": "SECRET", "refresh_token": "r0"}


def engine_on(gateway: FakeGateway, clock: Callable[[], float], account: dict[str, Any],
              auth: dict[str, Any] | None = None) -> AccountEngine:
    """The engine the exporter builds for one account (app.build_engine), talking to `gateway`. `account`: the
    account's configuration keys; `refresh_interval` and `max_age` in it are the top-level ones."""
    from exporter.app import build_engine
    from exporter.config import parse_config

    account = dict(account)
    top = {k: account.pop(k) for k in ("refresh_interval", "max_age") if k in account}
    config = parse_config({"refresh_interval": 300, **top, "accounts": [{
        "name": "a", "base_url": "http://gateway.invalid", **account, "auth": auth or OAUTH2}]}, env={})
    return build_engine(config.accounts[0], config, clock, gateway=gateway.attach)
