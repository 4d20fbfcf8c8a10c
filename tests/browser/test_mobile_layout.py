"""The account pages on a phone, 390 CSS pixels wide (issue 19 item 9).

Nothing is wider than the screen (no sideways scrolling), the header navigation stays a
compact block above the page, and on "Your sessions" every session is a card whose Level,
Expires and Revoke are on screen. A full-page screenshot is kept under test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from demo_server.seed import DEMO_EMAIL, DEMO_PASSWORD
from demo_server.testing import DemoBrowser, DemoServers, exchange_code, seeded

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTH = 390
TIMEOUT_MS = 15_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ACCOUNT_PAGES = ("/", "/account/sessions", "/account/apps", "/account/security")


@pytest.fixture
def phone(browser: object) -> Iterator[Page]:
    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": WIDTH, "height": 844}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


def _within_screen(page: Page, selector: str) -> None:
    """Every element matching ``selector`` is visible and lies inside the 390 px width."""
    elements = page.locator(selector)
    assert elements.count() > 0, selector
    for index in range(elements.count()):
        element = elements.nth(index)
        expect(element).to_be_visible()
        box = element.bounding_box()
        assert box is not None, selector
        assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, (selector, box)


def test_account_pages_fit_a_390_px_phone(phone: Page, demo_servers: DemoServers) -> None:
    provider = demo_servers.provider
    # Alice also has a session of the sample app, so the list has an app card beside this browser.
    app = demo_servers.provider_app
    client = seeded(app, "confidential")
    other = DemoBrowser(app)
    assert other.sign_in(DEMO_EMAIL, DEMO_PASSWORD).status_code == 302
    exchange_code(app, client, *other.authorize(client))

    phone.goto(f"{provider}/signin")
    phone.get_by_label("E-mail address").fill(DEMO_EMAIL)
    phone.get_by_label("Password").fill(DEMO_PASSWORD)
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.get_by_role("heading", name=f"Hello, {DEMO_EMAIL}")).to_be_visible()

    for path in ACCOUNT_PAGES:
        phone.goto(f"{provider}{path}")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= WIDTH, f"{path} is {width} px wide"
        # The header: every navigation link on screen, and the navigation no taller than two
        # rows of links (it used to stack into a 250 px column).
        _within_screen(phone, "nav[aria-label='Main'] a")
        nav = phone.locator("nav[aria-label='Main']").bounding_box()
        assert nav is not None and nav["height"] <= 80, (path, nav)

    phone.goto(f"{provider}/account/sessions")
    cards = phone.locator("tr[data-session-id]")
    assert cards.count() >= 2
    expect(phone.locator("tr[data-session-id]", has_text="PhotoPrint")).to_have_count(1)
    for selector in ("td.level", "td.expires", "td.action button"):
        _within_screen(phone, f"tr[data-session-id] {selector}")
    # Each card names its fields (the table header is hidden on a phone).
    labels = phone.locator("tr[data-session-id] td.level").first.evaluate(
        "el => getComputedStyle(el, '::before').content")
    assert labels == '"Level"'
    for index in range(cards.count()):
        expect(cards.nth(index).get_by_role("button", name="Revoke")).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "mobile-390-sessions.png"), full_page=True)
    assert (ARTIFACTS / "mobile-390-sessions.png").stat().st_size > 0
