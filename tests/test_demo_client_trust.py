"""The demo's side of issue 15 items 6, 7, 8 and issue 19 item 5: logout that really signs the
browser out, error pages instead of raw JSON or open redirects, and a consent page that says
where it returns to and whether anyone vetted the app."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Flask

from demo_server.seed import SeededClient
from demo_server.testing import DemoBrowser, exchange_code, seeded
from oauth_sessions import get_state

ALICE = ("alice@example.com", "alice-demo-password")
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _browser(app: Flask) -> DemoBrowser:
    browser = DemoBrowser(app)
    browser.headers["Accept"] = HTML
    assert browser.sign_in(*ALICE).status_code == 302
    return browser


def _authorize_url(client: SeededClient, **extra: str) -> str:
    params = {"response_type": "code", "client_id": str(client.info.id),
              "redirect_uri": client.info.redirect_uris[0], "scope": "openid",
              "state": "s1", "code_challenge": "a" * 43, "code_challenge_method": "S256", **extra}
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def test_issue15_item6_prompt_none_after_rp_logout_needs_a_new_sign_in(demo_app: Flask) -> None:
    browser = _browser(demo_app)
    client = seeded(demo_app, "confidential")
    tokens = exchange_code(demo_app, client, *browser.authorize(client))
    silent = browser.get(_authorize_url(client, prompt="none"))
    assert silent.status_code == 302 and "code" in parse_qs(urlsplit(silent.headers["Location"]).query)
    page = browser.get("/oauth/logout?" + urlencode({"id_token_hint": tokens.body["id_token"]}))
    assert page.status_code == 200 and "You are signed out" in page.get_data(as_text=True)
    after = browser.get(_authorize_url(client, prompt="none"))
    assert after.status_code == 302
    assert parse_qs(urlsplit(after.headers["Location"]).query)["error"] == ["login_required"]
    assert browser.get("/account/sessions").status_code == 302  # the provider sign-in ended


def test_issue19_item5_authorization_errors_are_a_page_not_json(demo_app: Flask) -> None:
    browser = _browser(demo_app)
    client = seeded(demo_app, "confidential")
    for url, words in ((_authorize_url(client, client_id=None), "Client_id is missing"),
                       (_authorize_url(client, redirect_uri="https://evil.example/"),
                        "Redirect_uri is not registered for this client")):
        response = browser.get(url)
        text = response.get_data(as_text=True)
        assert response.status_code == 400 and response.mimetype == "text/html"
        assert "This request cannot continue" in text and words in text
        assert 'href="/static/demo.css"' in text or "demo.css" in text  # the demo's own look


def _self_registered(app: Flask, name: str = "Snapshot Share") -> SeededClient:
    info, secret = get_state(app).services.clients.create(
        name=name, redirect_uris=["https://evil.example/land"], scopes="openid profile")
    return SeededClient("mine", info, secret)


def test_issue15_item7_an_unverified_clients_errors_show_an_interstitial(demo_app: Flask) -> None:
    browser = _browser(demo_app)
    client = _self_registered(demo_app)
    for extra in ({"code_challenge": None}, {"prompt": "none", "max_age": "0"}):
        response = browser.get(_authorize_url(client, **extra))
        text = response.get_data(as_text=True)
        assert response.status_code == 400 and "Location" not in response.headers
        assert '<strong class="target-host">evil.example</strong>' in text
        assert 'href="https://evil.example/land?error=' in text


def test_issue15_item8_consent_shows_the_redirect_host_and_whether_the_app_is_verified(
        demo_app: Flask) -> None:
    browser = _browser(demo_app)
    vetted = seeded(demo_app, "confidential")
    stranger = _self_registered(demo_app)
    text = browser.get(_authorize_url(vetted)).get_data(as_text=True)
    host = urlsplit(vetted.info.redirect_uris[0]).netloc
    assert "Verified app" in text and f'<strong class="redirect-host">{host}</strong>' in text
    text = browser.get(_authorize_url(stranger)).get_data(as_text=True)
    assert "Self-registered, not verified" in text and "Verified app" not in text
    assert '<strong class="redirect-host">evil.example</strong>' in text


def test_issue15_item8_the_seeded_clients_names_are_reserved(demo_app: Flask) -> None:
    store = get_state(demo_app).services.clients
    for name in ("PhotoPrint", "photoPRINT", "  PhotoPrint " + secrets.token_hex(0)):
        try:
            store.create(name=name, redirect_uris=["https://evil.example/cb"])
        except ValueError as exc:
            assert "belongs to a verified app" in str(exc)
        else:
            raise AssertionError(f"{name!r} was accepted")


def test_issue15_also_get_logout_keeps_the_id_token_out_of_the_access_log(
        demo_app: Flask, caplog: Any) -> None:
    """The demo's werkzeug access log prints the request line with id_token_hint redacted."""
    import logging
    import urllib.request

    from demo_server.testing import LiveServer, free_port

    server = LiveServer(demo_app, free_port())
    secret_value = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXRva2Vu.c2ln"
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            try:
                urllib.request.urlopen(f"{server.url}/oauth/logout?id_token_hint={secret_value}"
                                       "&state=keep-me", timeout=10)
            except urllib.error.HTTPError as exc:
                assert exc.code == 400  # not a token of this provider
    finally:
        server.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("/oauth/logout?id_token_hint=[redacted]&state=keep-me" in line for line in lines)
    assert not any(secret_value in line for line in lines)


def test_issue15_also_the_demo_client_logs_out_at_the_provider_by_post(demo_app: Flask) -> None:
    """The client's sign-out page posts id_token_hint in a form body (never a URL)."""
    from demo_server.client_app import create_client_app

    client = seeded(demo_app, "confidential")
    rp = create_client_app("http://provider.invalid", client.info.client_id, client.secret or "")
    rp.config["TESTING"] = True
    with rp.test_request_context():
        from flask import render_template

        page = render_template("client_logged_out.html", id_token="tok.en.value",
                               end_session_endpoint="http://127.0.0.1:5000/oauth/logout")
    assert '<form method="post" action="http://127.0.0.1:5000/oauth/logout"' in page
    assert 'name="id_token_hint" value="tok.en.value"' in page and "?id_token_hint" not in page


def test_secret_parameters_inside_a_percent_encoded_next_url_are_redacted() -> None:
    """A step-up carries the authorization request, id_token_hint included, in ``next``."""
    from demo_server.access_log import redact

    line = ('"GET /account/step-up?next=/oauth/authorize%3Fresponse_type%3Dcode%26'
            'id_token_hint%3DeyJhbGciOi.eyJzdWIi.c2ln%26code_challenge%3Dabc%26state%3Dxy HTTP/1.1"')
    assert redact(line) == ('"GET /account/step-up?next=/oauth/authorize%3Fresponse_type%3Dcode%26'
                            'id_token_hint%3D[redacted]%26code_challenge%3Dabc%26state%3Dxy HTTP/1.1"')
