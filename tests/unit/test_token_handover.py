"""The token file's failure and hand-over rules, without sockets: a failed write is reported and retried each
cycle; credentials are released to a successor (a reload) only when nothing lives in memory alone; released
credentials never renew again."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from exporter.fetch.auth import OAuth2Auth, TokenFile, Tokens
from exporter.fetch.envelope import CredentialError
from tests.fakes import FakeGateway, token_answers


def _auth(gateway: FakeGateway, path: Path, writes: list[str | None]) -> OAuth2Auth:
    return OAuth2Auth(gateway, appkey="APPKEY", secret_key="SECRET", lang="_en_US",
                      tokens=Tokens(refresh_token="r0"), token_file=TokenFile(path),
                      record_auth=lambda kind, result: None, clock=lambda: 1e9, record_write=writes.append,
                      account="home")


def test_a_failed_write_is_reported_retried_and_blocks_the_hand_over(tmp_path: Path) -> None:
    blocked = tmp_path / "state"
    blocked.write_text("a file where the directory should be")  # every write into it fails, even as root
    writes: list[str | None] = []
    auth = _auth(FakeGateway({"refreshToken": token_answers()}), blocked / "home.json", writes)
    auth.refresh()
    assert auth.tokens.refresh_token == "t-refresh-1"
    assert len(writes) == 1 and writes[0] is not None and str(blocked / "home.json") in writes[0]
    auth.start_cycle()  # retried, fails again: counted again
    assert len(writes) == 2 and writes[1] is not None
    assert auth.release(1.0) is False, "the only valid refresh token must not be handed over unsaved"
    blocked.unlink()
    blocked.mkdir()
    auth.start_cycle()
    assert writes[-1] is None
    assert json.loads((blocked / "home.json").read_text())["refresh_token"] == "t-refresh-1"
    assert auth.release(1.0) is True


def test_released_credentials_never_renew(tmp_path: Path) -> None:
    gateway = FakeGateway({"refreshToken": token_answers()})
    auth = _auth(gateway, tmp_path / "home.json", [])
    assert auth.release(1.0) is True
    with pytest.raises(CredentialError, match="handed over"):
        auth.refresh()
    assert gateway.count("refreshToken") == 0


def test_release_waits_for_a_renewal_in_flight(tmp_path: Path) -> None:
    """The successor reads the file only after a rotation already sent has been saved."""
    entered, gate = threading.Event(), threading.Event()
    rotate = token_answers()

    def slow(body: dict[str, object]) -> dict[str, object]:
        entered.set()
        gate.wait(10)
        return rotate(body)

    auth = _auth(FakeGateway({"refreshToken": slow}), tmp_path / "home.json", [])
    renewing = threading.Thread(target=auth.refresh)
    renewing.start()
    assert entered.wait(10)
    assert auth.release(0.2) is False, "not while the rotation is in flight"
    released: list[bool] = []
    waiter = threading.Thread(target=lambda: released.append(auth.release(10)))
    waiter.start()
    gate.set()
    renewing.join(10)
    waiter.join(10)
    assert released == [True]
    assert json.loads((tmp_path / "home.json").read_text())["refresh_token"] == "t-refresh-1"
