"""DPoP server nonces bound to the client they were given to (RFC 9449 section 8), through HTTP
on SQLite and PostgreSQL: a nonce handed to client A is refused with ``use_dpop_nonce`` and a
fresh nonce when client B presents it, at the token endpoint and at PAR, at the exact edges of
the nonce's life with frozen time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dpop_support import DpopKey
from factories import (
    ISSUER,
    basic_auth,
    create_client,
    create_user,
    make_app,
    obtain_code,
    pkce_pair,
)
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import Engine

from oauth_sessions import get_state
from oauth_sessions.core.dpop_nonces import NonceIssuer, derive_nonce_key
from oauth_sessions.storage.clients import ClientInfo

TOKEN_URL = ISSUER + "/oauth/token"
PAR_URL = ISSUER + "/oauth/par"
SCOPES = "openid profile offline_access"
#: A window boundary for the default lifetime of 300 seconds.
START = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
def app(engine: Engine) -> Flask:
    return make_app(engine, dpop_nonce_required=True)


@pytest.fixture
def clients(app: Flask) -> tuple[tuple[ClientInfo, str | None], tuple[ClientInfo, str | None]]:
    """A public client A and a confidential client B."""
    return (create_client(app, public=True, scopes=SCOPES, name="A"),
            create_client(app, scopes=SCOPES, name="B"))


def _auth(client: ClientInfo, secret: str | None, data: dict[str, str]) -> dict[str, str]:
    if secret is None:
        data["client_id"] = client.client_id
        return {}
    return {"Authorization": basic_auth(client.client_id, secret)}


def _token(app: Flask, http: FlaskClient, client: ClientInfo, secret: str | None,
           proof: str) -> Any:
    verifier, challenge = pkce_pair()
    code = obtain_code(app.test_client(), client, create_user(get_state(app).engine),
                       challenge)["code"]
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": client.redirect_uris[0], "code_verifier": verifier}
    headers = _auth(client, secret, data) | {"DPoP": proof}
    return http.post("/oauth/token", data=data, headers=headers)


def _push(http: FlaskClient, client: ClientInfo, secret: str | None, proof: str) -> Any:
    _, challenge = pkce_pair()
    data = {"response_type": "code", "redirect_uri": client.redirect_uris[0],
            "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256"}
    headers = _auth(client, secret, data) | {"DPoP": proof}
    return http.post("/oauth/par", data=data, headers=headers)


def _nonce_of(app: Flask, http: FlaskClient, client: ClientInfo, secret: str | None) -> str:
    """The nonce the token endpoint hands ``client`` with its use_dpop_nonce answer."""
    data = {"grant_type": "refresh_token", "refresh_token": "x"}
    headers = _auth(client, secret, data) | {"DPoP": DpopKey().proof("POST", TOKEN_URL)}
    asked = http.post("/oauth/token", data=data, headers=headers)
    assert asked.status_code == 400 and asked.json["error"] == "use_dpop_nonce"
    nonce: str = asked.headers["DPoP-Nonce"]
    return nonce


def test_a_nonce_given_to_one_client_is_refused_for_another_at_the_token_endpoint(
        app: Flask, clients: Any) -> None:
    (a, a_secret), (b, b_secret) = clients
    http = app.test_client()
    nonce_a = _nonce_of(app, http, a, a_secret)
    stolen = _token(app, http, b, b_secret, DpopKey().proof("POST", TOKEN_URL, nonce=nonce_a))
    assert stolen.status_code == 400 and stolen.json["error"] == "use_dpop_nonce"
    nonce_b = stolen.headers["DPoP-Nonce"]
    assert nonce_b != nonce_a
    own = _token(app, http, b, b_secret, DpopKey().proof("POST", TOKEN_URL, nonce=nonce_b))
    assert own.status_code == 200, own.get_data(as_text=True)
    # A's nonce is still good for A, and the next nonce a token response carries is B's own.
    assert _token(app, http, a, a_secret,
                  DpopKey().proof("POST", TOKEN_URL, nonce=nonce_a)).status_code == 200
    after = own.headers["DPoP-Nonce"]
    refused = _token(app, http, a, a_secret, DpopKey().proof("POST", TOKEN_URL, nonce=after))
    assert refused.json["error"] == "use_dpop_nonce"


def test_a_nonce_given_to_one_client_is_refused_for_another_at_par(
        app: Flask, clients: Any) -> None:
    (a, a_secret), (b, b_secret) = clients
    http = app.test_client()
    nonce_a = _nonce_of(app, http, a, a_secret)
    # The same client may carry its token endpoint nonce to PAR: one authorization server.
    assert _push(http, a, a_secret,
                 DpopKey().proof("POST", PAR_URL, nonce=nonce_a)).status_code == 201
    stolen = _push(http, b, b_secret, DpopKey().proof("POST", PAR_URL, nonce=nonce_a))
    assert stolen.status_code == 400 and stolen.json["error"] == "use_dpop_nonce"
    nonce_b = stolen.headers["DPoP-Nonce"]
    assert nonce_b != nonce_a
    own = _push(http, b, b_secret, DpopKey().proof("POST", PAR_URL, nonce=nonce_b))
    assert own.status_code == 201, own.get_data(as_text=True)
    assert own.headers["DPoP-Nonce"] == nonce_b  # the same window, the same client


@pytest.mark.parametrize(("elapsed", "good_for_a"), [(599, True), (600, False)])
def test_the_bound_nonce_window_boundary_through_http(
        app: Flask, clients: Any, elapsed: int, good_for_a: bool) -> None:
    """A's nonce of window w: good for A until (w + 2) * lifetime exactly, never good for B."""
    (a, a_secret), (b, b_secret) = clients
    assert int(START.timestamp()) % 300 == 0
    http = app.test_client()
    with freeze_time(START) as clock:
        nonce_a = _nonce_of(app, http, a, a_secret)
        clock.tick(timedelta(seconds=elapsed))
        now = datetime.now(UTC).timestamp()
        for_b = _token(app, http, b, b_secret,
                       DpopKey().proof("POST", TOKEN_URL, nonce=nonce_a, iat=now))
        for_a = _token(app, http, a, a_secret,
                       DpopKey().proof("POST", TOKEN_URL, nonce=nonce_a, iat=now))
    assert for_b.status_code == 400 and for_b.json["error"] == "use_dpop_nonce"
    if good_for_a:
        assert for_a.status_code == 200, for_a.get_data(as_text=True)
    else:
        assert for_a.json["error"] == "use_dpop_nonce"


def test_unit_nonces_name_their_client_and_window() -> None:
    issuer = NonceIssuer(derive_nonce_key("s" * 32), 300)
    nonce = issuer.issue(1000.0, client_id="client-a")
    assert issuer.is_valid(nonce, 1000.0, client_id="client-a")
    assert issuer.is_valid(nonce, 1499.0, client_id="client-a")
    assert not issuer.is_valid(nonce, 1500.0, client_id="client-a")
    for other in ("client-b", "client-a ", "client-", ""):
        assert not issuer.is_valid(nonce, 1000.0, client_id=other)
    # A resource server's nonce (for no client) and a client's never stand in for each other.
    assert not issuer.is_valid(nonce, 1000.0)
    assert not issuer.is_valid(issuer.issue(1000.0), 1000.0, client_id="client-a")
    assert issuer.is_valid(issuer.issue(1000.0), 1000.0)
    assert issuer.issue(1000.0, client_id="") != issuer.issue(1000.0)
