"""TOTP factors (RFC 6238) in ``auth.mfa_factors``: enrol, verify once, remove.

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
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyotp
import segno
from sqlalchemy import Engine, Row, and_, delete, insert, or_, select, update

from .db import mfa_factors, utcnow
from .throttle import count_failure, is_locked, not_locked

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


def _factor(row: Row[Any]) -> Factor:
    return Factor(id=row.id, user_id=row.user_id, friendly_name=row.friendly_name,
                  status=row.status, secret=row.secret, created_at=row.created_at)


def start_enrollment(engine: Engine, user_id: uuid.UUID, friendly_name: str = "Authenticator app") -> Factor:
    """A new unverified factor with a fresh 160-bit secret (RFC 4226 section 4, R6).

    Earlier unverified attempts are dropped: only a factor proven by a code counts.
    """
    now = utcnow()
    factor = Factor(id=uuid.uuid4(), user_id=user_id, friendly_name=friendly_name,
                    status="unverified", secret=pyotp.random_base32(length=32), created_at=now)
    with engine.begin() as conn:
        conn.execute(delete(mfa_factors).where(
            and_(mfa_factors.c.user_id == user_id, mfa_factors.c.status == "unverified")))
        conn.execute(insert(mfa_factors).values(
            id=factor.id, user_id=user_id, friendly_name=friendly_name, factor_type="totp",
            status="unverified", secret=factor.secret, created_at=now, updated_at=now))
    return factor


def factor_for(engine: Engine, user_id: uuid.UUID, *, status: str) -> Factor | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(mfa_factors).where(and_(mfa_factors.c.user_id == user_id,
                                           mfa_factors.c.status == status))
            .order_by(mfa_factors.c.created_at.desc())
        ).first()
    return _factor(row) if row else None


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
    right code. The counter lives in the row, so every worker sees the same lock.
    """
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        if is_locked(conn, mfa_factors, mfa_factors.c.id == factor.id, now):
            return Verdict.LOCKED
    step = _matching_step(factor.secret, code, now)
    if step is not None:
        step_start = datetime.fromtimestamp(step * STEP_SECONDS, UTC)
        values: dict[str, object] = {"last_challenged_at": step_start, "updated_at": now,
                                     "failed_attempts": 0, "locked_until": None}
        if mark_verified:
            values["status"] = "verified"
        with engine.begin() as conn:
            accepted = conn.execute(
                update(mfa_factors)
                .where(mfa_factors.c.id == factor.id, not_locked(mfa_factors, now),
                       or_(mfa_factors.c.last_challenged_at.is_(None),
                           mfa_factors.c.last_challenged_at < step_start))
                .values(**values)
            ).rowcount == 1
        if accepted:
            return Verdict.ACCEPTED
    return _count_failure(engine, factor.id, now)


def _count_failure(engine: Engine, factor_id: uuid.UUID, now: datetime) -> Verdict:
    with engine.begin() as conn:
        locked = count_failure(conn, mfa_factors, mfa_factors.c.id == factor_id, now,
                               max_failures=MAX_FAILURES, lock_seconds=LOCK_SECONDS)
    return Verdict.LOCKED if locked else Verdict.REJECTED


def remove_factor(engine: Engine, user_id: uuid.UUID, factor_id: uuid.UUID) -> bool:
    with engine.begin() as conn:
        result = conn.execute(delete(mfa_factors).where(
            and_(mfa_factors.c.id == factor_id, mfa_factors.c.user_id == user_id)))
    return result.rowcount == 1
