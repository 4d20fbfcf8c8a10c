"""``POST /oauth/revoke`` (RFC 7009): revoking a refresh token *or* an access token ends its session.

The steps, in order::

    check_request            request hygiene, a form body, nothing in the query string
    authenticate the client  the one client authentication; public clients with their client_id
    require_token            the token parameter, else 400 invalid_request
    session_of               the session behind a token this server issued (never raises):
                             a current refresh token, or an access token that verifies
    own_session              the session was issued to this client (a client can only end its own)
    revoke                   the session row is deleted; session_revoked(reason="token_revoked")
    answer                   200, empty, whatever happened (section 2.2)

An access token is a JWT that cannot be recalled on its own; ending its session is the only
way to make it fail everywhere the session is checked (introspection, UserInfo, the resource
helper), and it matches what a user expects from "sign this app out". Unknown, invalid or
foreign tokens get 200 as well (section 2.2), and a superseded refresh token revokes nothing.

A DPoP-bound refresh token (``osb1_``, RFC 9449 section 5) revokes its session without a DPoP
proof: RFC 7009 revokes by possession (plus the client's authentication, which a public
client does not have), so whoever stole such a token can end the session, though never use
it. That is kept on purpose: revoking only ends a session, and a client that lost its key must
still be able to end its own.
The token is recognised by the same verification as introspection
(:func:`oauth_sessions.core.introspection.verify_presented_token`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

from ..core.introspection import Inactive, TokenChecks, verify_presented_token
from ..storage.clients import ClientInfo
from ..storage.sessions import SessionStore
from .client_auth import ClientAuthenticator, ClientAuthFailed, client_auth_error
from .http import NO_STORE, Answer, HttpRequest, error_answer
from .request_checks import check_request

__all__ = ["RevocationEndpoint"]

_REVOKED: Final = Answer(200, (*NO_STORE.items(), ("Content-Type", "text/html; charset=utf-8")))


class RevocationEndpoint:
    """The handler: :meth:`__call__` runs the steps of the module docstring."""

    def __init__(self, authenticator: ClientAuthenticator, checks: TokenChecks,
                 sessions: SessionStore) -> None:
        self._authenticator = authenticator
        self._checks = checks
        self._sessions = sessions

    def __call__(self, request: HttpRequest) -> Answer:
        refused = check_request(request, form_only=True)
        if refused is not None:
            return refused
        try:
            client = self._authenticator.authenticate(request, allow_public=True)
        except ClientAuthFailed as exc:
            return client_auth_error(exc)
        value = request.param("token")
        if not value:
            return error_answer("invalid_request", "token is required")
        session_id = self.session_of(value)
        if session_id is not None and self.own_session(session_id, client):
            self._sessions.revoke(session_id, reason="token_revoked")
        return _REVOKED

    def session_of(self, value: str) -> uuid.UUID | None:
        """The session behind a token this server issued, or None (never raises)."""
        try:
            presented, _ = verify_presented_token(value, None, self._checks, datetime.now(UTC))
        except Inactive:
            return None
        return presented.session_id

    def own_session(self, session_id: uuid.UUID, client: ClientInfo) -> bool:
        info = self._sessions.get(session_id)
        return info is not None and info.client_id == client.id
