"""Signed JWTs of the provider: signing keys, key sets with rotation, access and ID tokens.

* Access tokens follow RFC 9068 (JWT profile for OAuth 2.0 access tokens, ``typ: at+jwt``).
* ID tokens follow OpenID Connect Core 1.0 (section 2, ``at_hash``/``c_hash`` of 3.1.3.6/3.3.2.11).
* Keys are JWKs (RFC 7517) handled by joserfc; signatures are joserfc's JWA algorithm models
  (RFC 7518, RFC 8037) applied to the JWS compact serialization (RFC 7515 section 7.1).

Pure code: no Flask, no database. The ``oauth_signing_keys`` rows (the library's schema) map 1:1 onto
:class:`SigningKey`; whoever persists them builds a :class:`KeySet` once per change of the table.

Why the compact serialization is assembled here rather than by ``joserfc.jws``: the hot path
(``verify_access_token``, called by every introspection) must not re-guess keys, rebuild a
registry or re-check headers per call, and joserfc flags the ``EdDSA`` name as deprecated
(RFC 9864) through a ``SecurityWarning`` on every use. Signing input and base64url are three
lines; everything cryptographic stays in joserfc and ``cryptography``.

Choice of ``DEFAULT_ALG`` (``benchmarks/jose_algorithms.py``: CPython 3.11, cryptography 50,
OpenSSL 3, x86_64, a 13-claim access token, median of 7 rounds; "sig" is the signature check
alone, "rest" is syntax + base64 + JSON + claims, "joserfc" is ``jwt.decode`` + claim
validation on the same token for comparison)::

    alg    token  sign µs (vs ES256)  verify µs (vs ES256)  sig µs  rest µs  joserfc µs
    EdDSA   701     38.1  (1.13x)       94.1  (1.34x)        85.4     8.7      112.6
    ES256   701     33.9  (1.00x)       70.3  (1.00x)        61.1     9.2       89.4
    RS256   957    272.8  (8.05x)       27.9  (0.40x)        17.5    10.4       44.1

RSA verification (public exponent 65537) is 2.5 times cheaper than ES256 and 3.4 times
cheaper than Ed25519 here, while RSA signing is about eight times dearer. Per token the extra
signing cost (~240 µs) is repaid after ~6 verifications, and introspection verifies each access
token many times over its life, so RS256 wins for this workload. It is also the one algorithm
every OpenID Connect relying party must accept for ID tokens (OIDC Core 15.1). The price is
size: an RS256 signature is 342 base64url characters against 86 for ES256/EdDSA. The verify
path itself costs ~10 µs above the signature, against ~27 µs for the generic joserfc path,
because keys, algorithm models and repeated JOSE headers are parsed once per KeySet.

One active key per algorithm in use: a :class:`KeySet` may hold an active key for each alg, and
every signing call names (or defaults to) the alg it wants. The provider signs access tokens,
logout tokens and introspection answers with ``OAUTH_SESSIONS_SIGNING_ALG`` (cheap signing on
every refresh) and ID tokens with ``OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG``, RS256 by default,
because OpenID Connect Discovery 1.0 section 3 requires RS256 among
``id_token_signing_alg_values_supported`` and Dynamic Client Registration 1.0 section 2 makes it
the default ``id_token_signed_response_alg`` a relying party may expect without asking.
Verification is unchanged: the key is chosen by ``kid`` and the header's ``alg`` must be its own.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from joserfc import jwk
from joserfc.errors import JoseError
from joserfc.jwa import EdDSAAlgorithm, ESAlgorithm, JWSAlgModel, RSAAlgorithm
from joserfc.jwk import KeyParameters

__all__ = [
    "ACCESS_TOKEN_REQUIRED_CLAIMS",
    "DEFAULT_ALG",
    "ID_TOKEN_REQUIRED_CLAIMS",
    "MAX_JSON_DEPTH",
    "MAX_TOKEN_LENGTH",
    "REASON_UNKNOWN_KID",
    "SUPPORTED_ALGS",
    "InvalidAccessToken",
    "InvalidIdTokenHint",
    "InvalidToken",
    "KeySet",
    "SigningKey",
    "build_access_token_claims",
    "current_active",
    "generate_signing_key",
    "is_low_s_signature",
    "json_depth_within",
    "low_s_form",
    "oidc_token_hash",
    "rotate",
    "sign_access_token",
    "sign_id_token",
    "sign_jwt",
    "verify_access_token",
    "verify_id_token_hint",
]

#: Algorithm of new signing keys; chosen with figures, see the module docstring.
DEFAULT_ALG: Final = "RS256"
SUPPORTED_ALGS: Final = ("ES256", "EdDSA", "RS256")
#: Longest token string accepted for verification. Our access tokens are under 1.5 KiB even with
#: RS256 and a long scope string; the cap bounds the work an unauthenticated caller can cause.
MAX_TOKEN_LENGTH: Final = 8192
#: RFC 9068 section 2.2 requires ``aud`` too; this project also needs ``sid`` and ``client_id``.
ACCESS_TOKEN_REQUIRED_CLAIMS: Final = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid")
#: OpenID Connect Core section 2.
ID_TOKEN_REQUIRED_CLAIMS: Final = ("iss", "sub", "aud", "exp", "iat")
#: ``InvalidToken.reason`` when the kid is not (or no longer) in the set: a worker may reload its
#: keys on this one reason, because another worker may have rotated.
REASON_UNKNOWN_KID: Final = "unknown or retired kid"
ACR_VALUES: Final = frozenset({"aal1", "aal2", "aal3"})
RSA_KEY_SIZE: Final = 2048

Claims = dict[str, Any]


class InvalidToken(Exception):
    """A token that must not be trusted. ``reason`` is for logs, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidAccessToken(InvalidToken):
    """The only exception :func:`verify_access_token` raises, whatever the input."""


class InvalidIdTokenHint(InvalidToken):
    """The only exception :func:`verify_id_token_hint` raises, whatever the input."""


# --------------------------------------------------------------------------- signing keys

_ALGORITHMS: Final[Mapping[str, JWSAlgModel]] = {
    "ES256": ESAlgorithm("ES256", "P-256", 256),
    "EdDSA": EdDSAAlgorithm(),
    "RS256": RSAAlgorithm(256),
}

#: Hash of OIDC ``at_hash``/``c_hash`` per alg. OIDC Core 3.1.3.6 says "the hash algorithm used in
#: the alg Header Parameter"; ``EdDSA`` names none, and the practice of Authlib
#: (``create_half_hash``) and panva's oidc-provider/openid-client is SHA-512 for Ed25519, the
#: hash inside Ed25519 itself. Only Ed25519 keys are made or accepted for ``EdDSA`` here.
_HALF_HASH: Final[Mapping[str, Callable[[bytes], Any]]] = {
    "ES256": hashlib.sha256,
    "RS256": hashlib.sha256,
    "EdDSA": hashlib.sha512,
}

#: Members a public JWK may carry (RFC 7517/7518/8037). Anything else, private parts above all
#: (``d p q dp dq qi oth``), is dropped from the JWKS by construction, not by a deny list.
_PUBLIC_JWK_MEMBERS: Final = frozenset({"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"})


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (UTC), got {value!r}")


@dataclass(frozen=True)
class SigningKey:
    """One row of ``oauth_signing_keys`` (the library's schema).

    ``private_jwk`` is the JSON text of the private JWK with ``kid`` and ``alg`` inside, so the
    row alone says how to use it. ``activated_at`` None means published but not yet used to sign
    (pre-publication lets caches of the JWKS learn a key before tokens signed by it appear);
    ``retired_at`` set means no longer used to sign, still published through the grace period.
    """

    kid: str
    alg: str
    private_jwk: str = dataclasses.field(repr=False)
    created_at: datetime
    activated_at: datetime | None = None
    retired_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.alg not in _ALGORITHMS:
            raise ValueError(f"Unsupported signing alg {self.alg!r}; use one of {SUPPORTED_ALGS}")
        _require_aware("created_at", self.created_at)
        _require_aware("activated_at", self.activated_at)
        _require_aware("retired_at", self.retired_at)


def _random_kid() -> str:
    return secrets.token_urlsafe(12)


def generate_signing_key(
    alg: str = DEFAULT_ALG,
    kid: str | None = None,
    *,
    now: datetime | None = None,
    activated_at: datetime | None = None,
) -> SigningKey:
    """Create a new private key for ``alg`` (RS256 keys are 2048-bit, EdDSA keys Ed25519).

    The key is returned inactive unless ``activated_at`` is given: activation is a decision of
    :func:`rotate` (or the caller), not a side effect of generating.
    """
    kid = kid or _random_kid()
    created_at = now or _utcnow()
    _require_aware("now", created_at)
    params: KeyParameters = {"kid": kid, "alg": alg}
    key: jwk.Key
    if alg == "ES256":
        key = jwk.generate_key("EC", "P-256", parameters=params)
    elif alg == "EdDSA":
        key = jwk.generate_key("OKP", "Ed25519", parameters=params)
    elif alg == "RS256":
        key = jwk.generate_key("RSA", RSA_KEY_SIZE, parameters=params)
    else:
        raise ValueError(f"Unsupported signing alg {alg!r}; use one of {SUPPORTED_ALGS}")
    private_jwk = json.dumps(key.as_dict(private=True), separators=(",", ":"), sort_keys=True)
    return SigningKey(
        kid=kid,
        alg=alg,
        private_jwk=private_jwk,
        created_at=created_at,
        activated_at=activated_at,
    )


@dataclass(frozen=True, slots=True)
class _LoadedKey:
    """A signing key parsed once: joserfc keys and algorithm model ready for every call."""

    record: SigningKey
    private: jwk.Key
    public: jwk.Key
    algorithm: JWSAlgModel
    public_jwk: Mapping[str, Any]
    activated_ts: float | None
    #: Accepted for verification while ``now < accept_until`` (retired_at + grace, or +inf).
    accept_until: float


def _load_key(record: SigningKey, grace: timedelta) -> _LoadedKey:
    """Parse and cross-check one row; a bad row fails at start-up, not on a request."""
    where = f"signing key {record.kid!r}"
    algorithm = _ALGORITHMS[record.alg]
    try:
        data = json.loads(record.private_jwk)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        private = jwk.import_key(data)
        algorithm.check_key(private)  # key type, curve, "use" and "key_ops" fit the alg
    except (ValueError, TypeError, KeyError, JoseError) as exc:
        raise ValueError(f"{where}: private_jwk is not a valid {record.alg} JWK ({exc})") from exc
    if not private.is_private:
        raise ValueError(f"{where}: private_jwk holds no private key")
    if private.kid != record.kid or private.alg != record.alg:
        raise ValueError(f"{where}: kid/alg inside private_jwk differ from the row's columns")
    if record.alg == "EdDSA" and data.get("crv") != "Ed25519":
        # at_hash/c_hash use SHA-512, which is only right for Ed25519.
        raise ValueError(f"{where}: EdDSA keys must be Ed25519")
    if isinstance(private, jwk.RSAKey) and private.public_key.key_size < RSA_KEY_SIZE:
        raise ValueError(f"{where}: RSA keys must have at least {RSA_KEY_SIZE} bits")
    public_dict = {
        k: v for k, v in private.as_dict(private=False).items() if k in _PUBLIC_JWK_MEMBERS
    }
    public_dict["use"] = "sig"
    public = jwk.import_key(public_dict)
    retired = record.retired_at
    return _LoadedKey(
        record=record,
        private=private,
        public=public,
        algorithm=algorithm,
        public_jwk=public_dict,
        activated_ts=record.activated_at.timestamp() if record.activated_at else None,
        accept_until=(retired + grace).timestamp() if retired else math.inf,
    )


class KeySet:
    """The provider's signing keys, parsed once and kept for every request.

    * *active*: per alg, the most recently activated key of that alg with
      ``activated_at <= now`` and no ``retired_at``; it signs new tokens of that alg.
      ``signing_alg`` names the alg used when a signing call names none.
    * *published / accepted*: every key without ``retired_at``, and retired keys until
      ``retired_at + publish_grace``. The grace must be at least the longest token lifetime so
      that a rotation never invalidates a token already handed out (zero-downtime rotation).

    ``now`` given: the set is evaluated at that instant (a snapshot, for tests and tools).
    ``now`` omitted: the clock is read on each use, so a long-lived set follows scheduled
    activations and grace expiry by itself; rebuild it only when the table changes.
    Keys already past their grace when the set is built are not even parsed.
    """

    __slots__ = ("_by_activation", "_by_kid", "_headers", "_now", "publish_grace", "signing_alg")

    def __init__(
        self,
        keys: Iterable[SigningKey],
        *,
        publish_grace: timedelta,
        now: datetime | None = None,
        signing_alg: str | None = None,
    ) -> None:
        if publish_grace < timedelta(0):
            raise ValueError("publish_grace must not be negative")
        if signing_alg is not None and signing_alg not in _ALGORITHMS:
            raise ValueError(f"Unsupported signing alg {signing_alg!r}; use one of {SUPPORTED_ALGS}")
        _require_aware("now", now)
        self.publish_grace = publish_grace
        #: Alg of the key that signs when the caller names none (access tokens and the other
        #: JWTs but ID tokens); None: the most recently activated key of any alg.
        self.signing_alg = signing_alg
        self._now = now
        load_ts = (now or _utcnow()).timestamp()
        by_kid: dict[str, _LoadedKey] = {}
        for record in keys:
            if record.kid in by_kid:
                raise ValueError(f"duplicate signing key kid {record.kid!r}")
            if record.retired_at and (record.retired_at + publish_grace).timestamp() <= load_ts:
                continue
            by_kid[record.kid] = _load_key(record, publish_grace)
        self._by_kid: dict[str, _LoadedKey] = by_kid
        candidates = [
            (k.activated_ts, k.record.created_at, k.record.kid, k)
            for k in by_kid.values()
            if k.activated_ts is not None
        ]
        candidates.sort(key=lambda c: c[:3], reverse=True)
        #: (activated_at as a timestamp, key), most recently activated first.
        self._by_activation: tuple[tuple[float, _LoadedKey], ...] = tuple(
            (ts, k) for ts, _, _, k in candidates
        )
        #: Decoded JOSE headers by their base64url segment (read-only once stored).
        self._headers: dict[str, dict[str, Any]] = {}

    def _ts(self, now: datetime | None) -> float:
        if now is not None:
            return now.timestamp()
        if self._now is not None:
            return self._now.timestamp()
        return time.time()

    def _active(self, now: datetime | None, alg: str | None = None) -> _LoadedKey:
        ts = self._ts(now)
        wanted = alg or self.signing_alg
        for activated_ts, key in self._by_activation:
            if (
                key.record.retired_at is None
                and activated_ts <= ts
                and (wanted is None or key.record.alg == wanted)
            ):
                return key
        named = f" for {wanted}" if wanted else ""
        raise RuntimeError(
            f"No active signing key{named}: store the keys returned by "
            "oauth_sessions.jose.jwt_tokens.rotate(existing_keys, alg) in oauth_sessions.oauth_signing_keys "
            "and rebuild the KeySet."
        )

    @property
    def active(self) -> SigningKey:
        """The key that signs new tokens; ``RuntimeError`` saying how to create one if none."""
        return self._active(None).record

    def active_at(self, now: datetime, alg: str | None = None) -> SigningKey:
        """The active key at ``now`` for ``alg`` (default ``signing_alg``; see the class
        docstring)."""
        return self._active(now, alg).record

    def active_for(self, alg: str, *, now: datetime | None = None) -> SigningKey | None:
        """The active key of ``alg``, or None when that alg has none (yet)."""
        try:
            return self._active(now, alg).record
        except RuntimeError:
            return None

    def _accepted(self, kid: str, ts: float) -> _LoadedKey | None:
        key = self._by_kid.get(kid)
        if key is None or ts >= key.accept_until:
            return None
        return key

    def find(self, kid: str, *, now: datetime | None = None) -> SigningKey | None:
        """The published key with this ``kid``, or None (unknown, or retired past its grace)."""
        key = self._accepted(kid, self._ts(now))
        return key.record if key else None

    def jwks(self, *, now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set (RFC 7517 section 5) of the published public keys, newest first.

        Members are copied from an allow-list of public parameters, so no private member can
        leak whatever the stored JWK contains.
        """
        ts = self._ts(now)
        keys = sorted(
            (k for k in self._by_kid.values() if ts < k.accept_until),
            key=lambda k: (k.record.created_at, k.record.kid),
            reverse=True,
        )
        return {"keys": [dict(k.public_jwk) for k in keys]}

    def __len__(self) -> int:
        return len(self._by_kid)

    def __repr__(self) -> str:
        return f"KeySet(kids={list(self._by_kid)!r}, publish_grace={self.publish_grace!r})"


def current_active(
    keys: Sequence[SigningKey], now: datetime, alg: str | None = None
) -> SigningKey | None:
    """The key of ``alg`` (any alg if None) that signs at ``now`` among stored rows, or None:
    the latest activated one not retired, the same choice :class:`KeySet` makes."""
    ts = now.timestamp()
    candidates = [
        k
        for k in keys
        if k.retired_at is None
        and k.activated_at is not None
        and k.activated_at.timestamp() <= ts
        and (alg is None or k.alg == alg)
    ]
    return max(candidates, key=lambda k: (k.activated_at, k.created_at, k.kid), default=None)


def rotate(
    keys: Sequence[SigningKey],
    alg: str = DEFAULT_ALG,
    now: datetime | None = None,
    *,
    kid: str | None = None,
) -> list[SigningKey]:
    """Return the key list after a rotation: a new ``alg`` key active from ``now``, and the
    ``alg`` key that was active retired at ``now`` (still published through the KeySet's grace,
    so tokens it signed keep verifying). Keys of other algs are returned unchanged: each alg in
    use keeps its own active key. Nothing is deleted here.

    Pure: the caller stores the result (insert the new row, update the retired one).
    """
    now = now or _utcnow()
    _require_aware("now", now)
    previous = current_active(keys, now, alg)
    new_key = generate_signing_key(alg, kid, now=now, activated_at=now)
    if any(k.kid == new_key.kid for k in keys):
        raise ValueError(f"kid {new_key.kid!r} already exists")
    result = [
        dataclasses.replace(k, retired_at=now) if previous is not None and k is previous else k
        for k in keys
    ]
    result.append(new_key)
    return result


# --------------------------------------------------------------------------- signing


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_segment(value: Mapping[str, Any]) -> str:
    return _b64encode(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())


def _sign(key: _LoadedKey, typ: str, claims: Mapping[str, Any]) -> str:
    header = {"alg": key.record.alg, "kid": key.record.kid, "typ": typ}
    signing_input = f"{_json_segment(header)}.{_json_segment(claims)}"
    signature = low_s_form(key.record.alg,
                           key.algorithm.sign(signing_input.encode("ascii"), key.private))
    return f"{signing_input}.{_b64encode(signature)}"


def sign_jwt(
    keyset: KeySet, claims: Mapping[str, Any], *, typ: str, now: datetime | None = None
) -> str:
    """Sign any other JWT of the provider with the active key and an explicit ``typ``
    (e.g. ``token-introspection+jwt`` of RFC 9701), so each kind of token keeps its own type."""
    return _sign(keyset._active(now), typ, claims)


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
) -> Claims:
    """The claims of an RFC 9068 access token (section 2.2) plus this project's session claims.

    ``acr`` is the aal string itself ("aal1" / "aal2" / "aal3"): relying parties compare the
    token's assurance without a mapping table, and ``aal`` is kept for introspection.
    """
    if aal not in ACR_VALUES:
        raise ValueError(f"aal must be one of {sorted(ACR_VALUES)}, got {aal!r}")
    if lifetime <= 0:
        raise ValueError("lifetime must be a positive number of seconds")
    iat = int((now or _utcnow()).timestamp())
    return {
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
    return _sign(keyset._active(now), "at+jwt", claims)


def oidc_token_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash`` (OIDC Core 3.1.3.6, 3.3.2.11): base64url, no padding, of the
    left-most half of the hash of the ASCII octets of ``value``, with the hash of ``alg``."""
    digest = _HALF_HASH[alg](value.encode("ascii")).digest()
    return _b64encode(digest[: len(digest) // 2])


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
    key = keyset._active(now, alg)
    payload = dict(claims)
    if access_token is not None:
        payload["at_hash"] = oidc_token_hash(access_token, key.record.alg)
    if code is not None:
        payload["c_hash"] = oidc_token_hash(code, key.record.alg)
    return _sign(key, "JWT", payload)


# --------------------------------------------------------------------------- verification

#: Three non-empty base64url segments, nothing else: rejects non-ASCII, NUL, padding, spaces,
#: JWE (five segments) and unsecured JWS (empty signature) before any decoding.
_COMPACT: Final = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_MAX_HEADER_SEGMENT: Final = 1024
_HEADER_CACHE_SIZE: Final = 64
_ACCESS_TOKEN_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
_ID_TOKEN_TYPES: Final = frozenset({"jwt", "application/jwt"})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


#: A decoder built once (``json.loads`` with options builds one per call). It refuses NaN and
#: Infinity, which would otherwise make ``exp`` never pass.
_JSON: Final = json.JSONDecoder(parse_constant=_reject_constant)


_FROM_URLSAFE: Final = bytes.maketrans(b"-_", b"+/")


def _b64decode(segment: str) -> bytes:
    """base64url without padding; the caller has already checked the alphabet (``_COMPACT``).

    Straight to ``binascii`` because ``base64.urlsafe_b64decode`` costs twice as much per call.
    """
    padded = (segment + "=" * (-len(segment) % 4)).encode("ascii")
    return binascii.a2b_base64(padded.translate(_FROM_URLSAFE))


def _decode_object(segment: str) -> dict[str, Any]:
    value = _JSON.decode(_b64decode(segment).decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: Group orders of the ECDSA curves of RFC 7518 section 3.4 (SEC 2 / FIPS 186-4 D.1.2).
_EC_ORDERS: Final[Mapping[str, int]] = {
    "ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "ES384": int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
                 "581A0DB248B0A77AECEC196ACCC52973", 16),
    "ES512": int("01FF" + "FFFFFFFF" * 7 + "FFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8"
                 "899C47AEBB6FB71E91386409", 16),
}


def is_low_s_signature(alg: str, signature: bytes) -> bool:
    """False for an ECDSA JWS signature ``r || s`` whose ``s`` is above half the group order.

    ECDSA accepts ``(r, s)`` and ``(r, n - s)`` alike, so every signed token would have a second
    accepted string; token strings are used as keys (caches, replay ledgers), so only the low
    form (``s <= n/2``, what BIP 62 and libsecp256k1 call canonical) is accepted. Non-ECDSA
    algorithms are not malleable this way and always pass.
    """
    order = _EC_ORDERS.get(alg)
    half = len(signature) // 2
    if order is None or half != (order.bit_length() + 7) // 8 or len(signature) % 2:
        return True  # not ECDSA, or the wrong length, which the verifier itself refuses
    return 0 < int.from_bytes(signature[half:], "big") <= order // 2


def low_s_form(alg: str, signature: bytes) -> bytes:
    """The accepted form of an ECDSA signature: OpenSSL signs with either ``s``, so half of
    what it makes is turned into ``(r, n - s)`` (equally valid) before it leaves the provider."""
    order = _EC_ORDERS.get(alg)
    if order is None or is_low_s_signature(alg, signature):
        return signature
    half = len(signature) // 2
    high = int.from_bytes(signature[half:], "big")
    return signature[:half] + (order - high).to_bytes(half, "big")


#: Deepest nesting of arrays and objects accepted in a JOSE header or JWT payload from outside.
#: Ours nest two levels; RFC 7519 claims rarely more than four.
MAX_JSON_DEPTH: Final = 32
#: What the depth scan looks at: an escape (two characters, so ``\\"`` ends no string), a quote, a bracket.
_JSON_STRUCTURE: Final = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


def json_depth_within(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether no array or object in ``text`` nests deeper than ``limit``, judged without parsing.

    Python's JSON decoder recurses once per level, so a document of a thousand ``[`` raises
    ``RecursionError`` (which is no ``ValueError``) before any other check could refuse it. One
    linear pass over quotes and brackets answers first; the text need not be valid JSON (the
    parser that runs next still judges that).
    """
    depth, in_string = 0, False
    for match in _JSON_STRUCTURE.finditer(text):
        char = match.group()
        if char == '"':
            in_string = not in_string
        elif in_string or len(char) == 2:
            continue
        elif char in "[{":
            depth += 1
            if depth > limit:
                return False
        else:
            depth -= 1
    return True


def _verify_jws(
    keyset: KeySet,
    token: Any,
    error: type[InvalidToken],
    types: frozenset[str],
    now_ts: float,
) -> dict[str, Any]:
    """Checks shared by every token: syntax, header, key by kid, alg pinned to the key, signature.

    Order matters: nothing from the payload is parsed before the signature is known to be ours,
    and the key is chosen only by ``kid`` among our keys (``jku``, ``jwk``, ``x5u`` are never
    followed), with ``alg`` required to equal the key's own alg, so ``none``, HMAC keyed with a
    public key and other alg confusions cannot even reach a verifier.
    """
    if not isinstance(token, str):
        raise error("token is not a string")
    if len(token) > MAX_TOKEN_LENGTH:
        raise error("token too long")
    match = _COMPACT.fullmatch(token)
    if match is None:
        raise error("malformed token: not three base64url segments")
    header_b64, payload_b64, signature_b64 = match.groups()
    if len(header_b64) > _MAX_HEADER_SEGMENT:
        raise error("malformed token: header too long")
    header = keyset._headers.get(header_b64)
    if header is None:
        try:
            header = _decode_object(header_b64)
        except (ValueError, RecursionError) as exc:  # binascii.Error, UnicodeError: ValueErrors
            raise error("malformed token: header is not base64url JSON object") from exc
        kid = header.get("kid")
        if (
            isinstance(kid, str)
            and kid in keyset._by_kid
            and (len(keyset._headers) < _HEADER_CACHE_SIZE)
        ):
            # Every token of one key has the same header segment: decode it once. Only headers
            # naming one of our kids are kept, and the cache is bounded, so junk cannot grow it.
            keyset._headers[header_b64] = header

    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in types:
        raise error(f"wrong token type {typ!r}")
    if "crit" in header:
        # RFC 7515 4.1.11: we understand no extension, so a critical one must fail.
        raise error("unsupported critical header parameters")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise error("missing kid")
    key = keyset._accepted(kid, now_ts)
    if key is None:
        raise error(REASON_UNKNOWN_KID)
    if header.get("alg") != key.record.alg:
        raise error("alg does not match the key's alg")

    try:
        signature = _b64decode(signature_b64)
    except ValueError as exc:
        raise error("malformed token: signature is not base64url") from exc
    if _b64encode(signature) != signature_b64:
        # Non-zero padding bits: another spelling of the same signature. Refused so that one
        # signed token has exactly one accepted string (token strings may be used as keys).
        raise error("malformed token: non-canonical signature encoding")
    signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
    if not is_low_s_signature(key.record.alg, signature):
        raise error("malformed token: high-S ECDSA signature")
    if not key.algorithm.verify(signing_input, signature, key.public):
        raise error("bad signature")

    try:
        return _decode_object(payload_b64)
    except (ValueError, RecursionError) as exc:
        raise error("malformed token: payload is not base64url JSON object") from exc


def _check_claims(
    claims: Mapping[str, Any],
    error: type[InvalidToken],
    *,
    required: Iterable[str],
    issuer: str,
) -> None:
    missing = [c for c in required if c not in claims]
    if missing:
        raise error(f"missing claims {missing}")
    for name in ("iss", "sub", "jti", "client_id", "sid"):
        if name in claims and not isinstance(claims[name], str):
            raise error(f"claim {name} is not a string")
    for name in ("exp", "iat", "nbf", "auth_time"):
        if name in claims and not _number(claims[name]):
            raise error(f"claim {name} is not a number")
    if claims["iss"] != issuer:
        raise error("wrong issuer")


def _audiences(claims: Mapping[str, Any], error: type[InvalidToken]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    raise error("claim aud is not a string or list of strings")


def kid_of(value: str) -> str | None:
    """The ``kid`` of a compact JWS header, to reload keys another worker may have added."""
    try:
        segment = value.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


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
    claims = _verify_jws(keyset, token, InvalidAccessToken, _ACCESS_TOKEN_TYPES, now_ts)
    _check_claims(claims, InvalidAccessToken, required=ACCESS_TOKEN_REQUIRED_CLAIMS, issuer=issuer)
    audiences = _audiences(claims, InvalidAccessToken)
    if now_ts >= claims["exp"] + leeway:
        raise InvalidAccessToken("token expired")
    nbf = claims.get("nbf")
    if nbf is not None and nbf > now_ts + leeway:
        raise InvalidAccessToken("token not yet valid (nbf)")
    if audience is not None and audience not in audiences:
        raise InvalidAccessToken("audience mismatch")
    return claims


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
    claims = _verify_jws(keyset, token, InvalidIdTokenHint, _ID_TOKEN_TYPES, now_ts)
    _check_claims(claims, InvalidIdTokenHint, required=("iss", "sub", "aud"), issuer=issuer)
    _audiences(claims, InvalidIdTokenHint)
    return claims
