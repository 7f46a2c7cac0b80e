"""Authentication for both app types: OAuth2 (Bearer, rotating refresh token) and legacy login (body token).

Each refresh or login is counted through `record_auth(kind, result)`. A rejected token is renewed when the token
has made progress since the last renewal (at least one successful call; a token not renewed in this cycle counts
as having made progress); a token renewed in this cycle and rejected before any success ends the cycle, so a
broken account can never loop logins or refreshes.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

try:
    import fcntl
except ImportError:  # not POSIX: renewals are not serialised across processes (the retry below still applies)
    fcntl = None  # type: ignore[assignment]

from ..logs import register_secrets
from .envelope import ApiError, CredentialError, check_result, endpoint_name
from .transport import Gateway

log = logging.getLogger(__name__)

AuthRecorder = Callable[[str, str], None]
WriteRecorder = Callable[[str | None], None]  # after each token file write: None, or why it failed
REFRESH_TOKEN_LIFETIME = 30 * 86400  # [doc: Quick Start]; the API does not return it
REFRESH_MARGIN = 300.0  # refresh the access token this long before it expires
# How long a renewal waits for another process's renewal of the same token file (its one refresh call, bounded
# by the HTTP timeout); past that it goes ahead unlocked, as a process without the lock would.
FILE_LOCK_WAIT = 60.0
LOGIN_TOKEN_LIFETIME = 86400  # sliding: each call resets it [doc: Getting Started (user-level)]
LOGIN_PATH = "/openapi/login"
TOKEN_PATH = "/openapi/apiManage/token"
REFRESH_PATH = "/openapi/apiManage/refreshToken"
LOGIN_STATES = {"-1": "no such account", "0": "wrong password", "2": "locked after wrong passwords",
                "5": "locked by an administrator"}


class TokenFileError(Exception):
    """The token file exists but cannot be read or parsed."""


@dataclass
class Tokens:
    access_token: str | None = None
    refresh_token: str | None = None
    access_expires_at: float | None = None
    refresh_expires_at: float | None = None


class TokenFile:
    """The persisted OAuth2 tokens: the newest rotated refresh token must survive a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    def load(self) -> Tokens | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenFileError(f"token file {self.path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise TokenFileError(f"token file {self.path}: not a token file written by this exporter") from None
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError
            tokens = Tokens(**{k: data.get(k) for k in Tokens.__dataclass_fields__})
        except (ValueError, TypeError):
            raise TokenFileError(f"token file {self.path}: not a token file written by this exporter") from None
        if not (isinstance(tokens.refresh_token, str) or isinstance(tokens.access_token, str)):
            raise TokenFileError(f"token file {self.path}: holds no token")
        return tokens

    @contextlib.contextmanager
    def held(self, timeout: float) -> Iterator[bool]:
        """Hold the file against other processes for a read-renew-write (the exporter and a backfill share it):
        an exclusive flock on the file itself, so no lock file lies beside it. True when held; False (go ahead
        unlocked) when there is no file yet, no flock here, or `timeout` passed while another process held it."""
        fd = self._lock(timeout)
        try:
            yield fd is not None
        finally:
            if fd is not None:
                os.close(fd)  # releases the lock

    def _lock(self, timeout: float) -> int | None:
        if fcntl is None:
            return None
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            locked = self._flock(fd, deadline, timeout)
            try:
                same = locked and os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                locked = same = False
            if same:
                return fd
            os.close(fd)
            if not locked:
                return None
            # The holder we waited for wrote its tokens, which replaced the file: lock the new one.

    def _flock(self, fd: int, deadline: float, timeout: float) -> bool:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    log.warning("token file %s: held by another process for %.0f s; renewing without waiting "
                                "longer", self.path, timeout)
                    return False
                time.sleep(0.02)
            except OSError:  # a filesystem without flock
                return False

    def remove_stale(self) -> None:
        """Remove temporary files of a write that was killed before its rename: they hold tokens too."""
        for tmp in self.path.parent.glob(f".{glob.escape(self.path.name)}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def save(self, tokens: Tokens) -> None:
        """Write atomically with mode 0600: a crash mid-write must not lose the only valid refresh token."""
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(asdict(tokens), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


class Auth(Protocol):
    mode: str

    def sign(self, path: str, params: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
        """Headers and body for a data call, obtaining a token first when there is none."""

    def recover(self) -> bool:
        """After a rejected token: refresh or log in again. False when the token was renewed in this cycle and
        has served no successful call since (renewing again would only loop)."""

    def progressed(self) -> None:
        """A call with the current token succeeded: if it is rejected later, renewing it again is worth it."""

    def start_cycle(self) -> None:
        """A new refresh cycle: a rejected token may be renewed again."""

    def expiries(self) -> dict[str, float]:
        """Known token expiry times by kind (access, refresh, login)."""

    def renewed(self) -> bool:
        """After rejected credentials: new ones arrived (the token file changed), so a retry can start now."""

    def settle(self, timeout: float) -> None:
        """Wait at most `timeout` seconds for a token renewal in flight to finish (before the process exits)."""

    def release(self, timeout: float) -> bool:
        """Hand the credentials over to a successor (a reloaded configuration): wait at most `timeout` seconds
        for a renewal in flight, then never renew again, so the token file has one owner at a time. False, and
        nothing released, when a rotated token exists only in memory (its file cannot be written)."""


class OAuth2Auth:
    """Bearer tokens with a rotating refresh token, persisted to `token_file` when one is configured."""

    mode = "oauth2"

    def __init__(self, transport: Gateway, *, appkey: str, secret_key: str, lang: str,
                 tokens: Tokens, token_file: TokenFile | None, record_auth: AuthRecorder,
                 clock: Callable[[], float] = time.time, record_write: WriteRecorder | None = None,
                 account: str = "") -> None:
        self.transport = transport
        self.appkey = appkey
        self.secret_key = secret_key
        self.lang = lang
        self.tokens = tokens
        self.token_file = token_file
        self.record_auth = record_auth
        register_secrets([tokens.access_token, tokens.refresh_token])
        self.clock = clock
        self._lock = threading.Lock()
        self._unproven = False  # renewed in this cycle, no successful call since
        self._file_stamp: tuple[int, int] | None = None
        self._dead: CredentialError | None = None
        self.record_write = record_write
        self.log = logging.LoggerAdapter(log, {"account": account})
        self._unsaved = False  # the newest tokens are only in memory: the last write of the file failed
        self._released = False

    @classmethod
    def from_config(cls, transport: Gateway, *, appkey: str, secret_key: str, lang: str,
                    access_token: str | None, refresh_token: str | None, token_file: Path | None,
                    record_auth: AuthRecorder, clock: Callable[[], float] = time.time,
                    record_write: WriteRecorder | None = None, account: str = "") -> OAuth2Auth:
        """Tokens from `token_file` win over configured ones: the file holds the newest rotated token."""
        store = TokenFile(token_file) if token_file else None
        if store is not None:
            store.remove_stale()
        stored = store.load() if store else None
        if stored is None:
            stored = Tokens(access_token=access_token, refresh_token=refresh_token,
                            refresh_expires_at=clock() + REFRESH_TOKEN_LIFETIME if refresh_token else None)
            if store is not None:
                try:
                    store.save(stored)
                except OSError as exc:
                    raise TokenFileError(f"token file {store.path}: cannot write: {exc.strerror or exc}") from None
        return cls(transport, appkey=appkey, secret_key=secret_key, lang=lang, tokens=stored,
                   token_file=store, record_auth=record_auth, clock=clock, record_write=record_write,
                   account=account)

    def start_cycle(self) -> None:
        self._unproven = False
        if self._unsaved:
            with self._lock:  # a failed write is tried again each cycle: no API call needed
                if self._unsaved:
                    self._save()

    def progressed(self) -> None:
        self._unproven = False

    def settle(self, timeout: float) -> None:
        """Wait (bounded) for a token refresh in flight: once the gateway has rotated the refresh token, the
        old one is spent, and exiting before the new one is saved would lose the only valid token."""
        if self._lock.acquire(timeout=timeout):
            self._lock.release()

    def release(self, timeout: float) -> bool:
        if not self._lock.acquire(timeout=timeout):
            return False
        try:
            if self._unsaved and not self._save():
                return False
            self._released = True
            return True
        finally:
            self._lock.release()

    def renewed(self) -> bool:
        if self._dead is None or self.token_file is None:
            return False
        return self.token_file.stamp() not in (None, self._file_stamp)

    def expiries(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.tokens.access_expires_at:
            out["access"] = self.tokens.access_expires_at
        if self.tokens.refresh_expires_at:
            out["refresh"] = self.tokens.refresh_expires_at
        return out

    def sign(self, path: str, params: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
        expires = self.tokens.access_expires_at
        if not self.tokens.access_token or (expires is not None and expires - REFRESH_MARGIN < self.clock()):
            self.refresh()
        headers = {"x-access-key": self.secret_key, "Authorization": f"Bearer {self.tokens.access_token}"}
        return headers, {"appkey": self.appkey, "lang": self.lang, **params}

    def recover(self) -> bool:
        if self._unproven:
            return False
        self.refresh()
        return True

    def refresh(self, *, reuse: bool = True) -> None:
        """Renew the tokens; with `reuse`, tokens another process renewed meanwhile serve instead (the probe,
        which must see a refresh answer, passes False)."""
        with self._lock, self._file_held():
            if self._released:
                raise CredentialError("refreshToken", "released", "credentials handed over to a reloaded account")
            if self._adopt_newer_file() and reuse and self._usable():
                # Another process sharing the file (the exporter, a backfill, `authorize`) renewed while we
                # waited for it: its access token serves; refreshing too would only rotate the refresh token again.
                return
            if self._dead is not None:
                raise self._dead
            if not self.tokens.refresh_token:
                raise self._die(CredentialError("refreshToken", "no_refresh_token",
                                                "no refresh token: run `isolarcloud-exporter authorize`"))
            try:
                self._refresh_once()
            except CredentialError:
                # Someone else may have rotated the token and written the file (another exporter, the
                # `authorize` command): adopt theirs and try once more before giving up.
                if not self._adopt_newer_file(force=True):
                    raise
                self._refresh_once()

    def _file_held(self) -> contextlib.AbstractContextManager[bool]:
        if self.token_file is None:
            return contextlib.nullcontext(False)
        return self.token_file.held(FILE_LOCK_WAIT)

    def _usable(self) -> bool:
        expires = self.tokens.access_expires_at
        return bool(self.tokens.access_token) and (expires is None or expires - REFRESH_MARGIN > self.clock())

    def _refresh_once(self) -> None:
        body = {"appkey": self.appkey, "refresh_token": self.tokens.refresh_token}
        try:
            fresh = self._token_call(REFRESH_PATH, body, "refresh")
        except CredentialError as exc:
            raise self._die(exc) from None
        self._store(fresh)
        self._unproven = True

    def _token_call(self, path: str, body: dict[str, Any], kind: str) -> dict[str, Any]:
        """A token endpoint: the new tokens, or the typed error; counted either way."""
        endpoint = endpoint_name(path)
        try:
            doc = self.transport.post_document(path, body, {"x-access-key": self.secret_key})
            fresh = _token_fields(doc)
            if not fresh.get("access_token"):
                check_result(endpoint, doc)
                # result_code "1" without a token: the reason is in result_data.code (e.g. 5 invalid token).
                code = "".join(ch for ch in str(_data(doc).get("code", "none")) if ch.isalnum() or ch == "-")[:8]
                raise CredentialError(endpoint, f"{kind}_code_{code}",
                                      f"{kind} refused (code {code}): re-authorise with `isolarcloud-exporter "
                                      "authorize`")
        except ApiError as exc:
            self.transport.record(endpoint, exc.result)
            self.record_auth(kind, "failure")
            raise
        self.transport.record(endpoint, "1")
        self.record_auth(kind, "success")
        return fresh

    def _store(self, fresh: dict[str, Any]) -> None:
        now = self.clock()
        expires_in = _number(fresh.get("expires_in"))
        self.tokens.access_token = str(fresh["access_token"])
        # expires_in was seen negative right after authorisation: treat a non-positive value as unknown and
        # rely on the rejected-token path instead of refreshing on every call.
        self.tokens.access_expires_at = now + expires_in if expires_in and expires_in > 10 else None
        if fresh.get("refresh_token"):
            self.tokens.refresh_token = str(fresh["refresh_token"])
            self.tokens.refresh_expires_at = now + REFRESH_TOKEN_LIFETIME
        self._dead = None
        register_secrets([self.tokens.access_token, self.tokens.refresh_token])
        saved = self._save() if self.token_file is not None else False
        # Never the tokens themselves: when and until when, so that an operator can follow rotations.
        until = _iso(self.tokens.access_expires_at) if self.tokens.access_expires_at else "unknown"
        self.log.info("access token renewed (valid until %s)%s%s", until,
                      "; refresh token rotated" if fresh.get("refresh_token") else "",
                      f"; saved to {self.token_file.path}" if saved else "")

    def _save(self) -> bool:
        """Persist the tokens; a failure is counted and logged, and the write is tried again next cycle."""
        assert self.token_file is not None
        try:
            self.token_file.save(self.tokens)
        except OSError as exc:
            error = f"cannot write {self.token_file.path}: {exc.strerror or exc}"
            if not self._unsaved:
                self.log.error("token file %s; the rotated refresh token lives only in memory until a write "
                               "succeeds (tried again every refresh cycle)", error)
            self._unsaved = True
            if self.record_write is not None:
                self.record_write(error)
            return False
        self._file_stamp = self.token_file.stamp()
        if self._unsaved:
            self.log.info("token file %s written again", self.token_file.path)
        self._unsaved = False
        if self.record_write is not None:
            self.record_write(None)
        return True

    def _die(self, exc: CredentialError) -> CredentialError:
        self._dead = exc
        self._file_stamp = self.token_file.stamp() if self.token_file else None
        return exc

    def _adopt_newer_file(self, force: bool = False) -> bool:
        """Reload tokens when the file changed under us (re-authorised, or rotated by another owner)."""
        if self.token_file is None:
            return False
        stamp = self.token_file.stamp()
        if stamp is None or (stamp == self._file_stamp and not force):
            return False
        try:
            stored = self.token_file.load()
        except TokenFileError as exc:
            log.error("%s", exc)
            self._file_stamp = stamp  # read it again only once it changes again
            return False
        self._file_stamp = stamp
        if stored is None or stored.refresh_token == self.tokens.refresh_token:
            return False
        self.log.info("token file changed on disk; using the refresh token found there")
        register_secrets([stored.access_token, stored.refresh_token])
        self.tokens = stored
        self._dead = None
        return True

    def exchange_code(self, code: str, redirect_uri: str) -> dict[str, Any]:
        """One-time authorisation code → tokens, persisted at once (the code cannot be used twice)."""
        body = {"appkey": self.appkey, "grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri}
        with self._lock, self._file_held():  # a running exporter's renewal in flight finishes first
            fresh = self._token_call(TOKEN_PATH, body, "code_exchange")
            self._store(fresh)
        return fresh


def authorize_url(web_host: str, cloud_id: int, application_id: str, redirect_uri: str) -> str:
    """The owner's consent page: a route of the web portal's single-page app (after `#/`). `web_host` is a host
    name (HTTPS) or a base URL with its scheme (a simulator on plain HTTP)."""
    base = web_host.rstrip("/") if "://" in web_host else f"https://{web_host}"
    return (f"{base}/#/authorized-app?cloudId={cloud_id}&applicationId={quote(application_id)}"
            f"&redirectUrl={quote(redirect_uri, safe='')}")


class LoginAuth:
    """Legacy user-level apps: `/openapi/login` gives a token that travels in the body, 24 h sliding."""

    mode = "login"

    def __init__(self, transport: Gateway, *, appkey: str, secret_key: str, lang: str, user_account: str,
                 user_password: str, record_auth: AuthRecorder, clock: Callable[[], float] = time.time,
                 account: str = "") -> None:
        self.transport = transport
        self.appkey = appkey
        self.secret_key = secret_key
        self.lang = lang
        self.user_account = user_account
        self.user_password = user_password
        self.record_auth = record_auth
        self.clock = clock
        self.token: str | None = None
        self.token_expires_at: float | None = None
        self._unproven = False  # logged in during this cycle, no successful call since
        self._lock = threading.Lock()
        self._released = False
        self.log = logging.LoggerAdapter(log, {"account": account})

    def start_cycle(self) -> None:
        self._unproven = False

    def progressed(self) -> None:
        self._unproven = False

    def renewed(self) -> bool:
        return False  # the password comes from the configuration; a reload that changes it restarts the account

    def release(self, timeout: float) -> bool:
        """No token is persisted; only stop logging in, so that two logins never race for one account."""
        with self._lock:
            self._released = True
        return True

    def settle(self, timeout: float) -> None:
        """A login token is not persisted: nothing can be lost by exiting mid-login."""

    def expiries(self) -> dict[str, float]:
        return {"login": self.token_expires_at} if self.token and self.token_expires_at else {}

    def _headers(self) -> dict[str, str]:
        return {"x-access-key": self.secret_key, "sys_code": "901"}

    def sign(self, path: str, params: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
        if not self.token:
            self.login()
        # Each call slides the token's 24 h validity forward.
        self.token_expires_at = self.clock() + LOGIN_TOKEN_LIFETIME
        return self._headers(), {"appkey": self.appkey, "token": self.token, "lang": self.lang, **params}

    def recover(self) -> bool:
        if self._unproven:
            return False
        self.token = None
        self.login()
        return True

    def login(self) -> None:
        with self._lock:
            if self._released:
                raise CredentialError("login", "released", "credentials handed over to a reloaded account")
            body = {"appkey": self.appkey, "user_account": self.user_account,
                    "user_password": self.user_password, "lang": self.lang}
            try:
                doc = self.transport.post_document(LOGIN_PATH, body, self._headers())
                check_result("login", doc)
                data = _data(doc)
                state = str(data.get("login_state", "")).strip()
                token = data.get("token")
                # A failed login can still say result_code "1": only login_state 1 plus a token is success.
                if state != "1" or not isinstance(token, str) or not token:
                    reason = LOGIN_STATES.get(state, f"login_state {state or 'missing'}")
                    label = f"login_state_{state}" if state in LOGIN_STATES else "no_token"
                    raise CredentialError("login", label, f"login refused: {reason}")
            except ApiError as exc:
                self.transport.record("login", exc.result)
                self.record_auth("login", "failure")
                raise
            self.transport.record("login", "1")
            self.record_auth("login", "success")
            register_secrets([token])
            self.token = token
            self.token_expires_at = self.clock() + LOGIN_TOKEN_LIFETIME
            self._unproven = True
            self.log.info("logged in (token valid for 24 h after the last call)")


def _data(doc: dict[str, Any]) -> dict[str, Any]:
    data = doc.get("result_data")
    return data if isinstance(data, dict) else {}


def _token_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """Tokens from `result_data`, else the top level: the sources disagree on the shape."""
    data = _data(doc)
    source = data if data.get("access_token") else doc
    return {k: source.get(k) for k in ("access_token", "refresh_token", "expires_in")}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None

