"""TOTP in the demo (RFC 6238): enrolment with a QR code, one-time use, step-up to aal2."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from flask import Flask
from freezegun import freeze_time

from demo_server import totp
from demo_server.testing import DemoBrowser
from demo_server.users import find_account
from oauth_sessions import Aal, get_state

SECRET_RE = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')




def _alice(app: Flask) -> uuid.UUID:
    account = find_account(get_state(app).engine, "alice@example.com")
    assert account is not None
    return account.id


def _enrol(browser: DemoBrowser) -> str:
    page = browser.get("/account/totp").get_data(as_text=True)
    assert "<svg" in page and "QR code for your authenticator app" in page
    match = SECRET_RE.search(page)
    assert match is not None
    secret = match.group(1).replace(" ", "")
    response = browser.post("/account/totp", {"action": "verify", "code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302
    return secret


def test_enrolment_turns_the_factor_on_only_with_a_right_code(demo_app: Flask) -> None:
    browser = DemoBrowser(demo_app)
    browser.sign_in("alice@example.com", "alice-demo-password")
    page = browser.get("/account/totp").get_data(as_text=True)
    match = SECRET_RE.search(page)
    assert match is not None
    secret = match.group(1).replace(" ", "")
    wrong = f"{(int(pyotp.TOTP(secret).now()) + 1) % 1_000_000:06d}"
    response = browser.post("/account/totp", {"action": "verify", "code": wrong})
    assert response.status_code == 400
    assert "That code is not right" in response.get_data(as_text=True)
    engine = get_state(demo_app).engine
    assert totp.factor_for(engine, _alice(demo_app), status="verified") is None
    browser.post("/account/totp", {"action": "verify", "code": pyotp.TOTP(secret).now()})
    factor = totp.factor_for(engine, _alice(demo_app), status="verified")
    assert factor is not None and factor.secret == secret


def test_step_up_raises_this_browser_session_to_aal2_with_factor_and_amr(demo_app: Flask) -> None:
    browser = DemoBrowser(demo_app)
    browser.sign_in("alice@example.com", "alice-demo-password")
    secret = _enrol(browser)
    store = get_state(demo_app).services.sessions
    (before,) = store.list_for_user(_alice(demo_app))
    assert before.aal == Aal.AAL1
    browser.get("/account/step-up?next=/account/sessions")
    code = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))  # not used yet
    response = browser.post("/account/step-up", {"code": code, "next": "/account/sessions"})
    assert response.status_code == 302 and response.headers["Location"] == "/account/sessions"
    after = store.get(before.id)
    factor = totp.factor_for(get_state(demo_app).engine, _alice(demo_app), status="verified")
    assert after is not None and factor is not None
    assert after.aal == Aal.AAL2 and after.factor_id == factor.id
    assert after.counter == before.counter + 2
    assert {a.method for a in store.get_amr(before.id)} == {"pwd", "totp"}


def test_a_code_that_was_accepted_once_is_refused_the_second_time(demo_app: Flask) -> None:
    browser = DemoBrowser(demo_app)
    browser.sign_in("alice@example.com", "alice-demo-password")
    secret = _enrol(browser)  # used the code of the current step
    response = browser.post("/account/step-up", {"code": pyotp.TOTP(secret).now(), "next": "/"})
    assert response.status_code == 400
    assert "already used" in response.get_data(as_text=True)
    (info,) = get_state(demo_app).services.sessions.list_for_user(_alice(demo_app))
    assert info.aal == Aal.AAL1


def test_removing_the_factor_brings_its_sessions_back_to_aal1(demo_app: Flask) -> None:
    browser = DemoBrowser(demo_app)
    browser.sign_in("alice@example.com", "alice-demo-password")
    secret = _enrol(browser)
    code = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))
    browser.post("/account/step-up", {"code": code, "next": "/"})
    store = get_state(demo_app).services.sessions
    assert store.list_for_user(_alice(demo_app))[0].aal == Aal.AAL2
    assert browser.post("/account/totp/remove").status_code == 302
    (info,) = store.list_for_user(_alice(demo_app))
    assert info.aal == Aal.AAL1 and info.factor_id is None


def test_step_up_without_a_factor_offers_enrolment(demo_app: Flask) -> None:
    browser = DemoBrowser(demo_app)
    browser.sign_in("alice@example.com", "alice-demo-password")
    page = browser.get("/account/step-up?next=/").get_data(as_text=True)
    assert "your account has no authenticator app yet" in page


# -- the code window, at its exact edges (RFC 6238 section 5.2: one step of drift) ------------

STEP_START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # a multiple of 30 s


@pytest.fixture
def factor(demo_app: Flask) -> totp.Factor:
    return totp.start_enrollment(get_state(demo_app).engine, _alice(demo_app))


@pytest.mark.parametrize(("offset_steps", "accepted"), [(-2, False), (-1, True), (0, True),
                                                        (1, True), (2, False)])
def test_codes_within_one_step_of_now_are_accepted_and_no_further(
        demo_app: Flask, factor: totp.Factor, offset_steps: int, accepted: bool) -> None:
    engine = get_state(demo_app).engine
    code = pyotp.TOTP(factor.secret).at(STEP_START + timedelta(seconds=30 * offset_steps))
    verdict = totp.verify_code(engine, factor, code, now=STEP_START)
    assert verdict == (totp.Verdict.ACCEPTED if accepted else totp.Verdict.REJECTED)


@pytest.mark.parametrize(("elapsed", "accepted"), [
    (timedelta(seconds=29, microseconds=999_999), True),  # the previous step is still one behind
    (timedelta(seconds=30), False),                        # at the boundary it is two behind
])
def test_the_window_moves_at_the_step_boundary(demo_app: Flask, factor: totp.Factor,
                                               elapsed: timedelta, accepted: bool) -> None:
    previous = pyotp.TOTP(factor.secret).at(STEP_START - timedelta(seconds=30))
    with freeze_time(STEP_START + elapsed):
        verdict = totp.verify_code(get_state(demo_app).engine, factor, previous)
    assert (verdict == totp.Verdict.ACCEPTED) is accepted


def test_an_older_code_is_refused_after_a_newer_one_was_accepted(demo_app: Flask,
                                                                 factor: totp.Factor) -> None:
    engine = get_state(demo_app).engine
    current = pyotp.TOTP(factor.secret).at(STEP_START)
    previous = pyotp.TOTP(factor.secret).at(STEP_START - timedelta(seconds=30))
    assert totp.verify_code(engine, factor, current, now=STEP_START) == totp.Verdict.ACCEPTED
    assert totp.verify_code(engine, factor, previous, now=STEP_START) == totp.Verdict.REJECTED
    assert totp.verify_code(engine, factor, current,
                            now=STEP_START + timedelta(seconds=5)) == totp.Verdict.REJECTED


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_malformed_codes_are_refused(demo_app: Flask, factor: totp.Factor, code: str) -> None:
    verdict = totp.verify_code(get_state(demo_app).engine, factor, code, now=STEP_START)
    assert verdict == totp.Verdict.REJECTED


# -- guessing is throttled (NIST SP 800-63B section 5.2.2) -------------------------------------


def _wrong(factor: totp.Factor, at: datetime) -> str:
    valid = {pyotp.TOTP(factor.secret).at(at + timedelta(seconds=30 * k)) for k in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)


def test_five_wrong_codes_lock_the_factor_until_the_exact_end_of_the_lock(demo_app: Flask,
                                                                          factor: totp.Factor) -> None:
    engine = get_state(demo_app).engine
    wrong = _wrong(factor, STEP_START)
    verdicts = [totp.verify_code(engine, factor, wrong, now=STEP_START) for _ in range(totp.MAX_FAILURES)]
    assert verdicts == [totp.Verdict.REJECTED] * (totp.MAX_FAILURES - 1) + [totp.Verdict.LOCKED]
    lock_end = STEP_START + timedelta(seconds=totp.LOCK_SECONDS)
    just_before = lock_end - timedelta(microseconds=1)
    right = pyotp.TOTP(factor.secret).at(just_before)
    assert totp.verify_code(engine, factor, right, now=just_before) == totp.Verdict.LOCKED  # even right
    right = pyotp.TOTP(factor.secret).at(lock_end)
    assert totp.verify_code(engine, factor, right, now=lock_end) == totp.Verdict.ACCEPTED


def test_a_right_code_resets_the_count_of_wrong_ones(demo_app: Flask, factor: totp.Factor) -> None:
    engine = get_state(demo_app).engine
    wrong = _wrong(factor, STEP_START)
    for _ in range(totp.MAX_FAILURES - 1):
        assert totp.verify_code(engine, factor, wrong, now=STEP_START) == totp.Verdict.REJECTED
    right = pyotp.TOTP(factor.secret).at(STEP_START)
    assert totp.verify_code(engine, factor, right, now=STEP_START) == totp.Verdict.ACCEPTED
    later = STEP_START + timedelta(seconds=60)
    assert totp.verify_code(engine, factor, _wrong(factor, later), now=later) == totp.Verdict.REJECTED


def test_the_step_up_page_says_when_the_factor_is_locked(demo_app: Flask) -> None:
    browser = DemoBrowser(demo_app)
    browser.sign_in("alice@example.com", "alice-demo-password")
    secret = _enrol(browser)
    now = datetime.now(UTC)
    valid = {pyotp.TOTP(secret).at(now + timedelta(seconds=30 * k)) for k in (-2, -1, 0, 1, 2)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)
    for _ in range(totp.MAX_FAILURES - 1):
        browser.post("/account/step-up", {"code": wrong, "next": "/"})
    response = browser.post("/account/step-up", {"code": wrong, "next": "/"})
    assert response.status_code == 400
    assert "Too many wrong codes" in response.get_data(as_text=True)
    (info,) = get_state(demo_app).services.sessions.list_for_user(_alice(demo_app))
    assert info.aal == Aal.AAL1
