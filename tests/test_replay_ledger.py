"""The one replay ledger (``storage/replay_ledger.py``): a ``jti`` is accepted once per owner,
across workers, for client assertions (OIDC Core section 9, RFC 7523 section 3) and DPoP proofs
(RFC 9449 section 11.1) alike. Each test runs on both ledgers; time is passed in explicitly."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from factories import create_client, make_app
from sqlalchemy import Engine, Table, func, select

from oauth_sessions.storage.models import OAuthClientAssertion, OAuthDpopProof
from oauth_sessions.storage.replay_ledger import (
    ClientAssertionLedger,
    DpopReplayLedger,
    ReplayLedger,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Case:
    engine: Engine
    ledger: ReplayLedger[Any]
    table: Table
    owners: tuple[Any, Any]

    def rows(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.table)).scalar_one())


LEDGERS = ["client assertions", "DPoP proofs"]


def _case(which: str, engine: Engine) -> Case:
    """The ledger and two owners of its kind (clients exist: assertions reference them)."""
    app = make_app(engine)
    if which == "client assertions":
        clients = create_client(app)[0], create_client(app)[0]
        return Case(engine, ClientAssertionLedger(engine), cast(Table, OAuthClientAssertion.__table__),
                    (clients[0].id, clients[1].id))
    return Case(engine, DpopReplayLedger(engine), cast(Table, OAuthDpopProof.__table__),
                ("thumbprint-a", "thumbprint-b"))


@pytest.fixture(params=LEDGERS)
def case(request: pytest.FixtureRequest, engine: Engine) -> Case:
    return _case(request.param, engine)


@pytest.fixture(params=LEDGERS)
def pg_case(request: pytest.FixtureRequest, pg_engine: Engine) -> Case:
    return _case(request.param, pg_engine)


@pytest.mark.postgres
def test_sixteen_racing_workers_consume_one_jti_exactly_once(pg_case: Case) -> None:
    """Sixteen threads, each on its own connection, present the same jti at once: the primary
    key lets one insert through and refuses the fifteen others."""
    owner = pg_case.owners[0]
    expires = datetime.now(UTC) + timedelta(minutes=2)
    barrier = threading.Barrier(16)
    results: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        won = pg_case.ledger.consume(owner, "the-jti", expires)
        with lock:
            results.append(won)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 15 + [True]
    assert pg_case.rows() == 1


def test_a_jti_is_one_time_per_owner_and_stored_only_as_a_hash(case: Case) -> None:
    a, b = case.owners
    expires = T0 + timedelta(minutes=1)
    assert case.ledger.consume(a, "jti", expires, now=T0)
    assert case.ledger.consume(b, "jti", expires, now=T0)  # another owner's value is its own
    assert not case.ledger.consume(a, "jti", expires, now=T0)
    with case.engine.connect() as conn:
        hashes = set(conn.execute(select(case.table.c.jti_hash)).scalars())
    # The hash of "owner:jti", as both ledgers wrote it before they were one: live rows stay valid.
    assert hashes == {hashlib.sha256(f"{o}:jti".encode()).hexdigest() for o in (a, b)}


def test_each_consume_clears_the_owners_expired_records(case: Case) -> None:
    owner = case.owners[0]
    assert case.ledger.consume(owner, "a", T0 + timedelta(seconds=10), now=T0)
    assert case.ledger.consume(owner, "b", T0 + timedelta(seconds=20), now=T0 + timedelta(seconds=10))
    assert case.rows() == 2  # "a" expires at exactly 10 s: kept (only strictly earlier goes)
    assert case.ledger.consume(owner, "c", T0 + timedelta(seconds=60), now=T0 + timedelta(seconds=11))
    assert case.rows() == 2
    # A forgotten jti is accepted again, which is safe: its token has expired by then.
    assert case.ledger.consume(owner, "a", T0 + timedelta(seconds=90), now=T0 + timedelta(seconds=11))


def test_purge_forgets_exactly_the_expired_records(case: Case) -> None:
    a, b = case.owners
    assert case.ledger.consume(a, "old", T0 + timedelta(seconds=30), now=T0)
    assert case.ledger.consume(b, "live", T0 + timedelta(seconds=31), now=T0)
    assert case.ledger.purge(now=T0 + timedelta(seconds=30)) == 0
    assert case.ledger.purge(now=T0 + timedelta(seconds=31)) == 1
    assert not case.ledger.consume(b, "live", T0 + timedelta(seconds=31), now=T0)


def test_the_purge_command_empties_both_ledgers_of_expired_records(engine: Engine) -> None:
    app = make_app(engine)
    client = create_client(app)[0]
    now = datetime.now(UTC)
    assertions, proofs = ClientAssertionLedger(engine), DpopReplayLedger(engine)
    for ledger, owner in ((assertions, client.id), (proofs, "thumbprint")):
        assert ledger.consume(owner, "old", now - timedelta(seconds=1), now=now - timedelta(minutes=1))
        assert ledger.consume(owner, "live", now + timedelta(minutes=2), now=now - timedelta(minutes=1))
    result = app.test_cli_runner().invoke(args=["oauth-sessions", "purge"])
    assert result.exit_code == 0, result.output
    assert "1 client assertions, 1 DPoP proofs" in result.output
    assert not assertions.consume(client.id, "live", now + timedelta(minutes=2))
    assert not proofs.consume("thumbprint", "live", now + timedelta(minutes=2))
