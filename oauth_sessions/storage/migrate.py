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
from sqlalchemy import Connection, Engine, inspect, text

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


class SupabaseManagedError(AttachError):
    """``auth`` is managed by Supabase Auth and this library would have to change it: refused.

    Raised before anything is written; the message says what is missing and what to do.
    """


class PrivilegeError(RuntimeError):
    """The database role lacks a privilege the library needs; the message names grant and role."""


#: Supabase Auth's own migration ledger: where it exists, Supabase Auth manages ``auth``.
SUPABASE_LEDGER = "auth.schema_migrations"
#: The Supabase Auth release that added the OAuth columns of ``auth.sessions`` and the
#: ``oauth_clients`` / ``oauth_authorizations`` / ``oauth_consents`` tables.
SUPABASE_OAUTH_RELEASE = "v2.179.0 (2025-08)"
_SESSION_OAUTH_COLUMNS = ("oauth_client_id", "refresh_token_hmac_key", "refresh_token_counter",
                          "scopes")

#: What the library does to each table it uses (tables not there yet are not checked).
REQUIRED_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "auth.sessions": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "auth.mfa_amr_claims": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "auth.users": ("SELECT",),
    "auth.oauth_clients": ("SELECT", "INSERT", "UPDATE"),
    "auth.oauth_consents": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "auth.oauth_authorizations": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "auth.oauth_signing_keys": ("SELECT", "INSERT", "UPDATE"),
    "auth.oauth_client_assertions": ("SELECT", "INSERT", "DELETE"),
}


def is_supabase_managed(connection: Connection) -> bool:
    """Whether Supabase Auth manages ``auth`` here (``auth.schema_migrations`` exists)."""
    if connection.dialect.name != "postgresql":
        return False
    found = connection.execute(text("SELECT to_regclass(:t)"), {"t": SUPABASE_LEDGER}).scalar()
    return found is not None


def check_supabase_managed(connection: Connection, *, pending: bool) -> None:
    """On a Supabase-managed ``auth``, refuse (changing nothing) whatever would need DDL there.

    ``pending``: this library's migrations have something left to run. Supabase Auth applies
    its own numbered migrations to ``auth``; an object this library created there makes a
    later Supabase Auth upgrade stop, and Supabase's hosted platform forbids it anyway.
    """
    inspector = inspect(connection)
    tables = set(inspector.get_table_names(schema="auth"))
    columns = ({c["name"] for c in inspector.get_columns("sessions", schema="auth")}
               if "sessions" in tables else set())
    lacking = [f"auth.sessions.{c}" for c in _SESSION_OAUTH_COLUMNS if c not in columns]
    if "sessions" not in tables:
        lacking.insert(0, "auth.sessions")
    if "oauth_clients" not in tables:
        lacking.append("auth.oauth_clients")
    if lacking:
        raise SupabaseManagedError(
            "auth is managed by Supabase Auth (auth.schema_migrations exists) and is older than "
            f"oauth_sessions needs: it lacks {', '.join(lacking)}. Supabase Auth "
            f"{SUPABASE_OAUTH_RELEASE} brings these; upgrade Supabase Auth, then run "
            "'oauth-sessions db upgrade' again. Nothing was changed."
        )
    present = {c["name"] for c in inspector.get_columns("oauth_clients", schema="auth")}
    missing = sorted(OWN_COLUMNS["oauth_clients"] - present)
    if missing or pending:
        detail = (f"auth.oauth_clients lacks this library's columns ({', '.join(missing)})"
                  if missing else "this library's pending migrations would change auth")
        raise SupabaseManagedError(
            "auth is managed by Supabase Auth (auth.schema_migrations exists) and oauth_sessions "
            f"runs no DDL there: {detail}. This version keeps its per-client settings in "
            "auth.oauth_clients, so it cannot attach to a Supabase-managed database yet. "
            "Nothing was changed; see docs/guides/supabase.md."
        )


def check_privileges(engine: Engine) -> None:
    """Raise :class:`PrivilegeError` naming each missing grant and the role (PostgreSQL).

    Checked at start-up so that a role without, say, UPDATE on ``auth.sessions`` fails with
    the grant to give instead of at the first refresh. Tables that do not exist yet (before
    ``db upgrade``) are skipped; on SQLite there are no privileges.
    """
    if engine.dialect.name != "postgresql":
        return
    pairs = [(table, privilege) for table, privileges in REQUIRED_PRIVILEGES.items()
             for privilege in privileges]
    query = text(
        "SELECT current_user AS role, p.t AS table_name, p.priv AS privilege "
        "FROM unnest(CAST(:tables AS text[]), CAST(:privs AS text[])) AS p(t, priv) "
        "WHERE to_regclass(p.t) IS NOT NULL AND NOT has_table_privilege(to_regclass(p.t), p.priv)"
    )
    with engine.connect() as connection:
        rows = connection.execute(query, {"tables": [t for t, _ in pairs],
                                          "privs": [p for _, p in pairs]}).all()
    if not rows:
        return
    role = rows[0].role
    grants = "; ".join(f"GRANT {r.privilege} ON {r.table_name} TO {role}" for r in rows)
    raise PrivilegeError(
        f"the database role {role} lacks privileges oauth_sessions needs: {grants}. Grant "
        "them, or connect as the role that owns the auth schema (see docs/guides/supabase.md)."
    )


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
    """Bring the auth schema to ``revision`` (attaching to an existing schema first).

    Where Supabase Auth manages ``auth`` (:func:`is_supabase_managed`) nothing that would
    change ``auth`` runs: :class:`SupabaseManagedError` is raised first, with nothing changed.
    """
    with engine.begin() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        if is_supabase_managed(connection):
            current = context.get_current_revision()
            target = head_revision() if revision == "head" else revision
            check_supabase_managed(connection, pending=current != target)
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
