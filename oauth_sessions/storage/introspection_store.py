"""Where introspection reads sessions: the small interface and its implementation on the store.

The pipeline (:mod:`oauth_sessions.core.introspection`) only knows :class:`SessionSource`: a
primary-key read and a refresh-token lookup. :class:`StoreSessions` implements it over the app's
:class:`~oauth_sessions.storage.sessions.SessionStore`; tests implement it with a dict. Nothing here caches
a session row: a revocation must show at the very next introspection.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from psycopg import pq
from sqlalchemy import Engine

from ..core.session_reads import RefreshSession, SessionRow, SessionSource
from .database import named_statements_allowed
from .session_rows import CLIENT_LIVE_SQL, SESSION_COLUMNS_SQL, session_from_text

if TYPE_CHECKING:
    from .sessions import SessionStore

__all__ = ["RefreshSession", "SessionRow", "SessionSource", "StoreSessions"]

log = logging.getLogger(__name__)

_IDLE: Final = pq.TransactionStatus.IDLE
_COMMAND_OK: Final = pq.ExecStatus.COMMAND_OK
_TUPLES_OK: Final = pq.ExecStatus.TUPLES_OK


class _FastPathUnavailable(RuntimeError):
    """The prepared-statement read could not run on this connection (it is then discarded)."""


#: The hot read, as a named server-side prepared statement: the session's columns
#: (:data:`~oauth_sessions.storage.session_rows.SESSION_COLUMNS_SQL`, times as epoch seconds).
_PG_STATEMENT: Final = b"oauth_sessions_introspect_v1"
_PG_SESSION_BY_ID: Final = (
    b"SELECT " + SESSION_COLUMNS_SQL + b" FROM auth.sessions s WHERE s.id = $1 AND " + CLIENT_LIVE_SQL
)


def _round_trip(pgconn: Any, statement: bytes, params: list[bytes] | None) -> Any:
    """One libpq round trip: prepare ``statement`` (``params`` None), execute the prepared read
    (``statement`` empty), or run ``statement`` unnamed with ``params`` (behind a transaction
    pooler: parse, bind and execute in one message flow, nothing left on the server).

    A single function so that a test or the benchmark can count every round trip it makes.
    """
    if params is None:
        return pgconn.prepare(_PG_STATEMENT, statement)
    if statement:
        return pgconn.exec_params(statement, params)
    return pgconn.exec_prepared(_PG_STATEMENT, params)


@dataclass(eq=False, slots=True)
class _Reserved:
    connection: Any  # a psycopg Connection, detached from the SQLAlchemy pool
    #: Whether named statements may stay on it (not behind a transaction pooler:
    #: :func:`oauth_sessions.storage.database.named_statements_allowed`); if not, each runs unnamed.
    named: bool = True
    prepared: bool = False
    #: Names of the refresh path's statements prepared on it (:mod:`oauth_sessions.storage.rotation_pg`).
    statements: set[bytes] = field(default_factory=set)


class ReservedConnections:
    """A small LIFO of connections kept for the introspection read, one set per engine.

    They are made by the engine (so its connect arguments and ``connect`` events apply), then
    detached from its pool, so checking one out costs neither the pool's bookkeeping nor its
    pre-ping. At most ``size`` idle ones are kept; all are closed when the engine goes away.
    After a fork (gunicorn ``--preload``) the parent's connections are left untouched.

    ``disabled`` turns the fast read off for good when a *fresh* connection cannot prepare the
    statement (e.g. PgBouncer in transaction mode before 1.21): retrying would open a connection
    per request.
    """

    def __init__(self, engine: Engine, size: int = 16) -> None:
        self._engine = weakref.ref(engine)  # weak: the per-engine registry must let engines go
        self.disabled = False
        self._size = size
        self._idle: list[_Reserved] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def take(self) -> _Reserved:
        with self._lock:
            if self._pid != os.getpid():
                _INHERITED.extend(self._idle)  # never close the parent's sessions from here
                self._idle.clear()
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop()
        return self.fresh()

    def fresh(self) -> _Reserved:
        """A new connection made by the engine (its pool's pre-ping included), detached."""
        engine = self._engine()
        if engine is None:
            raise _FastPathUnavailable("engine disposed")
        fairy = engine.raw_connection()
        connection = fairy.dbapi_connection  # psycopg's Connection (read before detaching)
        fairy.detach()
        return _Reserved(connection, named=named_statements_allowed(connection))

    def give(self, conn: _Reserved) -> None:
        with self._lock:
            if len(self._idle) < self._size and self._pid == os.getpid():
                self._idle.append(conn)
                return
        _close(conn)

    def discard(self, conn: _Reserved) -> None:
        _close(conn)


_INHERITED: list[_Reserved] = []
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, ReservedConnections] = weakref.WeakKeyDictionary()
_BY_ENGINE_LOCK = threading.Lock()


def reserved_connections(engine: Engine) -> ReservedConnections:
    with _BY_ENGINE_LOCK:
        reserved = _BY_ENGINE.get(engine)
        if reserved is None:
            reserved = _BY_ENGINE[engine] = ReservedConnections(engine)
            weakref.finalize(engine, _close_all, reserved._idle)
    return reserved


def _close(conn: _Reserved) -> None:
    try:
        conn.connection.close()
    except Exception:  # already broken: nothing left to release
        log.debug("closing a reserved introspection connection failed", exc_info=True)


def _close_all(idle: list[_Reserved]) -> None:
    while idle:
        _close(idle.pop())


class StoreSessions:
    """:class:`SessionSource` over the app's :class:`~oauth_sessions.storage.sessions.SessionStore`.

    Access tokens: ``SessionStore.get``, one primary-key SELECT (a prepared libpq read on
    PostgreSQL). Refresh tokens: :meth:`SessionStore.find_refresh_session`, the store's public
    read-only lookup (row + HMAC key + amr in one SELECT, tag checked in constant time); only
    the current counter counts.
    """

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        engine = store.engine
        self._reserved = reserved_connections(engine) if engine.dialect.driver == "psycopg" else None

    def get(self, session_id: uuid.UUID) -> SessionRow | None:
        if self._reserved is not None and not self._reserved.disabled:
            return self._get_prepared(self._reserved, session_id)
        return self.store.get(session_id)

    def _get_prepared(self, reserved: ReservedConnections, session_id: uuid.UUID) -> SessionRow | None:
        """The same primary-key read as ``SessionStore.get``, as exactly one libpq round trip.

        cProfile of the endpoint showed the per-call machinery around the query (pool checkout
        with its pre-ping, cursor, statement cache, row processing) costing several times the
        query itself. So the hot path runs a statement prepared once per connection with
        ``PQexecPrepared`` (behind a transaction pooler, unnamed with ``PQexecParams``),
        outside any transaction block (PostgreSQL autocommits it: no BEGIN/ROLLBACK), reading
        only the columns the pipeline needs, on a connection reserved for it
        (:class:`ReservedConnections`). Disconnects are handled optimistically instead of by
        a ping: on any surprise (a dead connection, a lost prepared statement) the connection is
        dropped and ``SessionStore.get`` answers through the app's pool instead.
        """
        conn = reserved.take()
        try:
            pgconn = conn.connection.pgconn
            if pgconn.transaction_status != _IDLE:
                raise _FastPathUnavailable("connection is inside a transaction")
            params = [str(session_id).encode("ascii")]
            if not conn.named:
                result = _round_trip(pgconn, _PG_SESSION_BY_ID, params)
            else:
                if not conn.prepared:
                    if _round_trip(pgconn, _PG_SESSION_BY_ID, None).status != _COMMAND_OK:
                        reserved.disabled = True
                        raise _FastPathUnavailable("the statement cannot be prepared; fast path off")
                    conn.prepared = True
                result = _round_trip(pgconn, b"", params)
            if result.status != _TUPLES_OK:
                raise _FastPathUnavailable("execute failed")
            found = result.ntuples > 0
        except Exception as exc:
            log.warning("introspection fast path unavailable (%s); using the store",
                        type(exc).__name__ if not isinstance(exc, _FastPathUnavailable) else exc)
            reserved.discard(conn)
            return self.store.get(session_id)
        reserved.give(conn)
        return session_from_text(result, 0) if found else None

    def current_refresh_session(self, token: str) -> RefreshSession | None:
        """The store's read-only lookup; only the current counter counts (RFC 7662 section 2.2).

        A superseded token is inactive here even inside the reuse interval: introspection says
        whether a token may be *used*, and presenting an old one at the token endpoint is at
        best a replay answer, at worst reuse that revokes the session.
        """
        found = self.store.find_refresh_session(token)
        if found is None or not found.is_current:
            return None
        latest = max((e.timestamp for e in found.amr), default=None)
        return RefreshSession(found.session, [e.method for e in found.amr],
                              int(latest.timestamp()) if latest else None)
