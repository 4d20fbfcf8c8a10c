"""Run the shipped Alembic migrations against an engine, without an alembic.ini.

The version table is ``oauth_sessions_alembic_version`` so that a host app's own
Alembic history (``alembic_version``) is never touched.

Attaching to an existing database: if the ``auth`` tables already exist but this
library has never run there (no version table), :func:`upgrade` detects which
revision the live schema matches, stamps it, and only then upgrades, so nothing
is dropped or re-created.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

VERSION_TABLE = "oauth_sessions_alembic_version"
SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of the library."""
    script = ScriptDirectory(SCRIPT_LOCATION)
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, from ``oauth_sessions_alembic_version``; ``None`` if never migrated.

    """
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE}
        )
        return context.get_current_revision()


class AttachError(RuntimeError):
    """The live ``auth`` schema has tables of the same names but another shape."""


#: Columns this library adds to tables that Supabase Auth also has. A table that exists
#: without them belongs to Supabase Auth's own OAuth server, not to a run of these migrations.
OWN_COLUMNS = {
    "oauth_clients": {"scope", "min_aal", "max_session_seconds", "can_introspect"},
    "oauth_authorizations": {"authorization_code", "aal", "amr", "auth_time", "used_at"},
    "oauth_consents": {"scopes", "granted_at", "revoked_at"},
}


def detect_existing_revision(connection: Connection) -> str | None:
    """Which shipped revision an un-versioned live ``auth`` schema already matches.

    ``None`` means there is nothing to attach to (a fresh database). Raises
    :class:`AttachError` when a table of ours exists in a shape these migrations never
    wrote (e.g. Supabase Auth's own ``oauth_clients``): stamping it would leave the code
    reading columns that are not there, and altering another server's tables is not ours
    to decide.
    """
    schema = None if connection.dialect.name == "sqlite" else "auth"
    inspector = inspect(connection)
    tables = set(inspector.get_table_names(schema=schema))
    if "sessions" not in tables:
        return None
    for table, own in OWN_COLUMNS.items():
        if table not in tables:
            continue
        present = {c["name"] for c in inspector.get_columns(table, schema=schema)}
        missing = own - present
        if missing:
            raise AttachError(
                f"auth.{table} exists but lacks {', '.join(sorted(missing))}: it was not "
                "created by oauth_sessions (Supabase Auth's own OAuth server has a table of "
                "that name). Nothing was changed. Point oauth_sessions at a database where "
                "it owns these tables, or see docs/guides/supabase.md."
            )
    columns = {c["name"] for c in inspector.get_columns("sessions", schema=schema)}
    if "oauth_client_id" not in columns or "oauth_clients" not in tables:
        return "0001"
    if {"oauth_consents", "oauth_authorizations", "oauth_signing_keys"} <= tables:
        return "0003"
    return "0002"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the auth schema to ``revision`` (attaching to an existing schema first)."""
    with engine.begin() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        if context.get_current_revision() is None:
            existing = detect_existing_revision(connection)
            if existing is not None:
                command.stamp(_config(connection), existing)
        command.upgrade(_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Step back to ``revision``; columns and tables added after it are dropped with their data."""
    with engine.begin() as connection:
        command.downgrade(_config(connection), revision)


def stamp(engine: Engine, revision: str) -> None:
    """Record ``revision`` as applied without running anything (attach to a schema by hand)."""
    with engine.begin() as connection:
        command.stamp(_config(connection), revision)
