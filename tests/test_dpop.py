"""DPoP at the token endpoint, introspection and discovery (RFC 9449), through HTTP on SQLite
and PostgreSQL: bound access tokens, refresh tokens bound to a public client's key, hostile
proofs, the iat window and server nonces at their exact boundaries, jti one-time across workers.
"""

from __future__ import annotations

import base64
import json
import threading
import time
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
    statements,
)
from flask import Flask
from freezegun import freeze_time
from sqlalchemy import Engine, select

from oauth_sessions import get_state
from oauth_sessions.core.dpop_nonces import NonceIssuer, derive_nonce_key
from oauth_sessions.jose.dpop import DPOP_ALGS, InvalidDpopProof, normalize_htu, verify_dpop_proof
from oauth_sessions.storage.clients import ClientInfo
from oauth_sessions.storage.models import OAuthDpopBinding, Session
from oauth_sessions.storage.replay_ledger import DpopReplayLedger

TOKEN_URL = ISSUER + "/oauth/token"
SCOPES = "openid profile offline_access"


def _code(app: Flask, client: ClientInfo) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    user = create_user(get_state(app).engine)
    query = obtain_code(app.test_client(), client, user, challenge)
    return query["code"], verifier


def _exchange(app: Flask, client: ClientInfo, secret: str | None, proof: str | None) -> Any:
    code, verifier = _code(app, client)
    http = app.test_client()
    headers = {"DPoP": proof} if proof is not None else {}
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": client.redirect_uris[0], "code_verifier": verifier}
    if secret is None:
        data["client_id"] = client.client_id
    else:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{client.client_id}:{secret}".encode()).decode()
    return http.post("/oauth/token", data=data, headers=headers)


def _refresh(app: Flask, client: ClientInfo, token: str, proof: str | None,
             secret: str | None = None) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    headers = {"DPoP": proof} if proof is not None else {}
    if secret is None:
        data["client_id"] = client.client_id
    else:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{client.client_id}:{secret}".encode()).decode()
    return app.test_client().post("/oauth/token", data=data, headers=headers)


def _row(engine: Engine, session_id: str) -> tuple[Any, ...] | None:
    with engine.connect() as conn:
        row = conn.execute(select(Session.__table__).where(
            Session.__table__.c.id == uuid.UUID(session_id))).first()
    return tuple(row) if row is not None else None


def _binding(engine: Engine, session_id: str) -> str | None:
    table = OAuthDpopBinding.__table__
    with engine.connect() as conn:
        jkt: str | None = conn.execute(select(table.c.jkt).where(
            table.c.session_id == uuid.UUID(session_id))).scalar_one_or_none()
    return jkt


@pytest.fixture
def app(engine: Engine) -> Flask:
    return make_app(engine)


@pytest.fixture
def public(app: Flask) -> ClientInfo:
    return create_client(app, public=True, scopes=SCOPES)[0]


# --------------------------------------------------------------------------- token endpoint


def test_code_exchange_with_a_proof_binds_the_access_token_and_the_session(
        app: Flask, public: ClientInfo, engine: Engine) -> None:
    key = DpopKey()
    response = _exchange(app, public, None, key.proof("POST", TOKEN_URL))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert body["token_type"] == "DPoP"
    claims = jwt_claims(body["access_token"])
    assert claims["cnf"] == {"jkt": key.jkt}
    assert body["refresh_token"].startswith("osb1_")
    assert _binding(engine, claims["sid"]) == key.jkt


def test_without_a_proof_nothing_is_bound(app: Flask, public: ClientInfo, engine: Engine) -> None:
    body = _exchange(app, public, None, None).json
    assert body["token_type"] == "Bearer"
    claims = jwt_claims(body["access_token"])
    assert "cnf" not in claims
    assert body["refresh_token"].startswith("osr1_")
    assert _binding(engine, claims["sid"]) is None


def test_a_confidential_clients_refresh_token_stays_unbound(app: Flask, engine: Engine) -> None:
    """RFC 9449 section 5: its refresh tokens are sender-constrained by its authentication."""
    client, secret = create_client(app, scopes=SCOPES)
    key = DpopKey()
    body = _exchange(app, client, secret, key.proof("POST", TOKEN_URL)).json
    assert body["token_type"] == "DPoP"
    assert jwt_claims(body["access_token"])["cnf"] == {"jkt": key.jkt}
    assert body["refresh_token"].startswith("osr1_")
    assert _binding(engine, jwt_claims(body["access_token"])["sid"]) is None


def test_a_bound_session_refreshes_with_its_key(app: Flask, public: ClientInfo) -> None:
    key = DpopKey()
    first = _exchange(app, public, None, key.proof("POST", TOKEN_URL)).json
    response = _refresh(app, public, first["refresh_token"], key.proof("POST", TOKEN_URL))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert body["token_type"] == "DPoP"
    assert body["refresh_token"].startswith("osb1_")
    assert body["refresh_token"] != first["refresh_token"]
    assert jwt_claims(body["access_token"])["cnf"] == {"jkt": key.jkt}


@pytest.mark.parametrize("attempt", ["no proof", "another key"])
def test_a_bound_refresh_without_its_key_changes_nothing(
        app: Flask, public: ClientInfo, engine: Engine, attempt: str) -> None:
    """A thief of the refresh token (no key) can neither refresh nor end the holder's session."""
    key = DpopKey()
    first = _exchange(app, public, None, key.proof("POST", TOKEN_URL)).json
    sid = jwt_claims(first["access_token"])["sid"]
    before = _row(engine, sid)
    proof = None if attempt == "no proof" else DpopKey().proof("POST", TOKEN_URL)
    response = _refresh(app, public, first["refresh_token"], proof)
    assert response.status_code == 400
    expected = "invalid_dpop_proof" if attempt == "no proof" else "invalid_grant"
    assert response.json["error"] == expected
    assert _row(engine, sid) == before  # counter, refreshed_at, everything
    assert _binding(engine, sid) == key.jkt
    after = _refresh(app, public, first["refresh_token"], key.proof("POST", TOKEN_URL))
    assert after.status_code == 200, after.get_data(as_text=True)


def test_the_binding_mark_cannot_be_stripped(app: Flask, public: ClientInfo, engine: Engine) -> None:
    """``osr1_`` with the body of an ``osb1_`` token is another MAC input: refused, unchanged."""
    key = DpopKey()
    first = _exchange(app, public, None, key.proof("POST", TOKEN_URL)).json
    sid = jwt_claims(first["access_token"])["sid"]
    before = _row(engine, sid)
    stripped = "osr1_" + first["refresh_token"][5:]
    response = _refresh(app, public, stripped, None)
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"
    assert _row(engine, sid) == before


def test_an_unbound_session_refreshed_with_a_proof_gets_a_bound_access_token_only(
        app: Flask, public: ClientInfo, engine: Engine) -> None:
    """Binding happens at the code exchange only: a stolen unbound refresh token cannot be tied
    to the thief's key, which would lock its holder out."""
    first = _exchange(app, public, None, None).json
    key = DpopKey()
    body = _refresh(app, public, first["refresh_token"], key.proof("POST", TOKEN_URL)).json
    assert body["token_type"] == "DPoP"
    assert jwt_claims(body["access_token"])["cnf"] == {"jkt": key.jkt}
    assert body["refresh_token"].startswith("osr1_")
    assert _binding(engine, jwt_claims(body["access_token"])["sid"]) is None


def test_step_up_of_a_bound_session_keeps_it_bound(app: Flask, public: ClientInfo) -> None:
    key = DpopKey()
    first = _exchange(app, public, None, key.proof("POST", TOKEN_URL)).json
    sid = uuid.UUID(jwt_claims(first["access_token"])["sid"])
    from oauth_sessions import Aal

    issued = get_state(app).services.sessions.step_up(sid, aal=Aal.AAL2, factor_id=None,
                                                      method="totp")
    assert issued.refresh_token.startswith("osb1_")
    assert _refresh(app, public, issued.refresh_token, None).json["error"] == "invalid_dpop_proof"


def test_the_binding_goes_with_its_session(app: Flask, public: ClientInfo, engine: Engine) -> None:
    key = DpopKey()
    first = _exchange(app, public, None, key.proof("POST", TOKEN_URL)).json
    sid = jwt_claims(first["access_token"])["sid"]
    assert get_state(app).services.sessions.revoke(uuid.UUID(sid), reason="test")
    assert _binding(engine, sid) is None


# --------------------------------------------------------------------------- hostile proofs


def _hostile(kind: str, key: DpopKey) -> str:
    now = time.time()
    good = {"jti": "j-" + uuid.uuid4().hex, "htm": "POST", "htu": TOKEN_URL, "iat": int(now)}
    head = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public}
    if kind == "wrong typ":
        return key.sign({**head, "typ": "JWT"}, good)
    if kind == "alg none":
        return f"{segment({**head, 'alg': 'none'})}.{segment(good)}.AA"
    if kind == "HS256":
        import hmac

        signing_input = f"{segment({**head, 'alg': 'HS256'})}.{segment(good)}"
        return signing_input + "." + b64(hmac.digest(b"k" * 32, signing_input.encode(), "sha256"))
    if kind == "private key in jwk":
        return key.sign({**head, "jwk": key.key.as_dict(private=True)}, good)
    if kind == "symmetric jwk":
        return key.sign({**head, "jwk": {"kty": "oct", "k": b64(b"k" * 32)}}, good)
    if kind == "no jwk":
        return key.sign({"typ": "dpop+jwt", "alg": "ES256"}, good)
    if kind == "bad signature":
        other = DpopKey()
        return other.sign(head, good)  # signed by another key than the one in jwk
    if kind == "wrong htm":
        return key.sign(head, {**good, "htm": "GET"})
    if kind == "wrong htu":
        return key.sign(head, {**good, "htu": ISSUER + "/oauth/introspect"})
    if kind == "no jti":
        return key.sign(head, {k: v for k, v in good.items() if k != "jti"})
    if kind == "old iat":
        return key.sign(head, {**good, "iat": int(now) - 3600})
    if kind == "future iat":
        return key.sign(head, {**good, "iat": int(now) + 3600})
    if kind == "NaN iat":
        signing_input = f"{segment(head)}." + b64(json.dumps({**good, "iat": float("nan")}).encode())
        return signing_input + "." + b64(key.sign_raw(signing_input))
    if kind == "huge proof":
        return key.sign(head, {**good, "pad": "x" * 5000})
    if kind == "deep nesting":
        return key.sign(head, {**good, "x": json.loads("[" * 40 + "]" * 40)})
    if kind == "not a jwt":
        return "not-a-jwt"
    if kind == "two headers":
        return key.proof("POST", TOKEN_URL) + ", " + key.proof("POST", TOKEN_URL)
    raise AssertionError(kind)


HOSTILE = ["wrong typ", "alg none", "HS256", "private key in jwk", "symmetric jwk", "no jwk",
           "bad signature", "wrong htm", "wrong htu", "no jti", "old iat", "future iat", "NaN iat",
           "huge proof", "deep nesting", "not a jwt", "two headers"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_proofs_are_refused_and_change_nothing(
        app: Flask, public: ClientInfo, engine: Engine, kind: str) -> None:
    code, verifier = _code(app, public)
    before = snapshot(engine)
    data = {"grant_type": "authorization_code", "code": code, "client_id": public.client_id,
            "redirect_uri": public.redirect_uris[0], "code_verifier": verifier}
    response = app.test_client().post("/oauth/token", data=data,
                                      headers={"DPoP": _hostile(kind, DpopKey())})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"] == "invalid_dpop_proof"
    assert "Traceback" not in response.get_data(as_text=True)
    assert snapshot(engine) == before
    # The code is still good: the refused request spent nothing.
    retry = app.test_client().post("/oauth/token", data=data,
                                   headers={"DPoP": DpopKey().proof("POST", TOKEN_URL)})
    assert retry.status_code == 200


def test_a_replayed_proof_is_refused(app: Flask, public: ClientInfo) -> None:
    key = DpopKey()
    proof = key.proof("POST", TOKEN_URL)
    assert _exchange(app, public, None, proof).status_code == 200
    again = _exchange(app, public, None, proof)
    assert again.status_code == 400
    assert again.json == {"error": "invalid_dpop_proof",
                          "error_description": "the DPoP proof was already used"}


def test_htu_is_compared_normalised(app: Flask, public: ClientInfo) -> None:
    """Section 4.3 step 9: case of scheme and host, the default port, query and fragment."""
    url = "HTTP://127.0.0.1:5000/oauth/%74oken?x=1#f"
    assert _exchange(app, public, None, DpopKey().proof("POST", url)).status_code == 200
    assert normalize_htu("https://EXAMPLE.com:443/a%2fb") == "https://example.com/a%2Fb"
    assert normalize_htu("https://example.com") == "https://example.com/"


@pytest.mark.parametrize(("offset", "accepted"), [(-60, True), (-61, False), (60, True),
                                                    (61, False)])
def test_iat_window_boundaries(app: Flask, public: ClientInfo, offset: int, accepted: bool) -> None:
    """OAUTH_SESSIONS_DPOP_IAT_WINDOW (60): exactly 60 s away on either side is accepted."""
    now = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    proof = DpopKey().proof("POST", TOKEN_URL, iat=now.timestamp() + offset)
    with freeze_time(now):
        code, verifier = _code(app, public)
        data = {"grant_type": "authorization_code", "code": code, "client_id": public.client_id,
                "redirect_uri": public.redirect_uris[0], "code_verifier": verifier}
        response = app.test_client().post("/oauth/token", data=data, headers={"DPoP": proof})
    if accepted:
        assert response.status_code == 200, response.get_data(as_text=True)
    else:
        assert response.status_code == 400 and response.json["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize("alg", DPOP_ALGS)
def test_every_advertised_alg_is_verified(app: Flask, public: ClientInfo, alg: str) -> None:
    """Discovery lists exactly the algorithms a proof is accepted with."""
    document = app.test_client().get("/.well-known/openid-configuration").json
    assert document["dpop_signing_alg_values_supported"] == list(DPOP_ALGS)
    key = DpopKey(alg)
    body = _exchange(app, public, None, key.proof("POST", TOKEN_URL)).json
    assert jwt_claims(body["access_token"])["cnf"] == {"jkt": key.jkt}


def test_unit_proof_checks_name_the_check() -> None:
    key = DpopKey()
    proof = key.proof("POST", TOKEN_URL, access_token="at")
    verified = verify_dpop_proof(proof, method="POST", uri=TOKEN_URL, now=time.time(),
                                 iat_window=60, access_token="at")
    assert verified.jkt == key.jkt
    with pytest.raises(InvalidDpopProof, match="ath does not match"):
        verify_dpop_proof(proof, method="POST", uri=TOKEN_URL, now=time.time(), iat_window=60,
                          access_token="other")
    no_ath = key.proof("POST", TOKEN_URL)
    with pytest.raises(InvalidDpopProof, match="needs ath"):
        verify_dpop_proof(no_ath, method="POST", uri=TOKEN_URL, now=time.time(), iat_window=60,
                          access_token="at")


# --------------------------------------------------------------------------- client rules


def test_a_client_registered_for_dpop_must_send_it(app: Flask) -> None:
    client, secret = create_client(app, scopes=SCOPES, dpop_bound_access_tokens=True)
    assert client.dpop_bound_access_tokens
    refused = _exchange(app, client, secret, None)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_dpop_proof"
    assert _exchange(app, client, secret, DpopKey().proof("POST", TOKEN_URL)).status_code == 200


def test_public_clients_may_be_required_to_use_dpop(engine: Engine) -> None:
    app = make_app(engine, dpop_required_for_public_clients=True)
    public = create_client(app, public=True, scopes=SCOPES)[0]
    refused = _exchange(app, public, None, None)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_dpop_proof"
    assert _exchange(app, public, None, DpopKey().proof("POST", TOKEN_URL)).status_code == 200
    confidential, secret = create_client(app, scopes=SCOPES)
    assert _exchange(app, confidential, secret, None).status_code == 200


def test_dynamic_registration_and_rfc7592_update_carry_dpop_bound_access_tokens(
        engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    http = app.test_client()
    body = {"redirect_uris": ["https://client.example/cb"], "token_endpoint_auth_method": "none",
            "dpop_bound_access_tokens": True}
    registered = http.post("/oauth/register", json=body)
    assert registered.status_code == 201, registered.get_data(as_text=True)
    meta = registered.json
    assert meta["dpop_bound_access_tokens"] is True
    client = get_state(app).services.clients.get(meta["client_id"])
    assert client is not None and client.dpop_bound_access_tokens
    update = {**{k: v for k, v in meta.items()
                 if k not in ("registration_access_token", "registration_client_uri",
                              "client_id_issued_at", "client_secret_expires_at",
                              "dpop_bound_access_tokens")}}
    headers = {"Authorization": "Bearer " + meta["registration_access_token"]}
    updated = http.put(f"/oauth/register/{meta['client_id']}", json=update, headers=headers)
    assert updated.status_code == 200, updated.get_data(as_text=True)
    assert "dpop_bound_access_tokens" not in updated.json
    client = get_state(app).services.clients.get(meta["client_id"], fresh=True)
    assert client is not None and not client.dpop_bound_access_tokens
    bad = http.post("/oauth/register", json={**body, "dpop_bound_access_tokens": "yes"})
    assert bad.status_code == 400 and bad.json["error"] == "invalid_client_metadata"


# --------------------------------------------------------------------------- nonces


def test_a_required_nonce_is_asked_for_then_accepted(engine: Engine) -> None:
    app = make_app(engine, dpop_nonce_required=True)
    public = create_client(app, public=True, scopes=SCOPES)[0]
    key = DpopKey()
    code, verifier = _code(app, public)
    data = {"grant_type": "authorization_code", "code": code, "client_id": public.client_id,
            "redirect_uri": public.redirect_uris[0], "code_verifier": verifier}
    http = app.test_client()
    first = http.post("/oauth/token", data=data, headers={"DPoP": key.proof("POST", TOKEN_URL)})
    assert first.status_code == 400 and first.json["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    wrong = http.post("/oauth/token", data=data,
                      headers={"DPoP": key.proof("POST", TOKEN_URL, nonce="x" * 32)})
    assert wrong.json["error"] == "use_dpop_nonce"
    good = http.post("/oauth/token", data=data,
                     headers={"DPoP": key.proof("POST", TOKEN_URL, nonce=nonce)})
    assert good.status_code == 200, good.get_data(as_text=True)
    assert good.headers["DPoP-Nonce"]


@pytest.mark.parametrize(("elapsed", "accepted"), [(599, True), (600, False)])
def test_nonce_window_boundary_through_http(engine: Engine, elapsed: int, accepted: bool) -> None:
    """A nonce of window w is good until (w + 2) * lifetime exactly (lifetime 300)."""
    app = make_app(engine, dpop_nonce_required=True)
    public = create_client(app, public=True, scopes=SCOPES)[0]
    start = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)  # a window boundary: 1796191200 % 300 == 0
    assert int(start.timestamp()) % 300 == 0
    http = app.test_client()
    with freeze_time(start) as clock:
        asked = http.post("/oauth/token", data={"grant_type": "refresh_token",
                                                "refresh_token": "x", "client_id": public.client_id},
                          headers={"DPoP": DpopKey().proof("POST", TOKEN_URL)})
        assert asked.json["error"] == "use_dpop_nonce"
        nonce = asked.headers["DPoP-Nonce"]
        clock.tick(timedelta(seconds=elapsed))
        later = datetime.now(UTC).timestamp()
        code, verifier = _code(app, public)
        data = {"grant_type": "authorization_code", "code": code, "client_id": public.client_id,
                "redirect_uri": public.redirect_uris[0], "code_verifier": verifier}
        response = http.post("/oauth/token", data=data, headers={
            "DPoP": DpopKey().proof("POST", TOKEN_URL, nonce=nonce, iat=later)})
    if accepted:
        assert response.status_code == 200, response.get_data(as_text=True)
    else:
        assert response.json["error"] == "use_dpop_nonce"
        assert response.headers["DPoP-Nonce"] != nonce


def test_nonces_are_the_same_on_every_worker_with_the_same_secret() -> None:
    one = NonceIssuer(derive_nonce_key("s" * 32), 300)
    two = NonceIssuer(derive_nonce_key("s" * 32), 300)
    other = NonceIssuer(derive_nonce_key("t" * 32), 300)
    nonce = one.issue(1000.0)
    assert two.is_valid(nonce, 1000.0) and not other.is_valid(nonce, 1000.0)
    # issued in window 3 (900-1199): good through window 4, refused from 1500 on
    assert two.is_valid(nonce, 1499.0) and not two.is_valid(nonce, 1500.0)
    assert not two.is_valid(two.issue(1500.0), 1499.0)  # a nonce of the future is no good either
    assert not two.is_valid(nonce[:-1] + ("A" if nonce[-1] != "A" else "B"), 1000.0)


# --------------------------------------------------------------------------- introspection


def test_introspection_reports_the_binding(app: Flask, public: ClientInfo) -> None:
    rs, rs_secret = create_client(app, name="resource server", scopes="openid", can_introspect=True)
    key = DpopKey()
    bound = _exchange(app, public, None, key.proof("POST", TOKEN_URL)).json["access_token"]
    plain = _exchange(app, public, None, None).json["access_token"]
    auth = {"Authorization": "Basic " + base64.b64encode(
        f"{rs.client_id}:{rs_secret}".encode()).decode()}
    http = app.test_client()
    answer = http.post("/oauth/introspect", data={"token": bound}, headers=auth).json
    assert answer["active"] and answer["token_type"] == "DPoP"
    assert answer["cnf"] == {"jkt": key.jkt}
    answer = http.post("/oauth/introspect", data={"token": plain}, headers=auth).json
    assert answer["token_type"] == "Bearer" and "cnf" not in answer


# --------------------------------------------------------------------------- one-time jti


@pytest.mark.postgres
def test_racing_token_requests_with_one_proof_get_one_token(pg_engine: Engine) -> None:
    """The same proof sent by eight threads at once through HTTP: one answer 200, every other
    invalid_dpop_proof (each thread brings its own code, so only the proof is shared)."""
    app = make_app(pg_engine)
    public = create_client(app, public=True, scopes=SCOPES)[0]
    codes = [_code(app, public) for _ in range(8)]
    proof = DpopKey().proof("POST", TOKEN_URL)
    barrier = threading.Barrier(8)
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt(code: str, verifier: str) -> None:
        data = {"grant_type": "authorization_code", "code": code, "client_id": public.client_id,
                "redirect_uri": public.redirect_uris[0], "code_verifier": verifier}
        http = app.test_client()
        barrier.wait()
        status = http.post("/oauth/token", data=data, headers={"DPoP": proof}).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=attempt, args=c) for c in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [400] * 7


def test_the_cli_sets_dpop_bound_access_tokens(app: Flask) -> None:
    runner = app.test_cli_runner()
    created = runner.invoke(args=["oauth-sessions", "create-client", "--name", "Native",
                                  "--redirect-uri", "https://native.example/cb", "--public",
                                  "--dpop-bound-access-tokens", "--json"])
    assert created.exit_code == 0, created.output
    meta = json.loads(created.output)
    assert meta["dpop_bound_access_tokens"] is True
    clients = get_state(app).services.clients
    undo = runner.invoke(args=["oauth-sessions", "require-dpop", meta["client_id"], "--undo"])
    assert undo.exit_code == 0, undo.output
    client = clients.get(meta["client_id"], fresh=True)
    assert client is not None and not client.dpop_bound_access_tokens
    again = runner.invoke(args=["oauth-sessions", "require-dpop", meta["client_id"]])
    assert again.exit_code == 0
    client = clients.get(meta["client_id"], fresh=True)
    assert client is not None and client.dpop_bound_access_tokens
    unknown = runner.invoke(args=["oauth-sessions", "require-dpop", str(uuid.uuid4())])
    assert unknown.exit_code != 0 and "no client with that id" in unknown.output


def test_purge_forgets_the_ids_of_proofs_too_old_to_be_accepted(app: Flask, engine: Engine) -> None:
    ledger = DpopReplayLedger(engine)
    now = datetime.now(UTC)
    assert ledger.consume("k", "old", now - timedelta(seconds=1), now=now - timedelta(minutes=1))
    assert ledger.consume("k", "live", now + timedelta(minutes=2), now=now - timedelta(minutes=1))
    result = app.test_cli_runner().invoke(args=["oauth-sessions", "purge"])
    assert result.exit_code == 0, result.output
    assert "1 DPoP proofs" in result.output
    assert not ledger.consume("k", "live", now + timedelta(minutes=2))  # still remembered


def test_only_bound_refresh_tokens_read_the_binding(app: Flask, public: ClientInfo,
                                                    engine: Engine) -> None:
    """The refresh of an unbound session costs what it did before DPoP: no statement of it
    touches ``oauth_dpop_bindings`` (on PostgreSQL the read and the compare-and-swap bypass
    SQLAlchemy, but the binding read would not); a bound session's refresh reads it once."""
    key = DpopKey()
    plain = _exchange(app, public, None, None).json["refresh_token"]
    bound = _exchange(app, public, None, key.proof("POST", TOKEN_URL)).json["refresh_token"]
    with statements(engine) as seen:
        assert _refresh(app, public, plain, None).status_code == 200
        plain_reads = [s for s in seen if "oauth_dpop_bindings" in s]
        seen.clear()
        assert _refresh(app, public, bound, key.proof("POST", TOKEN_URL)).status_code == 200
        bound_reads = [s for s in seen if "oauth_dpop_bindings" in s]
    assert plain_reads == []
    assert len(bound_reads) == 1


def test_a_bound_refresh_token_revokes_its_session_without_a_proof(
        app: Flask, public: ClientInfo, engine: Engine) -> None:
    """RFC 7009 revokes by possession: ``/revoke`` asks no DPoP proof for a bound refresh token,
    so a thief without the key can end the session (never use it). Pinned on purpose: the
    DPoP guide says so, and revoking only ever ends a session."""
    key = DpopKey()
    body = _exchange(app, public, None, key.proof("POST", TOKEN_URL)).json
    sid = jwt_claims(body["access_token"])["sid"]
    assert body["refresh_token"].startswith("osb1_") and _row(engine, sid) is not None
    revoked = app.test_client().post("/oauth/revoke", data={
        "token": body["refresh_token"], "client_id": public.client_id})
    assert revoked.status_code == 200
    assert _row(engine, sid) is None and _binding(engine, sid) is None
    gone = _refresh(app, public, body["refresh_token"], key.proof("POST", TOKEN_URL))
    assert gone.status_code == 400 and gone.json["error"] == "invalid_grant"


def test_a_thief_with_an_old_bound_token_cannot_trigger_reuse_revocation(
        app: Flask, public: ClientInfo, engine: Engine) -> None:
    """Reuse of a superseded token revokes its session (RFC 9700 4.14.2), but only for whoever
    holds the key: the key is checked first, so without it the old token changes nothing."""
    key = DpopKey()
    start = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    with freeze_time(start) as clock:
        first = _exchange(app, public, None, key.proof("POST", TOKEN_URL)).json
        sid = jwt_claims(first["access_token"])["sid"]
        assert _refresh(app, public, first["refresh_token"],
                        key.proof("POST", TOKEN_URL)).status_code == 200
        clock.tick(timedelta(seconds=11))  # past the reuse interval (10 s): the old one is reuse
        before = _row(engine, sid)
        for proof in (None, DpopKey().proof("POST", TOKEN_URL)):
            refused = _refresh(app, public, first["refresh_token"], proof)
            assert refused.status_code == 400
            assert refused.json["error"] in ("invalid_dpop_proof", "invalid_grant")
            assert refused.json["error_description"] != "refresh token already used"
        assert _row(engine, sid) == before
        reuse = _refresh(app, public, first["refresh_token"], key.proof("POST", TOKEN_URL))
        assert reuse.json == {"error": "invalid_grant",
                              "error_description": "refresh token already used"}
    assert _row(engine, sid) is None and _binding(engine, sid) is None
