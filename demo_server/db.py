"""The demo's own tables, kept out of the library's migrations.

The library needs only ``auth.users`` and the OAuth tables; second factors are the
host application's business. The demo keeps its TOTP factors in a table shaped like
Supabase's ``auth.mfa_factors`` and creates it with ``create_all`` on the library's
engine, which on SQLite translates the ``auth`` schema away.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
)

from oauth_sessions.core.types import UTCDateTime
from oauth_sessions.storage.models import SCHEMA, OAuthClient, User

demo_metadata = MetaData(schema=SCHEMA)

mfa_factors = Table(
    "mfa_factors",
    demo_metadata,
    Column("id", Uuid, primary_key=True, default=uuid.uuid4),
    Column("user_id", Uuid, ForeignKey(User.__table__.c.id, ondelete="CASCADE",
                                       name="mfa_factors_user_id_fkey"), nullable=False),
    Column("friendly_name", Text),
    Column("factor_type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("secret", Text),
    # Time of the last accepted code: a code is refused unless its 30-second step
    # is later than this one (RFC 6238 section 5.2, "the verifier MUST NOT accept
    # the second attempt of the OTP after the successful validation").
    Column("last_challenged_at", UTCDateTime),
    # Guessing throttle (not in Supabase's table): consecutive wrong codes, and the end of
    # the lock that MAX_FAILURES of them start.
    Column("failed_attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("locked_until", UTCDateTime),
    CheckConstraint("factor_type IN ('totp')", name="mfa_factors_factor_type_check"),
    CheckConstraint("status IN ('unverified', 'verified')", name="mfa_factors_status_check"),
    Index("factor_id_created_at_idx", "user_id", "created_at"),
    comment="auth: stores metadata about factors",
)


sign_in_throttle = Table(
    "demo_sign_in_throttle",
    demo_metadata,
    # The normalised e-mail address being signed in to, whether or not an account has it,
    # so the lock does not reveal which addresses exist.
    Column("key", Text, primary_key=True),
    Column("failed_attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("locked_until", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    comment="demo: consecutive failed password sign-ins per e-mail address",
)


client_owners = Table(
    "demo_client_owners",
    demo_metadata,
    # Who registered a client on /developers: the page lists, rotates and deletes only theirs.
    Column("client_id", Uuid, ForeignKey(OAuthClient.__table__.c.id, ondelete="CASCADE",
                                         name="demo_client_owners_client_id_fkey"),
           primary_key=True),
    Column("user_id", Uuid, ForeignKey(User.__table__.c.id, ondelete="CASCADE",
                                       name="demo_client_owners_user_id_fkey"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("demo_client_owners_user_id_idx", "user_id"),
    comment="demo: the account that registered each self-service client",
)


def create_demo_tables(engine: Engine) -> None:
    """Create the demo's tables if they are missing (idempotent)."""
    demo_metadata.create_all(engine, checkfirst=True)


def utcnow() -> datetime:
    return datetime.now(UTC)
