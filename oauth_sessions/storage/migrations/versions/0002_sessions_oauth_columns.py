"""OAuth clients; sessions gain oauth_client_id, refresh_token_hmac_key, refresh_token_counter, scopes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Existing rows keep every value; the four new columns start NULL (a NULL
``refresh_token_hmac_key`` marks a first-party session that this library's
refresh grant will not refresh).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oauth_sessions.core.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

HMAC_KEY_COMMENT = "Holds a HMAC-SHA256 key used to sign refresh tokens for this session."
COUNTER_COMMENT = "Holds the ID (counter) of the last issued refresh token."


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("client_secret_hash", sa.Text),
        sa.Column(
            "registration_type",
            sa.Enum("dynamic", "manual", name="oauth_registration_type", schema="auth",
                    create_constraint=True),
            nullable=False,
        ),
        sa.Column("redirect_uris", sa.Text, nullable=False),
        sa.Column("grant_types", sa.Text, nullable=False),
        sa.Column("client_name", sa.Text),
        sa.Column("client_uri", sa.Text),
        sa.Column("logo_uri", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("deleted_at", UTCDateTime),
        sa.Column(
            "client_type",
            sa.Enum("public", "confidential", name="oauth_client_type", schema="auth",
                    create_constraint=True),
            nullable=False,
        ),
        sa.Column("token_endpoint_auth_method", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False, server_default=""),
        sa.Column(
            "min_aal",
            sa.Enum("aal1", "aal2", "aal3", name="aal_level", schema="auth",
                    create_constraint=True, create_type=False),
        ),
        sa.Column("max_session_seconds", sa.Integer),
        sa.Column("can_introspect", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("post_logout_redirect_uris", sa.Text),
        sa.Column("backchannel_logout_uri", sa.Text),
        sa.Column("backchannel_logout_session_required", sa.Boolean, nullable=False,
                  server_default=sa.true()),
        sa.Column("jwks", sa.Text),
        sa.Column("registration_access_token_hash", sa.Text),
        sa.PrimaryKeyConstraint("id", name="oauth_clients_pkey"),
        sa.CheckConstraint("char_length(client_name) <= 1024",
                           name="oauth_clients_client_name_length"),
        schema="auth",
    )
    op.create_index("oauth_clients_deleted_at_idx", "oauth_clients", ["deleted_at"], schema="auth")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot add constraints to an existing table, but it accepts them
        # inline in ADD COLUMN; a table rebuild would be needed otherwise.
        for ddl in (
            "ALTER TABLE sessions ADD COLUMN oauth_client_id CHAR(32) "
            "CONSTRAINT sessions_oauth_client_id_fkey REFERENCES oauth_clients (id) "
            "ON DELETE CASCADE",
            "ALTER TABLE sessions ADD COLUMN refresh_token_hmac_key TEXT",
            "ALTER TABLE sessions ADD COLUMN refresh_token_counter BIGINT",
            "ALTER TABLE sessions ADD COLUMN scopes TEXT "
            "CONSTRAINT sessions_scopes_length CHECK (char_length(scopes) <= 4096)",
        ):
            op.execute(ddl)
    else:
        op.add_column("sessions", sa.Column("oauth_client_id", sa.Uuid), schema="auth")
        op.add_column("sessions", sa.Column("refresh_token_hmac_key", sa.Text,
                                            comment=HMAC_KEY_COMMENT), schema="auth")
        op.add_column("sessions", sa.Column("refresh_token_counter", sa.BigInteger,
                                            comment=COUNTER_COMMENT), schema="auth")
        op.add_column("sessions", sa.Column("scopes", sa.Text), schema="auth")
        op.create_foreign_key(
            "sessions_oauth_client_id_fkey", "sessions", "oauth_clients",
            ["oauth_client_id"], ["id"], source_schema="auth", referent_schema="auth",
            ondelete="CASCADE",
        )
        op.create_check_constraint("sessions_scopes_length", "sessions",
                                   "char_length(scopes) <= 4096", schema="auth")
    op.create_index("sessions_oauth_client_id_idx", "sessions", ["oauth_client_id"],
                    schema="auth")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE auth.oauth_clients ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        raise NotImplementedError(
            "downgrading below 0002 is supported on PostgreSQL only: SQLite cannot drop "
            "columns that carry constraints"
        )
    op.drop_index("sessions_oauth_client_id_idx", "sessions", schema="auth")
    op.drop_constraint("sessions_scopes_length", "sessions", type_="check", schema="auth")
    op.drop_constraint("sessions_oauth_client_id_fkey", "sessions", type_="foreignkey",
                       schema="auth")
    for column in ("scopes", "refresh_token_counter", "refresh_token_hmac_key",
                   "oauth_client_id"):
        op.drop_column("sessions", column, schema="auth")
    op.drop_index("oauth_clients_deleted_at_idx", "oauth_clients", schema="auth")
    op.drop_table("oauth_clients", schema="auth")
    op.execute("DROP TYPE IF EXISTS auth.oauth_registration_type")
    op.execute("DROP TYPE IF EXISTS auth.oauth_client_type")
