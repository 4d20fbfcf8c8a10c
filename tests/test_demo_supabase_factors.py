"""Issue 17: the demo on a Supabase Auth database, second factors and its own bookkeeping.

``auth.mfa_factors`` here has Supabase Auth's shape (``tests/supabase_fixture.py``) and holds
factors as Supabase Auth's enrolment leaves them: a verified TOTP factor steps a Supabase user
up to aal2 in the demo, with a plain base32 secret or one in Supabase's ``aes-gcm-hkdf`` form;
the demo never writes Supabase's factor row (its replay guard and lockout live in its own
schema), and creating its tables runs no DDL in ``auth``.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import argon2
import pyotp
import pytest
from sqlalchemy import Engine, text
from supabase_fixture import (
    add_totp_factor,
    auth_catalog,
    bcrypt_hash,
    create_mfa_factors,
    supabase_encrypt,
)

from demo_server import totp
from demo_server.db import DEMO_SCHEMA, create_demo_tables, factor_storage
from demo_server.testing import DemoBrowser, make_demo_app
from demo_server.users import Passwords, authenticate
from oauth_sessions import get_state
from oauth_sessions.storage import migrate
from oauth_sessions.storage.database import create_auth_engine
from oauth_sessions.storage.key_encryption import SupabaseKeys

pytestmark = pytest.mark.postgres

PASSWORD = "correct horse battery staple"
ROOT = bytes(range(64, 96))


@pytest.fixture
def supabase_db(fresh_pg_url: str) -> Iterator[tuple[str, Engine]]:
    """A migrated database whose auth also has Supabase Auth's users columns and mfa_factors."""
    engine = create_auth_engine(fresh_pg_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE auth.users ADD COLUMN IF NOT EXISTS banned_until timestamptz, "
                          "ADD COLUMN IF NOT EXISTS deleted_at timestamptz"))
        if conn.execute(text("SELECT to_regclass('auth.mfa_factors')")).scalar() is None:
            create_mfa_factors(conn)
    yield fresh_pg_url, engine
    engine.dispose()


def _user(engine: Engine, email: str) -> uuid.UUID:
    user_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO auth.users (id, email, encrypted_password, created_at, "
                          "updated_at) VALUES (:id, :email, :pw, now(), now())"),
                     {"id": user_id, "email": email, "pw": bcrypt_hash(PASSWORD)})
    return user_id


def _factor_row(engine: Engine, factor_id: uuid.UUID) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT * FROM auth.mfa_factors WHERE id = :id"),
                                  {"id": factor_id}).one())


def _aal(engine: Engine, user_id: uuid.UUID) -> list[tuple[str, uuid.UUID | None]]:
    with engine.connect() as conn:
        return [(str(a), f) for a, f in conn.execute(text(
            "SELECT aal, factor_id FROM auth.sessions WHERE user_id = :u"), {"u": user_id})]


def test_demo_tables_live_in_their_own_schema_and_no_ddl_runs_in_auth(
    supabase_db: tuple[str, Engine],
) -> None:
    _, engine = supabase_db
    before = auth_catalog(engine)
    create_demo_tables(engine)
    create_demo_tables(engine)  # idempotent
    assert auth_catalog(engine) == before
    with engine.connect() as conn:
        own = set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s"),
                               {"s": DEMO_SCHEMA}).scalars())
        in_auth = set(conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'auth' AND tablename LIKE 'demo%'"
        )).scalars())
    # Supabase's mfa_factors exists, so the demo keeps no factor table of its own.
    assert own == {"demo_sign_in_throttle", "demo_factor_state", "demo_client_owners"}
    assert in_auth == set()
    assert factor_storage(engine).supabase


def test_supabase_verified_totp_factor_steps_up_in_the_demo(
    supabase_db: tuple[str, Engine], tmp_path: Path,
) -> None:
    url, engine = supabase_db
    user = _user(engine, "sam@example.com")
    with engine.begin() as conn:
        factor_id, secret = add_totp_factor(conn, user)
        # A webauthn factor and an unverified TOTP one are not used for a TOTP step-up.
        add_totp_factor(conn, user, factor_type="webauthn",
                        created_at=datetime.now(UTC) + timedelta(seconds=1))
        add_totp_factor(conn, user, status="unverified",
                        created_at=datetime.now(UTC) + timedelta(seconds=2))
    row = _factor_row(engine, factor_id)
    app = make_demo_app(tmp_path, url)
    try:
        browser = DemoBrowser(app)
        assert browser.sign_in("sam@example.com", PASSWORD).status_code == 302
        assert _aal(engine, user) == [("aal1", None)]
        code = pyotp.TOTP(secret).now()
        answer = browser.post("/account/step-up", {"code": code, "next": "/"})
        assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
        assert _aal(engine, user) == [("aal2", factor_id)]
        # The same code again is refused (replay guard in the demo's own table).
        again = browser.post("/account/step-up", {"code": code, "next": "/"})
        assert again.status_code == 400
        assert _factor_row(engine, factor_id) == row  # Supabase's row is never written
        with engine.connect() as conn:
            state = conn.execute(text(f"SELECT last_step_at FROM {DEMO_SCHEMA}.demo_factor_state "
                                      "WHERE factor_id = :f"), {"f": factor_id}).scalar_one()
        assert state is not None
    finally:
        get_state(app).engine.dispose()


def test_wrong_codes_lock_a_supabase_factor_without_touching_its_row(
    supabase_db: tuple[str, Engine],
) -> None:
    _, engine = supabase_db
    create_demo_tables(engine)
    user = _user(engine, "lock@example.com")
    with engine.begin() as conn:
        factor_id, secret = add_totp_factor(conn, user)
    row = _factor_row(engine, factor_id)
    factor = totp.factor_for(engine, user, status="verified")
    assert factor is not None and factor.id == factor_id and factor.secret == secret
    now = datetime.now(UTC)
    right = pyotp.TOTP(secret).at(now)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    verdicts = [totp.verify_code(engine, factor, wrong, now=now) for _ in range(totp.MAX_FAILURES)]
    assert verdicts == [totp.Verdict.REJECTED] * (totp.MAX_FAILURES - 1) + [totp.Verdict.LOCKED]
    assert totp.verify_code(engine, factor, right, now=now) == totp.Verdict.LOCKED
    later = now + timedelta(seconds=totp.LOCK_SECONDS)
    assert totp.verify_code(engine, factor, pyotp.TOTP(secret).at(later), now=later) == \
        totp.Verdict.ACCEPTED
    assert _factor_row(engine, factor_id) == row


def test_secret_in_supabase_encrypted_form_needs_the_root_keys(
    supabase_db: tuple[str, Engine],
) -> None:
    _, engine = supabase_db
    user = _user(engine, "enc@example.com")
    factor_id = uuid.uuid4()
    secret = pyotp.random_base32(length=32)
    with engine.begin() as conn:
        add_totp_factor(conn, user, factor_id=factor_id, secret=secret,
                        stored_secret=supabase_encrypt(secret, row_id=factor_id, root=ROOT,
                                                       key_id="root-1"))
    create_demo_tables(engine)  # no root keys: the factor cannot be read, so it is not offered
    assert totp.factor_for(engine, user, status="verified") is None
    root_text = base64.urlsafe_b64encode(ROOT).rstrip(b"=").decode()
    create_demo_tables(engine, supabase_keys=SupabaseKeys({"root-1": root_text}))
    factor = totp.factor_for(engine, user, status="verified")
    assert factor is not None and factor.secret == secret
    now = datetime.now(UTC)
    assert totp.verify_code(engine, factor, pyotp.TOTP(secret).at(now), now=now) == \
        totp.Verdict.ACCEPTED


def test_enrolment_in_supabase_table_writes_a_row_supabase_reads(
    supabase_db: tuple[str, Engine],
) -> None:
    _, engine = supabase_db
    create_demo_tables(engine)
    user = _user(engine, "new@example.com")
    factor = totp.start_enrollment(engine, user)
    now = datetime.now(UTC)
    assert totp.verify_code(engine, factor, pyotp.TOTP(factor.secret).at(now), now=now,
                            mark_verified=True) == totp.Verdict.ACCEPTED
    with engine.connect() as conn:
        stored = conn.execute(text(
            "SELECT factor_type::text, status::text, secret, friendly_name, last_challenged_at "
            "FROM auth.mfa_factors WHERE id = :id"), {"id": factor.id}).one()
    assert tuple(stored) == ("totp", "verified", factor.secret, None, None)
    assert totp.remove_factor(engine, user, factor.id)
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {DEMO_SCHEMA}.demo_factor_state "
                                 "WHERE factor_id = :f"), {"f": factor.id}).scalar_one() == 0


def test_password_hash_in_supabase_encrypted_form_signs_in_given_the_root_keys(
    supabase_db: tuple[str, Engine],
) -> None:
    """With its database encryption on, Supabase Auth stores the bcrypt hash itself sealed."""
    _, engine = supabase_db
    user = _user(engine, "sealed@example.com")
    with engine.begin() as conn:
        sealed = supabase_encrypt(bcrypt_hash(PASSWORD), row_id=user, root=ROOT, key_id="root-1")
        conn.execute(text("UPDATE auth.users SET encrypted_password = :pw WHERE id = :id"),
                     {"pw": sealed, "id": user})
    passwords = Passwords(argon2.profiles.CHEAPEST)
    create_demo_tables(engine)  # no root keys: nobody signs in with that hash
    assert authenticate(engine, passwords, "sealed@example.com", PASSWORD) is None
    root_text = base64.urlsafe_b64encode(ROOT).rstrip(b"=").decode()
    create_demo_tables(engine, supabase_keys=SupabaseKeys({"root-1": root_text}))
    assert authenticate(engine, passwords, "sealed@example.com", "wrong") is None
    account = authenticate(engine, passwords, "sealed@example.com", PASSWORD)
    assert account is not None and account.id == user
    with engine.connect() as conn:  # never rewritten: Supabase Auth reads the same column
        assert conn.execute(text("SELECT encrypted_password FROM auth.users WHERE id = :id"),
                            {"id": user}).scalar_one() == sealed
