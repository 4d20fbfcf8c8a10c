"""Access tokens: the JWT profile of RFC 9068, with this project's session claims.

Built and signed at the token endpoint, verified by introspection's local checks and the
resource helper. The session behind ``sid`` is looked at by the caller
(:mod:`oauth_sessions.core.introspection`), not here.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from .jws import Claims, InvalidToken, audiences, check_claims, sign, verify_jws
from .keys import KeySet

__all__ = [
    "ACCESS_TOKEN_REQUIRED_CLAIMS",
    "ACR_VALUES",
    "InvalidAccessToken",
    "build_access_token_claims",
    "sign_access_token",
    "verify_access_token",
]

#: RFC 9068 section 2.2 requires ``aud`` too; this project also needs ``sid`` and ``client_id``.
ACCESS_TOKEN_REQUIRED_CLAIMS: Final = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid")
ACR_VALUES: Final = frozenset({"aal1", "aal2", "aal3"})
#: RFC 9068 section 4: ``typ`` must be ``at+jwt`` (the ``application/`` form is the same type).
_ACCESS_TOKEN_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})


class InvalidAccessToken(InvalidToken):
    """The only exception :func:`verify_access_token` raises, whatever the input."""


def build_access_token_claims(
    *,
    issuer: str,
    subject: str,
    audience: str | Sequence[str],
    client_id: str,
    scope: str,
    session_id: str,
    aal: str,
    amr: list[str],
    auth_time: int,
    lifetime: int,
    now: datetime | None = None,
    jti: str | None = None,
    dpop_jkt: str | None = None,
) -> Claims:
    """The claims of an RFC 9068 access token (section 2.2) plus this project's session claims.

    ``dpop_jkt`` binds the token to a DPoP key: ``cnf.jkt`` (RFC 9449 section 6.1).

    ``acr`` is the aal string itself ("aal1" / "aal2" / "aal3"): relying parties compare the
    token's assurance without a mapping table, and ``aal`` is kept for introspection.
    """
    if aal not in ACR_VALUES:
        raise ValueError(f"aal must be one of {sorted(ACR_VALUES)}, got {aal!r}")
    if lifetime <= 0:
        raise ValueError("lifetime must be a positive number of seconds")
    iat = int((now or datetime.now(UTC)).timestamp())
    claims: Claims = {
        "iss": issuer,
        "sub": subject,
        "aud": audience if isinstance(audience, str) else list(audience),
        "exp": iat + lifetime,
        "iat": iat,
        "jti": jti or secrets.token_urlsafe(18),
        "client_id": client_id,
        "scope": scope,
        "sid": session_id,
        "aal": aal,
        "acr": aal,
        "amr": list(amr),
        "auth_time": int(auth_time),
    }
    if dpop_jkt is not None:
        claims["cnf"] = {"jkt": dpop_jkt}
    return claims


def sign_access_token(
    keyset: KeySet, claims: Mapping[str, Any], *, now: datetime | None = None
) -> str:
    """Sign an access token with the active key, header ``typ: at+jwt`` (RFC 9068 section 2.1).

    The explicit type keeps an access token from being accepted where an ID token is expected
    and the other way round (RFC 8725 section 3.11).
    """
    missing = [c for c in ACCESS_TOKEN_REQUIRED_CLAIMS if c not in claims]
    if missing:
        raise ValueError(f"access token claims lack {missing}")
    return sign(keyset.signing_key(now), "at+jwt", claims)


def verify_access_token(
    keyset: KeySet,
    token: str,
    *,
    issuer: str,
    audience: str | None = None,
    leeway: int = 0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Verify an RFC 9068 access token (section 4) and return its claims.

    Raises :class:`InvalidAccessToken` and nothing else, for any input. A token is expired *at*
    ``exp`` (RFC 7519 4.1.4: "on or after"), not yet valid while ``nbf > now``; ``leeway``
    seconds absorb clock skew between workers. ``audience`` given: it must be in ``aud``.
    The session behind ``sid`` is not looked at here: that is the caller's next step.
    """
    now_ts = now.timestamp() if now is not None else time.time()
    claims = verify_jws(keyset, token, InvalidAccessToken, _ACCESS_TOKEN_TYPES, now_ts)
    check_claims(claims, InvalidAccessToken, required=ACCESS_TOKEN_REQUIRED_CLAIMS, issuer=issuer)
    named = audiences(claims, InvalidAccessToken)
    if now_ts >= claims["exp"] + leeway:
        raise InvalidAccessToken("token expired")
    nbf = claims.get("nbf")
    if nbf is not None and nbf > now_ts + leeway:
        raise InvalidAccessToken("token not yet valid (nbf)")
    if audience is not None and audience not in named:
        raise InvalidAccessToken("audience mismatch")
    return claims
