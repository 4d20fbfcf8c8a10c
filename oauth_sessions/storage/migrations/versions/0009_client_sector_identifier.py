"""Pairwise subject identifiers: the library schema's ``oauth_client_settings.sector_identifier``

OpenID Connect Core 1.0 section 8.1: a client registered with ``subject_type=pairwise`` sees
each user under a ``sub`` of its sector. The column holds that sector, the host of the
client's redirect URIs, computed once at registration so that the ``sub`` values never move;
NULL (every existing row) is a public-subject client, as before.

Idempotent like 0004 to 0007: a schema that already has the column is left as it is.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oauth_sessions.storage.migrate import library_schema

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_COLUMN = "sector_identifier"


def _schema() -> str | None:
    return library_schema(op.get_bind())


def upgrade() -> None:
    schema = _schema()
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("oauth_client_settings",
                                                                         schema=schema)}
    if _COLUMN not in existing:
        op.add_column("oauth_client_settings", sa.Column(_COLUMN, sa.Text, nullable=True),
                      schema=schema)


def downgrade() -> None:
    op.drop_column("oauth_client_settings", _COLUMN, schema=_schema())
