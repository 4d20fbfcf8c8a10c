"""The quickstart (``examples/quickstart.py``) in a real Chromium, from the first ``/oauth/authorize``.

Issue 19 item 1: the browser must be sent to sign in and, after signing in, come back to the
same authorization request and reach the consent page, then the client's callback with a code.
"""

from __future__ import annotations

import importlib.util
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from playwright.sync_api import Page, Route, expect

from demo_server.testing import LiveServer, free_port
from oauth_sessions import get_state
from oauth_sessions.storage import migrate
from oauth_sessions.storage.database import create_auth_engine

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"
CALLBACK = "http://127.0.0.1:9/cb"  # never reached: the test answers it in the browser


@pytest.fixture
def quickstart_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Flask]]:
    database = f"sqlite:///{tmp_path / 'quickstart.db'}"
    engine = create_auth_engine(database)
    migrate.upgrade(engine)
    engine.dispose()
    port = free_port()
    monkeypatch.setenv("FLASK_SECRET_KEY", secrets.token_hex(16))
    monkeypatch.setenv("FLASK_OAUTH_SESSIONS_ISSUER", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("FLASK_OAUTH_SESSIONS_DATABASE_URL", database)
    spec = importlib.util.spec_from_file_location("quickstart_example_browser", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: Flask = module.create_app()
    server = LiveServer(app, port)
    yield server.url, app
    server.stop()
    get_state(app).engine.dispose()


def test_issue19_item1_quickstart_sign_in_round_trip_in_chromium(
        page: Page, quickstart_server: tuple[str, Flask]) -> None:
    base, app = quickstart_server
    client, _secret = get_state(app).components["clients"].create(
        name="Quickstart client", redirect_uris=[CALLBACK], scopes="openid", public=False)
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": CALLBACK,
              "scope": "openid", "state": "st-1", "code_challenge_method": "S256",
              "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}
    landed: list[str] = []

    def callback(route: Route) -> None:
        landed.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p id=cb>callback</p>")

    page.route("http://127.0.0.1:9/**", callback)
    page.goto(f"{base}/oauth/authorize?{urlencode(params)}")
    assert urlsplit(page.url).path == "/login"
    page.fill("input[name=email]", "reader@example.com")
    page.click("button")
    expect(page.locator("body")).to_contain_text("Quickstart client asks for: openid")
    page.click("button[value=approve]")
    expect(page.locator("#cb")).to_have_text("callback")
    query = parse_qs(urlsplit(landed[-1]).query)
    assert query["state"] == ["st-1"] and query["code"][0]
