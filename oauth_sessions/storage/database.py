"""Engines for the ``auth`` schema on PostgreSQL (reference) and SQLite (embedded).

The library's own tables live in a schema of its own, ``oauth_sessions`` by default
(``OAUTH_SESSIONS_DATABASE_SCHEMA``, :func:`with_library_schema`): the models name it
:data:`~oauth_sessions.storage.models.LIBRARY_SCHEMA` and the engine's ``schema_translate_map``
turns that into the configured name.

On SQLite the ``auth`` schema and the library's are both translated away, foreign
keys are switched on for every connection (SQLite ignores them otherwise, and
cascading deletes are part of the security model), and in-memory databases share
one connection so that every request sees the same data.

On PostgreSQL every new connection learns whether a connection pooler stands between it and the
server (:data:`POOLER_MODES`, the ``OAUTH_SESSIONS_DATABASE_POOLER`` setting). Behind a
transaction pooler (PgBouncer ``pool_mode = transaction``, Supabase's pooler on its transaction
port) consecutive transactions of one client connection run on different server connections, so
no server-side prepared statement may outlive its transaction: such a connection gets psycopg's
``prepare_threshold = None`` (no automatic ``PREPARE`` after five runs), and the library's own
libpq statements (:mod:`~oauth_sessions.storage.rotation_pg`,
:mod:`~oauth_sessions.storage.introspection_store`) run unnamed on it. ``auto`` (the default)
finds a pooler by comparing the backend process id the server side announced at login
(``BackendKeyData``) with ``pg_backend_pid()``: PgBouncer announces a
made-up one, so they differ, and an unknown pooler counts as a transaction pooler.
"""

from __future__ import annotations

import logging
import re
import weakref
from typing import Any, Final

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool, StaticPool

from .database_errors import check_database_url
from .models import LIBRARY_SCHEMA, SCHEMA

log = logging.getLogger(__name__)

#: ``auto``: detect per connection (a pooler found counts as ``transaction``); ``none``: direct to
#: PostgreSQL; ``session``: a pooler that keeps one server connection per client connection (or
#: one that tracks prepared statements itself, PgBouncer 1.21+ with ``max_prepared_statements``);
#: ``transaction``: a pooler that may switch server connections between transactions.
POOLER_MODES: Final = ("auto", "none", "session", "transaction")
_FOUND: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_WATCHED: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def normalize_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (SQLAlchemy's default driver is psycopg2).

    :class:`~oauth_sessions.storage.database_errors.UnsupportedDatabaseURL` for a URL no engine
    here serves (``mysql://``), naming the schemes that are.
    """
    parsed = check_database_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


#: The library's schema unless configured otherwise.
DEFAULT_LIBRARY_SCHEMA: Final = LIBRARY_SCHEMA
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_schema_name(name: str) -> str:
    """``name`` if it can be the library's schema: a lower-case SQL identifier, not ``auth``
    (Supabase Auth's) nor ``public``; ``ValueError`` otherwise."""
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name) or name in (
            "auth", "public") or name.startswith("pg_"):
        raise ValueError(
            "the library's schema must be a lower-case SQL identifier (letters, digits, _), "
            f"not auth, public or pg_*; got {name!r}")
    return name


def with_library_schema(engine: Engine, schema: str) -> Engine:
    """``engine`` reading and writing the library's tables in ``schema`` (PostgreSQL).

    The default name needs no translation and ``engine`` itself is returned; SQLite engines
    made by :func:`create_auth_engine` have no schemas at all and are returned as they are.
    """
    schema = check_schema_name(schema)
    if engine.dialect.name != "postgresql" or schema == LIBRARY_SCHEMA:
        return engine
    mapping = dict(engine.get_execution_options().get("schema_translate_map") or {})
    if mapping.get(LIBRARY_SCHEMA) == schema:
        return engine
    mapping[LIBRARY_SCHEMA] = schema
    return engine.execution_options(schema_translate_map=mapping)


def create_auth_engine(url: str, *, pooler: str = "auto", schema: str = DEFAULT_LIBRARY_SCHEMA,
                       **kwargs: Any) -> Engine:
    """Create an engine suited to the auth schema on ``url``.

    ``pooler`` (one of :data:`POOLER_MODES`) says what stands between the app and PostgreSQL;
    ignored on SQLite. ``schema``: the library's own schema (:func:`with_library_schema`).
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        engine = create_engine(url, **kwargs).execution_options(
            schema_translate_map={SCHEMA: None, LIBRARY_SCHEMA: None}
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    pg_engine = create_engine(url, **kwargs)
    watch_pooler(pg_engine, pooler)
    return with_library_schema(pg_engine, schema)


def watch_pooler(engine: Engine, mode: str) -> None:
    """Make every new psycopg connection of ``engine`` follow pooler ``mode``; once per engine.

    For engines the library did not make (``OAuthSessions(engine=...)``); connections the
    engine's pool already holds are dropped, so none escapes the check.
    """
    if mode not in POOLER_MODES:
        raise ValueError(f"pooler must be one of {', '.join(POOLER_MODES)}, got {mode!r}")
    if engine.dialect.driver != "psycopg" or engine in _WATCHED:
        return
    had_connections = isinstance(engine.pool, QueuePool) and engine.pool.checkedin() > 0
    _WATCHED[engine] = mode
    told = False

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        nonlocal told
        found = _detect(dbapi_connection) if mode == "auto" else mode
        if found == "transaction":
            dbapi_connection.prepare_threshold = None  # psycopg: never PREPARE on its own
        if found != mode and not told:
            told = True
            log.info("the database connections go through a connection pooler: server-side "
                     "prepared statements are off (OAUTH_SESSIONS_DATABASE_POOLER to choose)")
        _FOUND[dbapi_connection] = found

    event.listen(engine, "connect", on_connect)
    if had_connections:
        engine.dispose(close=False)


def _detect(dbapi_connection: Any) -> str:
    """``none`` when the backend pid libpq was given at login is the server's, else ``transaction``.

    Runs in its own transaction, ended here, with ``prepare=False`` (nothing left on the server).
    """
    announced = dbapi_connection.pgconn.backend_pid
    serving = dbapi_connection.execute("SELECT pg_backend_pid()", prepare=False).fetchone()
    if not dbapi_connection.autocommit:
        dbapi_connection.rollback()
    (pid,) = serving if serving is not None else (None,)
    return "none" if pid == announced else "transaction"


def pooler_of(dbapi_connection: Any) -> str:
    """What stands between this psycopg connection and PostgreSQL (``none`` if never checked)."""
    return _FOUND.get(dbapi_connection, "none")


def named_statements_allowed(dbapi_connection: Any) -> bool:
    """Whether a server-side prepared statement may live on this connection past a transaction.

    psycopg's own switch decides, so a connection made with ``prepare_threshold=None`` by hand
    (psycopg's advice for PgBouncer) gets the same treatment as one found behind a pooler.
    """
    return getattr(dbapi_connection, "prepare_threshold", None) is not None


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("char_length", 1, _char_length, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _char_length(value: Any) -> int | None:
    return None if value is None else len(str(value))

