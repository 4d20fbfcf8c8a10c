"""Hardening: caching, framing, CSRF, exact redirect URIs, constant time, quiet logs, clear errors.

Each test names the rule it checks; all run on SQLite and PostgreSQL unless they touch no
database at all.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import pytest
from factories import (
    REDIRECT_URI,
    authorize_params,
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
    snapshot,
    user_headers,
)
from flask import Flask
from sqlalchemy import Engine, select

from oauth_sessions import OAuthSessions, get_state
from oauth_sessions.core.settings import ConfigurationError
from oauth_sessions.storage.models import OAuthClient, Session


@pytest.fixture
def app(engine: Engine) -> Flask:
    return make_app(engine)


def _tokens(app: Flask, engine: Engine, **extra: str) -> tuple[Any, str, dict[str, Any]]:
    client, secret = create_client(app, can_introspect=True)
    assert secret is not None
    user = create_user(engine)
    http = app.test_client()
    verifier, challenge = pkce_pair()
    query = obtain_code(http, client, user, challenge, **extra)
    response = exchange_code(http, client, secret, query["code"], verifier)
    assert response.status_code == 200
    return client, secret, {**response.json, "code": query["code"], "verifier": verifier,
                            "user": user, "response": response}


# --------------------------------------------------------------------------- caching (RFC 6749 5.1)


def _no_store(response: Any) -> None:
    assert response.headers.get("Cache-Control") == "no-store", dict(response.headers)
    assert response.headers.get("Pragma") == "no-cache", dict(response.headers)


def test_token_introspection_and_userinfo_answers_are_never_cached(app: Flask, engine: Engine) -> None:
    client, secret, tokens = _tokens(app, engine)
    http = app.test_client()
    _no_store(tokens["response"])
    auth = {"Authorization": basic_auth(client.client_id, secret)}
    _no_store(http.post("/oauth/token", data={"grant_type": "refresh_token",
                                              "refresh_token": tokens["refresh_token"]}, headers=auth))
    _no_store(http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x"},
                        headers=auth))
    _no_store(http.post("/oauth/introspect", data={"token": tokens["access_token"]}, headers=auth))
    userinfo = http.get("/oauth/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert userinfo.status_code == 200
    _no_store(userinfo)


def test_authorization_redirects_carrying_a_code_are_never_cached(app: Flask, engine: Engine) -> None:
    client, _ = create_client(app)
    user = create_user(engine)
    _, challenge = pkce_pair()
    http = app.test_client()
    page = http.get("/oauth/authorize", query_string=authorize_params(client, challenge),
                    headers=user_headers(user))
    form = dict(page.json["form_fields"], decision="approve")
    answer = http.post("/oauth/authorize", data=form, headers=user_headers(user))
    assert answer.status_code == 302 and "code=" in answer.headers["Location"]
    _no_store(page)
    _no_store(answer)


# --------------------------------------------------------------------------- clickjacking and CSRF


def test_the_consent_page_cannot_be_framed(app: Flask, engine: Engine) -> None:
    """RFC 6749 section 10.13: the authorization server must keep its pages out of frames."""
    client, _ = create_client(app)
    _, challenge = pkce_pair()
    page = app.test_client().get("/oauth/authorize", query_string=authorize_params(client, challenge),
                                 headers=user_headers(create_user(engine)))
    assert page.status_code == 200 and page.json["consent"] is True
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_a_host_content_security_policy_is_kept_and_framing_still_denied(engine: Engine) -> None:
    from factories import HeaderHost

    class PolicyHost(HeaderHost):
        def render_consent(self, request_info: Any) -> Any:
            response = super().render_consent(request_info)
            response.headers["Content-Security-Policy"] = "default-src 'self'"
            return response

    app = make_app(engine, host=PolicyHost())
    client, _ = create_client(app)
    _, challenge = pkce_pair()
    page = app.test_client().get("/oauth/authorize", query_string=authorize_params(client, challenge),
                                 headers=user_headers(create_user(engine)))
    assert page.headers["Content-Security-Policy"] == "default-src 'self'; frame-ancestors 'none'"


@pytest.mark.parametrize("tamper", ["missing", "forged", "other_user", "other_scope", "other_redirect"])
def test_consent_answers_without_their_own_csrf_ticket_are_refused(app: Flask, engine: Engine,
                                                                   tamper: str) -> None:
    """RFC 6749 section 10.12: the consent answer must be bound to the user agent's request."""
    client, _ = create_client(app, redirect_uris=[REDIRECT_URI, REDIRECT_URI + "2"])
    user, other = create_user(engine), create_user(engine)
    _, challenge = pkce_pair()
    http = app.test_client()
    page = http.get("/oauth/authorize", query_string=authorize_params(client, challenge),
                    headers=user_headers(user))
    form = dict(page.json["form_fields"], decision="approve")
    who = user
    if tamper == "missing":
        del form["consent_ticket"]
    elif tamper == "forged":
        form["consent_ticket"] = form["consent_ticket"][:-4] + "AAAA"
    elif tamper == "other_user":
        who = other
    elif tamper == "other_scope":
        form["scope"] = "openid"
    else:
        form["redirect_uri"] = REDIRECT_URI + "2"
    before = snapshot(engine)
    answer = http.post("/oauth/authorize", data=form, headers=user_headers(who))
    assert answer.status_code == 400
    assert answer.json == {"error": "invalid_request",
                           "error_description": "the consent form is invalid or has expired"}
    assert snapshot(engine) == before


# --------------------------------------------------------------------------- redirect URIs


@pytest.mark.parametrize("variant", [
    "https://client.example/cb/", "https://client.example/cb2", "https://client.example/c",
    "https://CLIENT.example/cb", "https://client.example/CB", "https://client.example/%63b",
    "https://client.example/cb?x=1", "https://client.example/cb#f", "https://client.example:443/cb",
    "http://client.example/cb", "https://client.example.evil.test/cb", "https://evil.test/cb",
    "https://client.example@evil.test/cb", "https://client.example/cb/../evil", "//evil.test/cb",
    "https://client.example/cb%2F..%2Fevil", "https://client.example/cb%00", " https://client.example/cb",
])
def test_only_the_exact_registered_redirect_uri_is_accepted(app: Flask, engine: Engine,
                                                            variant: str) -> None:
    """RFC 9700 section 4.1.3 / OAuth 2.1 section 2.3.1: exact string matching, and an
    unregistered URI is never redirected to (RFC 6749 section 4.1.2.1): no open redirect."""
    client, _ = create_client(app)
    _, challenge = pkce_pair()
    params = authorize_params(client, challenge, redirect_uri=variant)
    response = app.test_client().get("/oauth/authorize", query_string=params,
                                     headers=user_headers(create_user(engine)))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.json["error"] == "invalid_request"


def test_the_code_is_bound_to_its_redirect_uri(app: Flask, engine: Engine) -> None:
    """RFC 6749 section 4.1.3: redirect_uri at the token endpoint must be identical."""
    client, secret = create_client(app, redirect_uris=[REDIRECT_URI, REDIRECT_URI + "2"])
    assert secret is not None
    http = app.test_client()
    verifier, challenge = pkce_pair()
    query = obtain_code(http, client, create_user(engine), challenge)
    response = exchange_code(http, client, secret, query["code"], verifier, redirect_uri=REDIRECT_URI + "2")
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"


# --------------------------------------------------------------------------- one method per request


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke"])
def test_two_client_authentication_methods_in_one_request_are_refused(
        app: Flask, engine: Engine, path: str) -> None:
    """RFC 6749 section 2.3: "The client MUST NOT use more than one authentication method in each
    request." Basic plus a body secret is refused even when both are right, and changes nothing."""
    client, secret, tokens = _tokens(app, engine)
    data = {"client_secret": secret}
    data.update({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
                if path == "/oauth/token" else {"token": tokens["refresh_token"]})
    http = app.test_client()
    response = http.post(path, data=data, headers={"Authorization": basic_auth(client.client_id, secret)})
    assert response.status_code == 401 and response.json["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    with engine.connect() as conn:  # the session was neither rotated nor revoked
        counter = conn.execute(select(Session.__table__.c.refresh_token_counter)).scalar_one()
    assert counter == 0


# --------------------------------------------------------------------------- constant time


def test_secrets_tags_and_verifiers_are_compared_in_constant_time(
    app: Flask, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every comparison of a secret goes through ``hmac.compare_digest``: the client secret's
    hash, the refresh token's HMAC tag and the PKCE challenge are each seen by the spy."""
    seen: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    client, secret, tokens = _tokens(app, engine)
    with engine.connect() as conn:
        stored = conn.execute(select(OAuthClient.__table__.c.client_secret_hash)).scalar_one()
    refreshed = app.test_client().post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers={"Authorization": basic_auth(client.client_id, secret)})
    assert refreshed.status_code == 200
    flat = [x if isinstance(x, bytes) else str(x).encode() for pair in seen for x in pair]
    assert stored.encode() in flat  # client secret (sha256$...) compared with compare_digest
    assert any(len(x) == 32 and x not in {stored.encode()} for x in flat)  # the HMAC-SHA256 tag
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    assert create_s256_code_challenge(tokens["verifier"]).encode() in flat  # PKCE


# --------------------------------------------------------------------------- logs


def test_no_secret_token_or_code_is_ever_logged(app: Flask, engine: Engine,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A full flow at DEBUG, bad requests included: none of the secrets appears in any record."""
    caplog.set_level(logging.DEBUG)
    client, secret, tokens = _tokens(app, engine)
    http = app.test_client()
    auth = {"Authorization": basic_auth(client.client_id, secret)}
    refreshed = http.post("/oauth/token", data={"grant_type": "refresh_token",
                                                "refresh_token": tokens["refresh_token"]}, headers=auth)
    assert refreshed.status_code == 200
    http.post("/oauth/introspect", data={"token": tokens["access_token"]}, headers=auth)
    http.post("/oauth/introspect", data={"token": tokens["access_token"] + "x"}, headers=auth)
    http.get("/oauth/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    replayed = exchange_code(http, client, secret, tokens["code"], tokens["verifier"])
    assert replayed.status_code == 400
    reused = http.post("/oauth/token", data={"grant_type": "refresh_token",
                                             "refresh_token": tokens["refresh_token"]}, headers=auth)
    http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "osr1_bad"},
              headers={"Authorization": basic_auth(client.client_id, secret + "x")})
    http.post("/oauth/revoke", data={"token": refreshed.json["refresh_token"]}, headers=auth)
    assert reused.status_code == 400
    with engine.connect() as conn:
        keys = [k for k in conn.execute(select(Session.__table__.c.refresh_token_hmac_key)).scalars() if k]
    secrets_seen = [secret, tokens["code"], tokens["verifier"], tokens["access_token"],
                    tokens["refresh_token"], tokens["id_token"], refreshed.json["refresh_token"],
                    refreshed.json["access_token"], *keys]
    records = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert len(caplog.records) > 0  # the flow does log; it must not log these
    for value in secrets_seen:
        assert value not in records
        assert value[-24:] not in records  # nor a recognisable tail of one


# --------------------------------------------------------------------------- start-up errors


def test_missing_issuer_is_a_clear_startup_error(engine: Engine) -> None:
    with pytest.raises(ConfigurationError, match="OAUTH_SESSIONS_ISSUER is required"):
        OAuthSessions(Flask("x"), engine=engine)


def test_missing_database_is_a_clear_startup_error() -> None:
    with pytest.raises(ConfigurationError, match="OAUTH_SESSIONS_DATABASE_URL"):
        OAuthSessions(Flask("x"), issuer="https://id.example")


def test_an_encryption_key_id_without_its_key_is_a_clear_startup_error(engine: Engine) -> None:
    with pytest.raises(ConfigurationError, match="OAUTH_SESSIONS_ENCRYPTION_KEY_ID must name one of"):
        OAuthSessions(Flask("x"), engine=engine, issuer="https://id.example",
                      encryption_keys={"k1": "A" * 43}, encryption_key_id="k2")


def test_the_consent_page_without_a_secret_key_says_how_to_fix_it(engine: Engine) -> None:
    app = make_app(engine)
    app.config["SECRET_KEY"] = None
    app.secret_key = None
    client, _ = create_client(app)
    _, challenge = pkce_pair()
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        app.test_client().get("/oauth/authorize", query_string=authorize_params(client, challenge),
                              headers=user_headers(create_user(engine)))


def test_unknown_settings_are_named(engine: Engine) -> None:
    app = Flask("x")
    app.config["OAUTH_SESSIONS_ISUER"] = "https://id.example"
    with pytest.raises(ConfigurationError, match="OAUTH_SESSIONS_ISUER is not a setting"):
        OAuthSessions(app, engine=engine)


def test_issue19_item7_a_misspelt_setting_gets_did_you_mean(engine: Engine) -> None:
    app = Flask("x")
    app.config["OAUTH_SESSIONS_ISSUER"] = "https://id.example"
    app.config["OAUTH_SESSIONS_ACESS_TOKEN_TTL"] = 600
    with pytest.raises(ConfigurationError) as caught:
        OAuthSessions(app, engine=engine)
    assert str(caught.value) == ("OAUTH_SESSIONS_ACESS_TOKEN_TTL is not a setting of oauth_sessions; "
                                 "did you mean ACCESS_TOKEN_LIFETIME?")
    with pytest.raises(ConfigurationError, match=r"did you mean access_token_lifetime=\?"):
        OAuthSessions(Flask("y"), engine=engine, issuer="https://id.example", acess_token_ttl=600)


def test_get_state_before_init_says_what_to_call() -> None:
    with pytest.raises(RuntimeError, match=r"call OAuthSessions\(app\)"):
        get_state(Flask("x"))


# --------------------------------------------------------------------------- SECURITY.md


def test_every_test_security_md_points_to_exists() -> None:
    """SECURITY.md names ``tests/<file>.py::<test>`` (or ``::<test>`` after a file in the same
    cell); each must be a test function in that file, so the threat model cannot go stale."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    text_ = (root / "SECURITY.md").read_text()
    named = 0
    for row in (line for line in text_.splitlines() if line.startswith("| **")):
        current: str | None = None
        for file, name in re.findall(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", row):
            current = file or current
            if not name:
                continue
            assert current is not None, f"{name} is named without its file"
            assert f"def {name}(" in (root / current).read_text(), f"{current}::{name} does not exist"
            named += 1
    assert named >= 30
