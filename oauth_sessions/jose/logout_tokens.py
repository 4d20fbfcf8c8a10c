"""Logout tokens of OpenID Connect Back-Channel Logout 1.0 (section 2.4).

Built and signed here; sent by :mod:`oauth_sessions.protocol.backchannel` when a session ends.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, Final

from .jws import sign_jwt
from .keys import KeySet

__all__ = ["BACKCHANNEL_LOGOUT_EVENT", "LOGOUT_TOKEN_LIFETIME", "LOGOUT_TOKEN_TYP",
           "build_logout_token_claims", "sign_logout_token"]

#: Section 2.4: the member of ``events`` that makes a JWT a logout token.
BACKCHANNEL_LOGOUT_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
#: Section 2.4 recommends a short life ("a few minutes"); long enough for the sender's retries.
LOGOUT_TOKEN_LIFETIME: Final = 120
#: Section 2.4.1: the explicit type keeps a logout token from passing for an ID token.
LOGOUT_TOKEN_TYP: Final = "logout+jwt"


def build_logout_token_claims(*, issuer: str, client_id: str, subject: str, session_id: str,
                              now: datetime | None = None,
                              lifetime: int = LOGOUT_TOKEN_LIFETIME) -> dict[str, Any]:
    """Claims of a logout token (section 2.4): ``iss aud iat exp jti sub sid events``.

    ``sid`` is always present, so ``backchannel_logout_session_required`` clients are served
    and the others may ignore it; ``nonce`` is never present (section 2.4 forbids it, so a
    logout token cannot be replayed as an ID token).
    """
    iat = int((now or datetime.now(UTC)).timestamp())
    return {"iss": issuer, "aud": client_id, "iat": iat, "exp": iat + lifetime,
            "jti": secrets.token_urlsafe(18), "sub": subject, "sid": session_id,
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}


def sign_logout_token(keyset: KeySet, claims: dict[str, Any]) -> str:
    """Sign ``claims`` with the active key, header ``typ: logout+jwt`` (section 2.4)."""
    return sign_jwt(keyset, claims, typ=LOGOUT_TOKEN_TYP)
