"""The demo's developer page (issue 19 item 10; issue 15 items 7, 17 and the http rule):
aal2 to use it, post/redirect/get, your apps listed with rotate and delete, and errors that
say which line is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from demo_server.testing import DemoBrowser
from oauth_sessions import get_state
from oauth_sessions.storage.clients import verify_client_secret

ALICE = ("alice@example.com", "alice-demo-password")
FORM = {"name": "Budget Buddy", "redirect_uris": "https://budget.example/cb\nhttp://127.0.0.1:9000/cb",
        "scopes": ["openid", "email"], "extra_scopes": "reports:read", "client_type": "confidential"}


def _aal2(app: Flask, email: str = ALICE[0], password: str = ALICE[1]) -> DemoBrowser:
    browser = DemoBrowser(app)
    if email == ALICE[0]:
        assert browser.sign_in(email, password).status_code == 302
    else:
        browser.sign_up(email, password)
    browser.step_up_with_new_factor()
    return browser


def _clients(app: Flask) -> int:
    return len(get_state(app).components["clients"].list())


def test_issue15_item7_developers_needs_aal2(demo_app: Flask) -> None:
    browser = DemoBrowser(demo_app)
    browser.sign_in(*ALICE)
    before = _clients(demo_app)
    for response in (browser.get("/developers"), browser.post("/developers", FORM)):
        assert response.status_code == 302 and "/account/step-up" in response.headers["Location"]
    assert _clients(demo_app) == before


def test_issue19_item10_register_redirects_and_shows_the_secret_once(demo_app: Flask) -> None:
    browser = _aal2(demo_app)
    page = browser.get("/developers").get_data(as_text=True)
    assert 'id="unverified-notice"' in page and "unverified" in page
    before = _clients(demo_app)
    response = browser.post("/developers", FORM)
    assert response.status_code == 303
    shown = browser.get(response.headers["Location"])
    assert shown.headers["Cache-Control"] == "no-store"
    text = shown.get_data(as_text=True)
    client_id = text.split('id="client-id">')[1].split("<")[0]
    secret = text.split('id="client-secret">')[1].split("<")[0]
    info = get_state(demo_app).components["clients"].get(client_id, fresh=True)
    assert info.name == "Budget Buddy" and info.scopes == ("openid", "email", "reports:read")
    assert info.redirect_uris == ("https://budget.example/cb", "http://127.0.0.1:9000/cb")
    assert info.verified is False and verify_client_secret(secret, info.secret_hash)
    again = browser.get(response.headers["Location"]).get_data(as_text=True)  # reload
    assert secret not in again and 'id="client-secret"' not in again
    assert _clients(demo_app) == before + 1
    listing = browser.get("/developers").get_data(as_text=True)
    assert f'data-client-id="{client_id}"' in listing and secret not in listing


def test_issue19_item10_rotate_and_delete_your_own_app_only(demo_app: Flask) -> None:
    alice = _aal2(demo_app)
    created = alice.post("/developers", FORM).headers["Location"]
    client_id = created.rsplit("/", 1)[1]
    store = get_state(demo_app).components["clients"]
    old_hash = store.get(client_id, fresh=True).secret_hash
    mallory = _aal2(demo_app, "mallory@example.com", "mallory's long password")
    assert mallory.post(f"/developers/apps/{client_id}/rotate").status_code == 404
    assert mallory.post(f"/developers/apps/{client_id}/delete").status_code == 404
    assert mallory.get(created).status_code == 404
    assert f'data-client-id="{client_id}"' not in mallory.get("/developers").get_data(as_text=True)
    rotated = alice.post(f"/developers/apps/{client_id}/rotate")
    assert rotated.status_code == 303
    text = alice.get(rotated.headers["Location"]).get_data(as_text=True)
    secret = text.split('id="client-secret">')[1].split("<")[0]
    new = store.get(client_id, fresh=True)
    assert new.secret_hash != old_hash and verify_client_secret(secret, new.secret_hash)
    assert alice.post(f"/developers/apps/{client_id}/delete").status_code == 303
    assert store.get(client_id, fresh=True) is None
    assert f'data-client-id="{client_id}"' not in alice.get("/developers").get_data(as_text=True)


def test_developer_page_registers_a_public_client_without_secret(demo_app: Flask) -> None:
    browser = _aal2(demo_app)
    response = browser.post("/developers", {"name": "Phone app", "redirect_uris": "com.example.app:/cb",
                                            "scopes": ["openid"], "client_type": "public"})
    page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="client-secret"' not in page
    client_id = page.split('id="client-id">')[1].split("<")[0]
    info = get_state(demo_app).components["clients"].get(client_id, fresh=True)
    assert info.is_public and info.token_endpoint_auth_method == "none"


@pytest.mark.parametrize(("form", "message"), [
    ({"name": "", "redirect_uris": "https://a.example/cb", "scopes": ["openid"]}, "Give the app a name"),
    ({"name": "A", "redirect_uris": "", "scopes": ["openid"]}, "Add at least one redirect URI"),
    ({"name": "A", "redirect_uris": "https://a.example/cb#frag", "scopes": ["openid"]}, "fragment"),
    ({"name": "A", "redirect_uris": "https://a.example/cb", "extra_scopes": 'bad"scope'},
     "is not a valid scope name"),
    ({"name": "A", "redirect_uris": "https://a.example/cb\n\nhttp://a.example/cb", "scopes": ["openid"]},
     "redirect URI on line 3: plain http is allowed only to a loopback host"),
    ({"name": "A", "redirect_uris": "https://a.example/cb", "scopes": ["openid"],
      "extra_scopes": " ".join(f"scope{i:05d}" for i in range(400))},
     "the scopes take at most 2048 characters"),
    ({"name": "PhotoPrint", "redirect_uris": "https://a.example/cb", "scopes": ["openid"]},
     "that name belongs to a verified app"),
])
def test_issue19_item10_issue15_item17_bad_input_is_explained_and_registers_nothing(
        demo_app: Flask, form: dict[str, Any], message: str) -> None:
    browser = _aal2(demo_app)
    before = _clients(demo_app)
    response = browser.post("/developers", {"client_type": "confidential", **form})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert _clients(demo_app) == before
