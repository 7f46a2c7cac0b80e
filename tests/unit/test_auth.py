"""Authentication without sockets: a rejected token is renewed and the call retried (again whenever the token made
progress since its renewal), rotated refresh tokens are persisted at once, and a token that stays rejected never
loops."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from exporter.fetch.auth import OAuth2Auth, TokenFile, Tokens
from exporter.fetch.envelope import CredentialError, TokenError
from exporter.fetch.session import ApiSession
from tests.fakes import FakeGateway, fail, login_session, oauth_session, ok, token_answers

LIST = "queryPowerStationList"


def test_a_rejected_access_token_is_refreshed_once_and_the_call_retried() -> None:
    answers = [fail("E00003", "er_token_login_invalid"), ok({"pageList": [], "row_count": 0})]
    gateway = FakeGateway({LIST: answers, "refreshToken": token_answers()})
    auth_log: Counter[tuple[str, str]] = Counter()
    session = oauth_session(gateway, clock=lambda: 1e9, auth_log=auth_log)
    assert session.call("/openapi/platform/" + LIST, {"page": 1}) == {"pageList": [], "row_count": 0}
    assert [name for name, _, _ in gateway.calls] == [LIST, "refreshToken", LIST]
    assert gateway.calls[0][2]["Authorization"] == "Bearer a0"
    assert gateway.calls[2][2]["Authorization"] == "Bearer t-access-1"
    assert auth_log == {("refresh", "success"): 1}
    assert gateway.results[(LIST, "E00003")] == 1 and gateway.results[(LIST, "1")] == 1


def test_a_token_still_rejected_after_the_refresh_ends_the_cycle() -> None:
    gateway = FakeGateway({LIST: lambda body: fail("E00003"), "refreshToken": token_answers()})
    session = oauth_session(gateway, clock=lambda: 1e9)
    with pytest.raises(TokenError):
        session.call("/openapi/platform/" + LIST, {})
    with pytest.raises(TokenError):  # same cycle: no second refresh
        session.call("/openapi/platform/" + LIST, {})
    assert gateway.count("refreshToken") == 1
    session.auth.start_cycle()
    with pytest.raises(TokenError):
        session.call("/openapi/platform/" + LIST, {})
    assert gateway.count("refreshToken") == 2  # one per cycle, never a loop


def test_an_oauth_error_body_counts_as_a_rejected_token() -> None:
    answers = [{"error": "invalid_token", "error_description": "Invalid access token"}, ok({"pageList": []})]
    gateway = FakeGateway({LIST: answers, "refreshToken": token_answers()})
    oauth_session(gateway, clock=lambda: 1e9).call("/openapi/platform/" + LIST, {})
    assert gateway.count("refreshToken") == 1


def test_an_access_token_near_expiry_is_refreshed_before_the_call(tmp_path: Path) -> None:
    now = [1e9]
    gateway = FakeGateway({LIST: lambda body: ok({}), "refreshToken": token_answers()})
    session = oauth_session(gateway, clock=lambda: now[0], access_token=None)
    session.call("/openapi/platform/" + LIST, {})
    assert session.auth.expiries()["access"] == pytest.approx(1e9 + 172799)
    now[0] += 172799 - 299  # within the 5-minute margin
    session.call("/openapi/platform/" + LIST, {})
    assert gateway.count("refreshToken") == 2


def test_every_rotated_refresh_token_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    gateway = FakeGateway({"refreshToken": token_answers()})
    auth = OAuth2Auth.from_config(gateway, appkey="APPKEY", secret_key="SECRET", lang="_en_US", access_token=None,
                                  refresh_token="r0", token_file=path, record_auth=lambda kind, result: None,
                                  clock=lambda: 1e9)
    assert json.loads(path.read_text())["refresh_token"] == "r0"  # seeded before any call
    auth.refresh()
    assert json.loads(path.read_text())["refresh_token"] == "t-refresh-1"
    assert path.stat().st_mode & 0o777 == 0o600
    auth.refresh()
    assert TokenFile(path).load() == Tokens("t-access-2", "t-refresh-2", 1e9 + 172799, 1e9 + 30 * 86400)


def test_a_refused_refresh_is_a_credential_error_and_is_not_repeated() -> None:
    gateway = FakeGateway({"refreshToken": lambda body: ok({"code": "5"})})
    auth_log: Counter[tuple[str, str]] = Counter()
    session = oauth_session(gateway, clock=lambda: 1e9, access_token=None, auth_log=auth_log)
    for _ in range(2):
        with pytest.raises(CredentialError) as caught:
            session.call("/openapi/platform/" + LIST, {})
        assert caught.value.result == "refresh_code_5"
    assert gateway.count("refreshToken") == 1  # dead until a new token file or configuration arrives
    assert auth_log == {("refresh", "failure"): 1}


def test_login_token_expiry_logs_in_again_once() -> None:
    tokens = iter(["u_" + "a" * 32, "u_" + "b" * 32])
    gateway = FakeGateway({"login": lambda body: ok({"login_state": "1", "token": next(tokens)}),
                           "getPowerStationList": [ok({"pageList": []}), fail("E00003"), ok({"pageList": []})]})
    session: ApiSession = login_session(gateway, clock=lambda: 1e9)
    session.call("/openapi/getPowerStationList", {})  # the token serves a call, then expires
    session.call("/openapi/getPowerStationList", {})
    assert [name for name, _, _ in gateway.calls] == ["login", "getPowerStationList", "getPowerStationList", "login",
                                                      "getPowerStationList"]
    assert gateway.calls[4][1]["token"] == "u_" + "b" * 32
    assert gateway.calls[4][2]["sys_code"] == "901"


def test_a_login_token_rejected_before_any_success_ends_the_cycle() -> None:
    """The token just obtained by logging in is rejected at once: logging in again would only loop."""
    tokens = iter(["u_" + "a" * 32, "u_" + "b" * 32])
    gateway = FakeGateway({"login": lambda body: ok({"login_state": "1", "token": next(tokens)}),
                           "getPowerStationList": [fail("E00003"), fail("E00003"), ok({"pageList": []})]})
    session: ApiSession = login_session(gateway, clock=lambda: 1e9)
    with pytest.raises(TokenError):
        session.call("/openapi/getPowerStationList", {})
    assert gateway.count("login") == 1
    session.auth.start_cycle()  # the next cycle may renew it once more
    session.call("/openapi/getPowerStationList", {})
    assert [name for name, _, _ in gateway.calls] == ["login", "getPowerStationList", "getPowerStationList", "login",
                                                      "getPowerStationList"]


def test_a_token_that_made_progress_is_renewed_again_in_the_same_cycle() -> None:
    """A gateway that revokes tokens early: each new token serves some calls, then is rejected. Every time the
    rejected token had served at least one call, it is refreshed again and the call retried; every refresh is
    counted."""
    answers = [ok({"n": 1}), fail("E00003"), ok({"n": 2}), ok({"n": 3}), fail("E00003"), ok({"n": 4}),
               fail("E00003"), fail("E00003")]
    gateway = FakeGateway({LIST: answers, "refreshToken": token_answers()})
    auth_log: Counter[tuple[str, str]] = Counter()
    session = oauth_session(gateway, clock=lambda: 1e9, auth_log=auth_log)
    got = [session.call("/openapi/platform/" + LIST, {})["n"] for _ in range(4)]
    assert got == [1, 2, 3, 4]
    assert auth_log == {("refresh", "success"): 2}
    with pytest.raises(TokenError):  # refreshed (token 3 served call 4), then rejected before any success
        session.call("/openapi/platform/" + LIST, {})
    assert auth_log == {("refresh", "success"): 3}
    tokens = [headers["Authorization"] for name, _, headers in gateway.calls if name == LIST]
    assert tokens == ["Bearer a0", "Bearer a0", "Bearer t-access-1", "Bearer t-access-1", "Bearer t-access-1",
                      "Bearer t-access-2", "Bearer t-access-2", "Bearer t-access-3"]


def test_a_login_token_that_made_progress_is_renewed_again_in_the_same_cycle() -> None:
    tokens = iter([f"u_{c * 32}" for c in "abc"])
    gateway = FakeGateway({"login": lambda body: ok({"login_state": "1", "token": next(tokens)}),
                           "getPowerStationList": [ok({}), fail("E00003"), ok({}), fail("E00003"), ok({})]})
    auth_log: Counter[tuple[str, str]] = Counter()
    session = login_session(gateway, clock=lambda: 1e9, auth_log=auth_log)
    for _ in range(3):
        session.call("/openapi/getPowerStationList", {})
    assert auth_log == {("login", "success"): 3}
    assert [body["token"][:3] for name, body, _ in gateway.calls if name == "getPowerStationList"] == [
        "u_a", "u_a", "u_b", "u_b", "u_c"]


@pytest.mark.parametrize(("state", "label"), [("0", "login_state_0"), ("2", "login_state_2"), ("-1", "login_state_-1"),
                                              ("1", "no_token")])
def test_a_failed_login_is_a_credential_error_even_with_result_code_1(state: str, label: str) -> None:
    gateway = FakeGateway({"login": lambda body: ok({"login_state": state, "token": ""})})
    with pytest.raises(CredentialError) as caught:
        login_session(gateway, clock=lambda: 1e9).call("/openapi/getPowerStationList", {})
    assert caught.value.result == label


# -- one token file, two processes (the exporter and a backfill) ---------------------------------------------


def test_the_file_lock_waits_for_the_holder_and_follows_the_file_it_replaced(tmp_path: Path) -> None:
    store = TokenFile(tmp_path / "tokens.json")
    store.save(Tokens(refresh_token="r1"))
    seen: list[tuple[bool, str | None]] = []
    with store.held(5) as held:
        assert held
        # Each held() opens the file anew, so a second holder conflicts as another process would.
        waiter = threading.Thread(target=lambda: _read_held(store, seen))
        waiter.start()
        time.sleep(0.3)
        assert not seen, "the second holder must wait"
        store.save(Tokens(refresh_token="r2"))  # the write replaces the file (a new inode)
    waiter.join(5)
    assert seen == [(True, "r2")]


def _read_held(store: TokenFile, seen: list[tuple[bool, str | None]]) -> None:
    with store.held(5) as held:
        tokens = store.load()
        seen.append((held, tokens.refresh_token if tokens else None))
        # Held on the file it read: a third holder cannot come in now.
        with store.held(0.1) as third:
            assert not third


def test_a_holder_that_never_lets_go_delays_a_renewal_only_so_long(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    store = TokenFile(tmp_path / "tokens.json")
    store.save(Tokens(refresh_token="r1"))
    with store.held(5):
        started = time.monotonic()
        with store.held(0.3) as second:
            assert not second and 0.3 <= time.monotonic() - started < 3
    assert f"token file {store.path}: held by another process" in caplog.text
    assert "r1" not in caplog.text
    with store.held(0.1) as free:
        assert free
    with TokenFile(tmp_path / "none.json").held(5) as missing:
        assert not missing  # nothing to hold before the first write


def test_a_renewal_made_by_another_holder_meanwhile_is_adopted_without_a_call(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    TokenFile(path).save(Tokens(access_token="a0", refresh_token="r0", access_expires_at=1e9 - 1))
    entered, release = threading.Event(), threading.Event()
    issued = token_answers()

    def slow_refresh(body: dict[str, Any]) -> dict[str, Any]:
        entered.set()
        assert release.wait(5)
        return issued(body)

    first_gateway = FakeGateway({"refreshToken": slow_refresh, LIST: lambda body: ok({})})
    second_gateway = FakeGateway({"refreshToken": token_answers("u"), LIST: lambda body: ok({})})
    sessions = [ApiSession(g, OAuth2Auth.from_config(
        g, appkey="APPKEY", secret_key="SECRET", lang="_en_US", access_token=None, refresh_token=None,
        token_file=path, record_auth=lambda kind, result: None, clock=lambda: 1e9)) for g in (first_gateway,
                                                                                          second_gateway)]
    first = threading.Thread(target=lambda: sessions[0].call("/openapi/platform/" + LIST, {}))
    first.start()
    assert entered.wait(5)  # the first renewal is in flight, holding the file
    second = threading.Thread(target=lambda: sessions[1].call("/openapi/platform/" + LIST, {}))
    second.start()
    time.sleep(0.3)
    release.set()
    first.join(5)
    second.join(5)
    assert first_gateway.count("refreshToken") == 1 and second_gateway.count("refreshToken") == 0
    assert second_gateway.calls[-1][2]["Authorization"] == "Bearer t-access-1"
    assert json.loads(path.read_text())["refresh_token"] == "t-refresh-1"
