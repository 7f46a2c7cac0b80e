"""HTTP transport to an iSolarCloud gateway: one POST, the envelope, and a typed error for every failure.

Every request is reported to a `record(endpoint, result)` callback so that each call, good or bad, shows up in
`isolarcloud_api_requests_total`. Nothing here ever puts a request body, header or token into an error message.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection

from .logs import scrub

Recorder = Callable[[str, str], None]

# Result codes after which retrying soon only burns quota or makes things worse [doc: Appendix 2].
QUOTA_CODES = {"E999", "E998", "E901", "E916", "E903"}
# Codes that mean the token is gone: refresh or log in again, once.
TOKEN_CODES = {"E00003", "30001"}
# Codes that mean the credentials themselves are wrong: no retry will help.
CREDENTIAL_CODES = {"E00000", "E00001", "E900", "E912", "E914", "E918", "E919", "001", "E911"}


class ApiError(Exception):
    """A failed API call. `result` is the metric label; the message is safe to log and show."""

    def __init__(self, endpoint: str, result: str, message: str) -> None:
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint
        self.result = result


class TransportError(ApiError):
    """No usable HTTP answer: refused, DNS, TLS, timeout, HTTP error status, oversized body."""


class ResponseError(ApiError):
    """An answer that is not the documented envelope or shape."""


class TokenError(ApiError):
    """The access or login token is invalid or expired (E00003, `invalid_token`)."""


class QuotaError(ApiError):
    """Quota or rate limit (E999 hourly, E998 monthly, E901, E916 logins too frequent)."""


class CredentialError(ApiError):
    """Appkey, secret key, password or refresh token rejected: needs a human."""


class ResultError(ApiError):
    """Any other non-success result code."""


def _classify_exception(exc: Exception, cut: bool = False, timeout: float = 0.0) -> tuple[str, str]:
    """A requests exception → (metric result, safe message); `cut` when the deadline watchdog ended it."""
    if cut:
        return "timeout", f"response not complete within {timeout:g}s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls_error", "TLS error"
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout)):
        return "timeout", "timed out"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError":
            return "dns_error", "name resolution failed"
        if isinstance(cause, ConnectionRefusedError):
            return "connection_refused", "connection refused"
        cause = cause.__cause__ or cause.__context__ or _reason(cause)
    return "connection_error", f"connection failed ({type(exc).__name__})"


class _Watchdog:
    """Cuts the connection of one request at its total deadline.

    requests' read timeout applies to each socket read, so a server that drips a byte now and then (headers
    included) would hold a refresh forever; shutting the socket down makes the blocked read return at once.
    """

    def __init__(self, seconds: float) -> None:
        self.connection: HTTPConnection | None = None
        self.cut = False
        self.done = False
        self._lock = threading.Lock()
        self._arm(seconds)

    def _arm(self, seconds: float) -> None:
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.cut = True
            sock = getattr(self.connection, "sock", None)
            if sock is None:  # still connecting (bounded by the connect timeout): look again shortly
                self._arm(0.1)
                return
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket call, also for TLS sockets

    def stop(self) -> None:
        with self._lock:
            self.done = True
            self._timer.cancel()


_current = threading.local()  # the watchdog of the request the calling thread is making


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> Any:
        watchdog = getattr(_current, "watchdog", None)
        if watchdog is not None:
            watchdog.connection = self
        return super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # HTTP(S) proxies; SOCKS pools keep their own classes
            manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager


def _reason(exc: BaseException) -> BaseException | None:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], BaseException) else None


class Transport:
    """Posts JSON to one gateway with a total deadline and a response size cap."""

    def __init__(self, base_url: str, *, timeout: float, max_bytes: int, record: Recorder,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.record = record
        self.session = session or requests.Session()
        # The gateway is reached directly; a proxy from the environment is still honoured by requests.
        self.session.headers["User-Agent"] = "isolarcloud-exporter"
        if self.session.trust_env:
            # What requests reads from the environment on every call (proxies and no_proxy for this URL, the CA
            # bundle variables, ~/.netrc), read once: the gateway never changes and re-reading cost ~0.4 ms per
            # call, a third of a call's client CPU (~0.1 s per refresh of 10,000 plants). Same precedence: the
            # environment's proxies win over preset session ones, as requests merges them.
            self.session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle and self.session.verify is True:
                self.session.verify = bundle
            if self.session.auth is None:
                self.session.auth = requests.utils.get_netrc_auth(self.base_url)
            self.session.trust_env = False
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, _WatchedAdapter())

    def close(self) -> None:
        self.session.close()

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str],
             require_list: str | None = None) -> dict[str, Any]:
        """POST and return `result_data` (a dict) of a successful envelope, or raise an ApiError subclass.
        `require_list` names a key of `result_data` that must hold a list: a call without it is recorded as
        invalid_response, not as a success."""
        endpoint = endpoint_name(path)
        try:
            data = envelope(endpoint, self.fetch(path, body, headers))
            if require_list is not None and not isinstance(data.get(require_list), list):
                raise ResponseError(endpoint, "invalid_response", f"result_data has no {require_list} list")
        except ApiError as exc:
            self.record(endpoint, exc.result)
            raise
        self.record(endpoint, "1")
        return data

    def fetch(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """POST and return the decoded JSON object, unjudged and unrecorded (token calls judge it themselves)."""
        endpoint = endpoint_name(path)
        return decode(endpoint, self._send(path, endpoint, body, headers))

    def _send(self, path: str, endpoint: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
        deadline = time.monotonic() + self.timeout
        watchdog = _current.watchdog = _Watchdog(self.timeout)
        try:
            return self._exchange(path, endpoint, body, headers, deadline, watchdog)
        finally:
            watchdog.stop()
            _current.watchdog = None

    def _exchange(self, path: str, endpoint: str, body: dict[str, Any], headers: dict[str, str], deadline: float,
                  watchdog: _Watchdog) -> bytes:
        try:
            response = self.session.post(
                self.base_url + path,
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json;charset=UTF-8", **headers},
                timeout=(min(self.timeout, 10.0), self.timeout),
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.RequestException as exc:
            result, message = _classify_exception(exc, watchdog.cut, self.timeout)
            raise TransportError(endpoint, result, message) from None
        try:
            chunks: list[bytes] = []
            size = 0
            # Read in chunks against a total deadline: a server that drips one byte at a time never trips
            # the per-read timeout, and a huge body must not be held in memory.
            for chunk in response.iter_content(chunk_size=65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > self.max_bytes:
                    raise TransportError(endpoint, "too_large",
                                         f"response larger than {self.max_bytes} bytes, abandoned")
                if time.monotonic() > deadline:
                    raise TransportError(endpoint, "timeout", f"response not complete within {self.timeout:g}s")
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            result, message = _classify_exception(exc, watchdog.cut, self.timeout)
            raise TransportError(endpoint, result, message) from None
        finally:
            response.close()
        raw = b"".join(chunks)
        if response.status_code != 200:
            oauth = _oauth_error(raw)
            if oauth is not None:
                raise _oauth_exception(endpoint, oauth)
            raise TransportError(endpoint, f"http_{response.status_code}", f"HTTP {response.status_code}")
        return raw



def endpoint_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def decode(endpoint: str, raw: bytes) -> dict[str, Any]:
    """Bytes → JSON object; an OAuth-style error object raises like an error result code."""
    if not raw.strip():
        raise ResponseError(endpoint, "invalid_response", "empty response body")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise ResponseError(endpoint, "invalid_response", "response is not JSON") from None
    if not isinstance(doc, dict):
        raise ResponseError(endpoint, "invalid_response", f"response is a JSON {type(doc).__name__}, not an object")
    oauth = _oauth_error_doc(doc)
    if oauth is not None:
        raise _oauth_exception(endpoint, oauth)
    return doc


def check_result(endpoint: str, doc: dict[str, Any]) -> None:
    """Raise the typed error for a non-"1" `result_code` (a string per the portal; 1 also accepted)."""
    code = doc.get("result_code")
    if code is None:
        raise ResponseError(endpoint, "invalid_response", "response has no result_code")
    code = str(code).strip()
    if code == "1":
        return
    message = _safe_message(doc.get("result_msg"))
    label = "".join(ch for ch in code if ch.isalnum() or ch in "-_")[:16] or "empty"
    if code in TOKEN_CODES:
        raise TokenError(endpoint, label, f"token invalid or expired ({code} {message})")
    if code in QUOTA_CODES:
        raise QuotaError(endpoint, label, f"quota or rate limit ({code} {message})")
    if code in CREDENTIAL_CODES:
        raise CredentialError(endpoint, label, f"credentials rejected ({code} {message})")
    raise ResultError(endpoint, label, f"result_code {label} {message}")


def envelope(endpoint: str, doc: dict[str, Any]) -> dict[str, Any]:
    """A successful envelope's `result_data`, which for the calls we make must be an object."""
    check_result(endpoint, doc)
    data = doc.get("result_data")
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "null"
        raise ResponseError(endpoint, "invalid_response", f"result_data is {kind}, not an object")
    return data


def _safe_message(value: Any) -> str:
    """The gateway's result_msg, shortened and reduced to printable text (it ends up in logs and on /), with
    any known secret removed: a gateway may quote the token or password it rejects."""
    text = "" if value is None else str(value)
    return scrub("".join(ch if ch.isprintable() else "?" for ch in text))[:120]


def _oauth_error(raw: bytes) -> str | None:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return _oauth_error_doc(doc) if isinstance(doc, dict) else None


def _oauth_error_doc(doc: dict[str, Any]) -> str | None:
    """The OAuth-style `{error, error_description}` body (shape undocumented; treated like E00003)."""
    error = doc.get("error")
    if isinstance(error, str) and error and "result_code" not in doc:
        return "".join(ch for ch in error if ch.isalnum() or ch == "_")[:40] or "unknown"
    return None


def _oauth_exception(endpoint: str, error: str) -> ApiError:
    if error in ("invalid_token", "expired_token", "unauthorized"):
        return TokenError(endpoint, f"oauth_{error}", f"token rejected ({error})")
    return ResultError(endpoint, f"oauth_{error}", f"OAuth error {error}")

