"""The refresh path's libpq statements (``oauth_sessions.storage.rotation_pg``) decode rows exactly as
SQLAlchemy does, fall back when prepared statements are refused, and never retry a write."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from freezegun import freeze_time
from sqlalchemy import Engine, text, update
from test_store_support import T0, add_client, add_user, make_store, new_session

from oauth_sessions.core.types import Aal
from oauth_sessions.storage import rotation_pg
from oauth_sessions.storage.introspection_store import reserved_connections
from oauth_sessions.storage.models import Session
from oauth_sessions.storage.session_rows import epoch_time
from oauth_sessions.storage.sessions import SessionStore


@pytest.mark.parametrize(("text_value", "expected"), [
    (b"1893499200", datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)),
    (b"1893499200.000001", datetime(2030, 1, 1, 12, 0, 0, 1, tzinfo=UTC)),
    (b"1893499200.999999", datetime(2030, 1, 1, 12, 0, 0, 999999, tzinfo=UTC)),
    (b"1893499200.5", datetime(2030, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)),
    (b"-1.5", datetime(1969, 12, 31, 23, 59, 58, 500000, tzinfo=UTC)),
    (None, None),
])
def test_epoch_text_is_decoded_to_the_microsecond(text_value: bytes | None,
                                                  expected: datetime | None) -> None:
    assert epoch_time(text_value) == expected


@pytest.mark.postgres
def test_the_libpq_read_gives_the_same_row_as_sqlalchemy(pg_engine: Engine) -> None:
    store = make_store(pg_engine, refresh_token_reuse_interval=10)
    client = add_client(pg_engine)
    factor = uuid.uuid4()
    issued = new_session(store, add_user(pg_engine), client, scopes="openid profile",
                         aal=Aal.AAL2, factor_id=factor, user_agent="agent/1 ünïcode",
                         ip="2001:db8::1", tag="laptop", amr=["pwd", "totp"],
                         now=T0 + timedelta(microseconds=123457))
    with pg_engine.begin() as conn:  # a refreshed_at with microseconds (naive UTC column)
        conn.execute(update(Session.__table__).where(Session.__table__.c.id == issued.session.id)
                     .values(refreshed_at=datetime(2030, 1, 1, 12, 0, 5, 654321)))
    found = store.find_refresh_session(issued.refresh_token)  # the libpq read on PostgreSQL
    assert found is not None and found.session == store.get(issued.session.id)  # SQLAlchemy
    assert found.session.refreshed_at == datetime(2030, 1, 1, 12, 0, 5, 654321, tzinfo=UTC)
    assert found.session.ip == "2001:db8::1" and found.session.factor_id == factor
    assert sorted(a.method for a in found.amr) == ["pwd", "totp"]


@pytest.mark.postgres
def test_the_swap_returns_the_row_after_the_write(pg_engine: Engine,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A downgrade that lands between the read and the swap shows in the new tokens at once."""
    store = make_store(pg_engine)
    client = add_client(pg_engine)
    issued = new_session(store, add_user(pg_engine), client, aal=Aal.AAL2, factor_id=uuid.uuid4(),
                         now=T0)
    original = rotation_pg.PgStatements.cas

    def downgrade_first(self: Any, *args: Any) -> Any:
        store.set_aal(issued.session.id, Aal.AAL1)  # does not move the counter
        return original(self, *args)

    monkeypatch.setattr(rotation_pg.PgStatements, "cas", downgrade_first)
    with freeze_time(T0 + timedelta(seconds=30, microseconds=5)):
        result = store.rotate(issued.refresh_token, client_id=client, user_agent="next/2",
                              ip="192.0.2.7")
    assert result.session == store.get(issued.session.id)
    assert result.session.aal is Aal.AAL1 and result.session.factor_id is None
    assert result.session.counter == 1 and result.session.user_agent == "next/2"
    assert result.session.refreshed_at == T0 + timedelta(seconds=30, microseconds=5)


def _one_session(engine: Engine) -> tuple[SessionStore, uuid.UUID, Any]:
    """A store, a client and a fresh session of it (counter 0)."""
    store = make_store(engine)
    client = add_client(engine)
    return store, client, new_session(store, add_user(engine), client)


@pytest.mark.postgres
def test_refused_prepared_statements_fall_back_to_sqlalchemy(
        pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a pooler that refuses PREPARE, the refresh still works, through the ordinary path."""
    store, client, issued = _one_session(pg_engine)
    reserved = reserved_connections(pg_engine)
    monkeypatch.setattr(reserved, "disabled", False)  # restored after the test
    while reserved._idle:  # fresh connections from here on: nothing prepared on them yet
        reserved.discard(reserved._idle.pop())
    monkeypatch.setattr(rotation_pg, "READ_SQL", b"SELECT * FROM auth.no_such_table WHERE id = $1")
    result = store.rotate(issued.refresh_token, client_id=client)
    assert result.session.counter == 1
    assert reserved.disabled  # and it stays off: no PREPARE attempt per request


@pytest.mark.postgres
def test_a_failed_write_is_not_retried_and_reaches_the_caller(
        pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compare-and-swap that may have committed must not run twice: the error goes up (503)."""
    store, client, issued = _one_session(pg_engine)
    calls: list[bytes] = []
    original = rotation_pg.PgStatements._run

    def lose_connection_on_write(self: Any, name: bytes, sql: bytes, params: Any) -> Any:
        calls.append(name)
        if sql is rotation_pg.CAS_SQL:
            with pg_engine.connect() as other:
                pid = self._conn.connection.info.backend_pid
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                other.commit()
        return original(self, name, sql, params)

    monkeypatch.setattr(rotation_pg.PgStatements, "_run", lose_connection_on_write)
    with pytest.raises(psycopg.OperationalError):
        store.rotate(issued.refresh_token, client_id=client)
    assert calls.count(b"oauth_sessions_rotate_cas_v1") == 1
    assert store.get(issued.session.id).counter == 0  # terminated before the UPDATE ran
