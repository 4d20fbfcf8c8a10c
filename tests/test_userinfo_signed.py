"""Signed UserInfo answers (OIDC Core 5.3.2) for clients that register
``userinfo_signed_response_alg``, through HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from factories import create_user, exchange_code, make_app, obtain_code, pkce_pair
from flask import Flask
from joserfc import jws
from joserfc.jwk import KeySet as JoseKeySet
from sqlalchemy import Engine

from oauth_sessions import get_state

ISSUER = "http://127.0.0.1:5000"


def _register(app: Flask, **metadata: Any) -> dict[str, Any]:
    body = {"redirect_uris": ["https://rp.example/cb"], "client_name": "RP",
            "scope": "openid profile email", **metadata}
    response = app.test_client().post("/oauth/register", json=body)
    assert response.status_code == 201, response.json
    return dict(response.json)


def _userinfo(app: Flask, engine: Engine, registered: dict[str, Any]) -> Any:
    http = app.test_client()
    client = get_state(app).services.clients.get(registered["client_id"], fresh=True)
    assert client is not None
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge, scope="openid profile")["code"]
    tokens = exchange_code(http, client, registered["client_secret"], code, verifier)
    assert tokens.status_code == 200, tokens.json
    return user, http.get("/oauth/userinfo",
                          headers={"Authorization": "Bearer " + tokens.json["access_token"]})


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_a_client_that_registered_an_alg_gets_a_signed_answer(engine: Engine, alg: str) -> None:
    app = make_app(engine, dynamic_registration=True)
    registered = _register(app, userinfo_signed_response_alg=alg)
    assert registered["userinfo_signed_response_alg"] == alg
    user, answer = _userinfo(app, engine, registered)
    assert answer.status_code == 200 and answer.mimetype == "application/jwt"
    assert answer.headers["Cache-Control"] == "no-store"
    keys = JoseKeySet.import_key_set(app.test_client().get("/oauth/jwks").json)
    token = jws.deserialize_compact(answer.get_data(as_text=True), keys, algorithms=[alg])
    assert token.headers()["alg"] == alg
    claims = json.loads(token.payload)
    assert claims["iss"] == ISSUER and claims["aud"] == registered["client_id"]
    assert claims["sub"] == str(user) and claims["name"].startswith("User ")


def test_without_an_alg_userinfo_stays_json(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    registered = _register(app)
    assert "userinfo_signed_response_alg" not in registered
    user, answer = _userinfo(app, engine, registered)
    assert answer.mimetype == "application/json" and answer.json["sub"] == str(user)


def test_an_alg_without_a_key_falls_back_to_json(engine: Engine) -> None:
    """An operator who later drops the key's alg does not break UserInfo for the client."""
    app = make_app(engine, dynamic_registration=True)
    registered = _register(app, userinfo_signed_response_alg="ES256")
    get_state(app).services.clients.update_metadata(
        get_state(app).services.clients.get(registered["client_id"]).id,
        userinfo_signed_response_alg="EdDSA")
    _, answer = _userinfo(app, engine, registered)
    assert answer.mimetype == "application/json"


def test_discovery_lists_the_algs_and_the_cli_sets_one(engine: Engine) -> None:
    app = make_app(engine)
    metadata = app.test_client().get("/.well-known/openid-configuration").json
    assert metadata["userinfo_signing_alg_values_supported"] == ["RS256", "ES256"]
    runner = app.test_cli_runner()
    made = runner.invoke(args=["oauth-sessions", "create-client", "--name", "Signed",
                               "--redirect-uri", "https://s.example/cb", "--userinfo-alg",
                               "RS256", "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["userinfo_signed_response_alg"] == "RS256"
    refused = runner.invoke(args=["oauth-sessions", "create-client", "--name", "Signed 2",
                                  "--redirect-uri", "https://s.example/cb", "--userinfo-alg",
                                  "EdDSA"])
    assert refused.exit_code != 0 and "--userinfo-alg EdDSA" in refused.output
