"""What the endpoints and the HTTP layer need from the simulator, as Protocols.

`simulator.Simulator` satisfies both structurally. Keeping these here, in a module that imports neither
`simulator` nor `endpoints`/`server`, keeps the module import graph acyclic (also under TYPE_CHECKING).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from .alarms import AlarmBook
from .auth import Auth
from .devices import DeviceRegistry
from .envelope import Reply, Request
from .fleet import Fleet
from .quota import Quota


class Context(Protocol):
    """State and options an endpoint handler reads (and, for auth and the fleet, changes)."""

    clock: Callable[[], float]
    fleet: Fleet
    devices: DeviceRegistry
    alarms: AlarmBook
    auth: Auth
    quota: Quota
    total_key: str | None
    max_page_size: int | None
    max_realtime_plants: int | None
    data_interval: float
    install_power_unit: str
    device_fail_keys: str
    device_claim_key: str
    legacy_units: str
    realtime_limit_style: str
    point_overrides: dict[tuple[int, int], str | None]
    update_time_style: str
    token_answer_shape: str
    page_size_over_limit: str
    history_current_day: str
    history_window: str
    history_types: str
    history_gap_rate: float


class Host(Protocol):
    """What the HTTP server calls back into."""

    clock: Callable[[], float]
    stopping: threading.Event
    log_requests: bool
    huge_size: int
    slow_byte_interval: float

    def handle(self, req: Request) -> Reply: ...

    def oversized(self, path: str, headers: dict[str, str]) -> Reply: ...

    def create_authorization_code(self, redirect_uri: str) -> str: ...
