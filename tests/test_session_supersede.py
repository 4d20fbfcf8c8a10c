"""A re-authorization that names the client's session ends it (issue 19 item 4).

After a step-up the client authorizes again with ``id_token_hint`` = its current ID token.
Redeeming the new code creates the new session and ends the hinted one in the same
transaction, with ``session_revoked`` (reason ``superseded``): "Your sessions" shows one row
for the app, the old refresh token is refused without touching the new session, and the new
session's tokens work. A hint that is not this user's session with this client replaces
nothing. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from flask import Flask

from demo_server.testing import DemoBrowser, TokenSet, exchange_code, introspect, refresh, seeded
from demo_server.users import find_account
from oauth_sessions import Aal, get_state
from oauth_sessions.core import signals
from oauth_sessions.storage.sessions import SessionInfo

ALICE = ("alice@example.com", "alice-demo-password")
BASE_SCOPE = "openid profile email offline_access"
PAYMENTS_SCOPE = f"{BASE_SCOPE} payments"


@pytest.fixture
def revoked() -> Iterator[list[tuple[uuid.UUID, str]]]:
    seen: list[tuple[uuid.UUID, str]] = []

    def receive(sender: object, **kwargs: Any) -> None:
        seen.append((kwargs["session"].id, kwargs["reason"]))

    signals.session_revoked.connect(receive)
    yield seen
    signals.session_revoked.disconnect(receive)


def _user_id(app: Flask, email: str) -> uuid.UUID:
    account = find_account(get_state(app).engine, email)
    assert account is not None
    return account.id


def _app_sessions(app: Flask, email: str, client_id: uuid.UUID) -> list[SessionInfo]:
    return [s for s in get_state(app).services.sessions.list_for_user(_user_id(app, email))
            if s.client_id == client_id]


def _enrol(browser: DemoBrowser) -> str:
    """Set up an authenticator app; the browser stays at aal1. Enrolling ends the user's
    other sessions (issue 15 item 1), so it comes before the app's first authorization."""
    page = browser.get("/account/totp").get_data(as_text=True)
    secret = page.split('id="totp-secret">', 1)[1].split("<", 1)[0].replace(" ", "")
    code = pyotp.TOTP(secret).at(datetime.now(UTC))
    assert browser.post("/account/totp", {"action": "verify", "code": code}).status_code == 302
    return secret


def _step_up(browser: DemoBrowser, secret: str) -> None:
    code = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))  # not used yet
    response = browser.post("/account/step-up", {"code": code, "next": "/"})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]


def _first_then_step_up(app: Flask) -> tuple[DemoBrowser, TokenSet, uuid.UUID]:
    """Alice authorizes the app at aal1, then her browser steps up to aal2."""
    browser = DemoBrowser(app)
    assert browser.sign_in(*ALICE).status_code == 302
    secret = _enrol(browser)
    client = seeded(app, "confidential")
    first = exchange_code(app, client, *browser.authorize(client, scope=BASE_SCOPE))
    [session] = _app_sessions(app, ALICE[0], client.info.id)
    assert session.aal.value == "aal1"
    _step_up(browser, secret)
    return browser, first, session.id


def test_step_up_with_id_token_hint_leaves_one_session_and_the_old_refresh_token_dies(
        demo_app: Flask, revoked: list[tuple[uuid.UUID, str]]) -> None:
    client = seeded(demo_app, "confidential")
    browser, first, old_sid = _first_then_step_up(demo_app)
    second = exchange_code(demo_app, client, *browser.authorize(client, scope=PAYMENTS_SCOPE, extra={
        "acr_values": "aal2", "id_token_hint": first.body["id_token"]}))

    # One session of the app: the new one, at aal2; the old one ended as "superseded".
    sessions = _app_sessions(demo_app, ALICE[0], client.info.id)
    assert [s.aal.value for s in sessions] == ["aal2"]
    new_sid = sessions[0].id
    assert new_sid != old_sid and (old_sid, "superseded") in revoked
    page = browser.get("/account/sessions").get_data(as_text=True)
    assert page.count(f'data-client-id="{client.info.id}"') == 1
    assert f'data-session-id="{old_sid}"' not in page

    # The new session's access token is live; the old one is not.
    assert introspect(demo_app, client, second.access_token).get_json()["active"] is True
    assert introspect(demo_app, client, first.access_token).get_json()["active"] is False
    # The old refresh token is refused, and refusing it does not end the new session.
    old = refresh(demo_app, client, first.refresh_token or "")
    assert old.status_code == 400 and old.get_json()["error"] == "invalid_grant"
    assert [s.id for s in _app_sessions(demo_app, ALICE[0], client.info.id)] == [new_sid]
    new = refresh(demo_app, client, second.refresh_token or "")
    assert new.status_code == 200, new.get_data(as_text=True)
    assert set(new.get_json()["scope"].split()) == set(PAYMENTS_SCOPE.split())


def test_without_a_hint_the_earlier_session_stays(demo_app: Flask) -> None:
    """Nothing names it, so nothing ends it (a second device signs in the same way)."""
    client = seeded(demo_app, "confidential")
    browser, first, _ = _first_then_step_up(demo_app)
    exchange_code(demo_app, client, *browser.authorize(client, scope=PAYMENTS_SCOPE,
                                                       extra={"acr_values": "aal2"}))
    assert sorted(s.aal.value for s in _app_sessions(demo_app, ALICE[0], client.info.id)) == [
        "aal1", "aal2"]
    assert refresh(demo_app, client, first.refresh_token or "").status_code == 200


def test_a_hint_of_another_users_session_ends_nothing(demo_app: Flask) -> None:
    """Alice's ID token passed through Mallory's browser cannot end Alice's session."""
    client = seeded(demo_app, "confidential")
    alice = DemoBrowser(demo_app)
    assert alice.sign_in(*ALICE).status_code == 302
    alices = exchange_code(demo_app, client, *alice.authorize(client, scope=BASE_SCOPE))
    mallory = DemoBrowser(demo_app)
    mallory.sign_up("mallory@example.com", "mallory's long password")
    exchange_code(demo_app, client, *mallory.authorize(client, scope=BASE_SCOPE, extra={
        "id_token_hint": alices.body["id_token"]}))
    assert len(_app_sessions(demo_app, ALICE[0], client.info.id)) == 1
    assert len(_app_sessions(demo_app, "mallory@example.com", client.info.id)) == 1
    assert refresh(demo_app, client, alices.refresh_token or "").status_code == 200


def test_a_hint_of_another_clients_session_ends_nothing(demo_app: Flask) -> None:
    """The public client's ID token does not name a session of the confidential client."""
    client, public = seeded(demo_app, "confidential"), seeded(demo_app, "public")
    browser = DemoBrowser(demo_app)
    assert browser.sign_in(*ALICE).status_code == 302
    code, verifier = browser.authorize(public, scope=BASE_SCOPE)
    token = demo_app.test_client().post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "redirect_uri": public.info.redirect_uris[0], "client_id": str(public.info.id)})
    assert token.status_code == 200
    exchange_code(demo_app, client, *browser.authorize(client, scope=BASE_SCOPE, extra={
        "id_token_hint": token.get_json()["id_token"]}))
    assert len(_app_sessions(demo_app, ALICE[0], public.info.id)) == 1
    assert len(_app_sessions(demo_app, ALICE[0], client.info.id)) == 1


def test_a_forged_hint_is_ignored_and_the_authorization_goes_on(demo_app: Flask) -> None:
    client = seeded(demo_app, "confidential")
    browser = DemoBrowser(demo_app)
    assert browser.sign_in(*ALICE).status_code == 302
    first = exchange_code(demo_app, client, *browser.authorize(client, scope=BASE_SCOPE))
    header, payload, _ = first.body["id_token"].split(".")
    forged = f"{header}.{payload}.c2lnbmF0dXJl"
    exchange_code(demo_app, client, *browser.authorize(client, scope=BASE_SCOPE, extra={
        "id_token_hint": forged}))
    assert len(_app_sessions(demo_app, ALICE[0], client.info.id)) == 2


def test_a_code_that_is_never_redeemed_ends_nothing(demo_app: Flask) -> None:
    """The old session ends with the new one's creation, not when the code is issued."""
    client = seeded(demo_app, "confidential")
    browser, first, _ = _first_then_step_up(demo_app)
    browser.authorize(client, scope=PAYMENTS_SCOPE, extra={
        "acr_values": "aal2", "id_token_hint": first.body["id_token"]})
    assert [s.aal.value for s in _app_sessions(demo_app, ALICE[0], client.info.id)] == ["aal1"]
    assert refresh(demo_app, client, first.refresh_token or "").status_code == 200


def test_the_store_ends_a_replaced_session_only_of_the_same_user_and_client(demo_app: Flask) -> None:
    store = get_state(demo_app).services.sessions
    alice = _user_id(demo_app, ALICE[0])
    client, public = seeded(demo_app, "confidential").info.id, seeded(demo_app, "public").info.id

    def start(client_id: uuid.UUID, replaces: uuid.UUID | None = None) -> uuid.UUID:
        return store.create_session(user_id=alice, client_id=client_id, scopes="openid",
                                    aal=Aal.AAL1, amr=["pwd"], replaces=replaces).session.id

    of_public = start(public)
    first = start(client, replaces=of_public)  # another client's session: left alone
    assert store.get(of_public) is not None
    second = start(client, replaces=first)
    assert store.get(first) is None and store.get(second) is not None
