"""The fault catalogue shared by the fault-injection suite and the secrets suite, and a few scrape helpers.

Each data fault is a simulator fault name (docs/simulator.md), the API path it is injected on, and the
`result` label it must leave in `isolarcloud_api_requests_total`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.conftest import Running, Samples, samples, select, value

LIST = "queryPowerStationList"
LEGACY_LIST = "getPowerStationList"
REALTIME = "getPowerStationRealTimeData"


@dataclass(frozen=True)
class DataFault:
    id: str
    fault: str
    path: str
    result: str


# Faults that replace or spoil the answer of one API call; the refresh fails and the snapshot is kept. (HTTP 429 is
# not among them: the exporter waits and retries it, tests/test_rate_limit.py.)
DATA_FAULTS: tuple[DataFault, ...] = (
    DataFault("http-500-html", "http:500", LIST, "http_500"),
    DataFault("http-502-html", "http:502", LIST, "http_502"),
    DataFault("http-503-html", "http:503", LIST, "http_503"),
    DataFault("empty-body", "empty_body", LIST, "invalid_response"),
    DataFault("invalid-json", "invalid_json", LIST, "invalid_response"),
    DataFault("json-list-not-object", "json_list", LIST, "invalid_response"),
    DataFault("result-data-null", "result_data_null", LIST, "invalid_response"),
    DataFault("pagelist-missing", "pagelist_missing", LIST, "invalid_response"),
    DataFault("connection-closed", "close", LIST, "connection_error"),
    DataFault("hang", "hang", LIST, "timeout"),
    DataFault("slow-drip", "slow", LIST, "timeout"),
    DataFault("realtime-http-500", "http:500", REALTIME, "http_500"),
    DataFault("realtime-device-point-list-missing", "pagelist_missing", REALTIME, "invalid_response"),
    DataFault("unknown-result-code", "code:E996", LIST, "E996"),
)

# Quota and rate faults: the exporter backs off. (fault, expected backoff in seconds from the failure time,
# or None for "until the next clock hour + 60 s").
QUOTA_FAULTS: dict[str, float | None] = {"E999": None, "E998": 86400.0, "E901": 60.0}


def timed_get(running: Running, path: str = "/metrics", limit: float | None = None,
              **kwargs: Any) -> requests.Response:
    """GET with a wall-clock bound: the answer must come within `limit` seconds."""
    started = time.monotonic()
    response = running.get(path, timeout=limit or 30, **kwargs)
    elapsed = time.monotonic() - started
    if limit is not None:
        assert elapsed < limit, f"{path} took {elapsed:.2f}s, limit {limit}s"
    return response


def scrape(running: Running, limit: float) -> Samples:
    """One scrape that must answer 200 within `limit` seconds with an exposition that parses back."""
    response = timed_get(running, "/metrics", limit)
    assert response.status_code == 200, response.text[:200]
    return samples(response.text)


def refreshes(running: Running) -> int:
    return sum(sum(p.stats.view().refreshes.values()) for p in running.exporter.engines)


def wait_for_refresh(running: Running, after: int, timeout: float = 15.0) -> None:
    """Until more than `after` refresh attempts have finished and none is running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if refreshes(running) > after and not any(p.running for p in running.exporter.engines):
            return
        time.sleep(0.01)
    raise AssertionError("refresh did not finish in time")


def cycle(running: Running, limit: float, advance: float, clock: Any) -> Samples:
    """Move the clock, let a scrape trigger the due refresh, wait for it, and scrape again."""
    before = refreshes(running)
    clock.advance(advance)
    scrape(running, limit)  # answers at once from the snapshot; starts the refresh in the background
    wait_for_refresh(running, before)
    return scrape(running, limit)


def plant_series(found: Samples, account: str) -> int:
    return len(select(found, "isolarcloud_plant_info", account=account))


def requests_total(found: Samples, account: str, endpoint: str, result: str) -> float:
    return value(found, "isolarcloud_api_requests_total", account=account, endpoint=endpoint, result=result) or 0.0


def refresh_errors(found: Samples, account: str) -> float:
    return value(found, "isolarcloud_refreshes_total", account=account, result="error") or 0.0


def auth_total(found: Samples, account: str, kind: str, result: str) -> float:
    return value(found, "isolarcloud_auth_total", account=account, kind=kind, result=result) or 0.0


def fault_params(faults: tuple[DataFault, ...]) -> list[Any]:
    return [pytest.param(f, id=f.id) for f in faults]
