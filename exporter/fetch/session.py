"""A signed call to iSolarCloud: the auth module signs it, the transport sends it, a rejected token is renewed.

Every API-family module (plant list, real-time, …) calls through one `ApiSession` per account, so the rule for
rejected tokens lives in one place: a rejected token is renewed (OAuth2 refresh or login) and the failed request
retried, so paging resumes where it stopped; it is renewed again whenever the current token has made progress
(at least one successful call since the last renewal), because a gateway may revoke tokens early or another
client may rotate the same grant. A token rejected before any success ends the cycle: a broken account never
loops.
"""

from __future__ import annotations

from typing import Any

from .auth import Auth
from .envelope import TokenError
from .transport import Gateway


class ApiSession:
    def __init__(self, transport: Gateway, auth: Auth) -> None:
        self.transport = transport
        self.auth = auth

    @property
    def mode(self) -> str:
        """`oauth2` (platform paths, Bearer token) or `login` (legacy paths, body token)."""
        return self.auth.mode

    def call(self, path: str, params: dict[str, Any], require_list: str | None = None,
             allow_empty: bool = False) -> dict[str, Any]:
        """`result_data` of a successful call; see `Gateway.post` for `require_list` and `allow_empty`."""
        try:
            headers, body = self.auth.sign(path, params)
            data = self.transport.post(path, body, headers, require_list, allow_empty)
        except TokenError:
            if not self.auth.recover():
                raise
            headers, body = self.auth.sign(path, params)
            data = self.transport.post(path, body, headers, require_list, allow_empty)
        self.auth.progressed()
        return data

    def close(self) -> None:
        self.transport.close()
