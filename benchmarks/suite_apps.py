"""The WSGI apps that ``benchmarks/suite.py`` serves with gunicorn, one at a time.

``gunicorn 'benchmarks.suite_apps:create("host")'`` with ``BENCH_DB_URL`` set. Each app answers
both measured endpoints, ``POST /oauth/introspect`` and ``POST /oauth/token`` (refresh grant):

* ``trivial``: Flask views that parse the form and return constant JSON: the ceiling of any
  Flask plugin under this server. It has the host's ``SECRET_KEY`` (:data:`HOST_CONFIG`), as
  every target does: with one, Flask opens the cookie session of every request (20-40 µs,
  no cookie sent), which any view of such a host pays, so leaving it out of the baseline
  would charge the library for the host's choice.
* ``floor``: the trivial views plus only the statements any design must send: introspection
  takes the ``sid`` from the token *without* verifying it and makes one primary-key ``SELECT``;
  refresh takes the session id and counter from the token without checking its tag and makes
  one primary-key ``SELECT`` and one compare-and-swap ``UPDATE`` (autocommitted). Prepared
  statements on a per-thread libpq connection (unnamed behind a transaction pooler). No client
  authentication, no HMAC, no signature, no rule.
* ``authlib``: plain Authlib 1.x as its documentation shows it: Flask-SQLAlchemy models with
  ``OAuth2ClientMixin``/``OAuth2TokenMixin``, an ``IntrospectionEndpoint`` with the documented
  ``query_token``/``introspect_token``/``check_permission``, and a ``RefreshTokenGrant`` with
  ``INCLUDE_NEW_REFRESH_TOKEN`` (rotation: revoke the old row, insert a new one).
* ``host``: ours the Flask way in, inside a host app with one no-op ``before_request`` and one
  ``after_request``, as every real provider has (CSRF, CORS, logging, tracing...).
  ``host-es256`` is the same with ID tokens signed ES256 instead of RS256.
* ``wsgi``: ours through the machine-to-machine WSGI app (``oauth_sessions.wsgi.make_wsgi_app``)
  of the same host app, where no Flask request hooks run. Only once that module exists.

The database URL may point at PgBouncer (``BENCH_POOLER=transaction``): the floor then sends its
statements unnamed, and ours detects the pooler by itself.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, request

from benchmarks.harness import authlib_models
from oauth_sessions.storage.database import normalize_url

ISSUER = "http://127.0.0.1:9"  # the issuer only names the provider; nothing listens there
#: The Flask config of every target: a host that runs the library has a SECRET_KEY (init_app
#: requires one, for the consent page), so the trivial view and the floors get it too.
HOST_CONFIG: dict[str, Any] = {"SECRET_KEY": "benchmark-only"}
TARGETS = ("trivial", "floor", "authlib", "host", "host-es256", "wsgi")


def create(target: str) -> Any:
    url = os.environ.get("BENCH_DB_URL", "")
    if target == "trivial":
        return trivial_app()
    if target == "floor":
        return floor_app(url, named=os.environ.get("BENCH_POOLER") != "transaction")
    if target == "authlib":
        return authlib_app(url)
    if target == "host":
        return host_app(url)
    if target == "host-es256":
        return host_app(url, id_token_alg="ES256")
    if target == "wsgi":
        return wsgi_app(url)
    raise SystemExit(f"unknown target {target!r}: one of {', '.join(TARGETS)}")


def trivial_app() -> Flask:
    app = Flask("trivial")
    app.config.update(HOST_CONFIG)

    @app.post("/oauth/introspect")
    def introspect() -> Any:
        return jsonify({"active": bool(request.form.get("token"))})

    @app.post("/oauth/token")
    def token() -> Any:
        return jsonify({"access_token": "x", "token_type": "Bearer", "expires_in": 300,
                        "refresh_token": "y" if request.form.get("refresh_token") else ""})

    return app


_FLOOR_READ = (b"SELECT id, user_id, oauth_client_id, scopes, aal, extract(epoch FROM not_after) "
               b"FROM auth.sessions WHERE id = $1")
_FLOOR_KEY = (b"SELECT refresh_token_hmac_key, refresh_token_counter, scopes, aal, oauth_client_id, "
              b"extract(epoch FROM not_after) FROM auth.sessions WHERE id = $1")
_FLOOR_CAS = (b"UPDATE auth.sessions SET refresh_token_counter = refresh_token_counter + 1, "
              b"refreshed_at = now() AT TIME ZONE 'UTC', updated_at = now() "
              b"WHERE id = $1 AND refresh_token_counter = $2 RETURNING refresh_token_counter")


def per_thread_statements(url: str, named: bool) -> Callable[[bytes, list[bytes | None]], Any]:
    """``run(sql, params)`` on the calling server thread's own autocommit libpq connection:
    prepared once per connection when ``named``, else sent unnamed (a transaction pooler)."""
    import psycopg

    dsn = normalize_url(url).replace("postgresql+psycopg://", "postgresql://")
    local = threading.local()

    def run(sql: bytes, params: list[bytes | None]) -> Any:
        pgconn = getattr(local, "pgconn", None)
        if pgconn is None:
            local.conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
            pgconn = local.pgconn = local.conn.pgconn
            local.prepared = set()
        if not named:
            return pgconn.exec_params(sql, params)
        name = b"floor_%d" % (hash(sql) & 0xFFFFFFFF)
        if name not in local.prepared:
            pgconn.prepare(name, sql)
            local.prepared.add(name)
        return pgconn.exec_prepared(name, params)

    return run


def floor_app(url: str, *, named: bool = True) -> Flask:
    from oauth_sessions.core.refresh_tokens import parse_refresh_token

    run = per_thread_statements(url, named)
    app = Flask("floor")
    app.config.update(HOST_CONFIG)

    @app.post("/oauth/introspect")
    def introspect() -> Any:
        payload = request.form.get("token", "").split(".")[1]
        sid = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]
        return jsonify({"active": run(_FLOOR_READ, [sid.encode()]).ntuples == 1})

    @app.post("/oauth/token")
    def token() -> Any:
        try:
            parsed = parse_refresh_token(request.form.get("refresh_token", ""))
        except ValueError:
            return jsonify({"error": "invalid_grant"}), 400
        sid = str(parsed.session_id).encode()
        run(_FLOOR_KEY, [sid])
        swapped = run(_FLOOR_CAS, [sid, str(parsed.counter).encode()]).ntuples == 1
        return jsonify({"access_token": "x", "token_type": "Bearer", "expires_in": 300,
                        "refresh_token": "y" if swapped else ""})

    return app


def settings(url: str, id_token_alg: str | None = None) -> dict[str, Any]:
    """Our provider's options in every target: the library's defaults but the issuer and DB."""
    options: dict[str, Any] = {"issuer": ISSUER, "database_url": url}
    if id_token_alg:
        options["id_token_signing_alg"] = id_token_alg
    return options


def host_app(url: str, *, id_token_alg: str | None = None) -> Flask:
    """A host app as real providers are: its own hooks, then the extension's blueprint."""
    from oauth_sessions import OAuthSessions

    app = Flask("host")

    @app.before_request
    def before() -> None:  # e.g. a CSRF check that lets the token endpoints through
        return None

    @app.after_request
    def after(response: Any) -> Any:  # e.g. a header set on every response
        return response

    app.config.update(HOST_CONFIG)  # init_app requires a SECRET_KEY (the consent page)
    OAuthSessions(app, **settings(url, id_token_alg))
    return app


def wsgi_app(url: str) -> Any:
    """Ours through the machine-to-machine WSGI app (``oauth_sessions.wsgi.make_wsgi_app``) of
    the same host app: none of its request hooks run there, which is the point."""
    from oauth_sessions.wsgi import make_wsgi_app  # type: ignore[import-not-found,unused-ignore]

    return make_wsgi_app(host_app(url))


# --------------------------------------------------------------------------- plain Authlib


def authlib_app(url: str) -> Flask:
    from authlib.integrations.flask_oauth2 import AuthorizationServer
    from authlib.integrations.sqla_oauth2 import create_query_client_func, create_save_token_func
    from authlib.oauth2.rfc6749 import grants
    from authlib.oauth2.rfc7662 import IntrospectionEndpoint

    db, User, Client, Token = authlib_models()
    app = Flask("authlib")
    app.config.update(HOST_CONFIG)
    app.config["SQLALCHEMY_DATABASE_URI"] = normalize_url(url)
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
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
                "active": True, "client_id": token.client_id, "token_type": token.token_type,
                "username": token.user.username, "scope": token.get_scope(),
                "sub": str(token.user.id), "aud": token.client_id, "iss": ISSUER,
                "exp": token.issued_at + token.expires_in, "iat": token.issued_at,
            }

        def check_permission(self, token: Any, client: Any, request: Any) -> bool:
            return bool(client.client_metadata.get("can_introspect"))

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
    server.register_endpoint(MyIntrospectionEndpoint)
    server.register_grant(RefreshTokenGrant)

    @app.post("/oauth/introspect")
    def introspect() -> Any:
        return server.create_endpoint_response(MyIntrospectionEndpoint.ENDPOINT_NAME)

    @app.post("/oauth/token")
    def token() -> Any:
        return server.create_token_response()

    return app
