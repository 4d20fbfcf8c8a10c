"""Domain errors raised by the stores, each with its RFC 6749 error code and a public description.

Every error carries a public :attr:`OAuthSessionsError.description`: a fixed sentence that is
safe to put in an ``error_description`` (RFC 6749 section 5.2). It never contains the token,
the session key or anything else the caller sent. Internal detail for operators goes to logs
through the exception's message, which is separate from the description.

Refresh failures are all ``invalid_grant`` ("the provided authorization grant ... or refresh
token is invalid, expired, revoked, ... or was issued to another client", RFC 6749 section
5.2), told apart by their description the way Supabase Auth tells ``refresh_token_not_found``,
``refresh_token_already_used`` and ``session_expired`` apart. Asking for more scope than was
granted is ``invalid_scope`` (RFC 6749 section 6).
"""

from __future__ import annotations

from typing import ClassVar

from .refresh_tokens import MalformedRefreshToken

__all__ = [
    "ClientMismatch",
    "DpopKeyMismatch",
    "DpopProofRequired",
    "InsufficientAal",
    "InvalidRefreshToken",
    "InvalidTarget",
    "OAuthSessionsError",
    "RefreshTokenReused",
    "ResourceAmbiguous",
    "ResourceNotAllowedScope",
    "ResourceNotGranted",
    "ScopeNeedsHigherAal",
    "ScopeNotGranted",
    "SessionExpired",
    "SessionInactive",
    "TooManyResources",
    "UnknownResource",
    "UnknownSession",
]


class OAuthSessionsError(Exception):
    """Base of the library's domain errors.

    ``description`` is public (sent to clients); the exception message is for logs and
    defaults to the description.
    """

    description: ClassVar[str] = "the request could not be completed"
    #: The RFC 6749 section 5.2 ``error`` code this failure is sent as.
    error: ClassVar[str] = "invalid_grant"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.description)


class InvalidRefreshToken(OAuthSessionsError, MalformedRefreshToken):
    """The string is not a refresh token, or its tag does not verify under the session key.

    A forged token for a real session gets the same description as a token of an unknown
    session, so the answer does not confirm that a guessed session id exists.
    """

    description = "refresh token not found"


class UnknownSession(OAuthSessionsError):
    """The token names a session that does not exist (revoked, purged or never made)."""

    description = "refresh token not found"


class RefreshTokenReused(OAuthSessionsError):
    """An old refresh token came back: the session has been revoked (RFC 9700 section 4.14.2)."""

    description = "refresh token already used"


class SessionExpired(OAuthSessionsError):
    """The session reached ``not_after``; it never refreshes again."""

    description = "session expired"


class SessionInactive(OAuthSessionsError):
    """The session was not refreshed within the inactivity timeout."""

    description = "session expired due to inactivity"


class ClientMismatch(OAuthSessionsError):
    """The token was issued to another client (RFC 6749 section 6: "bound to the client")."""

    description = "refresh token was issued to another client"


class InsufficientAal(OAuthSessionsError):
    """The session's aal is now below what the token would need (e.g. after a factor removal):
    the client's ``min_aal``, or the audience's (``AUDIENCE_MIN_AAL``, the registered resource
    server's ``min_aal``)."""

    description = "session no longer meets the authentication level the client or resource requires"


class ScopeNotGranted(OAuthSessionsError):
    """The refresh asked for scope beyond the grant, or for a scope the session's aal cannot reach."""

    description = "requested scope exceeds the scope granted to this session"
    error = "invalid_scope"


class ScopeNeedsHigherAal(ScopeNotGranted):
    """A scope asked for by name needs a higher aal than the session has now."""

    description = "requested scope requires a higher authentication level than the session has"


class InvalidTarget(OAuthSessionsError):
    """A ``resource`` parameter the server will not issue a token for (RFC 8707 section 2).

    Section 2: a value that is not an absolute URI, or that has a fragment, is refused with
    ``invalid_target``; so is a resource this server does not know or did not grant.
    """

    description = "resource must be an absolute URI without a fragment (RFC 8707 section 2)"
    error = "invalid_target"


class UnknownResource(InvalidTarget):
    """The resource is not a registered resource server (nor this provider's own identifier)."""

    description = "resource is not a registered resource server"


class ResourceNotGranted(InvalidTarget):
    """The token request named a resource the authorization did not grant (section 2.2)."""

    description = "resource was not granted by the authorization request"


class TooManyResources(InvalidTarget):
    """Each access token has one audience: a token request names at most one resource."""

    description = "name at most one resource per token request: each access token has one audience"


class ResourceAmbiguous(InvalidTarget):
    """The grant covers several resources and the token request named none of them."""

    description = "the grant covers several resources: name one with the resource parameter"


class ResourceNotAllowedScope(OAuthSessionsError):
    """None of the scopes asked for is one the resource server accepts."""

    description = "none of the requested scopes is allowed at the requested resource"
    error = "invalid_scope"
class DpopProofRequired(OAuthSessionsError):
    """A refresh token of a DPoP-bound session came without a proof (RFC 9449 section 5).

    Refused before anything changes: the session is not rotated and not revoked, so whoever
    lacks the key (a thief of the token) cannot end the holder's session at the token
    endpoint. Revocation (RFC 7009, ``/revoke``) still ends it by possession of the token
    alone: it can only end a session, never extend one.
    """

    description = "this refresh token is bound to a DPoP key: send a DPoP proof made with it"
    error = "invalid_dpop_proof"


class DpopKeyMismatch(OAuthSessionsError):
    """The proof was made with another key than the one the session is bound to (section 5)."""

    description = "refresh token is bound to another DPoP key"
