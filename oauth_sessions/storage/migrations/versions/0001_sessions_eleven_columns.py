"""auth schema as older deployments have it: users, sessions (eleven columns), amr claims, refresh tokens

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oauth_sessions.storage.column_types import Inet, NaiveUTCDateTime, UTCDateTime
from oauth_sessions.storage.supabase_shape import USER_INDEXES, users_columns

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NOT_AFTER_COMMENT = (
    "Auth: Not after is a nullable column that contains a timestamp after which the session "
    "should be regarded as expired."
)


def _aal_level() -> sa.Enum:
    return sa.Enum("aal1", "aal2", "aal3", name="aal_level", schema="auth", create_constraint=True)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE SCHEMA IF NOT EXISTS auth")
    dialect = op.get_bind().dialect.name
    # Supabase Auth's users table (35 columns; the library uses id and email). Databases
    # created before this shape got five columns here; revision 0006 adds the rest.
    op.create_table(
        "users",
        *users_columns(dialect),
        sa.PrimaryKeyConstraint("id", name="users_pkey"),
        sa.UniqueConstraint("phone", name="users_phone_key"),
        sa.CheckConstraint(
            "email_change_confirm_status >= 0 AND email_change_confirm_status <= 2",
            name="users_email_change_confirm_status_check"),
        schema="auth",
        comment="Auth: Stores user login data within a secure schema.",
    )
    for name, columns, unique, where in USER_INDEXES:
        op.create_index(name, "users", list(columns), unique=unique, schema="auth",
                        postgresql_where=sa.text(where) if where else None,
                        sqlite_where=sa.text(where.replace("false", "0")) if where else None)
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("user_id", sa.Uuid, nullable=False),
        sa.Column("created_at", UTCDateTime),
        sa.Column("updated_at", UTCDateTime),
        sa.Column("factor_id", sa.Uuid),
        sa.Column("aal", _aal_level()),
        sa.Column("not_after", UTCDateTime, comment=NOT_AFTER_COMMENT),
        sa.Column("refreshed_at", NaiveUTCDateTime),
        sa.Column("user_agent", sa.Text),
        sa.Column("ip", Inet),
        sa.Column("tag", sa.Text),
        sa.PrimaryKeyConstraint("id", name="sessions_pkey"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["auth.users.id"], name="sessions_user_id_fkey", ondelete="CASCADE"
        ),
        schema="auth",
        comment="Auth: Stores session data associated to a user.",
    )
    op.create_index(
        "sessions_not_after_idx", "sessions", [sa.text("not_after DESC")], schema="auth"
    )
    op.create_index("sessions_user_id_idx", "sessions", ["user_id"], schema="auth")
    op.create_index("user_id_created_at_idx", "sessions", ["user_id", "created_at"], schema="auth")
    op.create_table(
        "mfa_amr_claims",
        sa.Column("session_id", sa.Uuid, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("authentication_method", sa.Text, nullable=False),
        sa.Column("id", sa.Uuid, nullable=False),
        sa.PrimaryKeyConstraint("id", name="amr_id_pk"),
        sa.UniqueConstraint(
            "session_id",
            "authentication_method",
            name="mfa_amr_claims_session_id_authentication_method_pkey",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["auth.sessions.id"], name="mfa_amr_claims_session_id_fkey",
            ondelete="CASCADE",
        ),
        schema="auth",
        comment="auth: stores authenticator method reference claims for multi factor authentication",
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("instance_id", sa.Uuid),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False,
                  autoincrement=True),
        sa.Column("token", sa.String(255)),
        sa.Column("user_id", sa.String(255)),
        sa.Column("revoked", sa.Boolean),
        sa.Column("created_at", UTCDateTime),
        sa.Column("updated_at", UTCDateTime),
        sa.Column("parent", sa.String(255)),
        sa.Column("session_id", sa.Uuid),
        sa.PrimaryKeyConstraint("id", name="refresh_tokens_pkey"),
        sa.UniqueConstraint("token", name="refresh_tokens_token_unique"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["auth.sessions.id"], name="refresh_tokens_session_id_fkey",
            ondelete="CASCADE",
        ),
        schema="auth",
        comment="Auth: Store of tokens used to refresh JWT tokens once they expire.",
    )
    op.create_index(
        "refresh_tokens_session_id_revoked_idx", "refresh_tokens", ["session_id", "revoked"],
        schema="auth",
    )
    if postgres:
        # Supabase enables RLS with no policies: only roles that bypass RLS (the
        # auth server's own role) can read sessions; API roles see nothing.
        for table in ("users", "sessions", "mfa_amr_claims", "refresh_tokens"):
            op.execute(f"ALTER TABLE auth.{table} ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.drop_table("refresh_tokens", schema="auth")
    op.drop_table("mfa_amr_claims", schema="auth")
    op.drop_table("sessions", schema="auth")
    op.drop_table("users", schema="auth")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TYPE IF EXISTS auth.aal_level")
