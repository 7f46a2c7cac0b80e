"""A signed call to iSolarCloud: the auth module signs it, the transport sends it, a rejected token is renewed.

Every API-family module (plant list, real-time, …) calls through one `ApiSession` per account, so the rule for
rejected tokens lives in one place: within a refresh cycle the token is renewed (OAuth2 refresh or login) at
most once and the failed request retried once, so paging resumes where it stopped and a broken account can
never loop.
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

    def call(self, path: str, params: dict[str, Any], require_list: str | None = None) -> dict[str, Any]:
        """`result_data` of a successful call; see `Gateway.post` for `require_list`."""
        try:
            headers, body = self.auth.sign(path, params)
            return self.transport.post(path, body, headers, require_list)
        except TokenError:
            if not self.auth.recover():
                raise
        headers, body = self.auth.sign(path, params)
        return self.transport.post(path, body, headers, require_list)

    def close(self) -> None:
        self.transport.close()
