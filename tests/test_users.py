"""``ensure_user`` mirrors a host's user into auth.users once, even under a race."""

from __future__ import annotations

import threading
import uuid

from factories import make_app
from sqlalchemy import Engine, func, select

from oauth_sessions import ensure_user
from oauth_sessions.storage.models import User


def count_users(engine: Engine, user_id: uuid.UUID) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(User).where(User.id == user_id)) or 0)


def test_creates_once_then_reports_existing(engine: Engine) -> None:
    app = make_app(engine)
    uid = uuid.uuid4()
    with app.app_context():
        assert ensure_user(uid, email="a@example.com") is True
        assert ensure_user(uid, email="a@example.com") is False
    assert count_users(engine, uid) == 1


def test_concurrent_sign_ins_create_one_row(engine: Engine) -> None:
    app = make_app(engine)
    uid = uuid.uuid4()
    barrier = threading.Barrier(6)
    results: list[bool] = []
    errors: list[BaseException] = []

    def worker() -> None:
        with app.app_context():
            barrier.wait()
            try:
                results.append(ensure_user(uid))
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert sorted(results) == [False] * 5 + [True]
    assert count_users(engine, uid) == 1
