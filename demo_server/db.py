"""The demo's own tables, in a schema of its own, kept out of the library's migrations.

The library needs only Supabase Auth's tables and its own; second factors and throttles are
the host application's business. The demo's bookkeeping (sign-in throttles, per-factor code
state and lockouts, who registered which client) lives in the schema ``oauth_sessions_demo``,
never in ``auth``, so the demo runs no DDL in ``auth`` on a database Supabase Auth manages.

TOTP factors are read where they are: in ``auth.mfa_factors`` when that table exists (Supabase
Auth's own, whose verified TOTP factors then work for step-up here, or an earlier demo's);
otherwise in the demo's own ``oauth_sessions_demo.demo_mfa_factors``, with the same columns.
On SQLite both schemas are translated away, as the library does for ``auth``.
"""

from __future__ import annotations

import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    Engine,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    inspect,
    text,
)

from oauth_sessions.storage.column_types import UTCDateTime
from oauth_sessions.storage.key_encryption import SupabaseKeys
from oauth_sessions.storage.models import SCHEMA, OAuthClient, User

DEMO_SCHEMA = "oauth_sessions_demo"
demo_metadata = MetaData(schema=DEMO_SCHEMA)

#: The demo's own TOTP factors, where ``auth.mfa_factors`` does not exist.
own_factors = Table(
    "demo_mfa_factors",
    demo_metadata,
    Column("id", Uuid, primary_key=True, default=uuid.uuid4),
    Column("user_id", Uuid, ForeignKey(User.__table__.c.id, ondelete="CASCADE",
                                       name="demo_mfa_factors_user_id_fkey"), nullable=False),
    Column("friendly_name", Text),
    Column("factor_type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("secret", Text),
    CheckConstraint("factor_type IN ('totp')", name="demo_mfa_factors_factor_type_check"),
    CheckConstraint("status IN ('unverified', 'verified')", name="demo_mfa_factors_status_check"),
    Index("demo_mfa_factors_user_id_created_at_idx", "user_id", "created_at"),
    comment="demo: TOTP factors, where auth.mfa_factors does not exist",
)

#: Supabase Auth's ``auth.mfa_factors``, the columns the demo uses; never created by the demo.
#: Its ``last_challenged_at`` is Supabase's (unique, the time of a challenge) and left alone.
supabase_factors = Table(
    "mfa_factors",
    MetaData(schema=SCHEMA),
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("friendly_name", Text),
    Column("factor_type", Enum("totp", "webauthn", "phone", name="factor_type", schema=SCHEMA,
                               create_type=False, native_enum=True), nullable=False),
    Column("status", Enum("unverified", "verified", name="factor_status", schema=SCHEMA,
                          create_type=False, native_enum=True), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("secret", Text),
)

factor_state = Table(
    "demo_factor_state",
    demo_metadata,
    # Whichever table holds the factor; no foreign key, so the row works for both.
    Column("factor_id", Uuid, primary_key=True),
    # Start of the time step of the last accepted code: a code is refused unless its 30-second
    # step is later (RFC 6238 section 5.2, "the verifier MUST NOT accept the second attempt of
    # the OTP after the successful validation").
    Column("last_step_at", UTCDateTime),
    # Guessing throttle: consecutive wrong codes, and the end of the lock that MAX_FAILURES of
    # them start.
    Column("failed_attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("locked_until", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    comment="demo: per-factor replay guard and lockout",
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


@dataclass(frozen=True, slots=True)
class FactorStorage:
    """Where TOTP factors are on one engine, and the root keys that open Supabase's secrets."""

    table: Table
    supabase_keys: SupabaseKeys | None = None

    @property
    def supabase(self) -> bool:
        return self.table is supabase_factors


_factor_storage: weakref.WeakKeyDictionary[Engine, FactorStorage] = weakref.WeakKeyDictionary()


def create_demo_tables(engine: Engine, *, supabase_keys: SupabaseKeys | None = None) -> None:
    """Create the demo's schema and tables if they are missing (idempotent); nothing in ``auth``.

    Also decides, once per engine, which table holds TOTP factors (:func:`factor_storage`);
    ``supabase_keys`` decrypt factor secrets Supabase Auth stored in its ``aes-gcm-hkdf`` form.
    """
    if engine.dialect.name == "sqlite":
        translate = dict(engine.get_execution_options().get("schema_translate_map") or {})
        translate[DEMO_SCHEMA] = None
        engine.update_execution_options(schema_translate_map=translate)
    else:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{DEMO_SCHEMA}"'))
    with engine.connect() as conn:
        in_auth = inspect(conn).has_table(
            "mfa_factors", schema=None if engine.dialect.name == "sqlite" else SCHEMA)
    tables = [factor_state, sign_in_throttle, client_owners]
    if not in_auth:
        tables.append(own_factors)
    demo_metadata.create_all(engine, tables=tables, checkfirst=True)
    _factor_storage[engine] = FactorStorage(supabase_factors if in_auth else own_factors,
                                            supabase_keys)


def supabase_keys(engine: Engine) -> SupabaseKeys | None:
    """Supabase Auth's root keys given to :func:`create_demo_tables` for this engine, if any."""
    storage = _factor_storage.get(engine)
    return None if storage is None else storage.supabase_keys


def factor_storage(engine: Engine) -> FactorStorage:
    """Where TOTP factors are on this engine (decided by :func:`create_demo_tables`)."""
    try:
        return _factor_storage[engine]
    except KeyError:
        raise RuntimeError("create_demo_tables(engine) was not run for this engine") from None


def utcnow() -> datetime:
    return datetime.now(UTC)
