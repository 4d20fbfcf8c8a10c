"""Signed UserInfo per client: ``oauth_client_settings.userinfo_signed_response_alg``

OpenID Connect Dynamic Client Registration 1.0 section 2: a client may register the JWS alg
its UserInfo answers are signed with; UserInfo then answers ``application/jwt`` (OIDC Core
section 5.3.2). NULL (every existing row, and the default) is plain JSON, as before.

Idempotent like 0008 to 0012: a schema that already has the column is left as it is.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oauth_sessions.storage.migrate import library_schema

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_COLUMN = "userinfo_signed_response_alg"


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
