"""Signing keys, key sets and JWTs (RFC 7515, RFC 9068 access tokens, OIDC ID tokens)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import warnings
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws, jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import import_key

from oauth_sessions.jose.access_tokens import (
    InvalidAccessToken,
    build_access_token_claims,
    sign_access_token,
    verify_access_token,
)
from oauth_sessions.jose.id_tokens import (
    InvalidIdTokenHint,
    oidc_token_hash,
    sign_id_token,
    verify_id_token_hint,
)
from oauth_sessions.jose.jws import (
    MAX_JSON_DEPTH,
    MAX_TOKEN_LENGTH,
    REASON_UNKNOWN_KID,
    is_low_s_signature,
    json_depth_within,
    low_s_form,
    sign_jwt,
)
from oauth_sessions.jose.keys import (
    DEFAULT_ALG,
    SUPPORTED_ALGS,
    KeySet,
    SigningKey,
    generate_signing_key,
    rotate,
)

ISSUER = "https://auth.example.com"
AUDIENCE = "https://api.example.com"
T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
GRACE = timedelta(hours=1)
LIFETIME = 300
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


# --------------------------------------------------------------------------- helpers


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def claims(now: datetime = T0, **changes: Any) -> dict[str, Any]:
    built = build_access_token_claims(
        issuer=ISSUER,
        subject="3f1c9a52-7b0e-4a8e-9f0d-2c7d5e6b8a41",
        audience=AUDIENCE,
        client_id="9b2d7c1e-5f3a-4e8b-a6c0-1d4e7f9a2b35",
        scope="openid profile",
        session_id="c5e8a1b4-2d6f-4a9c-8e3b-7f0d1a5c9e62",
        aal="aal2",
        amr=["pwd", "totp"],
        auth_time=int(now.timestamp()) - 60,
        lifetime=LIFETIME,
        now=now,
        jti="2b7e9d1c-jti",
    )
    built.update(changes)
    return built


_KEYS: dict[str, list[SigningKey]] = {}


def keys_for(alg: str) -> list[SigningKey]:
    """One active key per alg, made once per test run (RSA generation is slow)."""
    if alg not in _KEYS:
        _KEYS[alg] = rotate([], alg, T0 - timedelta(days=1))
    return _KEYS[alg]


def keyset_for(alg: str) -> KeySet:
    return KeySet(keys_for(alg), publish_grace=GRACE, now=T0)


def private_key_of(key: SigningKey) -> Any:
    return import_key(json.loads(key.private_jwk))


def sign_by_hand(key: SigningKey, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """Sign with joserfc's own JWS serializer, independently of the module under test.

    An ECDSA signature is put in its low-S form (the one form the verifier accepts, issue 15
    item 14), which joserfc, like OpenSSL, produces only half of the time.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # "EdDSA" is deprecated by RFC 9864
        token = jws.serialize_compact(
            header, json.dumps(payload), private_key_of(key), algorithms=[key.alg]
        )
    signing_input, _, sig = token.rpartition(".")
    raw = low_s_form(key.alg, base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    return signing_input + "." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def verify(keyset: KeySet, token: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("issuer", ISSUER)
    kwargs.setdefault("now", T0)
    return verify_access_token(keyset, token, **kwargs)


def reason(keyset: KeySet, token: str, **kwargs: Any) -> str:
    with pytest.raises(InvalidAccessToken) as info:
        verify(keyset, token, **kwargs)
    return info.value.reason


def segments(token: str) -> list[str]:
    return token.split(".")


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("alg", SUPPORTED_ALGS)
def test_access_token_round_trip_for_each_alg(alg: str) -> None:
    keyset = keyset_for(alg)
    token = sign_access_token(keyset, claims(), now=T0)

    header = json.loads(base64.urlsafe_b64decode(segments(token)[0] + "=="))
    assert header == {"alg": alg, "kid": keyset.active.kid, "typ": "at+jwt"}
    got = verify(keyset, token, audience=AUDIENCE)
    assert got == claims()
    assert got["acr"] == got["aal"] == "aal2"
    assert got["exp"] - got["iat"] == LIFETIME


@pytest.mark.parametrize("alg", SUPPORTED_ALGS)
def test_tokens_interoperate_with_joserfc_through_the_published_jwks(alg: str) -> None:
    keyset = keyset_for(alg)
    token = sign_access_token(keyset, claims(), now=T0)
    public = import_key(keyset.jwks(now=T0)["keys"][0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        decoded = jwt.decode(token, public, algorithms=[alg])
        by_hand = sign_by_hand(
            keyset.active, {"alg": alg, "kid": keyset.active.kid, "typ": "at+jwt"}, claims()
        )
    assert decoded.claims == claims()
    assert verify(keyset, by_hand) == claims()


def test_default_alg_is_supported_and_rs256_keys_are_2048_bit() -> None:
    assert DEFAULT_ALG in SUPPORTED_ALGS
    key = private_key_of(keys_for("RS256")[0])
    assert key.public_key.key_size == 2048


def test_generated_kid_is_random_url_safe_and_stored_inside_the_jwk() -> None:
    first, second = generate_signing_key("ES256"), generate_signing_key("ES256")
    assert first.kid != second.kid
    assert len(first.kid) >= 16
    assert set(first.kid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    jwk = json.loads(first.private_jwk)
    assert (jwk["kid"], jwk["alg"]) == (first.kid, "ES256")
    assert first.created_at.tzinfo is not None
    assert generate_signing_key("EdDSA", kid="mine").kid == "mine"


def test_build_claims_fills_iat_exp_and_a_random_jti() -> None:
    with freeze_time(T0):
        first = build_access_token_claims(
            issuer=ISSUER,
            subject="u",
            audience=[AUDIENCE, "other"],
            client_id="c",
            scope="openid",
            session_id="s",
            aal="aal1",
            amr=["pwd"],
            auth_time=1,
            lifetime=60,
        )
        second = build_access_token_claims(
            issuer=ISSUER,
            subject="u",
            audience=AUDIENCE,
            client_id="c",
            scope="openid",
            session_id="s",
            aal="aal3",
            amr=["pwd"],
            auth_time=1,
            lifetime=60,
        )
    assert first["iat"] == int(T0.timestamp())
    assert first["exp"] == first["iat"] + 60
    assert first["acr"] == "aal1" and second["acr"] == "aal3"
    assert first["jti"] != second["jti"]
    assert len(base64.urlsafe_b64decode(first["jti"] + "==")) >= 16
    assert first["aud"] == [AUDIENCE, "other"]
    with pytest.raises(ValueError, match="aal"):
        build_access_token_claims(
            issuer=ISSUER,
            subject="u",
            audience=AUDIENCE,
            client_id="c",
            scope="",
            session_id="s",
            aal="aal9",
            amr=[],
            auth_time=1,
            lifetime=60,
        )


def test_sign_access_token_refuses_claims_missing_required_ones() -> None:
    incomplete = claims()
    del incomplete["sid"]
    with pytest.raises(ValueError, match="sid"):
        sign_access_token(keyset_for("ES256"), incomplete, now=T0)


# --------------------------------------------------------------------------- time


def test_token_expires_exactly_at_exp() -> None:
    """RFC 7519 4.1.4: the token must not be accepted "on or after" exp."""
    keyset = keyset_for("ES256")
    with freeze_time(T0):
        token = sign_access_token(keyset, claims(T0))
    exp = T0 + timedelta(seconds=LIFETIME)
    with freeze_time(exp - timedelta(seconds=1)):
        assert verify_access_token(keyset, token, issuer=ISSUER)["sub"]
    with freeze_time(exp), pytest.raises(InvalidAccessToken, match="expired"):
        verify_access_token(keyset, token, issuer=ISSUER)
    with freeze_time(exp + timedelta(seconds=1)), pytest.raises(InvalidAccessToken):
        verify_access_token(keyset, token, issuer=ISSUER)
    with freeze_time(exp):
        assert verify_access_token(keyset, token, issuer=ISSUER, leeway=5)["sub"]


def test_token_is_not_valid_before_nbf() -> None:
    keyset = keyset_for("ES256")
    nbf = int(T0.timestamp()) + 30
    token = sign_access_token(keyset, claims(nbf=nbf), now=T0)
    assert "nbf" in reason(keyset, token)
    assert verify(keyset, token, leeway=30)["nbf"] == nbf
    assert verify(keyset, token, now=T0 + timedelta(seconds=30))["nbf"] == nbf


# --------------------------------------------------------------------------- claims


def test_wrong_issuer_is_rejected() -> None:
    keyset = keyset_for("ES256")
    token = sign_access_token(keyset, claims(), now=T0)
    assert reason(keyset, token, issuer="https://evil.example.com") == "wrong issuer"


def test_audience_must_match_when_asked_string_or_list() -> None:
    keyset = keyset_for("ES256")
    token = sign_access_token(keyset, claims(), now=T0)
    assert reason(keyset, token, audience="https://other.example.com") == "audience mismatch"
    assert verify(keyset, token)["aud"] == AUDIENCE
    listed = sign_access_token(keyset, claims(aud=["x", AUDIENCE]), now=T0)
    assert verify(keyset, listed, audience=AUDIENCE)["aud"] == ["x", AUDIENCE]
    assert reason(keyset, listed, audience="y") == "audience mismatch"


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid"])
def test_missing_required_claim_is_rejected(claim: str) -> None:
    key = keys_for("ES256")[0]
    payload = claims()
    del payload[claim]
    token = sign_by_hand(key, {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}, payload)
    assert claim in reason(keyset_for("ES256"), token)


@pytest.mark.parametrize(
    "changes", [{"exp": "later"}, {"exp": True}, {"sub": 42}, {"aud": [1]}, {"iss": None}]
)
def test_claims_of_the_wrong_type_are_rejected(changes: dict[str, Any]) -> None:
    key = keys_for("ES256")[0]
    token = sign_by_hand(key, {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}, claims(**changes))
    reason(keyset_for("ES256"), token)


# --------------------------------------------------------------------------- header and type


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
def test_access_token_typ_is_case_insensitive_with_or_without_media_prefix(typ: str) -> None:
    key = keys_for("ES256")[0]
    token = sign_by_hand(key, {"alg": "ES256", "kid": key.kid, "typ": typ}, claims())
    assert verify(keyset_for("ES256"), token)["sub"]


@pytest.mark.parametrize("header_typ", [None, "JWT", "jwt", "at+jwt+extra", 5])
def test_access_token_with_other_typ_is_rejected(header_typ: Any) -> None:
    key = keys_for("ES256")[0]
    header: dict[str, Any] = {"alg": "ES256", "kid": key.kid}
    if header_typ is not None:
        header["typ"] = header_typ
    # The type is checked before the signature, so a dummy signature shows the check.
    token = f"{b64json(header)}.{b64json(claims())}.{b64(bytes(64))}"
    assert "type" in reason(keyset_for("ES256"), token)


def test_an_id_token_or_other_jwt_is_not_an_access_token() -> None:
    keyset = keyset_for("ES256")
    assert "type" in reason(keyset, sign_id_token(keyset, claims(), now=T0))
    other = sign_jwt(keyset, claims(), typ="token-introspection+jwt", now=T0)
    assert "type" in reason(keyset, other)


def test_critical_header_extension_is_rejected() -> None:
    key = keys_for("ES256")[0]
    header = {"alg": "ES256", "kid": key.kid, "typ": "at+jwt", "crit": ["exp"], "exp": 1}
    token = ".".join([b64json(header), b64json(claims()), b64(b"\0" * 64)])
    assert "critical" in reason(keyset_for("ES256"), token)


# --------------------------------------------------------------------------- tampering


@pytest.mark.parametrize("alg", SUPPORTED_ALGS)
def test_tampered_payload_is_rejected(alg: str) -> None:
    keyset = keyset_for(alg)
    header, _, signature = segments(sign_access_token(keyset, claims(), now=T0))
    forged = b64json(claims(sub="admin"))
    assert reason(keyset, f"{header}.{forged}.{signature}") == "bad signature"


@pytest.mark.parametrize("alg", SUPPORTED_ALGS)
def test_tampered_signature_is_rejected(alg: str) -> None:
    keyset = keyset_for(alg)
    header, payload, signature = segments(sign_access_token(keyset, claims(), now=T0))
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[len(raw) // 2] ^= 0x01
    # A flipped bit in s may also lift it above n/2 (issue 15 item 14): refused either way.
    assert reason(keyset, f"{header}.{payload}.{b64(bytes(raw))}") in {
        "bad signature", "malformed token: high-S ECDSA signature"}
    assert reason(keyset, f"{header}.{payload}.{b64(bytes(raw[:-1]))}") == "bad signature"


def test_tampered_header_is_rejected() -> None:
    keyset = keyset_for("ES256")
    _, payload, signature = segments(sign_access_token(keyset, claims(), now=T0))
    kid = keyset.active.kid
    extra = b64json({"alg": "ES256", "kid": kid, "typ": "at+jwt", "x": 1})
    assert reason(keyset, f"{extra}.{payload}.{signature}") == "bad signature"
    other_alg = b64json({"alg": "ES384", "kid": kid, "typ": "at+jwt"})
    assert "alg" in reason(keyset, f"{other_alg}.{payload}.{signature}")


def test_non_canonical_signature_spelling_is_rejected() -> None:
    """base64url's spare bits: a second string for the same signature must not verify."""
    keyset = keyset_for("ES256")
    token = sign_access_token(keyset, claims(), now=T0)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    # 64 bytes -> 86 characters: the last one carries 4 data bits and 2 spare bits.
    twin = token[:-1] + alphabet[last | 0b01]
    if twin == token:
        twin = token[:-1] + alphabet[last & ~0b01]
    assert base64.urlsafe_b64decode(twin.split(".")[2] + "==") == base64.urlsafe_b64decode(
        token.split(".")[2] + "=="
    )
    assert "non-canonical" in reason(keyset, twin)


def test_alg_none_token_is_rejected() -> None:
    keyset = keyset_for("ES256")
    kid = keyset.active.kid
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64json({'alg': alg, 'kid': kid, 'typ': 'at+jwt'})}.{b64json(claims())}."
        reason(keyset, unsigned)
        reason(keyset, unsigned + b64(b"x"))


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_hs256_signed_with_the_public_key_is_rejected(alg: str) -> None:
    """Alg confusion: HMAC keyed with the published public key, in every usual encoding."""
    keyset = keyset_for(alg)
    kid = keyset.active.kid
    public_jwk = keyset.jwks(now=T0)["keys"][0]
    native: Any = import_key(public_jwk).public_key
    secrets_to_try = [
        native.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        native.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        json.dumps(public_jwk).encode(),
    ]
    for secret in secrets_to_try:
        signing_input = (
            f"{b64json({'alg': 'HS256', 'kid': kid, 'typ': 'at+jwt'})}.{b64json(claims())}"
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert "alg" in reason(keyset, f"{signing_input}.{b64(mac)}")


def test_token_from_a_key_not_in_the_set_is_rejected() -> None:
    stranger = KeySet(rotate([], "ES256", T0), publish_grace=GRACE)
    token = sign_access_token(stranger, claims(), now=T0)
    assert reason(keyset_for("ES256"), token) == REASON_UNKNOWN_KID
    # Same kid, different key material: the signature decides.
    impostor = KeySet(
        rotate([], "ES256", T0, kid=keyset_for("ES256").active.kid), publish_grace=GRACE
    )
    forged = sign_access_token(impostor, claims(), now=T0)
    assert reason(keyset_for("ES256"), forged) == "bad signature"


def test_kid_must_be_a_string_and_header_a_json_object() -> None:
    keyset = keyset_for("ES256")
    payload = b64json(claims())
    for header in ({"alg": "ES256", "typ": "at+jwt"}, {"alg": "ES256", "typ": "at+jwt", "kid": 1}):
        reason(keyset, f"{b64json(header)}.{payload}.{b64(b'0' * 64)}")
    for header_segment in (b64json(["ES256"]), b64(b"{not json"), b64(b"\xff\xfe"), "A"):
        reason(keyset, f"{header_segment}.{payload}.{b64(b'0' * 64)}")


def test_token_longer_than_the_cap_is_rejected_before_parsing() -> None:
    keyset = keyset_for("ES256")
    assert "too long" in reason(keyset, "a" * (MAX_TOKEN_LENGTH + 1))


# --------------------------------------------------------------------------- key sets


def test_jwks_publishes_public_members_only() -> None:
    keys = keys_for("RS256") + keys_for("ES256") + keys_for("EdDSA")
    keyset = KeySet(keys, publish_grace=GRACE, now=T0)
    published = keyset.jwks()["keys"]
    assert {k["kid"] for k in published} == {k.kid for k in keys}
    for jwk in published:
        assert not PRIVATE_MEMBERS & jwk.keys()
        assert jwk["use"] == "sig"
        assert jwk["alg"] in SUPPORTED_ALGS
        assert not import_key(jwk).is_private
    assert all(PRIVATE_MEMBERS & json.loads(k.private_jwk).keys() for k in keys)


def test_no_active_key_raises_a_runtime_error_that_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="rotate"):
        _ = KeySet([], publish_grace=GRACE).active
    pending = generate_signing_key("ES256", now=T0)
    keyset = KeySet([pending], publish_grace=GRACE, now=T0)
    assert keyset.find(pending.kid) == pending
    assert keyset.jwks()["keys"][0]["kid"] == pending.kid
    with pytest.raises(RuntimeError, match=r"oauth_sessions\.oauth_signing_keys"):
        sign_access_token(keyset, claims())


def test_active_key_is_the_latest_activated_not_retired_and_not_in_the_future() -> None:
    old = replace(generate_signing_key("ES256", now=T0), activated_at=T0 - timedelta(days=2))
    current = replace(generate_signing_key("ES256", now=T0), activated_at=T0 - timedelta(days=1))
    retired = replace(generate_signing_key("ES256", now=T0), activated_at=T0, retired_at=T0)
    scheduled = replace(
        generate_signing_key("ES256", now=T0), activated_at=T0 + timedelta(minutes=10)
    )
    keyset = KeySet([old, current, retired, scheduled], publish_grace=GRACE)
    assert keyset.active_at(T0) == current
    assert keyset.active_at(T0 + timedelta(minutes=10)) == scheduled
    with freeze_time(T0):
        assert keyset.active == current
    with freeze_time(T0 + timedelta(minutes=11)):
        assert keyset.active == scheduled


def test_key_set_refuses_inconsistent_rows() -> None:
    key = keys_for("ES256")[0]
    with pytest.raises(ValueError, match="duplicate"):
        KeySet([key, key], publish_grace=GRACE)
    with pytest.raises(ValueError, match="differ"):
        KeySet([replace(key, kid="renamed")], publish_grace=GRACE)
    with pytest.raises(ValueError, match="alg"):
        SigningKey(kid="k", alg="HS256", private_jwk="{}", created_at=T0)
    with pytest.raises(ValueError, match="timezone"):
        SigningKey(kid="k", alg="ES256", private_jwk="{}", created_at=datetime(2030, 1, 1))
    rsa_jwk = json.loads(keys_for("RS256")[0].private_jwk) | {"kid": key.kid, "alg": "ES256"}
    with pytest.raises(ValueError, match="not a valid ES256 JWK"):
        KeySet([replace(key, private_jwk=json.dumps(rsa_jwk))], publish_grace=GRACE)
    with pytest.raises(ValueError, match="not a valid"):
        KeySet([replace(key, private_jwk="[]")], publish_grace=GRACE)
    public_only = json.dumps(keyset_for("ES256").jwks(now=T0)["keys"][0])
    with pytest.raises(ValueError, match="private"):
        KeySet([replace(key, private_jwk=public_only)], publish_grace=GRACE)


def test_rotation_keeps_old_tokens_valid_through_the_grace_only() -> None:
    start = T0 - timedelta(days=1)
    keys = rotate([], "ES256", start)
    long_lived = claims(exp=int((T0 + 2 * GRACE).timestamp()))
    old_token = sign_access_token(KeySet(keys, publish_grace=GRACE), long_lived, now=T0)

    rotated = rotate(keys, "ES256", T0)
    old_key, new_key = rotated
    assert (old_key.kid, old_key.retired_at) == (keys[0].kid, T0)
    assert (new_key.alg, new_key.activated_at, new_key.retired_at) == ("ES256", T0, None)
    assert new_key.kid != old_key.kid

    with freeze_time(T0):  # built at rotation time, then kept by a long-lived worker
        keyset = KeySet(rotated, publish_grace=GRACE)
    assert keyset.active_at(T0) == new_key
    new_token = sign_access_token(keyset, claims(), now=T0)
    assert segments(new_token)[0] != segments(old_token)[0]
    in_grace = T0 + GRACE - timedelta(seconds=1)
    assert verify(keyset, old_token, now=in_grace)["sub"]
    assert [k["kid"] for k in keyset.jwks(now=in_grace)["keys"]] == [new_key.kid, old_key.kid]

    after_grace = T0 + GRACE
    assert "retired" in reason(keyset, old_token, now=after_grace)
    with freeze_time(after_grace), pytest.raises(InvalidAccessToken, match="retired"):
        verify_access_token(keyset, old_token, issuer=ISSUER)
    assert [k["kid"] for k in keyset.jwks(now=after_grace)["keys"]] == [new_key.kid]
    assert keyset.find(old_key.kid, now=after_grace) is None
    rebuilt = KeySet(rotated, publish_grace=GRACE, now=after_grace)
    assert len(rebuilt) == 1
    assert "kid" in reason(rebuilt, old_token, now=after_grace)


def test_rotation_of_an_empty_table_creates_the_first_active_key() -> None:
    (only,) = rotate([], "ES256", T0)
    assert only.activated_at == T0 and only.retired_at is None
    assert KeySet([only], publish_grace=GRACE).active_at(T0) == only


# --------------------------------------------------------------------------- ID tokens


def half_hash(value: str, hash_name: str) -> str:
    """OIDC Core 3.1.3.6, written out: left half of the hash of the ASCII octets, base64url."""
    digest = hashlib.new(hash_name, value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).decode().rstrip("=")


@pytest.mark.parametrize(
    ("alg", "hash_name"), [("ES256", "sha256"), ("RS256", "sha256"), ("EdDSA", "sha512")]
)
def test_id_token_carries_at_hash_and_c_hash(alg: str, hash_name: str) -> None:
    keyset = keyset_for(alg)
    access_token = sign_access_token(keyset, claims(), now=T0)
    code = "SplxlOBeZQQYbYS6WxSbIA"
    id_claims = {"iss": ISSUER, "sub": "u", "aud": "client", "exp": 1, "iat": 0, "nonce": "n"}
    id_token = sign_id_token(keyset, id_claims, access_token=access_token, code=code, now=T0)

    header = json.loads(base64.urlsafe_b64decode(segments(id_token)[0] + "=="))
    assert header["typ"] == "JWT"
    got = verify_id_token_hint(keyset, id_token, issuer=ISSUER, now=T0)
    assert got["at_hash"] == half_hash(access_token, hash_name)
    assert got["c_hash"] == half_hash(code, hash_name)
    assert len(got["at_hash"]) == {"sha256": 22, "sha512": 43}[hash_name]
    plain = sign_id_token(keyset, id_claims, now=T0)
    assert "at_hash" not in verify_id_token_hint(keyset, plain, issuer=ISSUER, now=T0)
    with pytest.raises(ValueError, match="exp"):
        sign_id_token(keyset, {"iss": ISSUER, "sub": "u", "aud": "client", "iat": 0}, now=T0)


def test_published_at_hash_examples() -> None:
    """OIDC Core A.3 (RS256), and EdDSA/Ed25519 with SHA-512 as settled in OpenID Connect
    WG issue 1125 (the vector is the one FusionAuth's JWT library tests against)."""
    assert oidc_token_hash("dNZX1hEZ9wBCzNL40Upu646bdzQA", "EdDSA") == (
        "8xltSlOGYrWy8W9yNvRlEth1i_bXW-JROWPLvCv5zog"
    )
    access_token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
    assert half_hash(access_token, "sha256") == "77QmUPtjPfzWtF2AnpK9RQ"
    keyset = keyset_for("RS256")
    id_token = sign_id_token(
        keyset,
        {"iss": ISSUER, "sub": "u", "aud": "c", "exp": 1, "iat": 0},
        access_token=access_token,
        now=T0,
    )
    assert verify_id_token_hint(keyset, id_token, issuer=ISSUER)["at_hash"] == (
        "77QmUPtjPfzWtF2AnpK9RQ"
    )


def test_id_token_hint_accepts_expired_tokens_but_checks_issuer_and_type() -> None:
    keyset = keyset_for("ES256")
    id_claims = {"iss": ISSUER, "sub": "u", "aud": "client", "exp": 1, "iat": 0}
    id_token = sign_id_token(keyset, id_claims, now=T0)
    assert verify_id_token_hint(keyset, id_token, issuer=ISSUER, now=T0)["sub"] == "u"
    with pytest.raises(InvalidIdTokenHint, match="issuer"):
        verify_id_token_hint(keyset, id_token, issuer="https://other", now=T0)
    access_token = sign_access_token(keyset, claims(), now=T0)
    with pytest.raises(InvalidIdTokenHint, match="type"):
        verify_id_token_hint(keyset, access_token, issuer=ISSUER, now=T0)
    header, _, signature = segments(id_token)
    with pytest.raises(InvalidIdTokenHint, match="signature"):
        verify_id_token_hint(
            keyset, f"{header}.{b64json({**id_claims, 'sub': 'x'})}.{signature}", issuer=ISSUER
        )


# --------------------------------------------------------------------------- fuzzing

_B64 = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=120)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _header_strategy() -> st.SearchStrategy[dict[str, Any]]:
    kid = st.sampled_from([keys_for("ES256")[0].kid, "unknown", ""]) | _JSON
    return st.fixed_dictionaries(
        {},
        optional={
            "alg": st.sampled_from(["ES256", "RS256", "EdDSA", "none", "HS256"]) | _JSON,
            "kid": kid,
            "typ": st.sampled_from(["at+jwt", "application/at+jwt", "JWT"]) | _JSON,
            "crit": _JSON,
        },
    )


@st.composite
def _structured_tokens(draw: st.DrawFn) -> str:
    header = draw(st.one_of(_header_strategy(), _JSON))
    payload = draw(st.one_of(st.just(claims()), _JSON))
    signature = draw(st.binary(max_size=300))
    return ".".join([b64json(header), b64json(payload), b64(signature)])


@st.composite
def _mutated_tokens(draw: st.DrawFn) -> str:
    token = sign_access_token(keyset_for("ES256"), claims(), now=T0)
    position = draw(st.integers(0, len(token) - 1))
    inserted = draw(st.text(max_size=3))
    cut = draw(st.integers(0, 3))
    return token[:position] + inserted + token[position + cut :]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(),
        st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=50).map(
            lambda s: f"{s}.{s}.{s}"
        ),
        st.tuples(_B64, _B64, _B64).map(".".join),
        st.binary().map(lambda b: b.decode("latin-1")),
        st.just("\0" * 20_000),
        st.just("a." * 5000),
        _structured_tokens(),
        _mutated_tokens(),
    )
)
def test_garbage_never_raises_anything_but_invalid_access_token(token: str) -> None:
    keyset = keyset_for("ES256")
    with contextlib.suppress(InvalidAccessToken):
        verify(keyset, token, audience=AUDIENCE)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(), _structured_tokens(), _mutated_tokens()))
def test_garbage_id_token_hint_raises_only_invalid_id_token_hint(token: str) -> None:
    with contextlib.suppress(InvalidIdTokenHint):
        verify_id_token_hint(keyset_for("ES256"), token, issuer=ISSUER, now=T0)


@pytest.mark.parametrize("value", [None, b"a.b.c", 42, ["a", "b", "c"]])
def test_non_string_input_is_an_invalid_token(value: Any) -> None:
    with pytest.raises(InvalidAccessToken):
        verify(keyset_for("ES256"), value)


def test_issue15_item9_json_depth_bound_is_exact_and_ignores_brackets_in_strings() -> None:
    """Issue 15 item 9: the pre-parse bound counts nesting exactly (32 passes, 33 fails) and a
    bracket or escaped quote inside a string is not structure."""
    assert json_depth_within("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert not json_depth_within("[" * (MAX_JSON_DEPTH + 1))
    assert json_depth_within('{"a": "' + "[" * 100 + '\\"' + "{" * 100 + '"}', limit=1)
    assert not json_depth_within('{"a": "\\\\", "b": [[1]]}', limit=2)
    assert json_depth_within('{"a": "\\\\", "b": [[1]]}', limit=3)


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def other_s(token: str) -> str:
    """The same token with its ES256 signature ``(r, s)`` rewritten as ``(r, n - s)``."""
    head, body, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    flipped = raw[:32] + (P256_ORDER - int.from_bytes(raw[32:], "big")).to_bytes(32, "big")
    return f"{head}.{body}." + base64.urlsafe_b64encode(flipped).decode().rstrip("=")


def test_issue15_item14_es256_tokens_have_exactly_one_accepted_form() -> None:
    """Issue 15 item 14: ECDSA accepts (r, s) and (r, n - s); we sign the low form only and
    refuse the high one, so no token has a second accepted string. Twenty tokens make sure both
    halves of OpenSSL's output (it picks either s) went through the signer."""
    keyset = keyset_for("ES256")
    for n in range(20):
        token = sign_access_token(keyset, claims(jti=f"j{n}"), now=T0)
        assert verify(keyset, token)["jti"] == f"j{n}"
        assert reason(keyset, other_s(token)) == "malformed token: high-S ECDSA signature"


def test_issue15_item14_low_s_boundary_is_half_the_order() -> None:
    """s = n // 2 is the highest accepted value, n // 2 + 1 the lowest refused; s = 0 is no
    signature; low_s_form maps a high s to n - s and leaves other algorithms alone."""
    r = (1).to_bytes(32, "big")
    half = P256_ORDER // 2
    assert is_low_s_signature("ES256", r + half.to_bytes(32, "big"))
    assert not is_low_s_signature("ES256", r + (half + 1).to_bytes(32, "big"))
    assert not is_low_s_signature("ES256", r + bytes(32))
    high = r + (half + 1).to_bytes(32, "big")
    assert low_s_form("ES256", high) == r + (P256_ORDER - half - 1).to_bytes(32, "big")
    assert is_low_s_signature("RS256", b"\xff" * 256) and low_s_form("RS256", b"\xff") == b"\xff"
    assert is_low_s_signature("ES256", high[:-1])  # wrong length: the verifier's to refuse
