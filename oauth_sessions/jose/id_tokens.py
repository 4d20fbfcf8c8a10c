"""ID tokens of OpenID Connect Core 1.0 (section 2), and the ``id_token_hint`` of RP-initiated logout.

``at_hash`` and ``c_hash`` follow sections 3.1.3.6 and 3.3.2.11. The alg of ID tokens is
``OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG`` (RS256 by default, see :mod:`oauth_sessions.jose.keys`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from .jws import InvalidToken, audiences, b64encode, check_claims, sign, verify_jws
from .keys import KeySet

__all__ = [
    "ID_TOKEN_REQUIRED_CLAIMS",
    "InvalidIdTokenHint",
    "oidc_token_hash",
    "sign_id_token",
    "verify_id_token_hint",
]

#: OpenID Connect Core section 2.
ID_TOKEN_REQUIRED_CLAIMS: Final = ("iss", "sub", "aud", "exp", "iat")
_ID_TOKEN_TYPES: Final = frozenset({"jwt", "application/jwt"})

#: Hash of OIDC ``at_hash``/``c_hash`` per alg. OIDC Core 3.1.3.6 says "the hash algorithm used in
#: the alg Header Parameter"; ``EdDSA`` names none, and the practice of Authlib
#: (``create_half_hash``) and panva's oidc-provider/openid-client is SHA-512 for Ed25519, the
#: hash inside Ed25519 itself. Only Ed25519 keys are made or accepted for ``EdDSA`` here.
_HALF_HASH: Final[Mapping[str, Callable[[bytes], Any]]] = {
    "ES256": hashlib.sha256,
    "RS256": hashlib.sha256,
    "EdDSA": hashlib.sha512,
}


class InvalidIdTokenHint(InvalidToken):
    """The only exception :func:`verify_id_token_hint` raises, whatever the input."""


def oidc_token_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash`` (OIDC Core 3.1.3.6, 3.3.2.11): base64url, no padding, of the
    left-most half of the hash of the ASCII octets of ``value``, with the hash of ``alg``."""
    digest = _HALF_HASH[alg](value.encode("ascii")).digest()
    return b64encode(digest[: len(digest) // 2])


def sign_id_token(
    keyset: KeySet,
    claims: Mapping[str, Any],
    access_token: str | None = None,
    code: str | None = None,
    *,
    alg: str | None = None,
    now: datetime | None = None,
) -> str:
    """Sign an OIDC ID token (``typ: JWT``) with the active key of ``alg`` (default: the set's
    ``signing_alg``), adding ``at_hash`` / ``c_hash`` when the access token / authorization code
    is returned alongside it; both hash with the ID token's own alg (OIDC Core 3.1.3.6)."""
    missing = [c for c in ID_TOKEN_REQUIRED_CLAIMS if c not in claims]
    if missing:
        raise ValueError(f"ID token claims lack {missing}")
    key = keyset.signing_key(now, alg)
    payload = dict(claims)
    if access_token is not None:
        payload["at_hash"] = oidc_token_hash(access_token, key.record.alg)
    if code is not None:
        payload["c_hash"] = oidc_token_hash(code, key.record.alg)
    return sign(key, "JWT", payload)


def verify_id_token_hint(
    keyset: KeySet,
    token: str,
    *,
    issuer: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Verify an ``id_token_hint`` of RP-initiated logout and return its claims.

    Signature, type and issuer are checked but not expiry: OpenID Connect RP-Initiated Logout
    1.0 section 2 lets the OP accept an expired ID token it issued, since a user often logs out
    long after signing in. The caller checks ``aud`` against the client and ``sid``. ``now``
    only decides which retired keys are still accepted.
    """
    now_ts = now.timestamp() if now is not None else time.time()
    claims = verify_jws(keyset, token, InvalidIdTokenHint, _ID_TOKEN_TYPES, now_ts)
    check_claims(claims, InvalidIdTokenHint, required=("iss", "sub", "aud"), issuer=issuer)
    audiences(claims, InvalidIdTokenHint)
    return claims
