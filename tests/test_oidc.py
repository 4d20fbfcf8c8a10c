"""OpenID Connect: ID token claims, key rotation without downtime, UserInfo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from factories import (
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
    user_headers,
)
from freezegun import freeze_time
from sqlalchemy import Engine
from test_code_flow import _verify

from oauth_sessions import get_state


def _tokens(engine: Engine, app=None, **authorize: str):  # type: ignore[no-untyped-def]
    app = app or make_app(engine)
    client, secret = create_client(app)
    http = app.test_client()
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge, **authorize)["code"]
    return app, http, client, secret, exchange_code(http, client, secret, code, verifier).json


def test_id_token_has_no_nonce_when_the_request_had_none(engine: Engine) -> None:
    _, http, _, _, body = _tokens(engine, nonce="")
    _, claims = _verify(http, body["id_token"])
    assert "nonce" not in claims


def test_id_token_lifetime_follows_the_setting(engine: Engine) -> None:
    app = make_app(engine, id_token_lifetime=120, access_token_lifetime=60)
    _, http, _, _, body = _tokens(engine, app)
    _, id_claims = _verify(http, body["id_token"])
    _, access = _verify(http, body["access_token"])
    assert id_claims["exp"] - id_claims["iat"] == 120
    assert access["exp"] - access["iat"] == 60 and body["expires_in"] == 60


def test_key_rotation_keeps_old_tokens_valid_until_they_expire(engine: Engine) -> None:
    start = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    with freeze_time(start):
        app, http, client, secret, body = _tokens(engine)
        old_kids = {k["kid"] for k in http.get("/oauth/jwks").json["keys"]}
        old_kid = _verify(http, body["access_token"])[0]["kid"]
    start += timedelta(seconds=10)
    with freeze_time(start):
        keys = get_state(app).services.keys
        new = keys.rotate()
        kids = [k["kid"] for k in http.get("/oauth/jwks").json["keys"]]
        assert kids[0] == new.kid and set(kids[1:]) == old_kids  # newest first, old published
        assert len(kids) == 3 and old_kid in kids
        ok = http.get("/oauth/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
        assert ok.status_code == 200
        # new tokens are signed by the new key
        refreshed = http.post("/oauth/token", data={"grant_type": "refresh_token",
                                                    "refresh_token": body["refresh_token"]},
                              headers={"Authorization": f"Basic {_b64(client.client_id, secret)}"})
        header, _ = _verify(http, refreshed.json["access_token"])
        assert header["kid"] == new.kid
    grace = keys.publish_grace
    assert grace >= timedelta(seconds=300)  # at least the longest token lifetime
    with freeze_time(start + grace - timedelta(seconds=1)):
        keys.invalidate()
        assert old_kid in [k["kid"] for k in http.get("/oauth/jwks").json["keys"]]
    with freeze_time(start + grace):
        keys.invalidate()
        # the retired access-token key is gone; the untouched ID-token key stays
        assert {k["kid"] for k in http.get("/oauth/jwks").json["keys"]} == \
            (old_kids - {old_kid}) | {new.kid}


def _b64(client_id: str, secret: str | None) -> str:
    import base64

    return base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_userinfo_accepts_the_token_in_a_form_body_and_refuses_junk(engine: Engine) -> None:
    _, http, _, _, body = _tokens(engine)
    posted = http.post("/oauth/userinfo", data={"access_token": body["access_token"]})
    assert posted.status_code == 200 and posted.json["sub"]
    missing = http.get("/oauth/userinfo")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    for junk in ("junk", body["id_token"], body["refresh_token"], body["access_token"] + "x"):
        response = http.get("/oauth/userinfo", headers={"Authorization": "Bearer " + junk})
        assert response.status_code == 401 and response.json["error"] == "invalid_token"


def test_userinfo_refuses_an_expired_access_token_at_exp(engine: Engine) -> None:
    start = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    with freeze_time(start):
        _, http, _, _, body = _tokens(engine)
    bearer = {"Authorization": "Bearer " + body["access_token"]}
    with freeze_time(start + timedelta(seconds=299)):
        assert http.get("/oauth/userinfo", headers=bearer).status_code == 200
    with freeze_time(start + timedelta(seconds=300)):
        assert http.get("/oauth/userinfo", headers=bearer).status_code == 401


def test_userinfo_refuses_a_token_whose_session_expired(engine: Engine) -> None:
    start = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    app = make_app(engine, session_timebox=120, access_token_lifetime=300)
    with freeze_time(start):
        _, http, _, _, body = _tokens(engine, app)
    bearer = {"Authorization": "Bearer " + body["access_token"]}
    with freeze_time(start + timedelta(seconds=119)):
        assert http.get("/oauth/userinfo", headers=bearer).status_code == 200
    with freeze_time(start + timedelta(seconds=120)):
        assert http.get("/oauth/userinfo", headers=bearer).status_code == 401


def test_amr_from_the_host_is_carried_into_both_tokens(engine: Engine) -> None:
    app = make_app(engine)
    user = create_user(engine)
    client, secret = create_client(app)
    http = app.test_client()
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge,
                       headers=user_headers(user, aal="aal2", amr="password,totp"))["code"]
    body = exchange_code(http, client, secret, code, verifier).json
    for token in (body["access_token"], body["id_token"]):
        _, claims = _verify(http, token)
        assert claims["amr"] == ["password", "totp"] and claims["acr"] == "aal2"


def test_private_signing_keys_are_encrypted_at_rest_when_keys_are_configured(engine: Engine) -> None:
    from sqlalchemy import select

    from oauth_sessions.storage.key_encryption import KeyEncryptor
    from oauth_sessions.storage.models import OAuthSigningKey

    key = KeyEncryptor.generate_key()
    app = make_app(engine, encryption_keys={"k1": key}, encryption_key_id="k1")
    _, http, _, _, body = _tokens(engine, app)
    with engine.connect() as conn:
        stored = conn.execute(select(OAuthSigningKey.__table__.c.private_jwk)).scalars().all()
    assert len(stored) == 2  # the access-token key (ES256) and the ID-token key (RS256)
    assert all(s.startswith("enc1:k1:") and '"d"' not in s for s in stored)
    assert http.get("/oauth/userinfo",
                    headers={"Authorization": "Bearer " + body["access_token"]}).status_code == 200


def test_issue16_userinfo_applies_the_aal_policy_with_an_rfc9470_challenge(engine: Engine) -> None:
    """The design's enforcement table: /userinfo runs the aal policy, not only the signature.

    A token issued at aal1 for ``profile`` meets a provider (same database and keys) whose policy
    now wants aal2 for ``profile``: userinfo answers 401 ``insufficient_user_authentication``
    with ``acr_values`` (RFC 9470 section 3), as the resource helper does.
    """
    _, _, _, _, body = _tokens(engine)
    strict = make_app(engine, scope_min_aal={"profile": "aal2"})
    bearer = {"Authorization": "Bearer " + body["access_token"]}
    response = strict.test_client().get("/oauth/userinfo", headers=bearer)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="insufficient_user_authentication"' in challenge
    assert 'acr_values="aal2"' in challenge
    assert response.json["error"] == "insufficient_user_authentication"
    lenient = make_app(engine)
    assert lenient.test_client().get("/oauth/userinfo", headers=bearer).status_code == 200


def test_issue16_userinfo_refuses_a_refresh_token_as_bearer(engine: Engine) -> None:
    _, http, _, _, body = _tokens(engine)
    response = http.get("/oauth/userinfo", headers={"Authorization": "Bearer " + body["refresh_token"]})
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["WWW-Authenticate"]
