"""Rows and tables as Supabase Auth writes them, built by this project's own code for tests.

Shapes are written from ``shared/supabase.md`` (Supabase Auth v2.196.0); values are what
Supabase Auth would have written (bcrypt ``$2a$`` passwords, base32 TOTP secrets, optionally in
its ``aes-gcm-hkdf`` form bound to the row id).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bcrypt
import pyotp
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, Engine, text

#: Supabase Auth's current ``auth`` as the library meets it (the tables it touches), written
#: from supabase.md: enums, ``users`` (35 columns), ``oauth_clients``, ``sessions``,
#: ``mfa_amr_claims``, ``refresh_tokens``, ``oauth_consents``, ``oauth_authorizations`` and
#: the ledger ``schema_migrations`` that says Supabase Auth manages the schema.
CURRENT_AUTH_DDL = (
    "CREATE SCHEMA auth",
    "CREATE TABLE auth.schema_migrations (version varchar(255) NOT NULL "
    "CONSTRAINT schema_migrations_pkey PRIMARY KEY)",
    "CREATE TYPE auth.aal_level AS ENUM ('aal1', 'aal2', 'aal3')",
    "CREATE TYPE auth.oauth_registration_type AS ENUM ('dynamic', 'manual')",
    "CREATE TYPE auth.oauth_client_type AS ENUM ('public', 'confidential')",
    "CREATE TYPE auth.oauth_authorization_status AS ENUM "
    "('pending', 'approved', 'denied', 'expired')",
    "CREATE TYPE auth.oauth_response_type AS ENUM ('code')",
    "CREATE TYPE auth.code_challenge_method AS ENUM ('s256', 'plain')",
    """CREATE TABLE auth.users (
        instance_id uuid, id uuid NOT NULL CONSTRAINT users_pkey PRIMARY KEY,
        aud varchar(255), role varchar(255), email varchar(255), encrypted_password varchar(255),
        email_confirmed_at timestamptz, invited_at timestamptz, confirmation_token varchar(255),
        confirmation_sent_at timestamptz, recovery_token varchar(255),
        recovery_sent_at timestamptz, email_change_token_new varchar(255),
        email_change varchar(255), email_change_sent_at timestamptz,
        last_sign_in_at timestamptz, raw_app_meta_data jsonb, raw_user_meta_data jsonb,
        is_super_admin boolean, created_at timestamptz, updated_at timestamptz,
        phone text DEFAULT NULL CONSTRAINT users_phone_key UNIQUE,
        phone_confirmed_at timestamptz, phone_change text DEFAULT '',
        phone_change_token varchar(255) DEFAULT '', phone_change_sent_at timestamptz,
        confirmed_at timestamptz GENERATED ALWAYS AS (LEAST(email_confirmed_at,
                                                            phone_confirmed_at)) STORED,
        email_change_token_current varchar(255) DEFAULT '',
        email_change_confirm_status smallint DEFAULT 0
            CONSTRAINT users_email_change_confirm_status_check
            CHECK (email_change_confirm_status >= 0 AND email_change_confirm_status <= 2),
        banned_until timestamptz, reauthentication_token varchar(255) DEFAULT '',
        reauthentication_sent_at timestamptz, is_sso_user boolean NOT NULL DEFAULT false,
        deleted_at timestamptz, is_anonymous boolean NOT NULL DEFAULT false
    )""",
    "CREATE UNIQUE INDEX users_email_partial_key ON auth.users (email) WHERE is_sso_user = false",
    "CREATE INDEX users_instance_id_idx ON auth.users (instance_id)",
    "CREATE INDEX users_is_anonymous_idx ON auth.users (is_anonymous)",
    """CREATE TABLE auth.oauth_clients (
        id uuid NOT NULL CONSTRAINT oauth_clients_pkey PRIMARY KEY,
        client_secret_hash text,
        registration_type auth.oauth_registration_type NOT NULL,
        redirect_uris text NOT NULL, grant_types text NOT NULL,
        client_name text CONSTRAINT oauth_clients_client_name_length
            CHECK (char_length(client_name) <= 1024),
        client_uri text CONSTRAINT oauth_clients_client_uri_length
            CHECK (char_length(client_uri) <= 2048),
        logo_uri text CONSTRAINT oauth_clients_logo_uri_length
            CHECK (char_length(logo_uri) <= 2048),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        deleted_at timestamptz,
        client_type auth.oauth_client_type NOT NULL DEFAULT 'confidential',
        token_endpoint_auth_method text NOT NULL
            CONSTRAINT oauth_clients_token_endpoint_auth_method_check CHECK
            (token_endpoint_auth_method IN ('client_secret_basic', 'client_secret_post', 'none'))
    )""",
    "CREATE INDEX oauth_clients_deleted_at_idx ON auth.oauth_clients (deleted_at)",
    """CREATE TABLE auth.sessions (
        id uuid NOT NULL CONSTRAINT sessions_pkey PRIMARY KEY,
        user_id uuid NOT NULL CONSTRAINT sessions_user_id_fkey
            REFERENCES auth.users(id) ON DELETE CASCADE,
        created_at timestamptz, updated_at timestamptz, factor_id uuid, aal auth.aal_level,
        not_after timestamptz, refreshed_at timestamp without time zone, user_agent text,
        ip inet, tag text,
        oauth_client_id uuid CONSTRAINT sessions_oauth_client_id_fkey
            REFERENCES auth.oauth_clients(id) ON DELETE CASCADE,
        refresh_token_hmac_key text, refresh_token_counter bigint,
        scopes text CONSTRAINT sessions_scopes_length CHECK (char_length(scopes) <= 4096)
    )""",
    "CREATE INDEX sessions_not_after_idx ON auth.sessions (not_after DESC)",
    "CREATE INDEX sessions_oauth_client_id_idx ON auth.sessions (oauth_client_id)",
    "CREATE INDEX sessions_user_id_idx ON auth.sessions (user_id)",
    "CREATE INDEX user_id_created_at_idx ON auth.sessions (user_id, created_at)",
    "COMMENT ON TABLE auth.sessions IS 'Auth: Stores session data associated to a user.'",
    "COMMENT ON COLUMN auth.sessions.not_after IS 'Auth: Not after is a nullable column that "
    "contains a timestamp after which the session should be regarded as expired.'",
    "COMMENT ON COLUMN auth.sessions.refresh_token_hmac_key IS "
    "'Holds a HMAC-SHA256 key used to sign refresh tokens for this session.'",
    "COMMENT ON COLUMN auth.sessions.refresh_token_counter IS "
    "'Holds the ID (counter) of the last issued refresh token.'",
    """CREATE TABLE auth.mfa_amr_claims (
        session_id uuid NOT NULL CONSTRAINT mfa_amr_claims_session_id_fkey
            REFERENCES auth.sessions(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
        authentication_method text NOT NULL,
        id uuid NOT NULL CONSTRAINT amr_id_pk PRIMARY KEY,
        CONSTRAINT mfa_amr_claims_session_id_authentication_method_pkey
            UNIQUE (session_id, authentication_method)
    )""",
    """CREATE TABLE auth.refresh_tokens (
        instance_id uuid, id bigserial NOT NULL CONSTRAINT refresh_tokens_pkey PRIMARY KEY,
        token varchar(255) CONSTRAINT refresh_tokens_token_unique UNIQUE,
        user_id varchar(255), revoked boolean, created_at timestamptz, updated_at timestamptz,
        parent varchar(255),
        session_id uuid CONSTRAINT refresh_tokens_session_id_fkey
            REFERENCES auth.sessions(id) ON DELETE CASCADE
    )""",
    """CREATE TABLE auth.oauth_consents (
        id uuid NOT NULL CONSTRAINT oauth_consents_pkey PRIMARY KEY,
        user_id uuid NOT NULL CONSTRAINT oauth_consents_user_id_fkey
            REFERENCES auth.users(id) ON DELETE CASCADE,
        client_id uuid NOT NULL CONSTRAINT oauth_consents_client_id_fkey
            REFERENCES auth.oauth_clients(id) ON DELETE CASCADE,
        scopes text NOT NULL, granted_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        CONSTRAINT oauth_consents_user_client_unique UNIQUE (user_id, client_id),
        CONSTRAINT oauth_consents_scopes_length CHECK (char_length(scopes) <= 2048),
        CONSTRAINT oauth_consents_scopes_not_empty CHECK (char_length(trim(scopes)) > 0),
        CONSTRAINT oauth_consents_revoked_after_granted
            CHECK (revoked_at IS NULL OR revoked_at >= granted_at)
    )""",
    "CREATE INDEX oauth_consents_active_client_idx ON auth.oauth_consents (client_id) "
    "WHERE revoked_at IS NULL",
    "CREATE INDEX oauth_consents_active_user_client_idx ON auth.oauth_consents "
    "(user_id, client_id) WHERE revoked_at IS NULL",
    "CREATE INDEX oauth_consents_user_order_idx ON auth.oauth_consents (user_id, granted_at DESC)",
    """CREATE TABLE auth.oauth_authorizations (
        id uuid NOT NULL CONSTRAINT oauth_authorizations_pkey PRIMARY KEY,
        authorization_id text NOT NULL CONSTRAINT oauth_authorizations_authorization_id_key UNIQUE,
        client_id uuid NOT NULL CONSTRAINT oauth_authorizations_client_id_fkey
            REFERENCES auth.oauth_clients(id) ON DELETE CASCADE,
        user_id uuid CONSTRAINT oauth_authorizations_user_id_fkey
            REFERENCES auth.users(id) ON DELETE CASCADE,
        redirect_uri text NOT NULL, scope text NOT NULL, state text, resource text,
        code_challenge text, code_challenge_method auth.code_challenge_method,
        response_type auth.oauth_response_type NOT NULL DEFAULT 'code',
        status auth.oauth_authorization_status NOT NULL DEFAULT 'pending',
        authorization_code text CONSTRAINT oauth_authorizations_authorization_code_key UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL DEFAULT now() + interval '3 minutes',
        approved_at timestamptz, nonce text,
        CONSTRAINT oauth_authorizations_expires_at_future CHECK (expires_at > created_at)
    )""",
    *(f"ALTER TABLE auth.{t} ENABLE ROW LEVEL SECURITY"
      for t in ("users", "sessions", "mfa_amr_claims", "refresh_tokens", "schema_migrations")),
)

#: Versions in the ledger: the migrations supabase.md names (OAuth tables, sessions' client
#: column, scopes) and the newest of v2.196.0.
SUPABASE_VERSIONS = ("20250731150234", "20250804100000", "20250904133000", "20251007112900",
                     "20251111201300", "20260625000000")


def create_current_auth(conn: Connection) -> None:
    """Supabase Auth's current ``auth`` schema, managed (``schema_migrations`` filled in)."""
    for statement in (*CURRENT_AUTH_DDL, *MFA_FACTORS_DDL):
        conn.execute(text(statement))
    for version in SUPABASE_VERSIONS:
        conn.execute(text("INSERT INTO auth.schema_migrations (version) VALUES (:v)"),
                     {"v": version})


#: ``auth.mfa_factors`` with its two enums, the columns of supabase.md.
MFA_FACTORS_DDL = (
    "CREATE TYPE auth.factor_type AS ENUM ('totp', 'webauthn', 'phone')",
    "CREATE TYPE auth.factor_status AS ENUM ('unverified', 'verified')",
    """CREATE TABLE auth.mfa_factors (
        id uuid NOT NULL CONSTRAINT mfa_factors_pkey PRIMARY KEY,
        user_id uuid NOT NULL CONSTRAINT mfa_factors_user_id_fkey
            REFERENCES auth.users(id) ON DELETE CASCADE,
        friendly_name text,
        factor_type auth.factor_type NOT NULL,
        status auth.factor_status NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        secret text,
        phone text,
        last_challenged_at timestamptz CONSTRAINT mfa_factors_last_challenged_at_key UNIQUE,
        web_authn_credential jsonb,
        web_authn_aaguid uuid,
        last_webauthn_challenge_data jsonb
    )""",
    "CREATE INDEX factor_id_created_at_idx ON auth.mfa_factors (user_id, created_at)",
    "CREATE UNIQUE INDEX mfa_factors_user_friendly_name_unique ON auth.mfa_factors "
    "(friendly_name, user_id) WHERE TRIM(BOTH FROM friendly_name) <> ''",
    "ALTER TABLE auth.mfa_factors ENABLE ROW LEVEL SECURITY",
)


def create_mfa_factors(conn: Connection) -> None:
    for statement in MFA_FACTORS_DDL:
        conn.execute(text(statement))


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash in the ``$2a$`` variant Go's bcrypt (Supabase Auth) writes."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return "$2a$" + hashed[4:]


def supabase_encrypt(plaintext: str, *, row_id: uuid.UUID, root: bytes, key_id: str) -> str:
    """Supabase Auth's ``aes-gcm-hkdf`` form of ``plaintext`` for the row ``row_id``."""
    derived = HKDF(algorithm=SHA256(), length=32, salt=None,
                   info=str(row_id).encode("ascii")).derive(root)
    nonce = uuid.uuid4().bytes[:12]
    sealed = AESGCM(derived).encrypt(nonce, plaintext.encode("ascii"), None)
    return json.dumps({"key_id": key_id, "alg": "aes-gcm-hkdf",
                       "data": base64.b64encode(sealed).decode(),
                       "nonce": base64.b64encode(nonce).decode()})


def add_totp_factor(conn: Connection, user_id: uuid.UUID, *, status: str = "verified",
                    secret: str | None = None, stored_secret: str | None = None,
                    factor_type: str = "totp", factor_id: uuid.UUID | None = None,
                    created_at: datetime | None = None) -> tuple[uuid.UUID, str]:
    """A factor row as Supabase Auth's enrolment leaves it; returns (id, base32 secret)."""
    factor_id = factor_id or uuid.uuid4()
    secret = secret or pyotp.random_base32(length=32)
    when = created_at or datetime.now(UTC)
    conn.execute(text(
        "INSERT INTO auth.mfa_factors (id, user_id, friendly_name, factor_type, status, "
        "created_at, updated_at, secret, last_challenged_at) VALUES (:id, :user, :name, "
        "CAST(:type AS auth.factor_type), CAST(:status AS auth.factor_status), :at, :at, "
        ":secret, :at)"),
        {"id": factor_id, "user": user_id, "name": f"phone {factor_id.hex[:6]}",
         "type": factor_type, "status": status, "at": when,
         "secret": stored_secret if stored_secret is not None else secret})
    return factor_id, secret


SUPABASE_ROOT_KEY = bytes(range(160, 192))
SUPABASE_ROOT_KEY_ID = "root-2026"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class SupabaseRows:
    """What :func:`add_supabase_rows` wrote, for the tests to use and compare."""

    user_id: uuid.UUID
    email: str
    factor_id: uuid.UUID
    totp_secret: str
    client_id: uuid.UUID  # made by Supabase Auth: base64url SHA-256 hash, comma-separated lists
    client_secret: str
    redirect_uri: str
    deleted_client_id: uuid.UUID  # soft-deleted by Supabase Auth, its session left in place
    deleted_client_secret: str
    deleted_client_session_id: uuid.UUID
    plain_session_id: uuid.UUID  # first-party, plain base64url key
    plain_key: str
    encrypted_session_id: uuid.UUID  # first-party, key in the aes-gcm-hkdf form
    encrypted_key: str  # the plaintext (base64url) key inside it
    oauth_session_id: uuid.UUID  # made by Supabase Auth's OAuth server for client_id
    oauth_key: str


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def supabase_secret_hash(secret: str) -> str:
    return _b64url(hashlib.sha256(secret.encode("ascii")).digest())


def _client(conn: Connection, *, name: str, redirect_uris: str, deleted: datetime | None,
            now: datetime) -> tuple[uuid.UUID, str]:
    client_id, secret = uuid.uuid4(), _b64url(secrets.token_bytes(32))
    conn.execute(text(
        "INSERT INTO auth.oauth_clients (id, client_secret_hash, registration_type, "
        "redirect_uris, grant_types, client_name, created_at, updated_at, deleted_at, "
        "client_type, token_endpoint_auth_method) VALUES (:id, :hash, 'dynamic', :uris, "
        "'authorization_code,refresh_token', :name, :now, :now, :deleted, 'confidential', "
        "'client_secret_basic')"),
        {"id": client_id, "hash": supabase_secret_hash(secret), "uris": redirect_uris,
         "name": name, "now": now, "deleted": deleted})
    return client_id, secret


def _session(conn: Connection, user_id: uuid.UUID, *, key: str, client_id: uuid.UUID | None,
             now: datetime, counter: int = 0, scopes: str | None = None) -> uuid.UUID:
    session_id = uuid.uuid4()
    conn.execute(text(
        "INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, not_after, "
        "refreshed_at, user_agent, ip, oauth_client_id, refresh_token_hmac_key, "
        "refresh_token_counter, scopes) VALUES (:id, :user, :now, :now, 'aal1', NULL, :naive, "
        "'supabase-js/2.50', '203.0.113.7', :client, :key, :counter, :scopes)"),
        {"id": session_id, "user": user_id, "now": now,
         "naive": now.astimezone(UTC).replace(tzinfo=None), "client": client_id,
         "key": key, "counter": counter, "scopes": scopes})
    conn.execute(text(
        "INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, "
        "authentication_method) VALUES (:id, :sid, :now, :now, 'password')"),
        {"id": uuid.uuid4(), "sid": session_id, "now": now})
    return session_id


def add_supabase_rows(conn: Connection, *, now: datetime | None = None) -> SupabaseRows:
    """Rows Supabase Auth would have written into :func:`create_current_auth`'s schema."""
    now = now or datetime.now(UTC)
    user_id, email = uuid.uuid4(), "ada@example.com"
    conn.execute(text(
        "INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, "
        "email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at) "
        "VALUES ('00000000-0000-0000-0000-000000000000', :id, 'authenticated', "
        "'authenticated', :email, :pw, :now, CAST(:app AS jsonb), CAST('{}' AS jsonb), :now, :now)"),
        {"id": user_id, "email": email, "pw": bcrypt_hash(PASSWORD), "now": now,
         "app": json.dumps({"provider": "email", "providers": ["email"]})})
    factor_id, totp_secret = add_totp_factor(conn, user_id, created_at=now)
    redirect_uri = "https://app.example/callback"
    client_id, client_secret = _client(conn, name="Made by Supabase Auth", now=now,
                                       redirect_uris=f"{redirect_uri},https://app.example/other",
                                       deleted=None)
    deleted_id, deleted_secret = _client(conn, name="Deleted in Supabase", now=now,
                                         redirect_uris=redirect_uri, deleted=now)
    plain_key = _b64url(secrets.token_bytes(32))
    plain_session = _session(conn, user_id, key=plain_key, client_id=None, now=now, counter=3)
    encrypted_key = _b64url(secrets.token_bytes(32))
    encrypted_session = _session(conn, user_id, key="pending", client_id=None, now=now, counter=1)
    conn.execute(text("UPDATE auth.sessions SET refresh_token_hmac_key = :k WHERE id = :id"),
                 {"id": encrypted_session,
                  "k": supabase_encrypt(encrypted_key, row_id=encrypted_session,
                                        root=SUPABASE_ROOT_KEY, key_id=SUPABASE_ROOT_KEY_ID)})
    oauth_key = _b64url(secrets.token_bytes(32))
    oauth_session = _session(conn, user_id, key=oauth_key, client_id=client_id, now=now,
                             counter=2, scopes="openid email")
    deleted_session = _session(conn, user_id, key=_b64url(secrets.token_bytes(32)),
                               client_id=deleted_id, now=now, scopes="openid")
    for cid, scopes in ((client_id, "openid email"), (deleted_id, "openid")):
        conn.execute(text("INSERT INTO auth.oauth_consents (id, user_id, client_id, scopes, "
                          "granted_at) VALUES (:id, :user, :client, :scopes, :now)"),
                     {"id": uuid.uuid4(), "user": user_id, "client": cid, "scopes": scopes,
                      "now": now})
    return SupabaseRows(
        user_id=user_id, email=email, factor_id=factor_id, totp_secret=totp_secret,
        client_id=client_id, client_secret=client_secret, redirect_uri=redirect_uri,
        deleted_client_id=deleted_id, deleted_client_secret=deleted_secret,
        deleted_client_session_id=deleted_session, plain_session_id=plain_session,
        plain_key=plain_key, encrypted_session_id=encrypted_session,
        encrypted_key=encrypted_key, oauth_session_id=oauth_session, oauth_key=oauth_key)


def supabase_root_keys() -> dict[str, str]:
    """``OAUTH_SESSIONS_SUPABASE_ENCRYPTION_KEYS`` for the rows above."""
    return {SUPABASE_ROOT_KEY_ID: _b64url(SUPABASE_ROOT_KEY)}


def auth_catalog(engine: Engine) -> list[tuple[Any, ...]]:
    """Every object in ``auth`` with its definition: tables, columns, constraints, indexes, types.

    Triggers that PostgreSQL adds by itself on a table another schema's foreign key references
    (``tgisinternal``) belong to that foreign key, not to ``auth``, and are left out.
    """
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("""
            SELECT 'rel', c.relname, c.relkind::text, c.relrowsecurity::text FROM pg_class c
              WHERE c.relnamespace = 'auth'::regnamespace
            UNION ALL
            SELECT 'col', c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod),
                   a.attnotnull::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
              WHERE c.relnamespace = 'auth'::regnamespace AND a.attnum > 0
            UNION ALL
            SELECT 'con', conname, pg_get_constraintdef(oid), conrelid::regclass::text
              FROM pg_constraint WHERE connamespace = 'auth'::regnamespace
            UNION ALL
            SELECT 'idx', indexname, indexdef, tablename FROM pg_indexes WHERE schemaname = 'auth'
            UNION ALL
            SELECT 'typ', typname, typtype::text, '' FROM pg_type
              WHERE typnamespace = 'auth'::regnamespace
            UNION ALL
            SELECT 'trg', tgname, tgrelid::regclass::text, '' FROM pg_trigger t
              JOIN pg_class c ON c.oid = t.tgrelid
              WHERE c.relnamespace = 'auth'::regnamespace AND NOT t.tgisinternal
            ORDER BY 1, 2, 3, 4
        """))]
