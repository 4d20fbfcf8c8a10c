"""Verified clients: ``auth.oauth_clients.verified``

A client whose registration a person (the operator) vetted: created with the CLI's
``create-client`` or by a host's seed code, or marked afterwards with ``verify-client``.
Clients registered by anyone else (RFC 7591 dynamic registration, a self-service developer
page) start unverified. Only a verified client gets automatic error redirects from the
authorization and logout endpoints (RFC 9700 section 4.11.2: an error redirect to a URI nobody
vetted is an open redirector), and only verified clients' names are reserved.

Existing rows start unverified: an operator marks the ones they vouch for
(``flask oauth-sessions verify-client``). Until then their errors are shown on the error page
instead of being redirected, which is safe, only less smooth.

Idempotent like 0004: a schema that already has the column is left as it is.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _schema() -> str | None:
    return None if op.get_bind().dialect.name == "sqlite" else "auth"


def upgrade() -> None:
    schema = _schema()
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("oauth_clients",
                                                                         schema=schema)}
    if "verified" not in existing:
        op.add_column("oauth_clients",
                      sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.false()),
                      schema=schema)


def downgrade() -> None:
    op.drop_column("oauth_clients", "verified", schema=_schema())
