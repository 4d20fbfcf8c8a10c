"""Live servers and a real Chromium for the browser tests.

The demo provider and the sample client app run in threads of the test process on free
127.0.0.1 ports, with a SQLite file of their own. Chromium is Debian's package
(``apt-get install chromium``, which ``.ci/run`` does); without it these tests are skipped
locally and fail under ``CI=true`` (see ``tests/conftest.py``). Every Playwright wait has a
bound, so a broken page fails in seconds instead of hanging the suite.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from demo_server.testing import DemoServers, LiveServer, free_port, make_demo_app, seeded

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 15_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def demo_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServers]:
    from demo_server.client_app import create_client_app

    instance = tmp_path_factory.mktemp("demo-instance")
    provider_port, client_port = free_port(), free_port()
    provider_app = make_demo_app(instance, f"sqlite:///{instance / 'demo.db'}",
                                 OAUTH_SESSIONS_ISSUER=f"http://127.0.0.1:{provider_port}",
                                 DEMO_CLIENT_APP_URL=f"http://127.0.0.1:{client_port}")
    confidential = seeded(provider_app, "confidential")
    assert confidential.secret
    client_app = create_client_app(f"http://127.0.0.1:{provider_port}", str(confidential.info.id),
                                   confidential.secret)
    provider = LiveServer(provider_app, provider_port)
    client = LiveServer(client_app, client_port)
    yield DemoServers(provider.url, client.url, provider_app)
    client.stop()
    provider.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True, timeout=TIMEOUT_MS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1200, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(page: object) -> Iterator[Callable[[str], Path]]:
    """``screenshot("name")`` saves the full page under test-artifacts/screenshots/."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    yield take
