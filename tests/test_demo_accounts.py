"""Accounts in the demo: argon2 hashes, CSRF on every form, cookie flags, sign-in sessions.

Each test runs on SQLite and on PostgreSQL: the demo creates and migrates its database itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import argon2
import pytest
from flask import Flask
from sqlalchemy import Row, Table, func, select

from demo_server.testing import DemoBrowser, make_demo_app
from demo_server.users import users_table
from oauth_sessions import Aal, get_state
from oauth_sessions.storage.models import Session

PASSWORD = "a long demo password"




def _count(app: Flask, table: Table) -> int:
    with get_state(app).engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _sessions(app: Flask) -> int:
    return _count(app, cast(Table, Session.__table__))


def test_sign_up_stores_an_argon2id_hash_never_the_password(demo_app: Flask) -> None:
    browser = DemoBrowser(demo_app)
    response = browser.sign_up("Bob@Example.com", PASSWORD)
    assert response.status_code == 302
    with get_state(demo_app).engine.connect() as conn:
        row = conn.execute(select(users_table).where(users_table.c.email == "bob@example.com")).one()
    assert row.encrypted_password.startswith("$argon2id$")
    assert PASSWORD not in row.encrypted_password


@pytest.mark.parametrize(("email", "password", "confirm", "message"), [
    ("not-an-address", PASSWORD, PASSWORD, "Enter an e-mail address like name@example.com."),
    ("carol@example.com", "short", "short", "Choose a password of at least 10 characters."),
    ("carol@example.com", PASSWORD, PASSWORD + "x", "The two passwords are not the same."),
])
def test_bad_sign_up_says_what_to_fix_and_writes_nothing(demo_app: Flask, email: str, password: str,
                                                         confirm: str, message: str) -> None:
    users_before = _count(demo_app, users_table)
    browser = DemoBrowser(demo_app)
    browser.get("/signup")
    response = browser.post("/signup", {"email": email, "password": password, "password_confirm": confirm})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
    assert _count(demo_app, users_table) == users_before
    assert _sessions(demo_app) == 0


def test_sign_in_starts_a_first_party_aal1_session_and_sign_out_ends_it(demo_app: Flask) -> None:
    browser = DemoBrowser(demo_app)
    assert browser.sign_in("alice@example.com", "alice-demo-password").status_code == 302
    store = get_state(demo_app).components["sessions"]
    with get_state(demo_app).engine.connect() as conn:
        user_id = conn.execute(
            select(users_table.c.id).where(users_table.c.email == "alice@example.com")).scalar_one()
    (info,) = store.list_for_user(user_id)
    assert info.client_id is None and info.aal == Aal.AAL1 and info.scopes == ()
    assert [a.method for a in store.get_amr(info.id)] == ["pwd"]
    assert info.user_agent and "Chrome/120.0" in info.user_agent
    assert browser.get("/account/sessions").status_code == 200
    assert browser.post("/signout").status_code == 302
    assert store.list_for_user(user_id) == []
    assert browser.get("/account/sessions").status_code == 302  # back to sign-in


def test_wrong_password_and_unknown_email_get_the_same_answer(demo_app: Flask) -> None:
    browser = DemoBrowser(demo_app)
    wrong = browser.sign_in("alice@example.com", "not her password")
    unknown = browser.sign_in("nobody@example.com", "not her password")
    message = "That e-mail address and password do not match an account."
    assert wrong.status_code == unknown.status_code == 401
    assert message in wrong.get_data(as_text=True) and message in unknown.get_data(as_text=True)
    assert _sessions(demo_app) == 0


@pytest.mark.parametrize("path", ["/signin", "/signup", "/signout", "/account/sessions/revoke",
                                  "/developers", "/account/totp"])
def test_every_form_refuses_a_post_without_the_csrf_token(demo_app: Flask, path: str) -> None:
    browser = DemoBrowser(demo_app)
    browser.sign_in("alice@example.com", "alice-demo-password")
    sessions_before = _sessions(demo_app)
    response = browser.post(path, {"email": "alice@example.com", "password": "alice-demo-password",
                                   "which": "all", "name": "x"}, csrf=False)
    assert response.status_code == 400
    assert "did not come from this site" in response.get_data(as_text=True)
    assert _sessions(demo_app) == sessions_before


def test_a_csrf_token_of_another_browser_is_refused(demo_app: Flask) -> None:
    attacker, victim = DemoBrowser(demo_app), DemoBrowser(demo_app)
    attacker.get("/signin")
    victim.sign_in("alice@example.com", "alice-demo-password")
    response = victim.post("/account/sessions/revoke", {"which": "all", "csrf_token": attacker.csrf})
    assert response.status_code == 400
    assert _sessions(demo_app) == 1


def test_session_cookie_is_httponly_and_samesite_lax(demo_app: Flask) -> None:
    response = DemoBrowser(demo_app).get("/signin")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("demo_provider_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http on 127.0.0.1: a Secure cookie would never come back


def test_behind_https_the_cookie_is_secure_and_host_only(tmp_path: Path) -> None:
    app = make_demo_app(tmp_path, f"sqlite:///{tmp_path / 'demo.db'}",
                        OAUTH_SESSIONS_ISSUER="https://id.example.com")
    response = app.test_client().get("/signin", base_url="https://id.example.com")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-demo_provider=")
    assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie


def test_sign_in_replaces_the_cookie_session_against_fixation(demo_app: Flask) -> None:
    browser = DemoBrowser(demo_app)
    browser.get("/signin")
    token_before = browser.csrf
    browser.post("/signin", {"email": "alice@example.com", "password": "alice-demo-password"})
    browser.get("/")
    assert browser.csrf is not None and browser.csrf != token_before


def test_revoking_the_browser_session_signs_the_browser_out(demo_app: Flask) -> None:
    browser = DemoBrowser(demo_app)
    browser.sign_in("alice@example.com", "alice-demo-password")
    store = get_state(demo_app).components["sessions"]
    user_id = next(s.user_id for s in _all_sessions(demo_app))
    assert store.revoke_user(user_id, reason="test", first_party=True) == 1
    response = browser.get("/account/sessions")
    assert response.status_code == 302 and "/signin" in response.headers["Location"]


def _all_sessions(app: Flask) -> list[Row[Any]]:
    with get_state(app).engine.connect() as conn:
        return list(conn.execute(select(Session.__table__)).all())


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example",
                                    "javascript:alert(1)"])
def test_next_never_leaves_the_site(demo_app: Flask, target: str) -> None:
    browser = DemoBrowser(demo_app)
    browser.get("/signin")
    response = browser.post("/signin", {"email": "alice@example.com",
                                        "password": "alice-demo-password", "next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_pages_refuse_framing_and_caching(demo_app: Flask) -> None:
    response = DemoBrowser(demo_app).get("/signin")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_the_browser_session_ends_exactly_at_not_after(demo_app: Flask) -> None:
    """A sign-in is a session like any other: at ``not_after`` it is over (design: "expired *at*")."""
    from freezegun import freeze_time

    browser = DemoBrowser(demo_app)
    browser.sign_in(*("alice@example.com", "alice-demo-password"))
    (row,) = _all_sessions(demo_app)
    not_after = row.not_after if row.not_after.tzinfo else row.not_after.replace(tzinfo=UTC)
    with freeze_time(not_after - timedelta(microseconds=1)):
        assert browser.get("/account/sessions").status_code == 200
    with freeze_time(not_after):
        response = browser.get("/account/sessions")
    assert response.status_code == 302 and "/signin" in response.headers["Location"]


@pytest.mark.postgres
def test_database_url_from_the_environment_is_used_and_migrated(tmp_path: Path, pg_databases: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg_databases.create("_demo_env")
    monkeypatch.setenv("DEMO_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", url)
    from demo_server.app import create_app

    app = create_app({"DEMO_PASSWORD_PROFILE": argon2.profiles.CHEAPEST})
    try:
        assert get_state(app).engine.dialect.name == "postgresql"
        browser = DemoBrowser(app)
        assert browser.sign_in("alice@example.com", "alice-demo-password").status_code == 302
        assert _sessions(app) == 1
    finally:
        get_state(app).engine.dispose()


# -- password guessing is throttled per address (NIST SP 800-63B section 5.2.2) ---------------


def test_ten_wrong_passwords_lock_the_address_until_the_exact_end_of_the_lock(demo_app: Flask) -> None:
    from freezegun import freeze_time

    from demo_server.users import SIGN_IN_LOCK_SECONDS, SIGN_IN_MAX_FAILURES

    browser = DemoBrowser(demo_app)
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with freeze_time(start) as clock:
        statuses = [browser.sign_in("alice@example.com", "wrong password").status_code
                    for _ in range(SIGN_IN_MAX_FAILURES)]
        assert statuses == [401] * (SIGN_IN_MAX_FAILURES - 1) + [429]
        clock.move_to(start + timedelta(seconds=SIGN_IN_LOCK_SECONDS, microseconds=-1))
        locked = browser.sign_in(*("alice@example.com", "alice-demo-password"))
        assert locked.status_code == 429  # even the right password waits for the lock to end
        assert "Too many wrong passwords" in locked.get_data(as_text=True)
        assert _sessions(demo_app) == 0
        clock.move_to(start + timedelta(seconds=SIGN_IN_LOCK_SECONDS))
        assert browser.sign_in("alice@example.com", "alice-demo-password").status_code == 302
    assert _sessions(demo_app) == 1


def test_unknown_addresses_lock_the_same_way(demo_app: Flask) -> None:
    from demo_server.users import SIGN_IN_MAX_FAILURES

    browser = DemoBrowser(demo_app)
    statuses = [browser.sign_in("nobody@example.com", "guess").status_code
                for _ in range(SIGN_IN_MAX_FAILURES)]
    assert statuses[-1] == 429
    assert browser.sign_in("alice@example.com", "alice-demo-password").status_code == 302  # others unaffected


def test_a_right_password_clears_the_count(demo_app: Flask) -> None:
    from demo_server.users import SIGN_IN_MAX_FAILURES

    browser = DemoBrowser(demo_app)
    for _ in range(SIGN_IN_MAX_FAILURES - 1):
        assert browser.sign_in("alice@example.com", "wrong password").status_code == 401
    assert browser.sign_in("alice@example.com", "alice-demo-password").status_code == 302
    for _ in range(SIGN_IN_MAX_FAILURES - 1):
        assert browser.sign_in("alice@example.com", "wrong password").status_code == 401
