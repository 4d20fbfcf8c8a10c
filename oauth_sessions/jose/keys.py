"""The provider's signing keys: generation, key sets with rotation, and the JWKS they publish.

Keys are JWKs (RFC 7517) handled by joserfc, one row of ``oauth_signing_keys`` (the library's schema) per
:class:`SigningKey`; whoever persists them builds a :class:`KeySet` once per change of the table
(:mod:`oauth_sessions.storage.signing_keys`). A :class:`KeySet` parses each key once
(:class:`LoadedKey`), so the JWS codec (:mod:`oauth_sessions.jose.jws`) neither re-guesses keys
nor rebuilds algorithm models per token. Pure code: no Flask, no database.

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

import dataclasses
import json
import math
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from joserfc import jwk
from joserfc.errors import JoseError
from joserfc.jwa import EdDSAAlgorithm, ESAlgorithm, JWSAlgModel, RSAAlgorithm
from joserfc.jwk import KeyParameters

__all__ = [
    "DEFAULT_ALG",
    "RSA_KEY_SIZE",
    "SUPPORTED_ALGS",
    "KeySet",
    "LoadedKey",
    "SigningKey",
    "current_active",
    "generate_signing_key",
    "rotate",
]

#: Algorithm of new signing keys; chosen with figures, see the module docstring.
DEFAULT_ALG: Final = "RS256"
SUPPORTED_ALGS: Final = ("ES256", "EdDSA", "RS256")
RSA_KEY_SIZE: Final = 2048

_ALGORITHMS: Final[Mapping[str, JWSAlgModel]] = {
    "ES256": ESAlgorithm("ES256", "P-256", 256),
    "EdDSA": EdDSAAlgorithm(),
    "RS256": RSAAlgorithm(256),
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
class LoadedKey:
    """A signing key parsed once: joserfc keys and algorithm model ready for every call."""

    record: SigningKey
    private: jwk.Key
    public: jwk.Key
    algorithm: JWSAlgModel
    public_jwk: Mapping[str, Any]
    activated_ts: float | None
    #: Accepted for verification while ``now < accept_until`` (retired_at + grace, or +inf).
    accept_until: float


def _load_key(record: SigningKey, grace: timedelta) -> LoadedKey:
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
    return LoadedKey(
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

    __slots__ = ("_by_activation", "_by_kid", "_now", "header_cache", "publish_grace", "signing_alg")

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
        by_kid: dict[str, LoadedKey] = {}
        for record in keys:
            if record.kid in by_kid:
                raise ValueError(f"duplicate signing key kid {record.kid!r}")
            if record.retired_at and (record.retired_at + publish_grace).timestamp() <= load_ts:
                continue
            by_kid[record.kid] = _load_key(record, publish_grace)
        self._by_kid: dict[str, LoadedKey] = by_kid
        candidates = [
            (k.activated_ts, k.record.created_at, k.record.kid, k)
            for k in by_kid.values()
            if k.activated_ts is not None
        ]
        candidates.sort(key=lambda c: c[:3], reverse=True)
        #: (activated_at as a timestamp, key), most recently activated first.
        self._by_activation: tuple[tuple[float, LoadedKey], ...] = tuple(
            (ts, k) for ts, _, _, k in candidates
        )
        #: Decoded JOSE headers by their base64url segment, kept by the JWS codec
        #: (:func:`oauth_sessions.jose.jws.verify_jws`); read-only once stored.
        self.header_cache: dict[str, dict[str, Any]] = {}

    def _ts(self, now: datetime | None) -> float:
        if now is not None:
            return now.timestamp()
        if self._now is not None:
            return self._now.timestamp()
        return time.time()

    def signing_key(self, now: datetime | None, alg: str | None = None) -> LoadedKey:
        """The parsed active key of ``alg`` (default ``signing_alg``), for the JWS codec."""
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
            "oauth_sessions.jose.keys.rotate(existing_keys, alg) in oauth_sessions.oauth_signing_keys "
            "and rebuild the KeySet."
        )

    @property
    def active(self) -> SigningKey:
        """The key that signs new tokens; ``RuntimeError`` saying how to create one if none."""
        return self.signing_key(None).record

    def active_at(self, now: datetime, alg: str | None = None) -> SigningKey:
        """The active key at ``now`` for ``alg`` (default ``signing_alg``; see the class
        docstring)."""
        return self.signing_key(now, alg).record

    def active_for(self, alg: str, *, now: datetime | None = None) -> SigningKey | None:
        """The active key of ``alg``, or None when that alg has none (yet)."""
        try:
            return self.signing_key(now, alg).record
        except RuntimeError:
            return None

    def has_kid(self, kid: str) -> bool:
        """Whether ``kid`` names one of the parsed keys (accepted or not at this moment)."""
        return kid in self._by_kid

    def accepted(self, kid: str, ts: float) -> LoadedKey | None:
        """The parsed key with ``kid`` if it verifies tokens at epoch second ``ts``, else None."""
        key = self._by_kid.get(kid)
        if key is None or ts >= key.accept_until:
            return None
        return key

    def find(self, kid: str, *, now: datetime | None = None) -> SigningKey | None:
        """The published key with this ``kid``, or None (unknown, or retired past its grace)."""
        key = self.accepted(kid, self._ts(now))
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


