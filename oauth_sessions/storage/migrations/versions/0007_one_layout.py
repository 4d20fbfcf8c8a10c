"""One layout, two owners: ``auth`` in Supabase Auth's exact shape, the library's own schema

Everything this library kept inside ``auth`` moves to its own schema (``oauth_sessions`` unless
``OAUTH_SESSIONS_DATABASE_SCHEMA`` names another; on SQLite the same tables, one namespace):

* the library's columns of ``auth.oauth_clients`` become rows of ``oauth_client_settings``
  (one per client, keyed and cascaded by the client's id), then leave ``auth.oauth_clients``;
  the client rows are re-encoded as Supabase Auth writes them: comma-separated
  ``redirect_uris`` and ``grant_types``, ``client_secret_hash`` as unpadded base64url of the
  secret's SHA-256 (the stored digest re-encoded: no secret changes). A ``private_key_jwt``
  client keeps that method in its settings and gets ``client_secret_basic`` with a hash no
  secret can match in ``auth`` (Supabase's CHECK allows no other method; see
  docs/guides/supabase.md);
* the library's ``auth.oauth_authorizations`` (codes with session, aal, amr, auth_time)
  becomes ``oauth_authorization_codes``; ``auth.oauth_authorizations`` is then created in
  Supabase's shape;
* ``auth.oauth_signing_keys`` and ``auth.oauth_client_assertions`` move as they are;
* ``auth.users``, ``auth.oauth_clients`` and ``auth.oauth_consents`` gain what Supabase Auth's
  shape has and they lacked (users' 30 other columns, defaults, CHECKs, indexes); a consent
  row with blank scopes (it granted nothing, and Supabase's CHECK refuses it) is dropped.

Where Supabase Auth manages ``auth`` (``config.attributes["supabase_managed"]``), none of that
runs: only the library's tables are created, in its own schema.

Not reversible: the encodings change and columns leave ``auth`` (restore a backup instead).

The SQL text here is built only from table and column names of this file and the configured
schema name (checked as an identifier by the settings), never from data; values are bound.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.schema import CreateTable

from oauth_sessions.storage import models
from oauth_sessions.storage.migrate import library_schema
from oauth_sessions.storage.supabase_shape import (
    CLIENT_CHECKS,
    CONSENT_CHECKS,
    USER_INDEXES,
    users_columns,
)

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: Columns of ``auth.oauth_clients`` that earlier revisions added (this library's settings).
OWN_CLIENT_COLUMNS = ("scope", "min_aal", "max_session_seconds", "can_introspect",
                      "post_logout_redirect_uris", "backchannel_logout_uri",
                      "backchannel_logout_session_required", "jwks",
                      "registration_access_token_hash", "verified")
CODE_COLUMNS = ("id", "client_id", "user_id", "redirect_uri", "scope", "state", "nonce",
                "code_challenge", "code_challenge_method", "authorization_code", "status", "aal",
                "amr", "factor_id", "auth_time", "not_after", "created_at", "expires_at",
                "used_at", "session_id", "user_agent", "ip", "replaces_session_id")
#: Marks a stored secret hash that no secret can match (not base64url: Supabase Auth's
#: comparison of base64url(SHA-256(secret)) with it always fails).
UNUSABLE_SECRET_PREFIX = "!private_key_jwt:"


def _pg() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def _library() -> str | None:
    return library_schema(op.get_bind())


def _auth(name: str) -> str:
    return f"auth.{name}" if _pg() else name


def _lib(name: str) -> str:
    schema = _library()
    return f'"{schema}".{name}' if schema else name


def _inspector() -> Any:
    return sa.inspect(op.get_bind())


def _has_table(name: str, schema: str | None) -> bool:
    return bool(_inspector().has_table(name, schema=schema))


def _columns(name: str, schema: str | None) -> list[str]:
    return [c["name"] for c in _inspector().get_columns(name, schema=schema)]


def _b64url_of_hex(stored: str | None) -> str | None:
    """``sha256$<hex>`` (this library's old form) as Supabase's unpadded base64url."""
    if stored is None or not stored.startswith("sha256$"):
        return stored
    try:
        digest = bytes.fromhex(stored[len("sha256$"):])
    except ValueError:
        return stored
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _list(text: str | None, *seps: str) -> str:
    value = text or ""
    for sep in seps:
        value = value.replace(sep, " ")
    return ",".join(v for v in value.split(" ") if v)


def _sqlite_table(table: sa.Table, name: str | None = None) -> sa.Table:
    """``table`` for SQLite, every table put in one schema (``auth``, which the engine translates
    away): SQLAlchemy leaves out a foreign key to a table of another schema, and SQLite has but
    one namespace."""
    copy = sa.MetaData()
    for other in models.metadata.sorted_tables:
        if other is not table:
            other.to_metadata(copy, schema="auth", referred_schema_fn=lambda *_: "auth")
    return table.to_metadata(copy, schema="auth", referred_schema_fn=lambda *_: "auth", name=name)


def _create(table: sa.Table) -> None:
    bind = op.get_bind()
    if _pg():
        table.create(bind)
        return
    bind.execute(CreateTable(_sqlite_table(table)))
    for index in table.indexes:
        index.create(bind)


def _sqlite_rebuild(table: sa.Table, keep: list[str]) -> None:
    """Rebuild a SQLite table to the model's shape keeping ``keep`` columns' values (SQLite
    cannot add constraints or drop constrained columns). Foreign keys are off meanwhile
    (:func:`oauth_sessions.storage.migrate.upgrade`), so nothing cascades."""
    bind = op.get_bind()
    temporary = _sqlite_table(table, name=f"_new_{table.name}")
    bind.execute(CreateTable(temporary))
    names = ", ".join(keep)
    bind.execute(sa.text(f"INSERT INTO _new_{table.name} ({names}) SELECT {names} "
                         f"FROM {table.name}"))
    bind.execute(sa.text(f"DROP TABLE {table.name}"))
    bind.execute(sa.text(f"ALTER TABLE _new_{table.name} RENAME TO {table.name}"))
    for index in table.indexes:
        index.create(bind)


def _library_tables() -> None:
    schema = _library()
    for model in (models.OAuthClientSettings, models.OAuthAuthorizationCode):
        table = model.__table__
        assert isinstance(table, sa.Table)
        if not _has_table(table.name, schema):
            _create(table)
    for moved in (models.OAuthSigningKey, models.OAuthClientAssertion):
        table = moved.__table__
        assert isinstance(table, sa.Table)
        if _pg() and _has_table(table.name, "auth"):
            op.execute(f'ALTER TABLE auth.{table.name} SET SCHEMA "{schema}"')
        elif not _has_table(table.name, schema):
            _create(table)
    if _pg():
        for name in ("oauth_client_settings", "oauth_authorization_codes", "oauth_signing_keys",
                     "oauth_client_assertions"):
            op.execute(f"ALTER TABLE {_lib(name)} ENABLE ROW LEVEL SECURITY")


def _move_client_settings() -> None:
    """Settings rows from the library's columns of ``auth.oauth_clients``; Supabase encodings."""
    bind = op.get_bind()
    present = _columns("oauth_clients", "auth" if _pg() else None)
    own = [c for c in OWN_CLIENT_COLUMNS if c in present]
    if own:
        rows = bind.execute(sa.text(
            "SELECT id, client_secret_hash, redirect_uris, grant_types, "
            f"token_endpoint_auth_method, {', '.join(own)} FROM {_auth('oauth_clients')}"
        )).mappings().all()
        for row in rows:
            values = {c: row[c] for c in own}
            if "registration_access_token_hash" in values:
                values["registration_access_token_hash"] = _b64url_of_hex(
                    values["registration_access_token_hash"])
            method = row["token_endpoint_auth_method"]
            secret_hash = _b64url_of_hex(row["client_secret_hash"])
            if method not in ("client_secret_basic", "client_secret_post", "none"):
                values["token_endpoint_auth_method"] = method
                method = "client_secret_basic"
                secret_hash = UNUSABLE_SECRET_PREFIX + secrets.token_urlsafe(32)
            values["client_id"] = row["id"]
            names = ", ".join(values)
            marks = ", ".join(f":{k}" for k in values)
            bind.execute(sa.text(f"INSERT INTO {_lib('oauth_client_settings')} ({names}) "
                                 f"VALUES ({marks})"), values)
            bind.execute(sa.text(
                f"UPDATE {_auth('oauth_clients')} SET redirect_uris = :r, grant_types = :g, "
                "client_secret_hash = :h, token_endpoint_auth_method = :m WHERE id = :id"),
                {"r": _list(row["redirect_uris"], "\n", ","),
                 "g": _list(row["grant_types"], ","), "h": secret_hash, "m": method,
                 "id": row["id"]})
    if _pg():
        for column in own:
            op.drop_column("oauth_clients", column, schema="auth")
        op.execute("ALTER TABLE auth.oauth_clients ALTER COLUMN created_at SET DEFAULT now(), "
                   "ALTER COLUMN updated_at SET DEFAULT now(), "
                   "ALTER COLUMN client_type SET DEFAULT 'confidential'::auth.oauth_client_type")
        _add_checks("oauth_clients", CLIENT_CHECKS)
        op.execute("ALTER TABLE auth.oauth_clients DISABLE ROW LEVEL SECURITY")
    else:
        table = models.OAuthClient.__table__
        assert isinstance(table, sa.Table)
        _sqlite_rebuild(table, [c.name for c in table.columns])


def _add_checks(table: str, checks: tuple[tuple[str, str], ...]) -> None:
    existing = {c["name"] for c in _inspector().get_check_constraints(table, schema="auth")}
    for name, condition in checks:
        if name not in existing:
            op.create_check_constraint(name, table, condition, schema="auth")


def _authorizations() -> None:
    bind = op.get_bind()
    schema = "auth" if _pg() else None
    if _has_table("oauth_authorizations", schema):
        if "aal" not in _columns("oauth_authorizations", schema):
            return  # Supabase Auth's own table already
        names = ", ".join(CODE_COLUMNS)
        bind.execute(sa.text(f"INSERT INTO {_lib('oauth_authorization_codes')} ({names}) "
                             f"SELECT {names} FROM {_auth('oauth_authorizations')}"))
        op.drop_table("oauth_authorizations", schema=schema)
    table = models.OAuthAuthorization.__table__
    assert isinstance(table, sa.Table)
    if _pg():
        for column in table.columns:
            if isinstance(column.type, sa.Enum):
                column.type.create(bind, checkfirst=True)
    _create(table)
    if _pg():
        op.execute("ALTER TABLE auth.oauth_authorizations ALTER COLUMN expires_at "
                   "SET DEFAULT now() + '00:03:00'::interval")


def _consents() -> None:
    bind = op.get_bind()
    bind.execute(sa.text(f"DELETE FROM {_auth('oauth_consents')} WHERE trim(scopes) = ''"))
    table = models.OAuthConsent.__table__
    assert isinstance(table, sa.Table)
    if _pg():
        op.execute("ALTER TABLE auth.oauth_consents ALTER COLUMN granted_at SET DEFAULT now()")
        _add_checks("oauth_consents", CONSENT_CHECKS)
        indexes = {i["name"] for i in _inspector().get_indexes("oauth_consents", schema="auth")}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(bind)
    else:
        _sqlite_rebuild(table, [c.name for c in table.columns])


def _users() -> None:
    dialect = op.get_bind().dialect.name
    schema = "auth" if _pg() else None
    present = set(_columns("users", schema))
    for column in users_columns(dialect):
        if column.name not in present:
            op.add_column("users", column, schema=schema)
    indexes = {i["name"] for i in _inspector().get_indexes("users", schema=schema)}
    for name, columns, unique, where in USER_INDEXES:
        if name not in indexes:
            op.create_index(name, "users", list(columns), unique=unique, schema=schema,
                            postgresql_where=sa.text(where) if where else None,
                            sqlite_where=sa.text(where.replace("false", "0")) if where else None)
    if "users_email_key" in indexes:
        op.drop_index("users_email_key", "users", schema=schema)
    if _pg():
        constraints = {c["name"] for c in _inspector().get_unique_constraints("users", schema="auth")}
        if "users_phone_key" not in constraints:
            op.create_unique_constraint("users_phone_key", "users", ["phone"], schema="auth")
        checks = {c["name"] for c in _inspector().get_check_constraints("users", schema="auth")}
        if "users_email_change_confirm_status_check" not in checks:
            op.create_check_constraint(
                "users_email_change_confirm_status_check", "users",
                "email_change_confirm_status >= 0 AND email_change_confirm_status <= 2",
                schema="auth")
    elif "users_phone_key" not in indexes:
        # SQLite cannot add a UNIQUE constraint to a table: a unique index does the same.
        op.create_index("users_phone_key", "users", ["phone"], unique=True)


def upgrade() -> None:
    _library_tables()
    if context.config.attributes.get("supabase_managed"):
        return  # auth belongs to Supabase Auth: nothing of it is touched
    _move_client_settings()
    _authorizations()
    _consents()
    _users()


def downgrade() -> None:
    raise NotImplementedError(
        "revision 0007 cannot be downgraded: it moved the library's data out of auth and "
        "re-encoded the clients as Supabase Auth writes them; restore a backup taken before "
        "the upgrade instead"
    )
