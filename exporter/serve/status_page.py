"""The status page (`/`): each account's state, schedule, budget, tokens, fleet and collections; server-rendered,
dependency-free (no script, no external resource), no secrets.

Everything about an account comes from `data.AccountState`; error texts there are already safe to show (the fetch
side builds them without request bodies, headers or tokens, and scrubs known secrets from gateway messages). What
is not an account's (uptime, configuration path, dashboard address, reload status) is passed in by the caller. The
page stays small at any fleet size: a plant is counted, never listed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from urllib.parse import quote

from ..data import AccountState, CollectionState, Plant

# A plant the cloud has not updated for this long counts as "not updating" (the IsolarcloudPlantNotUpdating
# alert's threshold; the alert also wants the timestamp unchanged, which one snapshot cannot tell).
NOT_UPDATING_AFTER = 2 * 3600.0

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:1.5rem;color:#1d2330;
background:#f5f6f8}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:0;display:flex;gap:.6rem;align-items:center}
a{color:#1f5fbf}.meta{color:#4a5263;margin:.2rem 0 1rem}.meta span{margin-right:1.2rem;display:inline-block}
.account{background:#fff;border:1px solid #d9dde5;border-radius:8px;padding:1rem 1.2rem;margin:0 0 1rem}
.badge{font-size:.75rem;font-weight:600;padding:.1rem .5rem;border-radius:999px;text-transform:uppercase}
.up{background:#d8f3df;color:#17612c}.down{background:#fbdcdc;color:#8a1c1c}.starting{background:#e4e7ee;color:#3b4252}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(15rem,1fr));gap:.4rem 1.5rem;margin:.8rem 0}
.grid div{display:flex;flex-direction:column}.grid b{font-size:.72rem;color:#5b6475;text-transform:uppercase;
letter-spacing:.03em;font-weight:600}
.fleet{display:flex;gap:.8rem;flex-wrap:wrap;align-items:center;margin:.6rem 0}
.count{border:1px solid #d9dde5;border-radius:6px;padding:.3rem .7rem;min-width:6rem}
.count strong{font-size:1.2rem;display:block}.count.bad strong{color:#b42318}.count.warn strong{color:#b54708}
.bar{display:block;height:.45rem;background:#e4e7ee;border-radius:4px;overflow:hidden;margin-top:.2rem;max-width:14rem}
.bar i{display:block;height:100%;background:#3b82f6}.bar i.hot{background:#d97706}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin-top:.4rem}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #eceef3;vertical-align:top}
th{font-size:.72rem;color:#5b6475;text-transform:uppercase;letter-spacing:.03em}
.error{color:#8a1c1c;background:#fdf0f0;border-radius:6px;padding:.4rem .6rem;margin:.5rem 0;font-size:.9rem}
"""


def render(states: Sequence[AccountState], version: str, *, now: float | None = None, started: float | None = None,
           config_path: str | None = None, dashboard_url: str | None = None, reload_ok: bool = True,
           reload_success_at: float | None = None) -> str:
    now = datetime.now(timezone.utc).timestamp() if now is None else now
    meta = [f"Version {_e(version)}"]
    if started is not None:
        meta.append(f"Up {_span(now - started)} (since {_e(_utc(started))})")
    meta.append(f"Configuration {_e(config_path) if config_path else 'built in (--demo)'}")
    if reload_success_at is not None:
        loaded = f"loaded {_e(_utc(reload_success_at))}"
        meta.append(loaded if reload_ok else f"<strong>last reload failed</strong> (running the one {loaded})")
    links = ("<a href='/metrics'>Metrics</a> · <a href='/-/healthy'>healthy</a> · <a href='/-/ready'>ready</a>"
             + (f" · <a href='{_e(dashboard_url)}'>Grafana</a>" if dashboard_url else ""))
    accounts = "".join(_account(state, now, dashboard_url) for state in states) or "<p>No account configured.</p>"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>iSolarCloud exporter</title><style>{_STYLE}</style></head><body>"
        f"<h1>iSolarCloud exporter</h1><p class='meta'>{''.join(f'<span>{m}</span>' for m in meta)}</p>"
        f"<p class='meta'>{links}</p>{accounts}</body></html>"
    )


def _account(state: AccountState, now: float, dashboard_url: str | None) -> str:
    status = "up" if state.up else ("starting" if not state.attempted else "down")
    plants = state.plants.plants if state.plants is not None else None
    used, budget = state.stats.calls_this_hour, state.budget
    share = min(1.0, used / budget) if budget else 0.0
    facts = [
        ("Auth", _e(state.auth_mode)),
        ("Gateway", _e(_without_userinfo(state.gateway))),
        ("Plants", "–" if plants is None else f"{len(plants):,}"),
        ("Last success", _when(state.last_success, now)),
        ("Last attempt", _when(state.last_attempt, now)),
        ("Next attempt", _when(state.next_attempt, now, future=True) if state.attempted or state.next_attempt
         else "starting"),
        ("Plant list interval", _span(state.interval)),
        ("Budget used this hour",
         f"{used:,} of {budget:,} calls ({share:.0%})<span class='bar'><i class='{'hot' if share >= 0.9 else ''}' "
         f"style='width:{share * 100:.1f}%'></i></span>"),
    ]
    if state.backoff_until:
        facts.append(("Backing off until", _when(state.backoff_until, now, future=True)))
    for kind, ts in sorted(state.token_expiries.items()):
        facts.append((f"{kind.capitalize()} token expires", _when(ts, now, future=True)))
    grid = "".join(f"<div><b>{label}</b><span>{value}</span></div>" for label, value in facts)
    problems = []
    if state.last_error:
        problems.append(f"Last error: {_e(state.last_error)}")
    if state.stats.token_file_error:
        problems.append(f"Token file: {_e(state.stats.token_file_error)} "
                        f"({state.stats.token_file_write_failures} failed write(s); the rotated token is only in "
                        "memory)")
    errors = "".join(f"<div class='error'>{p}</div>" for p in problems)
    return (f"<section class='account' id='account-{_e(state.name)}'><h2><span>{_e(state.name)}</span>"
            f"<span class='badge {status}'>{status}</span></h2><div class='grid'>{grid}</div>"
            f"{_fleet(plants, now, state.name, dashboard_url)}{errors}{_collections(state.collections, now)}"
            "</section>")


def _fleet(plants: Sequence[Plant] | None, now: float, account: str, dashboard_url: str | None) -> str:
    """A count per state, never a row per plant: the page costs the same at 10 plants and at 50,000."""
    link = ""
    if dashboard_url:
        sep = "&" if "?" in dashboard_url else "?"
        link = f"<a href='{_e(dashboard_url + sep + 'var-account=' + quote(account, safe=''))}'>Open in Grafana</a>"
    if plants is None:
        return f"<div class='fleet'>No current plant list. {link}</div>"
    fault = alarm = stale = 0
    cutoff = now - NOT_UPDATING_AFTER
    for plant in plants:
        status = plant.fault_status
        if status == 1:
            fault += 1
        elif status == 2:
            alarm += 1
        updated = plant.update_ts
        if updated is not None and updated < cutoff:
            stale += 1
    counts = (("In fault", fault, "bad"), ("In alarm", alarm, "warn"), ("Not updating for 2 h", stale, "warn"))
    return "<div class='fleet'>" + "".join(
        f"<div class='count {kind if n else ''}'><strong>{n:,}</strong>{label}</div>" for label, n, kind in counts
    ) + f"{link}</div>"


def _collections(collections: Sequence[CollectionState], now: float) -> str:
    if not collections:
        return ""
    rows = []
    for c in collections:
        state = "up" if c.up else ("never run" if c.last_attempt is None else "down")
        interval = _span(c.interval) + (f" (wanted {_span(c.wanted_interval)})"
                                        if c.interval > c.wanted_interval + 1 else "")
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in (
            _e(c.name), f"<span class='badge {'up' if c.up else 'down' if c.last_attempt else 'starting'}'>"
            f"{state}</span>", interval, f"{c.calls_per_hour:,.0f} calls/h", _when(c.next_due, now, future=True),
            _when(c.last_success, now), _e(c.last_error or ""))) + "</tr>")
    header = "".join(f"<th>{h}</th>" for h in ("collection", "state", "interval", "budget share", "next run",
                                               "last success", "last error"))
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _without_userinfo(url: str) -> str:
    return re.sub(r"^(\w+://)[^/@]*@", r"\1", url)


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    if hours < 48:
        return f"{int(hours)} h {int(minutes % 60)} min"
    return f"{int(hours // 24)} d {int(hours % 24)} h"


def _when(ts: float | None, now: float, future: bool = False) -> str:
    if not ts:
        return "never" if not future else "–"
    delta = ts - now
    if future and delta <= 0:
        relative = "due now"
    elif delta >= 0:
        relative = f"in {_span(delta)}"
    else:
        relative = f"{_span(-delta)} ago"
    return f"{_e(_utc(ts))} <small>({relative})</small>"
