"""Rows and tables as Supabase Auth writes them, built by this project's own code for tests.

Shapes are written from ``shared/supabase.md`` (Supabase Auth v2.196.0); values are what
Supabase Auth would have written (bcrypt ``$2a$`` passwords, base32 TOTP secrets, optionally in
its ``aes-gcm-hkdf`` form bound to the row id).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import bcrypt
import pyotp
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, text

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
