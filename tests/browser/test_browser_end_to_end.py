"""A person, in a real Chromium, goes through the whole life of an OAuth session.

Sign up on the provider, enrol TOTP from the QR page, authorize the third-party app, see
its session listed, get refused by the aal2 API, step up with a TOTP code, call it again,
revoke the app's session, and watch the app's next refresh, introspection and API call fail.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Page, expect

from demo_server.testing import DemoServers

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery"


def _code_for_next_step(secret: str) -> str:
    """A code the provider has not seen yet: the one for the next 30-second step.

    The provider refuses a code whose step is not later than the last accepted one (replay
    protection) and accepts one step of clock drift, so the next step's code is always valid.
    """
    return pyotp.TOTP(secret).at(int(time.time()) + 30)


def _result(page: Page) -> str:
    return page.locator("#result").inner_text()


def test_signup_totp_authorize_step_up_and_revoke(page: Page, demo_servers: DemoServers,
                                                  screenshot: Callable[[str], Path]) -> None:
    provider, client = demo_servers.provider, demo_servers.client
    email = f"person-{secrets.token_hex(4)}@example.com"
    console_errors: list[str] = []  # e.g. a Content-Security-Policy violation or a missing file
    page.on("console", lambda message: console_errors.append(message.text)
            if message.type == "error" else None)

    # -- sign up on the provider
    page.goto(f"{provider}/signup")
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password", exact=False).first.fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    screenshot("01-signup")
    page.get_by_role("button", name="Create account").click()
    # Sign-up answers the same for a taken address, so it does not sign in: sign in now.
    expect(page.get_by_text("If this address did not have an account")).to_be_visible()
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=f"Hello, {email}")).to_be_visible()
    screenshot("01b-home")

    # -- enrol an authenticator app from the QR page
    page.get_by_role("navigation").get_by_role("link", name="Security").click()
    page.get_by_role("link", name="Set up an authenticator app").click()
    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "").strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    screenshot("02-totp-enroll")
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Verify and turn on").click()
    expect(page.get_by_text("Your authenticator app is set up")).to_be_visible()

    # -- authorize the third-party app: consent names the app and each scope in plain words
    page.goto(client)
    page.get_by_role("link", name="Sign in with Demo provider").click()
    expect(page.get_by_role("heading", name="PhotoPrint wants to use your account")).to_be_visible()
    for text in ("Know who you are", "See your basic profile", "See your e-mail address",
                 "Stay connected while you are away"):
        expect(page.get_by_text(text)).to_be_visible()
    screenshot("03-consent")
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name=f"Signed in as {email}")).to_be_visible()
    expect(page.locator("#acr")).to_have_text("aal1")
    first_sid = page.locator("#id-token-claims dd").nth(1).inner_text().strip()

    page.locator("#call-me").click()
    expect(page.locator("#result")).to_have_attribute("data-status", "200")
    assert email in _result(page)

    # -- the payments API refuses a token without its scope (issue 15 item 2) ...
    page.locator("#call-payments").click()
    expect(page.locator("#result")).to_have_attribute("data-status", "403")
    assert "insufficient_scope" in _result(page)
    screenshot("04-client-needs-step-up")

    # ... the app sends the person back; the provider asks for a TOTP code
    page.locator("#step-up").click()
    expect(page.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    screenshot("05-step-up")
    page.get_by_label("Authentication code").fill(_code_for_next_step(secret))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("Make payments for you")).to_be_visible()  # the new scope's consent
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#acr")).to_have_text("aal2")
    sid = page.locator("#id-token-claims dd").nth(1).inner_text().strip()
    assert sid != first_sid

    page.locator("#call-payments").click()
    expect(page.locator("#result")).to_have_attribute("data-status", "200")
    assert "pay_1001" in _result(page)
    screenshot("06-client-payments")

    page.locator("#refresh").click()  # rotation works while the session lives
    expect(page.locator("#result")).to_have_attribute("data-status", "200")

    # -- the provider lists the app's session; the person revokes it
    page.goto(f"{provider}/account/sessions")
    row = page.locator(f"tr[data-session-id='{sid}']")
    expect(row).to_contain_text("PhotoPrint")
    expect(row).to_contain_text("Verified with your authenticator app")
    expect(row).to_contain_text("offline_access")
    # The step-up replaced the app's first session (issue 19 item 4): one row for PhotoPrint.
    expect(page.locator("tr", has_text="PhotoPrint")).to_have_count(1)
    expect(page.locator(f"tr[data-session-id='{first_sid}']")).to_have_count(0)
    expect(page.locator("tr", has_text="this browser")).to_have_count(1)
    screenshot("07-sessions")
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("The session was revoked")).to_be_visible()
    expect(page.locator(f"tr[data-session-id='{sid}']")).to_have_count(0)
    page.get_by_role("navigation").get_by_role("link", name="Connected apps").click()
    expect(page.get_by_role("heading", name="PhotoPrint")).to_be_visible()
    screenshot("07b-connected-apps")

    # -- the app's next refresh, introspection and API call all fail
    page.goto(client)
    page.locator("#refresh").click()
    expect(page.locator("#result")).to_have_attribute("data-status", "400")
    assert "invalid_grant" in _result(page)
    expect(page.get_by_text("session with the provider has ended")).to_be_visible()
    page.locator("#introspect").click()
    expect(page.locator("#result")).to_have_attribute("data-status", "200")
    assert '"active": false' in _result(page)
    page.locator("#call-payments").click()
    expect(page.locator("#result")).to_have_attribute("data-status", "401")
    assert "invalid_token" in _result(page)
    screenshot("08-client-after-revoke")
    assert console_errors == []
