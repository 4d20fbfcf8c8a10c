"""The ``claims`` request parameter (OIDC Core 5.5) through HTTP, on SQLite and PostgreSQL.

Requested ID token claims land in the ID token of the code exchange, only within the granted
scopes; acr values raise the assurance level; a sub value binds the user; hostile requests are
``invalid_request`` and write nothing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from factories import (
    HeaderHost,
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
    query_of,
    snapshot,
    user_headers,
)
from flask import Flask
from joserfc import jws
from joserfc.jwk import KeySet as JoseKeySet
from sqlalchemy import Engine

from oauth_sessions.core.claims_request import ClaimsRequestError, parse_claims_request
from oauth_sessions.storage.clients import ClientInfo


def _id_token(app: Flask, token: str) -> dict[str, Any]:
    keys = JoseKeySet.import_key_set(app.test_client().get("/oauth/jwks").json)
    return dict(json.loads(jws.deserialize_compact(token, keys, algorithms=["RS256"]).payload))


def _flow(app: Flask, engine: Engine, client: ClientInfo, secret: str | None, scope: str,
          claims: Any, **extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """authorize → code → tokens; (ID token claims, UserInfo answer)."""
    http = app.test_client()
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    query = obtain_code(http, client, user, challenge, scope=scope,
                        claims=claims if isinstance(claims, str) else json.dumps(claims),
                        **extra)
    tokens = exchange_code(http, client, secret, query["code"], verifier)
    assert tokens.status_code == 200, tokens.json
    info = http.get("/oauth/userinfo",
                    headers={"Authorization": "Bearer " + tokens.json["access_token"]})
    return _id_token(app, tokens.json["id_token"]), info.json


@pytest.fixture
def provider(engine: Engine) -> tuple[Flask, ClientInfo, str]:
    app = make_app(engine)
    client, secret = create_client(app, scopes="openid profile email offline_access")
    assert secret is not None
    return app, client, secret


def test_id_token_claims_are_put_in_the_id_token(
        engine: Engine, provider: tuple[Flask, ClientInfo, str]) -> None:
    app, client, secret = provider
    id_token, info = _flow(app, engine, client, secret, "openid profile email",
                           {"id_token": {"email": {"essential": True}, "name": None}})
    assert id_token["email"].endswith("@example.test") and id_token["name"].startswith("User ")
    assert info["email"] == id_token["email"] and info["name"] == id_token["name"]
    # Without the parameter the ID token carries none of them.
    plain, _ = _flow(app, engine, client, secret, "openid profile email", "")
    assert "email" not in plain and "name" not in plain


def test_a_claim_outside_the_granted_scopes_is_released_nowhere(
        engine: Engine, provider: tuple[Flask, ClientInfo, str]) -> None:
    app, client, secret = provider
    id_token, info = _flow(app, engine, client, secret, "openid profile",
                           {"id_token": {"email": {"essential": True}, "name": None},
                            "userinfo": {"email": None}})
    assert "name" in id_token and "email" not in id_token
    assert "email" not in info and "name" in info


def test_the_id_tokens_own_claims_cannot_be_replaced(engine: Engine) -> None:
    class Host(HeaderHost):
        def userinfo(self, user_id: Any, scopes: Any) -> dict[str, Any]:
            return {**super().userinfo(user_id, scopes), "iss": "https://evil.example",
                    "aud": "someone-else", "nonce": "forged"}

    app = make_app(engine, host=Host())
    client, secret = create_client(app, scopes="openid profile")
    id_token, _ = _flow(app, engine, client, secret, "openid profile",
                        {"id_token": {"iss": None, "aud": None, "nonce": None, "name": None}})
    assert id_token["iss"] == "http://127.0.0.1:5000" and id_token["aud"] == client.client_id
    assert id_token["nonce"].startswith("n-") and id_token["name"].startswith("User ")


def test_acr_values_in_the_claims_request_require_that_level(
        engine: Engine, provider: tuple[Flask, ClientInfo, str]) -> None:
    app, client, _ = provider
    http = app.test_client()
    user = create_user(engine)
    _, challenge = pkce_pair()
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["aal2"]}}})
    params = {"response_type": "code", "client_id": client.client_id,
              "redirect_uri": client.redirect_uris[0], "scope": "openid",
              "code_challenge": challenge, "code_challenge_method": "S256", "claims": claims}
    at_aal1 = http.get("/oauth/authorize", query_string=params, headers=user_headers(user))
    assert at_aal1.status_code == 302
    assert at_aal1.headers["Location"].startswith("/test-step-up?")
    assert query_of(at_aal1.headers["Location"])["aal"] == "aal2"
    query = obtain_code(http, client, user, challenge, headers=user_headers(user, aal="aal2"),
                        scope="openid", claims=claims)
    assert "code" in query


def test_a_sub_value_answers_only_for_that_user(
        engine: Engine, provider: tuple[Flask, ClientInfo, str]) -> None:
    app, client, _ = provider
    http = app.test_client()
    user, other = create_user(engine), create_user(engine)
    _, challenge = pkce_pair()
    claims = json.dumps({"id_token": {"sub": {"value": str(user)}}})
    params = {"response_type": "code", "client_id": client.client_id, "state": "s1",
              "redirect_uri": client.redirect_uris[0], "scope": "openid",
              "code_challenge": challenge, "code_challenge_method": "S256", "claims": claims}
    before = snapshot(engine)
    wrong = http.get("/oauth/authorize", query_string=params, headers=user_headers(other))
    assert query_of(wrong.headers["Location"])["error"] == "login_required"
    assert snapshot(engine) == before
    assert "code" in obtain_code(http, client, user, challenge, scope="openid", claims=claims)


def test_claims_can_be_pushed(engine: Engine, provider: tuple[Flask, ClientInfo, str]) -> None:
    app, client, secret = provider
    http = app.test_client()
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    pushed = http.post("/oauth/par", headers={"Authorization": basic_auth(client.client_id, secret)},
                       data={"response_type": "code", "redirect_uri": client.redirect_uris[0],
                             "scope": "openid email", "code_challenge": challenge,
                             "code_challenge_method": "S256",
                             "claims": json.dumps({"id_token": {"email": None}})})
    assert pushed.status_code == 201, pushed.json
    response = http.get("/oauth/authorize", headers=user_headers(user), query_string={
        "client_id": client.client_id, "request_uri": pushed.json["request_uri"]})
    form = dict(response.json["form_fields"]) | {"decision": "approve"}
    approved = http.post("/oauth/authorize", data=form, headers=user_headers(user))
    code = query_of(approved.headers["Location"])["code"]
    tokens = exchange_code(http, client, secret, code, verifier)
    assert _id_token(app, tokens.json["id_token"])["email"].endswith("@example.test")


HOSTILE = [
    "not json", "[]", '"text"', "42", "null", '{"id_token": []}', '{"userinfo": "email"}',
    '{"id_token": {"email": true}}', '{"id_token": {"email": []}}',
    '{"id_token": {"email": {"essential": "yes"}}}',
    '{"id_token": {"email": {"value": "a", "values": ["a"]}}}',
    '{"id_token": {"email": {"values": []}}}', '{"id_token": {"email": {"values": "a"}}}',
    '{"id_token": {"email": {"value": {"x": 1}}}}',
    '{"id_token": {"email": {"values": [[1]]}}}',
    json.dumps({"id_token": {f"c{i}": None for i in range(65)}}),
    json.dumps({"id_token": {"acr": {"values": ["aal1"] * 17}}}),
    '{"a": ' * 5 + "1" + "}" * 5, "[" * 2000 + "]" * 2000, '{"id_token": {"email": nul',
]


@pytest.mark.parametrize("claims", HOSTILE)
def test_a_hostile_claims_request_is_invalid_request_and_writes_nothing(
        engine: Engine, provider: tuple[Flask, ClientInfo, str], claims: str) -> None:
    app, client, secret = provider
    http = app.test_client()
    user = create_user(engine)
    _, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": client.client_id, "state": "keep",
              "redirect_uri": client.redirect_uris[0], "scope": "openid",
              "code_challenge": challenge, "code_challenge_method": "S256", "claims": claims}
    before = snapshot(engine)
    response = http.get("/oauth/authorize", query_string=params, headers=user_headers(user))
    assert response.status_code == 302
    query = query_of(response.headers["Location"])
    assert query["error"] == "invalid_request" and query["state"] == "keep"
    assert query["error_description"].startswith("claims")
    pushed = http.post("/oauth/par", data=params,
                       headers={"Authorization": basic_auth(client.client_id, secret)})
    assert pushed.status_code == 400 and pushed.json["error"] == "invalid_request"
    assert snapshot(engine) == before


def test_a_claims_request_longer_than_any_parameter_is_refused(
        engine: Engine, provider: tuple[Flask, ClientInfo, str]) -> None:
    app, client, _ = provider
    _, challenge = pkce_pair()
    huge = json.dumps({"id_token": {"name": {"value": "x" * 5000}}})
    response = app.test_client().get("/oauth/authorize", headers=user_headers(create_user(engine)),
                                     query_string={"client_id": client.client_id,
                                                   "redirect_uri": client.redirect_uris[0],
                                                   "response_type": "code", "scope": "openid",
                                                   "code_challenge": challenge,
                                                   "code_challenge_method": "S256",
                                                   "claims": huge})
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


def test_the_stored_form_is_what_was_parsed() -> None:
    parsed = parse_claims_request(json.dumps({
        "id_token": {"email": {"essential": True}, "acr": {"values": ["aal2", "aal3"]},
                     "sub": {"value": "u"}, "name": None},
        "userinfo": {"phone_number": None}, "other": {"ignored": None}}))
    assert parsed is not None
    assert json.loads(parsed.to_json()) == {
        "id_token": {"email": {"essential": True}, "acr": {"values": ["aal2", "aal3"]},
                     "sub": {"value": "u"}, "name": None},
        "userinfo": {"phone_number": None}}
    assert parse_claims_request(parsed.to_json()) == parsed
    assert parsed.id_token_claims() == ("email", "name")
    assert parse_claims_request("") is None and parse_claims_request(None) is None
    with pytest.raises(ClaimsRequestError):
        parse_claims_request("{}}")


def test_discovery_says_the_parameter_is_supported(engine: Engine) -> None:
    metadata = make_app(engine).test_client().get("/.well-known/openid-configuration").json
    assert metadata["claims_parameter_supported"] is True
