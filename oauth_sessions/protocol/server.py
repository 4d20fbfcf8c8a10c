"""The Authlib authorization server underneath the token endpoint, wired to this library's stores.

Authlib contributes the ``grant_type`` dispatch to the grant classes and the rendering of its
``OAuth2Error`` answers; nothing else. It is Authlib's framework-free server, fed the
handler's :class:`~oauth_sessions.protocol.http.HttpRequest` and answering an
:class:`~oauth_sessions.protocol.http.Answer`, so the token endpoint knows no Flask. Client
authentication is :class:`~oauth_sessions.protocol.client_auth.ClientAuthenticator`, the one
every endpoint uses (Authlib's own is never called). Grants build their token responses
themselves through :func:`oauth_sessions.protocol.tokens.build_token_response`, so Authlib's
bearer-token generator and ``save_token`` are never used.

Only one grant is registered: ``authorization_code`` (with PKCE S256). ``refresh_token`` is
answered by :class:`~oauth_sessions.protocol.refresh_grant.RefreshGrant`, which the token
endpoint calls itself (the hot grant, for which Authlib's dispatch was overhead only); its
errors render through the same :func:`~oauth_sessions.protocol.oauth_errors.oauth2_answer`.
There is no implicit grant, no password grant and no client credentials grant (OAuth 2.1).
The code grant finds the stores and the settings on the server (``self.server``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload

from ..core.settings import Settings
from ..storage.authorizations import AuthorizationStore
from ..storage.clients import ClientStore, OAuthClientWrapper
from ..storage.sessions import SessionStore
from ..storage.signing_keys import KeyStore
from .client_auth import ClientAuthenticator
from .code_grant import AuthorizationCodeGrant
from .dpop import DpopChecker
from .http import Answer, HttpRequest
from .oauth_errors import oauth2_answer
from .resource_indicators import ResourceIndicators

__all__ = ["HostClaims", "OAuthServer", "TokenRequest"]

#: The host's claims of a user for granted scopes (``HostAdapter.userinfo``).
HostClaims = Callable[[uuid.UUID, Sequence[str]], Mapping[str, Any]]


class TokenRequest(OAuth2Request):  # type: ignore[misc]
    """Authlib's request over a handler's :class:`HttpRequest` (kept as ``.http``)."""

    def __init__(self, http: HttpRequest) -> None:
        # The scheme only matters to Authlib's transport check, which this library leaves to
        # the deployment (TLS ends in front of the app; the issuer setting says https).
        super().__init__(http.method, "https://oauth-sessions.invalid/token", headers=http.headers)
        self.http = http
        self.payload = BasicOAuth2Payload(dict(http.params))

    @property
    def form(self) -> Mapping[str, str]:
        return self.http.params

    @property
    def args(self) -> Mapping[str, str]:
        return dict(self.http.query)


class OAuthServer(AuthorizationServer):  # type: ignore[misc]
    """One per app (``services.server``)."""

    def __init__(self, *, clients: ClientStore, authenticator: ClientAuthenticator,
                 sessions: SessionStore, authorizations: AuthorizationStore, keys: KeyStore,
                 settings: Settings, dpop: DpopChecker,
                 resource_indicators: ResourceIndicators,
                 host_claims: HostClaims | None = None) -> None:
        super().__init__()
        self.clients = clients
        self.authenticator = authenticator
        self.sessions = sessions
        self.authorizations = authorizations
        self.keys = keys
        self.settings = settings
        self.resource_indicators = resource_indicators
        #: Where the ID token's requested claims come from (OIDC Core 5.5); none without it.
        self.host_claims = host_claims
        self.dpop = dpop
        #: The ``htu`` every proof at the token endpoint names (RFC 9449 section 4.3 step 9):
        #: the URL discovery publishes, whatever Host header a proxy passed on.
        self.token_endpoint_url = settings.endpoint_url("/token")
        self.register_grant(AuthorizationCodeGrant)

    def query_client(self, client_id: Any) -> OAuthClientWrapper | None:
        info = self.clients.get(client_id) if isinstance(client_id, str) else None
        return OAuthClientWrapper(info) if info is not None else None

    def authenticate_client(self, request: TokenRequest, methods: list[str],
                            endpoint: str = "token") -> OAuthClientWrapper:
        """The one client authentication; a failure propagates as ``ClientAuthFailed``, which
        the token handler renders like every other endpoint's."""
        info = self.authenticator.authenticate(request.http, allow_public="none" in methods)
        return OAuthClientWrapper(info)

    def create_oauth2_request(self, request: HttpRequest) -> TokenRequest:
        return TokenRequest(request)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing to save: access tokens are JWTs and refresh tokens are derived from the
        session row the grant already wrote."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's hook points; the library's own events are the session signals."""

    def handle_response(self, status_code: int, payload: Any, headers: Any) -> Answer:
        return oauth2_answer(status_code, payload, headers)
