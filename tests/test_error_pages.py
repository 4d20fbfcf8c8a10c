"""Errors a person sees (issue 19 item 5) and error redirects only to vetted clients (issue 15
item 7, RFC 9700 section 4.11.2); honest RP-initiated logout (issue 15 item 6)."""

from __future__ import annotations

from typing import Any

import pytest
from factories import (
    HeaderHost,
    authorize_params,
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
    query_of,
    user_headers,
)
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine

from oauth_sessions.flask.host import ErrorPage, HostAdapter

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


class PageHost(HeaderHost):
    def __init__(self) -> None:
        self.pages: list[ErrorPage] = []

    def render_error(self, page: ErrorPage) -> ResponseReturnValue:
        self.pages.append(page)
        return f"<p>{page.error}</p>", page.status, {"Content-Type": "text/html"}


@pytest.mark.parametrize(("change", "description"), [
    ({"client_id": None}, "client_id is missing"),
    ({"client_id": "4f1c2b9e-0000-4000-8000-000000000000"}, "unknown client_id"),
    ({"redirect_uri": "https://elsewhere.example/cb"}, "redirect_uri is not registered for this client"),
])
def test_issue19_item5_unredirectable_errors_are_the_hosts_page_for_a_browser(
        engine: Engine, change: dict[str, Any], description: str) -> None:
    host = PageHost()
    app = make_app(engine, host=host)
    client, _ = create_client(app)
    _, challenge = pkce_pair()
    params = {k: v for k, v in (authorize_params(client, challenge) | change).items() if v is not None}
    http = app.test_client()
    page = http.get("/oauth/authorize", query_string=params, headers=BROWSER)
    assert page.status_code == 400 and page.mimetype == "text/html"
    assert host.pages[-1].description == description and host.pages[-1].continue_url is None
    api = http.get("/oauth/authorize", query_string=params)  # no Accept: an API caller
    assert api.status_code == 400 and api.json == {"error": "invalid_request",
                                                   "error_description": description}


def test_issue19_item5_the_default_error_page_is_html_and_escapes(engine: Engine) -> None:
    app = make_app(engine, host=HeaderHost())
    client, _ = create_client(app, name="<b>x</b>", verified=False)
    _, challenge = pkce_pair()
    params = authorize_params(client, challenge) | {"code_challenge_method": "plain"}
    response = app.test_client().get("/oauth/authorize", query_string=params, headers=BROWSER)
    text = response.get_data(as_text=True)
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "code_challenge_method must be S256" in text and "<b>x</b>" not in text
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "client.example" in text


@pytest.mark.parametrize("extra", [{"code_challenge": ""}, {"scope": "admin"},
                                   {"prompt": "none"}])
def test_issue15_item7_errors_for_an_unverified_client_are_never_redirected(
        engine: Engine, extra: dict[str, str]) -> None:
    """Authorization errors and prompt=none failures of a self-registered client show a page
    naming the target, with a link; a verified client gets the usual redirect."""
    host = PageHost()
    app = make_app(engine, host=host)
    http = app.test_client()
    _, challenge = pkce_pair()
    stranger, _ = create_client(app, name="Stranger", verified=False,
                                redirect_uris=["https://evil.example/land"])
    vetted, _ = create_client(app, name="Vetted")
    params = authorize_params(stranger, challenge) | extra
    response = http.get("/oauth/authorize", query_string=params, headers=BROWSER)
    assert response.status_code == 400 and "Location" not in response.headers
    page = host.pages[-1]
    assert page.continue_host == "evil.example" and page.client.id == stranger.id
    assert page.continue_url.startswith("https://evil.example/land?error=")
    api = http.get("/oauth/authorize", query_string=params)
    assert api.status_code == 400 and "Location" not in api.headers and "error" in api.json
    response = http.get("/oauth/authorize", query_string=authorize_params(vetted, challenge) | extra,
                        headers=BROWSER)
    assert response.status_code == 302 and "error" in query_of(response.headers["Location"])


def test_issue15_item7_an_unverified_client_still_gets_its_code(engine: Engine) -> None:
    """Only errors are held back: success needs the user's consent anyway."""
    app = make_app(engine)
    client, secret = create_client(app, verified=False)
    http, user = app.test_client(), create_user(engine)
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge)["code"]
    assert exchange_code(http, client, secret, code, verifier).status_code == 200


class NoLogoutHost(HeaderHost):
    """A host that never implemented ``logout``: the library's default applies."""


def test_issue15_item6_without_host_logout_the_page_does_not_claim_a_sign_out(
        engine: Engine) -> None:
    app = make_app(engine, host=NoLogoutHost())
    client, secret = create_client(app, name="PhotoPrint")
    http, user = app.test_client(), create_user(engine)
    verifier, challenge = pkce_pair()
    tokens = exchange_code(http, client, secret, obtain_code(http, client, user, challenge)["code"],
                           verifier).json
    response = http.get("/oauth/logout", query_string={"id_token_hint": tokens["id_token"]},
                        headers=user_headers(user))
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "You have signed out of PhotoPrint" in text and "still signed in" in text
    assert "You are signed out." not in text
    with pytest.raises(NotImplementedError):
        HostAdapter().logout(user)
