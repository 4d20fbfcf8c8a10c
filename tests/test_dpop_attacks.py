"""What an attacker tries against DPoP (RFC 9449), through HTTP on SQLite and PostgreSQL, for the
cases the feature's own tests leave out: a proof whose ``alg`` does not fit its key, ``htu``
near-misses, two real ``DPoP`` header lines, refresh-token reuse detection on a bound session,
a bound token smuggled to ``/userinfo`` in the form body, and a token-endpoint proof replayed
at a resource.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dpop_support import DpopKey, b64, segment
from factories import (
    ISSUER,
    create_client,
    create_user,
    jwt_claims,
    make_app,
    obtain_code,
    pkce_pair,
    snapshot,
)
from flask import Flask
from freezegun import freeze_time
from sqlalchemy import Engine, select

from oauth_sessions import get_state
from oauth_sessions.flask.resource import ResourceProtector, current_token
from oauth_sessions.storage.clients import ClientInfo
from oauth_sessions.storage.models import Session

TOKEN_URL = ISSUER + "/oauth/token"
USERINFO_URL = ISSUER + "/oauth/userinfo"
API = "http://localhost/api/profile"
SCOPES = "openid profile offline_access"


@pytest.fixture
def app(engine: Engine) -> Flask:
    provider = make_app(engine)

    @provider.route("/api/profile", methods=["GET"])
    @ResourceProtector.local(provider).require(scope="profile")
    def profile() -> dict[str, Any]:
        return {"sub": current_token().sub}

    return provider


@pytest.fixture
def public(app: Flask) -> ClientInfo:
    return create_client(app, public=True, scopes=SCOPES)[0]


def _code_data(app: Flask, client: ClientInfo) -> dict[str, str]:
    verifier, challenge = pkce_pair()
    query = obtain_code(app.test_client(), client, create_user(get_state(app).engine), challenge)
    return {"grant_type": "authorization_code", "code": query["code"],
            "client_id": client.client_id, "redirect_uri": client.redirect_uris[0],
            "code_verifier": verifier}


def _bound_tokens(app: Flask, client: ClientInfo, key: DpopKey) -> dict[str, Any]:
    response = app.test_client().post("/oauth/token", data=_code_data(app, client),
                                      headers={"DPoP": key.proof("POST", TOKEN_URL)})
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.json
    return body


def _refresh(app: Flask, client: ClientInfo, token: str, proof: str | None) -> Any:
    headers = {"DPoP": proof} if proof is not None else {}
    return app.test_client().post("/oauth/token", headers=headers, data={
        "grant_type": "refresh_token", "refresh_token": token, "client_id": client.client_id})


def _session_row(engine: Engine, sid: str) -> tuple[Any, ...] | None:
    table = Session.__table__
    with engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == uuid.UUID(sid))).first()
    return tuple(row) if row is not None else None


# --------------------------------------------------------------------------- proof forms


def _mismatched(kind: str) -> str:
    """A proof correctly signed by the key in its ``jwk``, whose ``alg`` names another key type
    or curve (section 4.3 step 7 with RFC 7518 section 3.4: the curve is the algorithm's)."""
    claims = {"jti": uuid.uuid4().hex, "htm": "POST", "htu": TOKEN_URL,
              "iat": int(datetime.now(UTC).timestamp())}
    if kind == "ES384 header, P-256 key":
        key = DpopKey("ES256")
        header = {"typ": "dpop+jwt", "alg": "ES384", "jwk": key.public}
    elif kind == "ES256 header, P-384 key":
        key = DpopKey("ES384")
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public}
    elif kind == "RS256 header, EC key":
        key = DpopKey("ES256")
        header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": key.public}
    elif kind == "EdDSA header, EC key":
        key = DpopKey("ES256")
        header = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.public}
    else:
        raise AssertionError(kind)
    return key.sign(header, claims)  # signed with the key's own algorithm


@pytest.mark.parametrize("kind", ["ES384 header, P-256 key", "ES256 header, P-384 key",
                                  "RS256 header, EC key", "EdDSA header, EC key"])
def test_a_proof_whose_alg_does_not_fit_its_key_is_refused(
        app: Flask, public: ClientInfo, engine: Engine, kind: str) -> None:
    data = _code_data(app, public)
    before = snapshot(engine)
    response = app.test_client().post("/oauth/token", data=data, headers={"DPoP": _mismatched(kind)})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"] == "invalid_dpop_proof"
    assert snapshot(engine) == before


@pytest.mark.parametrize("htu", [
    TOKEN_URL + "/",                                  # trailing slash: another path
    TOKEN_URL.replace("/oauth/token", "/OAUTH/token"),  # path case matters (RFC 3986 6.2.2.1)
    TOKEN_URL.replace("http://", "https://"),          # another scheme
    "http://127.0.0.1:5001/oauth/token",               # another port
    "http://user@127.0.0.1:5000/oauth/token",          # userinfo in the authority
    "http://127.0.0.1:5000/oauth/x/../token",          # dot segments are not resolved
    "/oauth/token",                                    # relative
])
def test_htu_near_misses_are_refused(app: Flask, public: ClientInfo, htu: str) -> None:
    assert ISSUER == "http://127.0.0.1:5000"  # the near-misses above are built on it
    data = _code_data(app, public)
    http = app.test_client()
    response = http.post("/oauth/token", data=data, headers={"DPoP": DpopKey().proof("POST", htu)})
    assert response.status_code == 400
    assert response.json == {"error": "invalid_dpop_proof",
                             "error_description": "the DPoP proof's htu does not match the request URI"}
    assert http.post("/oauth/token", data=data,
                     headers={"DPoP": DpopKey().proof("POST", TOKEN_URL)}).status_code == 200


def test_two_dpop_header_lines_are_refused(app: Flask, public: ClientInfo, engine: Engine) -> None:
    """Section 4.3 step 1, with two real header lines (not one value with a comma)."""
    key = DpopKey()
    data = _code_data(app, public)
    before = snapshot(engine)
    response = app.test_client().post("/oauth/token", data=data, headers=[
        ("DPoP", key.proof("POST", TOKEN_URL)), ("DPoP", key.proof("POST", TOKEN_URL))])
    assert response.status_code == 400
    assert response.json["error"] == "invalid_dpop_proof"
    assert snapshot(engine) == before


# --------------------------------------------------------------------------- bound refresh


def test_reuse_detection_still_ends_a_bound_session(app: Flask, public: ClientInfo,
                                                    engine: Engine) -> None:
    """RFC 9700 section 4.14.2 on a DPoP-bound session: an old token presented without the key
    changes nothing (the thief has no key); presented with the key, after the reuse interval
    (10 s), it is reuse and the session ends."""
    key = DpopKey()
    start = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    with freeze_time(start) as clock:
        first = _bound_tokens(app, public, key)
        sid = jwt_claims(first["access_token"])["sid"]
        second = _refresh(app, public, first["refresh_token"], key.proof("POST", TOKEN_URL))
        assert second.status_code == 200, second.get_data(as_text=True)
        current = second.json["refresh_token"]
        clock.tick(timedelta(seconds=10))
        before = _session_row(engine, sid)
        stolen = _refresh(app, public, first["refresh_token"], None)
        assert stolen.status_code == 400 and stolen.json["error"] == "invalid_dpop_proof"
        other_key = _refresh(app, public, first["refresh_token"], DpopKey().proof("POST", TOKEN_URL))
        assert other_key.status_code == 400 and other_key.json["error"] == "invalid_grant"
        assert _session_row(engine, sid) == before
        reused = _refresh(app, public, first["refresh_token"], key.proof("POST", TOKEN_URL))
        assert reused.status_code == 400 and reused.json["error"] == "invalid_grant"
        assert _session_row(engine, sid) is None
        dead = _refresh(app, public, current, key.proof("POST", TOKEN_URL))
        assert dead.status_code == 400 and dead.json["error"] == "invalid_grant"


def test_within_the_reuse_interval_a_bound_retry_needs_the_key_too(
        app: Flask, public: ClientInfo, engine: Engine) -> None:
    """The two-tabs grace (9 s after a refresh) hands out the current token again: never to a
    request without the session's key."""
    key = DpopKey()
    start = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    with freeze_time(start) as clock:
        first = _bound_tokens(app, public, key)
        second = _refresh(app, public, first["refresh_token"], key.proof("POST", TOKEN_URL)).json
        clock.tick(timedelta(seconds=9))
        thief = _refresh(app, public, first["refresh_token"], DpopKey().proof("POST", TOKEN_URL))
        assert thief.status_code == 400 and "refresh_token" not in thief.json
        retry = _refresh(app, public, first["refresh_token"], key.proof("POST", TOKEN_URL))
        assert retry.status_code == 200, retry.get_data(as_text=True)
        assert retry.json["refresh_token"] == second["refresh_token"]


# --------------------------------------------------------------------------- resources


def test_a_bound_token_in_the_userinfo_form_body_is_refused(app: Flask, public: ClientInfo) -> None:
    """RFC 6750 section 2.2's form body carries no scheme: a bound token there is a Bearer use."""
    key = DpopKey()
    token = _bound_tokens(app, public, key)["access_token"]
    response = app.test_client().post("/oauth/userinfo", data={"access_token": token}, headers={
        "DPoP": key.proof("POST", USERINFO_URL, access_token=token)})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"
    assert response.headers.getlist("WWW-Authenticate")[0].startswith('DPoP error="invalid_token"')


def test_a_proof_is_good_for_its_own_request_only(app: Flask, public: ClientInfo) -> None:
    """A proof made for the token endpoint, for /userinfo, or for another access token is
    refused at the resource; the right one then passes."""
    key = DpopKey()
    token = _bound_tokens(app, public, key)["access_token"]
    other = _bound_tokens(app, public, key)["access_token"]
    http = app.test_client()
    for proof in (key.proof("POST", TOKEN_URL, access_token=token),
                  key.proof("GET", USERINFO_URL, access_token=token),
                  key.proof("GET", API, access_token=other),
                  key.proof("GET", API),  # no ath
                  key.proof("POST", API, access_token=token)):
        refused = http.get("/api/profile", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
        assert refused.status_code == 401, refused.get_data(as_text=True)
        assert refused.json["error"] == "invalid_dpop_proof"
    good = http.get("/api/profile", headers={
        "Authorization": f"DPoP {token}", "DPoP": key.proof("GET", API, access_token=token)})
    assert good.status_code == 200, good.get_data(as_text=True)


# --------------------------------------------------------------------------- odd claim values


def _signed(key: DpopKey, claims_json: str) -> str:
    """A proof whose payload is ``claims_json`` verbatim (JSON escapes a client library never
    writes, such as a lone surrogate)."""
    head = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public}
    signing_input = f"{segment(head)}.{b64(claims_json.encode())}"
    return signing_input + "." + b64(key.sign_raw(signing_input))


def _with_surrogate(key: DpopKey, member: str, **claims: Any) -> str:
    body = {"jti": uuid.uuid4().hex, "htm": "POST", "htu": TOKEN_URL,
            "iat": int(datetime.now(UTC).timestamp()), **claims}
    return _signed(key, json.dumps({**body, member: "@@"}).replace("@@", "a\\ud800"))


@pytest.mark.parametrize("member", ["jti", "htu", "htm"])
def test_a_lone_surrogate_in_a_claim_is_a_clear_refusal(app: Flask, public: ClientInfo,
                                                        engine: Engine, member: str) -> None:
    """``"\\ud800"`` is valid JSON but no Unicode text: a 400 invalid_dpop_proof, no 500, and
    nothing written (the jti used to reach the ledger's UTF-8 hash and fail there)."""
    data = _code_data(app, public)
    before = snapshot(engine)
    response = app.test_client().post("/oauth/token", data=data,
                                      headers={"DPoP": _with_surrogate(DpopKey(), member)})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"] == "invalid_dpop_proof"
    assert snapshot(engine) == before


def test_a_lone_surrogate_nonce_asks_for_a_nonce(engine: Engine) -> None:
    app = make_app(engine, dpop_nonce_required=True)
    public = create_client(app, public=True, scopes=SCOPES)[0]
    response = app.test_client().post("/oauth/token", data=_code_data(app, public),
                                      headers={"DPoP": _with_surrogate(DpopKey(), "nonce")})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"] == "use_dpop_nonce"


@pytest.mark.parametrize("member", ["jti", "ath"])
def test_a_lone_surrogate_at_the_resource_is_a_dpop_challenge(app: Flask, public: ClientInfo,
                                                              member: str) -> None:
    key = DpopKey()
    token = _bound_tokens(app, public, key)["access_token"]
    proof = _with_surrogate(key, member, htm="GET", htu=API,
                            ath=b64(hashlib.sha256(token.encode()).digest()))
    response = app.test_client().get("/api/profile", headers={
        "Authorization": f"DPoP {token}", "DPoP": proof})
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.json["error"] == "invalid_dpop_proof"
