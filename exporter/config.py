"""Configuration: load the YAML file, validate every key, resolve secrets.

Every problem becomes one `ConfigError` naming the key path (`accounts[1].auth.secret_key_file`) so the CLI
can print a single clear line and exit 2 before anything starts.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .data import DEVICE_TYPE_CODES, DEVICE_TYPE_SLUGS, PS_TYPE_SLUGS


class ConfigError(Exception):
    """A configuration problem, already phrased for the user (key path + problem)."""


@dataclass(frozen=True)
class Region:
    gateway: str
    web_host: str
    cloud_id: int


# Portal gateways [doc]; web hosts and cloudIds [confirmed by third-party clients]. China's web host is
# disputed (.com.cn vs .com): we follow the token field table's example redirect_uri; `authorize_host`
# overrides it.
REGIONS: dict[str, Region] = {
    "china": Region("https://gateway.isolarcloud.com", "web3.isolarcloud.com.cn", 1),
    "international": Region("https://gateway.isolarcloud.com.hk", "web3.isolarcloud.com.hk", 2),
    "europe": Region("https://gateway.isolarcloud.eu", "web3.isolarcloud.eu", 3),
    "australia": Region("https://augateway.isolarcloud.com", "auweb3.isolarcloud.com", 7),
}

# Authorisation web hosts whose cloudId is known, for an `authorize_host` given without `authorize_cloud_id`: the
# regions' and India's (a gateway the portal does not list; host and cloudId 9 from third-party clients).
KNOWN_AUTHORIZE_HOSTS: dict[str, int] = {
    **{region.web_host: region.cloud_id for region in REGIONS.values()},
    "web3.isolarcloud.com": 1,  # China's disputed alternative to .com.cn
    "web3.isolarcloud.in": 9,
}
_AUTHORIZE_HOST_RE = re.compile(r"^(?:https?://)?[A-Za-z0-9.-]+(?::\d{1,5})?/?$")

AUTH_MODES = ("oauth2", "login")
ACCOUNT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PS_TYPE_CODES = set(PS_TYPE_SLUGS)
SECRET_KEYS = ("appkey", "secret_key", "access_token", "refresh_token", "user_account", "user_password")


@dataclass(frozen=True)
class RealtimeConfig:
    enabled: bool = True
    batch_size: int = 50
    extra_points: tuple[str, ...] = ()
    interval: float | None = None  # None: refresh_interval
    min_budget_share: float = 0.5
    skip_unchanged: bool = False  # a plant whose update_time stood still keeps its values, unfetched ...
    unchanged_max_age: float = 3600.0  # ... for at most this long


@dataclass(frozen=True)
class ApiQuotaConfig:
    """getOpenApiCallInfo for login apps: how often, and the part of the quota `api_budget_per_hour: auto`
    leaves unused."""

    enabled: bool = True
    interval: float = 900.0
    margin: float = 0.2


DEFAULT_BUDGET = 1000  # calls per hour: half the ~2000/hour commonly reported; also auto's budget until it knows


@dataclass(frozen=True)
class RateLimitConfig:
    """The pace of calls to the account's gateway, shared with every account of the same gateway (the strictest
    settings of them apply). Defaults below the recorded gateway limiter (burst 15, 10 calls per second)."""

    burst: int = 10
    per_second: float = 5.0
    max_retry_after: float = 60.0


@dataclass(frozen=True)
class FaultsConfig:
    enabled: bool = True
    interval: float | None = None  # None: refresh_interval
    page_size: int = 100
    max_series: int = 5000
    min_budget_share: float = 0.05


@dataclass(frozen=True)
class DetailsConfig:
    enabled: bool = True
    interval: float = 86400.0
    min_budget_share: float = 0.05
    install_power_unit: str = "W"


@dataclass(frozen=True)
class DeviceRealtimeConfig:
    enabled: bool = False
    device_types: tuple[int, ...] = (1,)  # inverters
    points: tuple[str, ...] = ("1", "2", "24")  # the documented inverter points: daily yield, total yield, power
    batch_size: int = 50
    interval: float | None = None  # None: refresh_interval
    min_budget_share: float = 0.1


@dataclass(frozen=True)
class DevicesConfig:
    enabled: bool = True
    inventory_interval: float = 86400.0
    page_size: int = 100
    firmware: bool = False
    device_types: tuple[int, ...] = ()  # the inventory's device_type_list filter; empty: every type
    min_budget_share: float = 0.1
    realtime: DeviceRealtimeConfig = field(default_factory=DeviceRealtimeConfig)


@dataclass(frozen=True)
class AuthConfig:
    mode: str
    appkey: str
    secret_key: str
    access_token: str | None = None
    refresh_token: str | None = None
    token_file: Path | None = None
    application_id: str | None = None
    redirect_uri: str | None = None
    user_account: str | None = None
    user_password: str | None = None

    def secrets(self) -> list[str]:
        return [s for s in (self.appkey, self.secret_key, self.access_token, self.refresh_token,
                            self.user_password) if s]


@dataclass(frozen=True)
class AccountConfig:
    name: str
    base_url: str
    region: str | None
    auth: AuthConfig
    ps_type: str | None = None
    valid_flag: str = "1,3"
    ps_name: str | None = None
    page_size: int = 100
    lang: str = "_en_US"
    api_budget_per_hour: int = 1000
    api_time_zone: str = "plant"
    strict_row_count: bool = True
    authorize_host: str | None = None
    authorize_cloud_id: int | None = None
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    api_budget_auto: bool = False  # `api_budget_per_hour: auto`: follow the quota getOpenApiCallInfo reports
    api_quota: ApiQuotaConfig = field(default_factory=ApiQuotaConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    details: DetailsConfig = field(default_factory=DetailsConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)


# The largest realistic answer is a legacy plant-list page at the largest page_size (1000 rows, ~1.7 MB; 170 kB at
# the default 100); a real-time batch of 1000 plants with 100 points is ~1.6 MB. 8 MiB leaves a margin of ~5x and
# keeps a pathological answer (millions of tiny JSON objects) under ~250 MB of peak memory (BENCHMARKS.md).
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Config:
    accounts: tuple[AccountConfig, ...]
    refresh_interval: float = 300.0
    max_age: float | None = None
    http_timeout: float = 30.0
    scrape_timeout: float = 10.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    warnings: tuple[str, ...] = ()
    refresh_token_renew_before: float = 14 * 86400.0

    def secrets(self) -> list[str]:
        return [s for a in self.accounts for s in a.auth.secrets()]


_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, key: str) -> float:
    """Seconds as a number, or a Prometheus-style string such as `90s`, `5m`, `1h30m`."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration such as 300, '90s' or '5m', got {value!r}")
    if isinstance(value, (int, float)) or (isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value.strip())):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION_RE.match(value.strip()):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART_RE.findall(value))
    else:
        raise ConfigError(f"{key}: expected a duration such as 300, '90s' or '5m', got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{key}: must be a finite number greater than 0, got {value!r}")
    return seconds


class _Section:
    """A mapping being validated: remembers which keys were read so leftovers are reported."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'configuration'}: expected a mapping, got {type(data).__name__}")
        self.data = data
        self.path = path
        self.used: set[str] = set()
        self.known: set[str] = set()  # every key name this section asked about: the "did you mean" candidates

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        self.known.add(name)
        return self.data.get(name, default)

    def has(self, name: str) -> bool:
        self.known.add(name)
        return name in self.data

    def missing(self, names: str | tuple[str, ...], message: str) -> ConfigError:
        """The error for a required key (or one of `names`) that is absent: a misspelling of it, when the section
        holds one, is the real problem ("unknown key … (did you mean …?)"), not the absence."""
        unread = [str(k) for k in self.data if k not in self.used and k not in self.known]
        for name in (names,) if isinstance(names, str) else names:
            near = difflib.get_close_matches(name, unread, n=1, cutoff=0.75)
            if near:
                return ConfigError(f"{self.key(near[0])}: unknown key (did you mean {name}?)")
        return ConfigError(message)

    def string(self, name: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.get(name)
        if value is None:
            if required:
                raise self.missing(name, f"{self.key(name)}: required")
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{self.key(name)}: expected a string, got {type(value).__name__}")
        return value

    def integer(self, name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.key(name)}: expected an integer, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ConfigError(f"{self.key(name)}: must be {bounds}, got {value}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected true or false, got {value!r}")
        return value

    def secret(self, name: str, env: dict[str, str], base_dir: Path) -> str | None:
        """A secret given inline, as `<name>_file` (Docker/Kubernetes secrets) or `<name>_env`."""
        sources = [k for k in (name, f"{name}_file", f"{name}_env") if self.has(k)]
        if len(sources) > 1:
            raise ConfigError(f"{self.key(name)}: give only one of {', '.join(sources)}")
        if not sources:
            return None
        source = sources[0]
        raw = self.string(source)
        if raw is None or raw == "":
            raise ConfigError(f"{self.key(source)}: must not be empty")
        if source.endswith("_file"):
            path = _resolve(raw, base_dir)
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{self.key(source)}: cannot read {path}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"{self.key(source)}: {path} is not UTF-8 text") from None
            if not value:
                raise ConfigError(f"{self.key(source)}: {path} is empty")
            return value
        if source.endswith("_env"):
            value = env.get(raw, "").strip()
            if not value:
                raise ConfigError(f"{self.key(source)}: environment variable {raw} is not set or empty")
            return value
        return raw

    def finish(self) -> None:
        unknown = sorted((str(k) for k in set(self.data) - self.used), key=str)
        if unknown:
            names = ", ".join(self.key(k) for k in unknown)
            hints = [near[0] for k in unknown
                     if (near := difflib.get_close_matches(k, sorted(self.known - set(self.data)), n=1, cutoff=0.6))]
            hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
            raise ConfigError(f"{names}: unknown key{'s' if len(unknown) > 1 else ''}{hint}")


def _resolve(raw: str, base_dir: Path) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base_dir / path


def _comma_codes(value: Any, key: str, allowed: set[int] | None) -> str | None:
    """`"1,3"`, `[1, 3]` or `3` → `"1,3"`, the form the API takes."""
    if value is None:
        return None
    items = value if isinstance(value, list) else str(value).split(",")
    codes: list[str] = []
    for item in items:
        text = str(item).strip()
        if not text.isdigit() or (allowed is not None and int(text) not in allowed):
            choices = f" (one of {sorted(allowed)})" if allowed else ""
            raise ConfigError(f"{key}: {text!r} is not a valid code{choices}")
        codes.append(text)
    if not codes:
        raise ConfigError(f"{key}: must not be empty")
    return ",".join(codes)


def _auth(section: _Section, env: dict[str, str], base_dir: Path, account: str) -> AuthConfig:
    mode = section.string("mode", required=True)
    if mode not in AUTH_MODES:
        raise ConfigError(f"{section.key('mode')}: must be one of {', '.join(AUTH_MODES)}, got {mode!r}")
    secrets = {name: section.secret(name, env, base_dir) for name in SECRET_KEYS}
    for required in ("appkey", "secret_key"):
        if not secrets[required]:
            raise section.missing(required,
                                  f"{section.key(required)}: required (or {required}_file / {required}_env)")
    token_file_raw = section.string("token_file")
    token_file = _resolve(token_file_raw, base_dir) if token_file_raw else None
    application_id = section.string("application_id")
    redirect_uri = section.string("redirect_uri")
    if mode == "login":
        for required in ("user_account", "user_password"):
            if not secrets[required]:
                raise section.missing(required, f"{section.key(required)}: required in login mode")
        for oauth_only in ("access_token", "refresh_token"):
            if secrets[oauth_only]:
                raise ConfigError(f"{section.key(oauth_only)}: only used in oauth2 mode")
        if token_file:
            raise ConfigError(f"{section.key('token_file')}: only used in oauth2 mode")
    else:
        for login_only in ("user_account", "user_password"):
            if secrets[login_only]:
                raise ConfigError(f"{section.key(login_only)}: only used in login mode")
        if not (secrets["refresh_token"] or secrets["access_token"] or token_file):
            raise section.missing(("token_file", "refresh_token", "access_token"),
                f"{section.path}: oauth2 mode needs refresh_token/access_token or a token_file "
                f"(run `isolarcloud-exporter authorize --account {account}` to create one)"
            )
        if token_file and token_file.exists():
            if token_file.is_dir():
                raise ConfigError(f"{section.key('token_file')}: {token_file} is a directory")
            if not os.access(token_file, os.R_OK | os.W_OK):
                raise ConfigError(f"{section.key('token_file')}: {token_file} is not readable and writable")
        elif token_file and not token_file.parent.is_dir():
            raise ConfigError(f"{section.key('token_file')}: directory {token_file.parent} does not exist")
        if token_file and not os.access(token_file.parent, os.W_OK | os.X_OK):
            # Checked now, not at the first rotation: each rotated token is written to a temporary file beside
            # the token file and renamed over it, so a read-only directory would lose it.
            raise ConfigError(f"{section.key('token_file')}: directory {token_file.parent} is not writable "
                              "(rotated tokens are written to a temporary file there, then renamed)")
    section.finish()
    return AuthConfig(
        mode=mode,
        appkey=secrets["appkey"] or "",
        secret_key=secrets["secret_key"] or "",
        access_token=secrets["access_token"],
        refresh_token=secrets["refresh_token"],
        token_file=token_file,
        application_id=application_id,
        redirect_uri=redirect_uri,
        user_account=secrets["user_account"],
        user_password=secrets["user_password"],
    )


def _realtime(data: Any, path: str) -> RealtimeConfig:
    if data is None:
        return RealtimeConfig()
    section = _Section(data, path)
    enabled = section.boolean("enabled", True)
    batch_size = section.integer("batch_size", 50, minimum=1, maximum=1000)
    extra = section.get("extra_points", [])
    if not isinstance(extra, list):
        raise ConfigError(f"{section.key('extra_points')}: expected a list of point ids")
    points: list[str] = []
    for i, item in enumerate(extra):
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit():
            raise ConfigError(f"{section.key('extra_points')}[{i}]: expected a numeric point id, got {item!r}")
        points.append(text)
    interval_raw = section.get("interval")
    interval = parse_duration(interval_raw, section.key("interval")) if interval_raw is not None else None
    share = budget_share(section, "min_budget_share", 0.5)
    skip = section.boolean("skip_unchanged", False)
    max_age_raw = section.get("unchanged_max_age")
    unchanged_max_age = (parse_duration(max_age_raw, section.key("unchanged_max_age"))
                         if max_age_raw is not None else 3600.0)
    section.finish()
    return RealtimeConfig(enabled=enabled, batch_size=batch_size, extra_points=tuple(points), interval=interval,
                          min_budget_share=share, skip_unchanged=skip, unchanged_max_age=unchanged_max_age)


def _rate_limit(data: Any, path: str) -> RateLimitConfig:
    if data is None:
        return RateLimitConfig()
    section = _Section(data, path)
    defaults = RateLimitConfig()
    burst = section.integer("burst", defaults.burst, minimum=1, maximum=10_000)
    rate = section.get("per_second", defaults.per_second)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 10_000:
        raise ConfigError(f"{section.key('per_second')}: expected calls per second, a number above 0 and at most "
                          f"10000, got {rate!r}")
    longest = section.get("max_retry_after")
    max_retry_after = (parse_duration(longest, section.key("max_retry_after")) if longest is not None
                       else defaults.max_retry_after)
    section.finish()
    return RateLimitConfig(burst=burst, per_second=float(rate), max_retry_after=max_retry_after)


def _device_types(value: Any, key: str) -> tuple[int, ...]:
    """Device types as Appendix 1 codes or their slugs (`inverter`, `battery`, ...); `unknown_<n>` names a type the
    inventory reports that Appendix 1 does not document."""
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of device types (Appendix 1 codes or slugs such as inverter)")
    codes: list[int] = []
    for i, item in enumerate(value):
        text = str(item).strip().lower()
        undocumented = re.fullmatch(r"unknown_(\d{1,6})", text)
        if isinstance(item, bool):
            code = None
        elif isinstance(item, int) or text.isdigit():
            code = int(text) if int(text) in DEVICE_TYPE_SLUGS else None
        elif undocumented:
            code = int(undocumented.group(1))
        else:
            code = DEVICE_TYPE_CODES.get(text)
        if code is None:
            raise ConfigError(f"{key}[{i}]: {item!r} is not a device type of Appendix 1: give its code or slug "
                              "(e.g. 1 or inverter, 14 or energy_storage_system, 43 or battery, 7 or meter); "
                              "write unknown_<code> for an undocumented type the inventory reports")
        if code not in codes:
            codes.append(code)
    return tuple(codes)


def _point_ids(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key}: expected a non-empty list of point ids")
    points: list[str] = []
    for i, item in enumerate(value):
        text = str(item).strip()
        if isinstance(item, bool) or not text.isdigit() or len(text) > 12:
            raise ConfigError(f"{key}[{i}]: expected a numeric point id, got {item!r}")
        if text not in points:
            points.append(text)
    return tuple(points)


def _device_realtime(data: Any, path: str) -> DeviceRealtimeConfig:
    if data is None:
        return DeviceRealtimeConfig()
    section = _Section(data, path)
    default = DeviceRealtimeConfig()
    enabled = section.boolean("enabled", False)
    types_raw = section.get("device_types")
    device_types = (_device_types(types_raw, section.key("device_types")) if types_raw is not None
                    else default.device_types)
    if not device_types:
        raise ConfigError(f"{section.key('device_types')}: must not be empty")
    points_raw = section.get("points")
    points = _point_ids(points_raw, section.key("points")) if points_raw is not None else default.points
    batch_size = section.integer("batch_size", default.batch_size, minimum=1, maximum=1000)
    interval_raw = section.get("interval")
    interval = parse_duration(interval_raw, section.key("interval")) if interval_raw is not None else None
    share = budget_share(section, "min_budget_share", default.min_budget_share)
    section.finish()
    return DeviceRealtimeConfig(enabled=enabled, device_types=device_types, points=points, batch_size=batch_size,
                                interval=interval, min_budget_share=share)


def _devices(data: Any, path: str) -> DevicesConfig:
    if data is None:
        return DevicesConfig()
    section = _Section(data, path)
    default = DevicesConfig()
    enabled = section.boolean("enabled", True)
    interval = parse_duration(section.get("inventory_interval", default.inventory_interval),
                              section.key("inventory_interval"))
    page_size = section.integer("page_size", default.page_size, minimum=1, maximum=1000)
    firmware = section.boolean("firmware", False)
    types_raw = section.get("device_types")
    device_types = _device_types(types_raw, section.key("device_types")) if types_raw is not None else ()
    share = budget_share(section, "min_budget_share", default.min_budget_share)
    realtime = _device_realtime(section.get("realtime"), section.key("realtime"))
    section.finish()
    if realtime.enabled and not enabled:
        raise ConfigError(f"{section.key('realtime.enabled')}: device real-time data needs the inventory "
                          f"({section.key('enabled')} is false)")
    missing = [t for t in realtime.device_types if device_types and t not in device_types]
    if realtime.enabled and missing:
        raise ConfigError(f"{section.key('realtime.device_types')}: {', '.join(map(str, missing))} not in "
                          f"{section.key('device_types')}: the inventory would list no such devices")
    return DevicesConfig(enabled=enabled, inventory_interval=interval, page_size=page_size, firmware=firmware,
                         device_types=device_types, min_budget_share=share, realtime=realtime)


def budget_share(section: _Section, name: str, default: float) -> float:
    """A fraction of the hourly budget, 0-0.9 (the plant list always keeps a part of it)."""
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 0.9:
        raise ConfigError(f"{section.key(name)}: expected a fraction of the budget between 0 and 0.9, got {value!r}")
    return float(value)


def _api_quota(data: Any, path: str) -> ApiQuotaConfig:
    if data is None:
        return ApiQuotaConfig()
    section = _Section(data, path)
    enabled = section.boolean("enabled", True)
    interval_raw = section.get("interval")
    interval = parse_duration(interval_raw, section.key("interval")) if interval_raw is not None else 900.0
    margin = section.get("margin", 0.2)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= 0.9:
        raise ConfigError(f"{section.key('margin')}: expected a fraction of the quota between 0 and 0.9, "
                          f"got {margin!r}")
    section.finish()
    return ApiQuotaConfig(enabled=enabled, interval=interval, margin=float(margin))


def _api_budget(section: _Section, mode: str, quota: ApiQuotaConfig) -> tuple[int, bool]:
    """`api_budget_per_hour`: a number of calls, or `auto` (login apps: follow getOpenApiCallInfo)."""
    raw = section.get("api_budget_per_hour")
    key = section.key("api_budget_per_hour")
    if isinstance(raw, str) and raw != "auto":
        raise ConfigError(f"{key}: expected a number of calls per hour or auto, got {raw!r}")
    if raw != "auto":
        return section.integer("api_budget_per_hour", DEFAULT_BUDGET, minimum=1), False
    if mode != "login":
        raise ConfigError(f"{key}: auto needs auth.mode login (getOpenApiCallInfo, which reports the quota, is "
                          "documented for login apps only); give a number of calls per hour")
    if not quota.enabled:
        raise ConfigError(f"{key}: auto needs api_quota.enabled (the quota is what it follows)")
    return DEFAULT_BUDGET, True


# -- open faults and plant details --------------------------------------------------------------------------

MAX_SHARES = 0.9  # the plant list always keeps a tenth of the budget
QUOTA_MIN_SHARE = 0.05  # the quota collection's floor (login apps with api_quota.enabled): one call a pass


def _faults(data: Any, path: str) -> FaultsConfig:
    if data is None:
        return FaultsConfig()
    section = _Section(data, path)
    interval_raw = section.get("interval")
    config = FaultsConfig(
        enabled=section.boolean("enabled", True),
        interval=parse_duration(interval_raw, section.key("interval")) if interval_raw is not None else None,
        page_size=section.integer("page_size", 100, minimum=1, maximum=1000),
        max_series=section.integer("max_series", 5000, minimum=0),
        min_budget_share=budget_share(section, "min_budget_share", 0.05),
    )
    section.finish()
    return config


def _details(data: Any, path: str) -> DetailsConfig:
    if data is None:
        return DetailsConfig()
    section = _Section(data, path)
    unit = section.string("install_power_unit", "W")
    if unit not in ("W", "kW"):
        raise ConfigError(f"{section.key('install_power_unit')}: must be W or kW, got {unit!r}")
    config = DetailsConfig(
        enabled=section.boolean("enabled", True),
        interval=parse_duration(section.get("interval", 86400), section.key("interval")),
        min_budget_share=budget_share(section, "min_budget_share", 0.05),
        install_power_unit=unit or "W",
    )
    section.finish()
    return config


def _check_shares(account: AccountConfig, path: str) -> None:
    """The shares guaranteed to the collections after the plant list must leave the list a part of the budget."""
    oauth = account.auth.mode == "oauth2"
    devices = account.devices
    shares = {"realtime": account.realtime.min_budget_share if account.realtime.enabled and oauth else 0.0,
              "faults": account.faults.min_budget_share if account.faults.enabled else 0.0,
              "details": account.details.min_budget_share if account.details.enabled and oauth else 0.0,
              "devices": devices.min_budget_share if devices.enabled else 0.0,
              "devices.realtime": devices.realtime.min_budget_share
              if devices.enabled and devices.realtime.enabled else 0.0}
    quota = QUOTA_MIN_SHARE if not oauth and account.api_quota.enabled else 0.0
    total = sum(shares.values()) + quota
    if total > MAX_SHARES + 1e-9:
        parts = " + ".join(f"{name}.min_budget_share {share:g}" for name, share in shares.items() if share)
        if quota:
            parts += f" + {quota:g} for the quota calls"
        raise ConfigError(f"{path}: {parts} = {total:g}, more than {MAX_SHARES:g} of api_budget_per_hour "
                          "(the plant list keeps the rest): lower one of them")


_TZ_RE = re.compile(r"^(plant|UTC|[+-]\d{2}:\d{2})$")


def _account(data: Any, path: str, env: dict[str, str], base_dir: Path) -> AccountConfig:
    section = _Section(data, path)
    name = section.string("name", required=True) or ""
    if not ACCOUNT_NAME_RE.match(name):
        raise ConfigError(
            f"{section.key('name')}: {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(it becomes the `account` label and part of file names)"
        )
    region = section.string("region")
    base_url = section.string("base_url")
    if region is not None and region not in REGIONS:
        raise ConfigError(f"{section.key('region')}: must be one of {', '.join(REGIONS)}, got {region!r}")
    if base_url is None:
        if region is None:
            raise section.missing(("region", "base_url"), f"{path}: give a region ({', '.join(REGIONS)}) or a base_url")
        base_url = REGIONS[region].gateway
    if not re.match(r"^https?://[^/\s]+", base_url):
        raise ConfigError(f"{section.key('base_url')}: expected http(s)://host[:port], got {base_url!r}")
    auth_data = section.get("auth")
    if auth_data is None:
        raise section.missing("auth", f"{section.key('auth')}: required")
    auth = _auth(_Section(auth_data, section.key("auth")), env, base_dir, name)
    quota = _api_quota(section.get("api_quota"), section.key("api_quota"))
    budget, budget_auto = _api_budget(section, auth.mode, quota)
    api_tz = section.string("api_time_zone", "plant") or "plant"
    if not _TZ_RE.match(api_tz):
        raise ConfigError(f"{section.key('api_time_zone')}: expected plant, UTC or +HH:MM, got {api_tz!r}")
    account = AccountConfig(
        name=name,
        base_url=base_url.rstrip("/"),
        region=region,
        auth=auth,
        ps_type=_comma_codes(section.get("ps_type"), section.key("ps_type"), PS_TYPE_CODES),
        valid_flag=_comma_codes(section.get("valid_flag", "1,3"), section.key("valid_flag"), {1, 2, 3}) or "1,3",
        ps_name=section.string("ps_name"),
        page_size=section.integer("page_size", 100, minimum=1, maximum=1000),
        lang=section.string("lang", "_en_US") or "_en_US",
        api_budget_per_hour=budget,
        api_time_zone=api_tz,
        strict_row_count=section.boolean("strict_row_count", True),
        authorize_host=_authorize_host(section),
        authorize_cloud_id=section.integer("authorize_cloud_id", 0, minimum=0) if section.has(
            "authorize_cloud_id") else None,
        realtime=_realtime(section.get("realtime"), section.key("realtime")),
        rate_limit=_rate_limit(section.get("rate_limit"), section.key("rate_limit")),
        api_budget_auto=budget_auto,
        api_quota=quota,
        faults=_faults(section.get("faults"), section.key("faults")),
        details=_details(section.get("details"), section.key("details")),
        devices=_devices(section.get("devices"), section.key("devices")),
    )
    section.finish()
    _check_shares(account, path)
    return account


def _authorize_host(section: _Section) -> str | None:
    host = section.string("authorize_host")
    if host is not None and not _AUTHORIZE_HOST_RE.match(host):
        raise ConfigError(f"{section.key('authorize_host')}: expected a host name such as web3.isolarcloud.eu "
                          f"(or http(s)://host[:port]), got {host!r}")
    return host.rstrip("/") if host else None


def authorization_page(account: AccountConfig, path: str) -> tuple[str, int]:
    """Where the owner approves access: the page's base URL (`https://<web host>`) and the cloudId, from
    `authorize_host` / `authorize_cloud_id`, else from the region. `path` names the account in errors."""
    region = REGIONS.get(account.region or "")
    host = account.authorize_host or (region.web_host if region else None)
    if host is None:
        raise ConfigError(f"{path}.authorize_host: required to build the authorisation URL for a base_url "
                          f"without a region (e.g. web3.isolarcloud.in), or set region; or pass --code")
    bare = re.sub(r"^https?://", "", host)
    cloud_id = account.authorize_cloud_id
    if cloud_id is None:
        known = KNOWN_AUTHORIZE_HOSTS.get(bare) if account.authorize_host else None
        cloud_id = known if known is not None else (region.cloud_id if region else None)
    if cloud_id is None:
        raise ConfigError(f"{path}.authorize_cloud_id: required with authorize_host {host} (the cloudId of the "
                          f"authorisation URL; known for {', '.join(sorted(KNOWN_AUTHORIZE_HOSTS))})")
    return (host if "://" in host else f"https://{host}"), cloud_id


def parse_config(data: Any, *, env: dict[str, str] | None = None, base_dir: Path | None = None) -> Config:
    """Validate an already-loaded YAML document."""
    env = dict(os.environ) if env is None else env
    base_dir = base_dir or Path.cwd()
    if data is None:
        raise ConfigError("configuration: empty")
    top = _Section(data, "")
    warnings: list[str] = []
    refresh_interval = parse_duration(top.get("refresh_interval", 300), "refresh_interval")
    if refresh_interval < 60:
        warnings.append(
            f"refresh_interval is {refresh_interval:g}s: the cloud updates plant data every 5 minutes, "
            "so intervals below 60s only spend API quota (fine for tests and the simulator)"
        )
    max_age_raw = top.get("max_age")
    max_age = parse_duration(max_age_raw, "max_age") if max_age_raw is not None else None
    if max_age is not None and max_age < refresh_interval:
        raise ConfigError(f"max_age: {max_age:g}s is shorter than refresh_interval ({refresh_interval:g}s)")
    http_timeout = parse_duration(top.get("http_timeout", 30), "http_timeout")
    scrape_timeout = parse_duration(top.get("scrape_timeout", 10), "scrape_timeout")
    max_bytes = top.integer("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, minimum=1024)
    renew_before = _renew_before(top)
    accounts_data = top.get("accounts")
    if accounts_data is None:
        raise top.missing("accounts", "accounts: required, a non-empty list of accounts")
    if not isinstance(accounts_data, list) or not accounts_data:
        raise ConfigError("accounts: expected a non-empty list of accounts")
    accounts = tuple(_account(a, f"accounts[{i}]", env, base_dir) for i, a in enumerate(accounts_data))
    seen: dict[str, int] = {}
    for i, account in enumerate(accounts):
        if account.name in seen:
            raise ConfigError(f"accounts[{i}].name: {account.name!r} is already used by accounts[{seen[account.name]}]")
        seen[account.name] = i
    token_files: dict[Path, str] = {}
    for account in accounts:
        tf = account.auth.token_file
        if tf is not None:
            if tf.resolve() in token_files:
                raise ConfigError(
                    f"accounts: {account.name!r} and {token_files[tf.resolve()]!r} share token_file {tf}; "
                    "a rotated refresh token must have exactly one owner"
                )
            token_files[tf.resolve()] = account.name
    top.finish()
    return Config(
        accounts=accounts,
        refresh_interval=refresh_interval,
        max_age=max_age,
        http_timeout=http_timeout,
        scrape_timeout=scrape_timeout,
        max_response_bytes=max_bytes,
        warnings=tuple(warnings),
        refresh_token_renew_before=renew_before,
    )


def _renew_before(top: _Section) -> float:
    """When an OAuth2 refresh token (30 days) is renewed in the background without scrapes: between a day (one
    renewal attempt a day leaves at least one) and 29 days."""
    raw = top.get("refresh_token_renew_before")
    if raw is None:
        return 14 * 86400.0
    seconds = parse_duration(raw, "refresh_token_renew_before")
    if not 86400 <= seconds <= 29 * 86400:
        raise ConfigError(f"refresh_token_renew_before: must be between 1d and 29d, got {raw!r}")
    return seconds


def load_config(path: str | Path, *, env: dict[str, str] | None = None) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {problem}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty")
    try:
        config = parse_config(data, env=env, base_dir=path.parent.resolve())
    except ConfigError as exc:
        # Several files take part (this one, secret files, token files, the web configuration): name it.
        raise ConfigError(f"{path}: {exc}") from None
    mode = path.stat().st_mode
    if mode & stat.S_IROTH and any(_inline_secret(data, a) for a in range(len(config.accounts))):
        config = _with_warning(
            config, f"{path} is world-readable and holds secrets inline: chmod 600 it, or use *_file/*_env keys"
        )
    return config


def _inline_secret(data: dict[str, Any], index: int) -> bool:
    auth = (data["accounts"][index] or {}).get("auth") or {}
    return any(isinstance(auth.get(k), str) and auth.get(k) for k in SECRET_KEYS if k != "user_account")


def _with_warning(config: Config, warning: str) -> Config:
    return replace(config, warnings=(*config.warnings, warning))
