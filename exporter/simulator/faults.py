"""Fault injection queue: `Simulator.inject(...)` entries consumed by matching requests, in order."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .common import lenient_int

# Faults that replace the whole response; the request is not processed (no tokens, quota or paging used).
REPLACING = frozenset({
    "http", "empty_body", "invalid_json", "json_list", "huge", "hang", "close", "code", "oauth_error",
    "rate_limited",
})
# Faults that let the request be processed and then alter or delay the answer.
ALTERING = frozenset({"result_data_null", "pagelist_missing", "slow", "repeat_page", "skip_plants", "hook",
                      "empty_result", "nested_entries", "drop_entries", "foreign_entries", "fail_list_string"})

FAULT_NAMES = (
    "http:429", "http:500", "http:502", "http:503", "empty_body", "invalid_json", "json_list",
    "result_data_null", "pagelist_missing", "huge", "hang", "slow", "close", "code:<X>",
    "oauth_error:<error>", "repeat_page", "skip_plants", "hook", "rate_limited:<seconds>",
    "empty_result:{}", "empty_result:[]", "nested_entries", "drop_entries:<n>", "foreign_entries",
    "fail_list_string",
)

_PATTERN = re.compile(r"^(?:http:(?P<status>[1-5]\d\d)|code:(?P<code>[^\s]+)|oauth_error:(?P<err>[\w.-]+)|"
                      r"rate_limited:(?P<wait>\d+)|empty_result:(?P<empty>\{\}|\[\])|drop_entries:(?P<drop>\d+)|"
                      r"(?P<plain>[a-z_]+))$")
_WITH_ARGUMENT = ("http", "code", "oauth_error", "rate_limited", "empty_result", "drop_entries")


@dataclass
class Fault:
    kind: str
    arg: str | None
    path: str | None
    times: int
    page: int | None
    hook: Callable[[Any], None] | None

    @property
    def name(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"


def parse(fault: str) -> tuple[str, str | None]:
    m = _PATTERN.match(fault)
    if m is None:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULT_NAMES)}")
    if m["status"]:
        return "http", m["status"]
    if m["code"]:
        return "code", m["code"]
    if m["err"]:
        return "oauth_error", m["err"]
    for kind, group in (("rate_limited", "wait"), ("empty_result", "empty"), ("drop_entries", "drop")):
        if m[group]:
            return kind, m[group]
    kind = m["plain"]
    if (kind not in REPLACING and kind not in ALTERING) or kind in _WITH_ARGUMENT:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULT_NAMES)}")
    return kind, None


class FaultQueue:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: str, path: str | None, times: int, page: int | None,
            hook: Callable[[Any], None] | None) -> None:
        kind, arg = parse(fault)
        if kind == "hook" and hook is None:
            raise ValueError('fault "hook" needs hook=callable')
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.append(Fault(kind, arg, path, times, page, hook))

    def take(self, path: str, body: dict[str, Any] | None) -> Fault | None:
        """First pending fault matching this request (path substring, page/curPage); uses up one `times`."""
        req_page = None
        if isinstance(body, dict):
            req_page = lenient_int(body.get("page", body.get("curPage")))
        with self._lock:
            for f in self._faults:
                if f.path is not None and f.path not in path:
                    continue
                if f.page is not None and f.page != req_page:
                    continue
                f.times -= 1
                if f.times <= 0:
                    self._faults.remove(f)
                return f
        return None

    def pending(self) -> int:
        with self._lock:
            return sum(f.times for f in self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
