"""The status page (`/`): each account's state, its collections, and links; server-rendered, no secrets.

Everything shown comes from `data.AccountState`; error texts there are already safe to show (the fetch side
builds them without request bodies, headers or tokens, and scrubs known secrets from gateway messages).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timezone

from ..data import AccountState


def render(states: Sequence[AccountState], version: str) -> str:
    rows = []
    for state in states:
        plants = len(state.plants.plants) if state.plants else "–"
        status = "up" if state.up else ("starting" if not state.attempted else "down")
        collections = ", ".join(f"{c.name} {'up' if c.up else 'down'} every {c.interval:.0f}s"
                                for c in state.collections)
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in (
                state.name, state.auth_mode, state.gateway, status, plants,
                _when(state.last_success), _when(state.last_attempt),
                f"{state.interval:.0f}s", _when(state.backoff_until), collections,
                state.last_error or "")) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in (
        "account", "auth", "gateway", "state", "plants", "last success", "last attempt", "interval",
        "backing off until", "collections", "last error"))
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>iSolarCloud exporter</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}</style></head><body>"
        f"<h1>iSolarCloud exporter</h1><p>Version {html.escape(version)}. "
        "<a href='/metrics'>Metrics</a> · <a href='/-/healthy'>healthy</a> · <a href='/-/ready'>ready</a></p>"
        f"<table><tr>{header}</tr>{''.join(rows)}</table></body></html>"
    )


def _when(ts: float | None) -> str:
    if not ts:
        return "never" if ts is None else ""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
