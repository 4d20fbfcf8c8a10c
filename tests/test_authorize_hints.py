"""``login_hint`` and ``ui_locales`` reach the host, and ``claims_supported`` says what a relying
party can receive (issue 20 item 7; OIDC Core 3.1.2.1, Discovery 1.0 section 3)."""

from __future__ import annotations

from typing import Any

import pytest
from factories import HeaderHost, create_client, create_user, make_app, pkce_pair, snapshot, user_headers
from flask import jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine

from oauth_sessions.flask.host import ConsentRequest, HostAdapter, SignInRequest
from oauth_sessions.protocol.discovery import ID_TOKEN_CLAIMS


class HintHost(HeaderHost):
    """Shows what the sign-in and consent pages were given."""

    def sign_in(self, sign_in: SignInRequest) -> ResponseReturnValue:
        return jsonify(sign_in=True, login_hint=sign_in.login_hint,
                       ui_locales=list(sign_in.ui_locales), prompt=sign_in.prompt,
                       client_id=sign_in.client.client_id, next_url=sign_in.next_url)

    def render_consent(self, request_info: ConsentRequest) -> ResponseReturnValue:
        return jsonify(consent=True, ui_locales=list(request_info.ui_locales))


def _authorize(http: Any, client: Any, headers: dict[str, str] | None = None, **extra: str) -> Any:
    _, challenge = pkce_pair()
    return http.get("/oauth/authorize", headers=headers or {}, query_string={
        "response_type": "code", "client_id": client.client_id, "state": "s",
        "redirect_uri": client.redirect_uris[0], "scope": "openid",
        "code_challenge": challenge, "code_challenge_method": "S256", **extra})


def test_sign_in_page_gets_login_hint_and_ui_locales(engine: Engine) -> None:
    app = make_app(engine, host=HintHost())
    client, _ = create_client(app)
    page = _authorize(app.test_client(), client, login_hint="alice@example.com",
                      ui_locales="fr-CA fr en", prompt="login")
    assert page.status_code == 200 and page.json["sign_in"] is True
    assert page.json["login_hint"] == "alice@example.com"
    assert page.json["ui_locales"] == ["fr-CA", "fr", "en"]
    assert page.json["prompt"] == "login" and page.json["client_id"] == client.client_id
    # the way back keeps both, so the next sign-in (or consent) page sees them again
    assert "login_hint=alice%40example.com" in page.json["next_url"]
    assert "ui_locales=fr-CA+fr+en" in page.json["next_url"]


def test_consent_page_gets_ui_locales(engine: Engine) -> None:
    app = make_app(engine, host=HintHost())
    client, _ = create_client(app)
    page = _authorize(app.test_client(), client, user_headers(create_user(engine)),
                      ui_locales="de")
    assert page.json == {"consent": True, "ui_locales": ["de"]}


@pytest.mark.parametrize(("value", "passed"), [
    ("en", ["en"]),
    ("zh-Hant-TW x<script> en-", ["zh-Hant-TW"]),  # malformed tags are dropped, not an error
    ("toolongprimary fr", ["fr"]),
    ("", []),
    (" ".join(f"l{chr(97 + i)}" for i in range(20)), [f"l{chr(97 + i)}" for i in range(16)]),
])
def test_only_well_formed_language_tags_reach_the_host(engine: Engine, value: str,
                                                       passed: list[str]) -> None:
    app = make_app(engine, host=HintHost())
    client, _ = create_client(app)
    page = _authorize(app.test_client(), client, ui_locales=value)
    assert page.status_code == 200 and page.json["ui_locales"] == passed


def test_an_overlong_login_hint_is_invalid_request_and_writes_nothing(engine: Engine) -> None:
    app = make_app(engine, host=HintHost())
    client, _ = create_client(app)
    before = snapshot(engine)
    response = _authorize(app.test_client(), client, login_hint="a" * 513)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "error=invalid_request" in location and "login_hint+is+longer+than+512" in location
    assert snapshot(engine) == before


def test_a_host_with_only_login_still_signs_people_in(engine: Engine) -> None:
    """The default ``sign_in`` calls ``login(next_url, prompt)``: hosts written before it work."""
    calls: list[tuple[str, str | None]] = []

    class OldHost(HeaderHost):
        def login(self, next_url: str, prompt: str | None) -> ResponseReturnValue:
            calls.append((next_url, prompt))
            return jsonify(old_login=True)

    app = make_app(engine, host=OldHost())
    client, _ = create_client(app)
    page = _authorize(app.test_client(), client, login_hint="bob", prompt="login")
    assert page.json == {"old_login": True}
    assert len(calls) == 1 and calls[0][1] == "login" and "login_hint=bob" in calls[0][0]


def test_claims_supported_lists_the_id_token_claims_and_the_hosts(engine: Engine) -> None:
    doc = make_app(engine).test_client().get("/.well-known/openid-configuration").json
    assert doc["claims_supported"] == [*ID_TOKEN_CLAIMS, "name", "email"]  # HeaderHost's

    class Quiet(HeaderHost):
        claims_supported = ()

    quiet = make_app(engine, host=Quiet()).test_client()
    assert quiet.get("/.well-known/openid-configuration").json["claims_supported"] == list(
        ID_TOKEN_CLAIMS)
    assert HostAdapter.claims_supported == ()
