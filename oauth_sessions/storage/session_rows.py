"""The row model of ``auth.sessions``: what a session is once read, and how every statement reads it.

One place for the shape of a session row, so no statement, store or pipeline reads one by
position:

* :class:`SessionInfo`, the frozen snapshot every reader gets (never the HMAC key), and
  :class:`AmrEntry`, one of its ``auth.mfa_amr_claims``;
* :data:`FIELDS`, each attribute of :class:`SessionInfo` beside the column it comes from, in the
  order every statement selects them;
* from that list, the SQLAlchemy column list (:data:`SESSION_COLUMNS`, labelled with the
  attribute names) and the libpq select list (:data:`SESSION_COLUMNS_SQL`, times as epoch
  seconds), and their two decoders, :func:`session_from_row` (a SQLAlchemy row, by name) and
  :func:`session_from_text` (a libpq text result, by the column's number, computed once here);
* the one condition that makes a row count as a session at all (:data:`CLIENT_LIVE` and its
  SQL text :data:`CLIENT_LIVE_SQL`).

The rules in :mod:`oauth_sessions.core` read sessions through the narrower
:class:`~oauth_sessions.core.session_reads.SessionRow` protocol, which :class:`SessionInfo`
satisfies (mypy checks it where the store hands one to the pipeline).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, cast

from sqlalchemy import Label, Table, bindparam, exists, or_

from ..core.policy import parse_scope
from ..core.types import Aal
from .models import MfaAmrClaim, OAuthClient, Session

__all__ = [
    "AMR_CLAIMS", "CLIENT_LIVE", "CLIENT_LIVE_SQL", "FIELDS", "NOT_EXPIRED_AT_B_NOW", "SESSIONS",
    "SESSION_COLUMNS", "SESSION_COLUMNS_SQL", "SESSION_WIDTH", "AmrEntry", "Field", "KeyedSession",
    "SessionInfo", "amr_entries", "epoch_time", "session_from_mapping", "session_from_row",
    "session_from_text",
]

SESSIONS: Final = cast(Table, Session.__table__)
AMR_CLAIMS: Final = cast(Table, MfaAmrClaim.__table__)
_CLIENTS: Final = cast(Table, OAuthClient.__table__)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """An immutable snapshot of one ``auth.sessions`` row, without its HMAC key."""

    id: uuid.UUID
    user_id: uuid.UUID
    client_id: uuid.UUID | None
    scopes: tuple[str, ...]
    aal: Aal
    factor_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime | None
    refreshed_at: datetime | None  # aware UTC here; naive UTC in the column
    not_after: datetime | None
    user_agent: str | None
    ip: str | None
    tag: str | None
    counter: int | None


@dataclass(frozen=True, slots=True)
class AmrEntry:
    """One authentication method reference (RFC 8176) and when it last happened."""

    method: str
    timestamp: datetime


# -- decoding, one function per kind of value ---------------------------------------------------

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _aware(value: datetime | None) -> datetime | None:
    """``refreshed_at`` is naive UTC in the column (Supabase Auth's choice): read it as UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _same(value: Any) -> Any:
    return value


def _aal(value: str | None) -> Aal:
    return Aal(value) if value else Aal.AAL1


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8")


def _text_uuid(value: bytes | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value.decode("ascii"))


def _text_scopes(value: bytes | None) -> tuple[str, ...]:
    return parse_scope(None if value is None else value.decode("utf-8"))


def _text_aal(value: bytes | None) -> Aal:
    return Aal(value.decode("ascii")) if value else Aal.AAL1


def _text_int(value: bytes | None) -> int | None:
    return None if value is None else int(value)


def epoch_time(value: bytes | None) -> datetime | None:
    """``extract(epoch ...)`` text (``1764576000.123456``) as an aware UTC datetime, exactly.

    Parsed as text, not through ``float``, so every microsecond survives. Two or four of these
    per session row on every introspection and refresh: ``int`` reads the bytes as they are and
    ``timedelta`` takes its arguments by position (both measurably cheaper than decoding first
    and passing keywords).
    """
    if value is None:
        return None
    seconds, _, fraction = value.partition(b".")
    whole = int(seconds)
    micros = int(fraction[:6].ljust(6, b"0")) if fraction else 0
    if whole < 0 and micros:  # -1.5 is -2 s + 500000 µs
        whole, micros = whole - 1, 1_000_000 - micros
    return _EPOCH + timedelta(0, whole, micros)


# -- the columns ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """One attribute of :class:`SessionInfo`: its column and how each driver's value becomes it."""

    name: str
    column: str
    from_sql: Callable[[Any], Any]  # a SQLAlchemy result value (column types applied)
    from_text: Callable[[bytes | None], Any]  # a libpq text value
    epoch: bool = False  # libpq statements read it as epoch seconds


FIELDS: Final[tuple[Field, ...]] = (
    Field("id", "id", _same, _text_uuid),
    Field("user_id", "user_id", _same, _text_uuid),
    Field("client_id", "oauth_client_id", _same, _text_uuid),
    Field("scopes", "scopes", parse_scope, _text_scopes),
    Field("aal", "aal", _aal, _text_aal),
    Field("factor_id", "factor_id", _same, _text_uuid),
    Field("created_at", "created_at", _utc, epoch_time, epoch=True),
    Field("updated_at", "updated_at", _utc, epoch_time, epoch=True),
    Field("refreshed_at", "refreshed_at", _aware, epoch_time, epoch=True),
    Field("not_after", "not_after", _utc, epoch_time, epoch=True),
    Field("user_agent", "user_agent", _same, _text),
    Field("ip", "ip", lambda ip: None if ip is None else str(ip), _text),
    Field("tag", "tag", _same, _text),
    Field("counter", "refresh_token_counter", _same, _text_int),
)
if tuple(f.name for f in FIELDS) != tuple(f.name for f in fields(SessionInfo)):
    raise RuntimeError("FIELDS must list every SessionInfo attribute, in order")

#: The session's columns for SQLAlchemy statements (``select``, ``returning``), each labelled
#: with its :class:`SessionInfo` attribute name, so rows are read by name.
SESSION_COLUMNS: Final[tuple[Label[Any], ...]] = tuple(
    SESSIONS.c[f.column].label(f.name) for f in FIELDS)

#: The same columns as libpq select-list text on ``auth.sessions s``; times as epoch seconds
#: (``refreshed_at`` is naive UTC: its epoch is taken as UTC), so no timestamp text is parsed.
SESSION_COLUMNS_SQL: Final[bytes] = ", ".join(
    f"extract(epoch FROM s.{f.column}) AS {f.name}" if f.epoch else f"s.{f.column} AS {f.name}"
    for f in FIELDS
).encode("ascii")

#: How many columns :data:`SESSION_COLUMNS_SQL` takes: a statement's own extra columns follow.
SESSION_WIDTH: Final = len(FIELDS)

#: A session of a soft-deleted client (``deleted_at`` set, by this library or by Supabase Auth,
#: which leaves the sessions in place) reads as no session at all, in the same statement.
CLIENT_LIVE: Final = ~exists().where(_CLIENTS.c.id == SESSIONS.c.oauth_client_id,
                                     _CLIENTS.c.deleted_at.is_not(None))
#: The session has not reached ``not_after`` at the time bound as ``b_now``.
NOT_EXPIRED_AT_B_NOW: Final = or_(SESSIONS.c.not_after.is_(None),
                                  SESSIONS.c.not_after > bindparam("b_now", type_=SESSIONS.c.not_after.type))
#: :data:`CLIENT_LIVE` as SQL text on ``auth.sessions s``, for the libpq statements.
CLIENT_LIVE_SQL: Final = (
    b"NOT EXISTS (SELECT 1 FROM auth.oauth_clients c "
    b"WHERE c.id = s.oauth_client_id AND c.deleted_at IS NOT NULL)"
)


class _NamedRow(Protocol):
    """A SQLAlchemy ``Row`` as this module reads it: by name, through its mapping."""

    @property
    def _mapping(self) -> Mapping[Any, Any]: ...


def session_from_row(row: _NamedRow) -> SessionInfo:
    """A SQLAlchemy row that includes :data:`SESSION_COLUMNS`, read by their names."""
    return session_from_mapping(row._mapping)


def session_from_mapping(values: Mapping[Any, Any]) -> SessionInfo:
    """Values by :class:`SessionInfo` attribute name (a ``RowMapping``, a psycopg ``dict_row``)."""
    return SessionInfo(*[decode(values[name]) for name, decode in _SQL_DECODERS])


def session_from_text(result: Any, line: int) -> SessionInfo:
    """Line ``line`` of a libpq result whose columns start with :data:`SESSION_COLUMNS_SQL`."""
    value = result.get_value
    return SessionInfo(*[decode(value(line, column)) for column, decode in _TEXT_DECODERS])


# Built once from FIELDS, whose order is SessionInfo's (checked above), so each decoded value
# lands on its attribute; the libpq column numbers are those of SESSION_COLUMNS_SQL.
_SQL_DECODERS: Final = tuple((f.name, f.from_sql) for f in FIELDS)
_TEXT_DECODERS: Final = tuple(enumerate(f.from_text for f in FIELDS))


@dataclass(frozen=True, slots=True)
class KeyedSession:
    """What the refresh path's read returns: the session, its stored HMAC key, its amr claims.

    ``hmac_key`` is the column as stored (possibly encrypted; ``None`` for a session that has
    no key, which no refresh token can name). It never leaves the storage layer.
    """

    session: SessionInfo
    hmac_key: str | None
    amr: tuple[AmrEntry, ...]
    #: RFC 8707 resources granted to the session (``oauth_session_resources``); empty: none.
    resources: tuple[str, ...] = ()


def amr_entries(claims: Iterable[tuple[str | None, datetime | None]]) -> tuple[AmrEntry, ...]:
    """(method, time) pairs of a LEFT JOIN on ``auth.mfa_amr_claims``, oldest first.

    A session without claims joins to one line of NULLs, which is skipped.
    """
    entries = [AmrEntry(method, _utc(at)) for method, at in claims  # type: ignore[arg-type]
               if method]
    return tuple(sorted(entries, key=lambda e: e.timestamp))
