"""The session read behind introspection on PostgreSQL: one round trip, and what happens when
the database misbehaves (lost prepared statements, killed backends, poolers, outages).

The fast read (``introspection_store``) bypasses SQLAlchemy's pool and cursor, so these tests
count at the driver and break things on purpose to check that every failure falls back to
``SessionStore.get`` or answers 503, and never ``active: false`` for a good token nor a 500.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

import psycopg
import pytest
from factories import basic_auth, make_app
from sqlalchemy import Engine
from test_introspection_endpoint import INACTIVE, Provider, provider, sid_of

from oauth_sessions import get_state
from oauth_sessions.storage import introspection_store
from oauth_sessions.storage.database import create_auth_engine


@pytest.mark.postgres
def test_one_primary_key_select_per_introspection(pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted at the driver: every psycopg statement (a pool pre-ping is one: SQLAlchemy sends
    ``;``) and every libpq round trip of the prepared read."""
    p = provider(pg_engine)
    tokens = [p.tokens()["access_token"] for _ in range(3)]
    p.answer(tokens[0])  # first use parses the keys, caches the caller, prepares the statement
    sent: list[str] = []
    original_execute, original_round_trip = psycopg.Cursor.execute, introspection_store._round_trip

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return original_execute(self, query, *args, **kwargs)

    def round_trip(pgconn: Any, statement: bytes, params: Any) -> Any:
        sent.append("prepare" if params is None else "execute prepared session read")
        return original_round_trip(pgconn, statement, params)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    monkeypatch.setattr(introspection_store, "_round_trip", round_trip)
    for token in tokens:
        assert p.answer(token)["active"] is True
    monkeypatch.undo()
    # Exactly one round trip each: no pool pre-ping, no BEGIN/ROLLBACK, no client query.
    assert sent == ["execute prepared session read"] * len(tokens)


def test_the_prepared_read_and_the_store_read_give_the_same_session(engine: Engine) -> None:
    """The hot path reads the row its own way; it must agree with ``SessionStore.get``, field by
    field (both decode into the one row model, ``session_rows.SessionInfo``)."""
    p = provider(engine, inactivity_timeout=3600)
    tokens = p.tokens()
    sid = sid_of(tokens["access_token"])
    refreshed = p.http.post("/oauth/token", data={"grant_type": "refresh_token",
                                                  "refresh_token": tokens["refresh_token"]},
                            headers={"Authorization": basic_auth(p.client.client_id, p.secret)})
    assert refreshed.status_code == 200
    source = introspection_store.StoreSessions(p.sessions)
    fast, reference = source.get(sid), p.sessions.get(sid)
    assert fast is not None and reference is not None
    assert fast == reference
    assert reference.refreshed_at is not None
    assert source.get(uuid.uuid4()) is None


def _reserved(p: Provider) -> list[Any]:
    """The idle connections the fast read keeps for this engine (after one introspection)."""
    idle: list[Any] = introspection_store.reserved_connections(get_state(p.app).engine)._idle
    assert idle, "the fast read should have kept its connection"
    return idle


@pytest.mark.postgres
@pytest.mark.parametrize("accident", ["prepared statements lost", "server ended the connection"])
def test_a_broken_reserved_connection_falls_back_to_the_store_and_is_replaced(
        pg_engine: Engine, caplog: pytest.LogCaptureFixture, accident: str) -> None:
    p = provider(pg_engine)
    token = p.tokens()["access_token"]
    assert p.answer(token)["active"] is True
    connection = _reserved(p)[-1].connection
    if accident == "prepared statements lost":
        connection.execute("DEALLOCATE ALL")
    else:
        with pg_engine.connect() as admin:
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({connection.info.backend_pid})")
    with caplog.at_level("WARNING", logger="oauth_sessions.storage.introspection_store"):
        assert p.answer(token)["active"] is True
    assert "fast path unavailable" in caplog.text
    assert connection.closed
    caplog.clear()
    with caplog.at_level("WARNING", logger="oauth_sessions.storage.introspection_store"):
        assert p.answer(token)["active"] is True  # on a fresh connection, prepared again
        p.sessions.revoke(sid_of(token), reason="test")
        assert p.answer(token) == INACTIVE
    assert "fast path unavailable" not in caplog.text


@pytest.mark.postgres
def test_a_database_outage_answers_503_never_inactive_nor_500(pg_engine: Engine) -> None:
    """Saying ``active: false`` while the database is away would log users out of every API."""
    p = provider(pg_engine)
    token = p.tokens()["access_token"]
    assert p.answer(token)["active"] is True
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    gone = create_auth_engine(f"postgresql://postgres@127.0.0.1:{closed_port}/nowhere",
                              connect_args={"connect_timeout": 2})
    try:
        down = make_app(gone)
        response = down.test_client().post("/oauth/introspect", data={"token": token},
                                           headers=p.rs_auth)
    finally:
        gone.dispose()
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert "Retry-After" in response.headers


@pytest.mark.postgres
def test_a_server_that_cannot_prepare_turns_the_fast_read_off_for_good(
        pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a pooler that refuses prepared statements, retrying would cost a connection per call."""
    p = provider(pg_engine)
    token = p.tokens()["access_token"]
    reserved = introspection_store.reserved_connections(get_state(p.app).engine)
    monkeypatch.setattr(reserved, "_idle", [])  # only fresh connections from here on
    calls: list[str] = []
    original = introspection_store._round_trip

    def refuse_prepare(pgconn: Any, statement: bytes, params: Any) -> Any:
        calls.append("prepare" if params is None else "execute")
        if params is None:
            return pgconn.exec_(b"SELECT * FROM no_such_table_here")  # any failed status
        return original(pgconn, statement, params)

    monkeypatch.setattr(introspection_store, "_round_trip", refuse_prepare)
    try:
        for _ in range(3):
            assert p.answer(token)["active"] is True  # answered by SessionStore.get
    finally:
        reserved.disabled = False
    assert calls == ["prepare"]
