"""Pushed authorization requests (RFC 9126): ``oauth_pushed_requests`` and a per-client flag

* ``oauth_pushed_requests`` (the library's schema) holds each pushed request until the
  authorization endpoint takes it: the SHA-256 of its ``request_uri``, the client that pushed
  it, the parameters, and when it expires, was used and produced a code;
* ``oauth_client_settings.require_pushed_authorization_requests`` (RFC 9126 section 6),
  false for every existing client, so nothing changes for them.

Nothing is written in ``auth``. Idempotent like 0008 to 0010: what exists is left as it is.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import CreateTable

from oauth_sessions.storage import models
from oauth_sessions.storage.migrate import library_schema

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_COLUMN = "require_pushed_authorization_requests"
_TABLE = "oauth_pushed_requests"


def _sqlite_table(table: sa.Table) -> sa.Table:
    """``table`` with every table in one schema, for SQLite (as in revision 0007)."""
    copy = sa.MetaData()
    for other in models.metadata.sorted_tables:
        if other is not table:
            other.to_metadata(copy, schema="auth", referred_schema_fn=lambda *_: "auth")
    return table.to_metadata(copy, schema="auth", referred_schema_fn=lambda *_: "auth")


def upgrade() -> None:
    bind = op.get_bind()
    schema = library_schema(bind)
    inspector = sa.inspect(bind)
    existing = {c["name"] for c in inspector.get_columns("oauth_client_settings", schema=schema)}
    if _COLUMN not in existing:
        op.add_column("oauth_client_settings",
                      sa.Column(_COLUMN, sa.Boolean, nullable=False, server_default=sa.false()),
                      schema=schema)
    if inspector.has_table(_TABLE, schema=schema):
        return
    table = models.OAuthPushedRequest.__table__
    assert isinstance(table, sa.Table)
    if bind.dialect.name == "postgresql":
        table.create(bind)
        op.execute(f'ALTER TABLE "{schema}".{_TABLE} ENABLE ROW LEVEL SECURITY')
    else:
        bind.execute(CreateTable(_sqlite_table(table)))
        for index in table.indexes:
            index.create(bind)


def downgrade() -> None:
    schema = library_schema(op.get_bind())
    op.drop_table(_TABLE, schema=schema)
    op.drop_column("oauth_client_settings", _COLUMN, schema=schema)
