"""Request/reply records and the gateway's response envelope."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

JSON_CT = "application/json;charset=UTF-8"

# Appendix 2 names, used as result_msg.
MESSAGES: dict[str, str] = {
    "1": "success", "-1": "error", "000": "er_unknown_exception", "001": "er_missing_parameter:appkey",
    "002": "er_missing_parameter:token", "003": "er_missing_parameter:sys_code", "009": "er_missing_parameter",
    "010": "er_parameter_value_invalid", "011": "er_sql_exception", "E00000": "er_invalid_appkey",
    "E00001": "er_api_service_has_expired", "E00002": "er_parameter_decrypt_error",
    "E00003": "er_token_login_invalid", "E900": "Unauthorized access", "E901": "Call too frequently",
    "E902": "Request is not encrypted", "E903": "Abnormal network environment",
    "E911": "Missing parameter in request header: x-access-key", "E912": "Illegal x-access-key",
    "E913": "Expired request", "E914": "Mismatched appkey and x-access-key", "E916": "Login too frequently",
    "E918": "Permit Denied By White IP Address", "E919": "Permit Denied By White List User",
    "E994": "system not found", "E995": "request body too large", "E996": "api not found",
    "E997": "transform business response data occur error", "E998": "er_month_call_api_times_upper_limit",
    "E999": "er_hour_call_api_times_upper_limit",
}
# result_code values of the apiManage/token field table.
TOKEN_MESSAGES = {"2": "invalid authorization code", "3": "unauthorized access", "4": "invalid client",
                  "5": "redirect address does not match", "6": "grant type not supported"}


def serial(now: float) -> str:
    """32 chars like the portal examples: yyyyMMdd + 24 hex."""
    return time.strftime("%Y%m%d", time.gmtime(now)) + secrets.token_hex(12)


def envelope(now: float, code: str, data: Any = None, msg: str | None = None) -> dict[str, Any]:
    return {
        "req_serial_num": serial(now),
        "result_code": code,
        "result_msg": msg if msg is not None else MESSAGES.get(code, "error"),
        "result_data": data,
    }


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    time: float

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers.items():
            if k.lower() == lname:
                return v
        return None


@dataclass
class Reply:
    """What to send. `payload` is JSON-encoded; `raw` is sent verbatim; `action` selects a misbehaviour."""

    payload: Any = None
    status: int = 200
    raw: bytes | None = None
    content_type: str = JSON_CT
    action: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def result_code(self) -> str | None:
        if isinstance(self.payload, dict):
            code = self.payload.get("result_code")
            return code if isinstance(code, str) else None
        return None


def error(now: float, code: str, msg: str | None = None) -> Reply:
    return Reply(envelope(now, code, None, msg))
