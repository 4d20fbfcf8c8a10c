"""The three WSGI apps that ``benchmarks/introspection.py`` serves with gunicorn, one at a time.

``gunicorn 'benchmarks.introspection_apps:create("ours")'`` with ``BENCH_DB_URL`` set:

* ``trivial``: a Flask view that parses the form and returns a constant JSON object. The ceiling:
  what the Flask request cycle plus gunicorn cost on this machine, with no work at all.
* ``authlib``: plain Authlib, written from its documentation ("Register Introspection Endpoint",
  Flask OAuth 2.0 server guide): Flask-SQLAlchemy models with ``OAuth2ClientMixin`` /
  ``OAuth2TokenMixin``, ``create_query_client_func``, an ``IntrospectionEndpoint`` subclass with the
  documented ``query_token`` / ``introspect_token`` / ``check_permission``, over a table of stored
  tokens (schema ``authlib_bench``).
* ``ours``: ``OAuthSessions`` with its ``/oauth/introspect``, over ``auth.sessions``.

``trivial+read`` is a floor for any design that reads the session row (see its docstring).
:class:`QueryCounter` counts database round trips at the driver, in-process.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, request

from benchmarks.harness import authlib_models

ISSUER = "http://127.0.0.1:9"  # the issuer only names the provider; nothing listens there


def create(target: str) -> Flask:
    if target == "trivial":
        return trivial_app()
    if target == "authlib":
        return authlib_app(os.environ["BENCH_DB_URL"])
    if target == "ours":
        return ours_app(os.environ["BENCH_DB_URL"])
    if target == "trivial+read":
        return trivial_read_app(os.environ["BENCH_DB_URL"])
    raise SystemExit(f"unknown target {target!r}: trivial, authlib or ours")


def trivial_app() -> Flask:
    app = Flask("trivial")

    @app.post("/introspect")
    def introspect() -> Any:
        return jsonify({"active": bool(request.form.get("token"))})

    return app


def trivial_read_app(url: str) -> Flask:
    """A floor for any design that must read the session row: the trivial view plus the
    ``sid`` taken from the token *without* verifying it and one prepared primary-key read on a
    per-thread connection. No client authentication, no signature, no checks."""
    import base64
    import json

    from benchmarks.harness import per_thread_pgconn

    connection = per_thread_pgconn(url, {b"read": b"SELECT id, user_id, oauth_client_id, scopes, aal, "
                                         b"extract(epoch FROM not_after) FROM auth.sessions WHERE id = $1"})
    app = Flask("trivial_read")

    @app.post("/introspect")
    def introspect() -> Any:
        pgconn = connection()
        payload = request.form.get("token", "").split(".")[1]
        sid = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]
        result = pgconn.exec_prepared(b"read", [sid.encode()])
        return jsonify({"active": result.ntuples == 1})

    return app


def ours_app(url: str) -> Flask:
    from oauth_sessions import OAuthSessions

    app = Flask("ours")
    app.config["SECRET_KEY"] = "benchmark-only"  # init_app requires one (the consent page)
    OAuthSessions(app, issuer=ISSUER, database_url=url,
                  signing_alg=os.environ.get("BENCH_SIGNING_ALG", "RS256"))
    return app


# --------------------------------------------------------------------------- plain Authlib


def authlib_app(url: str) -> Flask:
    from authlib.integrations.flask_oauth2 import AuthorizationServer
    from authlib.integrations.sqla_oauth2 import create_query_client_func, create_save_token_func
    from authlib.oauth2.rfc7662 import IntrospectionEndpoint

    from oauth_sessions.storage.database import normalize_url

    db, _user, Client, Token = authlib_models()
    app = Flask("authlib")
    app.config["SQLALCHEMY_DATABASE_URI"] = normalize_url(url)
    db.init_app(app)

    class MyIntrospectionEndpoint(IntrospectionEndpoint):  # type: ignore[misc]
        def query_token(self, token: str, token_type_hint: str | None) -> Any:
            if token_type_hint == "access_token":
                tok = Token.query.filter_by(access_token=token).first()
            elif token_type_hint == "refresh_token":
                tok = Token.query.filter_by(refresh_token=token).first()
            else:
                tok = Token.query.filter_by(access_token=token).first()
                if not tok:
                    tok = Token.query.filter_by(refresh_token=token).first()
            return tok

        def introspect_token(self, token: Any) -> dict[str, Any]:
            return {
                "active": True,
                "client_id": token.client_id,
                "token_type": token.token_type,
                "username": token.user.username,
                "scope": token.get_scope(),
                "sub": str(token.user.id),
                "aud": token.client_id,
                "iss": ISSUER,
                "exp": token.issued_at + token.expires_in,
                "iat": token.issued_at,
            }

        def check_permission(self, token: Any, client: Any, request: Any) -> bool:
            # as in the documentation: only a designated client may introspect
            return bool(client.client_metadata.get("can_introspect"))

    server = AuthorizationServer(
        app,
        query_client=create_query_client_func(db.session, Client),
        save_token=create_save_token_func(db.session, Token),
    )
    server.register_endpoint(MyIntrospectionEndpoint)

    @app.post("/oauth/introspect")
    def introspect_token() -> Any:
        return server.create_endpoint_response(MyIntrospectionEndpoint.ENDPOINT_NAME)

    return app


# --------------------------------------------------------------------------- query counting


class QueryCounter:
    """Counts what is sent to PostgreSQL at the driver (psycopg), below SQLAlchemy: statements,
    prepared statements and the pool's pre-ping (SQLAlchemy pings with an empty statement)."""

    def __init__(self) -> None:
        self.statements = 0
        self.pings = 0

    def attach(self) -> None:
        import psycopg

        from oauth_sessions.storage import introspection_store

        original = psycopg.Cursor.execute
        original_round_trip = introspection_store._round_trip
        counter = self

        def execute(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if str(query).strip().lower() in (";", "select 1"):
                counter.pings += 1
            else:
                counter.statements += 1
            return original(cursor, query, *args, **kwargs)

        def round_trip(pgconn: Any, statement: bytes, params: Any) -> Any:
            counter.statements += 1  # our prepared read (libpq directly, below the cursor)
            return original_round_trip(pgconn, statement, params)

        psycopg.Cursor.execute = execute  # type: ignore[method-assign,assignment]
        introspection_store._round_trip = round_trip

        def restore() -> None:
            psycopg.Cursor.execute = original  # type: ignore[method-assign]
            introspection_store._round_trip = original_round_trip

        self._restore = restore

    def detach(self) -> None:
        self._restore()
