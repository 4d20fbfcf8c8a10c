"""One active signing key per algorithm in use.

OpenID Connect Discovery 1.0 section 3: ``id_token_signing_alg_values_supported`` MUST include
RS256, and Dynamic Client Registration 1.0 section 2 makes RS256 the default
``id_token_signed_response_alg``. So ID tokens are signed with RS256 by default
(``ID_TOKEN_SIGNING_ALG``), while access tokens, logout tokens and introspection answers keep
``SIGNING_ALG`` (ES256 by default, eight times cheaper to sign on every refresh).
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import ISSUER, create_client, create_user, exchange_code, make_app, obtain_code, pkce_pair
from flask import Flask
from freezegun import freeze_time
from sqlalchemy import Engine, func, select
from test_code_flow import _verify
from test_introspection_endpoint import provider

from oauth_sessions import get_state
from oauth_sessions.core.settings import load_settings
from oauth_sessions.jose.access_tokens import InvalidAccessToken, sign_access_token, verify_access_token
from oauth_sessions.jose.id_tokens import (
    InvalidIdTokenHint,
    oidc_token_hash,
    sign_id_token,
    verify_id_token_hint,
)
from oauth_sessions.jose.jws import sign_jwt
from oauth_sessions.jose.keys import KeySet, generate_signing_key, rotate
from oauth_sessions.storage.models import OAuthSigningKey
from oauth_sessions.storage.signing_keys import KeyStore

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
GRACE = timedelta(minutes=10)


def _tokens(app: Flask, engine: Engine) -> dict[str, Any]:
    client, secret = create_client(app)
    http = app.test_client()
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge, nonce="n-1")["code"]
    body: dict[str, Any] = exchange_code(http, client, secret, code, verifier).json
    return body


def _header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return value


def _key_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(OAuthSigningKey.__table__))
                   .scalar_one())


# --------------------------------------------------------------------------- through HTTP


def test_id_token_is_rs256_and_access_token_es256_by_default(engine: Engine) -> None:
    app = make_app(engine)
    body = _tokens(app, engine)
    http = app.test_client()
    id_header, id_claims = _verify(http, body["id_token"])  # with the published JWKS only
    at_header, _ = _verify(http, body["access_token"])
    assert (id_header["alg"], id_header["typ"]) == ("RS256", "JWT")
    assert (at_header["alg"], at_header["typ"]) == ("ES256", "at+jwt")
    assert id_header["kid"] != at_header["kid"]
    # OIDC Core 3.1.3.6: at_hash uses the hash of the ID token's own alg (SHA-256 for RS256).
    assert id_claims["at_hash"] == oidc_token_hash(body["access_token"], "RS256")
    assert id_claims["nonce"] == "n-1"
    published = {k["kid"]: k["alg"] for k in http.get("/oauth/jwks").json["keys"]}
    assert published == {id_header["kid"]: "RS256", at_header["kid"]: "ES256"}


def test_discovery_lists_rs256_first(engine: Engine) -> None:
    # Every alg with a key can sign ID tokens (a client may register any of them), RS256 first.
    doc = make_app(engine).test_client().get("/.well-known/openid-configuration").json
    assert doc["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    es = make_app(engine, id_token_signing_alg="ES256").test_client()
    listed = es.get("/.well-known/openid-configuration").json["id_token_signing_alg_values_supported"]
    assert listed == ["RS256", "ES256"]


def test_id_token_alg_setting_es256_gives_es256_id_tokens_and_keeps_an_rs256_key(
        engine: Engine) -> None:
    app = make_app(engine, id_token_signing_alg="ES256")
    body = _tokens(app, engine)
    http = app.test_client()
    id_header, id_claims = _verify(http, body["id_token"])
    at_header, _ = _verify(http, body["access_token"])
    assert id_header["alg"] == at_header["alg"] == "ES256"
    assert id_header["kid"] == at_header["kid"]  # one alg for both: one key signs both
    assert id_claims["at_hash"] == oidc_token_hash(body["access_token"], "ES256")
    # OIDC Core 15.1: the RS256 key is published all the same, for clients that expect RS256.
    assert sorted(k["alg"] for k in http.get("/oauth/jwks").json["keys"]) == ["ES256", "RS256"]
    assert _key_rows(engine) == 2


def test_id_token_alg_setting_refuses_an_unsupported_alg() -> None:
    with pytest.raises(Exception, match="OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG"):
        load_settings({"OAUTH_SESSIONS_ISSUER": ISSUER,
                       "OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG": "HS256"})
    default = load_settings({"OAUTH_SESSIONS_ISSUER": ISSUER})
    assert (default.signing_alg, default.id_token_signing_alg) == ("ES256", "RS256")


def test_introspection_jwt_is_signed_with_the_access_token_alg(engine: Engine) -> None:
    p = provider(engine)
    token = p.tokens()["access_token"]
    answer = p.introspect(token, headers={**p.rs_auth,
                                          "Accept": "application/token-introspection+jwt"})
    assert answer.status_code == 200
    head = _header(answer.get_data(as_text=True))
    assert head["alg"] == "ES256" and head["kid"] == _header(token)["kid"]


def test_rotating_both_algs_keeps_old_tokens_through_the_grace_and_not_after(engine: Engine) -> None:
    with freeze_time(T0):
        app = make_app(engine)
        body = _tokens(app, engine)
    store: KeyStore = get_state(app).services.keys
    rotated_at = T0 + timedelta(seconds=10)
    with freeze_time(rotated_at):
        new = store.rotate_all()
    assert sorted(k.alg for k in new) == ["ES256", "RS256"]
    assert all(k.activated_at == rotated_at for k in new)
    assert _key_rows(engine) == 4

    def check(at: datetime) -> tuple[bool, bool]:
        store.invalidate()
        with freeze_time(at), app.app_context():
            keyset = store.keyset()
            results = []
            for verify, token, error in (
                (verify_access_token, body["access_token"], InvalidAccessToken),
                (verify_id_token_hint, body["id_token"], InvalidIdTokenHint),
            ):
                try:
                    # The access token itself expired long before: look at the signature only.
                    verify(keyset, token, issuer=ISSUER, **(
                        {"leeway": 10**6} if verify is verify_access_token else {}))
                    results.append(True)
                except error as exc:
                    assert "retired" in exc.reason
                    results.append(False)
            return results[0], results[1]

    grace = store.publish_grace
    assert check(rotated_at + grace - timedelta(seconds=1)) == (True, True)
    assert check(rotated_at + grace) == (False, False)
    with freeze_time(rotated_at + grace):
        store.invalidate()
        published = {k["kid"] for k in app.test_client().get("/oauth/jwks").json["keys"]}
    assert published == {k.kid for k in new}
    # new tokens are signed by the new keys, each with its own alg
    with freeze_time(rotated_at + timedelta(seconds=1)):
        store.invalidate()
        fresh = _tokens(app, engine)
    by_alg = {k.alg: k.kid for k in new}
    assert _header(fresh["access_token"])["kid"] == by_alg["ES256"]
    assert _header(fresh["id_token"])["kid"] == by_alg["RS256"]


def test_a_newly_configured_alg_gets_its_key_and_the_old_ones_stay(engine: Engine) -> None:
    """An existing table with only an ES256 key (single-key deployments) needs no migration:
    the first use creates the missing RS256 key beside it."""
    with freeze_time(T0):
        single = KeyStore(engine, alg="ES256", publish_grace=GRACE)
        only = generate_signing_key("ES256", now=T0, activated_at=T0)
        single._save([], [only])
        assert _key_rows(engine) == 1
        both = KeyStore(engine, alg="ES256", id_token_alg="RS256", publish_grace=GRACE)
        keyset = both.keyset()
        assert keyset.active == only
        rs = keyset.active_for("RS256")
        assert rs is not None and rs.activated_at == T0
        assert _key_rows(engine) == 2
        both.ensure_active()
        assert _key_rows(engine) == 2  # idempotent once every alg has its key


def test_rotate_keys_rotates_one_alg_and_leaves_the_other_active(engine: Engine) -> None:
    with freeze_time(T0):
        store = KeyStore(engine, alg="ES256", id_token_alg="RS256", publish_grace=GRACE)
        before = store.keyset()
        es, rs = before.active_for("ES256"), before.active_for("RS256")
    with freeze_time(T0 + timedelta(seconds=5)):
        new = store.rotate("RS256")
        after = store.keyset()
    later = T0 + timedelta(seconds=6)
    assert new.alg == "RS256" and after.active_for("RS256", now=later) == new
    assert after.active_for("ES256", now=later) == es  # untouched
    assert rs is not None and es is not None
    retired = {k.kid: k.retired_at for k in store.load()}
    assert retired[rs.kid] == T0 + timedelta(seconds=5) and retired[es.kid] is None


# --------------------------------------------------------------------------- KeySet, pure


def _two_alg_keys() -> list[Any]:
    return rotate(rotate([], "ES256", T0), "RS256", T0)


def test_each_alg_has_its_own_active_key_and_the_default_is_signing_alg() -> None:
    keys = _two_alg_keys()
    assert [k.retired_at for k in keys] == [None, None]  # rotating RS256 left ES256 alone
    keyset = KeySet(keys, publish_grace=GRACE, now=T0, signing_alg="ES256")
    claims = {"iss": ISSUER, "sub": "u", "aud": "c", "exp": 2**31, "iat": 1, "jti": "j",
              "client_id": "c", "sid": "s"}
    assert _header(sign_access_token(keyset, claims))["alg"] == "ES256"
    assert _header(sign_jwt(keyset, claims, typ="logout+jwt"))["alg"] == "ES256"
    assert _header(sign_id_token(keyset, claims))["alg"] == "ES256"
    id_token = sign_id_token(keyset, claims, access_token="at", alg="RS256")
    assert _header(id_token)["alg"] == "RS256"
    assert verify_id_token_hint(keyset, id_token, issuer=ISSUER)["at_hash"] == \
        oidc_token_hash("at", "RS256")


def test_an_alg_without_an_active_key_is_refused_by_name() -> None:
    keyset = KeySet(rotate([], "ES256", T0), publish_grace=GRACE, now=T0, signing_alg="ES256")
    assert keyset.active_for("RS256") is None
    with pytest.raises(RuntimeError, match="for RS256"):
        sign_id_token(keyset, {"iss": ISSUER, "sub": "u", "aud": "c", "exp": 1, "iat": 1},
                      alg="RS256")
    with pytest.raises(ValueError, match="HS256"):
        KeySet([], publish_grace=GRACE, signing_alg="HS256")


def test_a_retired_key_of_one_alg_does_not_fall_back_to_another_alg() -> None:
    es, rs = _two_alg_keys()
    keyset = KeySet([replace(es, retired_at=T0), rs], publish_grace=GRACE, now=T0,
                    signing_alg="ES256")
    assert keyset.active_for("ES256") is None
    with pytest.raises(RuntimeError, match="for ES256"):
        _ = keyset.active
    assert keyset.find(es.kid) == replace(es, retired_at=T0)  # still published in its grace
