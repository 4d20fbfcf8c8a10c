"""POST /oauth/token grant_type=refresh_token through HTTP (Flask test client), SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import Engine
from test_store_support import ISSUER, T0, add_user

from oauth_sessions import OAuthSessions, get_state
from oauth_sessions.core.refresh_tokens import parse_refresh_token
from oauth_sessions.core.types import Aal
from oauth_sessions.jose.access_tokens import verify_access_token
from oauth_sessions.storage.clients import ClientInfo, ClientStore
from oauth_sessions.storage.sessions import SessionStore


@dataclass
class Provider:
    app: Flask
    http: FlaskClient
    store: SessionStore
    clients: ClientStore
    token_url: str


def _wire(app: Flask, engine: Engine) -> str:
    """The real stack: the extension's components and its blueprint's token endpoint."""
    state = get_state(app)
    assert state.engine is engine and isinstance(state.services.sessions, SessionStore)
    url = f"{state.settings.url_prefix}/token"
    assert any(rule.rule == url for rule in app.url_map.iter_rules())
    return url


@pytest.fixture
def provider(engine: Engine) -> Iterator[Provider]:
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="test")
    OAuthSessions(app, engine=engine, issuer=ISSUER, scope_min_aal={"payments": "aal2"},
                  refresh_token_reuse_interval=10)
    url = _wire(app, engine)
    comps = get_state(app).services
    yield Provider(app, app.test_client(), comps.sessions, comps.clients, url)


def _register(p: Provider, *, public: bool = False, **kw: Any) -> tuple[ClientInfo, str | None]:
    return p.clients.create(name="app", redirect_uris=["https://app.example/cb"],
                            scopes="openid profile offline_access payments", public=public, **kw)


def _basic(client: ClientInfo, secret: str | None) -> dict[str, str]:
    raw = f"{client.client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _session(p: Provider, client: ClientInfo, **kw: Any) -> Any:
    kw.setdefault("scopes", "openid profile offline_access")
    kw.setdefault("aal", Aal.AAL1)
    return p.store.create_session(user_id=add_user(p.store._engine), client_id=client.id,
                                  amr=["pwd"], **kw)


def _refresh(p: Provider, token: str, client: ClientInfo, secret: str | None,
             **form: str) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": token, **form}
    headers = _basic(client, secret) if secret else {}
    if secret is None:
        data["client_id"] = client.client_id
    return p.http.post(p.token_url, data=data, headers={**headers, "User-Agent": "test-agent/1"})


def test_refresh_returns_new_tokens_bound_to_the_session(provider: Provider) -> None:
    client, secret = _register(provider)
    issued = _session(provider, client)
    response = _refresh(provider, issued.refresh_token, client, secret)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    assert parse_refresh_token(body["refresh_token"]).counter == 1
    assert body["token_type"] == "Bearer" and body["scope"] == "openid profile offline_access"
    keyset = get_state(provider.app).services.keys.keyset()
    claims = verify_access_token(keyset, body["access_token"], issuer=ISSUER)
    assert claims["sid"] == str(issued.session.id) and claims["client_id"] == client.client_id
    assert claims["aal"] == "aal1" and claims["amr"] == ["pwd"]
    assert claims["scope"] == "openid profile offline_access"
    assert "id_token" in body
    info = provider.store.get(issued.session.id)
    assert info is not None and info.user_agent == "test-agent/1" and info.counter == 1


def test_public_client_refreshes_with_client_id_only(provider: Provider) -> None:
    client, _ = _register(provider, public=True)
    issued = _session(provider, client)
    response = _refresh(provider, issued.refresh_token, client, None)
    assert response.status_code == 200, response.get_json()


def test_token_presented_by_another_client_is_invalid_grant_and_changes_nothing(
    provider: Provider,
) -> None:
    owner, owner_secret = _register(provider)
    thief, thief_secret = _register(provider)
    issued = _session(provider, owner)
    response = _refresh(provider, issued.refresh_token, thief, thief_secret)
    assert response.status_code == 400
    assert response.get_json() == {"error": "invalid_grant",
                                   "error_description": "refresh token was issued to another client"}
    assert provider.store.get(issued.session.id).counter == 0  # type: ignore[union-attr]
    assert _refresh(provider, issued.refresh_token, owner, owner_secret).status_code == 200


def test_wrong_client_secret_is_invalid_client_and_changes_nothing(provider: Provider) -> None:
    client, _ = _register(provider)
    issued = _session(provider, client)
    response = _refresh(provider, issued.refresh_token, client, "wrong-secret")
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    assert provider.store.get(issued.session.id).counter == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(("token", "description"), [
    ("", None), ("osr1_garbage", "refresh token not found"), ("x" * 5000, None),
])
def test_malformed_tokens_get_rfc6749_errors_not_500(provider: Provider, token: str,
                                                     description: str | None) -> None:
    client, secret = _register(provider)
    response = _refresh(provider, token, client, secret)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] in ("invalid_request", "invalid_grant")
    if description:
        assert body == {"error": "invalid_grant", "error_description": description}


def test_reuse_after_the_interval_revokes_and_says_already_used(provider: Provider) -> None:
    client, secret = _register(provider)
    with freeze_time(T0):
        issued = _session(provider, client)
        first = _refresh(provider, issued.refresh_token, client, secret).get_json()
    with freeze_time(T0 + timedelta(seconds=5)):
        replay = _refresh(provider, issued.refresh_token, client, secret).get_json()
    assert replay["refresh_token"] == first["refresh_token"]
    with freeze_time(T0 + timedelta(seconds=10)):
        reused = _refresh(provider, issued.refresh_token, client, secret)
        assert reused.get_json() == {"error": "invalid_grant",
                                     "error_description": "refresh token already used"}
        after = _refresh(provider, first["refresh_token"], client, secret)
    assert after.get_json()["error_description"] == "refresh token not found"
    assert provider.store.get(issued.session.id) is None


def test_expired_session_answers_invalid_grant_session_expired(provider: Provider) -> None:
    client, secret = _register(provider, max_session_seconds=120)
    with freeze_time(T0):
        issued = _session(provider, client, client_max_seconds=120)
    with freeze_time(T0 + timedelta(seconds=120)):
        response = _refresh(provider, issued.refresh_token, client, secret)
    assert response.get_json() == {"error": "invalid_grant", "error_description": "session expired"}


def test_scope_narrowing_and_widening(provider: Provider) -> None:
    client, secret = _register(provider)
    issued = _session(provider, client)
    wider = _refresh(provider, issued.refresh_token, client, secret, scope="openid payments")
    assert wider.status_code == 400 and wider.get_json()["error"] == "invalid_scope"
    narrower = _refresh(provider, issued.refresh_token, client, secret, scope="profile")
    assert narrower.status_code == 200 and narrower.get_json()["scope"] == "profile"
    assert "id_token" not in narrower.get_json()  # no openid scope, no ID token


def test_scope_needing_aal2_is_dropped_from_an_aal1_session(provider: Provider) -> None:
    client, secret = _register(provider)
    issued = _session(provider, client, scopes="openid payments offline_access")
    body = _refresh(provider, issued.refresh_token, client, secret).get_json()
    assert body["scope"] == "openid offline_access"
    named = _refresh(provider, body["refresh_token"], client, secret, scope="payments")
    assert named.get_json()["error"] == "invalid_scope"


def test_client_without_the_refresh_grant_is_unauthorized(provider: Provider) -> None:
    client, secret = _register(provider, grant_types=["authorization_code"])
    issued = _session(provider, client)
    response = _refresh(provider, issued.refresh_token, client, secret)
    assert response.get_json()["error"] == "unauthorized_client"
    assert provider.store.get(issued.session.id).counter == 0  # type: ignore[union-attr]


@pytest.mark.postgres
def test_concurrent_http_refreshes_all_get_the_same_token(pg_engine: Engine) -> None:
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="test")
    OAuthSessions(app, engine=pg_engine, issuer=ISSUER, refresh_token_reuse_interval=30)
    url = _wire(app, pg_engine)
    comps = get_state(app).services
    p = Provider(app, app.test_client(), comps.sessions, comps.clients, url)
    client, secret = _register(p)
    issued = _session(p, client)
    barrier = threading.Barrier(8)

    def post(_: int) -> tuple[int, dict[str, Any]]:
        http = app.test_client()
        barrier.wait()
        data = {"grant_type": "refresh_token", "refresh_token": issued.refresh_token}
        r = http.post(url, data=data, headers=_basic(client, secret))
        return r.status_code, r.get_json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert [status for status, _ in answers] == [200] * 8, answers
    assert len({body["refresh_token"] for _, body in answers}) == 1
    assert p.store.get(issued.session.id).counter == 1  # type: ignore[union-attr]


def test_unknown_session_uuid_shape(provider: Provider) -> None:
    from oauth_sessions.core.refresh_tokens import encode_refresh_token

    client, secret = _register(provider)
    forged = encode_refresh_token(uuid.uuid4(), 0, bytes(32))
    assert _refresh(provider, forged, client, secret).get_json() == {
        "error": "invalid_grant", "error_description": "refresh token not found"}


def test_tokens_follow_the_sessions_aal_after_step_up_and_downgrade(provider: Provider) -> None:
    client, secret = _register(provider)
    issued = _session(provider, client)
    keyset = get_state(provider.app).services.keys.keyset()
    stepped = provider.store.step_up(issued.session.id, aal=Aal.AAL2, factor_id=None, method="totp")
    old = _refresh(provider, issued.refresh_token, client, secret)
    assert old.get_json() == {"error": "invalid_grant", "error_description": "refresh token already used"}
    issued = _session(provider, client)
    stepped = provider.store.step_up(issued.session.id, aal=Aal.AAL2, factor_id=None, method="totp")
    body = _refresh(provider, stepped.refresh_token, client, secret).get_json()
    claims = verify_access_token(keyset, body["access_token"], issuer=ISSUER)
    assert claims["aal"] == "aal2" and sorted(claims["amr"]) == ["pwd", "totp"]
    provider.store.set_aal(issued.session.id, Aal.AAL1)
    body = _refresh(provider, body["refresh_token"], client, secret).get_json()
    assert verify_access_token(keyset, body["access_token"], issuer=ISSUER)["aal"] == "aal1"


@pytest.mark.parametrize("setting", [True, False])
def test_id_token_on_refresh_follows_the_setting(engine: Engine, setting: bool) -> None:
    """OIDC Core 12.2: a refresh response *may* carry an ID token; the host decides."""
    app = Flask(__name__)
    app.config.update(TESTING=True, SECRET_KEY="test")
    OAuthSessions(app, engine=engine, issuer=ISSUER, id_token_on_refresh=setting)
    comps = get_state(app).services
    p = Provider(app, app.test_client(), comps.sessions, comps.clients, _wire(app, engine))
    client, secret = _register(p)
    with_openid = _session(p, client)
    body = _refresh(p, with_openid.refresh_token, client, secret).get_json()
    assert ("id_token" in body) is setting
    assert body["refresh_token"] and body["access_token"]
    without_openid = _session(p, client, scopes="profile offline_access")
    assert "id_token" not in _refresh(p, without_openid.refresh_token, client, secret).get_json()


@pytest.mark.parametrize("agent", ["bad\x00agent/1", "bad\x01\x7fagent/1"])
def test_issue15_item11_control_characters_in_a_refresh_user_agent_are_stripped(
        provider: Provider, agent: str) -> None:
    """A NUL in the User-Agent of a refresh must not reach a PostgreSQL text column (a 500)."""
    client, secret = _register(provider)
    issued = _session(provider, client)
    data = {"grant_type": "refresh_token", "refresh_token": issued.refresh_token}
    response = provider.http.post(provider.token_url, data=data,
                                  headers={**_basic(client, secret), "User-Agent": agent})
    assert response.status_code == 200, response.get_json()
    info = provider.store.get(issued.session.id)
    assert info is not None and info.counter == 1 and info.user_agent == "badagent/1"


def test_refresh_is_answered_without_authlibs_grant_dispatch(provider: Provider,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The token endpoint calls the refresh grant itself (benchmarks/README.md: Authlib's
    dispatch only added per-call objects); the code grant stays on Authlib's server."""
    server = get_state(provider.app).services.server
    dispatched: list[str] = []

    def recorded(request: Any) -> Any:
        dispatched.append(request.param("grant_type"))
        raise AssertionError("the refresh grant went through Authlib's dispatch")

    monkeypatch.setattr(server, "create_token_response", recorded)
    client, secret = _register(provider)
    issued = _session(provider, client)
    response = _refresh(provider, issued.refresh_token, client, secret)
    assert response.status_code == 200, response.get_json()
    assert parse_refresh_token(response.get_json()["refresh_token"]).counter == 1
    assert dispatched == []
    with pytest.raises(AssertionError, match="Authlib's dispatch"):  # the code grant still does
        provider.http.post(provider.token_url, data={"grant_type": "authorization_code",
                                                     "code": "x"}, headers=_basic(client, secret))
    assert dispatched == ["authorization_code"]


@pytest.mark.parametrize(("form", "error", "registered"), [
    ({"refresh_token": ""}, InvalidRequestError("refresh_token is required"), None),
    ({"scope": "openid \\x"}, InvalidScopeError(
        "scope contains characters RFC 6749 section 3.3 does not allow"), None),
    ({"refresh_token": "not-a-token"}, None, None),
    ({}, UnauthorizedClientError("the client may not use the refresh token grant"),
     ("authorization_code",)),
])
def test_refresh_errors_render_as_authlibs_server_renders_them(
        provider: Provider, form: dict[str, str], error: Any,
        registered: tuple[str, ...] | None) -> None:
    """Status, headers and body of each refresh error are those of Authlib's own rendering of
    the same error (what the grant answered while Authlib dispatched it), nothing written."""
    client, secret = _register(provider, **({"grant_types": registered} if registered else {}))
    issued = _session(provider, client)
    response = _refresh(provider, issued.refresh_token, client, secret, **form)
    if error is None:
        error = InvalidGrantError(description=response.get_json().get("error_description"))
        assert response.get_json()["error"] == "invalid_grant"
    expected = get_state(provider.app).services.server.handle_error_response(None, error)
    assert response.status_code == expected.status
    assert response.get_data() == expected.body
    sent = [(k, v) for k, v in response.headers.items() if k not in ("Content-Length",)]
    assert sent[:len(expected.headers)] == list(expected.headers)
    info = provider.store.get(issued.session.id)
    assert info is not None and info.counter == 0
