"""Resource indicators (RFC 8707): registered resource servers and what each grant names

In the library's schema, never in ``auth``:

* ``oauth_resource_servers``: one row per registered resource server, identified by its
  absolute URI (``resource``, unique), with its own introspection secret (hashed like client
  secrets), its minimum aal and the scopes it accepts (NULL: any);
* ``oauth_session_resources``: the resources a session was granted at authorize, one row per
  session that named any (keyed by the session id, ``ON DELETE CASCADE`` from
  ``auth.sessions``, so a revoked session's row goes with it);
* ``oauth_authorization_codes.resources``: the resources of the authorization request,
  carried from the code to the session.

Idempotent like 0004 to 0013: what exists already is left as it is.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oauth_sessions.storage.column_types import UTCDateTime
from oauth_sessions.storage.migrate import library_schema

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _pg() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def _schema() -> str | None:
    """Where the new tables go: the library's schema on PostgreSQL. On SQLite ``auth``, which
    the engine translates away like every schema, so that the foreign key to ``auth.sessions``
    is kept (SQLite's DDL drops a foreign key that crosses schemas)."""
    return library_schema(op.get_bind()) if _pg() else "auth"


def _has_table(name: str) -> bool:
    schema = library_schema(op.get_bind())
    return bool(sa.inspect(op.get_bind()).has_table(name, schema=schema))


def upgrade() -> None:
    schema = _schema()
    if not _has_table("oauth_resource_servers"):
        op.create_table(
            "oauth_resource_servers",
            sa.Column("id", sa.Uuid, nullable=False),
            sa.Column("resource", sa.Text, nullable=False),
            sa.Column("name", sa.Text, nullable=True),
            sa.Column("secret_hash", sa.Text, nullable=False),
            sa.Column("min_aal", sa.String(4), nullable=True),
            sa.Column("scope", sa.Text, nullable=True),
            sa.Column("created_at", UTCDateTime, nullable=False),
            sa.PrimaryKeyConstraint("id", name="oauth_resource_servers_pkey"),
            sa.UniqueConstraint("resource", name="oauth_resource_servers_resource_key"),
            sa.CheckConstraint("min_aal IN ('aal1', 'aal2', 'aal3')",
                               name="oauth_resource_servers_min_aal_check"),
            sa.CheckConstraint("char_length(resource) <= 2048" if _pg()
                               else "length(resource) <= 2048",
                               name="oauth_resource_servers_resource_length"),
            schema=schema,
        )
    if not _has_table("oauth_session_resources"):
        op.create_table(
            "oauth_session_resources",
            sa.Column("session_id", sa.Uuid, nullable=False),
            sa.Column("resources", sa.Text, nullable=False),
            sa.PrimaryKeyConstraint("session_id", name="oauth_session_resources_pkey"),
            sa.ForeignKeyConstraint(["session_id"], ["auth.sessions.id"],
                                    name="oauth_session_resources_session_id_fkey",
                                    ondelete="CASCADE"),
            schema=schema,
        )
    codes = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(
        "oauth_authorization_codes", schema=library_schema(op.get_bind()))}
    if "resources" not in codes:
        op.add_column("oauth_authorization_codes", sa.Column("resources", sa.Text, nullable=True),
                      schema=library_schema(op.get_bind()))
    if _pg():
        for name in ("oauth_resource_servers", "oauth_session_resources"):
            op.execute(f'ALTER TABLE "{schema}".{name} ENABLE ROW LEVEL SECURITY')


def downgrade() -> None:
    schema = _schema()
    op.drop_column("oauth_authorization_codes", "resources", schema=library_schema(op.get_bind()))
    op.drop_table("oauth_session_resources", schema=schema)
    op.drop_table("oauth_resource_servers", schema=schema)
