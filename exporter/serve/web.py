"""The HTTP server: /metrics, /, /-/healthy, /-/ready, /-/reload, with exporter-toolkit `--web.config.file` support.

Knows nothing about iSolarCloud: it serves whatever `Site` gives it. One thread per connection; TLS handshakes
happen in that thread, so a slow or stuck client never holds up another scrape.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import yaml

log = logging.getLogger(__name__)

CONNECTION_TIMEOUT = 60.0
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Keys of the exporter-toolkit format that only make sense for Go's TLS stack: accepted and ignored.
IGNORED_TLS_KEYS = {"cipher_suites", "curve_preferences", "prefer_server_cipher_suites"}


class WebConfigError(Exception):
    """An invalid --web.config.file or --web.listen-address, phrased for the user."""


class Site(Protocol):
    def metrics(self, accept: str | None, gzip: bool, timeout: float | None) -> tuple[bytes | list[bytes], str]:
        """The body (whole, or as pieces written in order so a large cached body is never copied) and its
        content type."""

    def index_html(self) -> str: ...

    def ready(self) -> str | None:
        """None when ready; else why not, in one line."""

    def reload(self) -> tuple[bool, str]:
        """Read the configuration again: whether it worked, and a one-line message."""


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    client_allowed_sans: frozenset[str] = frozenset()  # a verified client certificate must name one of these


def load_web_config(path: str | None) -> WebConfig:
    """The Prometheus exporter-toolkit web configuration file (TLS, client CA, bcrypt basic auth)."""
    if not path:
        return WebConfig()
    base = Path(path).resolve().parent
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise WebConfigError(f"{path}: expected a mapping")
    unknown = set(data) - {"tls_server_config", "http_server_config", "basic_auth_users"}
    if unknown:
        raise WebConfigError(f"{path}: {', '.join(sorted(unknown))}: unknown key")
    config = WebConfig()
    tls = data.get("tls_server_config")
    if tls:
        config.tls = _tls_context(tls, base, path)
        config.client_allowed_sans = _allowed_sans(tls, path)
    users = data.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise WebConfigError(f"{path}: basic_auth_users: expected a mapping of user to bcrypt hash")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise WebConfigError(f"{path}: basic_auth_users.{user}: expected a bcrypt hash ($2y$...)")
        config.users[str(user)] = hashed.encode()
    if config.users:
        try:
            import bcrypt  # noqa: F401  (checked here so a missing package fails at start-up, not per request)
        except ImportError:
            raise WebConfigError(f"{path}: basic_auth_users needs the Python package bcrypt") from None
    http = data.get("http_server_config") or {}
    if not isinstance(http, dict):
        raise WebConfigError(f"{path}: http_server_config: expected a mapping")
    headers = http.get("headers") or {}
    if not isinstance(headers, dict):
        raise WebConfigError(f"{path}: http_server_config.headers: expected a mapping")
    config.headers = {str(k): str(v) for k, v in headers.items()}
    return config


def _tls_context(tls: Any, base: Path, path: str) -> ssl.SSLContext:
    if not isinstance(tls, dict):
        raise WebConfigError(f"{path}: tls_server_config: expected a mapping")
    known = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version",
             "cert", "key", "client_allowed_sans"} | IGNORED_TLS_KEYS
    unknown = set(tls) - known
    if unknown:
        raise WebConfigError(f"{path}: tls_server_config.{sorted(unknown)[0]}: unknown key")
    cert, key = tls.get("cert_file"), tls.get("key_file")
    if not cert or not key:
        raise WebConfigError(f"{path}: tls_server_config needs cert_file and key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(base / cert, base / key)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(f"{path}: tls_server_config: cannot load cert_file/key_file: {exc}") from None
    for bound in ("min_version", "max_version"):
        if tls.get(bound):
            if tls[bound] not in TLS_VERSIONS:
                raise WebConfigError(f"{path}: tls_server_config.{bound}: one of {', '.join(TLS_VERSIONS)}")
            setattr(context, "minimum_version" if bound == "min_version" else "maximum_version",
                    TLS_VERSIONS[tls[bound]])
    auth_type = tls.get("client_auth_type", "NoClientCert")
    if auth_type not in CLIENT_AUTH_TYPES:
        raise WebConfigError(f"{path}: tls_server_config.client_auth_type: one of {', '.join(CLIENT_AUTH_TYPES)}")
    context.verify_mode = CLIENT_AUTH_TYPES[auth_type]
    ca = tls.get("client_ca_file")
    if ca:
        try:
            context.load_verify_locations(base / ca)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"{path}: tls_server_config.client_ca_file: {exc}") from None
    elif auth_type in ("RequireAndVerifyClientCert", "VerifyClientCertIfGiven"):
        raise WebConfigError(f"{path}: tls_server_config: client_auth_type {auth_type} needs client_ca_file")
    return context


def _allowed_sans(tls: dict[str, Any], path: str) -> frozenset[str]:
    sans = tls.get("client_allowed_sans")
    if not sans:
        return frozenset()
    if not isinstance(sans, list) or not all(isinstance(x, str) and x for x in sans):
        raise WebConfigError(f"{path}: tls_server_config.client_allowed_sans: expected a list of names")
    if tls.get("client_auth_type") != "RequireAndVerifyClientCert":
        raise WebConfigError(f"{path}: tls_server_config.client_allowed_sans needs client_auth_type "
                             "RequireAndVerifyClientCert")
    return frozenset(sans)


def _san_allowed(cert: Any, allowed: frozenset[str]) -> bool:
    names = {value for _kind, value in (cert or {}).get("subjectAltName", ())}
    return bool(names & allowed)


def parse_listen_address(address: str) -> tuple[str, int]:
    """`:10027`, `0.0.0.0:10027`, `[::1]:10027`, `localhost:10027` → (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise WebConfigError(f"--web.listen-address: expected [host]:port, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise WebConfigError(f"--web.listen-address: IPv6 addresses need brackets, got {address!r}")
    return host, int(port_text)


class _Auth:
    """bcrypt checks cost ~100 ms each; remember recent good credentials (as digests) to keep scrapes fast."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self.good: OrderedDict[bytes, None] = OrderedDict()
        self.lock = threading.Lock()

    def check(self, header: str | None) -> bool:
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            return False
        digest = hashlib.sha256(hashed + b"\0" + password.encode()).digest()
        with self.lock:
            if digest in self.good:
                return True
        import bcrypt

        try:
            ok = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False
        if ok:
            with self.lock:
                self.good[digest] = None
                while len(self.good) > 64:
                    self.good.popitem(last=False)
        return ok


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server
    server_version = "isolarcloud-exporter"
    # Head and body go out in separate writes: with Nagle's algorithm a small body waits for the client's
    # delayed ACK of the head, ~40 ms per keep-alive scrape.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def version_string(self) -> str:
        # The Server header names the program only: no Python (or exporter) version for scanners to match.
        return self.server_version

    def do_POST(self) -> None:
        self.do_PUT()

    def do_PUT(self) -> None:
        """The lifecycle endpoint, as in Prometheus: POST or PUT /-/reload, only with --web.enable-lifecycle."""
        path = self.path.split("?", 1)[0]
        # The request body is not used, but must be read off the connection before it can be reused.
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= 65536:
            self.rfile.read(int(length))
        elif length:
            self.close_connection = True
        if not self.server.auth.check(self.headers.get("Authorization")):
            self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8", False,
                       {"WWW-Authenticate": 'Basic realm="isolarcloud-exporter"'})
            return
        if path != "/-/reload":
            self._send(405, b"Method not allowed\n", "text/plain; charset=utf-8", False, {"Allow": "GET, HEAD"})
            return
        if not self.server.lifecycle:
            self._send(403, b"Lifecycle API is not enabled (--web.enable-lifecycle); send SIGHUP instead.\n",
                       "text/plain; charset=utf-8", False)
            return
        try:
            ok, message = self.server.site.reload()
        except Exception:
            log.exception("error while reloading")
            ok, message = False, "internal error"
        self._send(200 if ok else 500, (message + "\n").encode(), "text/plain; charset=utf-8", False)

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        path = self.path.split("?", 1)[0]
        if not self.server.auth.check(self.headers.get("Authorization")):
            self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8", head,
                       {"WWW-Authenticate": 'Basic realm="isolarcloud-exporter"'})
            return
        site = self.server.site
        try:
            if path == "/metrics":
                gzip = "gzip" in (self.headers.get("Accept-Encoding") or "")
                body, ctype = site.metrics(self.headers.get("Accept"), gzip, _timeout(self.headers))
                self._send(200, body, ctype, head, {"Content-Encoding": "gzip"} if gzip else {})
            elif path == "/":
                self._send(200, site.index_html().encode(), "text/html; charset=utf-8", head)
            elif path == "/-/healthy":
                self._send(200, b"Healthy\n", "text/plain; charset=utf-8", head)
            elif path == "/-/ready":
                why = site.ready()
                self._send(200 if why is None else 503, b"Ready\n" if why is None else f"Not ready: {why}\n".encode(),
                           "text/plain; charset=utf-8", head)
            elif path == "/-/reload":
                self._send(405, b"Only POST or PUT requests allowed\n", "text/plain; charset=utf-8", head,
                           {"Allow": "POST, PUT"})
            else:
                self._send(404, b"Not found\n", "text/plain; charset=utf-8", head)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            # The client went away mid-answer (Prometheus' scrape timeout, a closed tab): not our error, and
            # nothing can be sent on that connection any more.
            log.debug("client %s went away during %s", self.address_string(), path)
            self.close_connection = True
        except Exception:
            log.exception("error while serving %s", path)
            self._send(500, b"Internal error\n", "text/plain; charset=utf-8", head)

    def _send(self, status: int, body: bytes | list[bytes], ctype: str, head: bool,
              extra: dict[str, str] | None = None) -> None:
        parts = [body] if isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(sum(map(len, parts))))
        for name, value in {**self.server.headers, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            for part in parts:
                self.wfile.write(part)


def _timeout(headers: Any) -> float | None:
    try:
        return float(headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
    except (TypeError, ValueError):
        return None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: str, site: Site, web: WebConfig | None = None, *, lifecycle: bool = False) -> None:
        """`lifecycle`: accept POST /-/reload (a state change anyone who reaches the port could trigger)."""
        host, port = parse_listen_address(address)
        web = web or WebConfig()
        self.site = site
        self.lifecycle = lifecycle
        self.tls = web.tls
        self.allowed_sans = web.client_allowed_sans
        self.auth = _Auth(web.users)
        self.headers = web.headers
        self.address_family = socket.AF_INET6 if ":" in host or host == "" else socket.AF_INET
        self.dual_stack = host == ""
        try:
            super().__init__(("::" if host == "" else host, port), _Handler)
        except OSError as exc:
            if host == "" and exc.errno in (97, 99):  # no IPv6 on this host: plain IPv4 on all interfaces
                self.address_family = socket.AF_INET
                self.dual_stack = False
                super().__init__(("0.0.0.0", port), _Handler)
            else:
                raise WebConfigError(f"--web.listen-address {address}: {exc.strerror}") from None

    def server_bind(self) -> None:
        if self.dual_stack:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(CONNECTION_TIMEOUT)
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
                return
            if self.allowed_sans and not _san_allowed(request.getpeercert(), self.allowed_sans):
                log.debug("client certificate of %s names none of client_allowed_sans", client_address[0])
                request.close()
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address[0], exc_info=True)

