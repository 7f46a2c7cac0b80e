"""Bad input from users: every invalid configuration ends in ONE clear line on stderr and exit code 2, before
anything starts. The CLI runs as a subprocess (`python -m exporter ...`), exactly as a user would run it.

Secrets in the broken configurations are sentinels: the error line must never quote them.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
APPKEY, SECRET, PASSWORD, REFRESH = "APPKEY-SENTINEL-1", "SECRET-SENTINEL-2", "PASSWORD-SENTINEL-3", "RT-SENTINEL-4"
SENTINELS = (APPKEY, SECRET, PASSWORD, REFRESH)


def login(**extra: Any) -> dict[str, Any]:
    return {"name": "home", "base_url": "http://127.0.0.1:9",
            "auth": {"mode": "login", "appkey": APPKEY, "secret_key": SECRET, "user_account": "u@example.com",
                     "user_password": PASSWORD}, **extra}


def oauth(tmp: Path, **auth: Any) -> dict[str, Any]:
    return {"name": "cloud", "base_url": "http://127.0.0.1:9",
            "auth": {"mode": "oauth2", "appkey": APPKEY, "secret_key": SECRET, **auth}}


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-1500:])
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    line = lines[0]
    assert line.startswith("isolarcloud-exporter"), line
    assert "Traceback" not in line
    for text in expected:
        assert text in line, f"{text!r} not in {line!r}"
    for secret in SENTINELS:
        assert secret not in line, f"the error line quotes a secret: {line}"
    assert result.stdout == ""
    return line


# Each case: the configuration (a function of the temp dir: it may create files), and what the line must say.
Case = Callable[[Path], Any]
CASES: dict[str, tuple[Case, tuple[str, ...]]] = {
    # wrong types
    "duration-words": (lambda t: {"refresh_interval": "five minutes", "accounts": [login()]}, ("refresh_interval",)),
    "duration-bool": (lambda t: {"http_timeout": True, "accounts": [login()]}, ("http_timeout",)),
    "duration-negative": (lambda t: {"scrape_timeout": -5, "accounts": [login()]}, ("scrape_timeout",)),
    "duration-nan": (lambda t: {"refresh_interval": float("nan"), "accounts": [login()]}, ("refresh_interval",)),
    "duration-infinite": (lambda t: {"http_timeout": float("inf"), "accounts": [login()]}, ("http_timeout",)),
    "max-age-below-interval": (lambda t: {"refresh_interval": "5m", "max_age": "1m", "accounts": [login()]},
                               ("max_age",)),
    "max-response-bytes-tiny": (lambda t: {"max_response_bytes": 10, "accounts": [login()]},
                                ("max_response_bytes",)),
    "accounts-mapping": (lambda t: {"accounts": {"home": login()}}, ("accounts",)),
    "accounts-empty": (lambda t: {"accounts": []}, ("accounts",)),
    "account-null": (lambda t: {"accounts": [None]}, ("accounts[0]",)),
    "page-size-string": (lambda t: {"accounts": [login(page_size="100")]}, ("accounts[0].page_size",)),
    "page-size-zero": (lambda t: {"accounts": [login(page_size=0)]}, ("accounts[0].page_size",)),
    "realtime-enabled-string": (lambda t: {"accounts": [login(realtime={"enabled": "yes"})]},
                                ("accounts[0].realtime.enabled",)),
    "extra-points-string": (lambda t: {"accounts": [login(realtime={"extra_points": "83033"})]},
                            ("extra_points",)),
    "extra-point-not-numeric": (lambda t: {"accounts": [login(realtime={"extra_points": ["p83033"]})]},
                                ("extra_points",)),
    "appkey-list": (lambda t: {"accounts": [{**login(), "auth": {**login()["auth"], "appkey": [APPKEY]}}]},
                    ("accounts[0].auth.appkey",)),
    "auth-string": (lambda t: {"accounts": [{**login(), "auth": "login"}]}, ("accounts[0].auth",)),
    "account-name-invalid": (lambda t: {"accounts": [login(name="my home!")]}, ("accounts[0].name",)),
    "ps-type-unknown": (lambda t: {"accounts": [login(ps_type=2)]}, ("accounts[0].ps_type",)),
    "api-time-zone": (lambda t: {"accounts": [login(api_time_zone="Europe/Berlin")]}, ("api_time_zone",)),
    "rate-limit-negative": (lambda t: {"accounts": [login(rate_limit={"per_second": -1})]},
                            ("accounts[0].rate_limit.per_second",)),
    "rate-limit-burst-float": (lambda t: {"accounts": [login(rate_limit={"burst": 2.5})]},
                               ("accounts[0].rate_limit.burst",)),
    # unknown keys
    "unknown-top-key": (lambda t: {"refresh_intervall": "5m", "accounts": [login()]}, ("refresh_intervall",
                                                                                        "unknown key")),
    "unknown-account-key": (lambda t: {"accounts": [login(regoin="europe")]}, ("accounts[0].regoin",)),
    "unknown-auth-key": (lambda t: {"accounts": [{**login(), "auth": {**login()["auth"], "secret": SECRET}}]},
                         ("accounts[0].auth.secret", "unknown key")),
    # a misspelt key is named as such, with the key it resembles, even where the right one is required
    "misspelt-optional-key": (lambda t: {"accounts": [login(page_sise=50)]},
                              ("accounts[0].page_sise: unknown key (did you mean page_size?)",)),
    "misspelt-top-key": (lambda t: {"refresh_intervall": "5m", "accounts": [login()]},
                         ("refresh_intervall: unknown key (did you mean refresh_interval?)",)),
    "misspelt-required-name": (lambda t: {"accounts": [{"nmae": "home", **{k: v for k, v in login().items()
                                                                           if k != "name"}}]},
                               ("accounts[0].nmae: unknown key (did you mean name?)",)),
    "misspelt-required-accounts": (lambda t: {"acounts": [login()]},
                                   ("acounts: unknown key (did you mean accounts?)",)),
    "misspelt-required-auth": (lambda t: {"accounts": [{**{k: v for k, v in login().items() if k != "auth"},
                                                        "auht": login()["auth"]}]},
                               ("accounts[0].auht: unknown key (did you mean auth?)",)),
    "misspelt-required-appkey": (lambda t: {"accounts": [{**login(), "auth": {
        **{k: v for k, v in login()["auth"].items() if k != "appkey"}, "app_key": APPKEY}}]},
        ("accounts[0].auth.app_key: unknown key (did you mean appkey?)",)),
    "misspelt-required-password": (lambda t: {"accounts": [{**login(), "auth": {
        **{k: v for k, v in login()["auth"].items() if k != "user_password"}, "user_pasword": PASSWORD}}]},
        ("accounts[0].auth.user_pasword: unknown key (did you mean user_password?)",)),
    "misspelt-token-file": (lambda t: {"accounts": [oauth(t, tokenfile=str(t / "tokens.json"))]},
                            ("accounts[0].auth.tokenfile: unknown key (did you mean token_file?)",)),
    "misspelt-region": (lambda t: {"accounts": [{**login(), "base_url": None, "regoin": "europe"}]},
                        ("accounts[0].regoin: unknown key (did you mean region?)",)),
    "authorize-host-url-path": (lambda t: {"accounts": [login(authorize_host="https://web3.isolarcloud.in/x")]},
                                ("accounts[0].authorize_host",)),
    "authorize-cloud-id-negative": (lambda t: {"accounts": [login(authorize_cloud_id=-1)]},
                                    ("accounts[0].authorize_cloud_id",)),
    # the account itself
    "region-unknown": (lambda t: {"accounts": [{**login(), "base_url": None, "region": "mars"}]},
                       ("accounts[0].region",)),
    "no-region-no-base-url": (lambda t: {"accounts": [{**login(), "base_url": None}]}, ("region",)),
    "base-url-not-http": (lambda t: {"accounts": [login(base_url="ftp://gateway")]}, ("accounts[0].base_url",)),
    "auth-mode-unknown": (lambda t: {"accounts": [{**login(), "auth": {**login()["auth"], "mode": "apikey"}}]},
                          ("accounts[0].auth.mode",)),
    "login-without-password": (lambda t: {"accounts": [{**login(), "auth": {
        k: v for k, v in login()["auth"].items() if k != "user_password"}}]}, ("user_password",)),
    "oauth-without-any-token": (lambda t: {"accounts": [oauth(t)]}, ("authorize",)),
    "duplicate-account-name": (lambda t: {"accounts": [login(), login()]}, ("accounts[1].name", "home")),
    "shared-token-file": (lambda t: {"accounts": [
        {**oauth(t, refresh_token=REFRESH, token_file=str(t / "tokens.json")), "name": "one"},
        {**oauth(t, refresh_token=REFRESH, token_file=str(t / "tokens.json")), "name": "two"}]},
        ("token_file",)),
    # secrets from files and the environment
    "secret-file-missing": (lambda t: {"accounts": [{**login(), "auth": {
        **{k: v for k, v in login()["auth"].items() if k != "secret_key"},
        "secret_key_file": str(t / "nope")}}]}, ("accounts[0].auth.secret_key_file", "cannot read")),
    "secret-file-is-directory": (lambda t: {"accounts": [{**login(), "auth": {
        **{k: v for k, v in login()["auth"].items() if k != "secret_key"}, "secret_key_file": str(t)}}]},
        ("secret_key_file",)),
    "secret-file-empty": (lambda t: _file(t / "empty", "\n") and {"accounts": [{**login(), "auth": {
        **{k: v for k, v in login()["auth"].items() if k != "secret_key"}, "secret_key_file": str(t / "empty")}}]},
        ("secret_key_file", "empty")),
    "secret-env-unset": (lambda t: {"accounts": [{**login(), "auth": {
        **{k: v for k, v in login()["auth"].items() if k != "user_password"},
        "user_password_env": "ISOLARCLOUD_TEST_UNSET_VARIABLE"}}]}, ("user_password_env",)),
    "secret-twice": (lambda t: {"accounts": [{**login(), "auth": {**login()["auth"], "secret_key_env": "X"}}]},
                     ("secret_key",)),
    # the token file
    "token-file-is-directory": (lambda t: {"accounts": [oauth(t, token_file=str(t))]}, ("token_file",
                                                                                         "directory")),
    "token-file-invalid-json": (lambda t: _file(t / "tokens.json", "{not json") and {
        "accounts": [oauth(t, token_file=str(t / "tokens.json"))]}, ("tokens.json",)),
    "token-file-json-list": (lambda t: _file(t / "tokens.json", '["a"]') and {
        "accounts": [oauth(t, token_file=str(t / "tokens.json"))]}, ("tokens.json",)),
    "token-file-without-token": (lambda t: _file(t / "tokens.json", '{"access_token": null}') and {
        "accounts": [oauth(t, token_file=str(t / "tokens.json"))]}, ("tokens.json", "no token")),
    "token-file-binary": (lambda t: _file(t / "tokens.json", b"\xff\xfe\x00\x01") and {
        "accounts": [oauth(t, token_file=str(t / "tokens.json"))]}, ("tokens.json",)),
    "token-file-directory-missing": (lambda t: {"accounts": [oauth(t, refresh_token=REFRESH,
                                                                   token_file=str(t / "no" / "tokens.json"))]},
                                     ("token_file", "does not exist")),
}


def _file(path: Path, content: str | bytes) -> bool:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return True


@pytest.mark.parametrize("case", list(CASES))
def test_invalid_configuration(case: str, tmp_path: Path) -> None:
    make, expected = CASES[case]
    data = make(tmp_path)
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(data))
    line = assert_one_clear_line(run_cli(f"--config.file={config}", "--web.listen-address=127.0.0.1:0"), *expected)
    # Several files take part (configuration, secret files, token files): the line names the one at fault.
    assert line.startswith(f"isolarcloud-exporter: {config}: ") or "token file " in line
    # One key-path style: list indexes in brackets, never an account's name as a path element.
    assert "accounts." not in line.replace("accounts[", "")


@pytest.mark.parametrize("case", ["misspelt-required-name", "token-file-invalid-json", "secret-file-empty"])
def test_config_check_gives_the_same_line_and_exit_code(case: str, tmp_path: Path) -> None:
    """`--config.check` (for CI and before a restart) refuses exactly what a start refuses, without starting."""
    make, expected = CASES[case]
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(make(tmp_path)))
    assert_one_clear_line(run_cli(f"--config.file={config}", "--config.check"), *expected)


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"accounts": [login()]}))
    config.chmod(0o600)
    return config


@pytest.mark.parametrize("content,expected", [
    (b"", "the file is empty"),
    (b"accounts: [\n", "line"),
    (b"- just\n- a list\n", "expected a mapping"),
    (b"\xff\xfe not utf-8", "UTF-8"),
    (b"refresh_interval: 5m\n\taccounts: []\n", "line"),
], ids=["empty-file", "yaml-syntax", "yaml-list", "not-utf8", "tab-indent"])
def test_unparseable_configuration_file(content: bytes, expected: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_bytes(content)
    assert_one_clear_line(run_cli(f"--config.file={config}"), str(config), expected)


@pytest.mark.parametrize("path", ["missing.yml", "."], ids=["missing", "directory"])
def test_configuration_file_not_readable(path: str, tmp_path: Path) -> None:
    assert_one_clear_line(run_cli(f"--config.file={tmp_path / path}"), "cannot read")


def _taken_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


@pytest.mark.parametrize("address", ["10027", "127.0.0.1:99999", "::1:10027", "host:port", "taken"])
def test_bad_listen_address(address: str, tmp_path: Path) -> None:
    taken = _taken_port()
    try:
        if address == "taken":
            address = f"127.0.0.1:{taken.getsockname()[1]}"
        assert_one_clear_line(run_cli(f"--config.file={_config(tmp_path)}", f"--web.listen-address={address}"),
                              "--web.listen-address")
    finally:
        taken.close()


def test_unresolvable_listen_host(tmp_path: Path) -> None:
    assert_one_clear_line(run_cli(f"--config.file={_config(tmp_path)}",
                                  "--web.listen-address=nonexistent.invalid:10027"), "--web.listen-address")


WEB_CASES: dict[str, tuple[str | bytes | None, str]] = {
    "missing-file": (None, "cannot read"),
    "invalid-yaml": ("tls_server_config: [\n", "invalid YAML"),
    "not-a-mapping": ("- a\n", "expected a mapping"),
    "unknown-key": ("tls_config: {}\n", "unknown key"),
    "missing-certificate": ("tls_server_config: {cert_file: no.crt, key_file: no.key}\n", "cert_file"),
    "plaintext-password": ("basic_auth_users: {prometheus: hunter2}\n", "bcrypt"),
    "bad-client-auth": ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: Maybe}\n", "cert_file"),
}


@pytest.mark.parametrize("case", list(WEB_CASES))
def test_bad_web_config(case: str, tmp_path: Path) -> None:
    content, expected = WEB_CASES[case]
    web = tmp_path / "web.yml"
    if content is not None:
        web.write_text(content) if isinstance(content, str) else web.write_bytes(content)
    line = assert_one_clear_line(run_cli(f"--config.file={_config(tmp_path)}", f"--web.config.file={web}",
                                         "--web.listen-address=127.0.0.1:0"), expected)
    assert "web.yml" in line


@pytest.mark.parametrize("args,expected", [
    ((), "--config.file is required"),
    (("--log.level=verbose",), "--log.level"),
    (("--log.format=xml",), "--log.format"),
    (("--no-such-flag",), "--no-such-flag"),
    (("--demo.plants=many",), "--demo.plants"),
    (("--demo", "--demo.plants=-5"), "--demo.plants: expected 1 to 100000, got -5"),
    (("--demo", "--demo.plants=0"), "--demo.plants: expected 1 to 100000, got 0"),
    (("--demo", "--config.file=config.yml"), "--config.file and --demo exclude each other"),
    (("--config.check",), "--config.check needs --config.file"),
], ids=["no-config", "bad-log-level", "bad-log-format", "unknown-flag", "bad-int-flag", "demo-plants-negative",
        "demo-plants-zero", "demo-with-config-file", "check-without-file"])
def test_bad_command_line(args: tuple[str, ...], expected: str) -> None:
    assert_one_clear_line(run_cli(*args), expected)


def test_authorize_with_a_bad_configuration(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"accounts": [login(), login()]}))
    assert_one_clear_line(run_cli("authorize", f"--config.file={config}", "--account=home"), "accounts[1].name")
    assert_one_clear_line(run_cli("authorize", f"--config.file={_config(tmp_path)}", "--account=nobody"),
                          "--account")
    assert_one_clear_line(run_cli("authorize", f"--config.file={_config(tmp_path)}", "--account=home"),
                          "accounts[0].auth.mode: authorize needs oauth2")


def test_a_valid_configuration_starts(tmp_path: Path) -> None:
    """The counterpart: the same CLI with a valid file runs (and stops cleanly on SIGTERM)."""
    import signal

    from tests.conftest import free_port
    from tests.test_cli import wait_http

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exporter", f"--config.file={_config(tmp_path)}",
                             f"--web.listen-address=127.0.0.1:{port}"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    # Serving means started (and the signal handlers installed): no guess at how long imports take.
    assert wait_http(f"http://127.0.0.1:{port}/-/healthy").status_code == 200
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
