"""``POST /oauth/introspect`` through HTTP on SQLite and PostgreSQL (RFC 7662, RFC 9701).

Tokens come from the real code flow; the session is changed through the real stores, and the
very next introspection must see it (no cache in the way).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import (
    HeaderHost,
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    jwt_claims,
    make_app,
    obtain_code,
    pkce_pair,
    user_headers,
)
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import Engine

from oauth_sessions import get_state
from oauth_sessions.core.types import Aal
from oauth_sessions.flask.state import get_keyset
from oauth_sessions.jose.access_tokens import build_access_token_claims, sign_access_token
from oauth_sessions.jose.keys import KeySet, generate_signing_key
from oauth_sessions.protocol.tokens import build_token_response
from oauth_sessions.storage.clients import ClientInfo

T0 = datetime(2030, 5, 1, 8, 0, 0, tzinfo=UTC)
INACTIVE = {"active": False}


@dataclass
class Provider:
    app: Flask
    http: FlaskClient
    client: ClientInfo
    secret: str
    resource_server: ClientInfo
    rs_secret: str
    user: uuid.UUID

    @property
    def rs_auth(self) -> dict[str, str]:
        return {"Authorization": basic_auth(self.resource_server.client_id, self.rs_secret)}

    def tokens(self, *, aal: str = "aal1", amr: str = "password", **extra: str) -> dict[str, Any]:
        if aal == "aal1":  # "payments" needs aal2 (SCOPE_MIN_AAL): an aal1 sign-in cannot ask for it
            extra.setdefault("scope", "openid profile offline_access")
        verifier, challenge = pkce_pair()
        code = obtain_code(self.http, self.client, self.user, challenge,
                           headers=user_headers(self.user, aal=aal, amr=amr), **extra)["code"]
        response = exchange_code(self.http, self.client, self.secret, code, verifier)
        assert response.status_code == 200, response.json
        body: dict[str, Any] = response.json
        return body

    def introspect(self, token: str, headers: dict[str, str] | None = None, **form: str) -> Any:
        return self.http.post("/oauth/introspect", data={"token": token, **form},
                              headers=self.rs_auth if headers is None else headers)

    def answer(self, token: str, **form: str) -> dict[str, Any]:
        response = self.introspect(token, **form)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        body: dict[str, Any] = response.json
        return body

    @property
    def sessions(self) -> Any:
        return get_state(self.app).services.sessions


def provider(engine: Engine, **options: Any) -> Provider:
    options.setdefault("scope_min_aal", {"payments": "aal2"})
    app = make_app(engine, **options)
    client, secret = create_client(app, scopes="openid profile payments offline_access")
    rs, rs_secret = create_client(app, name="resource server", can_introspect=True)
    assert secret and rs_secret
    return Provider(app, app.test_client(), client, secret, rs, rs_secret, create_user(engine))


def sid_of(access_token: str) -> uuid.UUID:
    return uuid.UUID(jwt_claims(access_token)["sid"])


# --------------------------------------------------------------------------- the active answer


def test_an_active_access_token_is_described_with_every_member(engine: Engine) -> None:
    p = provider(engine)
    with freeze_time(T0):
        tokens = p.tokens(amr="password")
        body = p.answer(tokens["access_token"], token_type_hint="access_token")
    now = int(T0.timestamp())
    assert body == {
        "active": True, "scope": "openid profile offline_access",
        "client_id": p.client.client_id, "sub": str(p.user), "exp": now + 300, "iat": now,
        "iss": "http://127.0.0.1:5000", "aud": "http://127.0.0.1:5000", "token_type": "Bearer",
        "jti": body["jti"], "sid": str(sid_of(tokens["access_token"])), "aal": "aal1",
        "acr": "aal1", "amr": ["password"], "auth_time": now,
    }
    assert isinstance(body["jti"], str) and len(body["jti"]) >= 16


def test_client_secret_post_works_as_well_when_registered(engine: Engine) -> None:
    p = provider(engine)
    rs, secret = create_client(p.app, name="post rs", can_introspect=True,
                               token_endpoint_auth_method="client_secret_post")
    tokens = p.tokens()
    response = p.http.post("/oauth/introspect", data={
        "token": tokens["access_token"], "client_id": rs.client_id, "client_secret": secret})
    assert response.json["active"] is True


def own_client_provider(engine: Engine) -> Provider:
    """A provider whose client may introspect, so that it can ask about its own refresh tokens."""
    p = provider(engine)
    p.resource_server, p.rs_secret = p.client, p.secret
    assert get_state(p.app).services.clients.update_metadata(p.client.id, can_introspect=True)
    return p


def test_the_current_refresh_token_is_active_and_a_superseded_one_is_not(engine: Engine) -> None:
    p = own_client_provider(engine)
    tokens = p.tokens()
    first = tokens["refresh_token"]
    body = p.answer(first, token_type_hint="refresh_token")
    # RFC 7662 2.2: token_type is an RFC 6749 7.1 access token type; a refresh token has none
    assert "token_type" not in body and body["token_use"] == "refresh_token"
    assert body["client_id"] == p.client.client_id
    assert body["sid"] == str(sid_of(tokens["access_token"]))
    assert p.answer(first, token_type_hint="access_token")["active"] is True  # the hint is a hint
    refreshed = p.http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": first},
                            headers={"Authorization": basic_auth(p.client.client_id, p.secret)})
    assert refreshed.status_code == 200
    assert p.answer(first) == INACTIVE
    assert p.answer(refreshed.json["refresh_token"])["active"] is True
    # Introspecting the old token only read the row: the session was not revoked as a reuse.
    assert p.answer(refreshed.json["access_token"])["active"] is True


# --------------------------------------------------------------------------- the session now, frozen time


def test_active_one_second_before_not_after_and_inactive_at_and_after(engine: Engine) -> None:
    p = provider(engine, session_timebox=3600, access_token_lifetime=86400)
    with freeze_time(T0) as clock:
        token = p.tokens()["access_token"]
        clock.move_to(T0 + timedelta(seconds=3599))
        assert p.answer(token)["active"] is True
        clock.move_to(T0 + timedelta(seconds=3600))
        assert p.answer(token) == INACTIVE
        clock.move_to(T0 + timedelta(seconds=3601))
        assert p.answer(token) == INACTIVE


def test_inactive_once_the_session_has_not_been_used_for_the_inactivity_timeout(engine: Engine) -> None:
    p = provider(engine, inactivity_timeout=600, access_token_lifetime=86400)
    with freeze_time(T0) as clock:
        tokens = p.tokens()
        clock.move_to(T0 + timedelta(seconds=599))
        assert p.answer(tokens["access_token"])["active"] is True
        clock.move_to(T0 + timedelta(seconds=600))
        assert p.answer(tokens["access_token"]) == INACTIVE
        assert p.answer(tokens["refresh_token"]) == INACTIVE


def test_a_revoked_session_is_inactive_at_the_very_next_introspection(engine: Engine) -> None:
    p = provider(engine)
    tokens = p.tokens()
    assert p.answer(tokens["access_token"])["active"] is True
    assert p.sessions.revoke(sid_of(tokens["access_token"]), reason="test")
    assert p.answer(tokens["access_token"]) == INACTIVE
    assert p.answer(tokens["refresh_token"]) == INACTIVE


def test_revoking_through_the_revocation_endpoint_is_seen_at_once(engine: Engine) -> None:
    p = provider(engine)
    tokens = p.tokens()
    assert p.answer(tokens["access_token"])["active"] is True
    revoked = p.http.post("/oauth/revoke", data={"token": tokens["refresh_token"]},
                          headers={"Authorization": basic_auth(p.client.client_id, p.secret)})
    assert revoked.status_code == 200
    assert p.answer(tokens["access_token"]) == INACTIVE


def test_deleting_the_client_makes_its_tokens_inactive(engine: Engine) -> None:
    p = provider(engine)
    tokens = p.tokens()
    assert p.answer(tokens["access_token"])["active"] is True
    assert get_state(p.app).services.clients.delete(p.client.id)
    assert p.answer(tokens["access_token"]) == INACTIVE
    assert p.answer(tokens["refresh_token"]) == INACTIVE


def test_a_downgraded_session_is_inactive_for_aal2_scopes_and_still_active_for_others(engine: Engine) -> None:
    p = provider(engine)
    tokens = p.tokens(aal="aal2", amr="password,totp")
    sid = sid_of(tokens["access_token"])
    with p.app.app_context():
        session = p.sessions.get(sid)
        state = get_state(p.app)
        profile_only = build_token_response(
            settings=state.settings, keyset=state.services.keys.keyset(), session=session,
            client=p.client, scopes=("openid", "profile"), refresh_token=None,
            amr=["password", "totp"], auth_time=int(session.created_at.timestamp()),
            include_id_token=False)["access_token"]
    assert p.answer(tokens["access_token"])["aal"] == "aal2"
    assert p.sessions.set_aal(sid, Aal.AAL1) is not None
    assert p.answer(tokens["access_token"]) == INACTIVE  # carries "payments", which needs aal2
    downgraded = p.answer(profile_only)
    assert downgraded["active"] is True and downgraded["aal"] == downgraded["acr"] == "aal1"


def test_a_resource_server_with_its_own_minimum_aal_sees_aal1_tokens_inactive(engine: Engine) -> None:
    p = provider(engine)
    strict, strict_secret = create_client(p.app, name="bank api", can_introspect=True, min_aal="aal2")
    token = p.tokens(scope="openid profile")["access_token"]
    assert p.answer(token)["active"] is True
    strict_auth = {"Authorization": basic_auth(strict.client_id, strict_secret)}
    assert p.introspect(token, headers=strict_auth).json == INACTIVE


# --------------------------------------------------------------------------- who may ask


def test_callers_that_are_not_authenticated_resource_servers_get_invalid_client(engine: Engine) -> None:
    p = provider(engine)
    token = p.tokens()["access_token"]
    refused = {
        "no authentication": {},
        "wrong secret": {"Authorization": basic_auth(p.resource_server.client_id, "x" * 43)},
        "unknown client": {"Authorization": basic_auth(str(uuid.uuid4()), p.rs_secret)},
        "a client without the introspection right": {
            "Authorization": basic_auth(p.client.client_id, p.secret)},
    }
    for name, headers in refused.items():
        response = p.introspect(token, headers=headers)
        assert response.status_code == 401, name
        assert response.json["error"] == "invalid_client", name
        assert "active" not in response.json, name
        assert response.headers["WWW-Authenticate"].startswith("Basic"), name


def test_two_authentication_methods_at_once_or_the_unregistered_one_are_refused(engine: Engine) -> None:
    p = provider(engine)
    token = p.tokens()["access_token"]
    both = p.introspect(token, client_secret=p.rs_secret)
    post_instead_of_basic = p.http.post("/oauth/introspect", data={
        "token": token, "client_id": p.resource_server.client_id, "client_secret": p.rs_secret})
    assert both.status_code == post_instead_of_basic.status_code == 401
    assert both.json["error"] == post_instead_of_basic.json["error"] == "invalid_client"


# --------------------------------------------------------------------------- forged and garbage


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_forged_access_tokens_are_inactive(engine: Engine) -> None:
    p = provider(engine)
    good = p.tokens()["access_token"]
    payload = good.split(".")[1]
    claims = jwt_claims(good)
    with p.app.app_context():
        keyset = get_keyset(p.app)
        kid = keyset.active.kid
        public = json.dumps(keyset.jwks()["keys"][0]).encode()
    now = datetime.now(UTC)
    stranger = KeySet([generate_signing_key("RS256", kid=kid, now=now, activated_at=now)],
                      publish_grace=timedelta(hours=1))

    def signed_by(keys: KeySet, **changes: Any) -> str:
        return sign_access_token(keys, {**claims, **changes})

    def hs256(key: bytes) -> str:
        head = _b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "at+jwt"}).encode())
        body = _b64(json.dumps(claims).encode())
        return f"{head}.{body}.{_b64(hmac.digest(key, f'{head}.{body}'.encode(), hashlib.sha256))}"

    none_head = _b64(json.dumps({"alg": "none", "kid": kid, "typ": "at+jwt"}).encode())
    with p.app.app_context():
        ours = get_keyset(p.app)
        forged = {
            "another key with our kid": signed_by(stranger),
            "alg none": f"{none_head}.{payload}.",
            "HS256 keyed with our public key": hs256(public),
            "expired": signed_by(ours, exp=int(now.timestamp()) - 1, iat=int(now.timestamp()) - 301),
            "wrong issuer": signed_by(ours, iss="https://evil.example"),
            "wrong audience": signed_by(ours, aud="https://other.example"),
            "another session id": signed_by(ours, sid=str(uuid.uuid4())),
            "another client id": signed_by(ours, client_id=p.resource_server.client_id),
        }
    assert p.answer(good)["active"] is True
    answers = {name: p.answer(token) for name, token in forged.items()}
    assert answers == dict.fromkeys(forged, INACTIVE)


@pytest.mark.parametrize("token", [
    "x", "osr1_", "osr1_" + "A" * 75, "a.b.c", "....", "e30.e30.e30", "Bearer abc", "%00",
    "é" * 50, "A" * 9000, "eyJhbGciOiJub25lIn0." * 3, '{"alg":"none"}',
])
def test_garbage_tokens_answer_inactive_never_an_error(engine: Engine, token: str) -> None:
    p = provider(engine)
    for hint in ("access_token", "refresh_token", "nonsense"):
        response = p.introspect(token, token_type_hint=hint)
        assert (response.status_code, response.json) in ((200, INACTIVE), (400, response.json))
        if response.status_code == 400:
            assert response.json["error"] == "invalid_request"


def test_malformed_requests_get_invalid_request_and_never_500(engine: Engine) -> None:
    p = provider(engine)
    missing = p.http.post("/oauth/introspect", data={}, headers=p.rs_auth)
    empty = p.introspect("")
    twice = p.http.post("/oauth/introspect", data={"token": ["a", "b"]}, headers=p.rs_auth)
    not_utf8 = p.http.post("/oauth/introspect", data=b"token=%ff%fe", headers={
        **p.rs_auth, "Content-Type": "application/x-www-form-urlencoded"})
    as_json = p.http.post("/oauth/introspect", json={"token": "abc"}, headers=p.rs_auth)
    # Refused as malformed by the blueprint's parameter check, or read as a token that is bad.
    assert (not_utf8.status_code, not_utf8.json.get("error", not_utf8.json)) in (
        (400, "invalid_request"), (200, INACTIVE))
    for name, response in {"missing": missing, "empty": empty, "twice": twice, "as_json": as_json}.items():
        assert response.status_code == 400, (name, response.get_data(as_text=True))
        assert response.json["error"] == "invalid_request"
    assert p.http.get("/oauth/introspect", headers=p.rs_auth).status_code == 405


# --------------------------------------------------------------------------- RFC 9701


def test_the_jwt_response_is_signed_by_the_provider_for_the_caller(engine: Engine) -> None:
    p = provider(engine)
    token = p.tokens()["access_token"]
    response = p.introspect(token, headers={**p.rs_auth, "Accept": "application/token-introspection+jwt"})
    assert response.status_code == 200
    assert response.mimetype == "application/token-introspection+jwt"
    jwt = response.get_data(as_text=True)
    head = json.loads(base64.urlsafe_b64decode(jwt.split(".")[0] + "=="))
    assert head["typ"] == "token-introspection+jwt"
    from oauth_sessions.jose.jws import verify_jws  # the verification half of the same primitive

    with p.app.app_context():
        claims = verify_jws(get_keyset(p.app), jwt, ValueError, frozenset({"token-introspection+jwt"}),
                             datetime.now(UTC).timestamp())  # type: ignore[arg-type]
    assert claims["iss"] == "http://127.0.0.1:5000" and claims["aud"] == p.resource_server.client_id
    assert claims["token_introspection"]["active"] is True
    assert claims["token_introspection"]["sid"] == str(sid_of(token))
    assert p.introspect(token).mimetype == "application/json"  # only when asked for


def test_tokens_minted_by_hand_with_an_unknown_session_are_inactive(engine: Engine) -> None:
    p = provider(engine)
    with p.app.app_context():
        claims = build_access_token_claims(
            issuer="http://127.0.0.1:5000", subject=str(p.user), audience="http://127.0.0.1:5000",
            client_id=p.client.client_id, scope="openid", session_id=str(uuid.uuid4()), aal="aal1",
            amr=["pwd"], auth_time=0, lifetime=300)
        token = sign_access_token(get_keyset(p.app), claims)
    assert p.answer(token) == INACTIVE


def test_username_is_reported_when_the_host_adapter_provides_it(engine: Engine) -> None:
    class NamingHost(HeaderHost):
        def username_for(self, user_id: uuid.UUID) -> str | None:
            return f"user-{user_id.hex[:6]}"

    p = provider(engine, host=NamingHost())
    body = p.answer(p.tokens()["access_token"])
    assert body["username"] == f"user-{p.user.hex[:6]}"
    assert "username" not in provider(engine).answer(p.tokens()["access_token"])


def test_issue15_item3_refresh_tokens_are_active_only_to_their_own_client(engine: Engine) -> None:
    """Issue 15 item 3, RFC 7662 section 4 (the server decides what a caller may learn): another
    client, resource server included, gets exactly {"active": false} for a good refresh token,
    while the token's own client sees it active and its access token stays visible to all."""
    p = provider(engine)
    tokens = p.tokens()
    assert p.answer(tokens["refresh_token"]) == INACTIVE
    assert p.answer(tokens["refresh_token"], token_type_hint="refresh_token") == INACTIVE
    assert p.answer(tokens["access_token"])["active"] is True
    own = own_client_provider(engine)
    own_tokens = own.tokens()
    body = own.answer(own_tokens["refresh_token"])
    assert body["active"] is True and body["client_id"] == own.client.client_id
