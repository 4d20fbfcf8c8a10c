"""The demo provider: a Flask app built only on oauth_sessions' public API.

``create_app`` configures the library, migrates the database on first start (SQLite file
in ``instance/`` by default, or ``DATABASE_URL``), creates the demo's own tables, seeds the
demo account and clients, and mounts the pages. ``python -m demo_server`` runs it.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, render_template, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from oauth_sessions import OAuthSessions, get_state
from oauth_sessions.core.settings import ConfigurationError
from oauth_sessions.flask.outage import DATABASE_ERRORS, database_error
from oauth_sessions.storage.database import create_auth_engine
from oauth_sessions.storage.database_errors import (
    UnsupportedDatabaseURL,
    check_database_url,
    explain_database_error,
)
from oauth_sessions.storage.key_encryption import KeyEncryptor, SupabaseKeys
from oauth_sessions.storage.migrate import (
    AttachError,
    PrivilegeError,
    check_privileges,
    upgrade,
)

from . import access_log, accounts, api, developers, mfa, pages, ports
from .csrf import init_csrf
from .db import create_demo_tables
from .host_adapter import DemoHost
from .instance import instance_dir, protect_sqlite_files, secret_file
from .levels import describe_level
from .login import current_login
from .seed import SeededClient, seed_clients, seed_user
from .users import Passwords

DEMO_KEY_ID = "demo1"
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
               "frame-ancestors 'none'; form-action 'self' http: https:; base-uri 'none'")
LIBRARY_FRAME_POLICY = "frame-ancestors 'none'"  # what the provider's blueprint sets alone


def default_database_url() -> str:
    return f"sqlite:///{instance_dir() / 'demo.db'}"


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one kept in the instance folder.

    Keeping it on disk means a restart does not sign everybody out; the file is created
    with mode 0600 and lives in the git-ignored ``instance/``.
    """
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    return secret_file(instance_dir() / "secret_key", lambda: secrets.token_hex(32))


def _encryption_settings() -> dict[str, Any]:
    """Encryption at rest of session HMAC keys, under a key kept in ``instance/`` (0600).

    A database copied without the instance folder then yields no HMAC key that could forge a
    refresh token. ``OAUTH_SESSIONS_ENCRYPTION_KEYS`` / ``_KEY_ID`` in the config override it.
    """
    key = secret_file(instance_dir() / "encryption_key", KeyEncryptor.generate_key)
    return {"OAUTH_SESSIONS_ENCRYPTION_KEYS": {DEMO_KEY_ID: key},
            "OAUTH_SESSIONS_ENCRYPTION_KEY_ID": DEMO_KEY_ID}


def _probe_database(url: str) -> None:
    """Stop with one line (``createdb ...``) if the database cannot be reached, before the
    library logs that it starts without it (a server does; the demo has nothing to show)."""
    engine = create_auth_engine(url, pool_pre_ping=False)
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        raise SystemExit(f"demo_server: {explain_database_error(exc, engine.url)}") from None
    finally:
        engine.dispose()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    access_log.install()  # no ID token in the request lines of GET /oauth/logout
    app.config.update(
        SECRET_KEY=_secret_key(),
        OAUTH_SESSIONS_ISSUER=ports.issuer(),
        OAUTH_SESSIONS_DATABASE_URL=os.environ.get("DATABASE_URL") or default_database_url(),
        OAUTH_SESSIONS_SCOPE_MIN_AAL={"payments": "aal2"},
        DEMO_CLIENT_APP_URL=ports.client_app_url(),
        DEMO_CREDENTIALS_FILE=str(instance_dir() / "demo-clients.json"),
        **_encryption_settings(),
    )
    if config:
        app.config.update(config)
    try:
        check_database_url(str(app.config["OAUTH_SESSIONS_DATABASE_URL"]))
    except UnsupportedDatabaseURL as exc:
        raise SystemExit(f"demo_server: DATABASE_URL: {exc}") from None
    try:
        protect_sqlite_files(str(app.config["OAUTH_SESSIONS_DATABASE_URL"]))
    except OSError as exc:  # a SQLite file in a folder that cannot be made
        raise SystemExit(f"demo_server: cannot create {exc.filename} for the SQLite database: "
                         f"{exc.strerror}; point DATABASE_URL at a writable place") from None
    _probe_database(str(app.config["OAUTH_SESSIONS_DATABASE_URL"]))
    secure = str(app.config["OAUTH_SESSIONS_ISSUER"]).startswith("https://")
    app.config.update(
        # The provider and the client app both run on 127.0.0.1, and cookies ignore the port:
        # each app needs its own cookie name. "__Host-" pins the cookie to this host over TLS.
        SESSION_COOKIE_NAME="__Host-demo_provider" if secure else "demo_provider_session",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    try:
        OAuthSessions(app, host=DemoHost())
    except ConfigurationError as exc:  # the message names the setting and the fix
        raise SystemExit(f"demo_server: {exc}") from None
    state = get_state(app)
    # The cookie only names the auth.sessions row, which decides when the sign-in ends
    # (not_after, revocation); the cookie simply lasts as long as a session can.
    app.permanent_session_lifetime = timedelta(seconds=state.settings.session_timebox or 365 * 86400)
    try:
        upgrade(state.engine)
        check_privileges(state.engine)
    except (AttachError, PrivilegeError) as exc:
        # The message says what is wrong and what to do; a traceback would only hide it.
        state.engine.dispose()
        raise SystemExit(f"demo_server: {exc}") from None
    except DBAPIError as exc:
        # A missing database or a server that is not there: one line with the fix
        # (createdb ...), not the driver's traceback. The URL's password is never shown.
        state.engine.dispose()
        raise SystemExit(f"demo_server: {explain_database_error(exc, state.engine.url)}") from None
    roots = state.settings.supabase_encryption_keys
    create_demo_tables(state.engine, supabase_keys=SupabaseKeys(roots) if roots else None)
    # Sessions stored before encryption was on (or under a retired key) get encrypted keys;
    # the demo alone makes its first-party sessions, so those are included.
    state.services.sessions.rewrap_keys(first_party=True)
    app.extensions["demo_passwords"] = Passwords(app.config.get("DEMO_PASSWORD_PROFILE"))
    seed_user(state.engine, app.extensions["demo_passwords"])
    seeded = seed_clients(state.services.clients, app.config["DEMO_CLIENT_APP_URL"],
                          Path(app.config["DEMO_CREDENTIALS_FILE"]))
    app.extensions["demo_seeded_clients"] = seeded

    prefix = state.settings.url_prefix
    init_csrf(app, exempt_prefixes=(f"{prefix}/", "/api/"))
    for blueprint in (pages.bp, accounts.bp, mfa.bp, developers.bp, api.bp):
        app.register_blueprint(blueprint)
    app.jinja_env.globals["current_login"] = current_login
    app.jinja_env.globals["describe_level"] = describe_level
    _install_page_hardening(app)
    return app


def seeded_clients(app: Flask) -> list[SeededClient]:
    seeded: list[SeededClient] = app.extensions["demo_seeded_clients"]
    return seeded


def _is_page(path: str) -> bool:
    prefix = get_state().settings.url_prefix + "/"
    return not path.startswith(("/api/", "/.well-known/", "/static/", prefix))


def _install_page_hardening(app: Flask) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        # Consent and account pages must not be framed (clickjacking), cached, or leak the
        # URL (which may carry an authorization request) to other sites.
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            # The provider's blueprint (the consent page) has already set the library's
            # framing-only policy by the time this runs; the demo's full policy, which also
            # forbids framing, replaces it (issue 15, "Also"). A page's own policy is kept.
            if response.headers.get("Content-Security-Policy") in (None, LIBRARY_FRAME_POLICY):
                response.headers["Content-Security-Policy"] = PAGE_POLICY
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def _database_error(exc: Exception) -> Response:
        # The library's outage answer: logged by class and SQLSTATE only, never the statement
        # or its bound parameters (password hashes, session keys); 503 or 500 without detail.
        response = database_error(exc)
        if not _is_page(request.path):
            return response
        body = render_template("error.html", title="Something went wrong on our side",
                               message="Please try again in a moment.")
        return Response(body, status=response.status_code, mimetype="text/html")

    for error in DATABASE_ERRORS:
        app.register_error_handler(error, _database_error)

    @app.errorhandler(HTTPException)
    def _error_page(exc: HTTPException) -> Response | HTTPException:
        if not _is_page(request.path):
            return exc
        titles = {400: "Something in that request was not right", 401: "Please sign in",
                  404: "Page not found", 405: "That does not work here"}
        body = render_template("error.html", title=titles.get(exc.code or 500, exc.name),
                               message=exc.description)
        return Response(body, status=exc.code or 500, mimetype="text/html")
