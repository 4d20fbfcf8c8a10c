"""The three WSGI apps that ``benchmarks/refresh.py`` serves with gunicorn, one at a time.

``gunicorn 'benchmarks.refresh_apps:create("ours")'`` with ``BENCH_DB_URL`` set:

* ``trivial``: a Flask view at ``/oauth/token`` that parses the form and returns a constant
  JSON object. The ceiling: the Flask request cycle plus gunicorn, with no work at all.
* ``authlib``: plain Authlib 1.x as its documentation shows it ("Flask OAuth 2.0 Server",
  "Refresh Token" grant): Flask-SQLAlchemy models with ``OAuth2ClientMixin`` /
  ``OAuth2TokenMixin``, ``create_query_client_func`` / ``create_save_token_func``, a
  ``RefreshTokenGrant`` subclass with the documented ``authenticate_refresh_token`` /
  ``authenticate_user`` / ``revoke_old_credential`` and ``INCLUDE_NEW_REFRESH_TOKEN = True``
  (rotation: a new token row is inserted, the old one revoked). Schema ``authlib_bench``.
* ``ours``: ``OAuthSessions`` with its ``/oauth/token`` over ``auth.sessions``: client
  authentication, rotation (PK read + compare-and-swap), a signed RFC 9068 access token.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, jsonify, request

from benchmarks.harness import authlib_models

ISSUER = "http://127.0.0.1:9"  # the issuer only names the provider; nothing listens there


def create(target: str) -> Flask:
    if target == "trivial":
        return trivial_app()
    if target == "authlib":
        return authlib_app(os.environ["BENCH_DB_URL"])
    if target in ("ours", "ours-openid"):  # the same app; the sessions differ (openid granted)
        return ours_app(os.environ["BENCH_DB_URL"])
    if target == "trivial+write":
        return trivial_write_app(os.environ["BENCH_DB_URL"])
    if target == "ours-flask":
        return ours_app(os.environ["BENCH_DB_URL"], hot_path=False)
    raise SystemExit(f"unknown target {target!r}: trivial, authlib, ours, ours-openid or ours-flask")


def trivial_app() -> Flask:
    app = Flask("trivial")

    @app.post("/oauth/token")
    def token() -> Any:
        return jsonify({"access_token": "x", "token_type": "Bearer", "expires_in": 300,
                        "refresh_token": "y" if request.form.get("refresh_token") else ""})

    return app


def trivial_write_app(url: str) -> Flask:
    """A floor for any design that reads and rotates the session row: the trivial view plus the
    session id taken from the token *without* verifying it, one prepared primary-key read and one
    prepared compare-and-swap ``UPDATE`` (autocommitted), on a per-thread connection. No client
    authentication, no HMAC, no signature, no checks."""
    from benchmarks.harness import per_thread_pgconn
    from oauth_sessions.core.refresh_tokens import parse_refresh_token

    connection = per_thread_pgconn(url, {
        b"read": b"SELECT refresh_token_hmac_key, refresh_token_counter, scopes, aal, "
                 b"oauth_client_id, not_after FROM auth.sessions WHERE id = $1",
        b"cas": b"UPDATE auth.sessions SET refresh_token_counter = refresh_token_counter + 1, "
                b"refreshed_at = now() AT TIME ZONE 'UTC', updated_at = now() "
                b"WHERE id = $1 AND refresh_token_counter = $2 RETURNING refresh_token_counter",
    })
    app = Flask("trivial_write")

    @app.post("/oauth/token")
    def token() -> Any:
        pgconn = connection()
        try:
            parsed = parse_refresh_token(request.form.get("refresh_token", ""))
        except ValueError:
            return jsonify({"error": "invalid_grant"}), 400
        sid = str(parsed.session_id).encode()
        pgconn.exec_prepared(b"read", [sid])
        result = pgconn.exec_prepared(b"cas", [sid, str(parsed.counter).encode()])
        return jsonify({"access_token": "x", "token_type": "Bearer", "expires_in": 300,
                        "refresh_token": "y" if result.ntuples == 1 else ""})

    return app


def ours_app(url: str, *, hot_path: bool = True) -> Flask:
    """The provider as a host configures it; ``hot_path=False`` measures the Flask views alone."""
    from oauth_sessions import OAuthSessions

    app = Flask("ours")
    app.config["SECRET_KEY"] = "benchmark-only"  # init_app requires one (the consent page)
    OAuthSessions(app, issuer=ISSUER, database_url=url, hot_path=hot_path)
    return app


# --------------------------------------------------------------------------- plain Authlib


def authlib_app(url: str) -> Flask:
    from authlib.integrations.flask_oauth2 import AuthorizationServer
    from authlib.integrations.sqla_oauth2 import create_query_client_func, create_save_token_func
    from authlib.oauth2.rfc6749 import grants

    from oauth_sessions.storage.database import normalize_url

    db, User, Client, Token = authlib_models()
    app = Flask("authlib")
    app.config["SQLALCHEMY_DATABASE_URI"] = normalize_url(url)
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
    db.init_app(app)

    class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> Any:
            token = Token.query.filter_by(refresh_token=refresh_token).first()
            if token and not token.is_revoked():
                return token
            return None

        def authenticate_user(self, credential: Any) -> Any:
            return db.session.get(User, credential.user_id)

        def revoke_old_credential(self, credential: Any) -> None:
            now = int(time.time())
            credential.access_token_revoked_at = now
            credential.refresh_token_revoked_at = now
            db.session.add(credential)
            db.session.commit()

    server = AuthorizationServer(
        app,
        query_client=create_query_client_func(db.session, Client),
        save_token=create_save_token_func(db.session, Token),
    )
    server.register_grant(RefreshTokenGrant)

    @app.post("/oauth/token")
    def issue_token() -> Any:
        return server.create_token_response()

    return app
