"""The whole authorization code flow through HTTP, on SQLite and PostgreSQL.

authorize → consent → code → tokens → userinfo → refresh → revoke, checking every claim of
every token against the session row it came from.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from factories import (
    ISSUER,
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
    user_headers,
)
from freezegun import freeze_time
from joserfc import jws
from joserfc.jwk import KeySet as JoseKeySet
from sqlalchemy import Engine, func, select

from oauth_sessions import get_state
from oauth_sessions.jose.id_tokens import oidc_token_hash
from oauth_sessions.storage.models import MfaAmrClaim, OAuthAuthorizationCode, Session


def _verify(http, token: str) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    """Verify a JWT with the published JWKS only, as a relying party would."""
    keys = JoseKeySet.import_key_set(http.get("/oauth/jwks").json)
    obj = jws.deserialize_compact(token, keys, algorithms=["ES256", "EdDSA", "RS256"])
    return obj.headers(), json.loads(obj.payload)


def test_full_flow_issues_session_bound_tokens_and_revocation_ends_them(engine: Engine) -> None:
    app = make_app(engine)
    client, secret = create_client(app)
    assert secret is not None
    user = create_user(engine)
    http = app.test_client()
    verifier, challenge = pkce_pair()
    auth_time = int(datetime.now(UTC).timestamp()) - 30
    headers = user_headers(user, amr="password", auth_time=auth_time)

    # 1. authorize: a first request shows the consent page (nothing granted yet)
    first = http.get("/oauth/authorize", headers=headers, query_string={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0], "scope": "openid profile offline_access",
        "state": "xyz", "nonce": "n-0S6_WzA2Mj", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    assert first.status_code == 200 and first.json["consent"] is True
    assert first.json["scopes"] == ["openid", "profile", "offline_access"]
    assert first.json["granted_scopes"] == []

    # 2. consent approved: redirect to the registered URI with code, state and iss
    form = dict(first.json["form_fields"]) | {"decision": "approve"}
    approved = http.post("/oauth/authorize", data=form, headers=headers)
    assert approved.status_code == 302
    location = approved.headers["Location"]
    assert location.startswith(client.redirect_uris[0] + "?")
    query = dict(p.split("=", 1) for p in location.split("?", 1)[1].split("&"))
    assert query["state"] == "xyz"
    assert query["iss"] == "http%3A%2F%2F127.0.0.1%3A5000"
    code = query["code"]

    # 3. the code is stored as its SHA-256 only
    with engine.connect() as conn:
        stored = conn.execute(select(OAuthAuthorizationCode.__table__.c.authorization_code)).scalars().all()
    assert code not in stored and len(stored) == 1 and len(stored[0]) == 64

    # 4. tokens
    response = exchange_code(http, client, secret, code, verifier)
    assert response.status_code == 200, response.json
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["scope"] == "openid profile offline_access"
    assert body["refresh_token"].startswith("osr1_")

    with engine.connect() as conn:
        row = conn.execute(select(Session.__table__)).one()
        amr_rows = conn.execute(select(MfaAmrClaim.__table__.c.authentication_method)).scalars().all()
    assert row.user_id == user and row.oauth_client_id == client.id
    assert row.scopes == "openid profile offline_access" and row.aal.value == "aal1"
    assert row.refresh_token_counter == 0 and row.refresh_token_hmac_key
    assert row.not_after is not None
    assert amr_rows == ["password"]

    header, access = _verify(http, body["access_token"])
    assert header["typ"] == "at+jwt" and header["kid"]
    assert access["iss"] == ISSUER and access["aud"] == ISSUER
    assert access["sub"] == str(user) and access["client_id"] == client.client_id
    assert access["sid"] == str(row.id)
    assert access["scope"] == "openid profile offline_access"
    assert access["aal"] == "aal1" and access["acr"] == "aal1"
    assert access["amr"] == ["password"] and access["auth_time"] == auth_time
    assert access["exp"] - access["iat"] == 300 and access["jti"]

    id_header, id_token = _verify(http, body["id_token"])
    # ID tokens are RS256 by default (OIDC Discovery 1.0 section 3), access tokens ES256.
    assert id_header["typ"] == "JWT" and (id_header["alg"], header["alg"]) == ("RS256", "ES256")
    assert id_header["kid"] != header["kid"]
    assert id_token["iss"] == ISSUER and id_token["aud"] == client.client_id
    assert id_token["azp"] == client.client_id and id_token["sub"] == str(user)
    assert id_token["sid"] == str(row.id) and id_token["nonce"] == "n-0S6_WzA2Mj"
    assert id_token["acr"] == "aal1" and id_token["amr"] == ["password"]
    assert id_token["auth_time"] == auth_time
    assert id_token["at_hash"] == oidc_token_hash(body["access_token"], id_header["alg"])

    # 5. userinfo
    info = http.get("/oauth/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert info.status_code == 200
    assert info.json == {"sub": str(user), "name": f"User {user.hex[:6]}"}

    # 6. refresh: same session, new refresh token, same claims
    refreshed = http.post("/oauth/token", data={"grant_type": "refresh_token",
                                                "refresh_token": body["refresh_token"]},
                          headers={"Authorization": basic_auth(client.client_id, secret)})
    assert refreshed.status_code == 200, refreshed.json
    assert refreshed.json["refresh_token"] != body["refresh_token"]
    _, access2 = _verify(http, refreshed.json["access_token"])
    assert access2["sid"] == access["sid"] and access2["auth_time"] == auth_time
    _, id2 = _verify(http, refreshed.json["id_token"])
    assert id2["sid"] == str(row.id) and id2["auth_time"] == auth_time

    # 7. revoke the refresh token: the session ends, every token of it dies
    revoked = http.post("/oauth/revoke", data={"token": refreshed.json["refresh_token"],
                                               "token_type_hint": "refresh_token"},
                        headers={"Authorization": basic_auth(client.client_id, secret)})
    assert revoked.status_code == 200
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Session.__table__)).scalar() == 0
    after = http.get("/oauth/userinfo",
                     headers={"Authorization": "Bearer " + refreshed.json["access_token"]})
    assert after.status_code == 401
    assert 'error="invalid_token"' in after.headers["WWW-Authenticate"]


def test_remembered_consent_skips_the_page_for_the_same_or_fewer_scopes(engine: Engine) -> None:
    app = make_app(engine)
    client, _ = create_client(app)
    user = create_user(engine)
    http = app.test_client()
    _, challenge = pkce_pair()
    obtain_code(http, client, user, challenge)  # approves consent once
    params = {"response_type": "code", "client_id": client.client_id,
              "redirect_uri": client.redirect_uris[0], "scope": "openid",
              "code_challenge": challenge, "code_challenge_method": "S256"}
    again = http.get("/oauth/authorize", query_string=params, headers=user_headers(user))
    assert again.status_code == 302 and "code=" in again.headers["Location"]
    forced = http.get("/oauth/authorize", query_string=params | {"prompt": "consent"},
                      headers=user_headers(user))
    assert forced.status_code == 200 and forced.json["consent"] is True
    assert forced.json["granted_scopes"] == ["openid", "profile", "offline_access"]


def test_consent_for_more_scopes_is_asked_again(engine: Engine) -> None:
    app = make_app(engine)
    client, _ = create_client(app, scopes="openid profile email")
    user = create_user(engine)
    http = app.test_client()
    _, challenge = pkce_pair()
    obtain_code(http, client, user, challenge, scope="openid")
    wider = http.get("/oauth/authorize", headers=user_headers(user), query_string={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0], "scope": "openid email",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    assert wider.status_code == 200 and wider.json["granted_scopes"] == ["openid"]


def test_denied_consent_redirects_access_denied_and_writes_no_code(engine: Engine) -> None:
    app = make_app(engine)
    client, _ = create_client(app)
    user = create_user(engine)
    http = app.test_client()
    _, challenge = pkce_pair()
    page = http.get("/oauth/authorize", headers=user_headers(user), query_string={
        "response_type": "code", "client_id": client.client_id, "state": "s1",
        "redirect_uri": client.redirect_uris[0], "code_challenge": challenge,
        "code_challenge_method": "S256"})
    form = dict(page.json["form_fields"]) | {"decision": "deny"}
    denied = http.post("/oauth/authorize", data=form, headers=user_headers(user))
    assert denied.status_code == 302
    assert "error=access_denied" in denied.headers["Location"]
    assert "state=s1" in denied.headers["Location"] and "iss=" in denied.headers["Location"]
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(OAuthAuthorizationCode.__table__)).scalar()
    assert count == 0


def test_consent_post_without_a_valid_ticket_is_refused(engine: Engine) -> None:
    """A cross-site form cannot approve on the user's behalf: the ticket binds user and request."""
    app = make_app(engine)
    client, _ = create_client(app)
    user, other = create_user(engine), create_user(engine)
    http = app.test_client()
    _, challenge = pkce_pair()
    page = http.get("/oauth/authorize", headers=user_headers(user), query_string={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0], "code_challenge": challenge,
        "code_challenge_method": "S256"})
    form = dict(page.json["form_fields"]) | {"decision": "approve"}
    forged = http.post("/oauth/authorize", data=form | {"consent_ticket": "x"},
                       headers=user_headers(user))
    assert forged.status_code == 400 and forged.json["error"] == "invalid_request"
    stolen = http.post("/oauth/authorize", data=form, headers=user_headers(other))
    assert stolen.status_code == 400
    tampered = http.post("/oauth/authorize", data=form | {"scope": "openid"},
                         headers=user_headers(user))
    assert tampered.status_code == 400


def test_public_client_gets_tokens_with_pkce_and_no_secret(engine: Engine) -> None:
    app = make_app(engine)
    client, secret = create_client(app, public=True)
    assert secret is None and client.token_endpoint_auth_method == "none"
    user = create_user(engine)
    http = app.test_client()
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge)["code"]
    response = exchange_code(http, client, None, code, verifier)
    assert response.status_code == 200 and "refresh_token" in response.json


def test_refresh_token_only_with_offline_access_or_the_setting(engine: Engine) -> None:
    app = make_app(engine)
    client, secret = create_client(app)
    user = create_user(engine)
    http = app.test_client()
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge, scope="openid profile")["code"]
    body = exchange_code(http, client, secret, code, verifier).json
    assert "refresh_token" not in body and "access_token" in body

    app2 = make_app(engine, always_issue_refresh_token=True)
    client2, secret2 = create_client(app2)
    http2 = app2.test_client()
    code2 = obtain_code(http2, client2, user, challenge, scope="openid")["code"]
    assert "refresh_token" in exchange_code(http2, client2, secret2, code2, verifier).json


def test_client_without_refresh_grant_never_gets_a_refresh_token(engine: Engine) -> None:
    app = make_app(engine)
    client, secret = create_client(app, grant_types=["authorization_code"])
    user = create_user(engine)
    http = app.test_client()
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge)["code"]
    assert "refresh_token" not in exchange_code(http, client, secret, code, verifier).json


def test_no_id_token_without_openid_scope(engine: Engine) -> None:
    app = make_app(engine)
    client, secret = create_client(app, scopes="profile")
    user = create_user(engine)
    http = app.test_client()
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge)["code"]
    body = exchange_code(http, client, secret, code, verifier).json
    assert "id_token" not in body and body["scope"] == "profile"
    info = http.get("/oauth/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert info.status_code == 403 and 'error="insufficient_scope"' in info.headers["WWW-Authenticate"]


def test_session_not_after_is_capped_by_the_client_maximum(engine: Engine) -> None:
    app = make_app(engine)
    client, secret = create_client(app, max_session_seconds=3600)
    user = create_user(engine)
    http = app.test_client()
    verifier, challenge = pkce_pair()
    with freeze_time("2026-11-25 10:00:00"):
        code = obtain_code(http, client, user, challenge)["code"]
        assert exchange_code(http, client, secret, code, verifier).status_code == 200
    with engine.connect() as conn:
        not_after = conn.execute(select(Session.__table__.c.not_after)).scalar_one()
    assert not_after == datetime(2026, 11, 25, 11, 0, tzinfo=UTC)


def test_revoking_consent_ends_the_users_sessions_with_that_client(engine: Engine) -> None:
    from oauth_sessions.flask.extension import revoke_consent

    app = make_app(engine)
    client, secret = create_client(app)
    user = create_user(engine)
    http = app.test_client()
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge)["code"]
    token = exchange_code(http, client, secret, code, verifier).json["access_token"]
    with app.app_context():
        assert revoke_consent(user, client.id) == 1
    assert http.get("/oauth/userinfo",
                    headers={"Authorization": "Bearer " + token}).status_code == 401
    page = http.get("/oauth/authorize", headers=user_headers(user), query_string={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0], "code_challenge": challenge,
        "code_challenge_method": "S256"})
    assert page.status_code == 200 and page.json["granted_scopes"] == []


def test_deleting_a_client_ends_all_its_sessions(engine: Engine) -> None:
    app = make_app(engine)
    client, secret = create_client(app)
    users = [create_user(engine) for _ in range(2)]
    http = app.test_client()
    verifier, challenge = pkce_pair()
    for user in users:
        code = obtain_code(http, client, user, challenge)["code"]
        assert exchange_code(http, client, secret, code, verifier).status_code == 200
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Session.__table__)).scalar() == 2
    assert get_state(app).services.clients.delete(client.id) is True
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Session.__table__)).scalar() == 0
    assert get_state(app).services.clients.get(client.id) is None


def test_code_expires_at_exactly_its_lifetime(engine: Engine) -> None:
    app = make_app(engine, authorization_code_lifetime=60)
    client, secret = create_client(app)
    user = create_user(engine)
    http = app.test_client()
    verifier, challenge = pkce_pair()
    start = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    with freeze_time(start):
        code_a = obtain_code(http, client, user, challenge)["code"]
        code_b = obtain_code(http, client, user, challenge)["code"]
    with freeze_time(start + timedelta(seconds=59, microseconds=999_999)):
        assert exchange_code(http, client, secret, code_a, verifier).status_code == 200
    with freeze_time(start + timedelta(seconds=60)):
        late = exchange_code(http, client, secret, code_b, verifier)
    assert late.status_code == 400 and late.json["error"] == "invalid_grant"
    assert late.json["error_description"] == "authorization code has expired"


def test_session_records_the_users_browser_not_the_clients_server(engine: Engine) -> None:
    app = make_app(engine)
    client, secret = create_client(app)
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    browser = app.test_client()
    browser.environ_base.update(REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Browser/1.0")
    code = obtain_code(browser, client, user, challenge)["code"]
    backend = app.test_client()
    backend.environ_base.update(REMOTE_ADDR="198.51.100.1", HTTP_USER_AGENT="ClientServer/2.0")
    assert exchange_code(backend, client, secret, code, verifier).status_code == 200
    with engine.connect() as conn:
        row = conn.execute(select(Session.__table__.c.user_agent, Session.__table__.c.ip)).one()
    assert row.user_agent == "Browser/1.0" and row.ip == "203.0.113.7"


def test_consent_ticket_expires_after_ten_minutes(engine: Engine) -> None:
    app = make_app(engine)
    client, _ = create_client(app)
    user = create_user(engine)
    http = app.test_client()
    _, challenge = pkce_pair()
    start = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    params = {"response_type": "code", "client_id": client.client_id,
              "redirect_uri": client.redirect_uris[0], "code_challenge": challenge,
              "code_challenge_method": "S256"}
    with freeze_time(start):
        page = http.get("/oauth/authorize", query_string=params, headers=user_headers(user))
    form = dict(page.json["form_fields"]) | {"decision": "approve", "host_csrf": "ignored"}
    with freeze_time(start + timedelta(seconds=601)):
        late = http.post("/oauth/authorize", data=form, headers=user_headers(user))
    assert late.status_code == 400 and late.json["error"] == "invalid_request"
    with freeze_time(start + timedelta(seconds=600)):
        in_time = http.post("/oauth/authorize", data=form, headers=user_headers(user))
    assert in_time.status_code == 302 and "code=" in in_time.headers["Location"]


def test_deleting_a_client_signals_each_ended_session_and_the_deletion(engine: Engine) -> None:
    from oauth_sessions.core import signals

    app = make_app(engine)
    client, secret = create_client(app)
    http = app.test_client()
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, create_user(engine), challenge)["code"]
    sid = _verify(http, exchange_code(http, client, secret, code, verifier).json["access_token"])[1]["sid"]
    revoked: list[tuple[str, str]] = []
    deleted: list[object] = []

    def on_revoked(sender: object, session: object, reason: str) -> None:
        revoked.append((str(session.id), reason))  # type: ignore[attr-defined]

    def on_deleted(sender: object, client_id: object) -> None:
        deleted.append(client_id)

    with signals.session_revoked.connected_to(on_revoked, sender=app), \
            signals.client_deleted.connected_to(on_deleted, sender=app):
        assert get_state(app).services.clients.delete(client.id) is True
    assert revoked == [(sid, "client_deleted")]
    assert deleted == [client.id]
