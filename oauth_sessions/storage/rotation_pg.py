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
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import pq

from .introspection_store import CLIENT_LIVE_SQL, ReservedConnections

__all__ = ["CAS_SQL", "READ_SQL", "PgStatements", "PreparedUnavailable"]

log = logging.getLogger(__name__)

_READ_NAME: Final = b"oauth_sessions_rotate_read_v1"
_CAS_NAME: Final = b"oauth_sessions_rotate_cas_v1"
#: The row in ``rotation._INFO_COLUMNS`` order, times as epoch seconds.
_INFO: Final = (
    b"s.id, s.user_id, s.oauth_client_id, s.scopes, s.aal, s.factor_id, "
    b"extract(epoch FROM s.created_at), extract(epoch FROM s.updated_at), "
    b"extract(epoch FROM s.refreshed_at), extract(epoch FROM s.not_after), s.user_agent, s.ip, "
    b"s.tag, s.refresh_token_counter"
)
#: The row, its HMAC key, and one line per amr claim; nothing for a soft-deleted client's session.
READ_SQL: Final = (
    b"SELECT " + _INFO + b", s.refresh_token_hmac_key, a.authentication_method, "
    b"extract(epoch FROM a.updated_at) "
    b"FROM auth.sessions s LEFT OUTER JOIN auth.mfa_amr_claims a ON a.session_id = s.id "
    b"WHERE s.id = $1 AND " + CLIENT_LIVE_SQL
)
#: Counter n -> n + 1 only if it is still n and the session has not reached ``not_after``;
#: the row as it is after the write (a lowered aal, say, shows in the new tokens at once).
CAS_SQL: Final = (
    b"UPDATE auth.sessions AS s SET refresh_token_counter = s.refresh_token_counter + 1, "
    b"refreshed_at = $3, updated_at = $4, user_agent = $5, ip = $6 "
    b"WHERE s.id = $1 AND s.refresh_token_counter = $2 AND (s.not_after IS NULL OR s.not_after > $4) "
    b"RETURNING " + _INFO
)
_OK: Final = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
_CONNECTION_OK: Final = pq.ConnStatus.OK
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class PreparedUnavailable(RuntimeError):
    """The server refused to prepare a statement (e.g. a pooler in transaction mode).

    Raised before the statement ran, so nothing was written: the caller may run the whole
    refresh again on the ordinary path, which the reserved connections' ``disabled`` flag (set
    here) selects from now on.
    """


def _uuid(value: bytes | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value.decode("ascii"))


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8")


def _time(value: bytes | None) -> datetime | None:
    """``extract(epoch ...)`` text (``1764576000.123456``) as an aware UTC datetime, exactly."""
    if value is None:
        return None
    seconds, _, fraction = value.decode("ascii").partition(".")
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    whole = int(seconds)
    if whole < 0 and micros:  # -1.5 is -2 s + 500000 µs
        whole, micros = whole - 1, 1_000_000 - micros
    return _EPOCH + timedelta(seconds=whole, microseconds=micros)


def _row(result: Any, i: int) -> tuple[Any, ...]:
    """One result line in the layout ``rotation`` decodes (that of its SQLAlchemy ``_READ``)."""
    v = [result.get_value(i, c) for c in range(result.nfields)]
    row = (
        _uuid(v[0]), _uuid(v[1]), _uuid(v[2]), _text(v[3]), _text(v[4]), _uuid(v[5]),
        _time(v[6]), _time(v[7]), _time(v[8]), _time(v[9]), _text(v[10]), _text(v[11]),
        _text(v[12]), None if v[13] is None else int(v[13]),
    )
    if len(v) == 14:  # the compare-and-swap's RETURNING
        return row
    return (*row, _text(v[14]), _text(v[15]), _time(v[16]))


class PgStatements:
    """The rotation statements on one reserved connection, for the length of one refresh."""

    def __init__(self, reserved: ReservedConnections, delete_sql: str) -> None:
        self._reserved = reserved
        self._delete_sql = delete_sql
        self._conn = reserved.take()

    def read(self, sid: uuid.UUID) -> Sequence[tuple[Any, ...]]:
        try:
            result = self._run(_READ_NAME, READ_SQL, [str(sid).encode("ascii")])
        except (psycopg.OperationalError, psycopg.InterfaceError):
            if not self._dead():
                raise
            # Died while idle (database restart, idle timeout): nothing was written, so read
            # once more on a new connection made by the engine (its pool pre-pings it).
            log.info("reserved connection was dead; reading the session on a fresh one")
            self._reserved.discard(self._conn)
            self._conn = self._reserved.fresh()
            result = self._run(_READ_NAME, READ_SQL, [str(sid).encode("ascii")])
        return [_row(result, i) for i in range(result.ntuples)]

    def cas(self, sid: uuid.UUID, counter: int, now: datetime, user_agent: str | None,
            ip: str | None) -> tuple[Any, ...] | None:
        """The row after this call moved the counter from ``counter`` on, or None if it did not."""
        result = self._run(_CAS_NAME, CAS_SQL, [
            str(sid).encode("ascii"), str(counter).encode("ascii"),
            now.replace(tzinfo=None).isoformat().encode("ascii"),  # refreshed_at: naive UTC
            now.isoformat().encode("ascii"),
            None if user_agent is None else user_agent.encode("utf-8"),
            None if ip is None else ip.encode("ascii"),
        ])
        return _row(result, 0) if result.ntuples else None

    def delete(self, sid: uuid.UUID) -> Any:
        """The reuse answer's ``DELETE ... RETURNING`` (rare: psycopg's ordinary path).

        ``prepare=True`` is a no-op on a connection with ``prepare_threshold = None``.
        """
        pg = self._conn.connection
        if not pg.autocommit:
            pg.autocommit = True
        return pg.execute(self._delete_sql, {"b_sid": sid}, prepare=True).fetchone()

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
