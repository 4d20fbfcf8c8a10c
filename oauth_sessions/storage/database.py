"""Engines for the ``auth`` schema on PostgreSQL (reference) and SQLite (embedded).

On SQLite the ``auth`` schema is translated away (``schema_translate_map``), foreign
keys are switched on for every connection (SQLite ignores them otherwise, and
cascading deletes are part of the security model), and in-memory databases share
one connection so that every request sees the same data.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from .models import SCHEMA


def normalize_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (SQLAlchemy's default driver is psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_auth_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine suited to the auth schema on ``url``."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        engine = create_engine(url, **kwargs).execution_options(
            schema_translate_map={SCHEMA: None}
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("char_length", 1, _char_length, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _char_length(value: Any) -> int | None:
    return None if value is None else len(str(value))


def is_sqlite(engine: Engine) -> bool:
    """Whether ``engine`` is the embedded SQLite flavour."""
    return engine.dialect.name == "sqlite"
