"""SQLAlchemy 2 models: Supabase Auth's tables in ``auth``, the library's own in its schema.

One layout, two owners. The tables in ``auth`` (``users``, ``sessions``, ``mfa_amr_claims``,
``refresh_tokens``, ``oauth_clients``, ``oauth_consents``, ``oauth_authorizations``) have
exactly Supabase Auth's shape (``shared/supabase.md``): no column of this library is added
to them. Everything the library needs beyond them lives in the library's own schema,
:data:`LIBRARY_SCHEMA` here, renamed per deployment by the engine's ``schema_translate_map``
(setting ``OAUTH_SESSIONS_DATABASE_SCHEMA``, see :mod:`oauth_sessions.storage.database`):
per-client settings (:class:`OAuthClientSettings`), the library's authorization codes
(:class:`OAuthAuthorizationCode`, since Supabase's ``oauth_authorizations`` has no session,
aal, amr or auth_time column), signing keys, client-assertion replay records and the
migration version table. Each is keyed to Supabase's rows by foreign keys that cascade.

On SQLite there are no schemas: both are translated away, so every table lives in the one
database file, and the library's table names (all ``oauth_`` + a name Supabase does not use)
cannot collide with Supabase's.

The migrations under ``oauth_sessions/storage/migrations`` are the source of truth for the
DDL; these models describe the same tables for queries, and a test checks the two agree.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..core.types import Aal
from .column_types import Inet, NaiveUTCDateTime, UTCDateTime

SCHEMA = "auth"
#: The library's own schema as the models name it; a deployment may call it something else
#: (``OAUTH_SESSIONS_DATABASE_SCHEMA``): engines translate this name to the configured one.
LIBRARY_SCHEMA = "oauth_sessions"
#: ``jsonb`` on PostgreSQL, JSON text elsewhere.
JSON_DOC = JSON().with_variant(JSONB(), "postgresql")

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
    """``auth.users`` in Supabase Auth's shape (35 columns).

    The library reads ``id`` (sessions point at it) and writes only ``id``, ``email`` and the
    timestamps when a host calls :func:`~oauth_sessions.storage.users.ensure_user`; Supabase
    Auth (or the host) owns every other column.
    """

    __tablename__ = "users"

    instance_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    aud: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    encrypted_password: Mapped[str | None] = mapped_column(String(255))
    email_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmation_token: Mapped[str | None] = mapped_column(String(255))
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recovery_token: Mapped[str | None] = mapped_column(String(255))
    recovery_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_change_token_new: Mapped[str | None] = mapped_column(String(255))
    email_change: Mapped[str | None] = mapped_column(String(255))
    email_change_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    raw_app_meta_data: Mapped[Any] = mapped_column(JSON_DOC, nullable=True)
    raw_user_meta_data: Mapped[Any] = mapped_column(JSON_DOC, nullable=True)
    is_super_admin: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    phone: Mapped[str | None] = mapped_column(Text, server_default=text("NULL"))
    phone_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    phone_change: Mapped[str | None] = mapped_column(
        Text, server_default="")
    phone_change_token: Mapped[str | None] = mapped_column(
        String(255), server_default="")
    phone_change_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, Computed("LEAST(email_confirmed_at, phone_confirmed_at)", persisted=True))
    email_change_token_current: Mapped[str | None] = mapped_column(
        String(255), server_default="")
    email_change_confirm_status: Mapped[int | None] = mapped_column(
        SmallInteger, server_default=text("0"))
    banned_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reauthentication_token: Mapped[str | None] = mapped_column(
        String(255), server_default="")
    reauthentication_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_sso_user: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_anonymous: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())

    __table_args__ = (
        CheckConstraint("email_change_confirm_status >= 0 AND email_change_confirm_status <= 2",
                        name="users_email_change_confirm_status_check"),
        UniqueConstraint("phone", name="users_phone_key"),
        Index("users_email_partial_key", "email", unique=True,
              postgresql_where=text("is_sso_user = false"), sqlite_where=text("is_sso_user = 0")),
        Index("users_instance_id_idx", "instance_id"),
        Index("users_is_anonymous_idx", "is_anonymous"),
        {"comment": "Auth: Stores user login data within a secure schema."},
    )


class OAuthClient(Base):
    """``auth.oauth_clients``, exactly Supabase Auth's table (its encodings, see
    :mod:`oauth_sessions.storage.clients`); the library's per-client settings are
    :class:`OAuthClientSettings` in the library's own schema."""

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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                 server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                 server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    client_type: Mapped[str] = mapped_column(
        Enum("public", "confidential", name="oauth_client_type", schema=SCHEMA,
             create_constraint=True),
        nullable=False, server_default="confidential",
    )
    token_endpoint_auth_method: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (
        CheckConstraint("char_length(client_name) <= 1024", name="oauth_clients_client_name_length"),
        CheckConstraint("char_length(client_uri) <= 2048", name="oauth_clients_client_uri_length"),
        CheckConstraint("char_length(logo_uri) <= 2048", name="oauth_clients_logo_uri_length"),
        CheckConstraint(
            "token_endpoint_auth_method IN ('client_secret_basic', 'client_secret_post', 'none')",
            name="oauth_clients_token_endpoint_auth_method_check"),
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
    """``auth.oauth_consents``: the scopes a user granted a client (space-separated)."""

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
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                 server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("user_id", "client_id", name="oauth_consents_user_client_unique"),
        CheckConstraint("char_length(scopes) <= 2048", name="oauth_consents_scopes_length"),
        CheckConstraint("char_length(trim(scopes)) > 0",
                        name="oauth_consents_scopes_not_empty"),
        CheckConstraint("revoked_at IS NULL OR revoked_at >= granted_at",
                        name="oauth_consents_revoked_after_granted"),
        Index("oauth_consents_active_client_idx", "client_id",
              postgresql_where=text("revoked_at IS NULL"),
              sqlite_where=text("revoked_at IS NULL")),
        Index("oauth_consents_active_user_client_idx", "user_id", "client_id",
              postgresql_where=text("revoked_at IS NULL"),
              sqlite_where=text("revoked_at IS NULL")),
    )


def _auth_enum(*labels: str, name: str) -> Enum:
    return Enum(*labels, name=name, schema=SCHEMA, create_constraint=True)


class OAuthAuthorization(Base):
    """``auth.oauth_authorizations``: Supabase Auth's own authorization flow state.

    The library never reads or writes it (its codes are :class:`OAuthAuthorizationCode`); the
    table exists on a database the library creates so that ``auth`` has Supabase's shape.
    """

    __tablename__ = "oauth_authorizations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    authorization_id: Mapped[str] = mapped_column(Text, nullable=False)
    client_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("auth.oauth_clients.id", ondelete="CASCADE",
                         name="oauth_authorizations_client_id_fkey"), nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("auth.users.id", ondelete="CASCADE",
                         name="oauth_authorizations_user_id_fkey"))
    redirect_uri: Mapped[str] = mapped_column(Text, nullable=False)
    scope: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str | None] = mapped_column(Text)
    resource: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(Text)
    code_challenge_method: Mapped[str | None] = mapped_column(
        _auth_enum("s256", "plain", name="code_challenge_method"))
    response_type: Mapped[str] = mapped_column(
        _auth_enum("code", name="oauth_response_type"), nullable=False, server_default="code")
    status: Mapped[str] = mapped_column(
        _auth_enum("pending", "approved", "denied", "expired", name="oauth_authorization_status"),
        nullable=False, server_default="pending")
    authorization_code: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False,
                                                 server_default=func.now())
    #: Default ``now() + 3 minutes`` (set by the migration: PostgreSQL only).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    nonce: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("authorization_code", name="oauth_authorizations_authorization_code_key"),
        UniqueConstraint("authorization_id", name="oauth_authorizations_authorization_id_key"),
        CheckConstraint("char_length(authorization_code) <= 255",
                        name="oauth_authorizations_authorization_code_length"),
        CheckConstraint("char_length(code_challenge) <= 128",
                        name="oauth_authorizations_code_challenge_length"),
        CheckConstraint("expires_at > created_at", name="oauth_authorizations_expires_at_future"),
        CheckConstraint("char_length(redirect_uri) <= 2048",
                        name="oauth_authorizations_redirect_uri_length"),
        CheckConstraint("char_length(resource) <= 2048",
                        name="oauth_authorizations_resource_length"),
        CheckConstraint("char_length(scope) <= 4096", name="oauth_authorizations_scope_length"),
        CheckConstraint("char_length(state) <= 4096", name="oauth_authorizations_state_length"),
        CheckConstraint("char_length(nonce) <= 255", name="oauth_authorizations_nonce_length"),
        Index("oauth_auth_pending_exp_idx", "expires_at",
              postgresql_where=text("status = 'pending'::auth.oauth_authorization_status"),
              sqlite_where=text("status = 'pending'")),
    )


# --------------------------------------------------------------------------------------------
# The library's own schema.

#: aal values in the library's tables: text with a CHECK (no dependency on Supabase's enum type,
#: which a Supabase Auth migration may one day replace).
def _aal_text(name: str) -> Enum:
    return Enum(Aal, name=name, native_enum=False, create_constraint=True, length=4,
                values_callable=lambda e: [m.value for m in e], validate_strings=True)


class OAuthClientSettings(Base):
    """``oauth_client_settings``: what the library knows of a client beyond Supabase's row.

    One row per client the library registered, keyed (and cascaded) by the client's id in
    ``auth.oauth_clients``. A client without a row (one Supabase Auth registered) gets the
    defaults of :mod:`oauth_sessions.storage.clients`. ``token_endpoint_auth_method`` is set
    only where Supabase's column cannot hold the real one (``private_key_jwt``).
    """

    __tablename__ = "oauth_client_settings"
    __table_args__ = {"schema": LIBRARY_SCHEMA,
                      "comment": "oauth_sessions: per-client settings beyond auth.oauth_clients"}

    client_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("auth.oauth_clients.id", ondelete="CASCADE",
                         name="oauth_client_settings_client_id_fkey"), primary_key=True)
    scope: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    min_aal: Mapped[Aal | None] = mapped_column(_aal_text("oauth_client_settings_min_aal_check"))
    max_session_seconds: Mapped[int | None] = mapped_column(Integer)
    can_introspect: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    verified: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    token_endpoint_auth_method: Mapped[str | None] = mapped_column(Text)
    jwks: Mapped[str | None] = mapped_column(Text)
    post_logout_redirect_uris: Mapped[str | None] = mapped_column(Text)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(Text)
    backchannel_logout_session_required: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=true())
    registration_access_token_hash: Mapped[str | None] = mapped_column(Text)
    # Revision 0008: OIDC Dynamic Client Registration 1.0 section 2; NULL: the provider's
    # OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG (see oauth_sessions.protocol.tokens).
    id_token_signed_response_alg: Mapped[str | None] = mapped_column(Text)
    # Revision 0009: OIDC Core section 8.1; NULL: public subjects, else the sector (a host)
    # whose pairwise sub this client's users get (see oauth_sessions.core.subjects).
    sector_identifier: Mapped[str | None] = mapped_column(Text)
    # Revision 0010: RFC 9449 section 5.2; true: every token request of the client carries DPoP.
    dpop_bound_access_tokens: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                                           server_default=false())
    # Revision 0011: RFC 9126 section 6; true: this client's authorization requests must be
    # pushed (the authorization endpoint accepts only a request_uri from it).
    require_pushed_authorization_requests: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=false())
    # Revision 0013: OIDC Dynamic Client Registration 1.0 section 2; NULL: UserInfo answers
    # plain JSON, else a JWT signed with this alg (OIDC Core section 5.3.2).
    userinfo_signed_response_alg: Mapped[str | None] = mapped_column(Text)


class OAuthAuthorizationCode(Base):
    """``oauth_authorization_codes``: one row per code the library issued.

    ``authorization_code`` holds the SHA-256 of the code, never the code itself.
    ``session_id`` is set when the code is exchanged, so that a replayed code can end the
    session it produced (RFC 6749 section 4.1.2).
    """

    __tablename__ = "oauth_authorization_codes"
    __table_args__ = (
        UniqueConstraint("authorization_code",
                         name="oauth_authorization_codes_authorization_code_key"),
        Index("oauth_authorization_codes_expires_at_idx", "expires_at"),
        {"schema": LIBRARY_SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    client_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("auth.oauth_clients.id", ondelete="CASCADE",
                         name="oauth_authorization_codes_client_id_fkey"), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("auth.users.id", ondelete="CASCADE",
                         name="oauth_authorization_codes_user_id_fkey"), nullable=False)
    redirect_uri: Mapped[str] = mapped_column(Text, nullable=False)
    scope: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str | None] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(Text)
    code_challenge_method: Mapped[str | None] = mapped_column(Text)
    authorization_code: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="approved")
    aal: Mapped[Aal] = mapped_column(_aal_text("oauth_authorization_codes_aal_check"),
                                     nullable=False)
    amr: Mapped[str | None] = mapped_column(Text)
    factor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    #: The user's device at the authorization endpoint, copied to the session.
    user_agent: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(Inet)
    # Revision 0007: the client's session this authorization replaces (a step-up or another
    # re-authorization naming it by id_token_hint); ended when the code produces the new one.
    replaces_session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Revision 0014: the RFC 8707 resources of the request, space-separated (NULL: none).
    resources: Mapped[str | None] = mapped_column(Text)
    # Revision 0012: the OIDC Core 5.5 claims request, as parsed (JSON text); NULL: none.
    claims: Mapped[str | None] = mapped_column(Text)
    # Revision 0015: the RFC 9449 section 10 ``dpop_jkt`` the code is bound to; NULL: unbound.
    dpop_jkt: Mapped[str | None] = mapped_column(Text)


class OAuthResourceServer(Base):
    """``oauth_resource_servers``: registered resource servers (RFC 8707), by absolute URI.

    ``secret_hash`` is the introspection secret in the stored form of client secrets;
    ``min_aal`` the assurance tokens meant for it need; ``scope`` the scopes it accepts
    (space-separated; NULL: any).
    """

    __tablename__ = "oauth_resource_servers"
    __table_args__ = (
        UniqueConstraint("resource", name="oauth_resource_servers_resource_key"),
        {"schema": LIBRARY_SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    resource: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    secret_hash: Mapped[str] = mapped_column(Text, nullable=False)
    min_aal: Mapped[Aal | None] = mapped_column(_aal_text("oauth_resource_servers_min_aal_check"))
    scope: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class OAuthSessionResources(Base):
    """``oauth_session_resources``: the resources a session was granted at authorize.

    One row per session that named any, removed with the session (``ON DELETE CASCADE``); a
    session without a row has the default audience only.
    """

    __tablename__ = "oauth_session_resources"
    __table_args__ = {"schema": LIBRARY_SCHEMA}

    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("auth.sessions.id", ondelete="CASCADE",
                         name="oauth_session_resources_session_id_fkey"), primary_key=True)
    resources: Mapped[str] = mapped_column(Text, nullable=False)


class OAuthClientAssertion(Base):
    """``oauth_client_assertions``: ``jti`` values of accepted ``private_key_jwt`` assertions,
    hashed, kept until the assertion expires (one-time use)."""

    __tablename__ = "oauth_client_assertions"
    __table_args__ = (Index("oauth_client_assertions_expires_at_idx", "expires_at"),
                      {"schema": LIBRARY_SCHEMA})

    jti_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    client_id: Mapped[uuid.UUID] = mapped_column(
        Uuid,
        ForeignKey("auth.oauth_clients.id", ondelete="CASCADE",
                   name="oauth_client_assertions_client_id_fkey"),
        nullable=False,
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class OAuthDpopProof(Base):
    """``oauth_dpop_proofs``: ``jti`` values (hashed with the key's thumbprint) of accepted DPoP
    proofs, kept until the proof's ``iat`` window has passed (RFC 9449 section 11.1). The
    primary key decides a race between workers: the second insert fails."""

    __tablename__ = "oauth_dpop_proofs"
    __table_args__ = (Index("oauth_dpop_proofs_expires_at_idx", "expires_at"),
                      {"schema": LIBRARY_SCHEMA})

    jti_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class OAuthDpopBinding(Base):
    """``oauth_dpop_bindings``: the DPoP key (RFC 7638 thumbprint) a session's refresh tokens
    are bound to (RFC 9449 section 5), one row per bound session, gone with the session."""

    __tablename__ = "oauth_dpop_bindings"
    __table_args__ = {"schema": LIBRARY_SCHEMA}

    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("auth.sessions.id", ondelete="CASCADE",
                         name="oauth_dpop_bindings_session_id_fkey"), primary_key=True)
    jkt: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class OAuthPushedRequest(Base):
    """``oauth_pushed_requests`` (revision 0011): authorization requests pushed to the RFC 9126
    endpoint, waiting for the authorization endpoint.

    ``request_hash`` is the SHA-256 of the ``request_uri`` handed to the client, never the
    reference itself. ``used_at``: the authorization endpoint took the request (one-time);
    ``completed_at``: a code was issued from it (once).
    """

    __tablename__ = "oauth_pushed_requests"
    __table_args__ = (Index("oauth_pushed_requests_expires_at_idx", "expires_at"),
                      {"schema": LIBRARY_SCHEMA})

    request_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    client_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("auth.oauth_clients.id", ondelete="CASCADE",
                         name="oauth_pushed_requests_client_id_fkey"), nullable=False)
    #: The pushed parameters, a JSON object of strings.
    parameters: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAuthSigningKey(Base):
    """``oauth_signing_keys``: JWS signing keys. Private JWKs may be encrypted at rest like
    session HMAC keys."""

    __tablename__ = "oauth_signing_keys"
    __table_args__ = {"schema": LIBRARY_SCHEMA}

    kid: Mapped[str] = mapped_column(Text, primary_key=True)
    alg: Mapped[str] = mapped_column(Text, nullable=False)
    private_jwk: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Declared here because a descending index needs the column object.
Index("sessions_not_after_idx", Session.__table__.c.not_after.desc())
Index("oauth_consents_user_order_idx", OAuthConsent.__table__.c.user_id,
      OAuthConsent.__table__.c.granted_at.desc())
