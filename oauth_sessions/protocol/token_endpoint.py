"""``POST /oauth/token`` (RFC 6749 section 3.2): the handler in front of the two grants.

The steps, in order::

    check_request            request hygiene, a form body, nothing in the query string
    require_grant_type       grant_type present, else 400 invalid_request
    supported_grant_type     authorization_code or refresh_token only (OAuth 2.1: no implicit,
                             password or client credentials grant), else unsupported_grant_type
    the grant                refresh_token: protocol/refresh_grant.py, called here;
                             authorization_code: Authlib's dispatch to protocol/code_grant.py.
                             Each grant's own steps start with the one client authentication
                             (protocol/client_auth.py)

Authlib stays underneath the code grant (its framework-free server,
:class:`~oauth_sessions.protocol.server.OAuthServer`). The refresh grant, the one clients call
all day, skips Authlib's dispatch, which added its own request and grant objects per call and
nothing the grant uses; both grants' errors render through
:func:`~oauth_sessions.protocol.oauth_errors.oauth2_answer`. This handler's interface is the
library's own request and answer values, so the blueprint and the WSGI app call the same code.
"""

from __future__ import annotations

from ..storage.clients import GRANT_TYPES
from .client_auth import ClientAuthFailed, client_auth_error
from .http import Answer, HttpRequest, error_answer
from .refresh_grant import RefreshGrant
from .request_checks import check_request
from .server import OAuthServer

__all__ = ["TokenEndpoint"]


class TokenEndpoint:
    """The handler: :meth:`__call__` runs the steps of the module docstring."""

    def __init__(self, server: OAuthServer) -> None:
        self._server = server
        self._refresh = RefreshGrant(
            authenticator=server.authenticator, sessions=server.sessions, settings=server.settings,
            keys=server.keys, dpop=server.dpop, resource_indicators=server.resource_indicators,
            token_endpoint_url=server.token_endpoint_url)

    def __call__(self, request: HttpRequest) -> Answer:
        refused = check_request(request, form_only=True)
        if refused is not None:
            return refused
        grant_type = request.param("grant_type")
        if not grant_type:
            return error_answer("invalid_request", "grant_type is required")
        if grant_type not in GRANT_TYPES:
            # Authlib would answer without a description.
            return error_answer("unsupported_grant_type",
                                "only authorization_code and refresh_token are supported")
        try:
            if grant_type == "refresh_token" and request.method == "POST":
                return self._refresh(request)
            answer: Answer = self._server.create_token_response(request)
        except ClientAuthFailed as exc:
            return client_auth_error(exc)
        return answer
