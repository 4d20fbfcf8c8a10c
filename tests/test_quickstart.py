"""``examples/quickstart.py`` as a browser uses it, and the library's same-site ``next`` check.

Issue 19 item 1: the sign-in round trip started at ``/oauth/authorize`` must come back to the
same authorization request (its query was not URL-encoded into ``next``), and the example's
``/login`` must only follow a same-site path.
"""

from __future__ import annotations

import html
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import urlencode, urlsplit

import pytest
from factories import create_client, pkce_pair, query_of
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from oauth_sessions import get_state
from oauth_sessions.core.uris import same_site_path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
ISSUER = "http://127.0.0.1:5999"
REDIRECT = "http://127.0.0.1:9/cb"


def _quickstart() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quickstart_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def quickstart_app(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The example configured the way docs/quickstart.md says: FLASK_* environment variables."""
    monkeypatch.setenv("FLASK_SECRET_KEY", "quickstart-test-secret")
    monkeypatch.setenv("FLASK_OAUTH_SESSIONS_ISSUER", ISSUER)
    monkeypatch.setenv("FLASK_OAUTH_SESSIONS_DATABASE_URL",
                       engine.url.render_as_string(hide_password=False))
    app: Flask = _quickstart().create_app()
    yield app
    get_state(app).engine.dispose()


def _follow(http: FlaskClient, url: str, limit: int = 10) -> tuple[str, str]:
    """GET ``url`` and follow redirects as a browser does, up to a page: (last URL, page text).

    Stops at a redirect to another origin (the client's callback) and returns its Location.
    """
    for _ in range(limit):
        response = http.get(url)
        if response.status_code != 302:
            assert response.status_code == 200, (url, response.status_code, response.get_data(True))
            return url, response.get_data(as_text=True)
        location = response.headers["Location"]
        if urlsplit(location).netloc not in ("", "localhost", urlsplit(ISSUER).netloc):
            return location, ""
        url = location
    raise AssertionError("redirect loop")


def test_issue19_item1_sign_in_round_trip_returns_to_the_same_authorization(
        quickstart_app: Flask) -> None:
    client, _ = create_client(quickstart_app, redirect_uris=[REDIRECT], scopes="openid")
    _verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
              "scope": "openid", "state": "s1", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    http = quickstart_app.test_client()
    login_url, form = _follow(http, "/oauth/authorize?" + urlencode(params))
    assert urlsplit(login_url).path == "/login" and "<form method=post>" in form
    # The form has no action: the browser posts back to the same URL, ``next`` included.
    signed_in = http.post(login_url, data={"email": "new@example.com"})
    assert signed_in.status_code == 302
    back = signed_in.headers["Location"]
    assert query_of(back) == params and urlsplit(back).path == "/oauth/authorize"
    _, consent = _follow(http, back)
    action = html.unescape(re.search(r'action="([^"]+)"', consent).group(1))  # type: ignore[union-attr]
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', consent))
    answer = http.post(action, data={**{k: html.unescape(v) for k, v in fields.items()},
                                     "decision": "approve"})
    assert answer.status_code == 302 and answer.headers["Location"].startswith(REDIRECT + "?")
    assert query_of(answer.headers["Location"])["state"] == "s1"


@pytest.mark.parametrize("hostile", [
    "/%09/evil.example", "/%0a/evil.example", "//evil.example", "/%5Cevil.example",
    "https://evil.example/", "/ok%0d%0aSet-Cookie:%20x=1", "%2F%2Fevil.example",
])
def test_issue19_item1_quickstart_login_never_leaves_the_site(quickstart_app: Flask,
                                                              hostile: str) -> None:
    http = quickstart_app.test_client()
    response = http.post("/login?next=" + hostile, data={"email": "a@example.com"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("target", ["/", "/oauth/authorize?client_id=a&scope=openid%20email",
                                    "/account/sessions#top", "/caf\u00e9"])
def test_issue19_item1_same_site_path_keeps_a_path_of_this_site(target: str) -> None:
    assert same_site_path(target) == target


@pytest.mark.parametrize("target", [
    None, "", "relative", "//evil.example", "/\t/evil.example", "/\n/evil.example",
    "/\r\nSet-Cookie: a=1", "/\\evil.example", "\\\\evil.example", "https://evil.example/x",
    "javascript:alert(1)", "/ /evil", "/\u2028/evil", "/\x7f", "/" + "a" * 2048,
])
def test_issue19_item1_same_site_path_refuses_anything_else(target: str | None) -> None:
    assert same_site_path(target, "/home") == "/home"
