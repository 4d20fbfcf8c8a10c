"""Dynamic registration that common relying parties survive (issue 20 item 5).

* OpenID Connect Dynamic Client Registration 1.0 has no ``scope`` member, so a relying party
  built on it registers none and then asks for ``openid profile email``: it gets the standard
  OpenID scopes (``OAUTH_SESSIONS_REGISTRATION_DEFAULT_SCOPE``), plus ``offline_access`` when
  it registered the refresh grant.
* RFC 6749 section 3.3: the server "MAY fully or partially ignore the scope requested by the
  client"; an authorization request for more than the client may have is answered with the
  allowed subset, and the token response names the scope issued. Only a request of which
  nothing allowed remains is ``invalid_scope``.
"""

from __future__ import annotations

from typing import Any

import pytest
from factories import (
    ISSUER,
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
    query_of,
    snapshot,
    user_headers,
)
from flask import Flask
from sqlalchemy import Engine

from oauth_sessions import get_state
from oauth_sessions.core.settings import ConfigurationError, load_settings
from oauth_sessions.storage.clients import ClientInfo

STANDARD = "openid profile email address phone"
RP = {"redirect_uris": ["https://rp.example/cb"], "client_name": "RP"}


def _register(app: Flask, **metadata: Any) -> tuple[ClientInfo, dict[str, Any]]:
    response = app.test_client().post("/oauth/register", json={**RP, **metadata})
    assert response.status_code == 201, response.json
    info = get_state(app).services.clients.get(response.json["client_id"], fresh=True)
    assert info is not None
    return info, response.json


def _token(app: Flask, engine: Engine, client: ClientInfo, secret: str | None,
           scope: str) -> Any:
    http = app.test_client()
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, create_user(engine), challenge, scope=scope)["code"]
    return exchange_code(http, client, secret, code, verifier)


# --------------------------------------------------------------------------- registration


def test_a_client_registering_no_scope_gets_the_standard_openid_scopes(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    info, body = _register(app)
    assert info.scopes == tuple(STANDARD.split())
    assert body["scope"] == STANDARD  # RFC 7591 3.2.1: the registered value is returned
    # ... and its first request for profile email, which used to be invalid_scope, succeeds.
    response = _token(app, engine, info, body["client_secret"], "openid profile email")
    assert response.status_code == 200, response.json
    assert response.json["scope"] == "openid profile email"
    userinfo = app.test_client().get("/oauth/userinfo", headers={
        "Authorization": "Bearer " + response.json["access_token"]})
    assert userinfo.status_code == 200 and "email" in userinfo.json and "name" in userinfo.json


def test_a_client_registering_the_refresh_grant_also_gets_offline_access(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    info, body = _register(app, grant_types=["authorization_code", "refresh_token"])
    assert body["scope"] == STANDARD + " offline_access"
    response = _token(app, engine, info, body["client_secret"], "openid offline_access")
    assert response.status_code == 200 and "refresh_token" in response.json


def test_the_default_is_a_setting(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True, registration_default_scope="openid email")
    info, body = _register(app)
    assert info.scopes == ("openid", "email") and body["scope"] == "openid email"
    # a scope named in SCOPE_MIN_AAL is one a dynamic client may have
    app = make_app(engine, dynamic_registration=True, scope_min_aal={"payments": "aal2"},
                   registration_default_scope="openid payments")
    assert _register(app)[0].scopes == ("openid", "payments")


def test_an_explicit_scope_is_kept_as_registered(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    info, body = _register(app, scope="openid")
    assert info.scopes == ("openid",) and body["scope"] == "openid"


@pytest.mark.parametrize(("value", "message"), [
    ("openid admin", "names admin, which a dynamically registered client may not have"),
    ("openid\x01", "must list RFC 6749 scope tokens"),
    ("", "must list RFC 6749 scope tokens"),
    (["openid"], "must be a space-separated scope string"),
])
def test_a_bad_default_scope_setting_names_the_key_and_the_fix(value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match="OAUTH_SESSIONS_REGISTRATION_DEFAULT_SCOPE") as err:
        load_settings({"OAUTH_SESSIONS_ISSUER": ISSUER,
                       "OAUTH_SESSIONS_REGISTRATION_DEFAULT_SCOPE": value})
    assert message in str(err.value)


def test_an_unsupported_registered_scope_is_refused_naming_the_supported_ones(
        engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    get_state(app).services.keys.keyset()  # signing keys exist before the snapshot
    before = snapshot(engine)
    response = app.test_client().post("/oauth/register", json={**RP, "scope": "openid admin"})
    assert response.status_code == 400
    assert response.json == {
        "error": "invalid_client_metadata",
        "error_description": "scope must list supported scopes only: address email offline_access "
                             "openid phone profile"}
    assert snapshot(engine) == before


# --------------------------------------------------------------------------- authorization


def test_a_request_for_more_than_allowed_gets_the_allowed_subset_and_says_so(
        engine: Engine) -> None:
    app = make_app(engine)
    client, secret = create_client(app, scopes="openid profile offline_access")
    http = app.test_client()
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    asked = "openid profile email payments offline_access"
    consent = http.get("/oauth/authorize", headers=user_headers(user), query_string={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0], "scope": asked, "state": "s",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    assert consent.status_code == 200 and consent.json["consent"] is True
    assert consent.json["scopes"] == ["openid", "profile", "offline_access"]  # the user sees those
    code = obtain_code(http, client, user, challenge, scope=asked)["code"]
    response = exchange_code(http, client, secret, code, verifier)
    assert response.status_code == 200, response.json
    # RFC 6749 5.1: the issued scope differs from the request, so it is in the response.
    assert response.json["scope"] == "openid profile offline_access"
    refreshed = http.post("/oauth/token", data={"grant_type": "refresh_token",
                                                "refresh_token": response.json["refresh_token"]},
                          headers={"Authorization": _basic(client, secret)})
    assert refreshed.status_code == 200 and refreshed.json["scope"] == "openid profile offline_access"


def _basic(client: ClientInfo, secret: str | None) -> str:
    assert secret is not None
    return basic_auth(client.client_id, secret)


def test_a_request_of_which_nothing_allowed_remains_is_invalid_scope_and_writes_nothing(
        engine: Engine) -> None:
    app = make_app(engine)
    client, _ = create_client(app, scopes="openid profile")
    http = app.test_client()
    user = create_user(engine)
    _, challenge = pkce_pair()
    before = snapshot(engine)
    response = http.get("/oauth/authorize", headers=user_headers(user), query_string={
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0], "scope": "email payments", "state": "s",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    assert response.status_code == 302
    query = query_of(response.headers["Location"])
    assert query["error"] == "invalid_scope" and query["state"] == "s"
    assert query["error_description"] == ("none of the requested scopes is registered for this "
                                          "client (it may ask for: openid profile)")
    assert "code" not in query
    assert snapshot(engine) == before


def test_a_refresh_asking_for_more_than_granted_is_still_refused(engine: Engine) -> None:
    """RFC 6749 section 6: a refresh may not ask for a scope not originally granted."""
    app = make_app(engine)
    client, secret = create_client(app, scopes="openid profile email offline_access")
    response = _token(app, engine, client, secret, "openid offline_access")
    assert response.status_code == 200
    widened = app.test_client().post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": response.json["refresh_token"],
        "scope": "openid email offline_access"}, headers={"Authorization": _basic(client, secret)})
    assert widened.status_code == 400 and widened.json["error"] == "invalid_scope"
