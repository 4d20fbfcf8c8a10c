"""Racing refreshes on PostgreSQL (READ COMMITTED): the counter moves once, everyone gets one answer.

Threads share one engine (as gunicorn threads do); processes each make their own engine (as
gunicorn workers do). A barrier releases every caller at the same moment.
"""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine
from test_store_support import add_client, add_user, make_settings, make_store, new_session

from oauth_sessions.core import errors
from oauth_sessions.core.refresh_tokens import parse_refresh_token
from oauth_sessions.storage.database import create_auth_engine
from oauth_sessions.storage.sessions import SessionStore

pytestmark = pytest.mark.postgres

THREADS = 12
ROUNDS = 5


def _race(store: SessionStore, token: str, client: uuid.UUID) -> list[Any]:
    barrier = threading.Barrier(THREADS)

    def present() -> Any:
        barrier.wait()
        try:
            return store.rotate(token, client_id=client)
        except Exception as exc:  # collected: the assertion below names any failure
            return exc

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda _: present(), range(THREADS)))


def test_threads_presenting_the_same_token_advance_the_counter_exactly_once(pg_engine: Engine) -> None:
    store = make_store(pg_engine, refresh_token_reuse_interval=30)
    user, client = add_user(pg_engine), add_client(pg_engine)
    issued = new_session(store, user, client)
    oldest = token = issued.refresh_token
    for round_number in range(1, ROUNDS + 1):
        results = _race(store, token, client)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == []
        assert {r.refresh_token for r in results} == {results[0].refresh_token}
        assert sum(not r.replayed for r in results) == 1
        assert store.get(issued.session.id).counter == round_number  # type: ignore[union-attr]
        token = results[0].refresh_token
        assert parse_refresh_token(token).counter == round_number
    with pytest.raises(errors.RefreshTokenReused):
        store.rotate(oldest, client_id=client)
    assert store.get(issued.session.id) is None
    with pytest.raises(errors.UnknownSession):
        store.rotate(token, client_id=client)


def test_a_reuse_racing_refreshes_revokes_and_nobody_gets_a_500(pg_engine: Engine) -> None:
    store = make_store(pg_engine, refresh_token_reuse_interval=30)
    user, client = add_user(pg_engine), add_client(pg_engine)
    issued = new_session(store, user, client)
    first = store.rotate(issued.refresh_token, client_id=client)
    current = store.rotate(first.refresh_token, client_id=client)
    barrier = threading.Barrier(THREADS)

    def present(i: int) -> Any:
        barrier.wait()
        try:  # half present the stale token 0, half the current one
            return store.rotate(issued.refresh_token if i % 2 else current.refresh_token,
                                client_id=client)
        except errors.OAuthSessionsError as exc:
            return exc

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(present, range(THREADS)))
    assert all(isinstance(r, errors.OAuthSessionsError) or r.session.counter == 3 for r in results)
    assert any(isinstance(r, errors.RefreshTokenReused) for r in results)
    assert store.get(issued.session.id) is None


def _worker(url: str, token: str, client: str, barrier: Any, queue: Any) -> None:
    engine = create_auth_engine(url)
    store = SessionStore(engine, make_settings(refresh_token_reuse_interval=30))
    try:
        barrier.wait()
        result = store.rotate(token, client_id=uuid.UUID(client))
        queue.put(("ok", result.refresh_token, result.replayed))
    except Exception as exc:
        queue.put(("error", repr(exc), False))
    finally:
        engine.dispose()


@pytest.mark.slow
def test_processes_presenting_the_same_token_advance_the_counter_exactly_once(
    pg_url: str, pg_engine: Engine
) -> None:
    store = make_store(pg_engine, refresh_token_reuse_interval=30)
    user, client = add_user(pg_engine), add_client(pg_engine)
    issued = new_session(store, user, client)
    context = multiprocessing.get_context("spawn")
    token = issued.refresh_token
    for round_number in (1, 2):
        barrier, queue = context.Barrier(2), context.Queue()
        procs = [context.Process(target=_worker, args=(pg_url, token, str(client), barrier, queue))
                 for _ in range(2)]
        for proc in procs:
            proc.start()
        answers = [queue.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
            assert proc.exitcode == 0
        assert [a[0] for a in answers] == ["ok", "ok"], answers
        assert answers[0][1] == answers[1][1]
        assert sorted(a[2] for a in answers) == [False, True]
        assert store.get(issued.session.id).counter == round_number  # type: ignore[union-attr]
        token = answers[0][1]
    with pytest.raises(errors.RefreshTokenReused):
        store.rotate(issued.refresh_token, client_id=client)
    assert store.get(issued.session.id) is None
