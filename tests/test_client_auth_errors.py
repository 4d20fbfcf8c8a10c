"""Client authentication errors that name the fix (issue 20 item 6), at every endpoint that
authenticates clients, through HTTP on SQLite and PostgreSQL.

A known client whose credentials are good but of another method than its registered one is
told that method; an unknown client, a wrong secret and an unverifiable assertion keep the
generic "client authentication failed", and nothing is written either way.
"""

from __future__ import annotations

from typing import Any

import pytest
from factories import basic_auth, create_client, create_user, make_app, pkce_pair, snapshot
from flask import Flask
from sqlalchemy import Engine

from oauth_sessions.storage.clients import ClientInfo

FAILED = "client authentication failed"


def _bodies(client: ClientInfo) -> dict[str, dict[str, str]]:
    """A well-formed request of each endpoint (what follows client authentication may fail:
    the client's answer comes first)."""
    _, challenge = pkce_pair()
    return {
        "/oauth/token": {"grant_type": "authorization_code", "code": "x" * 43,
                         "redirect_uri": client.redirect_uris[0], "code_verifier": "v" * 43},
        "/oauth/revoke": {"token": "not-a-token"},
        "/oauth/introspect": {"token": "not-a-token"},
        "/oauth/par": {"response_type": "code", "redirect_uri": client.redirect_uris[0],
                       "code_challenge": challenge, "code_challenge_method": "S256"},
    }


ENDPOINTS = ["/oauth/token", "/oauth/revoke", "/oauth/introspect", "/oauth/par"]


def _post(app: Flask, path: str, client: ClientInfo, how: str, secret: str,
          client_id: str | None = None) -> Any:
    data = dict(_bodies(client)[path])
    headers: dict[str, str] = {}
    client_id = client_id or client.client_id
    if how == "basic":
        headers["Authorization"] = basic_auth(client_id, secret)
    elif how == "post":
        data |= {"client_id": client_id, "client_secret": secret}
    else:  # none: the client id only
        data["client_id"] = client_id
    return app.test_client().post(path, data=data, headers=headers)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(("registered", "used"), [
    ("client_secret_basic", "post"), ("client_secret_post", "basic")])
def test_a_good_secret_sent_the_wrong_way_names_the_registered_method(
        engine: Engine, path: str, registered: str, used: str) -> None:
    app = make_app(engine)
    client, secret = create_client(app, token_endpoint_auth_method=registered,
                                   can_introspect=True)
    assert secret is not None
    create_user(engine)
    before = snapshot(engine)
    response = _post(app, path, client, used, secret)
    assert response.status_code == 401
    assert response.json == {"error": "invalid_client",
                             "error_description": f"client is registered for {registered}"}
    assert snapshot(engine) == before
    # The registered way gets past client authentication.
    assert _post(app, path, client, registered.removeprefix("client_secret_"),
                 secret).status_code != 401


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/par"])
def test_a_confidential_client_sending_only_its_id_is_told_its_method(
        engine: Engine, path: str) -> None:
    app = make_app(engine)
    client, _ = create_client(app, token_endpoint_auth_method="client_secret_post")
    response = _post(app, path, client, "none", "")
    assert response.status_code == 401
    assert response.json["error_description"] == "client is registered for client_secret_post"


def test_introspection_admits_no_public_client_so_an_id_alone_is_not_a_method(
        engine: Engine) -> None:
    app = make_app(engine)
    client, _ = create_client(app, can_introspect=True)
    response = _post(app, "/oauth/introspect", client, "none", "")
    assert response.status_code == 401
    assert response.json["error_description"] == "client authentication is required"


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("used", ["basic", "post"])
def test_a_wrong_secret_never_names_the_method(engine: Engine, path: str, used: str) -> None:
    """Whichever way a wrong secret comes, the answer is the same: no oracle."""
    app = make_app(engine)
    client, secret = create_client(app, token_endpoint_auth_method="client_secret_post",
                                   can_introspect=True)
    assert secret is not None
    response = _post(app, path, client, used, secret + "x")
    assert response.status_code == 401 and response.json["error_description"] == FAILED


@pytest.mark.parametrize("path", ENDPOINTS)
def test_an_unknown_client_gets_the_generic_text(engine: Engine, path: str) -> None:
    app = make_app(engine)
    client, secret = create_client(app, can_introspect=True)
    assert secret is not None
    for how in ("basic", "post", "none"):
        response = _post(app, path, client, how, secret,
                         client_id="00000000-0000-4000-8000-000000000000")
        assert response.status_code == 401
        assert response.json["error_description"] in {FAILED, "client authentication is required"}
        assert "registered" not in response.json["error_description"]


def test_a_public_client_sending_a_secret_gets_the_generic_text(engine: Engine) -> None:
    app = make_app(engine)
    client, _ = create_client(app, public=True)
    response = _post(app, "/oauth/token", client, "post", "anything")
    assert response.status_code == 401 and response.json["error_description"] == FAILED


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/par"])
def test_a_private_key_jwt_client_sending_only_its_id_is_told_its_method(
        engine: Engine, path: str) -> None:
    from joserfc import jwk

    key = jwk.generate_key("EC", "P-256", parameters={"kid": "k1"})
    app = make_app(engine)
    client, _ = create_client(app, token_endpoint_auth_method="private_key_jwt",
                              jwks={"keys": [key.as_dict(private=False)]})
    response = _post(app, path, client, "none", "")
    assert response.status_code == 401
    assert response.json["error_description"] == "client is registered for private_key_jwt"
    # A secret presented for it is a wrong credential (it has none): the generic text.
    guessed = _post(app, path, client, "basic", "a-guess")
    assert guessed.status_code == 401 and guessed.json["error_description"] == FAILED
