"""A client's registration changes between the push and the use of its request (RFC 9126),
through HTTP on SQLite and PostgreSQL.

The pushed parameters are checked when pushed and again when used (and again when the browser
comes back from sign-in), against the registration as it is then: a redirect URI no longer
registered or a deleted client is an error shown to the person, never redirected; narrowed
scopes give the subset still allowed (RFC 6749 section 3.3) or ``invalid_scope``; a rotated
secret leaves the request usable, and the code is redeemed with the new secret only. Nothing is
issued from a refused request, and another client's ``client_id`` neither uses nor spends it.
"""

from __future__ import annotations

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
from sqlalchemy import Engine

from oauth_sessions import get_state
from oauth_sessions.storage.clients import ClientInfo

OTHER_URI = "https://client.example/other"


def _push(http: FlaskClient, client: ClientInfo, secret: str, challenge: str,
          redirect_uri: str | None = None) -> str:
    answer = http.post("/oauth/par", headers={"Authorization": basic_auth(client.client_id, secret)},
                       data={"response_type": "code", "client_id": client.client_id,
                             "redirect_uri": redirect_uri or client.redirect_uris[0],
                             "scope": "openid profile", "state": "pushed-state",
                             "code_challenge": challenge, "code_challenge_method": "S256"})
    assert answer.status_code == 201, answer.json
    request_uri: str = answer.json["request_uri"]
    return request_uri


def _authorize(http: FlaskClient, query: dict[str, str], headers: dict[str, str]) -> Any:
    """GET /authorize, approving the consent page like a browser when it is shown."""
    response = http.get("/oauth/authorize", query_string=query, headers=headers)
    if response.status_code == 200 and response.is_json and response.json.get("consent"):
        form = dict(response.json["form_fields"]) | {"decision": "approve"}
        response = http.post(response.json["action"], data=form, headers=headers)
    return response


def _shown_not_redirected(response: Any, error: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "Location" not in response.headers
    assert response.json["error"] == error and response.json["error_description"]
    assert "code" not in response.json


@pytest.fixture
def setup(engine: Engine) -> tuple[Flask, FlaskClient, ClientInfo, str]:
    app = make_app(engine)
    client, secret = create_client(app, redirect_uris=("https://client.example/cb", OTHER_URI))
    assert secret is not None
    return app, app.test_client(), client, secret


@pytest.mark.parametrize("when", ["before the first visit", "while the person signs in"])
def test_a_redirect_uri_removed_from_the_registration_is_shown_not_redirected(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str], when: str) -> None:
    app, http, client, secret = setup
    user = create_user(engine)
    _, challenge = pkce_pair()
    request_uri = _push(http, client, secret, challenge, redirect_uri=OTHER_URI)
    query = {"client_id": client.client_id, "request_uri": request_uri}
    if when == "while the person signs in":
        first = http.get("/oauth/authorize", query_string=query)
        assert first.status_code == 302 and first.headers["Location"].startswith("/test-login?")
        query = query_of(parse_qs(urlsplit(first.headers["Location"]).query)["next"][0])
    assert get_state(app).services.clients.update_metadata(
        client.id, redirect_uris=[client.redirect_uris[0]])
    before = snapshot(engine)
    response = _authorize(http, query, user_headers(user))
    # RFC 6749 section 4.1.2.1: without a registered redirect URI the user is told, and the
    # client is not redirected to (the URI pushed is no longer one this client owns).
    _shown_not_redirected(response, "invalid_request")
    assert snapshot(engine) == before


def test_a_deleted_client_cannot_use_what_it_pushed(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    app, http, client, secret = setup
    user = create_user(engine)
    _, challenge = pkce_pair()
    request_uri = _push(http, client, secret, challenge)
    assert get_state(app).services.clients.delete(client.id)
    before = snapshot(engine)
    response = _authorize(http, {"client_id": client.client_id, "request_uri": request_uri},
                          user_headers(user))
    _shown_not_redirected(response, "invalid_request")
    assert snapshot(engine) == before


def test_narrowed_scopes_give_the_subset_still_allowed(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    """RFC 6749 section 3.3, as for the same request sent to /authorize directly: the code
    carries only the scopes the client may still have, and the token response says so."""
    app, http, client, secret = setup
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    request_uri = _push(http, client, secret, challenge)
    assert get_state(app).services.clients.update_metadata(client.id,
                                                           scope="openid offline_access")
    response = _authorize(http, {"client_id": client.client_id, "request_uri": request_uri},
                          user_headers(user))
    assert response.status_code == 302, response.get_data(as_text=True)
    code = query_of(response.headers["Location"])["code"]
    record = get_state(app).services.authorizations.find(code)
    assert record is not None and record.scopes == ("openid",)
    tokens = exchange_code(http, client, secret, code, verifier)
    assert tokens.status_code == 200 and tokens.json["scope"] == "openid"


def test_scopes_narrowed_to_none_of_the_pushed_ones_is_invalid_scope(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    """The redirect URI is still registered (and the client verified): the error goes back to
    the client with the pushed state, as at /authorize, and no code comes with it."""
    app, http, client, secret = setup
    user = create_user(engine)
    _, challenge = pkce_pair()
    request_uri = _push(http, client, secret, challenge)
    assert get_state(app).services.clients.update_metadata(client.id, scope="offline_access")
    before = snapshot(engine)
    response = _authorize(http, {"client_id": client.client_id, "request_uri": request_uri},
                          user_headers(user))
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(client.redirect_uris[0] + "?")
    query = query_of(location)
    assert query["error"] == "invalid_scope" and query["state"] == "pushed-state"
    assert "code" not in query
    assert snapshot(engine) == before


def test_a_rotated_secret_leaves_the_pushed_request_usable_and_the_code_needs_the_new_one(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    """The push was authenticated with the secret valid then; the browser's visit carries no
    client credentials, and every later step that does (the code exchange) checks the secret
    valid at that moment. A rotation is not a revocation (deleting the client is): refusing
    here would break the sign-ins in flight during a routine rotation and protect nothing,
    since the code is useless without the new secret."""
    app, http, client, secret = setup
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    request_uri = _push(http, client, secret, challenge)
    new_secret = get_state(app).services.clients.rotate_secret(client.id)
    assert new_secret is not None and new_secret != secret
    response = _authorize(http, {"client_id": client.client_id, "request_uri": request_uri},
                          user_headers(user))
    assert response.status_code == 302, response.get_data(as_text=True)
    code = query_of(response.headers["Location"])["code"]
    before = snapshot(engine)
    old = exchange_code(http, client, secret, code, verifier)
    assert old.status_code == 401 and old.json["error"] == "invalid_client"
    assert snapshot(engine) == before  # the refused exchange did not spend the code
    tokens = exchange_code(http, client, new_secret, code, verifier)
    assert tokens.status_code == 200, tokens.json
    # A push with the old secret is refused from now on.
    refused = http.post("/oauth/par", headers={"Authorization": basic_auth(client.client_id, secret)},
                        data={"response_type": "code", "client_id": client.client_id})
    assert refused.status_code == 401 and refused.json["error"] == "invalid_client"


def test_another_clients_id_neither_uses_nor_spends_the_request(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    app, http, client, secret = setup
    other, _ = create_client(app, name="Other client", redirect_uris=(OTHER_URI,))
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    request_uri = _push(http, client, secret, challenge)
    before = snapshot(engine, ledgers=True)
    foreign = _authorize(http, {"client_id": other.client_id, "request_uri": request_uri},
                         user_headers(user))
    _shown_not_redirected(foreign, "invalid_request_uri")
    assert snapshot(engine, ledgers=True) == before  # the pushed row is untouched (not used)
    # A's request is still there, once.
    own = _authorize(http, {"client_id": client.client_id, "request_uri": request_uri},
                     user_headers(user))
    assert own.status_code == 302, own.get_data(as_text=True)
    code = query_of(own.headers["Location"])["code"]
    assert exchange_code(http, client, secret, code, verifier).status_code == 200
    again = _authorize(http, {"client_id": client.client_id, "request_uri": request_uri},
                       user_headers(user))
    _shown_not_redirected(again, "invalid_request_uri")
