"""``flask oauth-sessions purge`` on PostgreSQL at volume, while traffic flows.

The purge must delete exactly the sessions past ``not_after``, in short index-driven batches,
and never stand in the way of a refresh of a live session.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from factories import create_user, make_app
from sqlalchemy import Engine, text

from oauth_sessions import Aal, get_state

pytestmark = pytest.mark.postgres

EXPIRED, LIVE = 100_000, 100_000
_FINGERPRINT = text("SELECT count(*), md5(string_agg(id::text, ',' ORDER BY id)) FROM auth.sessions"
                    " WHERE not_after IS NULL OR not_after > now()")


def _seed(engine: Engine, user: uuid.UUID) -> None:
    """Rows shaped like real ones, written by generate_series in one statement each."""
    columns = ("id, user_id, created_at, updated_at, aal, not_after, refreshed_at, user_agent, ip, "
               "refresh_token_counter, scopes")
    row = ("gen_random_uuid(), :user, now() - interval '40 days', now() - interval '40 days', "
           "'aal1', {not_after}, NULL, 'seed', '192.0.2.1', 0, 'openid'")
    with engine.begin() as conn:
        # Expired: from one minute ago back to ~28 hours ago.
        conn.execute(text(f"INSERT INTO auth.sessions ({columns}) SELECT "
                          + row.format(not_after="now() - interval '1 minute' - g * interval '1 second'")
                          + f" FROM generate_series(1, {EXPIRED}) g"), {"user": user})
        # Live: a tenth never expire (NULL not_after), the rest from tomorrow on.
        conn.execute(text(f"INSERT INTO auth.sessions ({columns}) SELECT "
                          + row.format(not_after="CASE WHEN g % 10 = 0 THEN NULL ELSE now() + "
                                                 "interval '1 day' + g * interval '1 second' END")
                          + f" FROM generate_series(1, {LIVE}) g"), {"user": user})
        conn.execute(text("ANALYZE auth.sessions"))


def test_purge_removes_exactly_the_expired_sessions_while_live_ones_refresh(
        pg_engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(pg_engine)
    store = get_state(app).components["sessions"]
    user = create_user(pg_engine)
    _seed(pg_engine, user)
    busy = [store.create_session(user_id=user, client_id=None, scopes="openid", aal=Aal.AAL1,
                                 amr=["password"]) for _ in range(8)]
    with pg_engine.connect() as conn:
        live_before = conn.execute(_FINGERPRINT).one()
    assert live_before[0] == LIVE + len(busy)

    stop = threading.Event()
    refreshed = [0] * len(busy)
    errors: list[BaseException] = []

    def refresh_loop(n: int) -> None:
        token = busy[n].refresh_token
        try:
            while not stop.is_set():
                token = store.rotate(token, client_id=None).refresh_token
                refreshed[n] += 1
        except BaseException as exc:  # any failure of a live refresh fails the test
            errors.append(exc)

    threads = [threading.Thread(target=refresh_loop, args=(n,)) for n in range(len(busy))]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)  # traffic first, then the cron job
        started = time.perf_counter()
        result = app.test_cli_runner().invoke(args=["oauth-sessions", "purge", "--batch-size", "1000",
                                                            "--first-party"])
        purge_seconds = time.perf_counter() - started
        during = sum(refreshed)
        time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(10)

    assert result.exit_code == 0, result.output
    assert f"purged {EXPIRED} sessions" in result.output
    assert errors == []
    assert during > 0 and all(n > 0 for n in refreshed)
    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM auth.sessions WHERE not_after <= now()")
                            ).scalar() == 0
        live_after = conn.execute(_FINGERPRINT).one()
    assert live_after == live_before  # the very same live rows, none more, none less
    with capsys.disabled():
        print(f"\npurge: {EXPIRED} of {EXPIRED + LIVE} sessions in {purge_seconds:.2f} s "
              f"(batches of 1000), {during} concurrent refreshes meanwhile, 0 failed")


def test_purge_skips_a_row_another_transaction_holds_instead_of_waiting(pg_engine: Engine) -> None:
    app = make_app(pg_engine)
    store = get_state(app).components["sessions"]
    user = create_user(pg_engine)
    now = datetime.now(UTC)
    ids = [store.create_session(user_id=user, client_id=None, scopes="openid", aal=Aal.AAL1,
                                amr=["password"], host_not_after=now + timedelta(seconds=1),
                                now=now).session.id for _ in range(5)]
    later = now + timedelta(seconds=5)
    with pg_engine.connect() as holder:
        holder.execute(text("SELECT 1 FROM auth.sessions WHERE id = :id FOR UPDATE"), {"id": ids[0]})
        done: list[int] = []
        worker = threading.Thread(target=lambda: done.append(store.purge_expired(
            batch_size=2, now=later, first_party=True)))
        worker.start()
        worker.join(5)
        assert done == [4], "the purge waited for a lock it should have skipped"
        holder.rollback()
    assert store.get(ids[0]) is not None
    assert store.purge_expired(now=later, first_party=True) == 1 and store.get(ids[0]) is None
