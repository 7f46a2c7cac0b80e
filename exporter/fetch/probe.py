"""`isolarcloud-exporter probe`: a short, read-only experiment against one account that settles, for that account,
the questions the API reference leaves open. Every call goes through a `CountingGateway` that refuses any call
beyond `MAX_CALLS`; the plan spends at most `PLANNED_CALLS` (see `plan()`).

Each question becomes a `Finding`: settled or not, one readable summary, and the facts it rests on (counts, key
names, limits: never a token, key, plant name, place or owner detail). What to configure from them is the
wiring's business (`exporter/probe.py`); this module only measures.

Questions, in order, and what each costs:
- token answer (OAuth2): one token refresh through the account's own `OAuth2Auth`, which saves the rotated
  token to the token file exactly as the exporter does (1 call);
- rejected token (OAuth2): one list call with a made-up Bearer token: how the gateway says "invalid token" (1);
- plant list: the total's key, the largest page size served (a ladder of sizes from 1000 down, then bisection;
  a silent cap shows its limit at once), whether the total matches (1-11 calls);
- field types and the time-zone sign: from the rows read, no call;
- real-time batch (OAuth2): the largest `ps_id_list` answered (a ladder from 500 down, then bisection; 1-8);
- update_time follows the values (OAuth2): after `wait` seconds, the real-time values and the list again (2);
- quota (login apps): getOpenApiCallInfo (1).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

from ..data import QUANTITIES
from .auth import OAuth2Auth
from .envelope import ApiError, CredentialError, ResponseError, ResultError, TokenError, endpoint_name
from .parse import parse_int, parse_timestamp, ps_id, zone_offset
from .plants import LEGACY_LIST_PATH, OAUTH_LIST_PATH
from .quota import CallInfoApi
from .realtime import REALTIME_PATH
from .session import ApiSession
from .transport import Gateway

MAX_CALLS = 30  # the hard cap: a call beyond it is never sent
PAGE_SIZES = (1000, 500, 200, 100, 50, 20, 10)  # the exporter's page_size allows 1-1000
BATCHES = (500, 200, 100, 50, 20)  # the exporter's realtime.batch_size allows 1-1000
BISECTIONS = 3  # after a refusal, narrow the limit down by at most this many calls
FRESH_AGE = 1800.0  # a plant whose update_time is this recent (under the right time zone) has just reported
CLOCK_SKEW = 600.0  # ... allowing for this much difference between this machine's clock and the cloud's
INVALID_TOKEN = "isolarcloud-exporter-probe-invalid-token"  # deliberately not a token
TOKEN_ENDPOINTS = ("refreshToken", "token")
# Numeric fields of the plant list whose JSON types are reported (never names, places or descriptions).
TYPED_FIELDS = ("ps_id", "ps_type", "online_status", "valid_flag", "grid_connection_status", "ps_fault_status",
                "connect_type", "build_status", "latitude", "longitude", "grid_connection_time", "install_date",
                "update_time")
_OVER_LIMIT = re.compile(r"limit|exceed|too many|too large|size", re.IGNORECASE)


def plan(oauth2: bool) -> int:
    """The most calls a probe can make: every ladder refused down to its last rung, every bisection, plus one
    token renewal and retry if the gateway rejects the token mid-way (and one retry of a refresh whose token was
    rotated meanwhile by another owner of the token file)."""
    page = len(PAGE_SIZES) + BISECTIONS + 1  # + page 2 when the list reports no total
    if oauth2:
        return 2 + 1 + page + len(BATCHES) + BISECTIONS + 2 + 2
    return 1 + page + 1 + 2


PLANNED_CALLS = max(plan(True), plan(False))


class ProbeBudgetSpent(Exception):
    """The next call would exceed MAX_CALLS: it is not sent."""


@dataclass(frozen=True)
class TokenShape:
    """Where a token answer carried its tokens (key names only)."""

    top_level: bool
    result_data: bool
    refresh_token: bool
    expires_in: float | None


class CountingGateway(Gateway):
    """The probe's gateway: the account's transport, every call counted by endpoint and result, none beyond
    `limit`. It notes where token answers carry their tokens, and nothing of their values."""

    def __init__(self, inner: Gateway, limit: int = MAX_CALLS) -> None:
        self.inner = inner
        self.limit = limit
        self.sent = 0
        self.results: Counter[tuple[str, str]] = Counter()
        self.token_shapes: list[TokenShape] = []
        self.record = self._record

    def _record(self, endpoint: str, result: str) -> None:
        self.results[(endpoint, result)] += 1

    def post_document(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        if self.sent >= self.limit:
            raise ProbeBudgetSpent(f"the probe's limit of {self.limit} calls is reached")
        self.sent += 1
        doc = self.inner.post_document(path, body, headers)
        if endpoint_name(path) in TOKEN_ENDPOINTS:
            data = doc.get("result_data")
            inner = data if isinstance(data, dict) else {}
            self.token_shapes.append(TokenShape(
                top_level=bool(doc.get("access_token")), result_data=bool(inner.get("access_token")),
                refresh_token=bool(inner.get("refresh_token") or doc.get("refresh_token")),
                expires_in=_number(inner.get("expires_in", doc.get("expires_in")))))
        return doc

    def close(self) -> None:
        self.inner.close()


@dataclass
class Finding:
    """One question's answer. `facts` go into the JSON report (no secret, no personal data); `notes` are extra
    lines for the person running the probe only (plant ids, say), never written to the report file."""

    question: str
    title: str
    settled: bool
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class ProbeResult:
    mode: str
    findings: list[Finding]
    calls: int
    results: dict[tuple[str, str], int]
    started: float
    finished: float
    stopped: str | None = None  # why the probe ended early, if it did


@dataclass
class _Listing:
    rows: list[dict[str, Any]]
    total: int | None
    keys: list[str]
    at: float  # when the answer came


@dataclass
class _Snapshot:
    values: dict[str, dict[str, Any]]  # ps_id → raw point values
    at: float


POINT_IDS = [q.point_id for q in QUANTITIES if q.point_id]


class Probe:
    def __init__(self, gateway: CountingGateway, session: ApiSession, *, filters: Mapping[str, str],
                 may_refresh: bool, wait: float, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, progress: Callable[[str], None] | None = None) -> None:
        self.gateway = gateway
        self.session = session
        self.filters = dict(filters)
        self.may_refresh = may_refresh
        self.wait = wait
        self.clock = clock
        self.sleep = sleep
        self.progress = progress or (lambda message: None)
        self.oauth2 = session.mode == "oauth2"
        self.listing: _Listing | None = None
        self.page_size: int | None = None  # the largest page size served
        self.batch: int | None = None  # the largest real-time batch answered
        self.snapshot: _Snapshot | None = None
        self._page_facts: dict[str, Any] = {}
        self._list_end: int | None = None  # plants in a list without a total, once a second page came back empty

    # -- the run ----------------------------------------------------------------------------------------------

    def run(self) -> ProbeResult:
        started = self.clock()
        findings: list[Finding] = []
        stopped: str | None = None
        steps: list[tuple[str, str, Callable[[], Finding]]] = [
            ("token_answer", "Token answer", self.token_answer),
            ("rejected_token", "Rejected token", self.rejected_token),
            ("plant_list", "Plant list total", self.plant_list),
            ("page_size", "Largest page size", self.page_size_finding),
            ("field_types", "Field types", self.field_types),
            ("time_zone", "Time-zone sign", self.time_zone),
            ("realtime_batch", "Largest real-time batch", self.realtime_batch),
            ("update_time", "update_time follows the values", self.update_time),
            ("quota", "API quota", self.quota),
        ]
        self.session.auth.start_cycle()  # one renewal of a rejected token for the whole probe, as in a cycle
        for question, title, step in steps:
            if stopped is not None:
                findings.append(Finding(question, title, False, f"not run: {stopped}"))
                continue
            try:
                finding = step()
            except ProbeBudgetSpent as exc:
                stopped = str(exc)
                finding = Finding(question, title, False, f"not run: {stopped}")
            except CredentialError as exc:
                stopped = f"the account's credentials were refused ({exc})"
                finding = Finding(question, title, False, f"failed: {exc}", {"result": exc.result})
            except ApiError as exc:
                finding = Finding(question, title, False, f"failed: {exc}", {"result": exc.result})
            finding.question, finding.title = question, title
            findings.append(finding)
        return ProbeResult("oauth2" if self.oauth2 else "login", findings, self.gateway.sent,
                           dict(self.gateway.results), started, self.clock(), stopped)

    # -- tokens -----------------------------------------------------------------------------------------------

    def token_answer(self) -> Finding:
        auth = self.session.auth
        if not isinstance(auth, OAuth2Auth):
            return _na("the login answer's shape is documented (result_data); login apps have no refresh token")
        if not self.may_refresh:
            return Finding("", "", False, "not observed: without a token_file a refresh would spend the configured "
                           "refresh token, so the probe used the configured access token as it is")
        before = auth.tokens.refresh_token
        # Counted, and the rotated token saved to the token file at once, as the exporter does.
        auth.refresh(reuse=False)
        shape = self.gateway.token_shapes[-1]
        where = "both" if shape.top_level and shape.result_data else "top_level" if shape.top_level else \
            "result_data"
        rotated = shape.refresh_token and auth.tokens.refresh_token != before
        facts = {"shape": where, "rotated": rotated, "expires_in": shape.expires_in}
        place = {"both": "in result_data and at the top level", "top_level": "at the top level, not in result_data",
                 "result_data": "in result_data (as documented)"}[where]
        lifetime = f"; expires_in {shape.expires_in:g} s" if shape.expires_in is not None else "; no expires_in"
        turn = "a new refresh token (rotated, saved to the token file)" if rotated else \
            "no new refresh token (the old one stays in use)"
        return Finding("", "", True, f"tokens {place}; {turn}{lifetime}", facts)

    def rejected_token(self) -> Finding:
        if not self.oauth2:
            return _na("a rejected login token is E00003, as documented")
        headers, body = self.session.auth.sign(OAUTH_LIST_PATH, {"page": 1, "size": 1, **self.filters})
        headers = {**headers, "Authorization": f"Bearer {INVALID_TOKEN}"}
        try:
            self.gateway.post(OAUTH_LIST_PATH, body, headers, require_list="pageList")
        except TokenError as exc:
            style = "oauth_error" if exc.result.startswith("oauth_") else "envelope"
            kind = "an OAuth error object" if style == "oauth_error" else "a result-code envelope"
            return Finding("", "", True, f"answered {exc.result} ({kind}): the exporter renews the token on it",
                           {"style": style, "result": exc.result})
        except ApiError as exc:
            return Finding("", "", True, f"answered {exc.result}, which the exporter does not read as a rejected "
                           "token: please report it", {"style": "other", "result": exc.result})
        return Finding("", "", True, "a made-up token was accepted: please report it", {"style": "accepted"})

    # -- plant list -------------------------------------------------------------------------------------------

    def _page(self, number: int, size: int) -> _Listing:
        path, key = (OAUTH_LIST_PATH, "page") if self.oauth2 else (LEGACY_LIST_PATH, "curPage")
        data = self.session.call(path, {key: number, "size": size, **self.filters}, require_list="pageList")
        rows = [r for r in data["pageList"] if isinstance(r, dict)]
        keys = [k for k in ("rowCount", "row_count") if k in data]
        total = next((n for n in (_count(data.get(k)) for k in keys) if n is not None), None)
        return _Listing(rows, total, keys, self.clock())

    def plant_list(self) -> Finding:
        """Also finds the largest page size (reported by `page_size_finding`)."""
        accepted: int | None = None
        refused: int | None = None
        clamped: int | None = None
        refusal = ""
        for size in PAGE_SIZES:
            try:
                listing = self._page(1, size)
            except (ResultError, ResponseError) as exc:
                if not _over_limit(exc):
                    raise
                refused, refusal = size, exc.result
                continue
            accepted, self.listing = size, listing
            clamped = self._clamp(listing, size)
            break
        if accepted is not None and clamped is None and refused is not None:
            low, high = accepted, refused
            for _ in range(BISECTIONS):
                if high - low <= 1:
                    break
                middle = _middle(low, high)
                try:
                    listing = self._page(1, middle)
                except (ResultError, ResponseError) as exc:
                    if not _over_limit(exc):
                        raise
                    high = middle
                    continue
                low, self.listing = middle, listing
                clamped = self._clamp(listing, middle)
                if clamped is not None:
                    break
            accepted, refused = low, high
        self.page_size = clamped or accepted
        self._page_facts = {"accepted": accepted, "refused": refused, "refusal": refusal or None,
                            "clamped_at": clamped}
        if self.listing is None:
            return Finding("", "", False, f"every page size down to {PAGE_SIZES[-1]} was refused ({refusal})",
                           {"refused": refused})
        listing = self.listing
        distinct = len({ps_id(r.get("ps_id")) for r in listing.rows} - {None})
        facts: dict[str, Any] = {"keys": listing.keys, "total": listing.total, "rows_read": len(listing.rows),
                                 "distinct_plants": distinct}
        if not listing.keys:
            summary = "no total in the answer (neither rowCount nor row_count): the exporter pages until a short page"
        else:
            summary = f"total under {' and '.join(listing.keys)}: {listing.total} plants"
        if listing.total == 0:
            summary += "; the account lists no plants: check the region (a wrong gateway authenticates and lists " \
                       "nothing), the filters, or the authorisation"
        elif listing.total is not None and len(listing.rows) >= listing.total:
            matches = distinct == listing.total
            facts["total_matches"] = matches
            summary += "; it matches the distinct plants read" if matches else \
                f"; but {distinct} distinct plants were read (strict_row_count would fail)"
        return Finding("", "", True, summary, facts)

    def _clamp(self, listing: _Listing, size: int) -> int | None:
        """Rows served per page when the gateway served fewer than asked although there are more."""
        served = len(listing.rows)
        if served >= size or served == 0:
            return None
        if listing.total is not None:
            return served if listing.total > served else None
        if self._list_end == served:
            return None
        if self._page(2, size).rows:  # no total: a second page tells
            return served
        self._list_end = served
        return None

    def page_size_finding(self) -> Finding:
        if self.listing is None:
            return Finding("", "", False, "no page of the plant list was served", dict(self._page_facts))
        facts = {**self._page_facts, "plants": self.listing.total}
        accepted, refused, clamped = facts["accepted"], facts["refused"], facts["clamped_at"]
        facts["largest"] = self.page_size
        if clamped is not None:
            return Finding("", "", True, f"pages silently capped at {clamped} rows (asked {accepted})", facts)
        total = self.listing.total
        if refused is not None:
            text = f"{accepted} rows per page served, {refused} refused ({facts['refusal']})"
        else:
            text = f"{accepted} rows per page served"
        if total is not None and total < accepted:
            facts["limit_visible"] = False
            text += f"; with {total} plants a cap above {total} cannot be seen (the list fits one page)"
        return Finding("", "", True, text, facts)

    def field_types(self) -> Finding:
        if self.listing is None or not self.listing.rows:
            return Finding("", "", False, "no plant rows to look at")
        types: dict[str, Counter[str]] = {name: Counter() for name in TYPED_FIELDS}
        for row in self.listing.rows:
            for name in TYPED_FIELDS:
                types[name][_json_type(row, name)] += 1
        facts = {name: dict(sorted(counts.items())) for name, counts in types.items()}
        strings = sorted(name for name in TYPED_FIELDS[:10] if types[name]["string"])
        gct = ", ".join(f"{n} {kind}" for kind, n in sorted(types["grid_connection_time"].items()))
        summary = (f"numbers as strings in: {', '.join(strings)}" if strings else "numbers are numbers") + \
            f"; grid_connection_time: {gct} ({len(self.listing.rows)} plants)"
        return Finding("", "", True, summary, facts)

    # -- time zone --------------------------------------------------------------------------------------------

    def time_zone(self) -> Finding:
        """Which reading of update_time puts it just before now: the zone as written, its sign flipped, or UTC."""
        if self.listing is None or not self.listing.rows:
            return Finding("", "", False, "no plant rows to look at")
        now = self.listing.at
        tally: Counter[str] = Counter()
        offsets: Counter[str] = Counter()
        flipped_zones: Counter[str] = Counter()
        flipped_ids: list[str] = []
        for row in self.listing.rows:
            zone = str(row.get("ps_current_time_zone") or "").strip()
            tz = zone_offset("plant", zone)
            local = parse_timestamp(row.get("update_time"), timezone.utc)  # the wall time, as if UTC
            if tz is None or local is None:
                tally["unreadable"] += 1
                continue
            written = tz.utcoffset(None).total_seconds()
            readings = {"written": written, "flipped": -written, "utc": 0.0}
            fits = {name: offset for name, offset in readings.items()
                    if -CLOCK_SKEW <= now - (local - offset) <= FRESH_AGE}
            if not fits:
                tally["undecided"] += 1  # asleep, stale, or this machine's clock is off
            elif len(fits) > 1:
                tally["ambiguous"] += 1  # GMT+0: every reading agrees
            else:
                name, offset = next(iter(fits.items()))
                tally[name] += 1
                offsets[_offset_text(offset)] += 1
                if name == "flipped":
                    flipped_zones[zone] += 1
                    flipped_ids.append(str(ps_id(row.get("ps_id"))))
        decided = tally["written"] + tally["flipped"] + tally["utc"]
        facts = {"readings": dict(sorted(tally.items())), "offsets": dict(sorted(offsets.items())),
                 "flipped_zones": dict(sorted(flipped_zones.items())), "plants": len(self.listing.rows)}
        notes = [f"plants whose zone has the wrong sign: {', '.join(flipped_ids[:10])}"
                 + (f" and {len(flipped_ids) - 10} more" if len(flipped_ids) > 10 else "")] if flipped_ids else []
        if tally["unreadable"] == len(self.listing.rows):
            return Finding("", "", False, "no plant row carries a readable update_time with a GMT±h zone (the legacy "
                           "list of login apps has no update_time)", facts)
        if decided < min(3, len(self.listing.rows)):
            return Finding("", "", False, f"undecided: only {decided} plants reported within the last "
                           f"{FRESH_AGE / 60:g} minutes (at night or with stale plants: run the probe by day; and "
                           "keep this machine's clock right)", facts, notes)
        parts = [f"{tally[name]} {label}" for name, label in (("written", "as written"), ("flipped", "with the sign "
                 "flipped"), ("utc", "as UTC")) if tally[name]]
        return Finding("", "", True, f"update_time reads right {', '.join(parts)} ({decided} plants that reported "
                       f"within {FRESH_AGE / 60:g} minutes)", facts, notes)

    # -- real-time data ---------------------------------------------------------------------------------------

    def _realtime(self, ps_ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        data = self.session.call(REALTIME_PATH, {"ps_id_list": list(ps_ids), "point_id_list": POINT_IDS,
                                                 "is_get_point_dict": "1"}, require_list="device_point_list")
        values: dict[str, dict[str, Any]] = {}
        for entry in data["device_point_list"]:
            key = ps_id(entry.get("ps_id")) if isinstance(entry, dict) else None
            if key is not None:
                values[key] = {k: v for k, v in entry.items() if k.startswith("p") and k[1:].isdigit()}
        failed = data.get("fail_ps_id_list")
        items = failed.split(",") if isinstance(failed, str) else failed if isinstance(failed, list) else []
        return values, {k for k in (ps_id(x) for x in items) if k is not None}

    def realtime_batch(self) -> Finding:
        if not self.oauth2:
            return _na("login apps have no real-time endpoint")
        if self.listing is None:
            return Finding("", "", False, "no plant list to take plants from")
        ids = list(dict.fromkeys(k for k in (ps_id(r.get("ps_id")) for r in self.listing.rows) if k is not None))
        if not ids:
            return Finding("", "", False, "the account lists no plants")
        accepted: int | None = None
        refused: int | None = None
        refusal = ""
        answer: tuple[dict[str, dict[str, Any]], set[str]] | None = None
        missing = 0

        def attempt(size: int) -> bool:
            nonlocal answer, missing, refused, refusal
            try:
                values, failed = self._realtime(ids[:size])
            except (ResultError, ResponseError) as exc:
                if not _over_limit(exc):
                    raise
                refused, refusal = size, exc.result
                return False
            answer = (values, failed)
            missing = len(set(ids[:size]) - set(values) - failed)
            self.snapshot = _Snapshot(values, self.clock())
            return True

        for size in sorted({min(b, len(ids)) for b in BATCHES}, reverse=True):
            if attempt(size):
                accepted = size
                break
        if accepted is not None and refused is not None:
            low, high = accepted, refused
            for _ in range(BISECTIONS):
                if high - low <= 1:
                    break
                middle = _middle(low, high)
                if attempt(middle):
                    low = middle
                else:
                    high = middle
            accepted, refused = low, high
        self.batch = accepted
        facts = {"accepted": accepted, "refused": refused, "refusal": refusal or None, "plants_available": len(ids)}
        if accepted is None or answer is None:
            return Finding("", "", False, f"every batch down to {BATCHES[-1]} plants was refused ({refusal})", facts)
        values, failed = answer
        facts.update({"answered": len(values), "failed": len(failed), "unanswered": missing})
        text = f"{accepted} plants per call answered" + (f", {refused} refused ({refusal})" if refused else "")
        if refused is None and accepted == len(ids) and accepted < BATCHES[0]:
            text += f" (all {len(ids)} plants read: a limit above {accepted} cannot be seen)"
        if missing:
            text += f"; {missing} of them neither answered nor listed as failed"
        return Finding("", "", True, text, facts)

    def update_time(self) -> Finding:
        """Whether update_time moves whenever the values move: what realtime.skip_unchanged relies on."""
        if not self.oauth2:
            return _na("login apps have no real-time endpoint (realtime.skip_unchanged does not apply)")
        if self.listing is None or self.snapshot is None or self.page_size is None:
            return Finding("", "", False, "no first snapshot to compare with")
        if self.wait <= 0:
            return Finding("", "", False, "not run (--wait 0)")
        first_times = {k: row.get("update_time") for row in self.listing.rows
                       if (k := ps_id(row.get("ps_id"))) is not None}
        sample = [k for k in self.snapshot.values if k in first_times]
        if not sample:
            return Finding("", "", False, "no plant both listed and answered")
        self.progress(f"waiting {_duration(self.wait)} for the cloud's next data update (--wait 0 skips this "
                      "question)")
        self.sleep(self.wait)
        # Real-time values first, then the list: a data update in between shows as "update_time moved, values
        # not" (harmless), never as the reverse. The first snapshot was taken list first for the same reason.
        values, _failed = self._realtime(sample)
        second = self._page(1, self.page_size)
        later_times = {k: row.get("update_time") for row in second.rows if (k := ps_id(row.get("ps_id"))) is not None}
        tally: Counter[str] = Counter()
        for key in sample:
            if key not in values or key not in later_times:
                continue
            moved_values = _present(values[key]) != _present(self.snapshot.values[key])
            moved_time = later_times[key] != first_times[key]
            tally[{(True, True): "both", (True, False): "values_only", (False, True): "time_only",
                   (False, False): "neither"}[(moved_values, moved_time)]] += 1
        compared = sum(tally.values())
        facts = {"compared": compared, "waited_seconds": self.wait, **{k: tally[k] for k in
                                                                       ("both", "values_only", "time_only", "neither")}}
        if tally["values_only"]:
            return Finding("", "", True, f"no: on {tally['values_only']} of {compared} plants the values moved while "
                           "update_time stood still: realtime.skip_unchanged would serve old values there", facts)
        if not tally["both"]:
            return Finding("", "", False, f"undecided: no values moved in {_duration(self.wait)} on {compared} plants "
                           "(at night, or wait longer): run the probe by day", facts)
        skip = tally["neither"]
        return Finding("", "", True, f"yes: update_time moved with the values on {tally['both']} of {compared} "
                       f"plants and never stood still while they moved; {skip} plants had nothing new "
                       f"(realtime.skip_unchanged would skip them now)", facts)

    # -- quota ------------------------------------------------------------------------------------------------

    def quota(self) -> Finding:
        if self.oauth2:
            return _na("no quota endpoint is documented for OAuth2 apps (getOpenApiCallInfo is a login-app call)")
        quota = CallInfoApi(self.session).read(self.clock())
        facts = {"hour_limit": quota.hour_limit, "day_limit": quota.day_limit, "hour_used": quota.hour_used,
                 "day_used": quota.day_used, "hourly_allowance": quota.hourly_allowance()}
        if quota.hourly_allowance() is None:
            return Finding("", "", True, "getOpenApiCallInfo answers without a limit", facts)
        return Finding("", "", True, f"{quota.hour_limit or '-'} calls per hour, {quota.day_limit or '-'} per day; "
                       f"used {quota.hour_used if quota.hour_used is not None else '?'} this hour, "
                       f"{quota.day_used if quota.day_used is not None else '?'} today (every client of the app)",
                       facts)


def _na(reason: str) -> Finding:
    return Finding("", "", True, f"not applicable: {reason}", {"applicable": False})


def _middle(low: int, high: int) -> int:
    """A size strictly between `low` (answered) and `high` (refused) to try next: the roundest one near the
    middle, since limits tend to be round (20, 50, 100, 200), so that few steps find them exactly."""
    middle = (low + high) / 2
    for step in (100, 50, 10, 5):
        candidates = [k * step for k in range(low // step + 1, -(-high // step)) if low < k * step < high]
        if candidates:
            return min(candidates, key=lambda c: (abs(c - middle), c))
    return (low + high) // 2


def _over_limit(exc: ApiError) -> bool:
    """A refusal that means "too many": 010 (invalid value), 009 (missing value: the parameter was dropped), or a
    message naming a limit."""
    return exc.result in ("010", "009") or bool(_OVER_LIMIT.search(str(exc)))


def _count(value: Any) -> int | None:
    number = parse_int(value)
    return number if number is not None and number >= 0 else None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _json_type(row: Mapping[str, Any], name: str) -> str:
    if name not in row:
        return "absent"
    value = row[name]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "")}


def _offset_text(seconds: float) -> str:
    sign = "+" if seconds >= 0 else "-"
    minutes = int(abs(seconds)) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"

