"""TOTP factors (RFC 6238): enrol, verify once, remove.

The factors are in ``auth.mfa_factors`` where that table exists (Supabase Auth's: its verified
TOTP factors work here as they are, with its parameters, SHA-1, six digits, 30 seconds, and a
secret stored as base32 text or in Supabase's ``aes-gcm-hkdf`` form bound to the factor id),
else in the demo's own table (:mod:`demo_server.db`). The replay guard and the lockout live in
the demo's ``demo_factor_state`` either way, never in Supabase's table.

Pure storage and code checking; the pages are in ``mfa.py``. A code is accepted
for the current 30-second step and one step either side (RFC 6238 section 5.2
allows a small window for clock drift), and only if its step is later than the
last accepted one, so an observed code cannot be replayed. The check and the
record of the accepted step are one conditional UPDATE, so two requests carrying
the same code cannot both pass. Five wrong codes in a row lock the factor for
five minutes.
"""

from __future__ import annotations

import enum
import hmac
import io
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyotp
import segno
from sqlalchemy import Connection, Engine, Row, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from oauth_sessions.storage.key_encryption import KeyDecryptionError, is_supabase_encrypted

from .db import factor_state, factor_storage, utcnow
from .throttle import count_failure, is_locked, not_locked

log = logging.getLogger(__name__)

ISSUER_NAME = "oauth_sessions demo"
STEP_SECONDS = 30
DRIFT_STEPS = 1
MAX_FAILURES = 5
LOCK_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Factor:
    id: uuid.UUID
    user_id: uuid.UUID
    friendly_name: str | None
    status: str
    secret: str
    created_at: datetime


def _factor(engine: Engine, row: Row[Any]) -> Factor | None:
    secret = row.secret
    if secret and is_supabase_encrypted(secret):
        keys = factor_storage(engine).supabase_keys
        try:
            if keys is None:
                raise KeyDecryptionError("no Supabase root keys configured")
            secret = keys.decrypt(secret, row_id=row.id)
        except KeyDecryptionError as exc:
            log.warning("TOTP factor %s: its secret cannot be read (%s)", row.id, exc)
            return None
    if not secret:
        return None
    return Factor(id=row.id, user_id=row.user_id, friendly_name=row.friendly_name,
                  status=str(row.status), secret=secret, created_at=row.created_at)


def start_enrollment(engine: Engine, user_id: uuid.UUID, friendly_name: str = "Authenticator app") -> Factor:
    """A new unverified factor with a fresh 160-bit secret (RFC 4226 section 4, R6).

    Earlier unverified attempts are dropped: only a factor proven by a code counts. In
    Supabase's table the row is one Supabase Auth reads as well (base32 secret, as it writes
    when its database encryption is off); it gets no name there, since Supabase keeps names
    unique per user.
    """
    now = utcnow()
    storage = factor_storage(engine)
    table = storage.table
    factor = Factor(id=uuid.uuid4(), user_id=user_id, friendly_name=friendly_name,
                    status="unverified", secret=pyotp.random_base32(length=32), created_at=now)
    with engine.begin() as conn:
        conn.execute(delete(table).where(and_(
            table.c.user_id == user_id, table.c.status == "unverified",
            table.c.factor_type == "totp")))
        conn.execute(insert(table).values(
            id=factor.id, user_id=user_id,
            friendly_name=None if storage.supabase else friendly_name, factor_type="totp",
            status="unverified", secret=factor.secret, created_at=now, updated_at=now))
    return factor


def factor_for(engine: Engine, user_id: uuid.UUID, *, status: str) -> Factor | None:
    """The person's newest TOTP factor with ``status`` whose secret can be read."""
    table = factor_storage(engine).table
    with engine.connect() as conn:
        rows = conn.execute(
            select(table).where(and_(table.c.user_id == user_id, table.c.status == status,
                                     table.c.factor_type == "totp"))
            .order_by(table.c.created_at.desc())
        ).all()
    return next((f for f in (_factor(engine, row) for row in rows) if f is not None), None)


def provisioning_uri(factor: Factor, email: str) -> str:
    return pyotp.TOTP(factor.secret).provisioning_uri(name=email, issuer_name=ISSUER_NAME)


def qr_svg(uri: str) -> str:
    """The ``otpauth://`` URI as an inline SVG QR code (no image service, no CDN)."""
    out = io.BytesIO()
    # No width/height, only a viewBox: the stylesheet sizes it without clipping.
    segno.make(uri, error="m").save(out, kind="svg", border=4, xmldecl=False, svgns=True,
                                    omitsize=True, title="QR code for your authenticator app",
                                    dark="#1d2433")
    return out.getvalue().decode()


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code equals ``code`` (within the drift window), compared in constant time."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            found = step
    return found


class Verdict(enum.StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # wrong, malformed, or already used
    LOCKED = "locked"  # too many wrong codes: no code is checked until the lock ends


def verify_code(engine: Engine, factor: Factor, code: str, *, now: datetime | None = None,
                mark_verified: bool = False) -> Verdict:
    """Accept ``code`` once for ``factor``; optionally mark an enrolling factor verified.

    A six-digit code has a million values and three of them are valid at any moment, so
    guessing must be throttled (NIST SP 800-63B section 5.2.2): after ``MAX_FAILURES``
    consecutive failures the factor accepts nothing for ``LOCK_SECONDS``, not even the
    right code. The counter lives in the factor's ``demo_factor_state`` row, so every worker
    sees the same lock.
    """
    now = now or datetime.now(UTC)
    table = factor_storage(engine).table
    where = factor_state.c.factor_id == factor.id
    with engine.connect() as conn:
        if is_locked(conn, factor_state, where, now):
            return Verdict.LOCKED
    step = _matching_step(factor.secret, code, now)
    if step is not None:
        step_start = datetime.fromtimestamp(step * STEP_SECONDS, UTC)
        with engine.begin() as conn:
            _ensure_state(conn, factor.id, now)
            accepted = conn.execute(
                update(factor_state)
                .where(where, not_locked(factor_state, now),
                       or_(factor_state.c.last_step_at.is_(None),
                           factor_state.c.last_step_at < step_start))
                .values(last_step_at=step_start, updated_at=now, failed_attempts=0,
                        locked_until=None)
            ).rowcount == 1
            if accepted and mark_verified:
                conn.execute(update(table).where(table.c.id == factor.id)
                             .values(status="verified", updated_at=now))
        if accepted:
            return Verdict.ACCEPTED
    return _count_failure(engine, factor.id, now)


def _ensure_state(conn: Connection, factor_id: uuid.UUID, now: datetime) -> None:
    """The factor's row in ``demo_factor_state`` exists (a factor Supabase Auth made has none yet)."""
    if conn.execute(select(factor_state.c.factor_id)
                    .where(factor_state.c.factor_id == factor_id)).first() is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(factor_state).values(factor_id=factor_id, failed_attempts=0,
                                                         updated_at=now))
        except IntegrityError:  # another request inserted it first
            pass


def _count_failure(engine: Engine, factor_id: uuid.UUID, now: datetime) -> Verdict:
    with engine.begin() as conn:
        _ensure_state(conn, factor_id, now)
        locked = count_failure(conn, factor_state, factor_state.c.factor_id == factor_id, now,
                               max_failures=MAX_FAILURES, lock_seconds=LOCK_SECONDS)
    return Verdict.LOCKED if locked else Verdict.REJECTED


def remove_factor(engine: Engine, user_id: uuid.UUID, factor_id: uuid.UUID) -> bool:
    table = factor_storage(engine).table
    with engine.begin() as conn:
        result = conn.execute(delete(table).where(
            and_(table.c.id == factor_id, table.c.user_id == user_id,
                 table.c.factor_type == "totp")))
        conn.execute(delete(factor_state).where(factor_state.c.factor_id == factor_id))
    return result.rowcount == 1
