"""Issue 18 item 1: the library behind PgBouncer in transaction pooling mode (and session, and direct).

Behind a transaction pooler each transaction may run on a different server connection, so a
server-side prepared statement made in one transaction may be missing in the next (26000), exist
already (42P05), or, worst, carry the same name as *another* client's statement (psycopg names its
automatic ones ``_pg3_0``, ``_pg3_1``... per client connection) and return that statement's rows.
The races below run through a PgBouncer the test starts with few server connections, with the
default settings (the library detects the pooler) and with the setting spelled out: 16 threads x
25 rounds of refresh, introspection and code exchange, each answer checked against what the
rules say, never a 5xx.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from factories import (
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
    user_headers,
)
from flask import Flask
from pgbouncer_support import Bouncer, pgbouncer
from sqlalchemy import Engine, text

from oauth_sessions import get_state
from oauth_sessions.storage.database import create_auth_engine, pooler_of
from oauth_sessions.storage.introspection_store import reserved_connections

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

THREADS = 16
ROUNDS = 25
T = TypeVar("T")


@pytest.fixture
def transaction_bouncer(pg_url: str) -> Iterator[Bouncer]:
    with pgbouncer(pg_url, mode="transaction") as bouncer:
        yield bouncer


@pytest.fixture(params=["auto", "transaction"])
def pooled_app(request: pytest.FixtureRequest, transaction_bouncer: Bouncer, pg_url: str,
               pg_engine: Engine) -> Iterator[Flask]:
    """The provider on an engine through the transaction pooler; ``auto`` is the default."""
    engine = create_auth_engine(transaction_bouncer.url(pg_url), pooler=request.param)
    app = make_app(engine, refresh_token_reuse_interval=30,
                   database_pooler=request.param)
    yield app
    engine.dispose()


def _race(work: Callable[[int], T]) -> list[T]:
    """``work(i)`` for i in 0..THREADS-1, all released at the same instant."""
    barrier = threading.Barrier(THREADS)

    def run(i: int) -> T:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(run, range(THREADS)))


def _provider(app: Flask) -> tuple[Any, str, str]:
    client, secret = create_client(app, scopes="openid profile offline_access")
    assert secret
    return client, secret, basic_auth(client.client_id, secret)


def _tokens(app: Flask, client: Any, secret: str, user: uuid.UUID) -> dict[str, Any]:
    http = app.test_client()
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge, headers=user_headers(user))["code"]
    response = exchange_code(http, client, secret, code, verifier)
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def _counter(engine: Engine, sid: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT refresh_token_counter FROM auth.sessions WHERE id = :i"),
                                {"i": sid}).scalar_one())


def _sid(app: Flask, token: str, rs_auth: str) -> str:
    answer = app.test_client().post("/oauth/introspect", data={"token": token},
                                    headers={"Authorization": rs_auth}).json
    return str(answer["sid"])


def test_issue18_item1_refresh_race_through_a_transaction_pooler_advances_once_per_round(
        pooled_app: Flask, pg_engine: Engine) -> None:
    client, secret, auth = _provider(pooled_app)
    rs, rs_secret = create_client(pooled_app, name="rs", can_introspect=True)
    assert rs_secret
    issued = _tokens(pooled_app, client, secret, create_user(pg_engine))
    token = issued["refresh_token"]
    sid = _sid(pooled_app, issued["access_token"], basic_auth(rs.client_id, rs_secret))
    for round_no in range(1, ROUNDS + 1):
        def refresh(_: int, current: str = token) -> tuple[int, dict[str, Any]]:
            r = pooled_app.test_client().post(
                "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": current},
                headers={"Authorization": auth})
            return r.status_code, r.json

        answers = _race(refresh)
        assert all(status < 500 for status, _ in answers), (round_no, answers)
        # Concurrent duplicates inside the reuse interval get the winner's answer (design.md):
        # every caller the same new refresh token, and the counter moved by exactly one.
        assert [status for status, _ in answers] == [200] * THREADS, (round_no, answers)
        new_tokens = {body["refresh_token"] for _, body in answers}
        assert len(new_tokens) == 1, (round_no, new_tokens)
        assert _counter(pg_engine, sid) == round_no
        token = new_tokens.pop()


def test_issue18_item1_introspection_race_through_a_transaction_pooler_reads_only_its_own_row(
        pooled_app: Flask, pg_engine: Engine) -> None:
    client, secret, _ = _provider(pooled_app)
    rs, rs_secret = create_client(pooled_app, name="rs", can_introspect=True)
    assert rs_secret
    rs_auth = basic_auth(rs.client_id, rs_secret)
    users = [create_user(pg_engine) for _ in range(THREADS)]
    issued = [_tokens(pooled_app, client, secret, user) for user in users]
    sids = [_sid(pooled_app, t["access_token"], rs_auth) for t in issued]

    def introspect(i: int) -> list[tuple[int, Any]]:
        http = pooled_app.test_client()
        seen = []
        for token in (issued[i]["access_token"],) * 2:  # refresh tokens: only their own client
            r = http.post("/oauth/introspect", data={"token": token},
                          headers={"Authorization": rs_auth})
            seen.append((r.status_code, r.json))
        return seen

    for round_no in range(ROUNDS):
        for i, seen in enumerate(_race(introspect)):
            for status, body in seen:
                assert status == 200, (round_no, i, status, body)
                # Another statement's rows would show as another session, another user, or
                # as inactive: each answer must describe exactly this caller's session.
                assert body["active"] is True, (round_no, i, body)
                assert (body["sid"], body["sub"]) == (sids[i], str(users[i])), (round_no, i, body)


def test_issue18_item1_code_exchange_race_through_a_transaction_pooler_issues_one_grant(
        pooled_app: Flask, pg_engine: Engine) -> None:
    client, secret, _ = _provider(pooled_app)
    user = create_user(pg_engine)
    http = pooled_app.test_client()
    for round_no in range(ROUNDS):
        verifier, challenge = pkce_pair()
        code = obtain_code(http, client, user, challenge, headers=user_headers(user))["code"]

        def exchange(_: int, code: str = code, verifier: str = verifier) -> tuple[int, Any]:
            r = exchange_code(pooled_app.test_client(), client, secret, code, verifier)
            return r.status_code, r.json

        answers = _race(exchange)
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200] + [400] * (THREADS - 1), (round_no, answers)
        assert all(body["error"] == "invalid_grant" for status, body in answers if status == 400)


def test_issue18_item1_the_pooler_is_detected_and_named_statements_stay_off_behind_it(
        transaction_bouncer: Bouncer, pg_url: str) -> None:
    """Default ``auto``: behind PgBouncer no prepared statement; direct, the fast path stays."""
    through = create_auth_engine(transaction_bouncer.url(pg_url))
    direct = create_auth_engine(pg_url)
    try:
        with through.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert pooler_of(raw) == "transaction"
            assert raw.prepare_threshold is None  # type: ignore[union-attr]
        with direct.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert pooler_of(raw) == "none"
            assert raw.prepare_threshold == 5  # type: ignore[union-attr]
        # The reserved connections follow their engine's connections.
        reserved = reserved_connections(through).fresh()
        try:
            assert pooler_of(reserved.connection) == "transaction"
            assert reserved.named is False
        finally:
            reserved.connection.close()
    finally:
        through.dispose()
        direct.dispose()


def test_issue18_item1_session_pooler_setting_keeps_prepared_statements(pg_url: str) -> None:
    with pgbouncer(pg_url, mode="session") as bouncer:
        engine = create_auth_engine(bouncer.url(pg_url), pooler="session")
        try:
            with engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                assert pooler_of(raw) == "session"
                assert raw.prepare_threshold == 5  # type: ignore[union-attr]
        finally:
            engine.dispose()


def test_issue18_item1_the_extension_passes_the_setting_to_the_engine_it_makes(
        transaction_bouncer: Bouncer, pg_url: str) -> None:
    app = Flask("pooler-setting")
    app.config["SECRET_KEY"] = "test"
    from oauth_sessions import OAuthSessions

    OAuthSessions(app, issuer="http://127.0.0.1:5000", database_url=pg_url,
                  database_pooler="transaction")
    engine = get_state(app).engine
    try:
        with engine.connect() as conn:
            assert pooler_of(conn.connection.dbapi_connection) == "transaction"
    finally:
        engine.dispose()
