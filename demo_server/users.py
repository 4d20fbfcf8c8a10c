"""People's accounts in ``auth.users``: e-mail and an argon2id password hash.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second
recommended profile) into ``encrypted_password``, the column Supabase uses for its
bcrypt hashes. Checking a password for an unknown e-mail still runs one argon2
verification against a fixed hash, so the response time does not tell an attacker
which addresses have accounts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from argon2 import Parameters, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, Table, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from oauth_sessions.storage.models import User

from .db import sign_in_throttle, utcnow
from .throttle import count_keyed_failure, is_locked

MIN_PASSWORD_LENGTH = 10  # NIST SP 800-63B 5.1.1.2 asks for at least 8
MAX_PASSWORD_LENGTH = 1024  # hashing megabytes of input is a denial of service, not security
MAX_EMAIL_LENGTH = 255
SIGN_IN_MAX_FAILURES = 10
SIGN_IN_LOCK_SECONDS = 60
LOCKED_MESSAGE = ("Too many wrong passwords for this address. Wait a minute, then try again "
                  "(or create an account if you do not have one).")

users_table = cast(Table, User.__table__)


class Passwords:
    """An argon2id hasher and a fixed hash of the same cost for unknown e-mails.

    Production uses argon2-cffi's default (RFC 9106 low-memory profile: 64 MiB, 3 passes);
    the tests pass ``argon2.profiles.CHEAPEST`` through ``DEMO_PASSWORD_PROFILE`` so that a
    sign-in does not cost them 0.2 s.
    """

    def __init__(self, profile: Parameters | None = None) -> None:
        self.hasher = PasswordHasher.from_parameters(profile) if profile else PasswordHasher()
        self.dummy_hash = self.hasher.hash("a password nobody has, to spend the same time")


class AccountError(ValueError):
    """A sign-up or sign-in input the person can fix; ``str(exc)`` is safe to show."""


class SignInLocked(AccountError):
    """Too many wrong passwords for this address in a row; wait for the lock to end."""


@dataclass(frozen=True, slots=True)
class Account:
    id: uuid.UUID
    email: str


def normalize_email(raw: str) -> str:
    """Trim and lowercase an address, and check its rough shape (one @, a dot in the domain)."""
    email = raw.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain.strip(".") or "@" in domain or " " in email:
        raise AccountError("Enter an e-mail address like name@example.com.")
    if len(email) > MAX_EMAIL_LENGTH:
        raise AccountError(f"An e-mail address has at most {MAX_EMAIL_LENGTH} characters.")
    return email


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"A password has at most {MAX_PASSWORD_LENGTH} characters.")


def create_account(engine: Engine, passwords: Passwords, email: str, password: str) -> Account:
    """Create an account; raises :class:`AccountError` for bad input or a taken address."""
    email = normalize_email(email)
    check_password_rules(password)
    now = utcnow()
    account = Account(id=uuid.uuid4(), email=email)
    try:
        with engine.begin() as conn:
            conn.execute(insert(users_table).values(
                id=account.id, email=email, encrypted_password=passwords.hasher.hash(password),
                created_at=now, updated_at=now,
            ))
    except IntegrityError:
        raise AccountError("An account with this e-mail address already exists. "
                           "Sign in instead.") from None
    return account


def find_account(engine: Engine, email: str) -> Account | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(users_table.c.id, users_table.c.email).where(
                func.lower(users_table.c.email) == email.strip().lower())
        ).first()
    return Account(id=row.id, email=row.email) if row else None


def get_account(engine: Engine, user_id: uuid.UUID) -> Account | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(users_table.c.id, users_table.c.email).where(users_table.c.id == user_id)
        ).first()
    return Account(id=row.id, email=row.email) if row else None


def authenticate(engine: Engine, passwords: Passwords, email: str, password: str, *,
                 now: datetime | None = None) -> Account | None:
    """The account whose password this is, or ``None`` (same answer for an unknown address).

    Raises :class:`SignInLocked` while the address is locked after ``SIGN_IN_MAX_FAILURES``
    wrong passwords in a row (NIST SP 800-63B section 5.2.2). Addresses without an account
    are counted and locked the same way, so the lock tells nothing about who has one.
    """
    now = now or datetime.now(UTC)
    key = email.strip().lower()[:MAX_EMAIL_LENGTH]
    where = sign_in_throttle.c.key == key
    with engine.connect() as conn:
        if is_locked(conn, sign_in_throttle, where, now):
            raise SignInLocked(LOCKED_MESSAGE)
    account = _check_password(engine, passwords, key, password)
    locked = False
    with engine.begin() as conn:  # raise only after the commit: the count must stick
        if account is not None:
            conn.execute(delete(sign_in_throttle).where(where))
        else:
            locked = count_keyed_failure(conn, sign_in_throttle, key, now,
                                         max_failures=SIGN_IN_MAX_FAILURES,
                                         lock_seconds=SIGN_IN_LOCK_SECONDS)
    if locked:
        raise SignInLocked(LOCKED_MESSAGE)
    return account


def _check_password(engine: Engine, passwords: Passwords, email: str, password: str) -> Account | None:
    if len(password) > MAX_PASSWORD_LENGTH:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(users_table.c.id, users_table.c.email, users_table.c.encrypted_password)
            .where(func.lower(users_table.c.email) == email)
        ).first()
    stored = row.encrypted_password if row and row.encrypted_password else passwords.dummy_hash
    try:
        passwords.hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or not row.encrypted_password:
        return None
    if passwords.hasher.check_needs_rehash(stored):
        with engine.begin() as conn:
            conn.execute(update(users_table).where(users_table.c.id == row.id)
                         .values(encrypted_password=passwords.hasher.hash(password), updated_at=utcnow()))
    return Account(id=row.id, email=row.email)


def passwords() -> Passwords:
    """The current app's :class:`Passwords`."""
    from flask import current_app

    found: Passwords = current_app.extensions["demo_passwords"]
    return found
