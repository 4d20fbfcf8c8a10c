"""A pushed authorization request (RFC 9126) through the demo, as a person's browser sees it:
the client pushes, the browser arrives signed out with only client_id and request_uri, signs in
on the demo's page, comes back, approves the consent page and the client gets its code.
On SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Flask

from demo_server.testing import HIDDEN_RE, DemoBrowser, _basic, exchange_code, seeded

ALICE = ("alice@example.com", "alice-demo-password")


def test_a_pushed_request_survives_the_demo_sign_in_and_consent(demo_app: Flask) -> None:
    client = seeded(demo_app, "confidential")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    pushed = demo_app.test_client().post("/oauth/par", headers=_basic(client), data={
        "response_type": "code", "client_id": str(client.info.id),
        "redirect_uri": client.info.redirect_uris[0], "scope": "openid profile",
        "state": "demo-state", "code_challenge": challenge, "code_challenge_method": "S256"})
    assert pushed.status_code == 201, pushed.get_data(as_text=True)
    request_uri = pushed.get_json()["request_uri"]

    browser = DemoBrowser(demo_app)
    first = browser.get("/oauth/authorize?" + urlencode(
        {"client_id": str(client.info.id), "request_uri": request_uri}))
    assert first.status_code == 302 and "/signin" in first.headers["Location"]
    next_url = parse_qs(urlsplit(first.headers["Location"]).query)["next"][0]
    assert "redirect_uri" not in next_url and "demo-state" not in next_url
    browser.get(first.headers["Location"])
    signed_in = browser.post("/signin", {"email": ALICE[0], "password": ALICE[1],
                                         "next": next_url})
    assert signed_in.headers["Location"] == next_url
    consent = browser.get(next_url)
    page = consent.get_data(as_text=True)
    assert consent.status_code == 200 and "wants to use your account" in page
    form = page.split('action="/oauth/authorize"', 1)[1].split("</form>", 1)[0]
    fields = {name: html.unescape(value) for name, value in HIDDEN_RE.findall(form)}
    assert {"client_id", "request_uri", "par_ticket"} <= set(fields)
    approved = browser.post("/oauth/authorize", fields | {"decision": "approve"}, csrf=False)
    assert approved.status_code == 302, approved.get_data(as_text=True)[:300]
    query = parse_qs(urlsplit(approved.headers["Location"]).query)
    assert query["state"] == ["demo-state"]
    tokens = exchange_code(demo_app, client, query["code"][0], verifier)
    assert tokens.body["scope"] == "openid profile"
