"""Pairwise subject identifiers (issue 20 item 7; OpenID Connect Core 1.0 section 8).

A client registered with ``subject_type=pairwise`` sees each user under a ``sub`` of its sector,
the one host of its redirect URIs (never fetched from a ``sector_identifier_uri``): in its ID
tokens, at UserInfo and in its logout tokens, and its ``id_token_hint`` is matched by that sub.
Clients of one sector share it; clients of two sectors cannot correlate users by it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from factories import (
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    jwt_claims,
    make_app,
    obtain_code,
    pkce_pair,
    snapshot,
    user_headers,
)
from flask import Flask
from sqlalchemy import Engine
from test_backchannel import Receiver, _verify
from test_logout import RecordingHost

from oauth_sessions import get_state
from oauth_sessions.core.settings import ConfigurationError, load_settings
from oauth_sessions.core.subjects import pairwise_subject, subject_for
from oauth_sessions.protocol.backchannel import BackchannelSender
from oauth_sessions.storage.clients import ClientInfo

SALT = "pairwise-salt-for-tests-" + "x" * 16
ISSUER = "http://127.0.0.1:5000"


def _app(engine: Engine, **options: Any) -> Flask:
    options.setdefault("pairwise_salt", SALT)
    return make_app(engine, dynamic_registration=True, **options)


def _register(app: Flask, *uris: str, **metadata: Any) -> Any:
    return app.test_client().post("/oauth/register", json={
        "redirect_uris": list(uris or ("https://rp.example/cb",)), "client_name": "RP",
        "grant_types": ["authorization_code", "refresh_token"], **metadata})


def _client(app: Flask, *uris: str, **metadata: Any) -> tuple[ClientInfo, str]:
    response = _register(app, *uris, subject_type="pairwise", **metadata)
    assert response.status_code == 201, response.json
    info = get_state(app).services.clients.get(response.json["client_id"], fresh=True)
    assert info is not None
    return info, response.json["client_secret"]


def _tokens(app: Flask, client: ClientInfo, secret: str | None, user: uuid.UUID) -> dict[str, Any]:
    http = app.test_client()
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge, scope="openid email offline_access")["code"]
    response = exchange_code(http, client, secret, code, verifier)
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


# --------------------------------------------------------------------------- the rule


def test_pairwise_subject_is_stable_per_sector_and_salt_and_says_nothing_of_the_user() -> None:
    user = uuid.UUID("6f1c2b9e-2a4b-4a51-9d43-1c6f0b8f7a10")
    sub = pairwise_subject("rp.example", user, SALT)
    assert sub == pairwise_subject("RP.example", user, SALT)  # host names are case-insensitive
    assert len(sub) == 43 and str(user) not in sub and user.hex not in sub
    assert sub != pairwise_subject("other.example", user, SALT)
    assert sub != pairwise_subject("rp.example", user, SALT + "!")
    assert sub != pairwise_subject("rp.example", uuid.uuid4(), SALT)
    assert subject_for(user, None, SALT) == str(user)
    with pytest.raises(RuntimeError, match="OAUTH_SESSIONS_PAIRWISE_SALT"):
        subject_for(user, "rp.example", None)


def test_discovery_offers_pairwise_only_with_a_salt(engine: Engine) -> None:
    def types(app: Flask) -> Any:
        return app.test_client().get("/.well-known/openid-configuration").json[
            "subject_types_supported"]

    assert types(make_app(engine)) == ["public"]
    assert types(_app(engine)) == ["public", "pairwise"]


@pytest.mark.parametrize("salt", ["short", "", 12])
def test_a_weak_salt_is_refused_at_start_up(salt: Any) -> None:
    with pytest.raises(ConfigurationError, match="OAUTH_SESSIONS_PAIRWISE_SALT"):
        load_settings({"OAUTH_SESSIONS_ISSUER": ISSUER, "OAUTH_SESSIONS_PAIRWISE_SALT": salt
                       or " "})


# --------------------------------------------------------------------------- through HTTP


def test_a_pairwise_client_gets_its_own_sub_in_id_token_userinfo_and_refresh(
        engine: Engine) -> None:
    app = _app(engine)
    client, secret = _client(app)
    assert client.sector_identifier == "rp.example" and client.subject_type == "pairwise"
    user = create_user(engine)
    body = _tokens(app, client, secret, user)
    expected = pairwise_subject("rp.example", user, SALT)
    id_claims = jwt_claims(body["id_token"])
    assert id_claims["sub"] == expected != str(user)
    userinfo = app.test_client().get("/oauth/userinfo", headers={
        "Authorization": "Bearer " + body["access_token"]})
    assert userinfo.status_code == 200 and userinfo.json["sub"] == expected  # OIDC Core 5.3.2
    assert "email" in userinfo.json
    # Access tokens are for resource servers, which need the account (documented choice).
    assert jwt_claims(body["access_token"])["sub"] == str(user)
    refreshed = app.test_client().post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers={"Authorization": basic_auth(client.client_id, secret)})
    assert refreshed.status_code == 200 and jwt_claims(refreshed.json["id_token"])["sub"] == expected


def test_clients_of_one_sector_share_a_sub_and_other_sectors_and_public_clients_do_not(
        engine: Engine) -> None:
    app = _app(engine)
    user = create_user(engine)
    first, first_secret = _client(app, "https://rp.example/cb")
    second, second_secret = _client(app, "https://rp.example/other", "https://RP.example/x")
    other, other_secret = _client(app, "https://elsewhere.example/cb")
    public, public_secret = create_client(app, redirect_uris=["https://rp.example/cb"])
    subs = [jwt_claims(_tokens(app, c, s, user)["id_token"])["sub"] for c, s in (
        (first, first_secret), (second, second_secret), (other, other_secret),
        (public, public_secret))]
    assert subs[0] == subs[1]
    assert subs[2] not in (subs[0], str(user))
    assert subs[3] == str(user)


def test_registration_answer_and_rfc7592_keep_the_subject_type(engine: Engine) -> None:
    app = _app(engine)
    created = _register(app, subject_type="pairwise").json
    assert created["subject_type"] == "pairwise"
    http = app.test_client()
    uri = created["registration_client_uri"][len(ISSUER):]
    token = created["registration_access_token"]
    base = {"client_id": created["client_id"], "redirect_uris": ["https://rp.example/new"],
            "grant_types": ["authorization_code", "refresh_token"], "subject_type": "pairwise"}
    moved = http.put(uri, json={**base, "redirect_uris": ["https://moved.example/cb"]},
                     headers={"Authorization": f"Bearer {token}"})
    assert moved.status_code == 400 and moved.json == {
        "error": "invalid_client_metadata",
        "error_description": "a pairwise client's redirect URIs must stay on rp.example, its "
                             "sector identifier"}
    switched = http.put(uri, json={**base, "subject_type": "public"},
                        headers={"Authorization": f"Bearer {token}"})
    assert switched.status_code == 400
    assert "cannot change its subject_type (pairwise)" in switched.json["error_description"]
    same_host = http.put(uri, json=base, headers={"Authorization": f"Bearer {token}"})
    assert same_host.status_code == 200, same_host.json
    assert same_host.json["redirect_uris"] == ["https://rp.example/new"]


@pytest.mark.parametrize(("metadata", "description"), [
    ({"redirect_uris": ["https://a.example/cb", "https://b.example/cb"]},
     "a pairwise client's redirect URIs must all be on one host (its sector identifier); "
     "sector_identifier_uri is not supported"),
    ({"sector_identifier_uri": "https://rp.example/sector.json"},
     "sector_identifier_uri is not supported: this server fetches no client documents; a "
     "pairwise client's sector is the one host of its redirect URIs"),
    ({"subject_type": "ppid"}, "subject_type must be public or pairwise"),
])
def test_hostile_pairwise_registrations_are_refused_and_write_nothing(
        engine: Engine, metadata: dict[str, Any], description: str) -> None:
    app = _app(engine)
    get_state(app).services.keys.keyset()
    before = snapshot(engine)
    body = {"redirect_uris": ["https://rp.example/cb"], "subject_type": "pairwise", **metadata}
    response = app.test_client().post("/oauth/register", json=body)
    assert response.status_code == 400
    assert response.json == {"error": "invalid_client_metadata", "error_description": description}
    assert snapshot(engine) == before


def test_id_token_hint_of_a_pairwise_client_ends_its_session(engine: Engine) -> None:
    host = RecordingHost()
    app = _app(engine, host=host)
    client, secret = _client(app)
    user = create_user(engine)
    body = _tokens(app, client, secret, user)
    sid = uuid.UUID(jwt_claims(body["id_token"])["sid"])
    response = app.test_client().get("/oauth/logout", headers=user_headers(user),
                                     query_string={"id_token_hint": body["id_token"]})
    assert response.status_code in (200, 302)
    assert get_state(app).services.sessions.get(sid) is None
    assert host.logged_out_users == [user]


def test_logout_tokens_of_a_pairwise_client_carry_its_sub(engine: Engine) -> None:
    receiver = Receiver()
    sender = BackchannelSender(timeout=1.0, attempts=2, backoff=0.05)
    try:
        app = _app(engine, backchannel=sender)
        client, secret = _client(app, backchannel_logout_uri=receiver.url("/bc"))
        user = create_user(engine)
        id_claims = jwt_claims(_tokens(app, client, secret, user)["id_token"])
        assert get_state(app).services.sessions.revoke(uuid.UUID(id_claims["sid"]), reason="test")
        assert sender.wait_idle(10)
        (token,) = receiver.accepted("/bc")
        # the sector is the redirect URIs' host, not the back-channel receiver's
        assert _verify(app, token)["sub"] == id_claims["sub"] == pairwise_subject(
            "rp.example", user, SALT)
    finally:
        sender.close()
        receiver.close()


def test_start_up_refuses_a_missing_salt_once_pairwise_clients_exist(engine: Engine) -> None:
    _client(_app(engine))
    with pytest.raises(ConfigurationError, match="OAUTH_SESSIONS_PAIRWISE_SALT is not set"):
        make_app(engine)


def test_cli_creates_pairwise_clients_and_refuses_without_a_salt(engine: Engine) -> None:
    args = ["oauth-sessions", "create-client", "--name", "CLI RP", "--redirect-uri",
            "https://cli.example/cb", "--pairwise", "--json"]
    result = _app(engine).test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["subject_type"] == "pairwise"
    # a second provider without the salt cannot even start now (the client above exists)
    with pytest.raises(ConfigurationError):
        make_app(engine)


def test_cli_pairwise_without_a_salt_is_one_line(engine: Engine) -> None:
    app = make_app(engine)
    result = app.test_cli_runner().invoke(args=[
        "oauth-sessions", "create-client", "--name", "CLI RP", "--redirect-uri",
        "https://cli.example/cb", "--pairwise"])
    assert result.exit_code != 0
    assert [line for line in result.output.splitlines() if line.startswith("Error:")] == [
        "Error: --pairwise needs OAUTH_SESSIONS_PAIRWISE_SALT (a secret of 32+ characters that "
        "must never change); set it first"]
