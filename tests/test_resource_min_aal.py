"""A registered resource server's ``min_aal`` holds wherever a token for it is judged, on SQLite
and PostgreSQL: the resource helper in both modes, introspection by a client with
``can_introspect``, and the refresh grant, beside authorize and the server's own introspection.

Every test crosses the exact boundary of PAY (registered with ``min_aal`` aal2): a session at
aal2 passes; the same session lowered to aal1 in ``auth.sessions`` (as Supabase Auth does when
a factor is removed) is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from factories import basic_auth, snapshot, statements
from flask import Flask
from sqlalchemy import Engine, update
from test_resource_audience import bearer
from test_resource_indicators import API, ISSUER, PAY, Setup, claims, setup
from test_resource_modes import live
from werkzeug.test import TestResponse

from oauth_sessions import get_state
from oauth_sessions.core.types import Aal
from oauth_sessions.flask.resource import ResourceProtector, current_token
from oauth_sessions.storage.session_rows import SESSIONS

PAYMENTS = "payments offline_access"


def pay_tokens(s: Setup, resources: list[str] | None = None,
               scope: str = PAYMENTS) -> dict[str, Any]:
    """Tokens of a session signed in at aal2, the access token for PAY."""
    return s.tokens(resources or [PAY], [PAY], scope=scope, aal="aal2", amr="password,totp")


def lower_to_aal1(engine: Engine, token: str) -> None:
    """The factor is gone: ``auth.sessions`` says aal1 now (a direct write, no library call)."""
    sid = uuid.UUID(claims(token)["sid"])
    with engine.begin() as conn:
        done = conn.execute(update(SESSIONS).where(SESSIONS.c.id == sid)
                            .values(aal=Aal.AAL1, factor_id=None)).rowcount
    assert done == 1


def protect(app: Flask, protector: ResourceProtector, path: str = "/pay") -> None:
    @app.get(path, endpoint=path)
    @protector.require(scope="payments")
    def view() -> dict[str, Any]:
        return {"aal": current_token().aal.value}


def refused_once_lowered(engine: Engine, token: str,
                         get: Callable[[], TestResponse]) -> TestResponse:
    """``get`` passes with the session at aal2; the answer once it is lowered to aal1."""
    passed = get()
    assert passed.status_code == 200 and passed.json == {"aal": "aal2"}
    lower_to_aal1(engine, token)
    return get()


def introspecting_client(s: Setup) -> tuple[str, str]:
    """The tokens' own client, allowed to introspect: the one ordinary client that sees them."""
    assert get_state(s.app).services.clients.update_metadata(s.client.id, can_introspect=True)
    return s.client.client_id, s.secret


# --------------------------------------------------------------------------- the resource helper


def test_local_mode_asks_for_step_up_once_the_session_is_below_the_servers_minimum(
        engine: Engine) -> None:
    s = setup(engine)
    protect(s.app, ResourceProtector.local(s.app, resource=PAY))
    token = pay_tokens(s)["access_token"]
    refused = refused_once_lowered(engine, token, lambda: s.http.get("/pay", headers=bearer(token)))
    assert refused.status_code == 401
    challenge = refused.headers["WWW-Authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge
    assert 'acr_values="aal2"' in challenge
    assert refused.json["error"] == "insufficient_user_authentication"


def test_local_mode_holds_default_audience_tokens_to_the_servers_minimum_too(
        engine: Engine) -> None:
    """A helper for PAY that accepts tokens minted without ``resource`` judges them as tokens
    used at PAY: its registered minimum applies, as ``AUDIENCE_MIN_AAL`` for PAY does."""
    s = setup(engine)
    protect(s.app, ResourceProtector.local(s.app, resource=PAY))
    token = s.tokens([], scope=PAYMENTS, aal="aal2", amr="password,totp")["access_token"]
    assert claims(token)["aud"] == ISSUER
    refused = refused_once_lowered(engine, token, lambda: s.http.get("/pay", headers=bearer(token)))
    assert refused.status_code == 401
    assert 'acr_values="aal2"' in refused.headers["WWW-Authenticate"]


def test_remote_mode_with_a_client_credential_refuses_below_the_servers_minimum(
        engine: Engine) -> None:
    s = setup(engine)
    client_id, secret = introspecting_client(s)
    token = pay_tokens(s)["access_token"]
    with live(s.app) as base:
        protector = ResourceProtector.remote(base + "/oauth/introspect", client_id, secret,
                                             resource=PAY)
        try:
            api = Flask("pay")
            protect(api, protector)
            http = api.test_client()
            refused = refused_once_lowered(engine, token,
                                           lambda: http.get("/pay", headers=bearer(token)))
        finally:
            protector.close()
    # The endpoint answers {"active": false}, as it does under AUDIENCE_MIN_AAL.
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


# --------------------------------------------------------------------------- introspection


def test_a_client_that_introspects_sees_the_token_inactive_below_the_servers_minimum(
        engine: Engine) -> None:
    s = setup(engine)
    client_id, secret = introspecting_client(s)
    token = pay_tokens(s)["access_token"]

    def introspect() -> Any:
        response = s.http.post("/oauth/introspect", data={"token": token},
                               headers={"Authorization": basic_auth(client_id, secret)})
        assert response.status_code == 200
        return response.json

    active = introspect()
    assert active["active"] is True and active["aud"] == PAY and active["aal"] == "aal2"
    lower_to_aal1(engine, token)
    assert introspect() == {"active": False}
    assert s.introspect_as(PAY, token) == {"active": False}  # the server's own answer agrees


def test_tokens_of_the_default_audience_cost_no_resource_server_lookup(engine: Engine) -> None:
    """Only a token meant for a resource server needs the registry; with every cache off, the
    default audience's tokens at /introspect and /userinfo read nothing of it."""
    s = setup(engine, client_cache_seconds=0)
    client_id, secret = introspecting_client(s)
    default = s.tokens([])["access_token"]
    for_pay = pay_tokens(s)["access_token"]

    def registry_reads(token: str) -> int:
        with statements(engine) as seen:
            answer = s.http.post("/oauth/introspect", data={"token": token},
                                 headers={"Authorization": basic_auth(client_id, secret)})
            assert answer.json["active"] is True
            if token == default:
                assert s.http.get("/oauth/userinfo", headers=bearer(token)).status_code == 200
        return sum("oauth_resource_servers" in statement for statement in seen)

    assert registry_reads(default) == 0
    assert registry_reads(for_pay) >= 1  # the counter can see a lookup when there is one


# --------------------------------------------------------------------------- refresh


def test_refresh_below_the_servers_minimum_is_refused_and_changes_nothing(engine: Engine) -> None:
    s = setup(engine)
    tokens = pay_tokens(s, [PAY, API], scope="profile payments offline_access")
    renewed = s.refresh(tokens["refresh_token"], [PAY])
    assert renewed.status_code == 200, renewed.json  # aal2: the minimum itself passes
    assert claims(renewed.json["access_token"])["aal"] == "aal2"
    refresh_token, access_token = renewed.json["refresh_token"], renewed.json["access_token"]
    lower_to_aal1(engine, access_token)
    before = snapshot(engine)
    refused = s.refresh(refresh_token, [PAY])
    assert refused.status_code == 400
    assert refused.json["error"] == "invalid_grant"
    assert "authentication level" in refused.json["error_description"]
    # Nothing written: the counter did not move and the session was not revoked ...
    assert snapshot(engine) == before
    sid = uuid.UUID(claims(access_token)["sid"])
    assert get_state(s.app).services.sessions.get(sid) is not None
    # ... so the same refresh token still serves the granted resource that asks no aal2.
    for_api = s.refresh(refresh_token, [API])
    assert for_api.status_code == 200, for_api.json
    assert claims(for_api.json["access_token"])["aud"] == API
    assert claims(for_api.json["access_token"])["aal"] == "aal1"
