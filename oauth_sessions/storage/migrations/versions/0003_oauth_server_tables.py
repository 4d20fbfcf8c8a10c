"""Tables of the authorization server: consents, authorizations (codes), signing keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oauth_sessions.core.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _aal_level() -> sa.Enum:
    return sa.Enum("aal1", "aal2", "aal3", name="aal_level", schema="auth",
                   create_constraint=True, create_type=False)


def upgrade() -> None:
    op.create_table(
        "oauth_consents",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("user_id", sa.Uuid, nullable=False),
        sa.Column("client_id", sa.Uuid, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("granted_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="oauth_consents_pkey"),
        sa.UniqueConstraint("user_id", "client_id", name="oauth_consents_user_client_unique"),
        sa.CheckConstraint("char_length(scopes) <= 2048", name="oauth_consents_scopes_length"),
        sa.ForeignKeyConstraint(["user_id"], ["auth.users.id"],
                                name="oauth_consents_user_id_fkey", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["client_id"], ["auth.oauth_clients.id"],
                                name="oauth_consents_client_id_fkey", ondelete="CASCADE"),
        schema="auth",
    )
    op.create_table(
        "oauth_authorizations",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("client_id", sa.Uuid, nullable=False),
        sa.Column("user_id", sa.Uuid, nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("state", sa.Text),
        sa.Column("nonce", sa.Text),
        sa.Column("code_challenge", sa.Text),
        sa.Column("code_challenge_method", sa.Text),
        sa.Column("authorization_code", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="approved"),
        sa.Column("aal", _aal_level(), nullable=False),
        sa.Column("amr", sa.Text),
        sa.Column("factor_id", sa.Uuid),
        sa.Column("auth_time", UTCDateTime, nullable=False),
        sa.Column("not_after", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("used_at", UTCDateTime),
        sa.Column("session_id", sa.Uuid),
        sa.PrimaryKeyConstraint("id", name="oauth_authorizations_pkey"),
        sa.UniqueConstraint("authorization_code",
                            name="oauth_authorizations_authorization_code_key"),
        sa.ForeignKeyConstraint(["client_id"], ["auth.oauth_clients.id"],
                                name="oauth_authorizations_client_id_fkey", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["auth.users.id"],
                                name="oauth_authorizations_user_id_fkey", ondelete="CASCADE"),
        schema="auth",
    )
    op.create_index("oauth_authorizations_expires_at_idx", "oauth_authorizations",
                    ["expires_at"], schema="auth")
    op.create_table(
        "oauth_signing_keys",
        sa.Column("kid", sa.Text, nullable=False),
        sa.Column("alg", sa.Text, nullable=False),
        sa.Column("private_jwk", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("activated_at", UTCDateTime),
        sa.Column("retired_at", UTCDateTime),
        sa.PrimaryKeyConstraint("kid", name="oauth_signing_keys_pkey"),
        schema="auth",
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in ("oauth_consents", "oauth_authorizations", "oauth_signing_keys"):
            op.execute(f"ALTER TABLE auth.{table} ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.drop_table("oauth_signing_keys", schema="auth")
    op.drop_index("oauth_authorizations_expires_at_idx", "oauth_authorizations", schema="auth")
    op.drop_table("oauth_authorizations", schema="auth")
    op.drop_table("oauth_consents", schema="auth")
