"""Device of the authorization request; one-time client assertions (private_key_jwt)

* user_agent and ip on auth.oauth_authorizations (below).
* auth.oauth_client_assertions: the ``jti`` (hashed) of each accepted ``private_key_jwt``
  client assertion until it expires, so that an assertion is used only once (OIDC Core
  section 9, RFC 7523 section 3 item 7) across every worker.

The session a code produces records the device the user signed in from (their browser), not
the client's back-end server that exchanges the code, so the "your sessions" page shows the
right device. The browser's values are known only at the authorization endpoint, hence two
columns on the pending authorization.

Idempotent: an unversioned schema that already has the columns (attach-and-stamp detects it
as 0003) is left as it is.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from oauth_sessions.core.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _columns() -> set[str]:
    bind = op.get_bind()
    schema = None if bind.dialect.name == "sqlite" else "auth"
    return {c["name"] for c in sa.inspect(bind).get_columns("oauth_authorizations", schema=schema)}


def upgrade() -> None:
    op.create_table(
        "oauth_client_assertions",
        sa.Column("jti_hash", sa.Text, nullable=False),
        sa.Column("client_id", sa.Uuid, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("jti_hash", name="oauth_client_assertions_pkey"),
        sa.ForeignKeyConstraint(["client_id"], ["auth.oauth_clients.id"],
                                name="oauth_client_assertions_client_id_fkey", ondelete="CASCADE"),
        schema="auth",
        if_not_exists=True,
    )
    op.create_index("oauth_client_assertions_expires_at_idx", "oauth_client_assertions",
                    ["expires_at"], schema="auth", if_not_exists=True)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE auth.oauth_client_assertions ENABLE ROW LEVEL SECURITY")
    existing = _columns()
    sqlite = op.get_bind().dialect.name == "sqlite"
    schema = None if sqlite else "auth"  # SQLite has no schemas (the engine translates them away)
    if "user_agent" not in existing:
        op.add_column("oauth_authorizations", sa.Column("user_agent", sa.Text), schema=schema)
    if "ip" not in existing:
        op.add_column("oauth_authorizations",
                      sa.Column("ip", sa.String(45) if sqlite else postgresql.INET()),
                      schema=schema)


def downgrade() -> None:
    op.drop_index("oauth_client_assertions_expires_at_idx", "oauth_client_assertions",
                  schema="auth")
    op.drop_table("oauth_client_assertions", schema="auth")
    schema = None if op.get_bind().dialect.name == "sqlite" else "auth"
    op.drop_column("oauth_authorizations", "ip", schema=schema)
    op.drop_column("oauth_authorizations", "user_agent", schema=schema)
