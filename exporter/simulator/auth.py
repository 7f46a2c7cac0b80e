"""Token bookkeeping for both auth modes: OAuth2 (authorization code, rotating refresh tokens) and the
legacy user-level login (24 h sliding token)."""

from __future__ import annotations

import collections
import secrets
import string
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CODE_TTL = 600.0
LOCK_AFTER = 5  # wrong passwords in a row before login_state "2"
LOCK_SECONDS = 1800.0


@dataclass
class _Refresh:
    expires: float
    access_token: str


@dataclass
class _User:
    account: str
    password: str
    user_id: str
    err_times: int = 0
    locked_until: float = 0.0


class Auth:
    def __init__(
        self,
        clock: Callable[[], float],
        users: dict[str, str],
        access_ttl: float,
        refresh_ttl: float,
        login_ttl: float,
        login_limit: tuple[int, float] | None,
        revoke_access_on_refresh: bool,
        access_calls: int | None = None,
        login_calls: int | None = None,
    ) -> None:
        self.clock = clock
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.login_ttl = login_ttl
        self.login_limit = login_limit
        self.revoke_access_on_refresh = revoke_access_on_refresh
        # A gateway that revokes tokens early: each token dies after serving this many calls (None: never).
        self.access_calls = access_calls
        self.login_calls = login_calls
        self._uses: collections.Counter[str] = collections.Counter()
        self.users = {
            acct: _User(acct, pw, str(100_000 + i * 7)) for i, (acct, pw) in enumerate(sorted(users.items()))
        }
        self.auth_user = 65199
        self._lock = threading.Lock()
        self._codes: dict[str, tuple[str, float]] = {}
        self._access: dict[str, float] = {}
        self._refresh: dict[str, _Refresh] = {}
        self.spent_refresh: set[str] = set()
        self._login: dict[str, float] = {}
        self._login_attempts: collections.deque[float] = collections.deque()

    # OAuth2 --------------------------------------------------------------------------------------
    def create_code(self, redirect_uri: str) -> str:
        code = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(6))
        with self._lock:
            self._codes[code] = (redirect_uri, self.clock() + CODE_TTL)
        return code

    def issue(self) -> dict[str, Any]:
        now = self.clock()
        access, refresh = str(uuid.uuid4()), str(uuid.uuid4())
        with self._lock:
            self._access[access] = now + self.access_ttl
            self._refresh[refresh] = _Refresh(now + self.refresh_ttl, access)
        return {"access_token": access, "token_type": "bearer", "refresh_token": refresh,
                "expires_in": int(self.access_ttl)}

    def exchange(self, code: str, redirect_uri: str) -> str:
        """Validate and consume an authorization code; returns the token field table's result_code."""
        with self._lock:
            entry = self._codes.pop(code, None)  # single use, even when the exchange then fails
        if entry is None or entry[1] < self.clock():
            return "2"
        if entry[0] != redirect_uri:
            return "5"
        return "1"

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        """result_data of refreshToken; `code` per its field table, tokens only on success."""
        now = self.clock()
        with self._lock:
            entry = self._refresh.get(refresh_token)
            if entry is None:
                return {"code": "5"}
            if entry.expires < now:
                del self._refresh[refresh_token]
                return {"code": "-2"}
            del self._refresh[refresh_token]
            self.spent_refresh.add(refresh_token)
            if self.revoke_access_on_refresh:
                # Spring-style token services drop the access token bound to the used refresh token.
                self._access.pop(entry.access_token, None)
        data = self.issue()
        data["code"] = "1"
        return data

    def access_valid(self, token: str) -> bool:
        with self._lock:
            exp = self._access.get(token)
        return exp is not None and exp > self.clock()

    def use_access(self, token: str) -> bool:
        """A platform call with this Bearer token: valid, and (with `access_calls`) not yet used up."""
        if not self.access_valid(token):
            return False
        return self._use(token, self.access_calls)

    def _use(self, token: str, limit: int | None) -> bool:
        if limit is None:
            return True
        with self._lock:
            self._uses[token] += 1
            return self._uses[token] <= limit

    def expire_access(self) -> None:
        now = self.clock()
        with self._lock:
            for k in self._access:
                self._access[k] = now - 1

    # Legacy login --------------------------------------------------------------------------------
    def login_allowed(self) -> bool:
        if self.login_limit is None:
            return True
        limit, window = self.login_limit
        now = self.clock()
        with self._lock:
            while self._login_attempts and self._login_attempts[0] <= now - window:
                self._login_attempts.popleft()
            if len(self._login_attempts) >= limit:
                return False
            self._login_attempts.append(now)
        return True

    def login(self, account: str, password: str) -> dict[str, Any]:
        """result_data of /openapi/login; every value a string as in the Quick Start example."""
        now = self.clock()
        user = self.users.get(account)
        if user is None:
            return {"login_state": "-1", "user_account": account, "err_times": "0", "disable_time": None}
        with self._lock:
            if user.locked_until > now:
                return {"login_state": "2", "user_account": account, "err_times": str(user.err_times),
                        "disable_time": str(int(user.locked_until * 1000))}
            if password != user.password:
                user.err_times += 1
                state = "0"
                if user.err_times >= LOCK_AFTER:
                    user.locked_until = now + LOCK_SECONDS
                    state = "2"
                return {"login_state": state, "user_account": account, "err_times": str(user.err_times),
                        "disable_time": None}
            user.err_times = 0
            token = f"{user.user_id}_{uuid.uuid4().hex}"
            self._login[token] = now + self.login_ttl
        return {
            "user_master_org_id": "89899046", "mobile_tel": "153****5", "user_name": account.split("@")[0],
            "language": "English", "token": token, "err_times": "0", "user_id": user.user_id,
            "login_state": "1", "disable_time": None, "country_name": "China", "user_account": account,
            "user_master_org_name": "org-simulator", "email": account if "@" in account else "",
            "country_id": "1",
        }

    def login_token_valid(self, token: str) -> bool:
        """Sliding validity: every call with a live token extends it by the full ttl."""
        now = self.clock()
        with self._lock:
            exp = self._login.get(token)
            if exp is None or exp <= now:
                return False
            self._login[token] = now + self.login_ttl
        return True

    def use_login_token(self, token: str) -> bool:
        """A legacy call with this login token: valid (sliding), and (with `login_calls`) not yet used up."""
        if not self.login_token_valid(token):
            return False
        return self._use(token, self.login_calls)

    def expire_login(self) -> None:
        now = self.clock()
        with self._lock:
            for k in self._login:
                self._login[k] = now - 1
