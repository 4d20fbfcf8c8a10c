"""Pushed authorization requests (RFC 9126) through HTTP, on SQLite and PostgreSQL.

Push → 201 request_uri → /authorize with client_id and request_uri only → sign-in round trip
→ consent → code → tokens; one-time, short-lived, bound to the client, the other query
parameters ignored, per-client and global requirement, and hostile pushes that write nothing.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from factories import (
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    make_app,
    pkce_pair,
    query_of,
    snapshot,
    user_headers,
)
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import Engine, func, select

from oauth_sessions import get_state
from oauth_sessions.storage.clients import ClientInfo
from oauth_sessions.storage.models import OAuthAuthorizationCode, OAuthPushedRequest
from oauth_sessions.storage.pushed_requests import REQUEST_URI_PREFIX, hash_reference
from oauth_sessions.wsgi import make_wsgi_app

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _pushed_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(OAuthPushedRequest.__table__)).all())


def _request(client: ClientInfo, challenge: str, **extra: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": client.client_id,
              "redirect_uri": client.redirect_uris[0], "scope": "openid profile",
              "state": "pushed-state", "nonce": "pushed-nonce", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    params.update(extra)
    return params


def _push(http: FlaskClient, client: ClientInfo, secret: str | None, challenge: str,
          **extra: str) -> Any:
    data = _request(client, challenge, **extra)
    headers = {}
    if secret is not None:
        headers["Authorization"] = basic_auth(client.client_id, secret)
    return http.post("/oauth/par", data=data, headers=headers)


def _authorize(http: FlaskClient, query: dict[str, str], headers: dict[str, str]) -> Any:
    """GET /authorize, approving the consent page like a browser when it is shown."""
    response = http.get("/oauth/authorize", query_string=query, headers=headers)
    if response.status_code == 200 and response.is_json and response.json.get("consent"):
        form = dict(response.json["form_fields"]) | {"decision": "approve"}
        response = http.post(response.json["action"], data=form, headers=headers)
    return response


@pytest.fixture
def setup(engine: Engine) -> tuple[Flask, FlaskClient, ClientInfo, str]:
    app = make_app(engine)
    client, secret = create_client(app)
    assert secret is not None
    return app, app.test_client(), client, secret


def test_pushed_request_answers_201_and_authorize_issues_a_code_from_it(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    _, http, client, secret = setup
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    pushed = _push(http, client, secret, challenge)
    assert pushed.status_code == 201, pushed.json
    assert pushed.headers["Cache-Control"] == "no-store"
    request_uri = pushed.json["request_uri"]
    assert request_uri.startswith(REQUEST_URI_PREFIX) and pushed.json["expires_in"] == 60
    rows = _pushed_rows(engine)
    # Only the reference's hash is stored, with the parameters and no client secret.
    assert [r.request_hash for r in rows] == [hash_reference(request_uri)]
    assert request_uri not in rows[0].parameters and secret not in rows[0].parameters

    response = _authorize(http, {"client_id": client.client_id, "request_uri": request_uri},
                          user_headers(user))
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(client.redirect_uris[0] + "?")
    query = query_of(location)
    assert query["state"] == "pushed-state"
    tokens = exchange_code(http, client, secret, query["code"], verifier)
    assert tokens.status_code == 200, tokens.json
    assert tokens.json["scope"] == "openid profile"


def test_other_query_parameters_are_ignored_at_authorize(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    """RFC 9126 section 4: only client_id and request_uri of the query are used."""
    app, http, client, secret = setup
    get_state(app).services.clients.update_metadata(
        client.id, redirect_uris=[client.redirect_uris[0], "https://client.example/other"])
    user = create_user(engine)
    _, challenge = pkce_pair()
    request_uri = _push(http, client, secret, challenge).json["request_uri"]
    response = _authorize(http, {"client_id": client.client_id, "request_uri": request_uri,
                                 "redirect_uri": "https://client.example/other",
                                 "state": "injected", "scope": "openid offline_access"},
                          user_headers(user))
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(client.redirect_uris[0] + "?")
    assert query_of(location)["state"] == "pushed-state"
    code = query_of(location)["code"]
    record = get_state(app).services.authorizations.find(code)
    assert record is not None and record.scopes == ("openid", "profile")


def test_sign_in_round_trip_keeps_the_parameters_on_the_server(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    """The person signs in (and is asked for consent) after the request_uri was taken."""
    _, http, client, secret = setup
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    request_uri = _push(http, client, secret, challenge, prompt="login",
                        max_age="0").json["request_uri"]
    first = http.get("/oauth/authorize", query_string={"client_id": client.client_id,
                                                       "request_uri": request_uri})
    assert first.status_code == 302 and first.headers["Location"].startswith("/test-login?")
    next_url = parse_qs(urlsplit(first.headers["Location"]).query)["next"][0]
    carried = query_of(next_url)
    # The browser carries the reference and its continuation ticket, not the parameters.
    assert set(carried) == {"client_id", "request_uri", "par_ticket"}
    assert carried["request_uri"] == request_uri
    # The bare request_uri is used now: another browser cannot take it.
    again = http.get("/oauth/authorize", query_string={"client_id": client.client_id,
                                                       "request_uri": request_uri},
                     headers=user_headers(user))
    assert again.status_code == 400 and again.json["error"] == "invalid_request_uri"
    # Back from sign-in (prompt=login and max_age=0 satisfied, no loop): consent, then the code.
    consent = http.get(next_url, headers=user_headers(user))
    assert consent.status_code == 200 and consent.json["consent"] is True
    assert {k for k, _ in consent.json["form_fields"]} == {"client_id", "request_uri",
                                                           "par_ticket", "consent_ticket"}
    form = dict(consent.json["form_fields"]) | {"decision": "approve"}
    approved = http.post(consent.json["action"], data=form, headers=user_headers(user))
    assert approved.status_code == 302, approved.get_data(as_text=True)
    query = query_of(approved.headers["Location"])
    assert query["state"] == "pushed-state"
    assert exchange_code(http, client, secret, query["code"], verifier).status_code == 200
    # One code per pushed request: the same continuation again is refused, nothing issued.
    before = snapshot(engine)
    replay = http.post(consent.json["action"], data=form, headers=user_headers(user))
    assert replay.status_code == 400 and replay.json["error"] == "invalid_request_uri"
    assert snapshot(engine) == before


def test_a_tampered_or_foreign_continuation_ticket_is_refused(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    _, http, client, secret = setup
    user = create_user(engine)
    _, challenge = pkce_pair()
    first_uri = _push(http, client, secret, challenge).json["request_uri"]
    other_uri = _push(http, client, secret, challenge).json["request_uri"]
    first = http.get("/oauth/authorize", query_string={"client_id": client.client_id,
                                                       "request_uri": first_uri})
    ticket = query_of(parse_qs(urlsplit(first.headers["Location"]).query)["next"][0])["par_ticket"]
    http.get("/oauth/authorize", query_string={"client_id": client.client_id,
                                               "request_uri": other_uri})
    for uri, given in ((first_uri, ticket[:-2] + "xx"), (other_uri, ticket)):
        response = http.get("/oauth/authorize", headers=user_headers(user), query_string={
            "client_id": client.client_id, "request_uri": uri, "par_ticket": given})
        assert response.status_code == 400 and response.json["error"] == "invalid_request_uri"


def test_the_continuation_lasts_ten_minutes_exactly(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    _, http, client, secret = setup
    user = create_user(engine)
    _, challenge = pkce_pair()
    with freeze_time(T0) as frozen:
        request_uri = _push(http, client, secret, challenge).json["request_uri"]
        first = http.get("/oauth/authorize", query_string={"client_id": client.client_id,
                                                           "request_uri": request_uri})
        next_url = parse_qs(urlsplit(first.headers["Location"]).query)["next"][0]
        frozen.tick(timedelta(seconds=600))
        assert http.get(next_url, headers=user_headers(user)).status_code == 200
        frozen.tick(timedelta(seconds=1))
        late = http.get(next_url, headers=user_headers(user))
        assert late.status_code == 400 and late.json["error"] == "invalid_request_uri"


@pytest.mark.parametrize("lifetime", [60, 90])
def test_request_uri_expires_at_its_lifetime_exactly(engine: Engine, lifetime: int) -> None:
    app = make_app(engine, pushed_request_lifetime=lifetime)
    client, secret = create_client(app)
    http = app.test_client()
    user = create_user(engine)
    _, challenge = pkce_pair()
    with freeze_time(T0) as frozen:
        early = _push(http, client, secret, challenge)
        late = _push(http, client, secret, challenge)
        assert early.json["expires_in"] == lifetime
        frozen.tick(timedelta(seconds=lifetime) - timedelta(microseconds=1))
        ok = _authorize(http, {"client_id": client.client_id,
                               "request_uri": early.json["request_uri"]}, user_headers(user))
        assert ok.status_code == 302 and "code" in query_of(ok.headers["Location"])
        frozen.tick(timedelta(microseconds=1))
        before = snapshot(engine)
        expired = _authorize(http, {"client_id": client.client_id,
                                    "request_uri": late.json["request_uri"]}, user_headers(user))
        assert expired.status_code == 400 and expired.json["error"] == "invalid_request_uri"
        assert snapshot(engine) == before


@pytest.mark.parametrize("request_uri", [
    REQUEST_URI_PREFIX + "unknown", REQUEST_URI_PREFIX, REQUEST_URI_PREFIX + "x" * 300])
def test_unknown_request_uri_is_invalid_request_uri_and_not_redirected(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str],
        request_uri: str) -> None:
    _, http, client, _ = setup
    response = http.get("/oauth/authorize", headers=user_headers(create_user(engine)),
                        query_string={"client_id": client.client_id, "request_uri": request_uri,
                                      "redirect_uri": client.redirect_uris[0]})
    assert response.status_code == 400 and response.json["error"] == "invalid_request_uri"


def test_a_public_client_pushes_with_its_client_id(engine: Engine) -> None:
    app = make_app(engine)
    client, _ = create_client(app, public=True)
    http = app.test_client()
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    pushed = _push(http, client, None, challenge)
    assert pushed.status_code == 201, pushed.json
    response = _authorize(http, {"client_id": client.client_id,
                                 "request_uri": pushed.json["request_uri"]}, user_headers(user))
    code = query_of(response.headers["Location"])["code"]
    assert exchange_code(http, client, None, code, verifier).status_code == 200


@pytest.mark.parametrize(("change", "error"), [
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"request_uri": REQUEST_URI_PREFIX + "abc"}, "invalid_request"),
    ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
    ({"redirect_uri": ""}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"code_challenge": ""}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"scope": "admin"}, "invalid_scope"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"max_age": "ten"}, "invalid_request"),
    ({"nonce": "n" * 513}, "invalid_request"),
])
def test_bad_pushed_request_is_a_json_error_and_writes_nothing(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str],
        change: dict[str, str], error: str) -> None:
    _, http, client, secret = setup
    _, challenge = pkce_pair()
    before = snapshot(engine)
    response = _push(http, client, secret, challenge, **change)
    assert response.status_code == 400, response.json
    assert response.json["error"] == error and response.json["error_description"]
    assert "Location" not in response.headers
    assert snapshot(engine) == before and _pushed_rows(engine) == []


def test_push_refuses_bad_clients_and_malformed_bodies(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    app, http, client, secret = setup
    other, _ = create_client(app, name="Other client")
    _, challenge = pkce_pair()
    data = _request(client, challenge)
    answers = [
        http.post("/oauth/par", data=data),  # a confidential client without its secret
        http.post("/oauth/par", data=data, headers={"Authorization": basic_auth(
            client.client_id, secret + "x")}),
        http.post("/oauth/par", data=data | {"client_id": other.client_id},
                  headers={"Authorization": basic_auth(client.client_id, secret)}),
        http.post("/oauth/par", json=data,
                  headers={"Authorization": basic_auth(client.client_id, secret)}),
        http.post("/oauth/par?state=x", data=data,
                  headers={"Authorization": basic_auth(client.client_id, secret)}),
        http.post("/oauth/par", data=data | {"state": "\x00"},
                  headers={"Authorization": basic_auth(client.client_id, secret)}),
        http.post("/oauth/par", data=data | {"state": "s" * 5000},
                  headers={"Authorization": basic_auth(client.client_id, secret)}),
    ]
    assert [(a.status_code, a.json["error"]) for a in answers] == [
        (401, "invalid_client"), (401, "invalid_client"), (400, "invalid_request"),
        (400, "invalid_request"), (400, "invalid_request"), (400, "invalid_request"),
        (400, "invalid_request")]
    assert answers[1].json["error_description"] == "client authentication failed"
    assert _pushed_rows(engine) == []
    assert http.get("/oauth/par").status_code == 405


def test_a_client_that_must_push_cannot_send_a_plain_request(engine: Engine) -> None:
    app = make_app(engine)
    client, secret = create_client(app, require_pushed_authorization_requests=True)
    assert client.require_pushed_authorization_requests is True
    assert client.as_metadata()["require_pushed_authorization_requests"] is True
    http = app.test_client()
    user = create_user(engine)
    _, challenge = pkce_pair()
    plain = http.get("/oauth/authorize", query_string=_request(client, challenge),
                     headers=user_headers(user))
    assert plain.status_code == 302
    query = query_of(plain.headers["Location"])
    assert query["error"] == "invalid_request" and "push" in query["error_description"]
    assert "code" not in query
    pushed = _push(http, client, secret, challenge)
    response = _authorize(http, {"client_id": client.client_id,
                                 "request_uri": pushed.json["request_uri"]}, user_headers(user))
    assert "code" in query_of(response.headers["Location"])
    # Another client is not affected.
    free, _ = create_client(app, name="Free client")
    assert "code" in query_of(_authorize(http, _request(free, challenge),
                                         user_headers(user)).headers["Location"])


def test_the_global_setting_requires_every_client_to_push(engine: Engine) -> None:
    app = make_app(engine, require_pushed_authorization_requests=True)
    client, secret = create_client(app)
    http = app.test_client()
    user = create_user(engine)
    _, challenge = pkce_pair()
    plain = http.get("/oauth/authorize", query_string=_request(client, challenge),
                     headers=user_headers(user))
    assert query_of(plain.headers["Location"])["error"] == "invalid_request"
    pushed = _push(http, client, secret, challenge)
    response = _authorize(http, {"client_id": client.client_id,
                                 "request_uri": pushed.json["request_uri"]}, user_headers(user))
    assert "code" in query_of(response.headers["Location"])
    metadata = http.get("/.well-known/openid-configuration").json
    assert metadata["require_pushed_authorization_requests"] is True


def test_discovery_names_the_endpoint(engine: Engine) -> None:
    http = make_app(engine).test_client()
    metadata = http.get("/.well-known/oauth-authorization-server").json
    assert metadata["pushed_authorization_request_endpoint"] == "http://127.0.0.1:5000/oauth/par"
    assert metadata["require_pushed_authorization_requests"] is False


def test_the_wsgi_app_answers_pushed_requests_like_the_blueprint(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    from werkzeug.test import Client

    app, http, client, secret = setup
    user = create_user(engine)
    _, challenge = pkce_pair()
    machine = Client(make_wsgi_app(app))
    pushed = machine.post("/oauth/par", data=_request(client, challenge),
                          headers={"Authorization": basic_auth(client.client_id, secret)})
    assert pushed.status_code == 201 and pushed.headers["X-Frame-Options"] == "DENY"
    response = _authorize(http, {"client_id": client.client_id,
                                 "request_uri": pushed.json["request_uri"]}, user_headers(user))
    assert "code" in query_of(response.headers["Location"])
    bad = machine.post("/oauth/par", data=_request(client, challenge, redirect_uri="x"),
                       headers={"Authorization": basic_auth(client.client_id, secret)})
    via_flask = http.post("/oauth/par", data=_request(client, challenge, redirect_uri="x"),
                          headers={"Authorization": basic_auth(client.client_id, secret)})
    assert (bad.status_code, bad.get_data()) == (via_flask.status_code, via_flask.get_data())


def _race(work: Any, workers: int = 8) -> list[Any]:
    """Run ``work`` in ``workers`` threads released together; their results."""
    barrier = threading.Barrier(workers)
    results: list[Any] = []

    def run() -> None:
        barrier.wait()
        results.append(work())

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.postgres
def test_racing_uses_of_one_request_uri_exactly_one_wins(pg_engine: Engine) -> None:
    app = make_app(pg_engine)
    client, secret = create_client(app)
    _, challenge = pkce_pair()
    store = get_state(app).services.pushed_requests
    for _round in range(5):
        request_uri = _push(app.test_client(), client, secret, challenge).json["request_uri"]
        taken = _race(lambda uri=request_uri: store.use(uri, client.id))
        assert sum(r is not None for r in taken) == 1
        completed = _race(lambda uri=request_uri: store.complete(uri))
        assert completed.count(True) == 1


def test_purge_forgets_requests_expired_for_a_day(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    app, http, client, secret = setup
    _, challenge = pkce_pair()
    with freeze_time(T0):
        _push(http, client, secret, challenge)
    store = get_state(app).services.pushed_requests
    assert store.purge(now=T0 + timedelta(days=1, seconds=60)) == 0
    assert store.purge(now=T0 + timedelta(days=1, seconds=61)) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(
            OAuthPushedRequest.__table__)).scalar() == 0


def test_registration_and_rfc7592_updates_carry_the_requirement(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    http = app.test_client()
    body = {"redirect_uris": ["https://rp.example/cb"], "client_name": "RP",
            "require_pushed_authorization_requests": True}
    created = http.post("/oauth/register", json=body)
    assert created.status_code == 201, created.json
    assert created.json["require_pushed_authorization_requests"] is True
    clients = get_state(app).services.clients
    assert clients.get(created.json["client_id"], fresh=True).require_pushed_authorization_requests
    uri = "/oauth/register/" + created.json["client_id"]
    update = {k: v for k, v in created.json.items()
              if k not in {"registration_access_token", "client_secret",
                           "client_secret_expires_at", "registration_client_uri",
                           "require_pushed_authorization_requests"}}
    updated = http.put(uri, json=update, headers={
        "Authorization": "Bearer " + created.json["registration_access_token"]})
    assert updated.status_code == 200, updated.json
    assert "require_pushed_authorization_requests" not in updated.json  # default: false
    assert not clients.get(created.json["client_id"], fresh=True).require_pushed_authorization_requests
    before = snapshot(engine)
    for bad in ("yes", 1, None, ["true"]):
        refused = http.post("/oauth/register",
                            json=body | {"require_pushed_authorization_requests": bad})
        assert refused.status_code == 400 and refused.json["error"] == "invalid_client_metadata"
    assert snapshot(engine) == before


def test_the_cli_sets_and_clears_the_requirement(engine: Engine) -> None:
    import json

    app = make_app(engine)
    runner = app.test_cli_runner()
    made = runner.invoke(args=["oauth-sessions", "create-client", "--name", "Pushy",
                               "--redirect-uri", "https://p.example/cb", "--require-par", "--json"])
    assert made.exit_code == 0, made.output
    client_id = json.loads(made.output)["client_id"]
    clients = get_state(app).services.clients
    assert clients.get(client_id, fresh=True).require_pushed_authorization_requests is True
    undo = runner.invoke(args=["oauth-sessions", "require-par", client_id, "--undo"])
    assert undo.exit_code == 0, undo.output
    assert clients.get(client_id, fresh=True).require_pushed_authorization_requests is False
    again = runner.invoke(args=["oauth-sessions", "require-par", client_id])
    assert again.exit_code == 0
    assert clients.get(client_id, fresh=True).require_pushed_authorization_requests is True
    missing = runner.invoke(args=["oauth-sessions", "require-par",
                                  "00000000-0000-4000-8000-000000000000"])
    assert missing.exit_code != 0 and "no client" in missing.output


@pytest.mark.postgres
def test_racing_browsers_on_one_request_uri_get_one_code(pg_engine: Engine) -> None:
    """Through HTTP on PostgreSQL: eight browsers use one request_uri at once; one code."""
    app = make_app(pg_engine)
    client, secret = create_client(app)
    user = create_user(pg_engine)
    _, challenge = pkce_pair()
    get_state(app).services.consents.grant(user, client.id, ("openid", "profile"))
    request_uri = _push(app.test_client(), client, secret, challenge).json["request_uri"]
    answers = _race(lambda: app.test_client().get("/oauth/authorize", headers=user_headers(user),
                                                  query_string={"client_id": client.client_id,
                                                                "request_uri": request_uri}))
    codes = [a for a in answers if a.status_code == 302 and "code" in query_of(a.headers["Location"])]
    refused = [a for a in answers if a.status_code == 400]
    assert len(codes) == 1 and len(refused) == 7
    assert {a.json["error"] for a in refused} == {"invalid_request_uri"}
    with pg_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(
            OAuthAuthorizationCode.__table__)).scalar() == 1
