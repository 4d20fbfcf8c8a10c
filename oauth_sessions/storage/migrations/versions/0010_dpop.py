"""DPoP (RFC 9449): proof replay records, session key bindings, the client's DPoP requirement

In the library's schema (nothing here touches ``auth``):

* ``oauth_dpop_proofs``: the ``jti`` of each accepted DPoP proof, hashed with its key's
  thumbprint, until the proof's ``iat`` window has passed (section 11.1); the primary key
  makes a proof one-time across every worker;
* ``oauth_dpop_bindings``: the key thumbprint a session's refresh tokens are bound to
  (section 5), keyed by the session's id and deleted with it (FK to ``auth.sessions`` ON DELETE
  CASCADE);
* ``oauth_client_settings.dpop_bound_access_tokens`` (section 5.2), false for every existing
  client.

Idempotent like 0004 to 0009: what exists already is left as it is.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oauth_sessions.storage.column_types import UTCDateTime
from oauth_sessions.storage.migrate import library_schema

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _schema() -> str | None:
    return library_schema(op.get_bind())


def _pg() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def upgrade() -> None:
    schema = _schema()
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("oauth_dpop_proofs", schema=schema):
        op.create_table(
            "oauth_dpop_proofs",
            sa.Column("jti_hash", sa.Text, nullable=False),
            sa.Column("expires_at", UTCDateTime, nullable=False),
            sa.PrimaryKeyConstraint("jti_hash", name="oauth_dpop_proofs_pkey"),
            schema=schema,
        )
        op.create_index("oauth_dpop_proofs_expires_at_idx", "oauth_dpop_proofs", ["expires_at"],
                        schema=schema)
    if not inspector.has_table("oauth_dpop_bindings", schema=schema):
        op.create_table(
            "oauth_dpop_bindings",
            sa.Column("session_id", sa.Uuid, nullable=False),
            sa.Column("jkt", sa.Text, nullable=False),
            sa.Column("created_at", UTCDateTime, nullable=False),
            sa.PrimaryKeyConstraint("session_id", name="oauth_dpop_bindings_pkey"),
            sa.ForeignKeyConstraint(["session_id"],
                                    ["auth.sessions.id" if _pg() else "sessions.id"],
                                    name="oauth_dpop_bindings_session_id_fkey",
                                    ondelete="CASCADE"),
            schema=schema,
        )
    if _pg():
        for name in ("oauth_dpop_proofs", "oauth_dpop_bindings"):
            op.execute(f'ALTER TABLE "{schema}".{name} ENABLE ROW LEVEL SECURITY')
    columns = {c["name"] for c in inspector.get_columns("oauth_client_settings", schema=schema)}
    if "dpop_bound_access_tokens" not in columns:
        op.add_column("oauth_client_settings",
                      sa.Column("dpop_bound_access_tokens", sa.Boolean, nullable=False,
                                server_default=sa.false()),
                      schema=schema)


def downgrade() -> None:
    schema = _schema()
    op.drop_column("oauth_client_settings", "dpop_bound_access_tokens", schema=schema)
    op.drop_table("oauth_dpop_bindings", schema=schema)
    op.drop_index("oauth_dpop_proofs_expires_at_idx", "oauth_dpop_proofs", schema=schema)
    op.drop_table("oauth_dpop_proofs", schema=schema)
