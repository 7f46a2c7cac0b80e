"""Web security: `--web.config.file` in the Prometheus exporter-toolkit format (TLS, mutual TLS, bcrypt basic
auth, response headers) with certificates made in the test and a real HTTPS client; bind address behaviour.

trustme (test extra) makes a throwaway CA and certificates; bcrypt uses the lowest cost to stay fast.
"""

from __future__ import annotations

import gzip
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import trustme
import yaml

from exporter.serve.web import Server, WebConfig, WebConfigError, load_web_config, parse_listen_address
from exporter.simulator import Simulator
from tests.conftest import Running, login_account, samples, value

ENDPOINTS = ("/metrics", "/", "/-/healthy", "/-/ready")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pki(ca: trustme.CA, tmp_path: Path) -> dict[str, Path]:
    """Server certificate for 127.0.0.1/localhost, a client certificate of the same CA, one of a foreign CA."""
    files: dict[str, Path] = {}

    def write(name: str, blob: Any) -> Path:
        path = tmp_path / name
        blob.write_to_path(str(path))
        files[name] = path
        return path

    server = ca.issue_cert("127.0.0.1", "localhost")
    write("server.crt", server.cert_chain_pems[0])
    write("server.key", server.private_key_pem)
    write("ca.crt", ca.cert_pem)
    client = ca.issue_cert("prometheus@example.com")
    write("client.crt", client.cert_chain_pems[0])
    write("client.key", client.private_key_pem)
    foreign = trustme.CA().issue_cert("intruder@example.com")
    write("foreign.crt", foreign.cert_chain_pems[0])
    write("foreign.key", foreign.private_key_pem)
    return files


def web_config(tmp_path: Path, data: dict[str, Any]) -> WebConfig:
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(data))
    return load_web_config(str(path))


@pytest.fixture
def serve(sim: Simulator, run_exporter: Callable[..., Running]) -> Callable[[WebConfig], Running]:
    def start(web: WebConfig) -> Running:
        r = run_exporter({"accounts": [login_account(sim)]}, web=web)
        r.exporter.engines[0].refresh()  # a finished refresh: ready, and plants to show
        return r

    return start


def https(r: Running) -> str:
    return r.url.replace("http://", "https://")


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


# -- TLS ----------------------------------------------------------------------------------------------------


def test_tls_serves_every_endpoint_to_a_client_trusting_the_ca(pki: dict[str, Path], tmp_path: Path,
                                                               serve: Callable[[WebConfig], Running]) -> None:
    # Relative paths are resolved against the web config file's directory, as in exporter-toolkit.
    r = serve(web_config(tmp_path, {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}}))
    for path in ENDPOINTS:
        response = requests.get(https(r) + path, verify=str(pki["ca.crt"]), timeout=10)
        assert response.status_code == 200, path
    found = samples(requests.get(https(r) + "/metrics", verify=str(pki["ca.crt"]), timeout=10).text)
    assert value(found, "isolarcloud_up", account="login") == 1
    with requests.Session() as keep_alive:  # several requests over one TLS connection
        for _ in range(3):
            assert keep_alive.get(https(r) + "/metrics", verify=str(pki["ca.crt"]), timeout=10).status_code == 200


def test_tls_rejects_clients_that_do_not_trust_it_and_plain_http(pki: dict[str, Path], tmp_path: Path,
                                                                 serve: Callable[[WebConfig], Running]) -> None:
    r = serve(web_config(tmp_path, {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}}))
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https(r) + "/metrics", timeout=10)  # the system CAs do not know our CA
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(r.url + "/metrics", timeout=10)  # plain HTTP on the TLS port: no answer, connection closed
    # The failed handshakes cost nothing: the server keeps serving.
    assert requests.get(https(r) + "/-/healthy", verify=str(pki["ca.crt"]), timeout=10).status_code == 200


def test_tls_min_version(pki: dict[str, Path], tmp_path: Path, serve: Callable[[WebConfig], Running]) -> None:
    r = serve(web_config(tmp_path, {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key",
                                                          "min_version": "TLS13"}}))
    context = ssl.create_default_context(cafile=str(pki["ca.crt"]))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", r.server.port), timeout=10) as raw, \
            pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    context = ssl.create_default_context(cafile=str(pki["ca.crt"]))
    with socket.create_connection(("127.0.0.1", r.server.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() == "TLSv1.3"


# -- mutual TLS ---------------------------------------------------------------------------------------------


@pytest.fixture
def mtls(pki: dict[str, Path], tmp_path: Path, serve: Callable[[WebConfig], Running]) -> Running:
    return serve(web_config(tmp_path, {"tls_server_config": {
        "cert_file": "server.crt", "key_file": "server.key",
        "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": "ca.crt"}}))


def test_mutual_tls_accepts_a_client_certificate_of_the_ca(pki: dict[str, Path], mtls: Running) -> None:
    for path in ENDPOINTS:
        response = requests.get(https(mtls) + path, verify=str(pki["ca.crt"]),
                                cert=(str(pki["client.crt"]), str(pki["client.key"])), timeout=10)
        assert response.status_code == 200, path


def _mtls_refused(url: str, ca_file: Path, cert: tuple[str, str] | None) -> None:
    """The handshake (TLS 1.2) or the first read (TLS 1.3: the server checks the certificate after the client
    thinks the handshake is done) fails: no HTTP answer at all."""
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.get(url, verify=str(ca_file), cert=cert, timeout=10)


def test_mutual_tls_refuses_clients_without_a_certificate(pki: dict[str, Path], mtls: Running) -> None:
    _mtls_refused(https(mtls) + "/metrics", pki["ca.crt"], None)
    context = ssl.create_default_context(cafile=str(pki["ca.crt"]))
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # here the refusal is part of the handshake itself
    with socket.create_connection(("127.0.0.1", mtls.server.port), timeout=10) as raw, \
            pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_mutual_tls_refuses_a_certificate_of_another_ca(pki: dict[str, Path], mtls: Running) -> None:
    _mtls_refused(https(mtls) + "/metrics", pki["ca.crt"], (str(pki["foreign.crt"]), str(pki["foreign.key"])))
    # and still serves the right client afterwards
    assert requests.get(https(mtls) + "/-/healthy", verify=str(pki["ca.crt"]),
                        cert=(str(pki["client.crt"]), str(pki["client.key"])), timeout=10).status_code == 200


def test_client_allowed_sans_restricts_client_certificates(pki: dict[str, Path], ca: trustme.CA, tmp_path: Path,
                                                           serve: Callable[[WebConfig], Running]) -> None:
    """exporter-toolkit's client_allowed_sans: only client certificates naming one of these SANs get in, even
    when the CA signed others too. (Silently ignoring it would let every certificate of the CA in.)"""
    other = ca.issue_cert("dashboard@example.com")
    other.cert_chain_pems[0].write_to_path(str(tmp_path / "other.crt"))
    other.private_key_pem.write_to_path(str(tmp_path / "other.key"))
    r = serve(web_config(tmp_path, {"tls_server_config": {
        "cert_file": "server.crt", "key_file": "server.key", "client_auth_type": "RequireAndVerifyClientCert",
        "client_ca_file": "ca.crt", "client_allowed_sans": ["prometheus@example.com"]}}))
    allowed = requests.get(https(r) + "/metrics", verify=str(pki["ca.crt"]),
                           cert=(str(pki["client.crt"]), str(pki["client.key"])), timeout=10)
    assert allowed.status_code == 200
    _mtls_refused(https(r) + "/metrics", pki["ca.crt"], (str(tmp_path / "other.crt"), str(tmp_path / "other.key")))


def test_client_allowed_sans_needs_verified_client_certificates(pki: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="client_allowed_sans"):
        web_config(tmp_path, {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key",
                                                    "client_allowed_sans": ["prometheus@example.com"]}})


# -- basic auth ---------------------------------------------------------------------------------------------


def test_basic_auth_protects_every_endpoint(tmp_path: Path, serve: Callable[[WebConfig], Running]) -> None:
    r = serve(web_config(tmp_path, {"basic_auth_users": {"prometheus": hashed("s3cret-scrape"),
                                                         "other": hashed("other-pass")}}))
    for path in ENDPOINTS:
        anonymous = requests.get(r.url + path, timeout=10)
        assert anonymous.status_code == 401, path
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
        assert "isolarcloud" not in anonymous.text  # nothing of the page leaks to an anonymous client
        assert requests.get(r.url + path, auth=("prometheus", "wrong"), timeout=10).status_code == 401
        assert requests.get(r.url + path, auth=("nobody", "s3cret-scrape"), timeout=10).status_code == 401
        assert requests.get(r.url + path, auth=("other", "s3cret-scrape"), timeout=10).status_code == 401
        assert requests.get(r.url + path, auth=("prometheus", "s3cret-scrape"), timeout=10).status_code == 200
    assert requests.get(r.url + "/metrics", auth=("other", "other-pass"), timeout=10).status_code == 200
    for header in ("Basic !!!notbase64", "Basic " + "eA==", "Bearer abc", "basic"):
        assert requests.get(r.url + "/metrics", headers={"Authorization": header}, timeout=10).status_code == 401
    head = requests.head(r.url + "/metrics", timeout=10)
    assert head.status_code == 401


def test_basic_auth_over_tls_with_response_headers(pki: dict[str, Path], tmp_path: Path,
                                                   serve: Callable[[WebConfig], Running]) -> None:
    r = serve(web_config(tmp_path, {
        "tls_server_config": {"cert_file": str(pki["server.crt"]), "key_file": str(pki["server.key"])},
        "basic_auth_users": {"prometheus": hashed("pw-over-tls")},
        "http_server_config": {"headers": {"Strict-Transport-Security": "max-age=31536000",
                                           "X-Content-Type-Options": "nosniff"}}}))
    ca_file = str(pki["ca.crt"])
    assert requests.get(https(r) + "/metrics", verify=ca_file, timeout=10).status_code == 401
    assert requests.get(https(r) + "/metrics", verify=ca_file, auth=("prometheus", "bad"), timeout=10).status_code \
        == 401
    ok = requests.get(https(r) + "/metrics", verify=ca_file, auth=("prometheus", "pw-over-tls"), timeout=10)
    assert ok.status_code == 200
    assert ok.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert ok.headers["X-Content-Type-Options"] == "nosniff"


def test_concurrent_wrong_passwords_do_not_let_anyone_in(tmp_path: Path,
                                                         serve: Callable[[WebConfig], Running]) -> None:
    r = serve(web_config(tmp_path, {"basic_auth_users": {"prometheus": hashed("right")}}))
    statuses: list[int] = []

    def attempt(password: str) -> None:
        statuses.append(requests.get(r.url + "/metrics", auth=("prometheus", password), timeout=20).status_code)

    threads = [threading.Thread(target=attempt, args=("right" if i % 4 == 0 else f"wrong{i}",)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(statuses) == [200] * 5 + [401] * 15


# -- invalid web configurations (the CLI turns each into one line and exit 2: test_config_errors.py) ---------


@pytest.mark.parametrize("data,problem", [
    ({"tls_server_config": {"cert_file": "missing.crt", "key_file": "missing.key"}}, "cannot load"),
    ({"tls_server_config": {"cert_file": "server.crt"}}, "needs cert_file and key_file"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key",
                            "client_auth_type": "RequireAndVerifyClientCert"}}, "needs client_ca_file"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "client_auth_type": "Sometimes"}},
     "client_auth_type"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "min_version": "SSL3"}},
     "min_version"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "chipher_suites": []}},
     "unknown key"),
    ({"basic_auth_users": {"prometheus": "plaintext-password"}}, "bcrypt"),
    ({"basic_auth_users": ["prometheus"]}, "basic_auth_users"),
    ({"tls_config": {}}, "unknown key"),
    ({"http_server_config": {"headers": ["X-A: b"]}}, "headers"),
], ids=["missing-cert", "no-key", "verify-without-ca", "bad-client-auth-type", "bad-min-version",
        "misspelt-tls-key", "plaintext-password", "users-not-a-mapping", "unknown-top-key", "headers-not-a-mapping"])
def test_invalid_web_config_is_rejected_clearly(data: dict[str, Any], problem: str, pki: dict[str, Path],
                                                tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match=problem) as raised:
        web_config(tmp_path, data)
    assert "\n" not in str(raised.value)


# -- bind address -------------------------------------------------------------------------------------------


def _gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


class _Site:
    def metrics(self, accept: str | None, gzip: bool, timeout: float | None) -> tuple[bytes, str]:
        return (_gzipped(b"up 1\n") if gzip else b"up 1\n"), "text/plain; version=0.0.4"

    def index_html(self) -> str:
        return "<html></html>"

    def ready(self) -> str | None:
        return None

    def reload(self) -> tuple[bool, str]:
        return True, "reloaded"


@pytest.fixture
def bind() -> Iterator[Callable[[str], Server]]:
    servers: list[Server] = []

    def start(address: str) -> Server:
        server = Server(address, _Site())
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_loopback_address_serves_loopback_only(bind: Callable[[str], Server]) -> None:
    server = bind("127.0.0.1:0")
    assert server.server_address[0] == "127.0.0.1"
    assert requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text == "up 1\n"
    if _ipv6_loopback():
        assert not _reachable("::1", server.port)


def test_empty_host_listens_on_all_interfaces_ipv4_and_ipv6(bind: Callable[[str], Server]) -> None:
    server = bind(":0")  # the default --web.listen-address=:10027 form
    assert _reachable("127.0.0.1", server.port)
    if _ipv6_loopback():
        assert _reachable("::1", server.port)
        assert server.address_family == socket.AF_INET6  # one dual-stack socket


def test_ipv6_address_in_brackets(bind: Callable[[str], Server]) -> None:
    if not _ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    server = bind("[::1]:0")
    assert _reachable("::1", server.port)
    assert not _reachable("127.0.0.1", server.port)


@pytest.mark.parametrize("address,expected", [
    (":10027", ("", 10027)), ("0.0.0.0:9100", ("0.0.0.0", 9100)), ("[::1]:80", ("::1", 80)),
    ("localhost:10027", ("localhost", 10027)), ("127.0.0.1:0", ("127.0.0.1", 0)),
])
def test_listen_address_forms(address: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(address) == expected


@pytest.mark.parametrize("address", ["10027", "::1:10027", "host:", "host:port", "127.0.0.1:70000", ":-1", ""])
def test_bad_listen_addresses_are_rejected(address: str) -> None:
    with pytest.raises(WebConfigError, match=r"--web\.listen-address"):
        parse_listen_address(address)


def test_address_in_use_is_a_clear_error(bind: Callable[[str], Server]) -> None:
    taken = bind("127.0.0.1:0")
    with pytest.raises(WebConfigError, match=r"--web\.listen-address"):
        Server(f"127.0.0.1:{taken.port}", _Site())


def test_server_header_names_no_version(bind: Callable[[str], Server]) -> None:
    """The Server header says what answers, not which Python (or exporter) version a scanner could match."""
    import platform

    server = bind("127.0.0.1:0")
    for method in (requests.get, requests.head, requests.post):
        response = method(f"http://127.0.0.1:{server.port}/", timeout=10)
        assert response.headers["Server"] == "isolarcloud-exporter", response.headers
        assert platform.python_version() not in str(response.headers)
