"""The demo's two processes on ports other than the defaults (issue 19 item 2).

One pair of variables, read the same way by ``make demo`` and ``make demo-client``:
``PROVIDER_PORT`` and ``CLIENT_PORT``. The provider's banner prints the exact command for the
app, the seeded redirect URI is the app's real callback, and an app that cannot reach its
provider shows a page saying how to start it instead of a bare 500.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from demo_server import ports
from demo_server.client_app import _credentials, create_client_app
from demo_server.seed import DEMO_EMAIL, DEMO_PASSWORD
from demo_server.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
START_TIMEOUT = 60.0


def _env(instance: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"PORT", "PROVIDER_PORT", "CLIENT_PORT", "PROVIDER_URL", "ISSUER",
                        "CLIENT_APP_URL", "DATABASE_URL", "SECRET_KEY", "CLIENT_ID",
                        "CLIENT_SECRET"}}
    env.update(DEMO_INSTANCE_DIR=str(instance), PYTHONUNBUFFERED="1", **extra)
    return env


def _start(module: str, env: dict[str, str], ready: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m module`` and wait (bounded) until its output shows ``ready``."""
    process = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = ""
    deadline = time.monotonic() + START_TIMEOUT
    while ready not in output:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            raise AssertionError(f"{module} exited {process.returncode}:\n{output}")
        output += line
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{module} did not start in time:\n{output}")
    return process, output


def _wait_http(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_both_processes_on_non_default_ports_sign_in_end_to_end(
        tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    provider_port, client_port = free_port(), free_port()
    env = _env(tmp_path, PROVIDER_PORT=str(provider_port), CLIENT_PORT=str(client_port))
    provider, banner = _start("demo_server", env, "third-party app")
    processes.append(provider)
    provider_url, client_url = f"http://127.0.0.1:{provider_port}", f"http://127.0.0.1:{client_port}"
    # The banner says exactly how to start the app, and the redirect URI it seeded is the app's.
    assert (f"make demo-client PROVIDER_PORT={provider_port} CLIENT_PORT={client_port}"
            in banner), banner
    assert f"then open {client_url}/" in banner
    assert f"redirect_uris   {client_url}/callback" in banner
    _wait_http(provider_url + "/")

    client, greeting = _start("demo_server.client_app", env, "signs in with")
    processes.append(client)
    assert f"{client_url}/" in greeting and provider_url in greeting
    _wait_http(client_url + "/")

    browser = requests.Session()
    processes_cleanup = browser.close
    # "Sign in with the provider": discovery, then the provider's sign-in page.
    page = browser.get(f"{client_url}/login", timeout=10)
    assert page.status_code == 200 and urlsplit(page.url).port == provider_port, page.url
    assert urlsplit(page.url).path == "/signin"
    csrf = CSRF_RE.search(page.text)
    assert csrf is not None
    next_url = parse_qs(urlsplit(page.url).query)["next"][0]
    consent = browser.post(f"{provider_url}/signin", timeout=10, data={
        "email": DEMO_EMAIL, "password": DEMO_PASSWORD, "csrf_token": csrf.group(1),
        "next": next_url})
    assert consent.status_code == 200 and 'action="/oauth/authorize"' in consent.text, consent.text[:500]
    form = consent.text.split('action="/oauth/authorize"', 1)[1].split("</form>", 1)[0]
    fields = {name: html.unescape(value) for name, value in HIDDEN_RE.findall(form)}
    fields["decision"] = "approve"
    # Approving sends the browser to the app's callback on its real port, which signs in.
    done = browser.post(f"{provider_url}/oauth/authorize", data=fields, timeout=10)
    assert done.status_code == 200, done.text[:500]
    assert done.url == f"{client_url}/", done.url
    assert DEMO_EMAIL in done.text
    processes_cleanup()


def test_the_client_app_ignores_port_which_is_the_old_name_of_the_provider_port() -> None:
    assert ports.provider_url({"PORT": "5402"}) == "http://127.0.0.1:5000"
    assert ports.client_port({"PORT": "5402"}) == ports.DEFAULT_CLIENT_PORT
    assert ports.provider_url({"PROVIDER_PORT": "5400"}) == "http://127.0.0.1:5400"
    assert ports.provider_url({"PROVIDER_URL": "https://id.example/"}) == "https://id.example"
    # The provider still reads PORT for itself (it always meant its own port there).
    assert ports.issuer({"PORT": "5402"}) == "http://127.0.0.1:5402"
    assert ports.issuer({"PORT": "5402", "PROVIDER_PORT": "5400"}) == "http://127.0.0.1:5400"
    assert ports.client_app_url({"CLIENT_PORT": "5401"}) == "http://127.0.0.1:5401"


def test_a_port_that_is_not_a_number_is_one_line_naming_the_variable() -> None:
    with pytest.raises(SystemExit) as exc:
        ports.client_port({"CLIENT_PORT": "abc"})
    assert str(exc.value) == ("CLIENT_PORT='abc' is not a port: give a number from 1 to 65535, "
                              "e.g. CLIENT_PORT=5001.")


def test_the_banner_command_leaves_defaults_out() -> None:
    assert ports.client_command("http://127.0.0.1:5000", "http://127.0.0.1:5001") == "make demo-client"
    assert (ports.client_command("http://127.0.0.1:5400", "http://127.0.0.1:5001")
            == "make demo-client PROVIDER_PORT=5400")
    assert (ports.client_command("https://id.example", "http://127.0.0.1:5401")
            == "make demo-client PROVIDER_URL=https://id.example CLIENT_PORT=5401")
    assert ports.provider_command("http://127.0.0.1:5000", "http://127.0.0.1:5001") == "make demo"
    assert (ports.provider_command("http://127.0.0.1:5400", "http://127.0.0.1:5401")
            == "make demo PROVIDER_PORT=5400 CLIENT_PORT=5401")
    assert (ports.provider_command("https://id.example/", "http://127.0.0.1:5001")
            == "make demo ISSUER=https://id.example")


def test_make_demo_client_refuses_port_and_names_the_two_variables() -> None:
    result = subprocess.run(["make", "-s", "demo-client", "PORT=5402"], cwd=ROOT, text=True,
                            capture_output=True, timeout=60, env=_env(ROOT / "instance"))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert ("make demo-client: PORT is ambiguous; use CLIENT_PORT=5402 for this app and "
            "PROVIDER_PORT=<port> for the provider (make demo takes the same two)") in lines[0]


def test_the_app_refuses_to_start_on_a_port_the_provider_did_not_register(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("CLIENT_ID", raising=False)
    (tmp_path / "demo-clients.json").write_text(json.dumps({"confidential": {
        "client_id": "c1", "client_secret": "s1",
        "redirect_uris": ["http://127.0.0.1:5001/callback"]}}))
    assert _credentials("http://127.0.0.1:5001/callback") == ("c1", "s1")
    with pytest.raises(SystemExit) as exc:
        _credentials("http://127.0.0.1:5402/callback")
    assert str(exc.value) == (
        "The provider registered http://127.0.0.1:5001/callback for this app, not "
        "http://127.0.0.1:5402/callback: restart the provider with CLIENT_PORT=5402 "
        "(make demo CLIENT_PORT=5402).")


def test_an_unreachable_provider_gets_a_page_not_a_bare_500() -> None:
    dead = free_port()  # nothing listens there
    app = create_client_app(f"http://127.0.0.1:{dead}", "client", "secret")
    response = app.test_client().get("/login", base_url="http://127.0.0.1:5401")
    body = response.get_data(as_text=True)
    assert response.status_code == 502
    assert response.mimetype == "text/html"
    assert "The sign-in provider cannot be reached" in body
    assert f"http://127.0.0.1:{dead}" in body
    assert f"make demo PROVIDER_PORT={dead} CLIENT_PORT=5401" in body
    assert "Traceback" not in body
