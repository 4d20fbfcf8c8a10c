"""DPoP state in the library's schema: one-time proof ``jti`` values and session key bindings.

:class:`DpopReplayLedger` makes a proof one-time across every worker (RFC 9449 section 11.1):
the ``jti`` (hashed with the key's thumbprint, so one client cannot use up another's values) is
inserted into ``oauth_dpop_proofs`` and the primary key refuses a second insert, whichever
worker makes it. :class:`DpopBindings` holds the thumbprint a public client's session is bound
to (section 5): written in the transaction that creates the session, read only when a refresh
token says its session is bound (:mod:`oauth_sessions.core.refresh_tokens`), so refreshes of
unbound sessions never read it.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Connection, Engine, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError

from .models import OAuthDpopBinding, OAuthDpopProof

__all__ = ["DpopBindings", "DpopReplayLedger"]

_PROOFS = cast(Table, OAuthDpopProof.__table__)
_BINDINGS = cast(Table, OAuthDpopBinding.__table__)


class DpopReplayLedger:
    """One-time use of proof ``jti`` values, shared by every worker through the database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def consume(self, jkt: str, jti: str, expires_at: datetime, *,
                now: datetime | None = None) -> bool:
        """Record ``jti`` of key ``jkt``; False when it was recorded before (a replay).

        Committed on its own: the record must hold even if the request fails afterwards, or a
        failed request would leave its proof usable again. Records already expired go in the
        same transaction (as for client assertions), so the table stays small without a cron.
        """
        digest = hashlib.sha256(f"{jkt}:{jti}".encode()).hexdigest()
        cutoff = now or datetime.now(UTC)
        try:
            with self._engine.begin() as conn:
                conn.execute(delete(_PROOFS).where(_PROOFS.c.expires_at < cutoff))
                conn.execute(insert(_PROOFS).values(jti_hash=digest, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    def purge(self, *, now: datetime | None = None) -> int:
        """Forget the ``jti`` of proofs too old to be accepted anyway."""
        cutoff = now or datetime.now(UTC)
        with self._engine.begin() as conn:
            return int(conn.execute(delete(_PROOFS).where(_PROOFS.c.expires_at < cutoff)).rowcount)


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
