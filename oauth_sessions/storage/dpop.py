"""DPoP session key bindings in the library's schema.

:class:`DpopBindings` holds the thumbprint a public client's session is bound to (RFC 9449
section 5): written in the transaction that creates the session, read only when a refresh
token says its session is bound (:mod:`oauth_sessions.core.refresh_tokens`), so refreshes of
unbound sessions never read it. One-time proof ``jti`` values are the replay ledger's
(:class:`~oauth_sessions.storage.replay_ledger.DpopReplayLedger`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Engine, Table, insert, select

from .models import OAuthDpopBinding

__all__ = ["DpopBindings"]

_BINDINGS = cast(Table, OAuthDpopBinding.__table__)


class DpopBindings:
    """The key a session is bound to, by session id."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @staticmethod
    def bind(conn: Connection, session_id: uuid.UUID, jkt: str, now: datetime) -> None:
        """Bind ``session_id`` to ``jkt`` inside the caller's transaction (the session's own)."""
        conn.execute(insert(_BINDINGS).values(session_id=session_id, jkt=jkt, created_at=now))

    def jkt(self, session_id: uuid.UUID, *, conn: Connection | None = None) -> str | None:
        """The thumbprint ``session_id`` is bound to, or None (on ``conn`` when given)."""
        stmt = select(_BINDINGS.c.jkt).where(_BINDINGS.c.session_id == session_id)
        if conn is not None:
            return conn.execute(stmt).scalar_one_or_none()
        with self._engine.connect() as own:
            return own.execute(stmt).scalar_one_or_none()
