"""DPoP proofs for the tests, made the way a client library makes them (RFC 9449 section 4.2).

Signed with joserfc's algorithm models (as the library verifies), so a test can vary every part
of a proof: header members, claims, the key, the signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

from joserfc import jwk
from joserfc.jwa import EdDSAAlgorithm, ESAlgorithm, JWSAlgModel, RSAAlgorithm, RSAPSSAlgorithm

from oauth_sessions.jose.dpop import jwk_thumbprint

MODELS: dict[str, JWSAlgModel] = {
    "ES256": ESAlgorithm("ES256", "P-256", 256),
    "ES384": ESAlgorithm("ES384", "P-384", 384),
    "EdDSA": EdDSAAlgorithm(),
    "RS256": RSAAlgorithm(256),
    "PS256": RSAPSSAlgorithm(256),
}
_RSA: list[jwk.RSAKey] = []


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


class DpopKey:
    """A client's DPoP key pair and the proofs it signs."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        if alg in ("ES256", "ES384"):
            self.key: jwk.Key = jwk.ECKey.generate_key("P-256" if alg == "ES256" else "P-384")
        elif alg == "EdDSA":
            self.key = jwk.OKPKey.generate_key("Ed25519")
        else:
            if not _RSA:  # RSA keys are slow to make: one per test run
                _RSA.append(jwk.RSAKey.generate_key(2048))
            self.key = _RSA[0]
        self.public = self.key.as_dict(private=False)

    @property
    def jkt(self) -> str:
        return jwk_thumbprint(self.public)

    def sign_raw(self, signing_input: str) -> bytes:
        return MODELS[self.alg].sign(signing_input.encode("ascii"), self.key)

    def sign(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        signing_input = f"{segment(header)}.{segment(claims)}"
        return f"{signing_input}.{b64(self.sign_raw(signing_input))}"

    def proof(self, method: str, url: str, *, access_token: str | None = None,
              nonce: str | None = None, iat: float | None = None, header: dict[str, Any] | None = None,
              **claims: Any) -> str:
        body: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url,
                                "iat": int(time.time() if iat is None else iat)}
        if access_token is not None:
            body["ath"] = b64(hashlib.sha256(access_token.encode()).digest())
        if nonce is not None:
            body["nonce"] = nonce
        body.update(claims)
        head = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public, **(header or {})}
        return self.sign(head, body)
