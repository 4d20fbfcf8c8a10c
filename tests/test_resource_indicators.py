"""RFC 8707 resource indicators through HTTP, on SQLite and PostgreSQL.

A client names registered resource servers with ``resource`` at ``/authorize``; the token
endpoint gives each access token one audience among the granted ones (code and refresh); a
registered resource server introspecting sees only the tokens meant for it, under its own
minimum aal; every refusal is ``invalid_target`` (or ``invalid_scope``) and writes nothing.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from factories import (
    ISSUER,
    basic_auth,
    create_client,
    create_user,
    jwt_claims,
    make_app,
    pkce_pair,
    query_of,
    snapshot,
    user_headers,
)
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import Engine, select
from test_store_support import add_client, add_user, make_store, new_session
from werkzeug.datastructures import MultiDict

from oauth_sessions import get_state
from oauth_sessions.core.errors import ResourceAmbiguous
from oauth_sessions.core.types import Aal
from oauth_sessions.storage import migrate
from oauth_sessions.storage.clients import ClientInfo
from oauth_sessions.storage.database import create_auth_engine
from oauth_sessions.storage.introspection_store import reserved_connections
from oauth_sessions.storage.models import OAuthSessionResources
from oauth_sessions.storage.resource_servers import ResourceServerInfo, record_session_resources

API = "https://api.example.test/v1"
MAIL = "https://mail.example.test"
PAY = "https://pay.example.test"
#: Registered nowhere.
OTHER = "https://other.example.test"
T0 = datetime(2030, 5, 1, 8, 0, 0, tzinfo=UTC)


@dataclass
class Setup:
    app: Flask
    http: FlaskClient
    client: ClientInfo
    secret: str
    user: uuid.UUID
    servers: dict[str, tuple[ResourceServerInfo, str]] = field(default_factory=dict)

    # ------------------------------------------------------------------ authorize

    def authorize(self, resources: list[str], *, scope: str = "openid profile offline_access",
                  aal: str = "aal1", amr: str = "password") -> Any:
        """GET /authorize with each resource as its own parameter, consent approved."""
        self.verifier, challenge = pkce_pair()
        pairs = [("response_type", "code"), ("client_id", self.client.client_id),
                 ("redirect_uri", self.client.redirect_uris[0]), ("scope", scope),
                 ("state", "st"), ("code_challenge", challenge),
                 ("code_challenge_method", "S256"), *(("resource", r) for r in resources)]
        headers = user_headers(self.user, aal=aal, amr=amr)
        response = self.http.get("/oauth/authorize?" + urlencode(pairs), headers=headers)
        if response.status_code == 200 and response.is_json and response.json.get("consent"):
            form = MultiDict([*map(tuple, response.json["form_fields"]), ("decision", "approve")])
            response = self.http.post(response.json["action"], data=form, headers=headers)
        return response

    def code(self, resources: list[str], **options: Any) -> str:
        response = self.authorize(resources, **options)
        assert response.status_code == 302, response.get_data(as_text=True)
        query = query_of(response.headers["Location"])
        assert "code" in query, query
        return query["code"]

    # ------------------------------------------------------------------ token endpoint

    def exchange(self, code: str, resources: Sequence[str] = ()) -> Any:
        data = MultiDict([("grant_type", "authorization_code"), ("code", code),
                          ("redirect_uri", self.client.redirect_uris[0]),
                          ("code_verifier", self.verifier), *(("resource", r) for r in resources)])
        return self.http.post("/oauth/token", data=data,
                              headers={"Authorization": basic_auth(self.client.client_id, self.secret)})

    def tokens(self, resources: list[str], token_resources: Sequence[str] = (),
               **options: Any) -> dict[str, Any]:
        response = self.exchange(self.code(resources, **options), token_resources)
        assert response.status_code == 200, response.json
        body: dict[str, Any] = response.json
        return body

    def refresh(self, refresh_token: str, resources: Sequence[str] = (),
                **form: str) -> Any:
        data = MultiDict([("grant_type", "refresh_token"), ("refresh_token", refresh_token),
                          *form.items(), *(("resource", r) for r in resources)])
        return self.http.post("/oauth/token", data=data,
                              headers={"Authorization": basic_auth(self.client.client_id, self.secret)})

    # ------------------------------------------------------------------ introspection

    def introspect_as(self, resource: str, token: str) -> dict[str, Any]:
        server, secret = self.servers[resource]
        response = self.http.post("/oauth/introspect", data={"token": token},
                                  headers={"Authorization": basic_auth(server.client_id, secret)})
        assert response.status_code == 200, response.json
        body: dict[str, Any] = response.json
        return body


def setup(engine: Engine, **options: Any) -> Setup:
    app = make_app(engine, **options)
    client, secret = create_client(app, scopes="openid profile payments offline_access")
    assert secret
    s = Setup(app, app.test_client(), client, secret, create_user(engine))
    store = get_state(app).services.resource_servers
    s.servers[API] = store.create(API, name="API")
    s.servers[MAIL] = store.create(MAIL, name="Mail")
    s.servers[PAY] = store.create(PAY, name="Payments", min_aal="aal2", scopes="payments")
    return s


def claims(token: str) -> dict[str, Any]:
    return jwt_claims(token)


# --------------------------------------------------------------------------- the happy path


def test_a_token_for_a_named_resource_is_meant_for_it_alone(engine: Engine) -> None:
    s = setup(engine)
    tokens = s.tokens([API])
    assert claims(tokens["access_token"])["aud"] == API
    assert tokens["scope"] == "openid profile offline_access"
    # RFC 7662 section 4 / RFC 9700 section 2.3: the resource server it is for sees it ...
    body = s.introspect_as(API, tokens["access_token"])
    assert body["active"] is True and body["aud"] == API and body["client_id"] == s.client.client_id
    # ... another registered resource server does not, and neither sees the refresh token.
    assert s.introspect_as(MAIL, tokens["access_token"]) == {"active": False}
    assert s.introspect_as(API, tokens["refresh_token"]) == {"active": False}


def test_the_granted_resources_are_recorded_with_the_session(engine: Engine) -> None:
    s = setup(engine)
    tokens = s.tokens([API, MAIL], [MAIL])
    sid = uuid.UUID(claims(tokens["access_token"])["sid"])
    table = OAuthSessionResources.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.session_id, table.c.resources)).all()
    assert [(uuid.UUID(str(r[0])), r[1]) for r in rows] == [(sid, f"{API} {MAIL}")]
    # The row goes with the session (ON DELETE CASCADE from auth.sessions).
    assert get_state(s.app).services.sessions.revoke(sid, reason="test")
    with engine.connect() as conn:
        assert conn.execute(select(table)).all() == []


def test_without_resource_the_audience_is_the_issuer_as_before(engine: Engine) -> None:
    s = setup(engine)
    tokens = s.tokens([])
    assert claims(tokens["access_token"])["aud"] == ISSUER
    # A registered resource server is not the default audience: it sees none of these.
    assert s.introspect_as(API, tokens["access_token"]) == {"active": False}
    # A client allowed to introspect sees default-audience tokens of every client, as before.
    rs, rs_secret = create_client(s.app, name="legacy rs", can_introspect=True)
    assert rs_secret
    answer = s.http.post("/oauth/introspect", data={"token": tokens["access_token"]},
                         headers={"Authorization": basic_auth(rs.client_id, rs_secret)}).json
    assert answer["active"] is True and answer["aud"] == ISSUER
    refreshed = s.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200
    assert claims(refreshed.json["access_token"])["aud"] == ISSUER


def test_a_client_that_introspects_sees_only_its_own_resource_bound_tokens(engine: Engine) -> None:
    s = setup(engine)
    tokens = s.tokens([API])
    other, other_secret = create_client(s.app, name="nosy", can_introspect=True)
    assert other_secret
    answer = s.http.post("/oauth/introspect", data={"token": tokens["access_token"]},
                         headers={"Authorization": basic_auth(other.client_id, other_secret)})
    assert answer.json == {"active": False}
    # The client it was issued to (allowed to introspect) still may.
    assert get_state(s.app).services.clients.update_metadata(s.client.id, can_introspect=True)
    own = s.http.post("/oauth/introspect", data={"token": tokens["access_token"]},
                      headers={"Authorization": basic_auth(s.client.client_id, s.secret)})
    assert own.json["active"] is True and own.json["aud"] == API


def test_the_issuer_may_be_named_to_get_a_token_for_userinfo(engine: Engine) -> None:
    s = setup(engine)
    tokens = s.tokens([API, ISSUER], [ISSUER])
    assert claims(tokens["access_token"])["aud"] == ISSUER
    assert s.http.get("/oauth/userinfo", headers={
        "Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200
    api = s.refresh(tokens["refresh_token"], [API])
    assert api.status_code == 200
    # A token meant for a resource server is not one /userinfo accepts (its aud is not ours).
    refused = s.http.get("/oauth/userinfo", headers={
        "Authorization": f"Bearer {api.json['access_token']}"})
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


# --------------------------------------------------------------------------- token endpoint


def test_the_token_request_picks_one_of_several_granted_resources(engine: Engine) -> None:
    s = setup(engine)
    code = s.code([API, MAIL])
    before = snapshot(engine)
    ambiguous = s.exchange(code)
    assert ambiguous.status_code == 400 and ambiguous.json["error"] == "invalid_target"
    two = s.exchange(code, [API, MAIL])
    assert two.status_code == 400 and two.json["error"] == "invalid_target"
    ungranted = s.exchange(code, [PAY])
    assert ungranted.status_code == 400 and ungranted.json["error"] == "invalid_target"
    assert snapshot(engine) == before  # the code is not spent by any refusal
    chosen = s.exchange(code, [MAIL])
    assert chosen.status_code == 200
    assert claims(chosen.json["access_token"])["aud"] == MAIL


def test_refresh_may_switch_among_granted_resources_never_widen(engine: Engine) -> None:
    s = setup(engine)
    tokens = s.tokens([API, MAIL], [API])
    refresh_token = tokens["refresh_token"]
    for resources in ([PAY], [OTHER], [API, MAIL], ["https://api.example.test/v1#frag"], []):
        before = snapshot(engine)
        refused = s.refresh(refresh_token, resources)
        assert refused.status_code == 400, (resources, refused.json)
        assert refused.json["error"] == "invalid_target", resources
        # Nothing written: in particular the counter did not move, so the token still works.
        assert snapshot(engine) == before, resources
    narrowed = s.refresh(refresh_token, [MAIL])
    assert narrowed.status_code == 200, narrowed.json
    assert claims(narrowed.json["access_token"])["aud"] == MAIL
    again = s.refresh(narrowed.json["refresh_token"], [API])
    assert claims(again.json["access_token"])["aud"] == API


def test_a_session_with_one_resource_refreshes_for_it_without_naming_it(engine: Engine) -> None:
    s = setup(engine)
    tokens = s.tokens([API])
    refreshed = s.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200
    assert claims(refreshed.json["access_token"])["aud"] == API


def test_a_session_without_resources_cannot_gain_one_at_refresh(engine: Engine) -> None:
    s = setup(engine)
    tokens = s.tokens([])
    before = snapshot(engine)
    refused = s.refresh(tokens["refresh_token"], [API])
    assert refused.status_code == 400 and refused.json["error"] == "invalid_target"
    assert snapshot(engine) == before
    assert s.refresh(tokens["refresh_token"]).status_code == 200


def test_a_code_without_resources_cannot_gain_one_at_the_token_endpoint(engine: Engine) -> None:
    s = setup(engine)
    code = s.code([])
    before = snapshot(engine)
    refused = s.exchange(code, [API])
    assert refused.status_code == 400 and refused.json["error"] == "invalid_target"
    assert snapshot(engine) == before


# --------------------------------------------------------------------------- hostile input


BAD_RESOURCES = {
    "fragment": API + "#section",
    "relative": "/v1/things",
    "no scheme": "api.example.test",
    "huge": "https://api.example.test/" + "a" * 2100,
    "empty": "",
    "space inside": "https://api.example.test/a b",
    "unknown": OTHER,
}


@pytest.mark.parametrize("name", sorted(BAD_RESOURCES))
def test_a_bad_resource_at_authorize_is_invalid_target_and_issues_no_code(
        engine: Engine, name: str) -> None:
    s = setup(engine)
    before = snapshot(engine)
    response = s.authorize([BAD_RESOURCES[name]])
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(s.client.redirect_uris[0])  # a verified client: redirected
    query = query_of(location)
    assert query["error"] == "invalid_target" and "code" not in query
    assert snapshot(engine) == before


def test_a_nul_in_resource_is_refused_before_anything_runs(engine: Engine) -> None:
    s = setup(engine)
    before = snapshot(engine)
    response = s.authorize([API + "\x00"])
    assert response.status_code == 400 and response.json["error"] == "invalid_request"
    code = s.code([API])
    after_code = snapshot(engine)
    token = s.exchange(code, [API + "\x00"])
    assert token.status_code == 400 and token.json["error"] == "invalid_request"
    assert snapshot(engine) == after_code
    assert len(before) == len(after_code)


@pytest.mark.parametrize("name", ["fragment", "relative", "huge", "empty", "unknown"])
def test_a_bad_resource_at_the_token_endpoint_spends_no_code(engine: Engine, name: str) -> None:
    s = setup(engine)
    code = s.code([API])
    before = snapshot(engine)
    response = s.exchange(code, [BAD_RESOURCES[name]])
    assert response.status_code == 400 and response.json["error"] == "invalid_target"
    assert "error_description" in response.json
    assert BAD_RESOURCES[name] not in response.get_data(as_text=True) or not BAD_RESOURCES[name]
    assert snapshot(engine) == before
    assert s.exchange(code, [API]).status_code == 200


def test_more_than_ten_resources_are_refused(engine: Engine) -> None:
    s = setup(engine)
    response = s.authorize([f"{API}/{i}" for i in range(11)])
    assert query_of(response.headers["Location"])["error"] == "invalid_target"


# --------------------------------------------------------------------------- the resource server's policy


def test_a_resource_servers_minimum_aal_asks_for_step_up_at_authorize(engine: Engine) -> None:
    s = setup(engine)
    low = s.authorize([PAY], scope="payments offline_access", aal="aal1")
    assert low.status_code == 302 and urlsplit(low.headers["Location"]).path == "/test-step-up"
    assert query_of(low.headers["Location"])["aal"] == "aal2"


def test_a_resource_servers_minimum_aal_at_its_exact_boundary(engine: Engine) -> None:
    s = setup(engine)
    tokens = s.tokens([PAY], scope="payments offline_access", aal="aal2", amr="password,totp")
    assert s.introspect_as(PAY, tokens["access_token"])["aal"] == "aal2"  # aal2 = the minimum
    sid = uuid.UUID(claims(tokens["access_token"])["sid"])
    get_state(s.app).services.sessions.set_aal(sid, Aal.AAL1)
    # One step below: the effective aal of the token is now aal1, under PAY's minimum.
    assert s.introspect_as(PAY, tokens["access_token"]) == {"active": False}


def test_a_resource_servers_scopes_narrow_the_token(engine: Engine) -> None:
    s = setup(engine)
    tokens = s.tokens([PAY], scope="openid payments offline_access", aal="aal2",
                      amr="password,totp")
    assert claims(tokens["access_token"])["scope"] == "payments"
    assert tokens["scope"] == "payments"
    assert "id_token" in tokens  # the grant still has openid: the client gets its ID token
    refused = s.authorize([PAY], scope="openid profile", aal="aal2", amr="password,totp")
    assert query_of(refused.headers["Location"])["error"] == "invalid_scope"


def test_introspection_by_a_resource_server_ends_exactly_at_exp(engine: Engine) -> None:
    s = setup(engine)
    with freeze_time(T0):
        tokens = s.tokens([API])
    exp = claims(tokens["access_token"])["exp"]
    with freeze_time(datetime.fromtimestamp(exp, UTC) - timedelta(seconds=1)):
        assert s.introspect_as(API, tokens["access_token"])["active"] is True
    with freeze_time(datetime.fromtimestamp(exp, UTC)):
        assert s.introspect_as(API, tokens["access_token"]) == {"active": False}


def test_a_resource_server_with_a_wrong_secret_is_invalid_client(engine: Engine) -> None:
    s = setup(engine)
    tokens = s.tokens([API])
    server, _ = s.servers[API]
    for secret in ("wrong", s.servers[MAIL][1]):
        response = s.http.post("/oauth/introspect", data={"token": tokens["access_token"]},
                               headers={"Authorization": basic_auth(server.client_id, secret)})
        assert response.status_code == 401 and response.json["error"] == "invalid_client"
    post = s.http.post("/oauth/introspect", data={
        "token": tokens["access_token"], "client_id": server.client_id,
        "client_secret": s.servers[API][1]})
    assert post.status_code == 200 and post.json["active"] is True


def test_a_deleted_resource_server_can_neither_introspect_nor_be_refreshed_for(engine: Engine) -> None:
    s = setup(engine, client_cache_seconds=0)
    tokens = s.tokens([API])
    store = get_state(s.app).services.resource_servers
    server, secret = s.servers[API]
    assert store.delete(server.id)
    response = s.http.post("/oauth/introspect", data={"token": tokens["access_token"]},
                           headers={"Authorization": basic_auth(server.client_id, secret)})
    assert response.status_code == 401
    before = snapshot(engine)
    refused = s.refresh(tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json["error"] == "invalid_target"
    assert snapshot(engine) == before


# --------------------------------------------------------------------------- the registry


def test_the_registry_refuses_what_rfc_8707_refuses(engine: Engine) -> None:
    app = make_app(engine)
    store = get_state(app).services.resource_servers
    for bad in (API + "#x", "relative/path", "", "https://a.test/\x00", "https://a.test/ b",
                "https://a.test/" + "x" * 2048):
        with pytest.raises(ValueError, match="absolute URI"):
            store.create(bad)
    info, secret = store.create(API)
    assert len(secret) >= 43 and info.secret_hash and secret not in info.secret_hash
    with pytest.raises(ValueError, match="already registered"):
        store.create(API)
    with pytest.raises(ValueError, match="scope"):
        store.create(MAIL, scopes="bad\\scope")
    assert [s.resource for s in store.list()] == [API]


# --------------------------------------------------------------------------- PostgreSQL specifics


def test_racing_refreshes_for_a_resource_rotate_once_and_all_get_its_audience(
        pg_engine: Engine) -> None:
    """Threads (as gunicorn's) present one refresh token naming one granted resource: the
    counter moves exactly once, every answer is a token for that resource, none is a 500."""
    s = setup(pg_engine)
    tokens = s.tokens([API, MAIL], [API])
    sid = uuid.UUID(claims(tokens["access_token"])["sid"])
    sessions = get_state(s.app).services.sessions
    before = sessions.get(sid)
    assert before is not None and before.counter is not None
    barrier = threading.Barrier(8)

    def one() -> Any:
        http = s.app.test_client()
        barrier.wait()
        return http.post("/oauth/token", data=MultiDict([
            ("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"]),
            ("resource", MAIL)]), headers={"Authorization": basic_auth(s.client.client_id, s.secret)})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: one(), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert {claims(a.json["access_token"])["aud"] for a in answers} == {MAIL}
    assert len({a.json["refresh_token"] for a in answers}) == 1  # the same next token for all
    after = sessions.get(sid)
    assert after is not None and after.counter == before.counter + 1


def test_the_refresh_read_finds_the_resources_in_a_renamed_library_schema(
        fresh_pg_url: str) -> None:
    """The refresh path's prepared read joins the library's table by its configured name: the
    granted resources are seen (an ambiguous refresh is refused before any write, a named one
    gets its audience)."""
    engine = create_auth_engine(fresh_pg_url, schema="idp_private")
    try:
        migrate.upgrade(engine)
        store = make_store(engine)
        client = add_client(engine)
        issued = new_session(store, add_user(engine), client)
        with engine.begin() as conn:
            record_session_resources(conn, issued.session.id, [API, MAIL])
        with pytest.raises(ResourceAmbiguous):
            store.rotate(issued.refresh_token, client_id=client)
        assert store.get(issued.session.id).counter == 0  # type: ignore[union-attr]
        result = store.rotate(issued.refresh_token, client_id=client, resources=(MAIL,))
        assert result.audience == MAIL and result.session.counter == 1
    finally:
        reserved = reserved_connections(engine)
        while reserved._idle:  # closed now, not whenever the engine is collected
            reserved.discard(reserved._idle.pop())
        engine.dispose()
