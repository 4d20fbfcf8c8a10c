"""Per-client ID token algorithm: the library schema's ``oauth_client_settings.id_token_signed_response_alg``

OpenID Connect Dynamic Client Registration 1.0 section 2: a client may register the JWS
``alg`` its ID tokens are signed with. Dynamic registration stores RS256 when the client names
none (the default that section gives); clients created by an operator (CLI, host code) and every
existing row keep NULL, which means the provider's ``OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG``, so
nothing changes for them.

Idempotent like 0004 to 0006: a schema that already has the column is left as it is.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oauth_sessions.storage.migrate import library_schema

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMN = "id_token_signed_response_alg"


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
