"""Supabase Auth's table shapes as DDL pieces, shared by the migrations and the attach check.

Written from ``shared/supabase.md`` (Supabase Auth v2.196.0): the columns of ``auth.users``, the
checks and indexes of ``auth.oauth_clients`` / ``auth.oauth_consents``, and what a
Supabase-managed ``auth`` must already have for the library to attach (:data:`REQUIRED_COLUMNS`).
The library creates these objects only where no Supabase Auth manages ``auth``.
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .column_types import UTCDateTime

__all__ = [
    "CLIENT_CHECKS",
    "CONSENT_CHECKS",
    "REQUIRED_COLUMNS",
    "USER_INDEXES",
    "users_columns",
]

#: ``auth.oauth_clients``' CHECK constraints (name, condition).
CLIENT_CHECKS: Final = (
    ("oauth_clients_client_name_length", "char_length(client_name) <= 1024"),
    ("oauth_clients_client_uri_length", "char_length(client_uri) <= 2048"),
    ("oauth_clients_logo_uri_length", "char_length(logo_uri) <= 2048"),
    ("oauth_clients_token_endpoint_auth_method_check",
     "token_endpoint_auth_method IN ('client_secret_basic', 'client_secret_post', 'none')"),
)

#: ``auth.oauth_consents``' CHECK constraints (name, condition).
CONSENT_CHECKS: Final = (
    ("oauth_consents_scopes_length", "char_length(scopes) <= 2048"),
    ("oauth_consents_scopes_not_empty", "char_length(trim(scopes)) > 0"),
    ("oauth_consents_revoked_after_granted", "revoked_at IS NULL OR revoked_at >= granted_at"),
)

#: ``auth.users``' indexes that the library's own queries or Supabase's rules rely on:
#: (name, columns, unique, PostgreSQL condition).
USER_INDEXES: Final = (
    ("users_email_partial_key", ("email",), True, "is_sso_user = false"),
    ("users_instance_id_idx", ("instance_id",), False, None),
    ("users_is_anonymous_idx", ("is_anonymous",), False, None),
)

#: What the library reads and writes in a Supabase-managed ``auth``: it must all be there.
REQUIRED_COLUMNS: Final = {
    "users": ("id", "email", "encrypted_password", "banned_until", "deleted_at"),
    "sessions": ("id", "user_id", "created_at", "updated_at", "factor_id", "aal", "not_after",
                 "refreshed_at", "user_agent", "ip", "tag", "oauth_client_id",
                 "refresh_token_hmac_key", "refresh_token_counter", "scopes"),
    "mfa_amr_claims": ("id", "session_id", "created_at", "updated_at", "authentication_method"),
    "oauth_clients": ("id", "client_secret_hash", "registration_type", "redirect_uris",
                      "grant_types", "client_name", "client_uri", "logo_uri", "created_at",
                      "updated_at", "deleted_at", "client_type", "token_endpoint_auth_method"),
    "oauth_consents": ("id", "user_id", "client_id", "scopes", "granted_at", "revoked_at"),
}


def _json(dialect: str) -> sa.types.TypeEngine[object]:
    return postgresql.JSONB() if dialect == "postgresql" else sa.JSON()


def users_columns(dialect: str) -> list[sa.Column[object]]:
    """The 35 columns of ``auth.users`` in Supabase's order (fresh objects on every call).

    ``confirmed_at`` is generated (the earlier of the two confirmations): ``LEAST`` on
    PostgreSQL, the same rule spelt with SQLite's functions there (virtual, since SQLite can add
    only virtual generated columns to an existing table).
    """
    empty = sa.text("''::character varying") if dialect == "postgresql" else sa.text("''")
    if dialect == "postgresql":
        confirmed = sa.Computed("LEAST(email_confirmed_at, phone_confirmed_at)", persisted=True)
    else:
        confirmed = sa.Computed("coalesce(min(email_confirmed_at, phone_confirmed_at), "
                                "email_confirmed_at, phone_confirmed_at)", persisted=False)
    s255 = sa.String(255)
    return [
        sa.Column("instance_id", sa.Uuid),
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("aud", s255),
        sa.Column("role", s255),
        sa.Column("email", s255),
        sa.Column("encrypted_password", s255),
        sa.Column("email_confirmed_at", UTCDateTime),
        sa.Column("invited_at", UTCDateTime),
        sa.Column("confirmation_token", s255),
        sa.Column("confirmation_sent_at", UTCDateTime),
        sa.Column("recovery_token", s255),
        sa.Column("recovery_sent_at", UTCDateTime),
        sa.Column("email_change_token_new", s255),
        sa.Column("email_change", s255),
        sa.Column("email_change_sent_at", UTCDateTime),
        sa.Column("last_sign_in_at", UTCDateTime),
        sa.Column("raw_app_meta_data", _json(dialect)),
        sa.Column("raw_user_meta_data", _json(dialect)),
        sa.Column("is_super_admin", sa.Boolean),
        sa.Column("created_at", UTCDateTime),
        sa.Column("updated_at", UTCDateTime),
        sa.Column("phone", sa.Text, server_default=sa.text("NULL")),
        sa.Column("phone_confirmed_at", UTCDateTime),
        sa.Column("phone_change", sa.Text, server_default=empty),
        sa.Column("phone_change_token", s255, server_default=empty),
        sa.Column("phone_change_sent_at", UTCDateTime),
        sa.Column("confirmed_at", UTCDateTime, confirmed),
        sa.Column("email_change_token_current", s255, server_default=empty),
        sa.Column("email_change_confirm_status", sa.SmallInteger, server_default=sa.text("0")),
        sa.Column("banned_until", UTCDateTime),
        sa.Column("reauthentication_token", s255, server_default=empty),
        sa.Column("reauthentication_sent_at", UTCDateTime),
        sa.Column("is_sso_user", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("deleted_at", UTCDateTime),
        sa.Column("is_anonymous", sa.Boolean, nullable=False, server_default=sa.false()),
    ]
