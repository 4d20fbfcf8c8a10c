"""The authorization endpoint (RFC 6749 4.1.1/4.1.2, RFC 7636, RFC 9207, OIDC Core 3.1.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from factories import (
    ISSUER,
    authorize_params,
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
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import Engine

from oauth_sessions.storage.clients import ClientInfo


@pytest.fixture
def setup(engine: Engine) -> tuple[Flask, FlaskClient, ClientInfo, str]:
    app = make_app(engine)
    client, _ = create_client(app)
    return app, app.test_client(), client, pkce_pair()[1]


def _redirect_error(response, client: ClientInfo) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(client.redirect_uris[0] + "?")
    return query_of(location)


# ------------------------------------------------------------------ never redirect to a bad URI


@pytest.mark.parametrize("change", [
    {"client_id": "00000000-0000-4000-8000-000000000000"},
    {"client_id": "not-a-client"},
    {"client_id": ""},
    {"redirect_uri": "https://evil.example/cb"},
    {"redirect_uri": "https://client.example/cb/"},
    {"redirect_uri": "https://client.example/cb?x=1"},
    {"redirect_uri": ""},
])
def test_unknown_client_or_unregistered_redirect_uri_is_shown_never_redirected(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str],
        change: dict[str, str]) -> None:
    _, http, client, challenge = setup
    user = create_user(engine)
    before = snapshot(engine)
    response = http.get("/oauth/authorize", query_string=authorize_params(client, challenge, **change),
                        headers=user_headers(user))
    assert response.status_code == 400 and "Location" not in response.headers
    assert response.json["error"] == "invalid_request"
    assert snapshot(engine) == before


def test_missing_redirect_uri_is_refused_even_with_one_registered(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    _, http, client, challenge = setup
    params = authorize_params(client, challenge)
    del params["redirect_uri"]
    response = http.get("/oauth/authorize", query_string=params, headers=user_headers(create_user(engine)))
    assert response.status_code == 400 and "Location" not in response.headers


# ------------------------------------------------------------------ errors sent back by redirect


@pytest.mark.parametrize(("change", "error"), [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"response_type": ""}, "invalid_request"),
    ({"code_challenge": ""}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": ""}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"scope": "admin payments"}, "invalid_scope"),  # nothing registered remains
    ({"scope": "openid\\x"}, "invalid_scope"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "sometimes"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"max_age": "ten"}, "invalid_request"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"request_uri": "https://client.example/r"}, "request_uri_not_supported"),
    ({"nonce": "n" * 513}, "invalid_request"),
])
def test_bad_request_with_valid_redirect_uri_redirects_error_state_and_iss(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str],
        change: dict[str, str], error: str) -> None:
    _, http, client, challenge = setup
    user = create_user(engine)
    before = snapshot(engine)
    response = http.get("/oauth/authorize", query_string=authorize_params(
        client, challenge, state="keep-me", **change), headers=user_headers(user))
    query = _redirect_error(response, client)
    assert query["error"] == error
    assert query["state"] == "keep-me"
    assert query["iss"] == ISSUER
    assert "code" not in query
    assert snapshot(engine) == before


def test_missing_code_challenge_method_is_a_plain_downgrade_and_refused(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    """RFC 7636 4.3: no method means plain; OAuth 2.1 servers refuse plain."""
    _, http, client, challenge = setup
    params = authorize_params(client, challenge)
    del params["code_challenge_method"]
    query = _redirect_error(http.get("/oauth/authorize", query_string=params,
                                     headers=user_headers(create_user(engine))), client)
    assert query["error"] == "invalid_request"
    assert query["error_description"] == "code_challenge_method must be S256"


def test_client_without_the_code_grant_is_unauthorized(engine: Engine) -> None:
    app = make_app(engine)
    client, _ = create_client(app, grant_types=["refresh_token"])
    response = app.test_client().get("/oauth/authorize", query_string=authorize_params(
        client, pkce_pair()[1]), headers=user_headers(create_user(engine)))
    assert _redirect_error(response, client)["error"] == "unauthorized_client"


# ------------------------------------------------------------------ success response


def test_success_carries_code_state_and_iss_of_this_issuer(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    """RFC 9207 section 2: ``iss`` lets the client detect a mix-up between providers."""
    _, http, client, challenge = setup
    query = obtain_code(http, client, create_user(engine), challenge, state="s-1")
    assert set(query) == {"code", "state", "iss"}
    assert query["state"] == "s-1" and query["iss"] == ISSUER
    other = make_app(engine, issuer="http://localhost:6000")
    other_client, _ = create_client(other)
    other_query = obtain_code(other.test_client(), other_client, create_user(engine), challenge)
    assert other_query["iss"] == "http://localhost:6000" != query["iss"]


def test_state_is_optional_and_absent_when_not_sent(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    _, http, client, challenge = setup
    query = obtain_code(http, client, create_user(engine), challenge, state="")
    assert "state" not in query and "code" in query


def test_redirect_uri_with_query_keeps_its_query(engine: Engine) -> None:
    app = make_app(engine)
    client, _ = create_client(app, redirect_uris=["https://client.example/cb?tenant=7"])
    query = obtain_code(app.test_client(), client, create_user(engine), pkce_pair()[1])
    assert query["tenant"] == "7" and "code" in query


# ------------------------------------------------------------------ sign-in: prompt and max_age


def test_signed_out_user_is_sent_to_the_host_login_and_back(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    _, http, client, challenge = setup
    params = authorize_params(client, challenge)
    response = http.get("/oauth/authorize", query_string=params)
    assert response.status_code == 302
    login = urlsplit(response.headers["Location"])
    assert login.path == "/test-login"
    next_url = query_of(response.headers["Location"])["next"]
    assert query_of(next_url) == params
    user = create_user(engine)
    back = http.get(next_url, headers=user_headers(user))
    assert back.status_code == 200 and back.json["consent"] is True


def test_prompt_none_answers_login_required_without_interaction(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    _, http, client, challenge = setup
    response = http.get("/oauth/authorize", query_string=authorize_params(client, challenge, prompt="none"))
    assert _redirect_error(response, client)["error"] == "login_required"


def test_prompt_none_answers_consent_required_when_not_granted(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    _, http, client, challenge = setup
    response = http.get("/oauth/authorize", headers=user_headers(create_user(engine)),
                        query_string=authorize_params(client, challenge, prompt="none"))
    assert _redirect_error(response, client)["error"] == "consent_required"


def test_prompt_none_succeeds_silently_once_consented(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    _, http, client, challenge = setup
    user = create_user(engine)
    obtain_code(http, client, user, challenge)
    response = http.get("/oauth/authorize", headers=user_headers(user),
                        query_string=authorize_params(client, challenge, prompt="none"))
    assert response.status_code == 302 and "code" in query_of(response.headers["Location"])


def test_prompt_login_forces_a_fresh_login_once(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    _, http, client, challenge = setup
    user = create_user(engine)
    obtain_code(http, client, user, challenge)
    response = http.get("/oauth/authorize", headers=user_headers(user),
                        query_string=authorize_params(client, challenge, prompt="login"))
    assert urlsplit(response.headers["Location"]).path == "/test-login"
    assert query_of(response.headers["Location"])["prompt"] == "login"
    next_url = query_of(response.headers["Location"])["next"]
    assert "prompt" not in query_of(next_url)  # else the user would loop through login forever
    back = http.get(next_url, headers=user_headers(user))
    assert back.status_code == 302 and "code" in query_of(back.headers["Location"])


def test_max_age_is_honoured_to_the_second(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    """OIDC Core 3.1.2.1: re-authenticate when more than max_age seconds have passed."""
    _, http, client, challenge = setup
    user = create_user(engine)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    auth_time = int((now - timedelta(seconds=300)).timestamp())
    headers = user_headers(user, auth_time=auth_time)
    with freeze_time(now):
        obtain_code(http, client, user, challenge, headers=headers, max_age="300")
        stale = http.get("/oauth/authorize", headers=headers,
                         query_string=authorize_params(client, challenge, max_age="299"))
    assert urlsplit(stale.headers["Location"]).path == "/test-login"
    next_url = query_of(stale.headers["Location"])["next"]
    assert "max_age" not in query_of(next_url)  # satisfied by this sign-in; max_age=0 would loop
    fresh = user_headers(user, auth_time=int(now.timestamp()) - 2)
    with freeze_time(now):
        back = http.get(next_url, headers=fresh)
    assert back.status_code == 302 and "code" in query_of(back.headers["Location"])
    with freeze_time(now):
        silent = http.get("/oauth/authorize", headers=headers, query_string=authorize_params(
            client, challenge, max_age="299", prompt="none"))
    assert _redirect_error(silent, client)["error"] == "login_required"


# ------------------------------------------------------------------ assurance level: step-up


def test_acr_values_aal2_sends_an_aal1_user_to_step_up(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    _, http, client, challenge = setup
    user = create_user(engine)
    response = http.get("/oauth/authorize", headers=user_headers(user),
                        query_string=authorize_params(client, challenge, acr_values="aal2"))
    assert urlsplit(response.headers["Location"]).path == "/test-step-up"
    assert query_of(response.headers["Location"])["aal"] == "aal2"


def test_aal2_user_gets_aal2_tokens_for_acr_values_aal2(engine: Engine) -> None:
    app = make_app(engine)
    client, secret = create_client(app)
    http = app.test_client()
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    headers = user_headers(user, aal="aal2", amr="password,totp")
    code = obtain_code(http, client, user, challenge, headers=headers, acr_values="aal2")["code"]
    body = exchange_code(http, client, secret, code, verifier).json
    from test_code_flow import _verify

    _, claims = _verify(http, body["access_token"])
    assert claims["aal"] == claims["acr"] == "aal2"
    assert claims["amr"] == ["password", "totp"]
    _, id_claims = _verify(http, body["id_token"])
    assert id_claims["acr"] == "aal2"


def test_prompt_none_with_too_low_aal_is_interaction_required(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str]) -> None:
    _, http, client, challenge = setup
    response = http.get("/oauth/authorize", headers=user_headers(create_user(engine)),
                        query_string=authorize_params(client, challenge, acr_values="aal2",
                                                      prompt="none"))
    assert _redirect_error(response, client)["error"] == "interaction_required"


def test_scope_that_needs_aal2_sends_the_user_to_step_up(engine: Engine) -> None:
    app = make_app(engine, scope_min_aal={"payments": "aal2"})
    client, _ = create_client(app, scopes="openid payments")
    http = app.test_client()
    user = create_user(engine)
    challenge = pkce_pair()[1]
    low = http.get("/oauth/authorize", headers=user_headers(user),
                   query_string=authorize_params(client, challenge, scope="openid payments"))
    assert urlsplit(low.headers["Location"]).path == "/test-step-up"
    plain = http.get("/oauth/authorize", headers=user_headers(user),
                     query_string=authorize_params(client, challenge, scope="openid"))
    assert plain.status_code == 200  # consent page: no step-up for scopes that do not need it


def test_client_minimum_aal_applies_to_every_authorization(engine: Engine) -> None:
    app = make_app(engine)
    client, _ = create_client(app, min_aal="aal2")
    http = app.test_client()
    response = http.get("/oauth/authorize", headers=user_headers(create_user(engine)),
                        query_string=authorize_params(client, pkce_pair()[1]))
    assert urlsplit(response.headers["Location"]).path == "/test-step-up"


# ------------------------------------------------------------------ hostile input: shown, not redirected


@pytest.mark.parametrize("suffix", [
    "&state=a&state=b",                      # RFC 6749 3.1: parameters MUST NOT repeat
    "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
    "&state=%FF%FE",                         # not UTF-8
    "&nonce=%C3%A9",                         # UTF-8 but not VSCHAR
    "&state=" + "a" * 5000,                  # oversized
    "&scope=openid%00",
])
def test_malformed_query_is_400_without_redirect_and_writes_nothing(
        engine: Engine, setup: tuple[Flask, FlaskClient, ClientInfo, str], suffix: str) -> None:
    from urllib.parse import urlencode

    _, http, client, challenge = setup
    params = authorize_params(client, challenge)
    params.pop("state")
    before = snapshot(engine)
    response = http.get("/oauth/authorize?" + urlencode(params) + suffix,
                        headers=user_headers(create_user(engine)))
    assert response.status_code == 400 and "Location" not in response.headers
    assert response.json["error"] == "invalid_request"
    assert snapshot(engine) == before
