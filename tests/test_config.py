"""Configuration: defaults, durations, secrets from files and environment, and one clear error per mistake."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import REGIONS, ConfigError, load_config, parse_config, parse_duration

ROOT = Path(__file__).resolve().parent.parent


def login(**auth: Any) -> dict[str, Any]:
    base = {"mode": "login", "appkey": "k" * 32, "secret_key": "s3cret-key", "user_account": "me@example.com",
            "user_password": "pw-123456"}
    return {"accounts": [{"name": "home", "region": "europe", "auth": {**base, **auth}}]}


def error_of(data: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env=kwargs.get("env", {}), base_dir=kwargs.get("base_dir"))
    return str(info.value)


def test_defaults_follow_the_documented_api() -> None:
    config = parse_config(login(), env={})
    account = config.accounts[0]
    assert config.refresh_interval == 300
    assert config.max_age is None and config.http_timeout == 30
    assert account.base_url == REGIONS["europe"].gateway == "https://gateway.isolarcloud.eu"
    assert (account.valid_flag, account.page_size, account.lang) == ("1,3", 100, "_en_US")
    assert account.api_budget_per_hour == 1000
    assert account.realtime.enabled and account.realtime.batch_size == 50
    assert (account.rate_limit.burst, account.rate_limit.per_second, account.rate_limit.max_retry_after) == (
        10, 5.0, 60.0)  # below the recorded gateway limiter: burst 15, 10 per second
    assert config.max_response_bytes == 8 * 1024 * 1024  # ~5x the largest realistic answer (BENCHMARKS.md)
    assert config.warnings == ()


def test_rate_limit_keys() -> None:
    data = login()
    data["accounts"][0]["rate_limit"] = {"burst": 3, "per_second": 0.5, "max_retry_after": "2m"}
    limit = parse_config(data, env={}).accounts[0].rate_limit
    assert (limit.burst, limit.per_second, limit.max_retry_after) == (3, 0.5, 120.0)


@pytest.mark.parametrize(("raw", "seconds"), [(300, 300), ("90s", 90), ("5m", 300), ("1h30m", 5400),
                                              ("1.5", 1.5), ("250ms", 0.25), ("1d", 86400)])
def test_durations_accept_seconds_and_prometheus_strings(raw: Any, seconds: float) -> None:
    assert parse_duration(raw, "x") == seconds


@pytest.mark.parametrize("raw", ["5 minutes", "-5s", 0, True, "m5", [], "5M"])
def test_bad_durations_name_the_key(raw: Any) -> None:
    with pytest.raises(ConfigError, match=r"^refresh_interval: "):
        parse_config({**login(), "refresh_interval": raw}, env={})


def test_short_interval_is_allowed_with_a_warning() -> None:
    config = parse_config({**login(), "refresh_interval": "10s"}, env={})
    assert config.refresh_interval == 10
    assert any("refresh_interval is 10s" in w for w in config.warnings)


def test_base_url_overrides_region() -> None:
    data = login()
    data["accounts"][0]["base_url"] = "http://127.0.0.1:8080/"
    assert parse_config(data, env={}).accounts[0].base_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(bogus=1), "^bogus: unknown key$"),
    (lambda d: d["accounts"][0].update(colour="red"), r"^accounts\[0\]\.colour: unknown key$"),
    (lambda d: d["accounts"][0]["auth"].update(pasword="x"), r"^accounts\[0\]\.auth\.pasword: unknown key$"),
    (lambda d: d["accounts"][0].update(region="mars"), r"^accounts\[0\]\.region: must be one of china"),
    (lambda d: d["accounts"][0].pop("region"), r"^accounts\[0\]: give a region"),
    (lambda d: d["accounts"][0].update(name="my home"), r"^accounts\[0\]\.name: 'my home' must be"),
    (lambda d: d["accounts"][0].update(page_size="100"), r"^accounts\[0\]\.page_size: expected an integer"),
    (lambda d: d["accounts"][0].update(page_size=0), r"^accounts\[0\]\.page_size: must be between 1 and 1000"),
    (lambda d: d["accounts"][0].update(valid_flag="1,4"), r"^accounts\[0\]\.valid_flag: '4' is not a valid"),
    (lambda d: d["accounts"][0].update(ps_type=[4, 11]), r"^accounts\[0\]\.ps_type: '11' is not a valid"),
    (lambda d: d["accounts"][0]["auth"].update(mode="oauth"), r"^accounts\[0\]\.auth\.mode: must be one of"),
    (lambda d: d["accounts"][0]["auth"].pop("user_password"), r"^accounts\[0\]\.auth\.user_password: required"),
    (lambda d: d["accounts"][0]["auth"].pop("secret_key"), r"^accounts\[0\]\.auth\.secret_key: required"),
    (lambda d: d["accounts"][0]["auth"].update(refresh_token="r"), r"refresh_token: only used in oauth2 mode"),
    (lambda d: d["accounts"][0].update(realtime={"batch_size": -1}), r"realtime\.batch_size: must be between"),
    (lambda d: d["accounts"][0].update(realtime={"extra_points": ["abc"]}), r"extra_points\[0\]: expected"),
    (lambda d: d["accounts"].append(dict(d["accounts"][0])), r"^accounts\[1\]\.name: 'home' is already used"),
    (lambda d: d["accounts"][0].update(rate_limit={"burst": 0}), r"^accounts\[0\]\.rate_limit\.burst: must be"),
    (lambda d: d["accounts"][0].update(rate_limit={"per_second": 0}),
     r"^accounts\[0\]\.rate_limit\.per_second: expected calls per second"),
    (lambda d: d["accounts"][0].update(rate_limit={"per_second": "fast"}), r"rate_limit\.per_second: expected"),
    (lambda d: d["accounts"][0].update(rate_limit={"max_retry_after": "soon"}), r"rate_limit\.max_retry_after:"),
    (lambda d: d["accounts"][0].update(rate_limit={"brust": 5}), r"^accounts\[0\]\.rate_limit\.brust: unknown key"),
    (lambda d: d["accounts"][0].update(rate_limit=5), r"^accounts\[0\]\.rate_limit: expected a mapping"),
    (lambda d: d.update(accounts=[]), "^accounts: expected a non-empty list"),
    (lambda d: d.update(max_age="1m"), r"^max_age: 60s is shorter than refresh_interval"),
])
def test_each_mistake_gets_one_message_naming_the_key(mutate: Any, message: str) -> None:
    data = login()
    mutate(data)
    assert len(error_of(data).splitlines()) == 1
    assert re.search(message, error_of(data)), error_of(data)


def test_oauth2_needs_a_token_or_a_token_file() -> None:
    data = {"accounts": [{"name": "o", "region": "china", "auth": {"mode": "oauth2", "appkey": "a" * 8,
                                                                    "secret_key": "b" * 8}}]}
    assert "authorize --account o" in error_of(data)


def test_secrets_from_files_and_environment(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-a-file\n")
    data = login(secret_key_file="secret", user_password_env="MY_PW")
    data["accounts"][0]["auth"].pop("secret_key")
    data["accounts"][0]["auth"].pop("user_password")
    config = parse_config(data, env={"MY_PW": "from-env"}, base_dir=tmp_path)
    assert config.accounts[0].auth.secret_key == "from-a-file"
    assert config.accounts[0].auth.user_password == "from-env"
    assert {"from-a-file", "from-env"} <= set(config.secrets())


def test_missing_secret_file_and_unset_variable_are_clear(tmp_path: Path) -> None:
    data = login(secret_key_file="/nonexistent/secret")
    data["accounts"][0]["auth"].pop("secret_key")
    assert error_of(data, base_dir=tmp_path) == (
        "accounts[0].auth.secret_key_file: cannot read /nonexistent/secret: No such file or directory")
    data = login(user_password_env="UNSET_VAR")
    data["accounts"][0]["auth"].pop("user_password")
    assert "environment variable UNSET_VAR is not set" in error_of(data)
    data = login(secret_key_env="X")
    assert "give only one of secret_key, secret_key_env" in error_of(data, env={"X": "y"})


def test_shared_token_file_is_refused(tmp_path: Path) -> None:
    auth = {"mode": "oauth2", "appkey": "a" * 8, "secret_key": "b" * 8, "token_file": str(tmp_path / "t.json"),
            "refresh_token": "r" * 10}
    data = {"accounts": [{"name": "a", "region": "europe", "auth": auth},
                         {"name": "b", "region": "europe", "auth": dict(auth)}]}
    assert "share token_file" in error_of(data)


def test_load_config_reports_yaml_errors_with_position(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("accounts:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c.yaml: line \d+, column \d+"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_world_readable_config_with_inline_secrets_warns(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(login()))
    os.chmod(path, 0o644)
    assert any("world-readable" in w for w in load_config(path).warnings)
    os.chmod(path, 0o600)
    assert not any("world-readable" in w for w in load_config(path).warnings)


def test_example_configuration_documents_valid_keys(tmp_path: Path) -> None:
    """config.example.yaml must load as it is (with its environment variables and files provided)."""
    env = {"ISOLARCLOUD_SECRET_KEY": "x" * 10, "ISOLARCLOUD_PASSWORD": "p" * 10}
    text = (ROOT / "config.example.yaml").read_text()
    data = yaml.safe_load(text)
    for account in data["accounts"]:
        auth = account["auth"]
        for key in [k for k in auth if k.endswith("_file")]:
            target = tmp_path / Path(auth[key]).name
            if key != "token_file":
                target.write_text("value-from-file")
            auth[key] = str(target)
    config = parse_config(data, env=env, base_dir=tmp_path)
    assert len(config.accounts) >= 2
    assert {a.auth.mode for a in config.accounts} == {"oauth2", "login"}
