"""DPoP at resource servers (RFC 9449 section 7): the resource helper in local and remote mode
and ``/userinfo``, through HTTP on SQLite and PostgreSQL. A DPoP-bound token works only as
``Authorization: DPoP`` with a proof of its key for this very request; every refusal is a
``WWW-Authenticate: DPoP`` challenge; a bound token presented as Bearer is refused.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from dpop_support import DpopKey
from factories import ISSUER, create_client, create_user, make_app, obtain_code, pkce_pair
from flask import Flask
from freezegun import freeze_time
from sqlalchemy import Engine
from test_resource_modes import live

from oauth_sessions.flask.resource import ResourceProtector, current_token
from oauth_sessions.jose.dpop import DPOP_ALGS
from oauth_sessions.storage.clients import ClientInfo

TOKEN_URL = ISSUER + "/oauth/token"
API = "http://localhost/api/profile"
ALGS = " ".join(DPOP_ALGS)


def _tokens(app: Flask, client: ClientInfo, key: DpopKey | None) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    http = app.test_client()
    from oauth_sessions import get_state

    query = obtain_code(http, client, create_user(get_state(app).engine), challenge)
    headers = {"DPoP": key.proof("POST", TOKEN_URL)} if key is not None else {}
    response = http.post("/oauth/token", headers=headers, data={
        "grant_type": "authorization_code", "code": query["code"], "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0], "code_verifier": verifier})
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.json
    return body


def _views(app: Flask, protector: ResourceProtector) -> None:
    @app.route("/api/profile", methods=["GET", "POST"])
    @protector.require(scope="profile")
    def profile() -> dict[str, Any]:
        return {"sub": current_token().sub, "jkt": current_token().jkt}


@pytest.fixture
def app(engine: Engine) -> Flask:
    provider = make_app(engine)
    _views(provider, ResourceProtector.local(provider))
    return provider


@pytest.fixture
def public(app: Flask) -> ClientInfo:
    return create_client(app, public=True, scopes="openid profile offline_access")[0]


def _dpop(token: str, proof: str) -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": proof}


def test_a_bound_token_with_a_proof_of_its_key_passes(app: Flask, public: ClientInfo) -> None:
    key = DpopKey()
    token = _tokens(app, public, key)["access_token"]
    response = app.test_client().get("/api/profile",
                                     headers=_dpop(token, key.proof("GET", API, access_token=token)))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["jkt"] == key.jkt


def test_a_bound_token_presented_as_bearer_is_refused(app: Flask, public: ClientInfo) -> None:
    key = DpopKey()
    token = _tokens(app, public, key)["access_token"]
    response = app.test_client().get("/api/profile", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    challenges = response.headers.getlist("WWW-Authenticate")
    assert challenges[0].startswith('DPoP error="invalid_token"')
    assert challenges[0].endswith(f'algs="{ALGS}"')
    assert challenges[1].startswith("Bearer ") and "error=" not in challenges[1]


def test_an_unbound_token_still_works_as_bearer_and_not_as_dpop(app: Flask,
                                                               public: ClientInfo) -> None:
    token = _tokens(app, public, None)["access_token"]
    http = app.test_client()
    assert http.get("/api/profile", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    key = DpopKey()
    refused = http.get("/api/profile", headers=_dpop(token, key.proof("GET", API, access_token=token)))
    assert refused.status_code == 401 and refused.json["error"] == "invalid_token"


def test_every_challenge_offers_dpop_beside_bearer(app: Flask) -> None:
    response = app.test_client().get("/api/profile")
    assert response.status_code == 401
    assert response.headers.getlist("WWW-Authenticate") == [
        'Bearer realm="oauth_sessions"', f'DPoP algs="{ALGS}"']


def _bad_proof(kind: str, key: DpopKey, token: str) -> str | None:
    if kind == "no proof":
        return None
    if kind == "missing ath":
        return key.proof("GET", API)
    if kind == "wrong ath":
        return key.proof("GET", API, access_token=token + "x")
    if kind == "wrong htm":
        return key.proof("POST", API, access_token=token)
    if kind == "wrong htu":
        return key.proof("GET", "http://localhost/api/other", access_token=token)
    if kind == "old iat":
        return key.proof("GET", API, access_token=token, iat=time.time() - 600)
    if kind == "another key":
        return DpopKey().proof("GET", API, access_token=token)
    if kind == "wrong typ":
        return key.proof("GET", API, access_token=token, header={"typ": "jwt"})
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["no proof", "missing ath", "wrong ath", "wrong htm", "wrong htu",
                                  "old iat", "another key", "wrong typ"])
def test_bad_proofs_at_the_resource_are_dpop_challenges(app: Flask, public: ClientInfo,
                                                        kind: str) -> None:
    key = DpopKey()
    token = _tokens(app, public, key)["access_token"]
    proof = _bad_proof(kind, key, token)
    headers = {"Authorization": f"DPoP {token}", **({"DPoP": proof} if proof else {})}
    response = app.test_client().get("/api/profile", headers=headers)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_dpop_proof"
    first = response.headers.getlist("WWW-Authenticate")[0]
    assert first.startswith('DPoP error="invalid_dpop_proof"')


def test_a_replayed_proof_at_the_resource_is_refused(app: Flask, public: ClientInfo) -> None:
    key = DpopKey()
    token = _tokens(app, public, key)["access_token"]
    proof = key.proof("GET", API, access_token=token)
    http = app.test_client()
    assert http.get("/api/profile", headers=_dpop(token, proof)).status_code == 200
    again = http.get("/api/profile", headers=_dpop(token, proof))
    assert again.status_code == 401
    assert again.json == {"error": "invalid_dpop_proof",
                          "error_description": "the DPoP proof was already used"}


@pytest.mark.parametrize(("offset", "ok"), [(-60, True), (-61, False)])
def test_resource_iat_window_boundary(app: Flask, public: ClientInfo, offset: int, ok: bool) -> None:
    key = DpopKey()
    now = time.time()
    token = _tokens(app, public, key)["access_token"]
    proof = key.proof("GET", API, access_token=token, iat=int(now) + offset)
    with freeze_time(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(now)))):
        response = app.test_client().get("/api/profile", headers=_dpop(token, proof))
    assert response.status_code == (200 if ok else 401), response.get_data(as_text=True)


def test_the_resource_asks_for_a_nonce_when_required(engine: Engine) -> None:
    app = make_app(engine, dpop_nonce_required=True)
    _views(app, ResourceProtector.local(app))
    public = create_client(app, public=True, scopes="openid profile offline_access")[0]
    key = DpopKey()
    http = app.test_client()
    code_nonce = http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x",
                                                 "client_id": public.client_id},
                           headers={"DPoP": key.proof("POST", TOKEN_URL)}).headers["DPoP-Nonce"]
    verifier, challenge = pkce_pair()
    from oauth_sessions import get_state

    query = obtain_code(http, public, create_user(get_state(app).engine), challenge)
    token = http.post("/oauth/token", headers={"DPoP": key.proof("POST", TOKEN_URL, nonce=code_nonce)},
                      data={"grant_type": "authorization_code", "code": query["code"],
                            "client_id": public.client_id, "redirect_uri": public.redirect_uris[0],
                            "code_verifier": verifier}).json["access_token"]
    asked = http.get("/api/profile", headers=_dpop(token, key.proof("GET", API, access_token=token)))
    assert asked.status_code == 401 and asked.json["error"] == "use_dpop_nonce"
    assert asked.headers.getlist("WWW-Authenticate")[0].startswith('DPoP error="use_dpop_nonce"')
    nonce = asked.headers["DPoP-Nonce"]
    ok = http.get("/api/profile",
                  headers=_dpop(token, key.proof("GET", API, access_token=token, nonce=nonce)))
    assert ok.status_code == 200, ok.get_data(as_text=True)


def test_userinfo_accepts_a_bound_token_with_its_proof(app: Flask, public: ClientInfo) -> None:
    key = DpopKey()
    token = _tokens(app, public, key)["access_token"]
    url = ISSUER + "/oauth/userinfo"
    http = app.test_client()
    ok = http.get("/oauth/userinfo", headers=_dpop(token, key.proof("GET", url, access_token=token)))
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert "sub" in ok.json
    as_bearer = http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert as_bearer.status_code == 401
    assert as_bearer.headers.getlist("WWW-Authenticate")[0].startswith('DPoP error="invalid_token"')


def test_protected_resource_metadata_names_the_dpop_algs(app: Flask) -> None:
    protector = ResourceProtector.local(app, resource="https://api.example.test/v1")
    with app.app_context():
        document = protector.metadata()
    assert document["dpop_signing_alg_values_supported"] == list(DPOP_ALGS)


# --------------------------------------------------------------------------- remote mode


def _remote_app(base: str, rs: ClientInfo, secret: str, dpop_engine: Engine | None) -> Flask:
    protector = ResourceProtector.remote(base + "/oauth/introspect", rs.client_id, secret,
                                         dpop_engine=dpop_engine)
    app = Flask("remote_resource")
    _views(app, protector)
    return app


def test_remote_mode_checks_the_proof_against_the_introspected_cnf(engine: Engine) -> None:
    provider = make_app(engine)
    public = create_client(provider, public=True, scopes="openid profile offline_access")[0]
    rs, secret = create_client(provider, name="api", scopes="openid", can_introspect=True)
    key = DpopKey()
    token = _tokens(provider, public, key)["access_token"]
    with live(provider) as base:
        api = _remote_app(base, rs, secret, engine).test_client()
        ok = api.get("/api/profile", headers=_dpop(token, key.proof("GET", API, access_token=token)))
        assert ok.status_code == 200, ok.get_data(as_text=True)
        assert ok.json["jkt"] == key.jkt
        wrong = api.get("/api/profile",
                        headers=_dpop(token, DpopKey().proof("GET", API, access_token=token)))
        assert wrong.status_code == 401 and wrong.json["error"] == "invalid_dpop_proof"
        bearer = api.get("/api/profile", headers={"Authorization": f"Bearer {token}"})
        assert bearer.status_code == 401 and bearer.json["error"] == "invalid_token"


def test_remote_mode_without_a_ledger_refuses_bound_tokens(engine: Engine) -> None:
    provider = make_app(engine)
    public = create_client(provider, public=True, scopes="openid profile offline_access")[0]
    rs, secret = create_client(provider, name="api", scopes="openid", can_introspect=True)
    key = DpopKey()
    token = _tokens(provider, public, key)["access_token"]
    plain = _tokens(provider, public, None)["access_token"]
    with live(provider) as base:
        api = _remote_app(base, rs, secret, None).test_client()
        refused = api.get("/api/profile",
                          headers=_dpop(token, key.proof("GET", API, access_token=token)))
        assert refused.status_code == 401 and refused.json["error"] == "invalid_token"
        assert api.get("/api/profile", headers={"Authorization": f"Bearer {plain}"}).status_code == 200
        challenge = api.get("/api/profile")
    assert challenge.headers.getlist("WWW-Authenticate") == ['Bearer realm="oauth_sessions"']
