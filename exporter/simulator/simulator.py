"""The Simulator: gateway checks, routing, fault application, call log, and the test-facing control API."""

from __future__ import annotations

import calendar
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import api_details, api_devices, api_faults, api_history, endpoints, history
from .alarms import AlarmBook
from .api_devices import CLAIM_KEYS, FAIL_KEYS
from .api_history import CURRENT_DAY_MODES, TYPE_STYLES, WINDOW_MODES
from .auth import Auth
from .context import Context
from .devices import DeviceRegistry
from .envelope import Reply, Request, envelope, error, serial
from .faults import REPLACING, Fault, FaultQueue
from .fleet import UPDATE_TIME_STYLES, Fleet, Plant
from .limiter import RateLimiter, retry_after_header
from .params import eval_times
from .quota import Quota
from .server import SimHTTPServer, html_error

LOGIN, LEGACY, TOKEN, PLATFORM = "login", "legacy", "token", "platform"
Endpoint = Callable[[Context, Request, "Fault | None"], Reply]
ROUTES: dict[str, tuple[str, Endpoint]] = {
    "/openapi/login": (LOGIN, endpoints.login),
    "/openapi/getPowerStationList": (LEGACY, endpoints.get_power_station_list),
    "/openapi/getOpenApiCallInfo": (LEGACY, endpoints.open_api_call_info),
    "/openapi/apiManage/token": (TOKEN, endpoints.token),
    "/openapi/apiManage/refreshToken": (TOKEN, endpoints.refresh_token),
    "/openapi/platform/queryPowerStationList": (PLATFORM, endpoints.query_power_station_list),
    "/openapi/platform/getPowerStationRealTimeData": (PLATFORM, endpoints.realtime),
    "/openapi/platform/getFaultAlarmInfo": (PLATFORM, api_faults.platform_list),
    "/openapi/getFaultAlarmInfo": (LEGACY, api_faults.legacy_list),
    "/openapi/platform/getPowerStationDetail": (PLATFORM, api_details.platform_detail),
    "/openapi/getPowerStationDetail": (LEGACY, api_details.legacy_detail),
    "/openapi/platform/getDeviceListByPsId": (PLATFORM, api_devices.platform_list),
    "/openapi/getDeviceList": (LEGACY, api_devices.legacy_list),
    "/openapi/platform/getDeviceRealTimeData": (PLATFORM, api_devices.platform_realtime),
    "/openapi/getDeviceRealTimeData": (LEGACY, api_devices.legacy_realtime),
    "/openapi/platform/getPowerStationPointMinuteDataList": (PLATFORM, api_history.minute_data),
    "/openapi/platform/getPowerStationPointDayMonthYearDataList": (PLATFORM, api_history.day_month_year_data),
    "/openapi/platform/getDevicePointMinuteDataList": (PLATFORM, api_history.device_minute_data),
    "/openapi/getDevicePointMinuteDataList": (LEGACY, api_history.legacy_device_minute_data),
}
INSTALL_POWER_UNITS = ("W", "kW")
_BEARER = re.compile(r"^\s*bearer\s+(\S+)\s*$", re.IGNORECASE)
TOTAL_KEYS = ("rowCount", "row_count", None)
LEGACY_UNITS = ("portal", "varied")
REALTIME_LIMIT_STYLES = ("010", "009", "message")
# The header tables: `Content-Type: application/json;charset=UTF-8` (Quick Start: plain `application/json`).
_JSON_MEDIA = re.compile(r"^\s*application/json\s*(?:;\s*charset\s*=\s*\"?utf-8\"?\s*)?$", re.IGNORECASE)
TOKEN_ANSWER_SHAPES = ("result_data", "top_level", "both")


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    time: float
    result_code: str | None
    response: Any
    status: int
    fault: str | None


class Simulator:
    """Simulated iSolarCloud OpenAPI gateway. See docs/simulator.md."""

    def __init__(
        self,
        plants: int = 25,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        appkey: str = "DEMOAPPKEY00000000000000000000001",
        secret_key: str = "demo-secret-key",
        users: dict[str, str] | None = None,
        total_key: str | None = "rowCount",
        max_page_size: int | None = None,
        max_realtime_plants: int | None = None,
        realtime_limit_style: str = "010",
        expired_token_style: str = "oauth_error",
        oauth_error_status: int = 401,
        access_token_ttl: float = 172799,
        refresh_token_ttl: float = 30 * 86400,
        login_token_ttl: float = 86400,
        login_rate_limit: tuple[int, float] | None = (10, 60.0),
        revoke_access_on_refresh: bool = True,
        hourly_quota: int | None = None,
        monthly_quota: int | None = None,
        min_call_interval: float | None = None,
        data_interval: float = 300.0,
        huge_size: int = 64 * 1024 * 1024,
        slow_byte_interval: float = 0.5,
        log_requests: bool = False,
        install_power_unit: str = "W",
        device_fail_keys: str = "recorded",
        device_claim_key: str = "mixed",
        check_content_type: bool = True,
        legacy_units: str = "portal",
        rate_limit: tuple[int, float] | None = None,
        rate_limit_retry_after: bool = True,
        access_token_calls: int | None = None,
        login_token_calls: int | None = None,
        history_current_day: str = "none",
        history_window: str = "closed",
        history_types: str = "recorded",
        history_gap_rate: float = 0.08,
        clock: Callable[[], float] = time.time,
        update_time_style: str = "clock",
        token_answer_shape: str = "result_data",
        page_size_over_limit: str = "clamp",
    ) -> None:
        # Every option that takes one of a few spellings, checked alike.
        for name, value, allowed in (
                ("total_key", total_key, TOTAL_KEYS),
                ("install_power_unit", install_power_unit, INSTALL_POWER_UNITS),
                ("device_fail_keys", device_fail_keys, tuple(FAIL_KEYS)),
                ("device_claim_key", device_claim_key, CLAIM_KEYS),
                ("history_current_day", history_current_day, CURRENT_DAY_MODES),
                ("history_window", history_window, WINDOW_MODES),
                ("history_types", history_types, TYPE_STYLES),
                ("expired_token_style", expired_token_style, ("envelope", "oauth_error")),
                ("legacy_units", legacy_units, LEGACY_UNITS),
                ("realtime_limit_style", realtime_limit_style, REALTIME_LIMIT_STYLES),
                ("update_time_style", update_time_style, UPDATE_TIME_STYLES),
                ("token_answer_shape", token_answer_shape, TOKEN_ANSWER_SHAPES),
                ("page_size_over_limit", page_size_over_limit, ("clamp", "reject"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {tuple(allowed)}")
        if not 0.0 <= history_gap_rate <= 1.0:
            raise ValueError("history_gap_rate must be between 0 and 1")
        self.host, self.port = host, port
        self.appkey, self.secret_key = appkey, secret_key
        self.total_key = total_key
        self.max_page_size = max_page_size
        self.max_realtime_plants = max_realtime_plants
        self.expired_token_style = expired_token_style
        self.oauth_error_status = oauth_error_status
        self.data_interval = data_interval
        self.huge_size = huge_size
        self.slow_byte_interval = slow_byte_interval
        self.log_requests = log_requests
        self.install_power_unit = install_power_unit
        self.device_fail_keys = device_fail_keys
        self.device_claim_key = device_claim_key
        self.check_content_type = check_content_type
        self.legacy_units = legacy_units
        self.realtime_limit_style = realtime_limit_style
        self.limiter = RateLimiter(clock, *rate_limit) if rate_limit is not None else None
        self.rate_limit_retry_after = rate_limit_retry_after
        # (ps_id, point id) → the value served instead of the model's (a string, or None for null).
        self.point_overrides: dict[tuple[int, int], str | None] = {}
        self.history_current_day = history_current_day
        self.history_window = history_window
        self.history_types = history_types
        self.history_gap_rate = history_gap_rate
        self.clock = clock
        self.update_time_style = update_time_style
        self.token_answer_shape = token_answer_shape
        self.page_size_over_limit = page_size_over_limit
        self.fleet = Fleet(seed, plants, clock())
        self.devices = DeviceRegistry(seed)  # lazy: nothing is generated until a plant's devices are asked for
        self.alarms = AlarmBook(seed, self.devices)
        self.users = dict(users) if users is not None else {"demo@example.com": "demo-password"}
        self.auth = Auth(clock, self.users, access_token_ttl, refresh_token_ttl, login_token_ttl,
                         login_rate_limit, revoke_access_on_refresh, access_token_calls, login_token_calls)
        self.quota = Quota(clock, hourly_quota, monthly_quota, min_call_interval)
        self.faults = FaultQueue()
        self.stopping = threading.Event()
        self._calls: list[Call] = []
        self._calls_lock = threading.Lock()
        self._server: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle -----------------------------------------------------------------------------------
    def start(self) -> Simulator:
        if self._server is not None:
            return self
        self.stopping.clear()
        self._server = SimHTTPServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="isolarcloud-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()  # releases hung / slow / huge handlers
        server.shutdown()
        server.cut_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # Request pipeline ----------------------------------------------------------------------------
    def handle(self, req: Request) -> Reply:
        limited = self._rate_limit()
        if limited is not None and limited.status == 429:
            self._record(req, limited, None)
            return limited
        fault = self.faults.take(req.path, req.body)
        if fault is not None and fault.kind in REPLACING:
            reply = self._fault_reply(fault)
        else:
            if fault is not None and fault.kind == "hook" and fault.hook is not None:
                fault.hook(self)
            reply = self._process(req, fault)
            if fault is not None:
                reply = _alter(reply, fault)
        if limited is not None:
            reply.headers = {**limited.headers, **reply.headers}
        self._record(req, reply, fault)
        return reply

    def _rate_limit(self) -> Reply | None:
        """The limiter scenario: None when off; a 429 when the bucket is empty; else a Reply carrying only the
        X-RateLimit-* headers for the answer."""
        if self.limiter is None:
            return None
        allowed, headers, wait = self.limiter.take()
        if allowed:
            return Reply(headers=headers)
        if self.rate_limit_retry_after:
            headers["Retry-After"] = retry_after_header(wait)
        return Reply(raw=b"", status=429, content_type="application/json", headers=headers)

    def oversized(self, path: str, headers: dict[str, str]) -> Reply:
        reply = error(self.clock(), "E995")
        self._record(Request(path, headers, None, self.clock()), reply, None)
        return reply

    def _process(self, req: Request, fault: Fault | None) -> Reply:
        now = self.clock()
        if self.check_content_type and not _JSON_MEDIA.match(req.header("Content-Type") or ""):
            # Undocumented answer; a Spring gateway's own error body for a body it will not read as JSON.
            return Reply({"timestamp": int(now * 1000), "status": 415, "error": "Unsupported Media Type",
                          "path": req.path}, status=415)
        key = req.header("x-access-key")
        if not key:
            return error(now, "E911")
        if key != self.secret_key:
            return error(now, "E912")
        body = req.body or {}
        appkey = body.get("appkey")
        if not appkey:
            return error(now, "001")
        if appkey != self.appkey:
            return error(now, "E00000")
        route = ROUTES.get(req.path)
        if route is None:
            return error(now, "E996")
        kind, endpoint = route
        refused = self.quota.check()
        if refused:
            return error(now, refused)
        if kind in (LOGIN, LEGACY):
            sys_code = req.header("sys_code")
            if not sys_code:
                return error(now, "003")
            if sys_code.strip() != "901":
                return error(now, "E994")
        if kind == LEGACY:
            token = body.get("token")
            if not token:
                return error(now, "002")
            if not self.auth.use_login_token(str(token)):
                return error(now, "E00003")
        if kind == PLATFORM:
            m = _BEARER.match(req.header("Authorization") or "")
            if m is None or not self.auth.use_access(m.group(1)):
                return self._invalid_token()
        return endpoint(self, req, fault)

    def _invalid_token(self) -> Reply:
        if self.expired_token_style == "oauth_error":
            return self._oauth_error("invalid_token", "Invalid access token")
        return error(self.clock(), "E00003")

    def _oauth_error(self, err: str, description: str) -> Reply:
        """The portal's failure example, `{"error": "invalid_token", "error_description": "Invalid access
        token", …}`, with RFC 6750's status (the portal gives none) and `WWW-Authenticate` header. The
        description never quotes the token (Spring's default does)."""
        payload = {"error": err, "error_description": description, "req_serial_num": serial(self.clock())}
        challenge = f'Bearer error="{err}", error_description="{description}"'
        return Reply(payload, status=self.oauth_error_status, headers={"WWW-Authenticate": challenge})

    def _fault_reply(self, fault: Fault) -> Reply:
        now = self.clock()
        kind, arg = fault.kind, fault.arg
        if kind == "http":
            status = int(arg or 500)
            return Reply(raw=html_error(status), status=status, content_type="text/html")
        if kind == "empty_body":
            return Reply(raw=b"")
        if kind == "invalid_json":
            return Reply(raw=f'{{"req_serial_num":"{serial(now)}","result_code":"1","result_msg":"succ'.encode())
        if kind == "json_list":
            return Reply([envelope(now, "1", {"pageList": []})])
        if kind == "code":
            return error(now, str(arg))
        if kind == "oauth_error":
            return self._oauth_error(str(arg), "Invalid access token" if arg == "invalid_token" else str(arg))
        if kind == "rate_limited":
            return Reply(raw=b"", status=429, content_type="application/json", headers={"Retry-After": str(arg)})
        return Reply(action=kind)  # huge, hang, close

    def _record(self, req: Request, reply: Reply, fault: Fault | None) -> None:
        call = Call(req.path, req.headers, req.body, req.time, reply.result_code,
                    reply.payload if reply.action is None or reply.action == "slow" else None,
                    reply.status, fault.name if fault else None)
        with self._calls_lock:
            self._calls.append(call)

    # Introspection -------------------------------------------------------------------------------
    @property
    def calls(self) -> list[Call]:
        with self._calls_lock:
            return list(self._calls)

    def count(self, path_substring: str | None = None) -> int:
        with self._calls_lock:
            if path_substring is None:
                return len(self._calls)
            return sum(1 for c in self._calls if path_substring in c.path)

    def reset_calls(self) -> None:
        with self._calls_lock:
            self._calls.clear()

    # Faults and tokens ---------------------------------------------------------------------------
    def inject(self, fault: str, *, path: str | None = None, times: int = 1, page: int | None = None,
               hook: Callable[[Simulator], None] | None = None) -> None:
        self.faults.add(fault, path, times, page, hook)

    def clear_faults(self) -> None:
        self.faults.clear()

    def create_authorization_code(self, redirect_uri: str) -> str:
        return self.auth.create_code(redirect_uri)

    def issue_tokens(self) -> dict[str, Any]:
        return self.auth.issue()

    def expire_access_tokens(self) -> None:
        self.auth.expire_access()

    def expire_login_tokens(self) -> None:
        self.auth.expire_login()

    def rotate_refresh_token_elsewhere(self, refresh_token: str) -> dict[str, Any]:
        data = self.auth.refresh(refresh_token)
        if "access_token" not in data:
            raise ValueError(f"refresh token not usable (code {data.get('code')})")
        return data

    # Fleet control -------------------------------------------------------------------------------
    @property
    def plants(self) -> list[Plant]:
        return self.fleet.plants

    def set_plant(self, ps_id: int, **fields: Any) -> None:
        self.fleet.update(ps_id, fields, self.clock())
        if {"ps_fault_status", "fault_count", "alarm_count"}.intersection(fields):
            # The status decides: counts follow it, and the plant's open faults are derived afresh.
            self.alarms.normalise_fields(self.fleet.by_id[ps_id])

    def add_plants(self, n: int, *, at: int | None = None) -> list[int]:
        return self.fleet.add(n, self.clock(), at)

    def remove_plant(self, ps_id: int) -> None:
        self.fleet.remove(ps_id)
        self.alarms.forget(ps_id)

    def set_authorized(self, ps_ids: int | Iterable[int], authorized: bool = True) -> None:
        """Whether the OAuth2 app may see these plants. Unauthorised plants vanish from the platform plant
        list, token auth_ps_list, fault and device answers, go to fail_ps_id_list in plant real-time data and
        to not_authorization_ps_list in getPowerStationDetail. Legacy (user login) answers are unaffected."""
        ids = [ps_ids] if isinstance(ps_ids, int) else list(ps_ids)
        self.fleet.set_authorized(ids, authorized)

    # Faults and devices --------------------------------------------------------------------------
    def open_fault(self, ps_id: int, fault_type: int = 1, *, ps_key: str | None = None, name: str | None = None,
                   level: int | None = None) -> int:
        """Open a fault record now (until close_fault). Default device: an inverter, else the plant itself.
        Updates the plant's ps_fault_status / fault_count / alarm_count. Returns the record's fault_code."""
        plant = self.fleet.by_id[ps_id]
        if ps_key is not None:
            dev = self.devices.by_ps_key(self.fleet, ps_key)
            if dev is None or dev.ps_id != ps_id:
                raise KeyError(f"no device {ps_key!r} on plant {ps_id}")
            index = None if dev.virtual else dev.index
        else:
            index = self.devices.pick(plant, frozenset({1}), 0.0)
        t, now = eval_times(self)
        return self.alarms.open_fault(plant, fault_type, index, name, level, t, now).code

    def close_fault(self, fault_code: int | str) -> None:
        """Close an open record now (platform integer code or legacy string code, as served). A record of the
        simulator's own timeline also ends its slot: the plant has one open record fewer from now on."""
        code = api_faults.code_from(fault_code)
        if code is None:
            raise KeyError(f"not a fault code: {fault_code!r}")
        t, now = eval_times(self)
        self.alarms.close_fault(self.fleet, code, t, now)

    def set_open_fault_count(self, n: int, *, fault_types: Sequence[int] | None = None) -> None:
        """Exactly `n` open records across the fleet from now on (records keep rotating, the count stays):
        one per randomly chosen plant (more per plant only when n exceeds the fleet). `fault_types` cycles
        through the given types; default a mix of faults, alarms, notices, suggestions and type 7. Every
        plant's ps_fault_status / fault_count / alarm_count is set to match."""
        t, now = eval_times(self)
        plants = [p for p in self.fleet.plants if p.ps_id not in self.fleet.unauthorized]
        self.alarms.set_open_count(plants, n, fault_types, t, now)

    def open_faults(self, ps_id: int | None = None, *, lang: str | None = None) -> list[dict[str, Any]]:
        """The open records as platform getFaultAlarmInfo rows (newest first), for one plant or all."""
        t, now = eval_times(self)
        plants = [self.fleet.by_id[ps_id]] if ps_id is not None else list(self.fleet.plants)
        rows = []
        for plant in plants:
            for rec in self.alarms.records(plant, t, now):
                rows.append((rec.start, rec.code, api_faults.platform_row(self, plant, rec, lang)))
        rows.sort(key=lambda r: (-r[0], r[1]))
        return [row for _, _, row in rows]

    def devices_of(self, ps_id: int, *, virtual: bool = False, lang: str | None = None) -> list[dict[str, Any]]:
        """The plant's devices as platform getDeviceListByPsId rows (with firmware), without removed ones."""
        plant = self.fleet.by_id[ps_id]
        t, now = eval_times(self)
        statuses = self.alarms.device_status(plant, t, now)
        return [api_devices.device_row(self, plant, d, statuses.get(d.index, 4), lang, False, True)
                for d in self.devices.devices(plant, virtual=virtual)]

    def remove_device(self, ps_key: str) -> None:
        """The device disappears: from device lists (and their totals), from device real-time answers (its
        ps_key and serial go to the fail lists) and as a target of new fault records."""
        if self.devices.by_ps_key(self.fleet, ps_key) is None:
            raise KeyError(f"no device {ps_key!r}")
        self.devices.remove(ps_key)

    def restore_device(self, ps_key: str) -> None:
        self.devices.restore(ps_key)

    def set_fleet_size(self, n: int) -> None:
        self.fleet.set_size(n, self.clock())

    # Point values ------------------------------------------------------------------------------------
    def set_point_value(self, ps_id: int, point_id: int, value: str | None) -> None:
        """Serve `value` (a string as the API writes values, or None for null) for this plant's real-time
        point instead of the model's, until `clear_point_values()`: e.g. a negative lifetime total, as a real
        plant reported for 83124. Overrides of 83022 and 83024 (Wh) also set the legacy list's today_energy and
        total_energy."""
        if ps_id not in self.fleet.by_id:
            raise KeyError(f"no plant {ps_id}")
        self.point_overrides[(ps_id, int(point_id))] = value

    def clear_point_values(self) -> None:
        self.point_overrides.clear()


    # History -------------------------------------------------------------------------------------
    def history_gap(self, ps_id: int, date: str) -> tuple[str, str] | None:
        """The plant's missing minute rows on a plant-local date (yyyyMMdd): (first missing row, first row
        after the gap) as yyyyMMddHHmmss (the second may be the next day's 000000), or None without a gap."""
        plant = self.fleet.by_id[ps_id]
        day = calendar.timegm(time.strptime(date, "%Y%m%d")) // 86400
        hole = history.gap(plant, day, self.history_gap_rate)
        if hole is None:
            return None
        first, after = (history.stamp(round(day * 86400 + h * 3600)) for h in hole)
        return first, after


def _alter_realtime(reply: Reply, fault: Fault) -> Reply:
    """The real-time answer spoilt the ways other projects recorded or feared (items 10, 11 of issue 14)."""
    payload = dict(reply.payload)
    data = payload.get("result_data")
    if fault.kind == "empty_result":
        payload["result_data"] = {} if fault.arg == "{}" else []
    elif isinstance(data, dict):
        data = dict(data)
        entries = list(data.get("device_point_list") or [])
        if fault.kind == "nested_entries":
            data["device_point_list"] = [{"device_point": e} for e in entries]
        elif fault.kind == "drop_entries":
            data["device_point_list"] = entries[:max(0, len(entries) - int(fault.arg or 1))]
        elif fault.kind == "foreign_entries":
            # Entries that answer for a plant nobody asked for (ps_id and ps_key of another plant).
            foreign = []
            for entry in entries:
                other = str(int(entry["ps_id"]) + 1)
                foreign.append({**entry, "ps_id": other, "ps_key": f"{other}_11_0_0"})
            data["device_point_list"] = foreign
        elif fault.kind == "fail_list_string":
            data["fail_ps_id_list"] = ",".join(str(x) for x in data.get("fail_ps_id_list") or [])
        payload["result_data"] = data
    reply.payload = payload
    return reply


REALTIME_FAULTS = frozenset({"empty_result", "nested_entries", "drop_entries", "foreign_entries", "fail_list_string"})


def _alter(reply: Reply, fault: Fault) -> Reply:
    if fault.kind in REALTIME_FAULTS:
        return _alter_realtime(reply, fault) if reply.result_code == "1" else reply
    if fault.kind == "slow":
        reply.action = "slow"
    elif fault.kind in ("result_data_null", "pagelist_missing") and reply.result_code == "1":
        payload = dict(reply.payload)
        if fault.kind == "result_data_null":
            payload["result_data"] = None
        elif isinstance(payload.get("result_data"), dict):
            payload["result_data"] = {k: v for k, v in payload["result_data"].items()
                                      if k not in ("pageList", "device_point_list")}
        reply.payload = payload
    return reply
