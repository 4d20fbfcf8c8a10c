"""Helpers for driving the demo through Flask's test client (used by ``tests/test_demo_*.py``).

A :class:`DemoBrowser` behaves like a person's browser: it keeps cookies, reads the CSRF
token from the last form it saw, and follows the same pages a person would.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import argon2
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.test import TestResponse

from oauth_sessions.storage.database import create_auth_engine

from .app import create_app, seeded_clients
from .db import DEMO_SCHEMA
from .seed import SeededClient

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def make_demo_app(instance: Path, database_url: str, **config: Any) -> Flask:
    """A demo app on ``database_url`` whose instance folder (secret key, credentials) is ``instance``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEMO_INSTANCE_DIR", str(instance))
        mp.delenv("SECRET_KEY", raising=False)
        mp.delenv("DATABASE_URL", raising=False)
        settings = {"OAUTH_SESSIONS_DATABASE_URL": database_url, "TESTING": True,
                    "DEMO_PASSWORD_PROFILE": argon2.profiles.CHEAPEST}
        settings.update(config)
        return create_app(settings)


def wipe_postgres(url: str) -> None:
    """Empty every table the demo writes, so one migrated database serves many tests.

    The users, clients and signing keys are the roots: everything else (sessions, amr claims,
    consents, codes, TOTP factors) goes with them by ``ON DELETE CASCADE`` / ``TRUNCATE CASCADE``.
    """
    engine = create_auth_engine(url)
    try:
        with engine.begin() as conn:
            if conn.execute(text("SELECT to_regclass('auth.users')")).scalar() is not None:
                conn.execute(text("TRUNCATE auth.users, auth.oauth_clients, "
                                  "oauth_sessions.oauth_signing_keys CASCADE"))
            for table in ("demo_sign_in_throttle", "demo_factor_state"):
                if conn.execute(text("SELECT to_regclass(:t)"),
                                {"t": f"{DEMO_SCHEMA}.{table}"}).scalar():
                    conn.execute(text(f"TRUNCATE {DEMO_SCHEMA}.{table}"))
    finally:
        engine.dispose()


def seeded(app: Flask, key: str) -> SeededClient:
    return next(s for s in seeded_clients(app) if s.key == key)


@dataclass
class TokenSet:
    access_token: str
    refresh_token: str | None
    body: dict[str, Any]


class DemoBrowser:
    def __init__(self, app: Flask, user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) "
                 "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36") -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.headers = {"User-Agent": user_agent}
        self.csrf: str | None = None

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        response = self.client.get(url, headers=self.headers, **kwargs)
        self._remember(response)
        return response

    def post(self, url: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
             **kwargs: Any) -> TestResponse:
        form = dict(data or {})
        if csrf and "csrf_token" not in form:
            if self.csrf is None:
                self.get("/signin")
            form["csrf_token"] = self.csrf
        response = self.client.post(url, data=form, headers=self.headers, **kwargs)
        self._remember(response)
        return response

    def _remember(self, response: TestResponse) -> None:
        if response.mimetype == "text/html":
            match = CSRF_RE.search(response.get_data(as_text=True))
            if match:
                self.csrf = match.group(1)

    # -- people's actions ----------------------------------------------------------------

    def sign_up(self, email: str, password: str) -> TestResponse:
        self.get("/signup")
        response = self.post("/signup", {"email": email, "password": password,
                                         "password_confirm": password})
        if response.status_code == 302:  # sign-up does not sign in (issue 15 item 15)
            self.sign_in(email, password)
        return response

    def sign_in(self, email: str, password: str) -> TestResponse:
        self.get("/signin")
        response = self.post("/signin", {"email": email, "password": password})
        self.get("/")  # signing in renews the CSRF token: read the new one
        return response

    def step_up_with_new_factor(self) -> str:
        """Enrol a TOTP factor and raise this browser's sign-in to aal2; returns the secret."""
        import pyotp

        page = self.get("/account/totp").get_data(as_text=True)
        secret = page.split('id="totp-secret">', 1)[1].split("<", 1)[0].replace(" ", "")
        totp_now = pyotp.TOTP(secret)
        assert self.post("/account/totp", {"action": "verify", "code": totp_now.now()}).status_code == 302
        later = totp_now.at(datetime.now(UTC) + timedelta(seconds=30))  # a code not used yet
        response = self.post("/account/step-up", {"code": later, "next": "/"})
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        return secret

    def authorize(self, client: SeededClient, *, scope: str = "openid profile email offline_access",
                  approve: bool = True, extra: dict[str, str] | None = None) -> tuple[str, str]:
        """Run /oauth/authorize through consent; returns (code, code_verifier)."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        params = {"response_type": "code", "client_id": str(client.info.id),
                  "redirect_uri": client.info.redirect_uris[0], "scope": scope,
                  "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
                  "code_challenge": challenge.decode(), "code_challenge_method": "S256",
                  **(extra or {})}
        response = self.get("/oauth/authorize?" + urlencode(params))
        page = response.get_data(as_text=True)
        if response.status_code == 200 and 'action="/oauth/authorize"' in page:
            form = page.split('action="/oauth/authorize"', 1)[1].split("</form>", 1)[0]
            fields = {name: html.unescape(value) for name, value in HIDDEN_RE.findall(form)}
            fields["decision"] = "approve" if approve else "deny"
            response = self.post("/oauth/authorize", fields, csrf=False)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        query = parse_qs(urlsplit(response.headers["Location"]).query)
        if "code" not in query:
            raise AssertionError(f"no code: {query}")
        return query["code"][0], verifier


def exchange_code(app: Flask, client: SeededClient, code: str, verifier: str) -> TokenSet:
    response = app.test_client().post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "redirect_uri": client.info.redirect_uris[0]},
        headers=_basic(client))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    return TokenSet(body["access_token"], body.get("refresh_token"), body)


def refresh(app: Flask, client: SeededClient, refresh_token: str) -> TestResponse:
    return app.test_client().post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token}, headers=_basic(client))


def introspect(app: Flask, client: SeededClient, token: str) -> TestResponse:
    return app.test_client().post("/oauth/introspect", data={"token": token},
                                  headers=_basic(client))


def _basic(client: SeededClient) -> dict[str, str]:
    assert client.secret is not None
    raw = f"{client.info.id}:{client.secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


# -- live servers for the browser tests -------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """A threaded Werkzeug server for ``app`` on 127.0.0.1:``port``, in a daemon thread."""

    def __init__(self, app: Flask, port: int) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=True)
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclass(frozen=True)
class DemoServers:
    provider: str
    client: str
    provider_app: Flask
