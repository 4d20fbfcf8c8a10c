"""Consecutive-failure locks for guessable secrets (passwords, TOTP codes).

NIST SP 800-63B section 5.2.2 asks verifiers to limit consecutive failed attempts on one
account. The count lives in the database row of what is being guessed (the TOTP factor, or
the e-mail address being signed in to), so every worker sees the same lock and a restart
does not reset it. A lock refuses everything until it ends, the right secret included;
a success clears the count.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, bindparam, case, or_, select, update
from sqlalchemy.exc import IntegrityError

from oauth_sessions.core.types import UTCDateTime


def is_locked(conn: Connection, table: Table, where: Any, now: datetime) -> bool:
    locked_until = conn.execute(select(table.c.locked_until).where(where)).scalar()
    return locked_until is not None and now < locked_until


def not_locked(table: Table, now: datetime) -> Any:
    """SQL condition: the row is not locked at ``now`` (a lock ends exactly at ``locked_until``)."""
    return or_(table.c.locked_until.is_(None), table.c.locked_until <= now)


def count_failure(conn: Connection, table: Table, where: Any, now: datetime, *,
                  max_failures: int, lock_seconds: int) -> bool:
    """Add one failure in one UPDATE; the one that reaches ``max_failures`` starts a lock.

    Returns whether the row is locked now. Counting restarts from zero after a lock.
    """
    reaches_limit = table.c.failed_attempts + 1 >= max_failures
    lock_end = bindparam("lock_end", now + timedelta(seconds=lock_seconds), type_=UTCDateTime)
    conn.execute(update(table).where(where).values(
        failed_attempts=case((reaches_limit, 0), else_=table.c.failed_attempts + 1),
        locked_until=case((reaches_limit, lock_end), else_=table.c.locked_until),
        updated_at=now,
    ))
    return is_locked(conn, table, where, now)


def reserve_keyed_attempt(conn: Connection, table: Table, key: str, now: datetime, *,
                          max_failures: int, lock_seconds: int) -> int | None:
    """Count one attempt for ``key`` *before* its secret is checked; ``None`` while locked.

    The caller then runs the slow check and clears the row on success. Reserving first, in one
    conditional ``UPDATE``, is what makes the limit hold under concurrency: of any number of
    simultaneous attempts at most ``max_failures`` get past this point before the lock (the
    WHERE clause is re-checked against the row as committed by the others, on PostgreSQL as on
    SQLite, which serialises writers). The attempt that reaches ``max_failures`` starts the lock
    at once; if its secret turns out right, the caller's clearing ends it. Returns the attempt's
    number (1 after a lock ran out: counting restarts).
    """
    where = table.c.key == key
    if conn.execute(select(table.c.key).where(where)).first() is None:
        try:
            with conn.begin_nested():
                conn.execute(table.insert().values(key=key, failed_attempts=0, updated_at=now))
        except IntegrityError:  # another request inserted it first: count on its row
            pass
    lock_ran_out = table.c.locked_until.is_not(None)
    attempt = case((lock_ran_out, 1), else_=table.c.failed_attempts + 1)
    lock_end = bindparam("lock_end", now + timedelta(seconds=lock_seconds), type_=UTCDateTime)
    row = conn.execute(
        update(table).where(where, not_locked(table, now))
        .values(failed_attempts=attempt,
                locked_until=case((attempt >= max_failures, lock_end), else_=None),
                updated_at=now)
        .returning(table.c.failed_attempts)
    ).first()
    return None if row is None else int(row.failed_attempts)
