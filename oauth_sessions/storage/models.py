"""SQLAlchemy 2 models of the ``auth`` schema.

``auth.sessions`` has exactly the shape of Supabase Auth's table (see
``docs``/design notes); the OAuth tables reuse Supabase's names where Supabase
Auth has the same concept (``oauth_clients``, ``oauth_consents``,
``oauth_authorizations``) and add the columns this library needs.

The migrations under ``oauth_sessions/migrations`` are the source of truth for
the DDL; these models describe the same tables for queries, and a test checks
the two agree.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..core.types import Aal
from .column_types import Inet, NaiveUTCDateTime, UTCDateTime

SCHEMA = "auth"

aal_level = Enum(
    Aal,
    name="aal_level",
    schema=SCHEMA,
    values_callable=lambda e: [m.value for m in e],
    create_constraint=True,
    validate_strings=True,
)

metadata = MetaData(schema=SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata


class User(Base):
    """A minimal ``auth.users``: the library needs only the id; hosts own the rest."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str | None] = mapped_column(String(255))
    encrypted_password: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("users_email_key", "email", unique=True),
        {"comment": "Auth: Stores user login data within a secure schema."},
    )


class OAuthClient(Base):
    """A registered OAuth client (Supabase's ``auth.oauth_clients`` plus policy columns)."""

    __tablename__ = "oauth_clients"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    client_secret_hash: Mapped[str | None] = mapped_column(Text)
    registration_type: Mapped[str] = mapped_column(
        Enum("dynamic", "manual", name="oauth_registration_type", schema=SCHEMA,
             create_constraint=True),
        nullable=False,
    )
    redirect_uris: Mapped[str] = mapped_column(Text, nullable=False)
    grant_types: Mapped[str] = mapped_column(Text, nullable=False)
    client_name: Mapped[str | None] = mapped_column(Text)
    client_uri: Mapped[str | None] = mapped_column(Text)
    logo_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    client_type: Mapped[str] = mapped_column(
        Enum("public", "confidential", name="oauth_client_type", schema=SCHEMA,
             create_constraint=True),
        nullable=False,
    )
    token_endpoint_auth_method: Mapped[str] = mapped_column(Text, nullable=False)
    # Columns of this library (not in Supabase):
    scope: Mapped[str] = mapped_column(Text, nullable=False, default="")
    min_aal: Mapped[Aal | None] = mapped_column(aal_level)
    max_session_seconds: Mapped[int | None] = mapped_column(Integer)
    can_introspect: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    post_logout_redirect_uris: Mapped[str | None] = mapped_column(Text)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(Text)
    backchannel_logout_session_required: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True
    )
    jwks: Mapped[str | None] = mapped_column(Text)
    registration_access_token_hash: Mapped[str | None] = mapped_column(Text)
    # Revision 0005: an operator vetted this client (see oauth_sessions.core.client_rules).
    verified: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False,
                                           server_default=false())
    # Revision 0007: OIDC Dynamic Client Registration 1.0 section 2; NULL: the provider's
    # OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG (see oauth_sessions.protocol.tokens).
    id_token_signed_response_alg: Mapped[str | None] = mapped_column(Text)
    # Revision 0008: OIDC Core section 8.1; NULL: public subjects, else the sector (a host)
    # whose pairwise sub this client's users get (see oauth_sessions.core.subjects).
    sector_identifier: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("char_length(client_name) <= 1024", name="oauth_clients_client_name_length"),
        Index("oauth_clients_deleted_at_idx", "deleted_at"),
    )


class Session(Base):
    """``auth.sessions``: one sign-in, and for OAuth one authorization of one client."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("auth.users.id", ondelete="CASCADE", name="sessions_user_id_fkey"),
        nullable=False,
    )
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    factor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    aal: Mapped[Aal | None] = mapped_column(aal_level)
    not_after: Mapped[datetime | None] = mapped_column(
        UTCDateTime,
        comment=(
            "Auth: Not after is a nullable column that contains a timestamp after which "
            "the session should be regarded as expired."
        ),
    )
    refreshed_at: Mapped[datetime | None] = mapped_column(NaiveUTCDateTime)
    user_agent: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(Inet)
    tag: Mapped[str | None] = mapped_column(Text)
    oauth_client_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid,
        ForeignKey(
            "auth.oauth_clients.id", ondelete="CASCADE", name="sessions_oauth_client_id_fkey"
        ),
    )
    refresh_token_hmac_key: Mapped[str | None] = mapped_column(
        Text, comment="Holds a HMAC-SHA256 key used to sign refresh tokens for this session."
    )
    refresh_token_counter: Mapped[int | None] = mapped_column(
        BigInteger, comment="Holds the ID (counter) of the last issued refresh token."
    )
    scopes: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("char_length(scopes) <= 4096", name="sessions_scopes_length"),
        Index("sessions_oauth_client_id_idx", "oauth_client_id"),
        Index("sessions_user_id_idx", "user_id"),
        Index("user_id_created_at_idx", "user_id", "created_at"),
        {"comment": "Auth: Stores session data associated to a user."},
    )


class MfaAmrClaim(Base):
    """``auth.mfa_amr_claims``: the authentication methods (amr) behind a session."""

    __tablename__ = "mfa_amr_claims"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey("auth.sessions.id", ondelete="CASCADE", name="mfa_amr_claims_session_id_fkey"),
        nullable=False,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    authentication_method: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (
        UniqueConstraint(
            "session_id",
            "authentication_method",
            name="mfa_amr_claims_session_id_authentication_method_pkey",
        ),
        {"comment": "auth: stores authenticator method reference claims for multi factor authentication"},
    )


class LegacyRefreshToken(Base):
    """``auth.refresh_tokens``: Supabase's stored refresh tokens.

    This library never writes here (its refresh tokens are derived, not stored);
    the table exists so that an attached Supabase schema keeps its shape and so
    that revoking a session cascades to old rows.
    """

    __tablename__ = "refresh_tokens"

    instance_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    token: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255))
    revoked: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    parent: Mapped[str | None] = mapped_column(String(255))
    session_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid,
        ForeignKey("auth.sessions.id", ondelete="CASCADE", name="refresh_tokens_session_id_fkey"),
    )

    __table_args__ = (
        UniqueConstraint("token", name="refresh_tokens_token_unique"),
        Index("refresh_tokens_session_id_revoked_idx", "session_id", "revoked"),
        {"comment": "Auth: Store of tokens used to refresh JWT tokens once they expire."},
    )


class OAuthConsent(Base):
    """``auth.oauth_consents``: the scopes a user granted a client, remembered."""

    __tablename__ = "oauth_consents"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("auth.users.id", ondelete="CASCADE", name="oauth_consents_user_id_fkey"),
        nullable=False,
    )
    client_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey("auth.oauth_clients.id", ondelete="CASCADE",
                   name="oauth_consents_client_id_fkey"),
        nullable=False,
    )
    scopes: Mapped[str] = mapped_column(Text, nullable=False)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("user_id", "client_id", name="oauth_consents_user_client_unique"),
        CheckConstraint("char_length(scopes) <= 2048", name="oauth_consents_scopes_length"),
    )


class OAuthAuthorization(Base):
    """``auth.oauth_authorizations``: an authorization request and its one-time code.

    ``authorization_code`` holds the SHA-256 of the code, never the code itself.
    ``session_id`` is set when the code is exchanged, so that a replayed code can
    revoke what it produced (RFC 6749 section 4.1.2).
    """

    __tablename__ = "oauth_authorizations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    client_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey("auth.oauth_clients.id", ondelete="CASCADE",
                   name="oauth_authorizations_client_id_fkey"),
        nullable=False,
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey("auth.users.id", ondelete="CASCADE", name="oauth_authorizations_user_id_fkey"),
        nullable=False,
    )
    redirect_uri: Mapped[str] = mapped_column(Text, nullable=False)
    scope: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str | None] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(Text)
    code_challenge_method: Mapped[str | None] = mapped_column(Text)
    authorization_code: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, default="approved")
    aal: Mapped[Aal] = mapped_column(aal_level, nullable=False)
    amr: Mapped[str | None] = mapped_column(Text)
    factor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Revision 0004: the user's device at the authorization endpoint, copied to the session.
    user_agent: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(Inet)
    # Revision 0006: the client's session this authorization replaces (a step-up or another
    # re-authorization naming it by id_token_hint); ended when the code produces the new one.
    replaces_session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    __table_args__ = (
        UniqueConstraint("authorization_code", name="oauth_authorizations_authorization_code_key"),
        Index("oauth_authorizations_expires_at_idx", "expires_at"),
    )


class OAuthClientAssertion(Base):
    """``auth.oauth_client_assertions`` (revision 0004): ``jti`` values of accepted
    ``private_key_jwt`` assertions, hashed, kept until the assertion expires (one-time use)."""

    __tablename__ = "oauth_client_assertions"

    jti_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    client_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey("auth.oauth_clients.id", ondelete="CASCADE",
                   name="oauth_client_assertions_client_id_fkey"),
        nullable=False,
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (Index("oauth_client_assertions_expires_at_idx", "expires_at"),)


class OAuthSigningKey(Base):
    """A JWS signing key. Private JWKs may be encrypted at rest like session HMAC keys."""

    __tablename__ = "oauth_signing_keys"

    kid: Mapped[str] = mapped_column(Text, primary_key=True)
    alg: Mapped[str] = mapped_column(Text, nullable=False)
    private_jwk: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Declared here because a descending index needs the column object.
Index("sessions_not_after_idx", Session.__table__.c.not_after.desc())
