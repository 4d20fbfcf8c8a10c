"""The WSGI app (``oauth_sessions.wsgi``) answers exactly as the Flask blueprint does.

Every scenario runs twice on the same provider: once through the blueprint (Flask's test client)
and once through ``make_wsgi_app(app)`` (Werkzeug's test client), each on a session of its own
made the same way. The two answers must match in status, in the headers in their order, and
in the body byte for byte (token values aside, which are random: those are compared by kind).
On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import (
    ISSUER,
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
    snapshot,
)
from flask import Flask
from freezegun import freeze_time
from sqlalchemy import Engine, delete
from sqlalchemy.exc import OperationalError
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from oauth_sessions import get_state
from oauth_sessions.core.types import Aal
from oauth_sessions.storage.clients import ClientInfo, verify_client_secret
from oauth_sessions.storage.models import Session
from oauth_sessions.storage.sessions import SessionStore
from oauth_sessions.wsgi import make_wsgi_app

SCOPES = "openid profile offline_access"
RANDOM = ("access_token", "refresh_token", "id_token", "jti", "sid")
#: Also random in a registration answer (RFC 7591 section 3.2.1): a new client each time.
REGISTERED = ("client_id", "client_secret", "registration_access_token", "registration_client_uri",
              "client_id_issued_at")


@dataclass
class Provider:
    app: Flask
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


#: The two ways in: the blueprint, the WSGI app.
WAYS = ("flask", "wsgi")


def _http(p: Provider, way: str) -> Any:
    return p.app.test_client() if way == "flask" else Client(make_wsgi_app(p.app))


@pytest.fixture
def provider(engine: Engine) -> Provider:
    app = make_app(engine, refresh_token_reuse_interval=10)
    client, secret = create_client(app, scopes=SCOPES)
    public, _ = create_client(app, public=True, scopes=SCOPES)
    resource, resource_secret = create_client(app, name="api", can_introspect=True)
    assert secret and resource_secret
    return Provider(app, client, secret, public, resource, resource_secret)


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _comparable(response: Any) -> tuple[int, list[tuple[str, str]], Any]:
    headers = response.headers.to_wsgi_list()
    length = response.headers.get("Content-Length")
    if response.status_code == 204:  # no content, and no length (RFC 9110 section 8.6)
        assert length is None and response.data == b""
    else:
        assert int(length) == len(response.data) or response.request.method == "HEAD"
    body: Any = response.data
    if response.headers["Content-Type"] == "application/token-introspection+jwt":
        return response.status_code, headers, body.rsplit(b".", 1)[0]  # ES256 signs at random
    try:
        parsed = json.loads(body)
    except ValueError:
        return response.status_code, headers, body
    random = (*RANDOM, *REGISTERED) if isinstance(parsed, dict) and "registration_client_uri" in parsed \
        else RANDOM
    if isinstance(parsed, dict) and any(name in parsed for name in random):
        for name in random:
            if name in parsed:
                parsed[name] = type(parsed[name]).__name__  # random: compare the kind
        headers = [(k, v) for k, v in headers if k != "Content-Length"]  # lengths vary with them
        return response.status_code, headers, parsed
    return response.status_code, headers, body  # no random member: the exact bytes


def _same(p: Provider, make: Callable[[Any], Any]) -> Any:
    """Run ``make`` through both ways in; assert identical answers; return the WSGI one."""
    ours, theirs = make(_http(p, "flask")), make(_http(p, "wsgi"))
    assert _comparable(theirs) == _comparable(ours)
    return theirs


def _refresh(p: Provider, http: Any, token: str, **extra: str) -> Any:
    return http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                           **extra}, headers=_basic(p.client.client_id, p.secret))


# --------------------------------------------------------------------------- the token endpoint


def test_a_refresh_is_answered_alike(provider: Provider) -> None:
    p = provider
    response = _same(p, lambda http: _refresh(p, http, p.session()))
    assert response.status_code == 200
    assert set(response.get_json()) == {"access_token", "token_type", "expires_in", "scope",
                                        "refresh_token", "id_token"}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("auth", ["client_secret_post", "none"])
def test_other_client_authentications_are_answered_alike(provider: Provider, auth: str) -> None:
    p = provider
    poster, secret = create_client(p.app, scopes=SCOPES, token_endpoint_auth_method="client_secret_post")

    def make(http: Any) -> Any:
        if auth == "none":
            return http.post("/oauth/token", data={"grant_type": "refresh_token",
                             "client_id": p.public.client_id, "refresh_token": p.session(p.public)})
        return http.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": poster.client_id,
                                               "client_secret": secret, "refresh_token": p.session(poster)})

    assert _same(p, make).status_code == 200


def test_the_authorization_code_grant_is_answered_alike(provider: Provider) -> None:
    p = provider
    user = create_user(p.store.engine)
    browser = p.app.test_client()

    def make(http: Any) -> Any:
        verifier, challenge = pkce_pair()
        code = obtain_code(browser, p.client, user, challenge)["code"]
        return exchange_code(http, p.client, p.secret, code, verifier)

    assert _same(p, make).status_code == 200
    codes = {way: obtain_code(browser, p.client, user, pkce_pair()[1])["code"] for way in WAYS}
    wrong = _same(p, lambda http: exchange_code(
        http, p.client, p.secret, codes["flask" if isinstance(http.application, Flask) else "wsgi"],
        pkce_pair()[0]))
    assert wrong.get_json()["error"] == "invalid_grant"


def test_narrowing_and_widening_the_scope(provider: Provider) -> None:
    p = provider
    narrowed = _same(p, lambda http: _refresh(p, http, p.session(), scope="openid profile"))
    assert narrowed.status_code == 200 and narrowed.get_json()["scope"] == "openid profile"
    widened = _same(p, lambda http: _refresh(p, http, p.session(scopes="openid offline_access"),
                                             scope="openid profile"))
    assert widened.status_code == 400 and widened.get_json()["error"] == "invalid_scope"


def test_replay_inside_the_interval_and_reuse_after_it(provider: Provider) -> None:
    p = provider
    tokens: dict[str, tuple[str, str]] = {}

    def way_of(http: Any) -> str:
        return "flask" if isinstance(http.application, Flask) else "wsgi"

    def first(http: Any) -> Any:
        token = p.session()
        response = _refresh(p, http, token)
        tokens[way_of(http)] = (token, response.get_json()["refresh_token"])
        return response

    start = datetime.now(UTC).replace(microsecond=0)
    with freeze_time(start) as clock:
        _same(p, first)
        clock.tick(timedelta(seconds=9))
        again = _same(p, lambda http: _refresh(p, http, tokens[way_of(http)][0]))
        assert again.get_json()["refresh_token"] == tokens["wsgi"][1]  # the same new token
        clock.tick(timedelta(seconds=1))  # at refreshed_at + 10 s the interval is over
        reuse = _same(p, lambda http: _refresh(p, http, tokens[way_of(http)][0]))
    assert reuse.status_code == 400
    assert reuse.get_json() == {"error": "invalid_grant", "error_description": "refresh token already used"}
    dead = _same(p, lambda http: _refresh(p, http, tokens[way_of(http)][1]))  # the reuse revoked it
    assert dead.get_json()["error_description"] == "refresh token not found"


def test_decisions_on_the_session_row(provider: Provider) -> None:
    p = provider
    other = _same(p, lambda http: _refresh(p, http, p.session(p.public)))  # another client's token
    assert other.status_code == 400 and other.get_json()["error"] == "invalid_grant"
    forged = _same(p, lambda http: _refresh(p, http, "osr1_" + "A" * 75))
    assert forged.get_json()["error"] == "invalid_grant"
    now = datetime.now(UTC).replace(microsecond=0)
    ends = {(way, n): p.session(host_not_after=now + timedelta(seconds=60), now=now)
            for way in WAYS for n in (59, 60)}

    def refresh_at(n: int) -> Callable[[Any], Any]:
        return lambda http: _refresh(
            p, http, ends["flask" if isinstance(http.application, Flask) else "wsgi", n])

    with freeze_time(now + timedelta(seconds=59)):  # one second before not_after
        assert _same(p, refresh_at(59)).status_code == 200
    with freeze_time(now + timedelta(seconds=60)):  # at not_after
        assert _same(p, refresh_at(60)).get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize("case", ["wrong secret", "unknown client", "repeated parameter",
                                  "query string", "json body", "missing token", "empty scope",
                                  "no grant type", "unknown grant", "bad scope characters",
                                  "non-ascii", "basic and post", "undecodable percent",
                                  "malformed basic", "too large", "no client"])
def test_refusals_are_answered_alike(provider: Provider, case: str) -> None:
    p = provider

    def make(http: Any) -> Any:
        token = p.session()
        basic = _basic(p.client.client_id, p.secret)
        form = f"grant_type=refresh_token&refresh_token={token}"
        raw = {"Content-Type": "application/x-www-form-urlencoded"}
        answers = {
            "wrong secret": lambda: http.post("/oauth/token", data=form,
                                              headers={**raw, **_basic(p.client.client_id, "nope")}),
            "unknown client": lambda: http.post("/oauth/token", data=form,
                                                headers={**raw, **_basic(str(uuid.uuid4()), "nope")}),
            "repeated parameter": lambda: http.post("/oauth/token", data=form + "&refresh_token=" + token,
                                                    headers={**raw, **basic}),
            "query string": lambda: http.post("/oauth/token?refresh_token=" + token, data=form,
                                              headers={**raw, **basic}),
            "json body": lambda: http.post("/oauth/token", headers=basic,
                                           json={"grant_type": "refresh_token"}),
            "missing token": lambda: http.post("/oauth/token", data="grant_type=refresh_token",
                                               headers={**raw, **basic}),
            "empty scope": lambda: http.post("/oauth/token", data=form + "&scope=", headers={**raw, **basic}),
            "no grant type": lambda: http.post("/oauth/token", data="refresh_token=x",
                                               headers={**raw, **basic}),
            "unknown grant": lambda: http.post("/oauth/token", data="grant_type=password&username=a",
                                               headers={**raw, **basic}),
            "bad scope characters": lambda: http.post("/oauth/token", data=form + "&scope=%22x",
                                                      headers={**raw, **basic}),
            "non-ascii": lambda: http.post("/oauth/token", data=form + "&scope=%C3%A9",
                                           headers={**raw, **basic}),
            "basic and post": lambda: http.post("/oauth/token", data=form + "&client_secret=" + p.secret,
                                                headers={**raw, **basic}),
            "undecodable percent": lambda: http.post("/oauth/token", data=form + "&scope=%FF",
                                                     headers={**raw, **basic}),
            "malformed basic": lambda: http.post("/oauth/token", data=form,
                                                 headers={**raw, "Authorization": "Basic %%%"}),
            "too large": lambda: http.post("/oauth/token", data=form + "&x=" + "a" * 70_000,
                                           headers={**raw, **basic}),
            "no client": lambda: http.post("/oauth/token", data=form, headers=raw),
        }
        return answers[case]()

    response = _same(p, make)
    assert response.status_code in ((200,) if case == "empty scope" else (400, 401))
    if case in ("basic and post", "wrong secret", "unknown client", "no client", "malformed basic"):
        assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
        assert response.headers["WWW-Authenticate"] == 'Basic realm="oauth_sessions"'


def test_a_database_outage_is_a_503_both_ways(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    p = provider

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    tokens = [p.session(), p.session()]
    monkeypatch.setattr(SessionStore, "rotate", down)
    response = _same(p, lambda http: _refresh(p, http, tokens.pop()))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"] == "temporarily_unavailable"


# --------------------------------------------------------------------------- introspection


def _introspect(p: Provider, http: Any, token: str, **headers: str) -> Any:
    return http.post("/oauth/introspect", data={"token": token},
                     headers={**_basic(p.resource.client_id, p.resource_secret), **headers})


def test_introspection_answers_alike(provider: Provider) -> None:
    p = provider
    with freeze_time(datetime.now(UTC).replace(microsecond=0)):
        access = _refresh(p, p.app.test_client(), p.session()).get_json()["access_token"]
        active = _same(p, lambda http: _introspect(p, http, access))
        assert active.get_json()["active"] is True and active.get_json()["aal"] == "aal1"
        # RFC 9701: the signed answer, the same bytes at the same second
        signed = _same(p, lambda http: _introspect(p, http, access,
                                                   Accept="application/token-introspection+jwt"))
    assert signed.headers["Content-Type"] == "application/token-introspection+jwt"
    assert _same(p, lambda http: _introspect(p, http, p.session())).get_json() == {"active": False}
    assert _same(p, lambda http: _introspect(p, http, "not-a-token")).get_json() == {"active": False}
    with p.store.engine.begin() as conn:  # revoke every session: the access token dies at once
        conn.execute(delete(Session.__table__))
    assert _same(p, lambda http: _introspect(p, http, access)).get_json() == {"active": False}


@pytest.mark.parametrize("case", ["no authentication", "not a resource server", "missing token",
                                  "public client", "wrong secret"])
def test_introspection_refusals_are_answered_alike(provider: Provider, case: str) -> None:
    p = provider

    def make(http: Any) -> Any:
        if case == "no authentication":
            return http.post("/oauth/introspect", data={"token": "x"})
        if case == "not a resource server":
            return http.post("/oauth/introspect", data={"token": "x"},
                             headers=_basic(p.client.client_id, p.secret))
        if case == "public client":  # no client authentication "none" here
            return http.post("/oauth/introspect", data={"token": "x", "client_id": p.public.client_id})
        if case == "wrong secret":
            return http.post("/oauth/introspect", data={"token": "x"},
                             headers=_basic(p.resource.client_id, "nope"))
        return http.post("/oauth/introspect", data={"token_type_hint": "access_token"},
                         headers=_basic(p.resource.client_id, p.resource_secret))

    response = _same(p, make)
    assert response.status_code == (400 if case == "missing token" else 401)


# --------------------------------------------------------------------------- revocation


def _revoke(p: Provider, http: Any, token: str, client: ClientInfo | None = None,
            secret: str | None = None) -> Any:
    client = client or p.client
    return http.post("/oauth/revoke", data={"token": token},
                     headers=_basic(client.client_id, secret or p.secret))


def test_revocation_answers_alike_and_ends_the_session_both_ways(provider: Provider) -> None:
    p = provider
    tokens: dict[str, str] = {}

    def make(http: Any) -> Any:
        token = p.session()
        tokens["flask" if isinstance(http.application, Flask) else "wsgi"] = token
        return _revoke(p, http, token)

    response = _same(p, make)
    assert response.status_code == 200 and response.data == b""
    for token in tokens.values():  # revoked: the refresh token is refused now
        assert _refresh(p, p.app.test_client(), token).get_json()["error"] == "invalid_grant"
    access = {way: _refresh(p, p.app.test_client(), p.session()).get_json()["access_token"]
              for way in WAYS}
    assert _same(p, lambda http: _revoke(
        p, http, access["flask" if isinstance(http.application, Flask) else "wsgi"])).status_code == 200
    for token in access.values():  # an access token ends its session
        assert _introspect(p, p.app.test_client(), token).get_json() == {"active": False}


@pytest.mark.parametrize("case", ["foreign token", "garbage", "missing token", "wrong secret",
                                  "public client"])
def test_revocation_refusals_and_no_ops_are_answered_alike(provider: Provider, case: str) -> None:
    p = provider
    kept: list[str] = []

    def make(http: Any) -> Any:
        if case == "foreign token":  # another client's token: 200, and nothing is revoked
            token = p.session(p.public)
            kept.append(token)
            return _revoke(p, http, token)
        if case == "garbage":
            return _revoke(p, http, "not-a-token")
        if case == "wrong secret":
            return _revoke(p, http, p.session(), secret="nope")
        if case == "public client":
            return http.post("/oauth/revoke", data={"token": p.session(p.public),
                                                    "client_id": p.public.client_id})
        return http.post("/oauth/revoke", data={}, headers=_basic(p.client.client_id, p.secret))

    response = _same(p, make)
    assert response.status_code == {"missing token": 400, "wrong secret": 401}.get(case, 200)
    for token in kept:
        assert p.store.find_refresh_session(token) is not None


# --------------------------------------------------------------------------- keys and metadata


@pytest.mark.parametrize("path", ["/oauth/jwks", "/.well-known/openid-configuration",
                                  "/.well-known/oauth-authorization-server"])
def test_keys_and_metadata_are_answered_alike(provider: Provider, path: str) -> None:
    response = _same(provider, lambda http: http.get(path))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    head = _same(provider, lambda http: http.head(path))  # HEAD where GET is, as Flask does
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == response.headers["Content-Length"]


def test_a_repeated_query_parameter_at_jwks_is_refused_alike(provider: Provider) -> None:
    response = _same(provider, lambda http: http.get("/oauth/jwks?a=1&a=2"))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


# --------------------------------------------------------------------------- registration


METADATA = {"redirect_uris": ["https://rp.example/cb"], "client_name": "RP",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile offline_access", "unknown_field": "ignored"}


def _way(http: Any) -> str:
    return "flask" if isinstance(http.application, Flask) else "wsgi"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


@pytest.fixture
def registering(engine: Engine) -> Provider:
    app = make_app(engine, dynamic_registration=True)
    client, secret = create_client(app, scopes=SCOPES)
    public, _ = create_client(app, public=True, scopes=SCOPES)
    resource, resource_secret = create_client(app, name="api", can_introspect=True)
    assert secret and resource_secret
    return Provider(app, client, secret, public, resource, resource_secret)


def test_registration_and_its_management_are_answered_alike(registering: Provider) -> None:
    """RFC 7591 section 3 and RFC 7592 section 2, one client per way in: register, read,
    update, delete, then the deleted client's URI; every answer the same both ways."""
    p = registering
    created: dict[str, dict[str, Any]] = {}

    def register(http: Any) -> Any:
        response = http.post("/oauth/register", json=METADATA)
        created[_way(http)] = response.get_json()
        return response

    def uri(http: Any) -> str:
        return "/oauth/register/" + created[_way(http)]["client_id"]

    def token(http: Any) -> dict[str, str]:
        return _bearer(created[_way(http)]["registration_access_token"])

    def read(http: Any) -> Any:
        response = http.get(uri(http), headers=token(http))
        created[_way(http)]["registration_access_token"] = response.get_json()["registration_access_token"]
        return response

    def update(http: Any) -> Any:
        body = {**created[_way(http)], "client_name": "RP 2", "redirect_uris": ["https://rp.example/new"]}
        del body["registration_access_token"]
        response = http.put(uri(http), json=body, headers=token(http))
        created[_way(http)]["registration_access_token"] = response.get_json()["registration_access_token"]
        return response

    first = _same(p, register)
    assert first.status_code == 201 and first.get_json()["client_secret"]
    assert created["flask"]["client_id"] != created["wsgi"]["client_id"]
    assert _same(p, read).status_code == 200
    updated = _same(p, update)
    assert updated.status_code == 200 and updated.get_json()["redirect_uris"] == ["https://rp.example/new"]
    for way in WAYS:  # each way's update reached the store
        info = get_state(p.app).services.clients.get(created[way]["client_id"], fresh=True)
        assert info is not None and info.name == "RP 2"
    gone = _same(p, lambda http: http.delete(uri(http), headers=token(http)))
    assert gone.status_code == 204 and gone.data == b"" and "Content-Length" not in gone.headers
    assert _same(p, lambda http: http.get(uri(http), headers=token(http))).status_code == 401
    for way in WAYS:
        assert get_state(p.app).services.clients.get(created[way]["client_id"], fresh=True) is None


@pytest.mark.parametrize("case", ["no redirect uris", "implicit grant", "not json", "a list",
                                  "too deep", "control character", "unknown scope",
                                  "repeated query parameter", "malformed basic", "too large"])
def test_registration_refusals_are_answered_alike_and_write_nothing(registering: Provider,
                                                                    case: str) -> None:
    p = registering
    bodies: dict[str, Any] = {
        "no redirect uris": METADATA | {"redirect_uris": []},
        "implicit grant": METADATA | {"grant_types": ["implicit"]},
        "a list": [METADATA],
        "too deep": METADATA | {"x": [[[[[[[[["deep"]]]]]]]]]},
        "control character": METADATA | {"client_name": "R\u0000P"},
        "unknown scope": METADATA | {"scope": "openid admin"},
        "too large": METADATA | {"client_name": "x" * 70_000},
    }

    def make(http: Any) -> Any:
        if case == "not json":
            return http.post("/oauth/register", data="{not json", content_type="application/json")
        if case == "repeated query parameter":
            return http.post("/oauth/register?a=1&a=2", json=METADATA)
        if case == "malformed basic":
            return http.post("/oauth/register", json=METADATA, headers={"Authorization": "Basic %%%"})
        return http.post("/oauth/register", json=bodies[case])

    before = snapshot(p.store.engine)
    response = _same(p, make)
    assert response.status_code == {"malformed basic": 401}.get(case, 400)
    expected = {"no redirect uris": "invalid_redirect_uri", "repeated query parameter": "invalid_request",
                "malformed basic": "invalid_client", "too large": "invalid_request"}
    assert response.get_json()["error"] == expected.get(case, "invalid_client_metadata")
    assert snapshot(p.store.engine) == before


@pytest.mark.parametrize("case", ["no token", "wrong token", "unknown client", "not a uuid",
                                  "nul in the path", "non-ascii path", "administered client",
                                  "another client id in the body", "public to confidential",
                                  "head"])
def test_management_refusals_are_answered_alike_and_change_nothing(registering: Provider,
                                                                   case: str) -> None:
    p = registering
    registered = p.app.test_client().post("/oauth/register", json=METADATA).get_json()
    own = "/oauth/register/" + registered["client_id"]
    token = _bearer(registered["registration_access_token"])
    body = {k: v for k, v in registered.items() if k != "registration_access_token"}

    def make(http: Any) -> Any:
        answers = {
            "no token": lambda: http.get(own),
            "wrong token": lambda: http.get(own, headers=_bearer("nope")),
            "unknown client": lambda: http.get("/oauth/register/" + str(uuid.uuid4()), headers=token),
            "not a uuid": lambda: http.get("/oauth/register/x%27%3B--", headers=token),
            "nul in the path": lambda: http.get("/oauth/register/%00", headers=token),
            "non-ascii path": lambda: http.get("/oauth/register/%C3%A9%FF", headers=token),
            "administered client": lambda: http.get("/oauth/register/" + p.client.client_id,
                                                    headers={"Authorization": "Bearer anything"}),
            "another client id in the body": lambda: http.put(own, json=body | {"client_id": "other"},
                                                              headers=token),
            "public to confidential": lambda: http.put(
                own, json=body | {"token_endpoint_auth_method": "none"}, headers=token),
            "head": lambda: http.head(own, headers=token),  # never replaces the token
        }
        return answers[case]()

    before = snapshot(p.store.engine)
    response = _same(p, make)
    assert response.status_code == (400 if case in ("another client id in the body",
                                                    "public to confidential", "head") else 401)
    if response.status_code == 401:
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert snapshot(p.store.engine) == before
    assert p.app.test_client().get(own, headers=token).status_code == 200  # the token still works


def test_registration_paths_outside_the_rfc7592_uris_are_404_both_ways(registering: Provider) -> None:
    wsgi, flask = Client(make_wsgi_app(registering.app)), registering.app.test_client()
    for path in ("/oauth/register/", "/oauth/register/a/b", "/oauth/registerx"):
        assert wsgi.get(path).status_code == flask.get(path).status_code == 404
    assert wsgi.get("/oauth/register").status_code == 405  # POST only, as on the blueprint
    assert wsgi.post("/oauth/register/x").headers["Allow"] == "DELETE, GET, HEAD, PUT"


def test_without_dynamic_registration_the_wsgi_app_has_no_register_path(provider: Provider) -> None:
    machine = make_wsgi_app(provider.app)
    assert "/oauth/register" not in machine.routes()
    assert Client(machine).post("/oauth/register", json=METADATA).status_code == 404
    assert Client(machine).get("/oauth/register/" + str(uuid.uuid4())).status_code == 404


@pytest.mark.postgres
def test_racing_reads_through_both_ways_get_one_new_registration_token(pg_engine: Engine) -> None:
    """RFC 7592 section 3 through both ways at once: of six threads presenting one token, three
    through Flask and three through the WSGI app, exactly one gets a new token."""
    app = make_app(pg_engine, dynamic_registration=True)
    created = app.test_client().post("/oauth/register", json=METADATA).get_json()
    uri = "/oauth/register/" + created["client_id"]
    machine = make_wsgi_app(app)
    barrier = threading.Barrier(6)
    answers: list[Any] = []

    def read(way: str) -> None:
        http = app.test_client() if way == "flask" else Client(machine)
        barrier.wait()
        answers.append(http.get(uri, headers=_bearer(created["registration_access_token"])))

    threads = [threading.Thread(target=read, args=(way,)) for way in WAYS * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(a.status_code for a in answers) == [200] + [401] * 5
    winner = next(a for a in answers if a.status_code == 200)
    info = get_state(app).services.clients.get(created["client_id"], fresh=True)
    assert info is not None
    assert verify_client_secret(winner.get_json()["registration_access_token"],
                                info.registration_access_token_hash)


# --------------------------------------------------------------------------- mounting


def test_routes_outside_the_machine_endpoints_are_404_and_wrong_methods_405(provider: Provider) -> None:
    http = Client(make_wsgi_app(provider.app))
    assert http.get("/oauth/authorize").status_code == 404
    assert http.get("/oauth/userinfo").status_code == 404  # a browser-facing endpoint: Flask's
    wrong = http.get("/oauth/token")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
    assert http.post("/oauth/jwks").headers["Allow"] == "GET, HEAD"


def _mounted_behind_a_hook(p: Provider) -> tuple[Any, list[str]]:
    """The host app with a ``before_request`` hook and the WSGI app mounted on its routes, as
    the production guide shows; the list records each time the hook ran."""
    seen: list[str] = []

    @p.app.before_request
    def audit() -> None:
        seen.append("hook")

    machine = make_wsgi_app(p.app)
    p.app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        p.app.wsgi_app, {path: machine for path in machine.routes()})
    return p.app.test_client(), seen


def test_mounted_with_the_dispatcher_the_machine_paths_skip_the_host_hooks(provider: Provider) -> None:
    """What the docs promise: no Flask request hooks run in the WSGI app; the rest stays Flask's."""
    p = provider
    http, seen = _mounted_behind_a_hook(p)
    assert _refresh(p, http, p.session()).status_code == 200
    assert _revoke(p, http, p.session()).status_code == 200
    assert http.get("/oauth/jwks").status_code == 200
    assert seen == []
    assert http.post("/oauth/register", json=METADATA).status_code == 404  # registration is off
    assert seen == ["hook"]  # so that path is Flask's
    seen.clear()
    assert http.get("/oauth/userinfo").status_code == 401 and seen == ["hook"]  # the Flask way


def test_mounted_with_the_dispatcher_registration_and_its_uris_skip_the_host_hooks(
        registering: Provider) -> None:
    """``routes()`` names ``{prefix}/register``; the dispatcher hands it the RFC 7592 URIs too."""
    p = registering
    assert make_wsgi_app(p.app).routes()["/oauth/register"] == "POST"
    http, seen = _mounted_behind_a_hook(p)
    created = http.post("/oauth/register", json=METADATA).get_json()
    read = http.get(created["registration_client_uri"].removeprefix(ISSUER),
                    headers=_bearer(created["registration_access_token"]))
    assert read.status_code == 200 and read.get_json()["client_id"] == created["client_id"]
    assert seen == []
