"""A back-channel logout receiver (OpenID Connect Back-Channel Logout 1.0, section 2.6).

Mount it in the relying party and register its URL with
``--backchannel-logout-uri``. ``end_local_sessions(sub, sid)`` is yours: sign out whatever
your app tied to that provider session.
"""

import json
import time
import urllib.request
from collections.abc import Callable

from flask import Blueprint, request
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

ISSUER = "https://id.example.com"
CLIENT_ID = "your-client-id"
JWKS_URL = ISSUER + "/oauth/jwks"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ALGORITHMS = ["ES256", "EdDSA", "RS256"]

_jwks: dict[str, object] = {"keys": None, "at": 0.0}
_seen_jti: dict[str, float] = {}  # use a shared store (Redis, a table) with several workers


def provider_keys(refresh: bool = False) -> KeySet:
    if refresh or _jwks["keys"] is None or time.time() - float(_jwks["at"]) > 300:
        with urllib.request.urlopen(JWKS_URL, timeout=5) as response:  # noqa: S310
            _jwks["keys"] = KeySet.import_key_set(json.load(response))
            _jwks["at"] = time.time()
    return _jwks["keys"]  # type: ignore[return-value]


def verify_logout_token(token: str) -> dict:
    """The token's claims, or JoseError/ValueError; OSError when the JWKS cannot be fetched."""
    try:
        decoded = jwt.decode(token, provider_keys(), algorithms=ALGORITHMS)
    except InvalidKeyIdError:  # signed with a key newer than our copy: re-fetch once
        decoded = jwt.decode(token, provider_keys(refresh=True), algorithms=ALGORITHMS)
    if decoded.header.get("typ") != "logout+jwt":
        raise ValueError("not a logout token")
    claims = decoded.claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": CLIENT_ID},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
        sid={"essential": True},
    ).validate(claims)
    if LOGOUT_EVENT not in (claims.get("events") or {}) or "nonce" in claims:
        raise ValueError("not a logout token")
    if claims["jti"] in _seen_jti:
        raise ValueError("logout token replayed")
    _seen_jti[claims["jti"]] = claims["exp"]
    return claims


def logout_receiver(end_local_sessions: Callable[[str, str], None]) -> Blueprint:
    bp = Blueprint("backchannel_logout", __name__)

    @bp.post("/backchannel-logout")
    def receive():  # type: ignore[no-untyped-def]
        headers = {"Cache-Control": "no-store"}
        try:
            claims = verify_logout_token(request.form.get("logout_token", ""))
        except (JoseError, ValueError):
            return {"error": "invalid_request"}, 400, headers  # section 2.8: refused, final
        except OSError:
            # JWKS unreachable: a 5xx makes the provider retry later.
            return {"error": "temporarily_unavailable"}, 503, headers
        end_local_sessions(claims["sub"], claims["sid"])
        return "", 200, headers

    return bp
