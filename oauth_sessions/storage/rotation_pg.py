"""The refresh path's statements on PostgreSQL: prepared once per connection, run through libpq.

:class:`~oauth_sessions.storage.rotation.Rotator` sends at most three statements per refresh (the read,
the compare-and-swap, and on reuse the delete). On PostgreSQL with psycopg they run here, on one
of the engine's reserved connections (shared with introspection,
:mod:`oauth_sessions.storage.introspection_store`): no pool checkout, no pre-ping, no ``BEGIN``/``COMMIT``
(each statement autocommits outside a transaction block). The read and the compare-and-swap go
straight to libpq's ``PQexecPrepared`` with text parameters and text results, because psycopg's
per-call machinery (cursor, adapters, loaders) cost more CPU than the statements themselves;
times come back as epoch seconds and are decoded exactly (to the microsecond). The rare delete
uses psycopg's ``Connection.execute``. Behind a transaction pooler
(:func:`oauth_sessions.storage.database.named_statements_allowed` says no) the read and the
compare-and-swap run unnamed through ``PQexecParams`` instead, and psycopg's
``prepare_threshold = None`` keeps the delete unprepared: no statement outlives its transaction.

Failures: a reserved connection found dead by the read (nothing written yet) is replaced by a
fresh one from the engine and the read retried once. Any other failure raises a psycopg error,
which the endpoints answer with 503 (connection trouble) or 500; a write is never retried, since
it may have committed.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg import pq
from psycopg.rows import dict_row

from ..core.resource_indicators import split_resources
from .introspection_store import ReservedConnections
from .session_rows import (
    CLIENT_LIVE_SQL,
    SESSION_COLUMNS_SQL,
    SESSION_WIDTH,
    KeyedSession,
    SessionInfo,
    amr_entries,
    epoch_time,
    session_from_mapping,
    session_from_text,
)

__all__ = ["CAS_SQL", "READ_SQL", "PgStatements", "PreparedUnavailable", "read_sql"]

log = logging.getLogger(__name__)

_READ_NAME: Final = b"oauth_sessions_rotate_read_v2"
_CAS_NAME: Final = b"oauth_sessions_rotate_cas_v1"
#: The row (:data:`~oauth_sessions.storage.session_rows.SESSION_COLUMNS_SQL`), its HMAC key, and
#: one line per amr claim; nothing for a soft-deleted client's session.
#: The granted RFC 8707 resources come from the library's table by the same primary key, in
#: the same statement (no round trip more for them); ``"oauth_sessions".`` is replaced by the
#: configured library schema (:func:`read_sql`).
READ_SQL: Final = (
    b"SELECT " + SESSION_COLUMNS_SQL + b", s.refresh_token_hmac_key AS hmac_key, "
    b"a.authentication_method AS amr_method, extract(epoch FROM a.updated_at) AS amr_at, "
    b"r.resources AS resources "
    b"FROM auth.sessions s LEFT OUTER JOIN auth.mfa_amr_claims a ON a.session_id = s.id "
    b'LEFT OUTER JOIN "oauth_sessions".oauth_session_resources r ON r.session_id = s.id '
    b"WHERE s.id = $1 AND " + CLIENT_LIVE_SQL
)
#: Where ``READ_SQL``'s own columns are, after the session's.
_HMAC_KEY, _AMR_METHOD, _AMR_AT, _RESOURCES = range(SESSION_WIDTH, SESSION_WIDTH + 4)
_DEFAULT_SCHEMA: Final = b'"oauth_sessions".'


def read_sql(schema: str) -> bytes:
    """:data:`READ_SQL` for a library schema of another name (checked as an identifier by the
    settings)."""
    if schema == "oauth_sessions":
        return READ_SQL
    return READ_SQL.replace(_DEFAULT_SCHEMA, b'"' + schema.encode("ascii") + b'".')
#: Counter n -> n + 1 only if it is still n and the session has not reached ``not_after``;
#: the row as it is after the write (a lowered aal, say, shows in the new tokens at once).
CAS_SQL: Final = (
    b"UPDATE auth.sessions AS s SET refresh_token_counter = s.refresh_token_counter + 1, "
    b"refreshed_at = $3, updated_at = $4, user_agent = $5, ip = $6 "
    b"WHERE s.id = $1 AND s.refresh_token_counter = $2 AND (s.not_after IS NULL OR s.not_after > $4) "
    b"RETURNING " + SESSION_COLUMNS_SQL
)
_OK: Final = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
_CONNECTION_OK: Final = pq.ConnStatus.OK


class PreparedUnavailable(RuntimeError):
    """The server refused to prepare a statement (e.g. a pooler in transaction mode).

    Raised before the statement ran, so nothing was written: the caller may run the whole
    refresh again on the ordinary path, which the reserved connections' ``disabled`` flag (set
    here) selects from now on.
    """


def _keyed_session(result: Any) -> KeyedSession | None:
    """``READ_SQL``'s lines: the session (the same on every line), its key, its amr claims."""
    if not result.ntuples:
        return None
    value = result.get_value
    key = value(0, _HMAC_KEY)
    resources = value(0, _RESOURCES) if result.nfields > _RESOURCES else None
    return KeyedSession(
        session_from_text(result, 0), None if key is None else key.decode("utf-8"),
        amr_entries((_method(value(i, _AMR_METHOD)), epoch_time(value(i, _AMR_AT)))
                    for i in range(result.ntuples)),
        split_resources(None if resources is None else resources.decode("ascii")))


def _method(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8")


class PgStatements:
    """The rotation statements on one reserved connection, for the length of one refresh."""

    def __init__(self, reserved: ReservedConnections, delete_sql: str,
                 schema: str = "oauth_sessions") -> None:
        self._reserved = reserved
        self._delete_sql = delete_sql
        self._schema = schema
        self._conn = reserved.take()

    def read(self, sid: uuid.UUID) -> KeyedSession | None:
        try:
            result = self._run(_READ_NAME, read_sql(self._schema), [str(sid).encode("ascii")])
        except (psycopg.OperationalError, psycopg.InterfaceError):
            if not self._dead():
                raise
            # Died while idle (database restart, idle timeout): nothing was written, so read
            # once more on a new connection made by the engine (its pool pre-pings it).
            log.info("reserved connection was dead; reading the session on a fresh one")
            self._reserved.discard(self._conn)
            self._conn = self._reserved.fresh()
            result = self._run(_READ_NAME, read_sql(self._schema), [str(sid).encode("ascii")])
        return _keyed_session(result)

    def cas(self, sid: uuid.UUID, counter: int, now: datetime, user_agent: str | None,
            ip: str | None) -> SessionInfo | None:
        """The row after this call moved the counter from ``counter`` on, or None if it did not."""
        result = self._run(_CAS_NAME, CAS_SQL, [
            str(sid).encode("ascii"), str(counter).encode("ascii"),
            now.replace(tzinfo=None).isoformat().encode("ascii"),  # refreshed_at: naive UTC
            now.isoformat().encode("ascii"),
            None if user_agent is None else user_agent.encode("utf-8"),
            None if ip is None else ip.encode("ascii"),
        ])
        return session_from_text(result, 0) if result.ntuples else None

    def delete(self, sid: uuid.UUID) -> SessionInfo | None:
        """The reuse answer's ``DELETE ... RETURNING`` (rare: psycopg's ordinary path).

        ``prepare=True`` is a no-op on a connection with ``prepare_threshold = None``.
        """
        pg = self._conn.connection
        if not pg.autocommit:
            pg.autocommit = True
        cursor = pg.cursor(row_factory=dict_row)
        row = cursor.execute(self._delete_sql, {"b_sid": sid}, prepare=True).fetchone()
        return None if row is None else session_from_mapping(row)

    def release(self) -> None:
        if self._dead():
            self._reserved.discard(self._conn)
        else:
            self._reserved.give(self._conn)

    def _run(self, name: bytes, sql: bytes, params: list[bytes | None]) -> Any:
        pgconn = self._conn.connection.pgconn
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            # Only ever left like this by a failed call; autocommit statements need it idle.
            raise psycopg.InterfaceError("reserved connection is not idle")
        if not self._conn.named:  # behind a transaction pooler: nothing outlives the statement
            return self._check(pgconn.exec_params(sql, params), pgconn)
        if name not in self._conn.statements:
            prepared = pgconn.prepare(name, sql)
            if prepared.status not in _OK and pgconn.status == _CONNECTION_OK:
                self._reserved.disabled = True
                raise PreparedUnavailable("the server refused a prepared statement")
            self._check(prepared, pgconn)
            self._conn.statements.add(name)
        return self._check(pgconn.exec_prepared(name, params), pgconn)

    @staticmethod
    def _check(result: Any, pgconn: Any) -> Any:
        if result.status in _OK:
            return result
        if pgconn.status != _CONNECTION_OK:
            raise psycopg.OperationalError("the database connection was lost")
        sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
        raise psycopg.DatabaseError(
            f"refresh statement failed (sqlstate {sqlstate.decode() if sqlstate else '-'})")

    def _dead(self) -> bool:
        pg = self._conn.connection
        return bool(pg.broken or pg.closed or pg.pgconn.status != _CONNECTION_OK)
