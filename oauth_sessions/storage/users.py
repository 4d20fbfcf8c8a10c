"""The host's users as ``auth.users`` rows: sessions reference them by foreign key.

A host app keeps its own user table; the library needs only a row with the same
id in ``auth.users`` so that sessions can point at it and die with it. A host calls
:func:`oauth_sessions.ensure_user` when a person signs in (it is idempotent and cheap), which
runs :func:`ensure_user` here on the app's engine.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.exc import IntegrityError

from .models import User

__all__ = ["ensure_user"]


def ensure_user(engine: Engine, user_id: uuid.UUID, *, email: str | None = None) -> bool:
    """Make sure ``auth.users`` of ``engine`` has ``user_id``; True when a row was created.

    Two workers signing the same person in at once both succeed: the loser of the
    insert race sees the primary-key conflict and reports that nothing was created.
    """
    table = User.__table__
    assert isinstance(table, Table)
    with engine.connect() as conn:
        if conn.execute(select(table.c.id).where(table.c.id == user_id)).first() is not None:
            return False
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            conn.execute(insert(table).values(id=user_id, email=email, created_at=now,
                                              updated_at=now))
    except IntegrityError:
        with engine.connect() as conn:
            if conn.execute(select(table.c.id).where(table.c.id == user_id)).first() is None:
                raise  # a different conflict (e.g. the e-mail is taken by another id)
        return False
    return True
