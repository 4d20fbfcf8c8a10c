"""Signals from inside a caller's transaction wait for its COMMIT and die with its ROLLBACK.

``SessionStore.create_session(conn=...)`` runs in the caller's transaction. A receiver acts on
``session_revoked`` (a back-channel logout) and ``session_created``, so neither may be sent for
a change the caller then rolls back, nor before the caller's COMMIT is issued.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from test_store_support import T0, add_client, add_user, make_store, new_session, recording

from oauth_sessions.core import signals
from oauth_sessions.storage.models import Session

SIGNALS = (signals.session_created, signals.session_revoked)


def _sessions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Session.__table__)).scalar_one())


def _setup(engine: Engine) -> tuple[Any, uuid.UUID, uuid.UUID, Any]:
    store = make_store(engine, single_session_per_client=True)
    user, client = add_user(engine), add_client(engine)
    first = new_session(store, user, client, now=T0)
    return store, user, client, first


def test_rollback_sends_nothing_and_keeps_the_old_session(engine: Engine) -> None:
    store, user, client, first = _setup(engine)
    with recording(*SIGNALS) as events, engine.connect() as conn:
        new_session(store, user, client, conn=conn, now=T0)
        assert events == []  # the statements ran; nothing is committed yet
        conn.rollback()
    assert events == []
    assert store.get(first.session.id) is not None and _sessions(engine) == 1


def test_closing_without_commit_is_a_rollback_too(engine: Engine) -> None:
    store, user, client, _ = _setup(engine)
    with recording(*SIGNALS) as events:
        with engine.connect() as conn:
            new_session(store, user, client, conn=conn, now=T0)
        with engine.begin() as conn:  # a later transaction on a new connection
            conn.execute(select(1))
    assert events == [] and _sessions(engine) == 1


def test_commit_sends_each_signal_exactly_once_and_only_at_commit(engine: Engine) -> None:
    store, user, client, first = _setup(engine)
    with recording(*SIGNALS) as events, engine.connect() as conn:
        second = new_session(store, user, client, conn=conn, now=T0)
        assert events == []
        conn.commit()
        assert [name for name, _ in events] == [signals.session_revoked.name,
                                               signals.session_created.name]
        conn.commit()  # a second, empty commit announces nothing again
        conn.rollback()
    assert len(events) == 2
    (_, revoked), (_, created) = events
    assert revoked["session"].id == first.session.id and revoked["reason"] == "superseded"
    assert created["session"].id == second.session.id
    assert store.get(first.session.id) is None and store.get(second.session.id) is not None


def test_two_changes_in_one_transaction_are_both_announced_at_its_commit(engine: Engine) -> None:
    store = make_store(engine)
    user, client = add_user(engine), add_client(engine)
    with recording(signals.session_created) as events, engine.begin() as conn:
        a = new_session(store, user, client, conn=conn, now=T0)
        b = new_session(store, user, client, conn=conn, now=T0)
        assert events == []
    assert [kw["session"].id for _, kw in events] == [a.session.id, b.session.id]


def test_a_rolled_back_transaction_leaves_nothing_for_the_next_commit(engine: Engine) -> None:
    store = make_store(engine)
    user, client = add_user(engine), add_client(engine)
    with recording(signals.session_created) as events, engine.connect() as conn:
        new_session(store, user, client, conn=conn, now=T0)
        conn.rollback()
        kept = new_session(store, user, client, conn=conn, now=T0)
        conn.commit()
    assert [kw["session"].id for _, kw in events] == [kept.session.id]


def test_without_conn_the_store_commits_and_sends_at_once(engine: Engine) -> None:
    store = make_store(engine)
    with recording(signals.session_created) as events:
        issued = new_session(store, add_user(engine), add_client(engine), now=T0)
    assert [kw["session"].id for _, kw in events] == [issued.session.id]


def test_an_autocommit_connection_sends_at_once(engine: Engine) -> None:
    store = make_store(engine)
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    with recording(signals.session_created) as events, autocommit.connect() as conn:
        issued = new_session(store, add_user(engine), add_client(engine), conn=conn, now=T0)
        assert [kw["session"].id for _, kw in events] == [issued.session.id]


def test_a_failing_receiver_does_not_stop_the_callers_commit(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(engine)
    user, client = add_user(engine), add_client(engine)

    def broken(sender: object, **kw: Any) -> None:
        raise RuntimeError("receiver bug")

    signals.session_created.connect(broken)
    try:
        with (caplog.at_level(logging.ERROR, logger="oauth_sessions.storage.after_commit"),
              engine.begin() as conn):
            issued = new_session(store, user, client, conn=conn, now=T0)
    finally:
        signals.session_created.disconnect(broken)
    assert store.get(issued.session.id) is not None
    assert "receiver failed" in caplog.text and issued.refresh_token not in caplog.text
