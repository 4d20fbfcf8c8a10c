"""The session an authorization replaces: ``auth.oauth_authorizations.replaces_session_id``

A client that authorizes again while it holds a session (a step-up to aal2, say) names that
session with ``id_token_hint``. The authorization endpoint records it here, and redeeming the
code ends it in the transaction that creates the new session, so the person sees one session
per app and device instead of two (issue 19 item 4). No foreign key: the session may end on
its own before the code is redeemed, and then there is simply nothing left to end.

Idempotent like 0004: a schema that already has the column is left as it is.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _schema() -> str | None:
    return None if op.get_bind().dialect.name == "sqlite" else "auth"


def upgrade() -> None:
    schema = _schema()
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("oauth_authorizations",
                                                                         schema=schema)}
    if "replaces_session_id" not in existing:
        op.add_column("oauth_authorizations", sa.Column("replaces_session_id", sa.Uuid),
                      schema=schema)


def downgrade() -> None:
    op.drop_column("oauth_authorizations", "replaces_session_id", schema=_schema())
