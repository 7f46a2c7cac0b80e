"""HTTP transport to an iSolarCloud gateway: one POST with a total deadline and a size cap.

Every request is reported to a `record(endpoint, result)` callback so that each call, good or bad, shows up in
`isolarcloud_api_requests_total`. Nothing here ever puts a request body, header or token into an error message.
`Gateway` is what the rest of the fetch side needs of a transport; unit tests give it a fake one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection

from .envelope import (
    ApiError,
    QuotaError,
    ResponseError,
    TransportError,
    decode,
    endpoint_name,
    oauth_error,
    oauth_exception,
    result_data,
)
from .pacing import DEFAULT_WAIT_AFTER_429, GatewayPacer, retry_after

Recorder = Callable[[str, str], None]
# Pacing events of an account's calls: ("wait", seconds waited for the gateway's pace) or ("rate_limited", 1).
PaceRecorder = Callable[[str, float], None]
RETRIES_AFTER_429 = 2  # a call rate limited three times in a row fails as rate limited


class Gateway(ABC):
    """One iSolarCloud gateway, as the auth and API modules use it: `post_document` sends, `post` judges the
    envelope and records the result. Unit tests subclass it with an in-memory gateway."""

    record: Recorder

    @abstractmethod
    def post_document(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """The decoded JSON object, unjudged and unrecorded: token calls judge and record it themselves."""

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str],
             require_list: str | None = None, allow_empty: bool = False) -> dict[str, Any]:
        """`result_data` (a dict) of a successful envelope, or an ApiError subclass; recorded either way.
        `require_list` names a key of `result_data` that must hold a list: a call without it is recorded as
        invalid_response, not as a success. With `allow_empty`, an empty `result_data` (`{}`, `[]`, `""`) is a
        success that answers nothing (returned as `{}`): some endpoints say "no data" that way."""
        endpoint = endpoint_name(path)
        try:
            doc = self.post_document(path, body, headers)
            answer = doc.get("result_data")
            if allow_empty and isinstance(answer, (dict, list, str)) and not answer:
                doc = {**doc, "result_data": {}}
            data = result_data(endpoint, doc)
            # With allow_empty, `{}` and an explicit null list mean "nothing"; a missing list beside other keys is
            # still a broken answer.
            empty = allow_empty and (not data or (require_list in data and data[require_list] is None))
            if require_list is not None and not isinstance(data.get(require_list), list) and not empty:
                raise ResponseError(endpoint, "invalid_response", f"result_data has no {require_list} list")
        except ApiError as exc:
            self.record(endpoint, exc.result)
            raise
        self.record(endpoint, "1")
        return data

    def close(self) -> None:  # noqa: B027  (nothing to release unless a subclass holds connections)
        """Release connections."""


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


class Transport(Gateway):
    """Posts JSON over HTTP to one gateway with a total deadline and a response size cap, at the gateway's
    pace (shared with the other accounts calling it), waiting out a 429 as long as `Retry-After` asks (bounded)."""

    def __init__(self, base_url: str, *, timeout: float, max_bytes: int, record: Recorder,
                 session: requests.Session | None = None, pacer: GatewayPacer | None = None,
                 record_pace: PaceRecorder | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.record = record
        self.pacer = pacer or GatewayPacer()
        self.record_pace = record_pace or (lambda event, amount: None)
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

    def post_document(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """POST and return the decoded JSON object, unjudged and unrecorded (token calls judge it themselves)."""
        endpoint = endpoint_name(path)
        return decode(endpoint, self._send(path, endpoint, body, headers))

    def _send(self, path: str, endpoint: str, body: dict[str, Any], headers: dict[str, str]) -> str:
        """The answer's text, after waiting for the gateway's pace and out any 429s (each one is a call and is
        recorded here; the last attempt is recorded by the caller, as every call is)."""
        for attempt in range(RETRIES_AFTER_429 + 1):
            waited = self.pacer.acquire()
            if waited > 0:
                self.record_pace("wait", waited)
            deadline = time.monotonic() + self.timeout
            watchdog = _current.watchdog = _Watchdog(self.timeout)
            try:
                status, answer_headers, text = self._exchange(path, endpoint, body, headers, deadline, watchdog)
            finally:
                watchdog.stop()
                _current.watchdog = None
            self.pacer.observe(answer_headers)
            if status == 200:
                return text
            if status == 429:
                self.record_pace("rate_limited", 1)
                delay = retry_after(answer_headers.get("retry-after"))
                wait = DEFAULT_WAIT_AFTER_429 if delay is None else delay
                if wait > self.pacer.max_retry_after:
                    # Waiting that long would hold every account of this gateway: the refresh backs off instead.
                    self.pacer.penalize(self.pacer.max_retry_after)
                    raise QuotaError(endpoint, "http_429", f"rate limited by the gateway (HTTP 429, Retry-After "
                                     f"{wait:.0f}s is longer than {self.pacer.max_retry_after:g}s)")
                self.pacer.penalize(wait)
                if attempt < RETRIES_AFTER_429:
                    self.record(endpoint, "http_429")
                    continue
                raise QuotaError(endpoint, "http_429", f"rate limited by the gateway (HTTP 429, {attempt + 1} times)")
            oauth = oauth_error(text)
            if oauth is not None:
                raise oauth_exception(endpoint, oauth)
            raise TransportError(endpoint, f"http_{status}", f"HTTP {status}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(self, path: str, endpoint: str, body: dict[str, Any], headers: dict[str, str], deadline: float,
                  watchdog: _Watchdog) -> tuple[int, Mapping[str, str], str]:
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
        too_large = TransportError(endpoint, "too_large", f"response larger than {self.max_bytes} bytes, abandoned")
        try:
            announced = response.headers.get("Content-Length", "")
            if announced.isdigit() and int(announced) > self.max_bytes and "gzip" not in response.headers.get(
                    "Content-Encoding", ""):
                raise too_large
            # One growing buffer, read in chunks against a total deadline: a server that drips one byte at a
            # time never trips the per-read timeout, a huge body is abandoned as it streams in, and no list of
            # chunks is joined into a second copy of the body.
            buffer = bytearray()
            for chunk in response.iter_content(chunk_size=65536):
                buffer += chunk
                if len(buffer) > self.max_bytes:
                    raise too_large
                if time.monotonic() > deadline:
                    raise TransportError(endpoint, "timeout", f"response not complete within {self.timeout:g}s")
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            result, message = _classify_exception(exc, watchdog.cut, self.timeout)
            raise TransportError(endpoint, result, message) from None
        finally:
            response.close()
        # Decoded here, so that the bytes are gone before the JSON parser builds its objects (json.loads of bytes
        # would hold the bytes and their text side by side until it is done).
        return response.status_code, response.headers, _text(endpoint, buffer)


def _text(endpoint: str, raw: bytearray) -> str:
    """The body as text, in the encoding JSON allows (UTF-8, -16 or -32, as json.loads detects it)."""
    try:
        return raw.decode(json.detect_encoding(raw), "surrogatepass")
    except (UnicodeDecodeError, LookupError):
        raise ResponseError(endpoint, "invalid_response", "response is not JSON") from None


def get_lines(url: str, *, timeout: float, max_bytes: int) -> Iterator[str]:
    """A text document over HTTP(S), line by line, within `max_bytes` (decompressed) and a read timeout: how
    `isolarcloud-exporter backfill` reads a running exporter's /metrics (one of ~50 MB at 50,000 plants) without
    holding it. Credentials in the URL (`http://user:pass@host/`) are sent as basic auth. Raises TransportError."""
    endpoint = "exporter_metrics"
    try:
        with requests.get(url, timeout=(min(timeout, 10.0), timeout), stream=True, allow_redirects=False,
                          headers={"User-Agent": "isolarcloud-exporter backfill"}) as response:
            if response.status_code != 200:
                raise TransportError(endpoint, f"http_{response.status_code}", f"HTTP {response.status_code}")
            size = 0
            for line in response.iter_lines(decode_unicode=False):
                size += len(line) + 1
                if size > max_bytes:
                    raise TransportError(endpoint, "too_large", f"larger than {max_bytes} bytes, abandoned")
                yield line.decode("utf-8", "replace")
    except requests.exceptions.RequestException as exc:
        result, message = _classify_exception(exc, False, timeout)
        raise TransportError(endpoint, result, message) from None
