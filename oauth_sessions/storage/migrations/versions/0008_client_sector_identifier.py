"""Pairwise subject identifiers: ``auth.oauth_clients.sector_identifier``

OpenID Connect Core 1.0 section 8.1: a client registered with ``subject_type=pairwise`` sees
each user under a ``sub`` of its sector. The column holds that sector, the host of the
client's redirect URIs, computed once at registration so that the ``sub`` values never move;
NULL (every existing row) is a public-subject client, as before.

Idempotent like 0004 to 0007: a schema that already has the column is left as it is.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMN = "sector_identifier"


def _schema() -> str | None:
    return None if op.get_bind().dialect.name == "sqlite" else "auth"


def upgrade() -> None:
    schema = _schema()
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("oauth_clients",
                                                                         schema=schema)}
    if _COLUMN not in existing:
        op.add_column("oauth_clients", sa.Column(_COLUMN, sa.Text, nullable=True), schema=schema)


def downgrade() -> None:
    op.drop_column("oauth_clients", _COLUMN, schema=_schema())
