"""DPoP proofs (RFC 9449): the checks of section 4.3 on one proof JWT, and key thumbprints.

A DPoP proof is a JWT the client signs with a key of its own, whose public half travels in the
proof's ``jwk`` header. :func:`verify_dpop_proof` runs the checks of section 4.3 that need
nothing but the proof and the request, in this order, each failing with
:class:`InvalidDpopProof`:

1. size and nesting of header and payload are bounded before anything is parsed (the same
   limits as for ``client_assertion``);
2. three base64url segments, header and payload JSON objects;
3. ``typ`` is ``dpop+jwt`` (step 4);
4. ``alg`` is one of :data:`DPOP_ALGS`: asymmetric only, so ``none`` and HMAC never reach a
   verifier (step 5);
5. ``jwk`` is a public key of the type ``alg`` needs, with no private member (step 7);
6. the signature verifies under that key (step 6);
7. ``jti``, ``htm``, ``htu`` and ``iat`` are present (step 3); ``htm`` equals the request's
   method (step 8); ``htu`` equals the request's URI, both without query and fragment and
   normalised by RFC 3986 sections 6.2.2 and 6.2.3 (step 9);
8. ``iat`` lies within ``iat_window`` seconds of now, on either side (step 11);
9. at a resource server, ``ath`` equals the base64url SHA-256 of the access token (step 12).

What needs state stays with the caller (:mod:`oauth_sessions.protocol.dpop`): the ``nonce``
(step 10, section 8) and one-time use of ``jti`` (section 11.1).

The key's identity is its RFC 7638 thumbprint (:func:`jwk_thumbprint`), what access tokens
carry in ``cnf.jkt`` (section 6.1). Pure code: no Flask, no database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from joserfc import jwk
from joserfc.errors import JoseError
from joserfc.jwa import (
    EdDSAAlgorithm,
    ESAlgorithm,
    JWSAlgModel,
    RSAAlgorithm,
    RSAPSSAlgorithm,
)

from .jws import is_text, json_depth_within, low_s_form

__all__ = [
    "DPOP_ALGS",
    "MAX_PROOF_LENGTH",
    "DpopProof",
    "InvalidDpopProof",
    "access_token_hash",
    "jwk_thumbprint",
    "normalize_htu",
    "verify_dpop_proof",
]

#: Longest proof accepted: an RSA-4096 ``jwk`` header and signature fit in under 2 KiB.
MAX_PROOF_LENGTH: Final = 4096
_MAX_HEADER_SEGMENT: Final = 2048
_MAX_PAYLOAD_SEGMENT: Final = 1024
#: RFC 9449 section 4.2 leaves ``jti`` free; 16 random bytes are enough, 128 characters plenty.
_MAX_JTI: Final = 128
_MIN_RSA_BITS: Final = 2048

_MODELS: Final[Mapping[str, JWSAlgModel]] = {
    "ES256": ESAlgorithm("ES256", "P-256", 256),
    "ES384": ESAlgorithm("ES384", "P-384", 384),
    "EdDSA": EdDSAAlgorithm(),
    "RS256": RSAAlgorithm(256),
    "PS256": RSAPSSAlgorithm(256),
}
#: What a proof may be signed with: exactly the algorithms verified here, advertised as
#: ``dpop_signing_alg_values_supported`` (section 5.1). No ``none``, no HMAC (section 4.3 step 5).
DPOP_ALGS: Final = tuple(_MODELS)
_KEY_TYPES: Final = {"ES256": "EC", "ES384": "EC", "EdDSA": "OKP", "RS256": "RSA", "PS256": "RSA"}
#: Members of a public JWK of the types above; a private member (``d p q dp dq qi oth k``) or
#: anything unknown makes the proof invalid (section 4.3 step 7: "MUST NOT contain a private key").
_PUBLIC_MEMBERS: Final = frozenset({"kty", "crv", "x", "y", "n", "e", "alg", "kid", "use",
                                    "key_ops", "ext"})
_COMPACT: Final = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_TYPE: Final = "dpop+jwt"


class InvalidDpopProof(Exception):
    """The proof fails a check of section 4.3. ``reason`` is public: it names the check, never
    the proof or the key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DpopProof:
    """A proof that passed :func:`verify_dpop_proof`: its key's thumbprint and the claims the
    caller still checks (``jti`` one-time, ``nonce``)."""

    jkt: str
    jti: str
    iat: int
    nonce: str | None
    alg: str


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token_hash(access_token: str) -> str:
    """``ath`` (section 4.2): base64url of the SHA-256 of the access token's ASCII."""
    return _b64encode(hashlib.sha256(access_token.encode("ascii", "replace")).digest())


def jwk_thumbprint(key: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK: the required members only, sorted, no
    whitespace (section 3.2)."""
    kty = key.get("kty")
    required = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"),
                "RSA": ("e", "kty", "n")}.get(kty if isinstance(kty, str) else "")
    if required is None or not all(isinstance(key.get(m), str) for m in required):
        raise ValueError("not a public EC, OKP or RSA JWK")
    canonical = json.dumps({m: key[m] for m in required}, separators=(",", ":"), sort_keys=True)
    return _b64encode(hashlib.sha256(canonical.encode("utf-8")).digest())


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _normalize_path(path: str) -> str:
    """RFC 3986 section 6.2.2: percent-encodings upper-case, unreserved characters decoded."""
    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return re.sub(r"%([0-9A-Fa-f]{2})", fix, path) or "/"


def normalize_htu(uri: str) -> str:
    """The URI as ``htu`` is compared (section 4.3 step 9): scheme and host lower-case, the
    default port dropped, an empty path ``/``, query and fragment removed.

    ``ValueError`` for anything that is not an absolute http(s) URI.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username or parts.password:
        raise ValueError("not an absolute http or https URI")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # ValueError for a port that is no number
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return urlunsplit((scheme, netloc, _normalize_path(parts.path), "", ""))


def _decode_object(segment: str, limit: int, what: str) -> dict[str, Any]:
    if len(segment) > limit:
        raise InvalidDpopProof(f"the DPoP proof's {what} is too large")
    try:
        text = _b64decode(segment).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidDpopProof("the DPoP proof is not a JWT") from None
    if not json_depth_within(text):
        raise InvalidDpopProof(f"the DPoP proof's {what} nests too deeply")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidDpopProof("the DPoP proof is not a JWT") from None
    if not isinstance(value, dict):
        raise InvalidDpopProof("the DPoP proof is not a JWT")
    return value


def _public_key(header: Mapping[str, Any], alg: str) -> tuple[jwk.Key, str]:
    """The ``jwk`` header as a joserfc key fit for ``alg``, and its thumbprint."""
    data = header.get("jwk")
    if not isinstance(data, dict):
        raise InvalidDpopProof("the DPoP proof has no jwk header")
    if set(data) - _PUBLIC_MEMBERS:
        raise InvalidDpopProof("the DPoP proof's jwk must be a public key only")
    if data.get("kty") != _KEY_TYPES[alg]:
        raise InvalidDpopProof("the DPoP proof's jwk does not fit its alg")
    try:
        key = jwk.import_key(dict(data))
        _MODELS[alg].check_key(key)
        thumbprint = jwk_thumbprint(data)
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidDpopProof("the DPoP proof's jwk is not a valid public key") from None
    if key.is_private:
        raise InvalidDpopProof("the DPoP proof's jwk must be a public key only")
    if isinstance(key, jwk.RSAKey) and key.public_key.key_size < _MIN_RSA_BITS:
        raise InvalidDpopProof("the DPoP proof's RSA key is too short")
    if alg == "EdDSA" and data.get("crv") != "Ed25519":
        raise InvalidDpopProof("the DPoP proof's EdDSA key must be Ed25519")
    return key, thumbprint


def verify_dpop_proof(
    proof: str,
    *,
    method: str,
    uri: str,
    now: float,
    iat_window: int,
    access_token: str | None = None,
    algorithms: Collection[str] = DPOP_ALGS,
) -> DpopProof:
    """Run the checks of the module docstring on ``proof``; the verified proof, or
    :class:`InvalidDpopProof` (and nothing else) for any input.

    ``uri`` is the URI the request was sent to as this server knows it (its configured
    endpoint URL, not a ``Host`` header). ``access_token`` given: ``ath`` must match it.
    An ``iat`` exactly ``iat_window`` seconds away is still accepted.
    """
    if not isinstance(proof, str) or len(proof) > MAX_PROOF_LENGTH:
        raise InvalidDpopProof("the DPoP proof is too large")
    match = _COMPACT.fullmatch(proof)
    if match is None:
        raise InvalidDpopProof("the DPoP proof is not a JWT")
    header_b64, payload_b64, signature_b64 = match.groups()
    header = _decode_object(header_b64, _MAX_HEADER_SEGMENT, "header")
    claims = _decode_object(payload_b64, _MAX_PAYLOAD_SEGMENT, "payload")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() != _TYPE:
        raise InvalidDpopProof("the DPoP proof's typ must be dpop+jwt")
    if "crit" in header:
        raise InvalidDpopProof("the DPoP proof has critical header parameters")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in _MODELS or alg not in algorithms:
        raise InvalidDpopProof("the DPoP proof's alg is not supported")
    key, thumbprint = _public_key(header, alg)
    try:
        signature = _b64decode(signature_b64)
    except (binascii.Error, ValueError):
        raise InvalidDpopProof("the DPoP proof's signature does not verify") from None
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    # Either ECDSA form (r, s) / (r, n - s) is accepted, as for client assertions: clients sign
    # with common libraries that emit both, and the one-time jti makes the twin worthless.
    candidate = low_s_form(alg, signature)
    try:
        verified = _MODELS[alg].verify(signing_input, candidate, key)
    except (JoseError, ValueError, TypeError):
        verified = False
    if not verified:
        raise InvalidDpopProof("the DPoP proof's signature does not verify")
    _check_claims(claims, method=method, uri=uri, now=now, iat_window=iat_window,
                  access_token=access_token)
    nonce = claims.get("nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise InvalidDpopProof("the DPoP proof's nonce is not a string")
    return DpopProof(jkt=thumbprint, jti=claims["jti"], iat=int(claims["iat"]), nonce=nonce,
                     alg=alg)


def _check_claims(claims: Mapping[str, Any], *, method: str, uri: str, now: float,
                  iat_window: int, access_token: str | None) -> None:
    jti, htm, htu, iat = (claims.get(n) for n in ("jti", "htm", "htu", "iat"))
    if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI or not is_text(jti):
        raise InvalidDpopProof("the DPoP proof needs a jti")
    if not isinstance(htm, str) or htm != method:
        raise InvalidDpopProof("the DPoP proof's htm does not match the request method")
    try:
        matches = isinstance(htu, str) and normalize_htu(htu) == normalize_htu(uri)
    except ValueError:
        matches = False
    if not matches:
        raise InvalidDpopProof("the DPoP proof's htu does not match the request URI")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or not math.isfinite(iat):
        raise InvalidDpopProof("the DPoP proof needs a numeric iat")
    if iat < now - iat_window:
        raise InvalidDpopProof("the DPoP proof is too old (iat)")
    if iat > now + iat_window:
        raise InvalidDpopProof("the DPoP proof's iat is in the future")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str):
            raise InvalidDpopProof("the DPoP proof needs ath at a resource server")
        if not hmac.compare_digest(ath.encode("ascii", "replace"),
                                   access_token_hash(access_token).encode("ascii")):
            raise InvalidDpopProof("the DPoP proof's ath does not match the access token")

