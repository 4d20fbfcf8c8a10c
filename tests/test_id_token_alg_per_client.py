"""ID token signing per client (issue 20 item 4).

* OpenID Connect Core 1.0 section 15.1: RS256 is the ID token alg every provider supports, so
  the JWKS always holds an RS256 key, whatever ``SIGNING_ALG`` and ``ID_TOKEN_SIGNING_ALG`` say.
* Dynamic Client Registration 1.0 section 2: ``id_token_signed_response_alg`` defaults to
  RS256 for a client that registers none; a registered alg is honoured.
* RFC 8414 / Discovery: ``id_token_signing_alg_values_supported`` lists exactly the algs the
  provider holds a key of, and registration accepts exactly those.
* Clients created by an operator without a choice follow ``ID_TOKEN_SIGNING_ALG``.
"""

from __future__ import annotations

import base64
import json
import logging
import warnings
from typing import Any

import pytest
from factories import (
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
    snapshot,
)
from flask import Flask
from joserfc.errors import SecurityWarning
from sqlalchemy import Engine, update
from test_code_flow import _verify as _verify_with_jwks

from oauth_sessions import get_state
from oauth_sessions.jose.id_tokens import oidc_token_hash
from oauth_sessions.storage.clients import ClientInfo
from oauth_sessions.storage.models import OAuthClientSettings

RP = {"redirect_uris": ["https://rp.example/cb"], "client_name": "RP",
      "grant_types": ["authorization_code", "refresh_token"], "scope": "openid offline_access"}


def _verify(http: Any, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify with the published JWKS only, as a relying party would."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # joserfc: "EdDSA" named by RFC 9864
        return _verify_with_jwks(http, token)  # type: ignore[no-any-return]


def _header(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return value


def _discovery(http: Any) -> dict[str, Any]:
    doc: dict[str, Any] = http.get("/.well-known/openid-configuration").json
    return doc


def _tokens(app: Flask, engine: Engine, client: ClientInfo, secret: str | None) -> dict[str, Any]:
    http = app.test_client()
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, create_user(engine), challenge, nonce="n")["code"]
    response = exchange_code(http, client, secret, code, verifier)
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def _register(app: Flask, **metadata: Any) -> Any:
    return app.test_client().post("/oauth/register", json={**RP, **metadata})


def _registered(app: Flask, **metadata: Any) -> tuple[ClientInfo, str]:
    response = _register(app, **metadata)
    assert response.status_code == 201, response.json
    info = get_state(app).services.clients.get(response.json["client_id"], fresh=True)
    assert info is not None
    return info, response.json["client_secret"]


# --------------------------------------------------------------------------- the case


def test_eddsa_everywhere_still_publishes_and_uses_rs256_for_a_registered_rp(engine: Engine) -> None:
    """The issue: ID_TOKEN_SIGNING_ALG=EdDSA listed RS256 in discovery with no RS256 key."""
    app = make_app(engine, signing_alg="EdDSA", id_token_signing_alg="EdDSA",
                   dynamic_registration=True)
    http = app.test_client()
    doc = _discovery(http)
    assert doc["id_token_signing_alg_values_supported"] == ["RS256", "EdDSA"]
    published = sorted(k["alg"] for k in http.get("/oauth/jwks").json["keys"])
    assert published == ["EdDSA", "RS256"]
    # An RP that registers no alg gets RS256 (Registration 1.0 section 2), shown in the answer.
    response = _register(app)
    assert response.json["id_token_signed_response_alg"] == "RS256"
    info, secret = _registered(app)
    body = _tokens(app, engine, info, secret)
    header, claims = _verify(http, body["id_token"])  # with the published JWKS only
    assert header["alg"] == "RS256"
    assert claims["at_hash"] == oidc_token_hash(body["access_token"], "RS256")
    assert _header(body["access_token"])["alg"] == "EdDSA"  # access tokens keep SIGNING_ALG


def test_operator_client_without_a_choice_follows_the_setting(engine: Engine) -> None:
    app = make_app(engine, signing_alg="EdDSA", id_token_signing_alg="EdDSA")
    client, secret = create_client(app)
    assert client.id_token_signed_response_alg is None
    body = _tokens(app, engine, client, secret)
    header, claims = _verify(app.test_client(), body["id_token"])
    assert header["alg"] == "EdDSA"
    # OIDC Core 3.1.3.6: the hash of the ID token's own alg (SHA-512 for Ed25519)
    assert claims["at_hash"] == oidc_token_hash(body["access_token"], "EdDSA")


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_registered_alg_is_honoured_on_code_and_refresh(engine: Engine, alg: str) -> None:
    app = make_app(engine, dynamic_registration=True)  # ES256 access tokens, RS256 ID tokens
    info, secret = _registered(app, id_token_signed_response_alg=alg)
    assert info.id_token_signed_response_alg == alg
    http = app.test_client()
    body = _tokens(app, engine, info, secret)
    header, claims = _verify(http, body["id_token"])
    assert header["alg"] == alg and header["typ"] == "JWT"
    assert claims["at_hash"] == oidc_token_hash(body["access_token"], alg)
    refreshed = http.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers={"Authorization": basic_auth(info.client_id, secret)})
    assert refreshed.status_code == 200, refreshed.json
    assert _verify(http, refreshed.json["id_token"])[0]["alg"] == alg


@pytest.mark.parametrize(("options", "expected"), [
    ({}, ["RS256", "ES256"]),
    ({"signing_alg": "RS256"}, ["RS256"]),
    ({"signing_alg": "ES256", "id_token_signing_alg": "EdDSA"}, ["RS256", "EdDSA", "ES256"]),
])
def test_discovery_lists_exactly_the_algs_with_a_key(engine: Engine, options: dict[str, str],
                                                     expected: list[str]) -> None:
    http = make_app(engine, **options).test_client()
    assert _discovery(http)["id_token_signing_alg_values_supported"] == expected
    assert sorted(k["alg"] for k in http.get("/oauth/jwks").json["keys"]) == sorted(expected)


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("value", ["EdDSA", "HS256", "none", "", 256, None, ["RS256"], "rs256"])
def test_registration_refuses_an_alg_it_cannot_sign_and_writes_nothing(engine: Engine,
                                                                       value: Any) -> None:
    app = make_app(engine, dynamic_registration=True)  # keys: ES256 and RS256, no EdDSA
    _discovery(app.test_client())  # keys created before the snapshot
    before = snapshot(engine)
    response = _register(app, id_token_signed_response_alg=value)
    assert response.status_code == 400
    assert response.json == {
        "error": "invalid_client_metadata",
        "error_description": "id_token_signed_response_alg must be one of RS256, ES256"}
    assert snapshot(engine) == before


def test_rfc7592_update_changes_the_alg_and_a_put_without_it_returns_to_rs256(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    http = app.test_client()
    created = _register(app, id_token_signed_response_alg="ES256").json
    uri = created["registration_client_uri"].removeprefix("https://issuer.example")
    uri = uri[uri.index("/oauth/"):]
    token = created["registration_access_token"]
    body = {k: v for k, v in created.items() if k in RP or k == "client_id"}
    refused = http.put(uri, json={**body, "id_token_signed_response_alg": "HS256"},
                       headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 400 and refused.json["error"] == "invalid_client_metadata"
    store = get_state(app).services.clients
    assert store.get(created["client_id"], fresh=True).id_token_signed_response_alg == "ES256"
    answer = http.put(uri, json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.json
    assert answer.json["id_token_signed_response_alg"] == "RS256"
    assert store.get(created["client_id"], fresh=True).id_token_signed_response_alg == "RS256"


def test_store_refuses_an_unknown_alg(engine: Engine) -> None:
    app = make_app(engine)
    with pytest.raises(ValueError, match="id_token_signed_response_alg must be one of"):
        create_client(app, id_token_signed_response_alg="HS256")


def test_a_registered_alg_without_a_key_falls_back_to_the_setting_with_a_warning(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """The operator changed SIGNING_ALG after a client chose its alg: the token request (whose
    code is already spent) still succeeds, signed with ID_TOKEN_SIGNING_ALG, and the log says
    what to fix."""
    app = make_app(engine, signing_alg="RS256")  # keys: RS256 only
    client, secret = create_client(app)
    with engine.begin() as conn:
        conn.execute(update(OAuthClientSettings.__table__)
                     .where(OAuthClientSettings.client_id == client.id)
                     .values(id_token_signed_response_alg="EdDSA"))
    client = get_state(app).services.clients.get(client.id, fresh=True)
    assert client is not None and client.id_token_signed_response_alg == "EdDSA"
    with caplog.at_level(logging.WARNING, logger="oauth_sessions.protocol.tokens"):
        body = _tokens(app, engine, client, secret)
    assert _header(body["id_token"])["alg"] == "RS256"
    assert any("no EdDSA key" in r.getMessage() and client.client_id in r.getMessage()
               for r in caplog.records)
    assert not any(secret in r.getMessage() for r in caplog.records if secret)


# --------------------------------------------------------------------------- CLI


def _cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["oauth-sessions", *args])


def test_cli_create_client_takes_an_id_token_alg(engine: Engine) -> None:
    app = make_app(engine)
    result = _cli(app, "create-client", "--name", "Legacy RP", "--redirect-uri",
                  "https://rp.example/cb", "--id-token-alg", "ES256", "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["id_token_signed_response_alg"] == "ES256"
    info = get_state(app).services.clients.get(created["client_id"], fresh=True)
    assert info is not None and info.id_token_signed_response_alg == "ES256"


def test_cli_refuses_an_alg_without_a_key_in_one_line_and_writes_nothing(engine: Engine) -> None:
    app = make_app(engine)
    _discovery(app.test_client())
    before = snapshot(engine)
    result = _cli(app, "create-client", "--name", "RP", "--redirect-uri",
                  "https://rp.example/cb", "--id-token-alg", "EdDSA")
    assert result.exit_code != 0
    message = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert message == ["Error: --id-token-alg EdDSA: this provider holds no EdDSA key; choose one "
                       "of RS256, ES256, or set OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG=EdDSA first"]
    assert snapshot(engine) == before
