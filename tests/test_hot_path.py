"""The hot path (``oauth_sessions.flask.hot_path``) answers exactly as the Flask views do, or stands aside.

Every scenario runs twice on the same database: once on an app with the hot path (the default)
and once on an app with ``hot_path=False``, each on a session of its own made the same way. The
two answers must match in status, headers and body (token values aside, which are random).
A spy on the middleware's ``next`` tells which of the two ways a request actually went.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import create_client, create_user, make_app
from flask import Flask, request_started
from freezegun import freeze_time
from sqlalchemy import Engine, delete, text
from sqlalchemy.exc import OperationalError
from werkzeug.middleware.proxy_fix import ProxyFix

from oauth_sessions import get_state
from oauth_sessions.core.types import Aal
from oauth_sessions.flask.hot_path import HotPath
from oauth_sessions.storage.clients import ClientInfo
from oauth_sessions.storage.models import Session
from oauth_sessions.storage.sessions import SessionStore

SCOPES = "openid profile offline_access"


@dataclass
class Side:
    """One app (hot path on or off) with a confidential, a public and an introspecting client."""

    app: Flask
    passed_on: list[str]
    client: ClientInfo
    secret: str
    public: ClientInfo
    resource: ClientInfo
    resource_secret: str

    @property
    def store(self) -> SessionStore:
        store: SessionStore = get_state(self.app).services.sessions
        return store

    def session(self, client: ClientInfo | None = None, **kw: Any) -> str:
        issued = self.store.create_session(
            user_id=create_user(self.store.engine), client_id=(client or self.client).id,
            scopes=kw.pop("scopes", SCOPES), aal=kw.pop("aal", Aal.AAL1), amr=["pwd"], **kw)
        return issued.refresh_token

    def post(self, path: str, data: Any, headers: dict[str, str] | None = None,
             **kw: Any) -> Any:
        return self.app.test_client().post(path, data=data, headers=headers or {}, **kw)


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _side(engine: Engine, hot: bool) -> Side:
    app = make_app(engine, hot_path=hot, refresh_token_reuse_interval=10)
    passed_on: list[str] = []
    if hot:
        middleware = app.wsgi_app
        assert isinstance(middleware, HotPath)
        inner = middleware.next

        def spy(environ: dict[str, Any], start_response: Any) -> Any:
            passed_on.append(environ["PATH_INFO"])
            return inner(environ, start_response)

        middleware.next = spy
    else:
        assert not isinstance(app.wsgi_app, HotPath)
    client, secret = create_client(app, scopes=SCOPES)
    public, _ = create_client(app, public=True, scopes=SCOPES)
    resource, resource_secret = create_client(app, name="api", can_introspect=True)
    assert secret and resource_secret
    return Side(app, passed_on, client, secret, public, resource, resource_secret)


@pytest.fixture
def sides(engine: Engine) -> Iterator[tuple[Side, Side]]:
    yield _side(engine, True), _side(engine, False)


def _comparable(response: Any) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k != "Content-Length"}
    assert int(response.headers["Content-Length"]) == len(response.data)
    body = response.get_json(silent=True)
    if isinstance(body, dict):
        for name in ("access_token", "refresh_token", "id_token", "jti", "exp", "iat",
                     "auth_time", "sub", "sid", "client_id", "aud"):
            if name in body:
                body[name] = type(body[name]).__name__  # random or per-session: compare the kind
    else:
        body = response.data
    return response.status_code, headers, body


def _same(hot: Side, flask: Side, make: Callable[[Side], Any]) -> Any:
    """Run ``make`` on both sides; assert identical answers; return the hot side's response."""
    ours, theirs = make(hot), make(flask)
    assert _comparable(ours) == _comparable(theirs)
    return ours


def _refresh(side: Side, token: str, **extra: str) -> Any:
    return side.post("/oauth/token", {"grant_type": "refresh_token", "refresh_token": token, **extra},
                     _basic(side.client.client_id, side.secret))


# --------------------------------------------------------------------------- the token endpoint


def test_a_refresh_is_answered_by_the_hot_path_as_by_the_view(sides: tuple[Side, Side]) -> None:
    hot, flask = sides
    response = _same(hot, flask, lambda s: _refresh(s, s.session()))
    assert response.status_code == 200 and hot.passed_on == []
    assert set(response.get_json()) == {"access_token", "token_type", "expires_in", "scope",
                                        "refresh_token", "id_token"}


@pytest.mark.parametrize("auth", ["client_secret_post", "none"])
def test_other_client_authentications_are_answered_too(sides: tuple[Side, Side], auth: str) -> None:
    hot, flask = sides

    def make(s: Side) -> Any:
        if auth == "none":
            return s.post("/oauth/token", {"grant_type": "refresh_token", "client_id": s.public.client_id,
                                           "refresh_token": s.session(s.public)})
        poster, secret = create_client(s.app, scopes=SCOPES, token_endpoint_auth_method=auth)
        return s.post("/oauth/token", {"grant_type": "refresh_token", "client_id": poster.client_id,
                                       "client_secret": secret, "refresh_token": s.session(poster)})

    assert _same(hot, flask, make).status_code == 200
    assert hot.passed_on == []


def test_narrowing_and_widening_the_scope(sides: tuple[Side, Side]) -> None:
    hot, flask = sides
    narrowed = _same(hot, flask, lambda s: _refresh(s, s.session(), scope="openid profile"))
    assert narrowed.status_code == 200 and narrowed.get_json()["scope"] == "openid profile"
    assert "id_token" in narrowed.get_json()
    widened = _same(hot, flask, lambda s: _refresh(s, s.session(scopes="openid offline_access"),
                                                   scope="openid profile"))
    assert widened.status_code == 400 and widened.get_json()["error"] == "invalid_scope"
    assert hot.passed_on == []


def test_replay_inside_the_interval_and_reuse_after_it(sides: tuple[Side, Side]) -> None:
    hot, flask = sides
    tokens: dict[int, tuple[str, str]] = {}

    def first(s: Side) -> Any:
        token = s.session()
        response = _refresh(s, token)
        tokens[id(s)] = (token, response.get_json()["refresh_token"])
        return response

    start = datetime.now(UTC).replace(microsecond=0)
    with freeze_time(start) as clock:
        _same(hot, flask, first)
        clock.tick(timedelta(seconds=9))
        again = _same(hot, flask, lambda s: _refresh(s, tokens[id(s)][0]))
        assert again.get_json()["refresh_token"] == tokens[id(hot)][1]  # the same new token
        clock.tick(timedelta(seconds=1))  # at refreshed_at + 10 s the interval is over
        reuse = _same(hot, flask, lambda s: _refresh(s, tokens[id(s)][0]))
    assert reuse.status_code == 400
    assert reuse.get_json() == {"error": "invalid_grant", "error_description": "refresh token already used"}
    # the reuse revoked the session on both sides: the newest token is dead too
    dead = _same(hot, flask, lambda s: _refresh(s, tokens[id(s)][1]))
    assert dead.get_json()["error_description"] == "refresh token not found"
    assert hot.passed_on == []


def test_decisions_on_the_session_row(sides: tuple[Side, Side]) -> None:
    hot, flask = sides
    other = _same(hot, flask, lambda s: _refresh(s, s.session(s.public)))  # another client's token
    assert other.status_code == 400 and other.get_json()["error"] == "invalid_grant"
    forged = _same(hot, flask, lambda s: _refresh(s, "osr1_" + "A" * 75))
    assert forged.get_json()["error"] == "invalid_grant"
    now = datetime.now(UTC).replace(microsecond=0)
    ends: dict[tuple[int, int], str] = {}
    for s in (hot, flask):
        for n in (59, 60):
            ends[id(s), n] = s.session(host_not_after=now + timedelta(seconds=60), now=now)
    with freeze_time(now + timedelta(seconds=59)):  # one second before not_after
        alive = _same(hot, flask, lambda s: _refresh(s, ends[id(s), 59]))
    assert alive.status_code == 200
    with freeze_time(now + timedelta(seconds=60)):  # at not_after
        expired = _same(hot, flask, lambda s: _refresh(s, ends[id(s), 60]))
    assert expired.get_json()["error"] == "invalid_grant"
    assert hot.passed_on == []


@pytest.mark.parametrize("case", ["wrong secret", "unknown client", "repeated parameter",
                                  "query string", "json body", "missing token", "empty scope",
                                  "unknown grant", "bad scope characters", "non-ascii",
                                  "basic and post", "undecodable percent"])
def test_requests_refused_before_any_read_go_to_the_flask_view(
        sides: tuple[Side, Side], case: str) -> None:
    hot, flask = sides

    def make(s: Side) -> Any:
        token = s.session()
        basic = _basic(s.client.client_id, s.secret)
        form = f"grant_type=refresh_token&refresh_token={token}"
        raw = {"Content-Type": "application/x-www-form-urlencoded"}
        if case == "wrong secret":
            return s.post("/oauth/token", form, {**raw, **_basic(s.client.client_id, "nope")})
        if case == "unknown client":
            return s.post("/oauth/token", form, {**raw, **_basic(str(uuid.uuid4()), "nope")})
        if case == "repeated parameter":
            return s.post("/oauth/token", form + "&refresh_token=" + token, {**raw, **basic})
        if case == "query string":
            return s.post("/oauth/token?refresh_token=" + token, form, {**raw, **basic})
        if case == "json body":
            return s.post("/oauth/token", None, basic, json={"grant_type": "refresh_token"})
        if case == "missing token":
            return s.post("/oauth/token", "grant_type=refresh_token", {**raw, **basic})
        if case == "empty scope":
            return s.post("/oauth/token", form + "&scope=", {**raw, **basic})
        if case == "unknown grant":
            return s.post("/oauth/token", "grant_type=password&username=a", {**raw, **basic})
        if case == "bad scope characters":
            return s.post("/oauth/token", form + "&scope=%22x", {**raw, **basic})
        if case == "non-ascii":
            return s.post("/oauth/token", form + "&scope=%C3%A9", {**raw, **basic})
        if case == "basic and post":
            return s.post("/oauth/token", form + "&client_secret=" + s.secret, {**raw, **basic})
        assert case == "undecodable percent"
        return s.post("/oauth/token", form + "&scope=%FF", {**raw, **basic})

    response = _same(hot, flask, make)
    # an empty scope means the granted one: the hot path leaves that to the view too
    assert response.status_code in ((200,) if case == "empty scope" else (400, 401))
    if case == "basic and post":  # RFC 6749 section 2.3: one authentication method per request
        assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    assert hot.passed_on == ["/oauth/token"]  # handed on, and the view got the whole body


def test_a_database_outage_is_a_503_on_both_paths(sides: tuple[Side, Side],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    hot, flask = sides

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    tokens = {id(s): s.session() for s in (hot, flask)}
    monkeypatch.setattr(SessionStore, "rotate", down)
    response = _same(hot, flask, lambda s: _refresh(s, tokens[id(s)]))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert hot.passed_on == []


# --------------------------------------------------------------------------- introspection


def _introspect(side: Side, token: str, **headers: str) -> Any:
    return side.post("/oauth/introspect", {"token": token},
                     {**_basic(side.resource.client_id, side.resource_secret), **headers})


def test_introspection_answers_match(sides: tuple[Side, Side]) -> None:
    hot, flask = sides
    access: dict[int, str] = {}

    def active(s: Side) -> Any:
        access[id(s)] = _refresh(s, s.session()).get_json()["access_token"]
        return _introspect(s, access[id(s)])

    response = _same(hot, flask, active)
    assert response.get_json()["active"] is True and response.get_json()["aal"] == "aal1"
    # Issue 15 item 3: a refresh token is active only to its own client, on both paths.
    assert _same(hot, flask, lambda s: _introspect(s, s.session())).get_json() == {"active": False}
    assert _same(hot, flask, lambda s: _introspect(s, "not-a-token")).get_json() == {"active": False}

    with hot.store.engine.begin() as conn:  # revoke every session: their access tokens die at once
        conn.execute(delete(Session.__table__))
    assert _same(hot, flask, lambda s: _introspect(s, access[id(s)])).get_json() == {"active": False}
    assert hot.passed_on == []


@pytest.mark.parametrize("case", ["no authentication", "not a resource server", "jwt answer",
                                  "missing token"])
def test_introspection_refusals_and_jwt_answers_go_to_the_view(
        sides: tuple[Side, Side], case: str) -> None:
    hot, flask = sides

    def make(s: Side) -> Any:
        if case == "no authentication":
            return s.post("/oauth/introspect", {"token": "x"})
        if case == "not a resource server":
            return s.post("/oauth/introspect", {"token": "x"}, _basic(s.client.client_id, s.secret))
        if case == "jwt answer":
            return _introspect(s, "x", Accept="application/token-introspection+jwt")
        return s.post("/oauth/introspect", {"token_type_hint": "access_token"},
                      _basic(s.resource.client_id, s.resource_secret))

    response = _same(hot, flask, make) if case != "jwt answer" else make(hot)
    assert response.status_code in (200, 400, 401)
    assert hot.passed_on == ["/oauth/introspect"]


# --------------------------------------------------------------------------- standing aside


def test_host_request_hooks_make_the_hot_path_stand_aside(engine: Engine) -> None:
    side = _side(engine, True)

    @side.app.after_request
    def cors(response: Any) -> Any:  # what Flask-CORS does: it must not be skipped
        response.headers["Access-Control-Allow-Origin"] = "https://spa.example"
        return response

    response = _refresh(side, side.session())
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://spa.example"
    assert side.passed_on == ["/oauth/token"]


def test_request_signal_receivers_make_it_stand_aside(engine: Engine) -> None:
    side = _side(engine, True)
    seen: list[str] = []

    def tracer(sender: Any, **kwargs: Any) -> None:
        seen.append("started")

    request_started.connect(tracer)
    try:
        assert _refresh(side, side.session()).status_code == 200
    finally:
        request_started.disconnect(tracer)
    assert seen == ["started"] and side.passed_on == ["/oauth/token"]
    assert _refresh(side, side.session()).status_code == 200
    assert side.passed_on == ["/oauth/token"]  # receivers gone: the hot path answers again


def test_installed_inside_middleware_wrapped_before_init_app(engine: Engine) -> None:
    """ProxyFix must see the request first: the hot path then records the client's address."""
    from oauth_sessions import OAuthSessions

    app = Flask("wrapped")
    app.config["SECRET_KEY"] = "test"
    proxy = ProxyFix(app.wsgi_app, x_for=1)
    app.wsgi_app = proxy  # type: ignore[method-assign]
    OAuthSessions(app, engine=engine, issuer="http://127.0.0.1:5000")
    assert app.wsgi_app is proxy and isinstance(proxy.app, HotPath)
    client, secret = create_client(app, scopes=SCOPES)
    store: SessionStore = get_state(app).services.sessions
    issued = store.create_session(user_id=create_user(engine), client_id=client.id, scopes=SCOPES,
                                  aal=Aal.AAL1, amr=["pwd"])
    response = app.test_client().post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": issued.refresh_token},
        headers={**_basic(client.client_id, secret or ""), "X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 200
    assert store.get(issued.session.id).ip == "203.0.113.9"


def test_not_installed_under_middleware_it_cannot_see_into(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    from oauth_sessions import OAuthSessions

    app = Flask("opaque")
    app.config["SECRET_KEY"] = "test"
    inner = app.wsgi_app
    app.wsgi_app = lambda environ, start_response: inner(environ, start_response)  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="oauth_sessions.flask.hot_path"):
        OAuthSessions(app, engine=engine, issuer="http://127.0.0.1:5000")
    assert not isinstance(app.wsgi_app, HotPath)
    assert "hot path" in caplog.text


def test_switched_off_by_the_setting(engine: Engine) -> None:
    assert not isinstance(make_app(engine, hot_path=False).wsgi_app, HotPath)
    assert isinstance(make_app(engine).wsgi_app, HotPath)


@pytest.mark.postgres
def test_a_dead_reserved_connection_is_replaced_before_the_read(pg_engine: Engine) -> None:
    """A database restart kills idle connections; the next refresh reads on a fresh one."""
    side = _side(pg_engine, True)
    assert _refresh(side, side.session()).status_code == 200
    with pg_engine.connect() as conn:
        conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"))
        conn.commit()
    response = _refresh(side, side.session())
    assert response.status_code == 200, response.get_json()
    assert side.passed_on == []


def test_an_unexpected_error_is_a_json_500_without_detail(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Outside testing, a defect on the hot path answers like Flask would: 500, no trace, no token."""
    from oauth_sessions.flask import hot_path

    side = _side(engine, True)
    side.app.testing = False
    token = side.session()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a defect")

    monkeypatch.setattr(hot_path, "refresh", broken)
    with caplog.at_level(logging.ERROR, logger="oauth_sessions.flask.hot_path"):
        response = _refresh(side, token)
    assert response.status_code == 500
    assert response.get_json() == {"error": "server_error",
                                   "error_description": "the request could not be completed"}
    assert "RuntimeError" in caplog.text and "test_hot_path.py" in caplog.text
    assert "a defect" not in caplog.text and "Traceback" not in caplog.text
    assert token not in caplog.text and token not in response.text
