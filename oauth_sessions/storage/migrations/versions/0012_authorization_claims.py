"""The ``claims`` request parameter (OIDC Core section 5.5): ``oauth_authorization_codes.claims``

The claims request an authorization was made with, as parsed (JSON text), so the token
endpoint puts the requested claims in the ID token of the code exchange. NULL (every existing
row) is an authorization without one, as before.

Idempotent like 0008 to 0011: a schema that already has the column is left as it is.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oauth_sessions.storage.migrate import library_schema

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_COLUMN = "claims"


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
