"""The JWK Set a ``private_key_jwt`` client registers: public EC, RSA or OKP keys, a few of them."""

from __future__ import annotations

import json
from typing import Any, Final, cast

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

__all__ = ["MAX_KEYS", "parse_client_jwks"]

MAX_KEYS: Final = 10


def parse_client_jwks(value: Any) -> str:
    """Validate a client's registered JWK Set (public keys only) and return its JSON text."""
    data = json.loads(value) if isinstance(value, str) else value
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("jwks must be a JWK Set object with a keys array")
    keys = data["keys"]
    if not 1 <= len(keys) <= MAX_KEYS:
        raise ValueError(f"jwks must hold 1 to {MAX_KEYS} keys")
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in {"EC", "RSA", "OKP"}:
            raise ValueError("jwks keys must be EC, RSA or OKP public keys")
        if {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key):
            raise ValueError("jwks must contain public keys only")
    try:
        KeySet.import_key_set(cast(Any, data))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError("jwks holds a key that cannot be imported") from exc
    return json.dumps(data, separators=(",", ":"), sort_keys=True)
