"""Resource indicators (RFC 8707) in pushed authorization requests (RFC 9126), through HTTP on
SQLite and PostgreSQL.

A pushed request keeps every ``resource`` it names (the parameter may repeat, RFC 8707
section 2), is checked as the same request is at ``/authorize`` (registered resource server
or the issuer, absolute URI, no fragment), and the code issued from it grants the same
resources: the access token's ``aud`` is the resource the token request names, exactly as
without PAR. A refused ``resource`` is a ``400 invalid_target`` and nothing is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
from sqlalchemy import Engine, select
from werkzeug.datastructures import MultiDict
from werkzeug.test import Client

from oauth_sessions import get_state
from oauth_sessions.storage.clients import ClientInfo
from oauth_sessions.storage.models import OAuthPushedRequest
from oauth_sessions.wsgi import make_wsgi_app

API = "https://api.example.test/v1"
MAIL = "https://mail.example.test"
#: Registered nowhere.
OTHER = "https://other.example.test"


@dataclass
class Pushing:
    app: Flask
    http: FlaskClient
    client: ClientInfo
    secret: str
    user: uuid.UUID
    verifier: str = ""

    def push(self, resources: Sequence[str], **extra: str) -> Any:
        """POST /oauth/par with each resource as its own form parameter."""
        self.verifier, challenge = pkce_pair()
        form = MultiDict([("response_type", "code"), ("client_id", self.client.client_id),
                          ("redirect_uri", self.client.redirect_uris[0]),
                          ("scope", "openid profile offline_access"), ("state", "st"),
                          ("code_challenge", challenge), ("code_challenge_method", "S256"),
                          *extra.items(), *(("resource", r) for r in resources)])
        return self.http.post("/oauth/par", data=form, headers={
            "Authorization": basic_auth(self.client.client_id, self.secret)})

    def code(self, resources: Sequence[str]) -> str:
        """Push, then /authorize with client_id and request_uri only, consent approved."""
        pushed = self.push(resources)
        assert pushed.status_code == 201, pushed.json
        headers = user_headers(self.user)
        response = self.http.get("/oauth/authorize", headers=headers, query_string={
            "client_id": self.client.client_id, "request_uri": pushed.json["request_uri"]})
        if response.status_code == 200 and response.is_json and response.json.get("consent"):
            assert dict(response.json["form_fields"]).keys() == {
                "client_id", "request_uri", "par_ticket", "consent_ticket"}
            form = dict(response.json["form_fields"]) | {"decision": "approve"}
            response = self.http.post(response.json["action"], data=form, headers=headers)
        assert response.status_code == 302, response.get_data(as_text=True)
        query = query_of(response.headers["Location"])
        assert "code" in query, query
        return query["code"]

    def exchange(self, code: str, resources: Sequence[str] = ()) -> Any:
        data = MultiDict([("grant_type", "authorization_code"), ("code", code),
                          ("redirect_uri", self.client.redirect_uris[0]),
                          ("code_verifier", self.verifier), *(("resource", r) for r in resources)])
        return self.http.post("/oauth/token", data=data, headers={
            "Authorization": basic_auth(self.client.client_id, self.secret)})


@pytest.fixture
def pushing(engine: Engine) -> Pushing:
    app = make_app(engine)
    client, secret = create_client(app)
    assert secret is not None
    store = get_state(app).services.resource_servers
    store.create(API, name="API")
    store.create(MAIL, name="Mail")
    return Pushing(app, app.test_client(), client, secret, create_user(engine))


def _aud(token: str) -> Any:
    return jwt_claims(token)["aud"]


def _pushed_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(OAuthPushedRequest.__table__)).all())


def test_one_pushed_resource_is_the_access_tokens_audience(pushing: Pushing) -> None:
    code = pushing.code([API])
    record = get_state(pushing.app).services.authorizations.find(code)
    assert record is not None and record.resources == (API,)
    tokens = pushing.exchange(code, [API])
    assert tokens.status_code == 200, tokens.json
    assert _aud(tokens.json["access_token"]) == API


def test_one_pushed_resource_is_the_audience_when_the_token_request_names_none(
        pushing: Pushing) -> None:
    """RFC 8707 section 2.2, as without PAR: a grant of one resource needs no naming again."""
    tokens = pushing.exchange(pushing.code([API]))
    assert tokens.status_code == 200, tokens.json
    assert _aud(tokens.json["access_token"]) == API


@pytest.mark.parametrize("chosen", [API, MAIL])
def test_two_pushed_resources_are_both_granted(pushing: Pushing, engine: Engine,
                                               chosen: str) -> None:
    pushed = pushing.push([API, MAIL])
    assert pushed.status_code == 201, pushed.json
    # Both values are stored with the request, neither lost to the first-value reading.
    (row,) = _pushed_rows(engine)
    assert API in row.parameters and MAIL in row.parameters
    code = pushing.code([API, MAIL])
    record = get_state(pushing.app).services.authorizations.find(code)
    assert record is not None and record.resources == (API, MAIL)
    tokens = pushing.exchange(code, [chosen])
    assert tokens.status_code == 200, tokens.json
    assert _aud(tokens.json["access_token"]) == chosen
    # A refresh may name the other granted resource, as without PAR.
    other = MAIL if chosen == API else API
    refreshed = pushing.http.post("/oauth/token", data=MultiDict([
        ("grant_type", "refresh_token"), ("refresh_token", tokens.json["refresh_token"]),
        ("resource", other)]), headers={
            "Authorization": basic_auth(pushing.client.client_id, pushing.secret)})
    assert refreshed.status_code == 200, refreshed.json
    assert _aud(refreshed.json["access_token"]) == other


def test_two_pushed_resources_and_a_token_request_naming_none_is_invalid_target(
        pushing: Pushing) -> None:
    answer = pushing.exchange(pushing.code([API, MAIL]))
    assert answer.status_code == 400 and answer.json["error"] == "invalid_target"


def test_the_issuer_may_be_pushed_as_a_resource(pushing: Pushing) -> None:
    tokens = pushing.exchange(pushing.code([API, ISSUER]), [ISSUER])
    assert tokens.status_code == 200, tokens.json
    assert _aud(tokens.json["access_token"]) == ISSUER


@pytest.mark.parametrize("resources", [
    [OTHER],                      # no registered resource server
    [API, OTHER],                 # one of two unknown
    [API + "#frag"],              # RFC 8707 section 2: no fragment
    ["/v1/relative"],             # not an absolute URI
    ["api.example.test"],         # not an absolute URI either
    [""],                         # empty
    [API + " " + MAIL],           # one value holding a space is not two resources
    [f"https://r{i}.example.test" for i in range(11)],  # more than ten
])
def test_a_refused_pushed_resource_is_invalid_target_and_stores_nothing(
        pushing: Pushing, engine: Engine, resources: list[str]) -> None:
    before = snapshot(engine)
    answer = pushing.push(resources)
    assert answer.status_code == 400, answer.json
    assert answer.json["error"] == "invalid_target" and answer.json["error_description"]
    assert "Location" not in answer.headers
    assert _pushed_rows(engine) == [] and snapshot(engine) == before


def test_the_same_request_at_authorize_and_at_par_gets_the_same_answer(
        pushing: Pushing) -> None:
    """One rule: the refusals of /authorize (redirected there) are the JSON errors of /par."""
    for resources in ([OTHER], [API + "#frag"], [API]):
        pushed = pushing.push(resources)
        pairs = [("response_type", "code"), ("client_id", pushing.client.client_id),
                 ("redirect_uri", pushing.client.redirect_uris[0]), ("scope", "openid"),
                 ("code_challenge", pkce_pair()[1]), ("code_challenge_method", "S256"),
                 *(("resource", r) for r in resources)]
        direct = pushing.http.get("/oauth/authorize", query_string=MultiDict(pairs),
                                  headers=user_headers(pushing.user))
        location = query_of(direct.headers.get("Location", "?"))
        if pushed.status_code == 201:
            assert "error" not in location
        else:
            assert (pushed.json["error"], pushed.json["error_description"]) == (
                location["error"], location["error_description"])


def test_the_wsgi_app_keeps_pushed_resources_too(pushing: Pushing) -> None:
    machine = Client(make_wsgi_app(pushing.app))
    verifier, challenge = pkce_pair()
    form = MultiDict([("response_type", "code"), ("client_id", pushing.client.client_id),
                      ("redirect_uri", pushing.client.redirect_uris[0]), ("scope", "openid"),
                      ("code_challenge", challenge), ("code_challenge_method", "S256"),
                      ("resource", API), ("resource", MAIL)])
    headers = {"Authorization": basic_auth(pushing.client.client_id, pushing.secret)}
    pushed = machine.post("/oauth/par", data=form, headers=headers)
    assert pushed.status_code == 201, pushed.json
    unknown = machine.post("/oauth/par", data=MultiDict([*form.items(multi=True),
                                                         ("resource", OTHER)]), headers=headers)
    assert unknown.status_code == 400 and unknown.json["error"] == "invalid_target"
    get_state(pushing.app).services.consents.grant(pushing.user, pushing.client.id, ("openid",))
    response = pushing.http.get("/oauth/authorize", headers=user_headers(pushing.user),
                                query_string={"client_id": pushing.client.client_id,
                                              "request_uri": pushed.json["request_uri"]})
    code = query_of(response.headers["Location"])["code"]
    record = get_state(pushing.app).services.authorizations.find(code)
    assert record is not None and record.resources == (API, MAIL)
    pushing.verifier = verifier
    tokens = pushing.exchange(code, [MAIL])
    assert tokens.status_code == 200 and _aud(tokens.json["access_token"]) == MAIL
