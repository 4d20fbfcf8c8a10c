"""Issue 15, the demo's items: what an outside review of the demo provider got through.

Each test names the item it covers. They drive the demo like a browser (and an attacker's
browser) on SQLite and PostgreSQL; rules with a time window are checked at their exact edges
with frozen time.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from argon2 import PasswordHasher
from flask import Flask
from freezegun import freeze_time
from sqlalchemy import select
from werkzeug.test import TestResponse

from demo_server import mfa, totp
from demo_server.app import seeded_clients
from demo_server.db import sign_in_throttle
from demo_server.seed import banner
from demo_server.testing import (
    DemoBrowser,
    TokenSet,
    exchange_code,
    make_demo_app,
    refresh,
    seeded,
    wipe_postgres,
)
from demo_server.users import (
    SIGN_IN_MAX_FAILURES,
    Passwords,
    SignInLocked,
    authenticate,
    find_account,
    users_table,
)
from oauth_sessions import Aal, get_state
from oauth_sessions.storage.key_encryption import ENCRYPTED_PREFIX
from oauth_sessions.storage.models import Session
from oauth_sessions.storage.sessions import SessionStore

ALICE = ("alice@example.com", "alice-demo-password")
SECRET_RE = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # a multiple of 30 s: a TOTP step starts here


def _alice_id(app: Flask) -> uuid.UUID:
    account = find_account(get_state(app).engine, ALICE[0])
    assert account is not None
    return account.id


def _store(app: Flask) -> SessionStore:
    store: SessionStore = get_state(app).components["sessions"]
    return store


def _signed_in(app: Flask) -> DemoBrowser:
    browser = DemoBrowser(app)
    assert browser.sign_in(*ALICE).status_code == 302
    return browser


def _enrol(browser: DemoBrowser, at: datetime | None = None) -> str:
    """Set up an authenticator app at aal1; returns its secret (the code of ``at``'s step is used)."""
    match = SECRET_RE.search(browser.get("/account/totp").get_data(as_text=True))
    assert match is not None
    secret = match.group(1).replace(" ", "")
    code = pyotp.TOTP(secret).at(at or datetime.now(UTC))
    assert browser.post("/account/totp", {"action": "verify", "code": code}).status_code == 302
    return secret


def _step_up(browser: DemoBrowser, secret: str, at: datetime | None = None) -> None:
    """Prove the factor with the code of the step after ``at`` (never used yet)."""
    code = pyotp.TOTP(secret).at((at or datetime.now(UTC)) + timedelta(seconds=30))
    response = browser.post("/account/step-up", {"code": code, "next": "/"})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]


def _factor(app: Flask) -> totp.Factor | None:
    return totp.factor_for(get_state(app).engine, _alice_id(app), status="verified")


def _get(app: Flask, path: str, tokens: TokenSet) -> TestResponse:
    return app.test_client().get(path, headers={"Authorization": f"Bearer {tokens.access_token}"})


# -- item 1: a password alone must not change the second factor ----------------------------


def test_issue15_item1_password_only_session_cannot_remove_or_replace_the_factor(
        demo_app: Flask) -> None:
    victim = _signed_in(demo_app)
    secret = _enrol(victim)
    factor = _factor(demo_app)
    assert factor is not None

    attacker = _signed_in(demo_app)  # knows the password, not the authenticator
    response = attacker.post("/account/totp/remove")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/account/step-up?")
    assert "reconfirm=1" in response.headers["Location"]
    assert _factor(demo_app) == factor  # still there, unchanged

    # Replacing goes through enrolment, which refuses while a factor is set up.
    assert attacker.get("/account/totp").status_code == 302
    rogue = pyotp.random_base32(length=32)
    attacker.post("/account/totp", {"action": "verify", "code": pyotp.TOTP(rogue).now()})
    assert _factor(demo_app) == factor
    assert totp.factor_for(get_state(demo_app).engine, _alice_id(demo_app),
                           status="unverified") is None

    # The victim's authenticator still works.
    _step_up(victim, secret)
    assert {s.aal for s in _store(demo_app).list_for_user(_alice_id(demo_app))} >= {Aal.AAL2}


def test_issue15_item1_aal2_through_an_old_proof_is_not_enough(demo_app: Flask) -> None:
    """aal2 reached by the factor, but longer ago than the window: a new code is asked for."""
    with freeze_time(T0) as clock:
        browser = _signed_in(demo_app)
        secret = _enrol(browser, T0)
        _step_up(browser, secret, T0)
        clock.tick(timedelta(hours=2))
        response = browser.post("/account/totp/remove")
        assert response.headers["Location"].startswith("/account/step-up?")
        assert _factor(demo_app) is not None
        # The step-up page asks for a code even though the browser is at aal2.
        page = browser.get(response.headers["Location"]).get_data(as_text=True)
        assert 'name="code"' in page and "already signed in with two factors" not in page


@pytest.mark.parametrize(("age", "removed"), [
    (timedelta(seconds=mfa.FACTOR_CHANGE_MAX_AGE), True),
    (timedelta(seconds=mfa.FACTOR_CHANGE_MAX_AGE, microseconds=1), False),
])
def test_issue15_item1_the_fresh_proof_window_ends_exactly_at_its_limit(
        demo_app: Flask, age: timedelta, removed: bool) -> None:
    with freeze_time(T0) as clock:
        browser = _signed_in(demo_app)
        secret = _enrol(browser, T0)
        _step_up(browser, secret, T0)  # the totp amr claim is stamped T0
        clock.move_to(T0 + age)
        browser.post("/account/totp/remove")
    assert (_factor(demo_app) is None) is removed


def test_issue15_item1_has_fresh_proof_needs_this_factor(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    secret = _enrol(browser)
    _step_up(browser, secret)
    factor = _factor(demo_app)
    assert factor is not None
    (info,) = [s for s in _store(demo_app).list_for_user(_alice_id(demo_app)) if s.client_id is None]
    amr = _store(demo_app).get_amr(info.id)
    now = datetime.now(UTC)
    assert mfa.has_fresh_proof(info, amr, factor, now)
    other = totp.Factor(id=uuid.uuid4(), user_id=factor.user_id, friendly_name=None,
                        status="verified", secret=factor.secret, created_at=factor.created_at)
    assert not mfa.has_fresh_proof(info, amr, other, now)
    assert not mfa.has_fresh_proof(info, [a for a in amr if a.method != "totp"], factor, now)


@pytest.mark.parametrize("change", ["enrol", "remove"])
def test_issue15_item1_a_factor_change_ends_the_other_sessions_and_is_logged(
        demo_app: Flask, change: str, caplog: pytest.LogCaptureFixture) -> None:
    browser = _signed_in(demo_app)
    secret = _enrol(browser) if change == "remove" else ""
    if change == "remove":
        _step_up(browser, secret)
    (current,) = [s.id for s in _store(demo_app).list_for_user(_alice_id(demo_app))]
    elsewhere = _signed_in(demo_app)
    client = seeded(demo_app, "confidential")
    app_tokens = exchange_code(demo_app, client, *elsewhere.authorize(client))
    assert len(_store(demo_app).list_for_user(_alice_id(demo_app))) == 3

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="demo_server.mfa"):
        if change == "enrol":
            secret = _enrol(browser)
            assert _factor(demo_app) is not None
        else:
            assert browser.post("/account/totp/remove").status_code == 302
            assert _factor(demo_app) is None

    remaining = _store(demo_app).list_for_user(_alice_id(demo_app))
    assert [s.id for s in remaining] == [current]
    assert remaining[0].aal == Aal.AAL1
    assert elsewhere.get("/account/security").status_code == 302  # signed out
    assert _get(demo_app, "/api/me", app_tokens).status_code == 401
    (record,) = [r for r in caplog.records if r.name == "demo_server.mfa"]
    message = record.getMessage()
    assert f"second factor {'enrolled' if change == 'enrol' else 'removed'}" in message
    assert "other_sessions_ended=2" in message and str(current) in message
    assert secret not in message and app_tokens.access_token not in message


# -- item 2: every protected API route checks its scope -----------------------------------


def _aal2_browser(app: Flask) -> DemoBrowser:
    browser = _signed_in(app)
    _step_up(browser, _enrol(browser))
    return browser


@pytest.mark.parametrize(("path", "scope"), [("/api/me", "profile"), ("/api/payments", "payments")])
def test_issue15_item2_a_token_without_the_routes_scope_gets_403_insufficient_scope(
        demo_app: Flask, path: str, scope: str) -> None:
    """Even from a session at aal2, a token lacking the route's scope is refused (RFC 6750 3.1)."""
    browser = _aal2_browser(demo_app)
    client = seeded(demo_app, "confidential")
    granted = "openid email offline_access"
    tokens = exchange_code(demo_app, client, *browser.authorize(client, scope=granted))
    assert tokens.body["scope"].split() == granted.split()
    response = _get(demo_app, path, tokens)
    assert response.status_code == 403
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and f'scope="{scope}"' in challenge
    assert response.get_json()["error"] == "insufficient_scope"

    with_scope = exchange_code(demo_app, client, *browser.authorize(client, scope=f"openid {scope}"))
    assert _get(demo_app, path, with_scope).status_code == 200


def test_issue15_item2_payments_with_its_scope_still_needs_aal2(demo_app: Flask) -> None:
    browser = _aal2_browser(demo_app)
    client = seeded(demo_app, "confidential")
    tokens = exchange_code(demo_app, client, *browser.authorize(client, scope="openid payments"))
    assert _get(demo_app, "/api/payments", tokens).status_code == 200
    app_session = next(s for s in _store(demo_app).list_for_user(_alice_id(demo_app))
                       if s.client_id == client.info.id)
    _store(demo_app).set_aal(app_session.id, Aal.AAL1)  # e.g. the factor went away
    response = _get(demo_app, "/api/payments", tokens)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge and 'acr_values="aal2"' in challenge


# -- item 16: the address is released only under the "email" scope --------------------------


def test_issue15_item16_profile_without_email_releases_no_address(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    client = seeded(demo_app, "confidential")
    tokens = exchange_code(demo_app, client, *browser.authorize(client, scope="openid profile"))
    userinfo = _get(demo_app, "/oauth/userinfo", tokens)
    me = _get(demo_app, "/api/me", tokens)
    assert userinfo.status_code == 200 and me.status_code == 200
    for body in (userinfo.get_data(as_text=True), me.get_data(as_text=True)):
        assert "alice" not in body.lower()
    assert me.get_json()["email"] is None

    with_email = exchange_code(demo_app, client,
                               *browser.authorize(client, scope="openid profile email"))
    assert _get(demo_app, "/oauth/userinfo", with_email).get_json()["email"] == ALICE[0]
    assert _get(demo_app, "/api/me", with_email).get_json()["email"] == ALICE[0]


# -- item 4: the sign-in lock holds under concurrent guesses ------------------------------


class _CountingHasher:
    """argon2's hasher, counting the passwords it evaluates, slowed like a real argon2 check."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner = inner
        self.calls = 0
        self._lock = threading.Lock()

    def verify(self, stored: str, password: str) -> bool:
        with self._lock:
            self.calls += 1
        time.sleep(0.05)  # the window the race used: the slow hash between read and write
        return self.inner.verify(stored, password)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.mark.postgres
def test_issue15_item4_forty_concurrent_guesses_evaluate_at_most_the_allowed_number(
        demo_pg_url: str, tmp_path: Path) -> None:
    wipe_postgres(demo_pg_url)
    app = make_demo_app(tmp_path / "instance", demo_pg_url)
    try:
        engine = get_state(app).engine
        passwords: Passwords = app.extensions["demo_passwords"]
        counting = _CountingHasher(passwords.hasher)
        passwords.hasher = counting  # type: ignore[assignment]
        threads_count = 40
        barrier = threading.Barrier(threads_count)
        outcomes: list[str] = []

        def guess(i: int) -> None:
            barrier.wait()
            try:
                found = authenticate(engine, passwords, ALICE[0], f"wrong guess {i}")
                outcomes.append("account" if found else "wrong")
            except SignInLocked:
                outcomes.append("locked")

        workers = [threading.Thread(target=guess, args=(i,)) for i in range(threads_count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert len(outcomes) == threads_count and "account" not in outcomes
        assert counting.calls <= SIGN_IN_MAX_FAILURES
        assert outcomes.count("wrong") + outcomes.count("locked") == threads_count

        evaluated = counting.calls
        with pytest.raises(SignInLocked):  # the right password, while locked
            authenticate(engine, passwords, ALICE[0], ALICE[1])
        assert counting.calls == evaluated  # not even evaluated
    finally:
        get_state(app).engine.dispose()


def test_issue15_item4_the_attempt_is_counted_before_the_password_is_checked(
        demo_app: Flask) -> None:
    """The reservation is committed while the hash runs: a second request sees it (both DBs)."""
    engine = get_state(demo_app).engine
    passwords: Passwords = demo_app.extensions["demo_passwords"]
    seen: list[int | None] = []

    class Peeking(_CountingHasher):
        def verify(self, stored: str, password: str) -> bool:
            with engine.connect() as conn:
                seen.append(conn.execute(select(sign_in_throttle.c.failed_attempts).where(
                    sign_in_throttle.c.key == ALICE[0])).scalar())
            return self.inner.verify(stored, password)

    passwords.hasher = Peeking(passwords.hasher)  # type: ignore[assignment]
    assert authenticate(engine, passwords, ALICE[0], "wrong guess") is None
    assert authenticate(engine, passwords, ALICE[0], "wrong again") is None
    assert seen == [1, 2]
    assert authenticate(engine, passwords, ALICE[0], ALICE[1]) is not None
    with engine.connect() as conn:  # a right password clears the count
        assert conn.execute(select(sign_in_throttle)).first() is None


# -- item 15: sign-up does not tell which addresses have an account -------------------------


def test_issue15_item15_sign_up_answers_the_same_for_a_taken_and_a_free_address(
        demo_app: Flask) -> None:
    def sign_up(email: str) -> TestResponse:
        browser = DemoBrowser(demo_app)
        browser.get("/signup?next=/account/sessions")
        password = "a long new password"
        return browser.post("/signup?next=/account/sessions", {
            "email": email, "password": password, "password_confirm": password})

    engine = get_state(demo_app).engine
    with engine.connect() as conn:
        before = conn.execute(select(users_table).where(users_table.c.email == ALICE[0])).one()
    taken, free = sign_up(ALICE[0]), sign_up("newcomer@example.com")
    assert taken.status_code == free.status_code == 302
    assert taken.headers["Location"] == free.headers["Location"]
    assert taken.headers["Location"].startswith("/signin?")
    assert "Set-Cookie" in taken.headers and "Set-Cookie" in free.headers  # both: a flash only
    assert _store(demo_app).list_for_user(_alice_id(demo_app)) == []  # nobody signed in
    with engine.connect() as conn:  # the existing account is left exactly as it was
        after = conn.execute(select(users_table).where(users_table.c.email == ALICE[0])).one()
    assert after == before
    assert _signed_in(demo_app) is not None  # the old password still works
    assert find_account(engine, "newcomer@example.com") is not None


def test_issue15_item15_the_neutral_message_is_the_same_page_either_way(demo_app: Flask) -> None:
    bodies = []
    for email in (ALICE[0], "someone-new@example.com"):
        browser = DemoBrowser(demo_app)
        browser.get("/signup")
        response = browser.post("/signup", {"email": email, "password": "a long new password",
                                            "password_confirm": "a long new password"},
                                follow_redirects=True)
        assert response.status_code == 200
        bodies.append(re.sub(r'name="csrf_token" value="[^"]+"', "", response.get_data(as_text=True)))
    assert bodies[0] == bodies[1]
    assert "If this address did not have an account" in bodies[0]
    assert "already exists" not in bodies[0]


# -- item 5: the instance folder is private, and session HMAC keys are encrypted at rest ------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_issue15_item5_instance_folder_0700_and_every_file_in_it_0600(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask that made demo.db 0644
    try:
        instance = tmp_path / "instance"
        app = make_demo_app(instance, f"sqlite:///{instance / 'demo.db'}")
        try:
            browser = _signed_in(app)  # writes: the journal comes and goes
            assert browser.get("/account/sessions").status_code == 200
            with get_state(app).engine.connect() as conn:  # WAL: -wal and -shm stay while open
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                conn.exec_driver_sql("CREATE TABLE wal_probe (x INTEGER)")
                conn.commit()
                assert _mode(instance) == 0o700
                files = sorted(instance.iterdir())
                names = {f.name for f in files}
                assert {"demo.db", "demo.db-wal", "demo.db-shm", "secret_key", "encryption_key",
                        "demo-clients.json"} <= names
                assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        finally:
            get_state(app).engine.dispose()
    finally:
        os.umask(old_umask)


def test_issue15_item5_an_existing_world_readable_instance_is_narrowed(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    first = make_demo_app(instance, f"sqlite:///{instance / 'demo.db'}")
    get_state(first).engine.dispose()
    instance.chmod(0o755)
    for path in instance.iterdir():
        path.chmod(0o644)
    (instance / "demo.db-journal").write_text("")
    (instance / "demo.db-journal").chmod(0o644)
    again = make_demo_app(instance, f"sqlite:///{instance / 'demo.db'}")
    get_state(again).engine.dispose()
    assert _mode(instance) == 0o700
    for name in ("demo.db", "demo.db-journal", "secret_key", "encryption_key", "demo-clients.json"):
        assert _mode(instance / name) == 0o600, name


def test_issue15_item5_session_hmac_keys_are_encrypted_at_rest(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    client = seeded(demo_app, "confidential")
    tokens = exchange_code(demo_app, client, *browser.authorize(client))
    with get_state(demo_app).engine.connect() as conn:
        stored = conn.execute(select(Session.__table__.c.refresh_token_hmac_key)).scalars().all()
    assert len(stored) == 2 and all(key.startswith(ENCRYPTED_PREFIX + "demo1:") for key in stored)
    assert refresh(demo_app, client, tokens.refresh_token or "").status_code == 200


def test_issue15_item5_plaintext_keys_from_before_are_encrypted_at_start(
        tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    url = f"sqlite:///{instance / 'demo.db'}"
    plain = make_demo_app(instance, url, OAUTH_SESSIONS_ENCRYPTION_KEYS={},
                          OAUTH_SESSIONS_ENCRYPTION_KEY_ID=None)
    _signed_in(plain)
    engine = get_state(plain).engine
    with engine.connect() as conn:
        (before,) = conn.execute(select(Session.__table__.c.refresh_token_hmac_key)).scalars()
    engine.dispose()
    assert not before.startswith(ENCRYPTED_PREFIX)
    app = make_demo_app(instance, url)
    with get_state(app).engine.connect() as conn:
        (after,) = conn.execute(select(Session.__table__.c.refresh_token_hmac_key)).scalars()
    get_state(app).engine.dispose()
    assert after.startswith(ENCRYPTED_PREFIX)


# -- "Also": the start-up banner prints the seeded client's secret on first seeding only ------


def test_issue15_also_the_banner_prints_the_client_secret_only_when_it_was_made(
        tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    url = f"sqlite:///{instance / 'demo.db'}"
    credentials = instance / "demo-clients.json"

    def start() -> tuple[str, str]:
        app = make_demo_app(instance, url)
        get_state(app).engine.dispose()
        client = seeded(app, "confidential")
        assert client.secret is not None
        return banner("http://127.0.0.1:5000", seeded_clients(app), "http://x", credentials), \
            client.secret

    first, secret = start()
    assert secret in first and "printed once" in first
    second, same = start()
    assert same == secret and secret not in second
    assert f"client_secret   in {credentials}" in second
    credentials.unlink()  # lost: the secret is rotated, and the new one printed once
    third, rotated = start()
    assert rotated != secret and rotated in third


# -- "Also": the consent page gets the demo's full Content-Security-Policy ------------------


def test_issue15_also_the_consent_page_gets_the_demos_full_policy(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    client = seeded(demo_app, "confidential")
    response = browser.get(f"/oauth/authorize?response_type=code&client_id={client.info.id}"
                           f"&redirect_uri={client.info.redirect_uris[0]}&scope=openid"
                           "&code_challenge=" + "a" * 43 + "&code_challenge_method=S256")
    assert response.status_code == 200 and 'action="/oauth/authorize"' in response.get_data(
        as_text=True)
    home = browser.get("/")
    assert response.headers["Content-Security-Policy"] == home.headers["Content-Security-Policy"]
    policy = response.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in policy


# -- item 11: NUL and control characters never reach the database as a 500 -------------------

HOSTILE = ["a\x00b@example.com", "alice@example.com\x00", "al\x1bice@example.com"]


@pytest.mark.parametrize("email", HOSTILE)
def test_issue15_item11_control_characters_in_the_email_are_a_form_error(
        demo_app: Flask, email: str) -> None:
    users_before = _users(demo_app)
    browser = DemoBrowser(demo_app)
    browser.get("/signup")
    signup = browser.post("/signup", {"email": email, "password": "a long new password",
                                      "password_confirm": "a long new password"})
    assert signup.status_code == 400
    assert "Enter an e-mail address like name@example.com." in signup.get_data(as_text=True)
    signin = browser.post("/signin", {"email": email, "password": ALICE[1]})
    assert signin.status_code == 401  # the same answer as for any unknown address
    assert "do not match an account" in signin.get_data(as_text=True)
    assert _users(demo_app) == users_before
    assert _store(demo_app).list_for_user(_alice_id(demo_app)) == []


def _users(app: Flask) -> int:
    with get_state(app).engine.connect() as conn:
        return len(conn.execute(select(users_table.c.id)).all())


@pytest.mark.parametrize("agent", ["Mozilla/5.0\x00evil", "Mozilla/5.0\x01\x7f\x9b x"])
def test_issue15_item11_control_characters_in_the_user_agent_are_stripped(
        demo_app: Flask, agent: str) -> None:
    browser = DemoBrowser(demo_app, user_agent=agent)
    assert browser.sign_in(*ALICE).status_code == 302  # /signin
    client = seeded(demo_app, "confidential")
    tokens = exchange_code(demo_app, client, *browser.authorize(client))  # /oauth/authorize
    sessions = _store(demo_app).list_for_user(_alice_id(demo_app))
    assert len(sessions) == 2 and tokens.access_token
    for info in sessions:
        assert info.user_agent is not None and info.user_agent.startswith("Mozilla/5.0")
        assert not any(c in info.user_agent for c in "\x00\x01\x7f\x9b")


def test_issue15_item11_a_client_name_with_nul_is_a_form_error(demo_app: Flask) -> None:
    browser = _signed_in(demo_app)
    before = len(get_state(demo_app).components["clients"].list())
    browser.get("/developers")
    response = browser.post("/developers", {
        "name": "Budget\x00Buddy", "redirect_uris": "https://budget.example/cb",
        "scopes": ["openid"], "client_type": "confidential"})
    assert response.status_code in (400, 403, 302)
    assert response.status_code != 500
    assert len(get_state(demo_app).components["clients"].list()) == before


def test_issue15_item11_database_errors_on_host_pages_log_class_and_sqlstate_only(
        demo_app: Flask, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever still fails in the database: a plain error page, and a log line without the
    statement or its bound parameters."""
    from sqlalchemy.exc import DataError

    secret = "argon2-hash-that-must-not-be-logged"

    def broken(*args: object, **kwargs: object) -> None:
        raise DataError("INSERT INTO auth.users ...", {"encrypted_password": secret},
                        ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes"))

    monkeypatch.setattr("demo_server.accounts.authenticate", broken)
    browser = DemoBrowser(demo_app)
    browser.get("/signin")
    with caplog.at_level(logging.INFO):
        response = browser.post("/signin", {"email": "bob@example.com", "password": secret})
    assert response.status_code == 500 and response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert "Something went wrong" in body and secret not in body and "INSERT" not in body
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert "DataError" in logged
    assert secret not in logged and "INSERT" not in logged
