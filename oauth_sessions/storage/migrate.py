"""Run the shipped Alembic migrations against an engine, without an alembic.ini.

The version table is ``oauth_sessions_alembic_version`` in the library's own schema
(:func:`library_schema`; a host app's own Alembic history, ``alembic_version``, is never
touched). Databases migrated before revision 0007 kept it on the search path (``public``): it is
moved into the library's schema first.

Attaching to an existing database: if the ``auth`` tables already exist but this library has
never run there (no version table), :func:`upgrade` detects which revision the live schema
matches, stamps it, and only then upgrades, so nothing is dropped or re-created. Where Supabase
Auth manages ``auth`` (:func:`is_supabase_managed`) the library runs no DDL in ``auth`` at all:
it checks the shape it needs (:func:`check_supabase_managed`), creates only its own schema and
tables, and treats revisions 0001-0006 (the ``auth`` objects) as Supabase Auth's.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from .models import LIBRARY_SCHEMA
from .supabase_shape import REQUIRED_COLUMNS

VERSION_TABLE = "oauth_sessions_alembic_version"
SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))
#: The last revision that only created or changed ``auth`` objects: on a Supabase-managed
#: database those objects are Supabase Auth's, so an attach starts after it.
MANAGED_BASE = "0006"


def library_schema(bind: Connection | Engine) -> str | None:
    """The library's own schema on ``bind`` (``None`` on SQLite, which has no schemas)."""
    if bind.dialect.name == "sqlite":
        return None
    mapping = bind.get_execution_options().get("schema_translate_map") or {}
    name = mapping.get(LIBRARY_SCHEMA, LIBRARY_SCHEMA)
    return str(name) if name is not None else None


def version_table_sql(bind: Connection | Engine) -> str:
    """The version table's name as SQL text (schema-qualified on PostgreSQL)."""
    schema = library_schema(bind)
    return f'"{schema}".{VERSION_TABLE}' if schema else VERSION_TABLE


def _config(connection: Connection, *, managed: bool = False) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    config.attributes["supabase_managed"] = managed
    return config


def _context(connection: Connection) -> MigrationContext:
    return MigrationContext.configure(connection, opts={
        "version_table": VERSION_TABLE, "version_table_schema": library_schema(connection)})


def head_revision() -> str:
    """The newest revision shipped with this version of the library."""
    script = ScriptDirectory(SCRIPT_LOCATION)
    head = script.get_current_head()
    assert head is not None
    return head


def _legacy_version_table(connection: Connection) -> bool:
    """A version table where revisions before 0007 kept it (the search path), not yet moved."""
    if connection.dialect.name != "postgresql":
        return False
    schema = library_schema(connection)
    found = connection.execute(text("SELECT to_regclass(:old) IS NOT NULL AND to_regclass(:new) "
                                    "IS NULL"), {"old": VERSION_TABLE,
                                                 "new": f'"{schema}".{VERSION_TABLE}'}).scalar()
    return bool(found)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, from the version table; ``None`` if never migrated."""
    with engine.connect() as connection:
        if _legacy_version_table(connection):
            legacy = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            return legacy.get_current_revision()
        return _context(connection).get_current_revision()


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

#: What the library does to each table it uses (tables not there yet are not checked). Keys
#: are ``schema.table``; ``LIBRARY_SCHEMA`` stands for the library's schema as configured.
REQUIRED_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "auth.sessions": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "auth.mfa_amr_claims": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "auth.users": ("SELECT",),
    "auth.oauth_clients": ("SELECT", "INSERT", "UPDATE"),
    "auth.oauth_consents": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    f"{LIBRARY_SCHEMA}.oauth_client_settings": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    f"{LIBRARY_SCHEMA}.oauth_authorization_codes": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    f"{LIBRARY_SCHEMA}.oauth_signing_keys": ("SELECT", "INSERT", "UPDATE"),
    f"{LIBRARY_SCHEMA}.oauth_client_assertions": ("SELECT", "INSERT", "DELETE"),
    f"{LIBRARY_SCHEMA}.oauth_pushed_requests": ("SELECT", "INSERT", "UPDATE", "DELETE"),
}

#: Columns that earlier revisions of this library added to Supabase's tables in ``auth``,
#: and tables they created there: 0007 moves them out. A table of Supabase's name without
#: them was made by Supabase Auth (or by revision 0007).
OWN_COLUMNS = {
    "oauth_clients": {"scope", "min_aal", "max_session_seconds", "can_introspect"},
    "oauth_authorizations": {"aal", "amr", "auth_time", "used_at"},
}
OWN_AUTH_TABLES = ("oauth_signing_keys", "oauth_client_assertions")


def is_supabase_managed(connection: Connection) -> bool:
    """Whether Supabase Auth manages ``auth`` here (``auth.schema_migrations`` exists)."""
    if connection.dialect.name != "postgresql":
        return False
    found = connection.execute(text("SELECT to_regclass(:t)"), {"t": SUPABASE_LEDGER}).scalar()
    return found is not None


def _missing_supabase_objects(connection: Connection) -> list[str]:
    """What :data:`~oauth_sessions.storage.supabase_shape.REQUIRED_COLUMNS` names that
    ``auth`` lacks: ``auth.table`` for a table, ``auth.table.column`` for a column."""
    schema = None if connection.dialect.name == "sqlite" else "auth"
    inspector = inspect(connection)
    tables = set(inspector.get_table_names(schema=schema))
    lacking: list[str] = []
    for table, required in REQUIRED_COLUMNS.items():
        if table not in tables:
            lacking.append(f"auth.{table}")
            continue
        present = {c["name"] for c in inspector.get_columns(table, schema=schema)}
        lacking.extend(f"auth.{table}.{c}" for c in required if c not in present)
    return lacking


def check_supabase_managed(connection: Connection, *, pending: bool = False) -> None:
    """On a Supabase-managed ``auth``, refuse (changing nothing) unless it has what the
    library needs, so that attaching needs no DDL there.

    Refused: an ``auth`` older than Supabase Auth :data:`SUPABASE_OAUTH_RELEASE` (the
    message names the release), and one still holding objects an earlier version of this
    library put there (moving them out would be DDL in ``auth``). ``pending`` is accepted for
    compatibility and ignored: the library's pending migrations change only its own schema.
    """
    del pending
    lacking = _missing_supabase_objects(connection)
    sessions_old = any(item.startswith("auth.sessions") for item in lacking)
    if lacking:
        what = ("older than oauth_sessions needs" if sessions_old or "auth.oauth_clients" in lacking
                else "missing what oauth_sessions needs")
        raise SupabaseManagedError(
            f"auth is managed by Supabase Auth (auth.schema_migrations exists) and is {what}: "
            f"it lacks {', '.join(lacking)}. Supabase Auth {SUPABASE_OAUTH_RELEASE} brings "
            "these; upgrade Supabase Auth, then run 'oauth-sessions db upgrade' again. "
            "Nothing was changed."
        )
    inspector = inspect(connection)
    tables = set(inspector.get_table_names(schema="auth"))
    leftovers = [f"auth.{t}" for t in OWN_AUTH_TABLES if t in tables]
    for table, own in OWN_COLUMNS.items():
        if table in tables:
            present = {c["name"] for c in inspector.get_columns(table, schema="auth")}
            leftovers.extend(f"auth.{table}.{c}" for c in sorted(own & present))
    if leftovers:
        raise SupabaseManagedError(
            "auth is managed by Supabase Auth (auth.schema_migrations exists) and oauth_sessions "
            "runs no DDL there, but auth still holds objects an earlier oauth_sessions created: "
            f"{', '.join(leftovers)}. Move them out by hand (docs/guides/supabase.md, "
            "'Upgrading'), then run 'oauth-sessions db upgrade' again. Nothing was changed."
        )


def check_privileges(engine: Engine) -> None:
    """Raise :class:`PrivilegeError` naming each missing grant and the role (PostgreSQL).

    Checked at start-up so that a role without, say, UPDATE on ``auth.sessions`` fails with
    the grant to give instead of at the first refresh. Tables that do not exist yet (before
    ``db upgrade``) are skipped; on SQLite there are no privileges.
    """
    if engine.dialect.name != "postgresql":
        return
    schema = library_schema(engine) or LIBRARY_SCHEMA
    pairs = [(_qualified(table, schema), privilege)
             for table, privileges in REQUIRED_PRIVILEGES.items() for privilege in privileges]
    # A table in a schema the role may not use cannot even be looked up: USAGE comes first.
    usage = text(
        "SELECT current_user AS role, 'SCHEMA ' || s AS table_name, 'USAGE' AS privilege "
        "FROM unnest(CAST(:schemas AS text[])) AS s "
        "WHERE to_regnamespace(quote_ident(s)) IS NOT NULL "
        "AND NOT has_schema_privilege(quote_ident(s), 'USAGE')"
    )
    query = text(
        "SELECT current_user AS role, t AS table_name, priv AS privilege FROM (SELECT p.t, "
        "p.priv, CASE WHEN has_schema_privilege(to_regnamespace(split_part(p.t, '.', 1)), "
        "'USAGE') THEN to_regclass(p.t) END AS rel "
        "FROM unnest(CAST(:tables AS text[]), CAST(:privs AS text[])) AS p(t, priv) "
        "WHERE to_regnamespace(split_part(p.t, '.', 1)) IS NOT NULL) AS checked "
        "WHERE rel IS NOT NULL AND NOT has_table_privilege(rel, priv)"
    )
    with engine.connect() as connection:
        rows = [*connection.execute(usage, {"schemas": ["auth", schema]}).all(),
                *connection.execute(query, {"tables": [t for t, _ in pairs],
                                            "privs": [p for _, p in pairs]}).all()]
    if not rows:
        return
    role = rows[0].role
    grants = "; ".join(f"GRANT {r.privilege} ON {r.table_name} TO {role}" for r in rows)
    raise PrivilegeError(
        f"the database role {role} lacks privileges oauth_sessions needs: {grants}. Grant "
        "them, or connect as the role that owns the auth schema (see docs/guides/supabase.md)."
    )


def _qualified(table: str, schema: str) -> str:
    prefix, _, name = table.partition(".")
    return table if prefix != LIBRARY_SCHEMA else f"{schema}.{name}"


def detect_existing_revision(connection: Connection) -> str | None:
    """Which shipped revision an un-versioned live ``auth`` schema already matches.

    ``None`` means there is nothing to attach to (a fresh database). An ``auth`` in Supabase
    Auth's current shape (its ``oauth_clients``, none of this library's columns) matches
    :data:`MANAGED_BASE`. Raises :class:`AttachError` when ``auth.oauth_clients`` exists in a
    shape neither Supabase Auth nor these migrations wrote: stamping it would leave the code
    reading columns that are not there.
    """
    schema = None if connection.dialect.name == "sqlite" else "auth"
    inspector = inspect(connection)
    tables = set(inspector.get_table_names(schema=schema))
    if "sessions" not in tables:
        return None
    columns = {c["name"] for c in inspector.get_columns("sessions", schema=schema)}
    if "oauth_client_id" not in columns or "oauth_clients" not in tables:
        return "0001"
    client_columns = {c["name"] for c in inspector.get_columns("oauth_clients", schema=schema)}
    if OWN_COLUMNS["oauth_clients"] <= client_columns:
        if {"oauth_consents", "oauth_authorizations", "oauth_signing_keys"} <= tables:
            return "0003"
        return "0002"
    lacking = _missing_supabase_objects(connection)
    if lacking:
        raise AttachError(
            f"auth.oauth_clients exists but auth lacks {', '.join(lacking)}: neither Supabase "
            "Auth nor oauth_sessions made that shape. Nothing was changed. Point oauth_sessions "
            "at a database in Supabase Auth's shape, or see docs/guides/supabase.md."
        )
    return MANAGED_BASE


def _prepare(connection: Connection) -> None:
    """The library's schema, and the version table moved into it (PostgreSQL)."""
    if connection.dialect.name != "postgresql":
        return
    schema = library_schema(connection)
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    if _legacy_version_table(connection):
        connection.execute(text(f'ALTER TABLE {VERSION_TABLE} SET SCHEMA "{schema}"'))


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (attaching to an existing schema first).

    Where Supabase Auth manages ``auth`` (:func:`is_supabase_managed`) nothing in ``auth``
    changes: :func:`check_supabase_managed` runs first (refusing with nothing changed), then
    only the library's own schema is created and migrated.

    On SQLite, foreign keys are off while the migrations run (a table rebuild must not
    cascade) and checked before they are switched on again.
    """
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                managed = is_supabase_managed(connection)
                if managed:
                    check_supabase_managed(connection)
                _prepare(connection)
                if _context(connection).get_current_revision() is None:
                    existing = MANAGED_BASE if managed else detect_existing_revision(connection)
                    if existing is not None:
                        command.stamp(_config(connection, managed=managed), existing)
                command.upgrade(_config(connection, managed=managed), revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise AttachError(f"foreign keys broken after the migration: {broken[:3]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def downgrade(engine: Engine, revision: str) -> None:
    """Step back to ``revision``; columns and tables added after it are dropped with their data.

    Revision 0007 is not reversible (see its docstring).
    """
    with engine.begin() as connection:
        _prepare(connection)
        command.downgrade(_config(connection), revision)


def stamp(engine: Engine, revision: str) -> None:
    """Record ``revision`` as applied without running anything (attach to a schema by hand)."""
    with engine.begin() as connection:
        _prepare(connection)
        command.stamp(_config(connection, managed=is_supabase_managed(connection)), revision)
