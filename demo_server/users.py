"""People's accounts in ``auth.users``: e-mail and an argon2id password hash.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second
recommended profile) into ``encrypted_password``, the column Supabase uses for its
bcrypt hashes. Checking a password for an unknown e-mail still runs one argon2
verification against a fixed hash, so the response time does not tell an attacker
which addresses have accounts.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import bcrypt
from argon2 import Parameters, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, Table, delete, func, insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from oauth_sessions.core.client_rules import has_forbidden_characters
from oauth_sessions.storage.key_encryption import KeyDecryptionError, is_supabase_encrypted
from oauth_sessions.storage.models import User

from .db import sign_in_throttle, supabase_keys, utcnow
from .throttle import reserve_keyed_attempt

MIN_PASSWORD_LENGTH = 10  # NIST SP 800-63B 5.1.1.2 asks for at least 8
MAX_PASSWORD_LENGTH = 1024  # hashing megabytes of input is a denial of service, not security
MAX_EMAIL_LENGTH = 255
SIGN_IN_MAX_FAILURES = 10
SIGN_IN_LOCK_SECONDS = 60
LOCKED_MESSAGE = ("Too many wrong passwords for this address. Wait a minute, then try again "
                  "(or create an account if you do not have one).")

log = logging.getLogger(__name__)

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


class AddressTaken(AccountError):
    """Sign-up for an address that has an account. Never shown: sign-up answers the same
    either way (issue 15 item 15), so it cannot tell anyone which addresses are registered."""


class SignInLocked(AccountError):
    """Too many wrong passwords for this address in a row; wait for the lock to end."""


@dataclass(frozen=True, slots=True)
class Account:
    id: uuid.UUID
    email: str


def normalize_email(raw: str) -> str:
    """Trim and lowercase an address, and check its rough shape (one @, a dot in the domain)."""
    email = raw.strip().lower()
    if has_forbidden_characters(email):  # NUL and other control characters (issue 15 item 11)
        raise AccountError("Enter an e-mail address like name@example.com.")
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
    """Create an account; raises :class:`AccountError` for bad input, :class:`AddressTaken`
    for a taken address (after hashing the password all the same, so both cost the same)."""
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
        raise AddressTaken("address taken") from None
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
    are counted and locked the same way, so the lock tells nothing about who has one. Each
    attempt is counted before the password is hashed, so simultaneous guesses cannot all be
    evaluated against one reading of the count (issue 15 item 4).
    """
    now = now or datetime.now(UTC)
    key = email.strip().lower()[:MAX_EMAIL_LENGTH]
    if has_forbidden_characters(key):
        # No account has such an address, and PostgreSQL cannot even compare text holding NUL:
        # answer as for any unknown address, after the same hashing work (issue 15 item 11).
        _spend_dummy_check(passwords, password)
        return None
    with engine.begin() as conn:  # the attempt is counted before the slow check (item 15.4)
        attempt = reserve_keyed_attempt(conn, sign_in_throttle, key, now,
                                        max_failures=SIGN_IN_MAX_FAILURES,
                                        lock_seconds=SIGN_IN_LOCK_SECONDS)
    if attempt is None:
        raise SignInLocked(LOCKED_MESSAGE)
    account = _check_password(engine, passwords, key, password)
    if account is not None:
        with engine.begin() as conn:
            conn.execute(delete(sign_in_throttle).where(sign_in_throttle.c.key == key))
        return account
    if attempt >= SIGN_IN_MAX_FAILURES:
        raise SignInLocked(LOCKED_MESSAGE)
    return None


def _spend_dummy_check(passwords: Passwords, password: str) -> None:
    with contextlib.suppress(VerificationError, InvalidHashError):
        passwords.hasher.verify(passwords.dummy_hash, password[:MAX_PASSWORD_LENGTH])


def _check_password(engine: Engine, passwords: Passwords, email: str, password: str) -> Account | None:
    if len(password) > MAX_PASSWORD_LENGTH:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(users_table.c.id, users_table.c.email, users_table.c.encrypted_password)
            .where(func.lower(users_table.c.email) == email)
        ).first()
    stored = row.encrypted_password if row and row.encrypted_password else passwords.dummy_hash
    sealed = row is not None and is_supabase_encrypted(stored)
    if sealed and row is not None:
        # Supabase Auth's database encryption wraps the hash itself (bound to the user id).
        stored = _open_supabase_hash(engine, row.id, stored) or passwords.dummy_hash
    if stored.startswith(BCRYPT_PREFIXES):
        # Supabase Auth's own hashes: checked as they are and never rehashed, because Supabase
        # Auth signs the same person in with the same column.
        if not _bcrypt_matches(stored, password):
            return None
    else:
        try:
            passwords.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
    if row is None or not row.encrypted_password:
        return None
    if not _may_sign_in(engine, row.id):
        return None
    if stored == passwords.dummy_hash:  # a sealed hash that could not be opened
        return None
    if (not sealed and not stored.startswith(BCRYPT_PREFIXES)
            and passwords.hasher.check_needs_rehash(stored)):
        with engine.begin() as conn:
            conn.execute(update(users_table).where(users_table.c.id == row.id)
                         .values(encrypted_password=passwords.hasher.hash(password), updated_at=utcnow()))
    return Account(id=row.id, email=row.email)


def _open_supabase_hash(engine: Engine, user_id: uuid.UUID, stored: str) -> str | None:
    keys = supabase_keys(engine)
    if keys is None:
        log.warning("user %s: password hash in Supabase's encrypted form and no "
                    "OAUTH_SESSIONS_SUPABASE_ENCRYPTION_KEYS configured", user_id)
        return None
    try:
        return keys.decrypt(stored, row_id=user_id)
    except KeyDecryptionError as exc:
        log.warning("user %s: password hash cannot be opened (%s)", user_id, exc)
        return None


#: The bcrypt variants Supabase Auth writes into ``auth.users.encrypted_password`` (Go: ``$2a$``).
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def _bcrypt_matches(stored: str, password: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), stored.encode("ascii"))
    except (ValueError, UnicodeEncodeError):  # over bcrypt's 72 bytes, or a damaged hash
        return False


_ACCOUNT_STATE_COLUMNS = ("banned_until", "deleted_at")
_account_state_columns: weakref.WeakKeyDictionary[Engine, tuple[str, ...]] = (
    weakref.WeakKeyDictionary())


def _may_sign_in(engine: Engine, user_id: uuid.UUID) -> bool:
    """False for a user Supabase Auth has banned (``banned_until`` in the future) or deleted.

    Those columns exist only in Supabase Auth's ``auth.users``; where the table lacks them
    (the demo's own database) every account may sign in.
    """
    if engine.dialect.name != "postgresql":
        return True
    if engine not in _account_state_columns:
        present = {c["name"] for c in inspect(engine).get_columns("users", schema="auth")}
        _account_state_columns[engine] = tuple(c for c in _ACCOUNT_STATE_COLUMNS if c in present)
    columns = _account_state_columns[engine]
    if columns != _ACCOUNT_STATE_COLUMNS:
        return True
    with engine.connect() as conn:
        banned, deleted = conn.execute(text(
            "SELECT banned_until > now(), deleted_at IS NOT NULL FROM auth.users WHERE id = :id"),
            {"id": user_id}).one()
    return not banned and not deleted


def passwords() -> Passwords:
    """The current app's :class:`Passwords`."""
    from flask import current_app

    found: Passwords = current_app.extensions["demo_passwords"]
    return found
