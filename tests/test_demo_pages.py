"""The demo's account pages, developer page and protected API, through the OAuth flow.

"Your sessions" lists every row of auth.sessions of the person and revokes one, all others,
or all; "Connected apps" withdraws consent; the developer page shows a secret once; the API
answers with RFC 6750 / RFC 9470 challenges. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask

from demo_server.client_app import create_client_app
from demo_server.pages import describe_device
from demo_server.testing import (
    DemoBrowser,
    exchange_code,
    introspect,
    refresh,
    seeded,
)
from demo_server.users import find_account
from oauth_sessions import Aal, get_state

ALICE = ("alice@example.com", "alice-demo-password")




def _alice_id(app: Flask) -> uuid.UUID:
    account = find_account(get_state(app).engine, ALICE[0])
    assert account is not None
    return account.id


def _signed_in(app: Flask) -> DemoBrowser:
    browser = DemoBrowser(app)
    assert browser.sign_in(*ALICE).status_code == 302
    return browser


def test_sessions_page_lists_device_ip_app_scopes_aal_and_times(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    client = seeded(demo_app, "confidential")
    tokens = exchange_code(demo_app, client, *browser.authorize(client))
    sid = next(s.id for s in get_state(demo_app).services.sessions.list_for_user(_alice_id(demo_app))
               if s.client_id == client.info.id)
    assert refresh(demo_app, client, tokens.refresh_token or "").status_code == 200
    page = browser.get("/account/sessions").get_data(as_text=True)
    assert page.count("<tr data-session-id=") == 2
    assert f'data-session-id="{sid}" data-client-id="{client.info.id}"' in page
    assert "Chrome 120.0 on Linux" in page and "this browser" in page
    assert "PhotoPrint" in page and "offline_access" in page and "aal1" in page
    assert "127.0.0.1" in page
    assert "never" in page  # the browser session was never refreshed; the app's session was


def test_revoke_one_session_ends_its_refresh_and_introspection(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    client = seeded(demo_app, "confidential")
    tokens = exchange_code(demo_app, client, *browser.authorize(client))
    assert introspect(demo_app, client, tokens.access_token).get_json()["active"] is True
    store = get_state(demo_app).services.sessions
    sid = next(s.id for s in store.list_for_user(_alice_id(demo_app)) if s.client_id)
    response = browser.post("/account/sessions/revoke", {"which": "one", "session_id": str(sid)})
    assert response.status_code == 302
    assert store.get(sid) is None
    failed = refresh(demo_app, client, tokens.refresh_token or "")
    assert failed.status_code == 400 and failed.get_json()["error"] == "invalid_grant"
    assert introspect(demo_app, client, tokens.access_token).get_json() == {"active": False}
    me = demo_app.test_client().get("/api/me", headers={"Authorization": f"Bearer {tokens.access_token}"})
    assert me.status_code == 401
    assert browser.get("/account/sessions").status_code == 200  # this browser stays signed in


def test_revoke_all_others_keeps_only_this_browser(demo_app: Flask) -> None:
    browser, other = _signed_in(demo_app), _signed_in(demo_app)
    client = seeded(demo_app, "confidential")
    exchange_code(demo_app, client, *browser.authorize(client))
    store = get_state(demo_app).services.sessions
    assert len(store.list_for_user(_alice_id(demo_app))) == 3
    browser.post("/account/sessions/revoke", {"which": "others"})
    (left,) = store.list_for_user(_alice_id(demo_app))
    assert left.client_id is None
    assert browser.get("/account/sessions").status_code == 200
    assert other.get("/account/sessions").status_code == 302


def test_revoke_all_signs_this_browser_out_too(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    browser.post("/account/sessions/revoke", {"which": "all"})
    assert get_state(demo_app).services.sessions.list_for_user(_alice_id(demo_app)) == []
    assert browser.get("/account/sessions").status_code == 302


def test_a_person_cannot_revoke_someone_elses_session(demo_app: Flask) -> None:
    alice = _signed_in(demo_app)
    mallory = DemoBrowser(demo_app)
    mallory.sign_up("mallory@example.com", "mallory's long password")
    store = get_state(demo_app).services.sessions
    (alice_session,) = store.list_for_user(_alice_id(demo_app))
    response = mallory.post("/account/sessions/revoke", {"which": "one", "session_id": str(alice_session.id)})
    assert response.status_code == 302
    assert store.get(alice_session.id) is not None
    assert alice.get("/account/sessions").status_code == 200
    bad = mallory.post("/account/sessions/revoke", {"which": "one", "session_id": "not-a-uuid"})
    assert bad.status_code == 400


def test_connected_apps_lists_the_grant_and_removing_it_ends_the_sessions(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    client = seeded(demo_app, "confidential")
    tokens = exchange_code(demo_app, client, *browser.authorize(client))
    page = browser.get("/account/apps").get_data(as_text=True)
    assert f'data-client-id="{client.info.id}"' in page
    assert "See your e-mail address" in page and "1 active session" in page
    browser.post("/account/apps/revoke", {"client_id": str(client.info.id)})
    assert refresh(demo_app, client, tokens.refresh_token or "").status_code == 400
    assert "No app is connected" in browser.get("/account/apps").get_data(as_text=True)
    # consent was forgotten: the next authorization asks again
    params_page = browser.get(f"/oauth/authorize?response_type=code&client_id={client.info.id}"
                              f"&redirect_uri={client.info.redirect_uris[0]}&scope=openid"
                              "&code_challenge=" + "a" * 43 + "&code_challenge_method=S256")
    assert "wants to use your account" in params_page.get_data(as_text=True)


def test_consent_page_names_the_app_and_each_scope_in_plain_words(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    client = seeded(demo_app, "confidential")
    page = browser.get(f"/oauth/authorize?response_type=code&client_id={client.info.id}"
                       f"&redirect_uri={client.info.redirect_uris[0]}&scope=openid%20email%20offline_access"
                       "&code_challenge=" + "a" * 43 + "&code_challenge_method=S256").get_data(as_text=True)
    assert '<span class="client-name">PhotoPrint</span> wants to use your account' in page
    for words in ("Know who you are", "See your e-mail address", "Stay connected while you are away"):
        assert words in page
    assert "See your basic profile" not in page  # not asked for


def test_denying_consent_returns_access_denied_and_creates_no_session(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    client = seeded(demo_app, "confidential")
    with pytest.raises(AssertionError, match="access_denied"):
        browser.authorize(client, approve=False)
    sessions = get_state(demo_app).services.sessions.list_for_user(_alice_id(demo_app))
    assert [s.client_id for s in sessions] == [None]


def test_a_scope_that_needs_aal2_sends_the_person_to_the_totp_step_up(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    client = seeded(demo_app, "confidential")
    response = browser.get(f"/oauth/authorize?response_type=code&client_id={client.info.id}"
                           f"&redirect_uri={client.info.redirect_uris[0]}&scope=openid%20payments"
                           "&code_challenge=" + "a" * 43 + "&code_challenge_method=S256")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/account/step-up?next=/oauth/authorize")


def test_api_me_needs_the_profile_scope_and_payments_its_scope(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    client = seeded(demo_app, "confidential")
    api = demo_app.test_client()
    assert api.get("/api/me").status_code == 401
    assert api.get("/api/me").headers["WWW-Authenticate"].startswith("Bearer")

    email_only = exchange_code(demo_app, client, *browser.authorize(client, scope="openid email"))
    no_profile = api.get("/api/me", headers={"Authorization": f"Bearer {email_only.access_token}"})
    assert no_profile.status_code == 403
    assert 'error="insufficient_scope"' in no_profile.headers["WWW-Authenticate"]

    tokens = exchange_code(demo_app, client, *browser.authorize(client))
    auth = {"Authorization": f"Bearer {tokens.access_token}"}
    me = api.get("/api/me", headers=auth)
    assert me.status_code == 200 and me.get_json()["email"] == ALICE[0] and me.get_json()["aal"] == "aal1"
    payments = api.get("/api/payments", headers=auth)
    # The scope comes first (issue 15 item 2): a step-up cannot add "payments" to this token.
    assert payments.status_code == 403
    assert 'error="insufficient_scope"' in payments.headers["WWW-Authenticate"]
    assert get_state(demo_app).services.sessions.list_for_user(_alice_id(demo_app))[0].aal == Aal.AAL1


@pytest.mark.parametrize(("user_agent", "expected"), [
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.2 Safari/605.1.15", "Safari 17.2 on Mac OS X 14.2"),
    ("python-requests/2.32.0", "Python Requests 2.32"),
    ("Authlib/1.9.10 (+https://authlib.org)", "Authlib/1.9.10"),
    (None, "Unknown device"),
])
def test_devices_are_named_from_the_user_agent(user_agent: str | None, expected: str) -> None:
    assert describe_device(user_agent) == expected


def test_max_age_older_than_the_sign_in_asks_for_the_password_again(demo_app: Flask) -> None:
    """OIDC Core 3.1.2.1: past max_age the provider MUST actively re-authenticate the person."""
    from freezegun import freeze_time

    client = seeded(demo_app, "confidential")
    url = (f"/oauth/authorize?response_type=code&client_id={client.info.id}"
           f"&redirect_uri={client.info.redirect_uris[0]}&scope=openid&max_age=60"
           "&code_challenge=" + "a" * 43 + "&code_challenge_method=S256")
    with freeze_time(datetime.now(UTC)) as clock:
        browser = _signed_in(demo_app)
        clock.tick(timedelta(seconds=61))
        response = browser.get(url)
        assert response.status_code == 302 and "/signin" in response.headers["Location"]
        form = browser.get(response.headers["Location"]).get_data(as_text=True)
        assert "sign in again to confirm it is you" in form
        next_url = parse_qs(urlsplit(response.headers["Location"]).query)["next"][0]
        assert next_url.startswith("/oauth/authorize?")
        signed_in = browser.post("/signin", {"email": ALICE[0], "password": ALICE[1],
                                             "prompt": "login", "next": next_url})
        assert signed_in.headers["Location"] == next_url
        again = browser.get(next_url)
    assert again.status_code == 200 and "wants to use your account" in again.get_data(as_text=True)


def test_the_seeded_public_client_signs_in_with_pkce_and_no_secret(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    public = seeded(demo_app, "public")
    code, verifier = browser.authorize(public, scope="openid profile offline_access")
    token = demo_app.test_client().post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "redirect_uri": public.info.redirect_uris[0], "client_id": str(public.info.id)})
    assert token.status_code == 200, token.get_data(as_text=True)
    me = demo_app.test_client().get("/api/me", headers={
        "Authorization": f"Bearer {token.get_json()['access_token']}"})
    assert me.status_code == 200 and me.get_json()["client_id"] == str(public.info.id)


def test_issue19_item3_the_third_party_app_has_one_name(demo_app: Flask) -> None:
    """The client app's own pages and the provider's record of it say the same name."""
    client = seeded(demo_app, "confidential")
    assert client.info.name == "PhotoPrint"
    page = create_client_app("http://127.0.0.1:9", str(client.info.id), client.secret or "") \
        .test_client().get("/").get_data(as_text=True)
    assert f"</span>{client.info.name}</a>" in page and "Demo client app" not in page


def _visible_text(page: str) -> str:
    """The words a person reads: tags (and their class and title attributes) removed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_end_user_pages_say_how_the_person_signed_in_instead_of_aal_codes(demo_app: Flask) -> None:
    """Issue 19 item 12: "signed in with password" / "verified with your authenticator app"."""
    browser = _signed_in(demo_app)
    for path in ("/", "/account/sessions", "/account/security"):
        text = _visible_text(browser.get(path).get_data(as_text=True))
        assert "signed in with password" in text.lower(), path
        assert "aal1" not in text and "aal2" not in text, path
    browser.step_up_with_new_factor()
    for path in ("/", "/account/sessions", "/account/security"):
        text = _visible_text(browser.get(path).get_data(as_text=True))
        assert "verified with your authenticator app" in text.lower(), path
        assert "aal1" not in text and "aal2" not in text, path
    sessions = _visible_text(browser.get("/account/sessions").get_data(as_text=True))
    assert "Verified with your authenticator app" in sessions
