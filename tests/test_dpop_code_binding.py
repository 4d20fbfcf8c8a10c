"""Authorization codes bound to a DPoP key (RFC 9449 section 10), through HTTP on SQLite and
PostgreSQL: ``dpop_jkt`` at /authorize and in a pushed request, a ``DPoP`` header at /par
(section 10.1), and the token endpoint redeeming a bound code only with a proof of that key.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from dpop_support import DpopKey
from factories import (
    ISSUER,
    authorize_params,
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    jwt_claims,
    make_app,
    obtain_code,
    pkce_pair,
    query_of,
    snapshot,
    user_headers,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from oauth_sessions import get_state
from oauth_sessions.storage.clients import ClientInfo
from oauth_sessions.storage.models import OAuthAuthorizationCode, OAuthPushedRequest, Session

TOKEN_URL = ISSUER + "/oauth/token"
PAR_URL = ISSUER + "/oauth/par"
SCOPES = "openid profile offline_access"


def _sessions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Session.__table__)).scalar_one())


def _code_row(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(OAuthAuthorizationCode.__table__)).one()


def _redeem(http: FlaskClient, client: ClientInfo, secret: str | None, code: str, verifier: str,
            proof: str | None) -> Any:
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": client.redirect_uris[0], "code_verifier": verifier}
    headers = {"DPoP": proof} if proof is not None else {}
    if secret is None:
        data["client_id"] = client.client_id
    else:
        headers["Authorization"] = basic_auth(client.client_id, secret)
    return http.post("/oauth/token", data=data, headers=headers)


def _push(http: FlaskClient, client: ClientInfo, secret: str | None, challenge: str,
          proof: str | None = None, **extra: str) -> Any:
    data = {"response_type": "code", "client_id": client.client_id,
            "redirect_uri": client.redirect_uris[0], "scope": "openid profile",
            "state": "s", "code_challenge": challenge, "code_challenge_method": "S256", **extra}
    headers = {"DPoP": proof} if proof is not None else {}
    if secret is not None:
        headers["Authorization"] = basic_auth(client.client_id, secret)
    return http.post("/oauth/par", data=data, headers=headers)


def _code_from_push(app: Flask, client: ClientInfo, request_uri: str) -> str:
    user = create_user(get_state(app).engine)
    http = app.test_client()
    headers = user_headers(user)
    response = http.get("/oauth/authorize", headers=headers,
                        query_string={"client_id": client.client_id, "request_uri": request_uri})
    if response.status_code == 200 and response.is_json and response.json.get("consent"):
        form = dict(response.json["form_fields"]) | {"decision": "approve"}
        response = http.post(response.json["action"], data=form, headers=headers)
    assert response.status_code == 302, response.get_data(as_text=True)
    return query_of(response.headers["Location"])["code"]


@pytest.fixture
def app(engine: Engine) -> Flask:
    return make_app(engine)


@pytest.fixture(params=["public", "confidential"])
def client(request: pytest.FixtureRequest, app: Flask) -> tuple[ClientInfo, str | None]:
    """The binding is the client's choice: public and confidential clients alike."""
    info, secret = create_client(app, public=request.param == "public", scopes=SCOPES)
    return info, secret


def _bound_code(app: Flask, client: ClientInfo, key: DpopKey) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    user = create_user(get_state(app).engine)
    query = obtain_code(app.test_client(), client, user, challenge, dpop_jkt=key.jkt)
    return query["code"], verifier


# --------------------------------------------------------------------------- dpop_jkt at /authorize


def test_a_code_bound_by_dpop_jkt_is_redeemed_with_its_key(
        app: Flask, engine: Engine, client: tuple[ClientInfo, str | None]) -> None:
    info, secret = client
    key = DpopKey()
    code, verifier = _bound_code(app, info, key)
    assert _code_row(engine).dpop_jkt == key.jkt
    response = _redeem(app.test_client(), info, secret, code, verifier,
                       key.proof("POST", TOKEN_URL))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["token_type"] == "DPoP"
    assert jwt_claims(response.json["access_token"])["cnf"] == {"jkt": key.jkt}


@pytest.mark.parametrize("shown", ["another key", "no proof"])
def test_a_bound_code_without_its_key_is_refused_and_retired(
        app: Flask, engine: Engine, client: tuple[ClientInfo, str | None], shown: str) -> None:
    """Section 10: the server MUST reject it (invalid_grant). The presenter had the code and the
    PKCE verifier but not the key, so the code is spent: its owner cannot redeem it after."""
    info, secret = client
    key = DpopKey()
    code, verifier = _bound_code(app, info, key)
    http = app.test_client()
    proof = DpopKey().proof("POST", TOKEN_URL) if shown == "another key" else None
    refused = _redeem(http, info, secret, code, verifier, proof)
    assert refused.status_code == 400
    assert refused.json["error"] == "invalid_grant"
    assert "DPoP" in refused.json["error_description"]
    assert _sessions(engine) == 0
    row = _code_row(engine)
    assert row.used_at is not None and row.session_id is None
    late = _redeem(http, info, secret, code, verifier, key.proof("POST", TOKEN_URL))
    assert late.status_code == 400 and late.json["error"] == "invalid_grant"
    assert _sessions(engine) == 0


def test_a_wrong_verifier_on_a_bound_code_burns_nothing(
        app: Flask, engine: Engine, client: tuple[ClientInfo, str | None]) -> None:
    """The key is checked only after PKCE: whoever holds just the code cannot retire it."""
    info, secret = client
    key = DpopKey()
    code, verifier = _bound_code(app, info, key)
    http = app.test_client()
    other_verifier, _ = pkce_pair()
    wrong = _redeem(http, info, secret, code, other_verifier, DpopKey().proof("POST", TOKEN_URL))
    assert wrong.json["error"] == "invalid_grant"
    assert _code_row(engine).used_at is None
    good = _redeem(http, info, secret, code, verifier, key.proof("POST", TOKEN_URL))
    assert good.status_code == 200, good.get_data(as_text=True)


def test_an_unbound_code_is_still_redeemed_without_a_proof(
        app: Flask, engine: Engine, client: tuple[ClientInfo, str | None]) -> None:
    info, secret = client
    verifier, challenge = pkce_pair()
    code = obtain_code(app.test_client(), info, create_user(engine), challenge)["code"]
    assert _code_row(engine).dpop_jkt is None
    response = exchange_code(app.test_client(), info, secret, code, verifier)
    assert response.status_code == 200 and response.json["token_type"] == "Bearer"


@pytest.mark.parametrize("value", [
    "short",
    "A" * 42,
    "A" * 44,
    "A" * 42 + "+",  # standard base64, not base64url
    "A" * 42 + "B",  # not the canonical spelling of any 32 bytes
    "A" * 42 + "=",
])
def test_a_malformed_dpop_jkt_is_redirected_as_invalid_request_and_writes_nothing(
        app: Flask, engine: Engine, value: str) -> None:
    info, _ = create_client(app, public=True, scopes=SCOPES)
    user = create_user(engine)
    _, challenge = pkce_pair()
    before = snapshot(engine)
    response = app.test_client().get(
        "/oauth/authorize", headers=user_headers(user),
        query_string=authorize_params(info, challenge, dpop_jkt=value, state="st"))
    assert response.status_code == 302
    assert response.headers["Location"].startswith(info.redirect_uris[0] + "?")
    query = query_of(response.headers["Location"])
    assert query["error"] == "invalid_request" and "dpop_jkt" in query["error_description"]
    assert query["state"] == "st"
    assert snapshot(engine) == before


# --------------------------------------------------------------------------- pushed requests


def _pushed_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(OAuthPushedRequest.__table__)).all())


def test_a_dpop_proof_at_par_binds_the_code_to_its_key(
        app: Flask, engine: Engine, client: tuple[ClientInfo, str | None]) -> None:
    """Section 10.1: the proof's key binds the pushed request as dpop_jkt would."""
    info, secret = client
    key = DpopKey()
    verifier, challenge = pkce_pair()
    pushed = _push(app.test_client(), info, secret, challenge, key.proof("POST", PAR_URL))
    assert pushed.status_code == 201, pushed.get_data(as_text=True)
    assert json.loads(_pushed_rows(engine)[0].parameters)["dpop_jkt"] == key.jkt
    code = _code_from_push(app, info, pushed.json["request_uri"])
    assert _code_row(engine).dpop_jkt == key.jkt
    http = app.test_client()
    other = _redeem(http, info, secret, code, verifier, DpopKey().proof("POST", TOKEN_URL))
    assert other.status_code == 400 and other.json["error"] == "invalid_grant"
    assert _sessions(engine) == 0


def test_the_key_shown_at_par_redeems_the_code(app: Flask, engine: Engine) -> None:
    info, _ = create_client(app, public=True, scopes=SCOPES)
    key = DpopKey()
    verifier, challenge = pkce_pair()
    pushed = _push(app.test_client(), info, None, challenge, key.proof("POST", PAR_URL),
                   dpop_jkt=key.jkt)  # both, naming the same key: accepted
    assert pushed.status_code == 201, pushed.get_data(as_text=True)
    code = _code_from_push(app, info, pushed.json["request_uri"])
    tokens = _redeem(app.test_client(), info, None, code, verifier, key.proof("POST", TOKEN_URL))
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    assert jwt_claims(tokens.json["access_token"])["cnf"] == {"jkt": key.jkt}


def test_dpop_jkt_inside_a_pushed_request_binds_the_code(app: Flask, engine: Engine) -> None:
    info, _ = create_client(app, public=True, scopes=SCOPES)
    key = DpopKey()
    _, challenge = pkce_pair()
    pushed = _push(app.test_client(), info, None, challenge, dpop_jkt=key.jkt)
    assert pushed.status_code == 201, pushed.get_data(as_text=True)
    _code_from_push(app, info, pushed.json["request_uri"])
    assert _code_row(engine).dpop_jkt == key.jkt


def test_par_with_a_proof_and_another_dpop_jkt_is_refused_and_stores_nothing(
        app: Flask, engine: Engine) -> None:
    info, secret = create_client(app, scopes=SCOPES)
    _, challenge = pkce_pair()
    before = snapshot(engine)
    response = _push(app.test_client(), info, secret, challenge,
                     DpopKey().proof("POST", PAR_URL), dpop_jkt=DpopKey().jkt)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_dpop_proof"
    assert "dpop_jkt" in response.json["error_description"]
    assert _pushed_rows(engine) == []
    assert {k: v for k, v in snapshot(engine).items() if "dpop" not in k} == {
        k: v for k, v in before.items() if "dpop" not in k}


@pytest.mark.parametrize("fault", ["token endpoint htu", "GET htm", "not a JWT"])
def test_par_with_a_bad_proof_is_invalid_dpop_proof_and_stores_nothing(
        app: Flask, engine: Engine, fault: str) -> None:
    info, _ = create_client(app, public=True, scopes=SCOPES)
    key = DpopKey()
    proof = {"token endpoint htu": key.proof("POST", TOKEN_URL),
             "GET htm": key.proof("GET", PAR_URL), "not a JWT": "garbage"}[fault]
    _, challenge = pkce_pair()
    response = _push(app.test_client(), info, None, challenge, proof)
    assert response.status_code == 400 and response.json["error"] == "invalid_dpop_proof"
    assert _pushed_rows(engine) == []


def test_par_with_a_malformed_dpop_jkt_is_invalid_request(app: Flask, engine: Engine) -> None:
    info, _ = create_client(app, public=True, scopes=SCOPES)
    _, challenge = pkce_pair()
    response = _push(app.test_client(), info, None, challenge, dpop_jkt="x" * 43)
    assert response.status_code == 400 and response.json["error"] == "invalid_request"
    assert _pushed_rows(engine) == []


def test_par_asks_for_a_nonce_like_the_token_endpoint(engine: Engine) -> None:
    """Section 8 at the authorization server: use_dpop_nonce (400) with DPoP-Nonce, then the
    retry with that nonce is accepted and the answer carries the next nonce."""
    app = make_app(engine, dpop_nonce_required=True)
    info, _ = create_client(app, public=True, scopes=SCOPES)
    key = DpopKey()
    _, challenge = pkce_pair()
    http = app.test_client()
    first = _push(http, info, None, challenge, key.proof("POST", PAR_URL))
    assert first.status_code == 400 and first.json["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    assert _pushed_rows(engine) == []
    second = _push(http, info, None, challenge, key.proof("POST", PAR_URL, nonce=nonce))
    assert second.status_code == 201, second.get_data(as_text=True)
    assert second.headers["DPoP-Nonce"]
    replay_proof = key.proof("POST", PAR_URL, nonce=nonce)
    assert _push(http, info, None, challenge, replay_proof).status_code == 201
    replayed = _push(http, info, None, challenge, replay_proof)
    assert replayed.status_code == 400 and replayed.json["error"] == "invalid_dpop_proof"
