"""The iSolarCloud response envelope and a typed error for every way a call can fail.

Every answer is `{req_serial_num, result_code, result_msg, result_data}` with `result_code` "1" for success
[doc: Getting Started]; some gateways answer OAuth-style `{error, error_description}` instead. Error messages
built here are safe to log and show: they never contain a request body, header or token, and the gateway's own
`result_msg` is scrubbed of known secrets.
"""

from __future__ import annotations

import json
from typing import Any

from ..logs import scrub

# Result codes after which retrying soon only burns quota or makes things worse [doc: Appendix 2].
QUOTA_CODES = {"E999", "E998", "E901", "E916", "E903"}
# Codes that mean the token is gone: refresh or log in again.
TOKEN_CODES = {"E00003", "30001"}
# Codes that mean the credentials themselves are wrong: no retry will help.
CREDENTIAL_CODES = {"E00000", "E00001", "E912", "E914", "E918", "E919", "001", "E911"}
# "Unauthorized access" [doc: Appendix 2]: on the plant list (or a login) the app or account may not read
# anything, but some apps are refused only some endpoints (fault lists, reportedly): a DeniedError, which the
# engine treats as the account's credentials on the plant list and as that one collection's failure elsewhere.
DENIED_CODES = {"E900"}


class ApiError(Exception):
    """A failed API call. `result` is the metric label; the message is safe to log and show."""

    def __init__(self, endpoint: str, result: str, message: str, api_message: str = "") -> None:
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint
        self.result = result
        self.api_message = api_message  # the gateway's result_msg (scrubbed), e.g. to recognise an over-limit


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


class DeniedError(CredentialError):
    """E900 "Unauthorized access": the app may not call this endpoint. A CredentialError wherever nothing
    narrower is known (the plant list, auth); a collection that declares the endpoint as its own is down alone."""


class ResultError(ApiError):
    """Any other non-success result code."""


def endpoint_name(path: str) -> str:
    """The metric label of a path: its last segment (`queryPowerStationList`)."""
    return path.rsplit("/", 1)[-1]


# JSON objects and arrays cost the parser ~60-200 bytes each however short their text (`{}` is 2 bytes): an answer
# that is mostly tiny containers would take ~25x its size in memory. Real answers hold one per 100-300 bytes;
# above DENSE_FROM bytes, more than one per DENSE_BYTES bytes is refused before parsing (BENCHMARKS.md).
DENSE_FROM = 1 << 20
DENSE_BYTES = 16


def decode(endpoint: str, raw: bytes | str) -> dict[str, Any]:
    """The body (bytes or its text) → JSON object; an OAuth-style error object raises like an error result
    code."""
    if not raw.strip():
        raise ResponseError(endpoint, "invalid_response", "empty response body")
    if len(raw) > DENSE_FROM:
        brackets = (b"{", b"[") if isinstance(raw, bytes) else ("{", "[")
        containers = raw.count(brackets[0]) + raw.count(brackets[1])  # type: ignore[arg-type]
        if containers * DENSE_BYTES > len(raw):
            raise ResponseError(endpoint, "too_large", f"response of {len(raw)} characters holds up to {containers} "
                                "JSON objects and arrays: refused, it would take too much memory to parse")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise ResponseError(endpoint, "invalid_response", "response is not JSON") from None
    if not isinstance(doc, dict):
        raise ResponseError(endpoint, "invalid_response", f"response is a JSON {type(doc).__name__}, not an object")
    oauth = oauth_error_doc(doc)
    if oauth is not None:
        raise oauth_exception(endpoint, oauth)
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
    if code in DENIED_CODES:
        raise DeniedError(endpoint, label, f"access to {endpoint} not authorised for this app ({code} {message})")
    if code in CREDENTIAL_CODES:
        raise CredentialError(endpoint, label, f"credentials rejected ({code} {message})")
    raise ResultError(endpoint, label, f"result_code {label} {message}", message)


def result_data(endpoint: str, doc: dict[str, Any]) -> dict[str, Any]:
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


def oauth_error(raw: bytes | str) -> str | None:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return oauth_error_doc(doc) if isinstance(doc, dict) else None


def oauth_error_doc(doc: dict[str, Any]) -> str | None:
    """The OAuth-style `{error, error_description}` body (shape undocumented; treated like E00003)."""
    error = doc.get("error")
    if isinstance(error, str) and error and "result_code" not in doc:
        return "".join(ch for ch in error if ch.isalnum() or ch == "_")[:40] or "unknown"
    return None


def oauth_exception(endpoint: str, error: str) -> ApiError:
    if error in ("invalid_token", "expired_token", "unauthorized"):
        return TokenError(endpoint, f"oauth_{error}", f"token rejected ({error})")
    return ResultError(endpoint, f"oauth_{error}", f"OAuth error {error}")
