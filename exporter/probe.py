"""`isolarcloud-exporter probe`: wires one configured account to the experiment in `fetch/probe.py`, turns its
findings into the configuration they suggest, and renders the report as text (for the person running it) and as
JSON (for a bug report).

The account's transport and authentication are built exactly as the exporter builds them, so that a token
refresh rotates and saves the token file the same way (`OAuth2Auth.from_config`). Without a token file the probe
never refreshes: that would spend the configured refresh token and leave the exporter a dead one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from . import __version__
from .config import AccountConfig, Config
from .fetch.auth import Auth, LoginAuth, OAuth2Auth, Tokens
from .fetch.probe import MAX_CALLS, PLANNED_CALLS, CountingGateway, Finding, Probe, ProbeResult, plan
from .fetch.session import ApiSession
from .fetch.transport import Transport


class ProbeInputError(Exception):
    """The account cannot be probed as configured (one line, naming the key)."""


@dataclass
class Suggestion:
    key: str  # dotted key under the account, e.g. "realtime.batch_size"
    value: Any
    why: str


@dataclass
class ProbeReport:
    account: AccountConfig
    result: ProbeResult
    suggestions: list[Suggestion] = field(default_factory=list)


def _session(account: AccountConfig, config: Config) -> tuple[CountingGateway, ApiSession, bool]:
    """The account's gateway (counted, capped) and session, as the exporter builds them; whether the probe may
    refresh the OAuth2 token."""
    counter: Counter[tuple[str, str]] = Counter()
    transport = Transport(account.base_url, timeout=config.http_timeout, max_bytes=config.max_response_bytes,
                          record=lambda endpoint, result: None)
    gateway = CountingGateway(transport, MAX_CALLS)
    a = account.auth
    record = lambda kind, result: counter.update([(kind, result)])  # noqa: E731
    auth: Auth
    if a.mode == "login":
        auth = LoginAuth(gateway, appkey=a.appkey, secret_key=a.secret_key, lang=account.lang,
                         user_account=a.user_account or "", user_password=a.user_password or "", record_auth=record)
        return gateway, ApiSession(gateway, auth), False
    if a.token_file is not None:
        auth = OAuth2Auth.from_config(gateway, appkey=a.appkey, secret_key=a.secret_key, lang=account.lang,
                                      access_token=a.access_token, refresh_token=a.refresh_token,
                                      token_file=a.token_file, record_auth=record)
        return gateway, ApiSession(gateway, auth), True
    if not a.access_token:
        raise ProbeInputError(f"accounts.{account.name}.auth: probe needs a token_file (it refreshes the token and "
                              "must save the rotated one where the exporter finds it) or an access_token; a refresh "
                              "from the configured refresh_token would spend it")
    # Only the access token: no refresh can happen, not even after a rejected token.
    auth = OAuth2Auth(gateway, appkey=a.appkey, secret_key=a.secret_key, lang=account.lang,
                      tokens=Tokens(access_token=a.access_token), token_file=None, record_auth=record)
    return gateway, ApiSession(gateway, auth), False


def run_probe(account: AccountConfig, config: Config, *, wait: float, clock: Callable[[], float] = time.time,
              sleep: Callable[[float], None] = time.sleep,
              progress: Callable[[str], None] | None = None) -> ProbeReport:
    gateway, session, may_refresh = _session(account, config)
    filters = {"valid_flag": account.valid_flag}
    if account.ps_type:
        filters["ps_type"] = account.ps_type
    if account.ps_name:
        filters["ps_name"] = account.ps_name
    try:
        result = Probe(gateway, session, filters=filters, may_refresh=may_refresh, wait=wait, clock=clock,
                       sleep=sleep, progress=progress).run()
    finally:
        session.auth.settle(1.0)
        session.close()
    return ProbeReport(account, result, suggest(account, result))


# -- what to configure ---------------------------------------------------------------------------------------


def _finding(result: ProbeResult, question: str) -> Finding | None:
    found = next((f for f in result.findings if f.question == question), None)
    return found if found is not None and found.settled and found.facts.get("applicable", True) else None


def suggest(account: AccountConfig, result: ProbeResult) -> list[Suggestion]:
    """Configuration lines the findings call for, where they differ from the account's configuration."""
    out: list[Suggestion] = []
    plants = None
    listed = _finding(result, "plant_list")
    if listed is not None:
        plants = listed.facts.get("total")
    pages = _finding(result, "page_size")
    if pages is not None and pages.facts.get("largest"):
        largest = min(int(pages.facts["largest"]), 1000)
        if account.page_size > largest:
            why = "capped silently" if pages.facts.get("clamped_at") else f"{pages.facts.get('refused')} refused"
            out.append(Suggestion("page_size", largest, f"the gateway serves at most {largest} rows per page ({why})"))
        elif plants and plants > account.page_size and largest > account.page_size:
            size = min(largest, plants)
            out.append(Suggestion("page_size", size, f"{-(-plants // size)} list calls per pass instead of "
                                  f"{-(-plants // account.page_size)}"))
    batch = _finding(result, "realtime_batch")
    if batch is not None and batch.facts.get("accepted"):
        accepted = min(int(batch.facts["accepted"]), 1000)
        current = account.realtime.batch_size
        if current > accepted and batch.facts.get("refused") is not None:
            out.append(Suggestion("realtime.batch_size", accepted, f"{batch.facts['refused']} plants per call were "
                                  f"refused, {accepted} answered"))
        elif plants and plants > current and accepted > current:
            size = min(accepted, plants)
            out.append(Suggestion("realtime.batch_size", size, f"{-(-plants // size)} real-time calls per pass "
                                  f"instead of {-(-plants // current)}"))
    out.extend(_time_zone(account, _finding(result, "time_zone")))
    follows = _finding(result, "update_time")
    if follows is not None:
        safe = follows.summary.startswith("yes")
        if safe != account.realtime.skip_unchanged:
            out.append(Suggestion("realtime.skip_unchanged", safe, "update_time moves whenever the values move: "
                                  "unchanged plants need no call" if safe else "the values moved while update_time "
                                  "stood still"))
    quota = _finding(result, "quota")
    if quota is not None and quota.facts.get("hourly_allowance") and not account.api_budget_auto:
        allowance = int(quota.facts["hourly_allowance"])
        out.append(Suggestion("api_budget_per_hour", "auto", f"follows the app's quota ({allowance} calls per hour "
                              f"now) less api_quota.margin; configured now: {account.api_budget_per_hour}"))
    return out


def _time_zone(account: AccountConfig, finding: Finding | None) -> list[Suggestion]:
    if finding is None:
        return []
    readings: dict[str, int] = finding.facts.get("readings", {})
    offsets: dict[str, int] = finding.facts.get("offsets", {})
    written, flipped, utc = (readings.get(k, 0) for k in ("written", "flipped", "utc"))
    decided = written + flipped + utc
    if utc and utc >= 0.9 * decided:
        wanted, why = "UTC", "update_time is written in UTC, whatever the plant's zone says"
    elif flipped and len(offsets) == 1:
        wanted = next(iter(offsets))
        why = f"every plant reports in {wanted}, but {flipped} carry a zone with the wrong sign"
    elif written and not flipped and not utc:
        wanted, why = "plant", "update_time is written in the plant's zone as given"
    else:
        return []  # mixed: no single setting reads every plant right; the notes say which plants differ
    return [] if wanted == account.api_time_zone else [Suggestion("api_time_zone", wanted, why)]


# -- rendering -----------------------------------------------------------------------------------------------


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _gateway_host(account: AccountConfig) -> str:
    return urlparse(account.base_url).hostname or "?"


def render_text(report: ProbeReport) -> str:
    result, account = report.result, report.account
    lines = [f"isolarcloud-exporter probe: account {account.name} ({result.mode}) at {_gateway_host(account)}: "
             f"{result.calls} calls (at most {plan(result.mode == 'oauth2')} planned, {MAX_CALLS} allowed), "
             f"{result.finished - result.started:.0f} s", ""]
    width = max(len(f.title) for f in result.findings)
    for finding in result.findings:
        mark = "n/a" if finding.facts.get("applicable") is False else "settled" if finding.settled else "open"
        lines.append(f"  {finding.title:<{width}}  {mark:<7}  {finding.summary}")
        lines.extend(f"  {'':<{width}}  {'':<7}  {note}" for note in finding.notes)
    if result.stopped:
        lines += ["", f"Stopped early: {result.stopped}."]
    lines.append("")
    if not report.suggestions:
        lines.append(f"Nothing to change in the configuration of account {account.name}.")
    else:
        lines.append(f"Suggested configuration for account {account.name} (merge into its entry):")
        lines.extend(_yaml_lines(report.suggestions))
    return "\n".join(lines) + "\n"


def _yaml_lines(suggestions: list[Suggestion]) -> list[str]:
    out: list[str] = []
    nested: dict[str, list[Suggestion]] = {}
    for s in suggestions:
        if "." in s.key:
            nested.setdefault(s.key.split(".", 1)[0], []).append(s)
        else:
            out.append(f"    {s.key}: {_yaml_value(s.value)}  # {s.why}")
    for section, items in nested.items():
        out.append(f"    {section}:")
        out.extend(f"      {s.key.split('.', 1)[1]}: {_yaml_value(s.value)}  # {s.why}" for s in items)
    return out


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and (value[:1] in "+-" or ":" in value):
        return json.dumps(value)
    return str(value)


def report_json(report: ProbeReport) -> dict[str, Any]:
    """The report for a bug report: what was asked and seen, in counts, key names and limits. No secret, no
    account name, no plant id, name or place, no owner detail."""
    result = report.result
    return {
        "tool": "isolarcloud-exporter probe",
        "version": __version__,
        "auth_mode": result.mode,
        "gateway": _gateway_host(report.account),
        "started": _iso(result.started),
        "finished": _iso(result.finished),
        "calls": result.calls,
        "planned_max_calls": PLANNED_CALLS,
        "max_calls": MAX_CALLS,
        "calls_by_result": [{"endpoint": e, "result": r, "count": n} for (e, r), n in sorted(result.results.items())],
        "stopped": result.stopped,
        "findings": [{"question": f.question, "title": f.title, "settled": f.settled, "summary": f.summary,
                      "facts": f.facts} for f in result.findings],
        "suggested_configuration": {s.key: s.value for s in report.suggestions},
    }


def write_json(path: Path, report: ProbeReport) -> None:
    """Atomically: a half-written report is never left behind."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(report_json(report), handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
