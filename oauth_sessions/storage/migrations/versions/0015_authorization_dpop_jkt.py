"""Authorization codes bound to a DPoP key (RFC 9449 section 10): ``oauth_authorization_codes.dpop_jkt``

The JWK thumbprint the authorization request named (``dpop_jkt``, or the key of the DPoP
proof sent with a pushed request), so the token endpoint redeems the code only with a proof of
that key. NULL (every existing row) is a code bound to no key, as before.

Idempotent like 0008 to 0014: a schema that already has the column is left as it is.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oauth_sessions.storage.migrate import library_schema

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_COLUMN = "dpop_jkt"


def _schema() -> str | None:
    return library_schema(op.get_bind())


def upgrade() -> None:
    schema = _schema()
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(
        "oauth_authorization_codes", schema=schema)}
    if _COLUMN not in existing:
        op.add_column("oauth_authorization_codes", sa.Column(_COLUMN, sa.Text, nullable=True),
                      schema=schema)


def downgrade() -> None:
    op.drop_column("oauth_authorization_codes", _COLUMN, schema=_schema())
