"""Issue 17 item 5 (part): the demo signs in Supabase Auth's users as they are, on PostgreSQL.

``auth.users`` here has the columns Supabase Auth's table has beyond the library's minimal one
(``banned_until``, ``deleted_at``); ``encrypted_password`` holds a bcrypt hash as Supabase Auth
writes it (``$2a$``). The hash is checked and left as it is (Supabase Auth reads the same column);
banned and deleted users cannot sign in.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import argon2
import bcrypt
import pytest
from sqlalchemy import Engine, text

from demo_server.db import create_demo_tables
from demo_server.users import Passwords, authenticate
from oauth_sessions.storage import migrate
from oauth_sessions.storage.database import create_auth_engine

pytestmark = pytest.mark.postgres

PASSWORD = "correct horse battery staple"


@pytest.fixture
def supabase_users(fresh_pg_url: str) -> Iterator[Engine]:
    engine = create_auth_engine(fresh_pg_url)
    migrate.upgrade(engine)  # auth.users in Supabase's shape: banned_until, deleted_at included
    create_demo_tables(engine)
    yield engine
    engine.dispose()


def _supabase_user(engine: Engine, email: str, **state: object) -> uuid.UUID:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    hashed = "$2a$" + hashed[4:]  # the variant Go's bcrypt (Supabase Auth) writes
    user_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO auth.users (id, email, encrypted_password, banned_until, "
                          "deleted_at) VALUES (:id, :email, :pw, :banned, :deleted)"),
                     {"id": user_id, "email": email, "pw": hashed,
                      "banned": state.get("banned_until"), "deleted": state.get("deleted_at")})
    return user_id


def _stored(engine: Engine, user_id: uuid.UUID) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT encrypted_password FROM auth.users WHERE id = :id"),
                                {"id": user_id}).scalar_one())


def test_issue17_item5_bcrypt_user_signs_in_and_the_hash_stays(supabase_users: Engine) -> None:
    passwords = Passwords(argon2.profiles.CHEAPEST)
    user = _supabase_user(supabase_users, "pat@example.com")
    before = _stored(supabase_users, user)
    assert authenticate(supabase_users, passwords, "pat@example.com", "wrong") is None
    account = authenticate(supabase_users, passwords, "Pat@Example.com", PASSWORD)
    assert account is not None and account.id == user
    assert _stored(supabase_users, user) == before and before.startswith("$2a$")
    assert authenticate(supabase_users, passwords, "pat@example.com", "x" * 100) is None


def test_issue17_item5_banned_and_deleted_users_cannot_sign_in(supabase_users: Engine) -> None:
    passwords = Passwords(argon2.profiles.CHEAPEST)
    now = datetime.now(UTC)
    _supabase_user(supabase_users, "banned@example.com", banned_until=now + timedelta(hours=1))
    _supabase_user(supabase_users, "deleted@example.com", deleted_at=now - timedelta(days=1))
    ban_over = _supabase_user(supabase_users, "was-banned@example.com",
                              banned_until=now - timedelta(seconds=5))
    assert authenticate(supabase_users, passwords, "banned@example.com", PASSWORD) is None
    assert authenticate(supabase_users, passwords, "deleted@example.com", PASSWORD) is None
    account = authenticate(supabase_users, passwords, "was-banned@example.com", PASSWORD)
    assert account is not None and account.id == ban_over
