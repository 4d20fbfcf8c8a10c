"""The Authlib authorization server, wired to this library's stores.

Authlib contributes the token-endpoint dispatch (``grant_type`` → grant class), client
authentication (``client_secret_basic``, ``client_secret_post``, ``none``; RFC 6749 section
2.3, RFC 7591 section 2; ``private_key_jwt`` comes from :mod:`oauth_sessions.protocol.client_auth`)
and the rendering of ``OAuth2Error`` responses. Grants build their token responses themselves
through :func:`oauth_sessions.protocol.tokens.build_token_response`, so Authlib's bearer-token generator
and ``save_token`` are never used.

Only two grants are registered: ``authorization_code`` (with PKCE S256) and ``refresh_token``.
There is no implicit grant, no password grant and no client credentials grant (OAuth 2.1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.oauth2.rfc6749 import InvalidClientError, OAuth2Request

from ..storage.clients import ClientStore, OAuthClientWrapper
from .client_auth import AssertionLedger, PrivateKeyJwt

if TYPE_CHECKING:
    from flask import Response

log = logging.getLogger(__name__)

__all__ = ["REFRESH_GRANT_AVAILABLE", "OAuthServer"]

try:
    from .refresh_grant import RefreshTokenGrant
except ImportError:  # pragma: no cover - only while refresh_grant.py is being written
    RefreshTokenGrant = None  # type: ignore[assignment,misc]

#: False only when ``refresh_grant.py`` cannot be imported.
REFRESH_GRANT_AVAILABLE = RefreshTokenGrant is not None


class OAuthServer(FlaskAuthorizationServer):  # type: ignore[misc]
    """One per app (``components["server"]``)."""

    def __init__(self, clients: ClientStore, *, ledger: AssertionLedger,
                 audiences: Callable[[], Sequence[str]]) -> None:
        super().__init__()
        self._clients = clients
        # Authlib asks for a default generator at registration time; ours refuses to be used
        # because every grant of this library builds its own response.
        self.register_token_generator("default", _no_generator)
        from .code_grant import AuthorizationCodeGrant

        self.register_grant(AuthorizationCodeGrant)
        if RefreshTokenGrant is not None:
            self.register_grant(RefreshTokenGrant)
        self.register_client_auth_method("private_key_jwt", PrivateKeyJwt(ledger, audiences))

    def query_client(self, client_id: Any) -> OAuthClientWrapper | None:
        info = self._clients.get(client_id) if isinstance(client_id, str) else None
        return OAuthClientWrapper(info) if info is not None else None

    def authenticate_client(self, request: OAuth2Request, methods: list[str],
                            endpoint: str = "token") -> OAuthClientWrapper:
        """Every endpoint accepts every registered method; the client's own registration
        (``check_endpoint_auth_method``) then admits exactly one of them.

        A request that carries credentials for two methods at once is refused, as the
        introspection endpoint does: RFC 6749 section 2.3 says the client "MUST NOT use more
        than one authentication method in each request" (Authlib alone would pick one).
        """
        form = request.form
        used = (request.headers.get("Authorization", "").lower().startswith("basic ")
                + ("client_secret" in form) + ("client_assertion" in form))
        if used > 1:
            raise InvalidClientError(description="use one client authentication method, not two",
                                     status_code=401)
        if "private_key_jwt" not in methods:
            methods = ["private_key_jwt", *methods]
        client: OAuthClientWrapper = super().authenticate_client(request, methods, endpoint)
        return client

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing to save: access tokens are JWTs and refresh tokens are derived from the
        session row the grant already wrote."""

    def authenticate_endpoint_client(self, methods: list[str] | None = None,
                                     endpoint: str = "token") -> OAuthClientWrapper:
        """Authenticate the client of the current Flask request (revocation, introspection)."""
        request = self.create_oauth2_request(None)
        client: OAuthClientWrapper = self.authenticate_client(
            request, methods or ["client_secret_basic", "client_secret_post", "none"], endpoint)
        return client

    def handle_response(self, status_code: int, payload: Any, headers: Any) -> Response:
        response: Response = super().handle_response(status_code, payload, headers)
        # RFC 6749 section 5.1: responses carrying tokens (or errors about them) are not cached.
        response.headers.setdefault("Cache-Control", "no-store")
        return response


def _no_generator(**_: Any) -> dict[str, Any]:
    raise RuntimeError("oauth_sessions grants build their own token responses")
