"""Database faults during refresh traffic, on PostgreSQL: fail fast and clean, then recover.

The app reaches PostgreSQL through a small TCP forwarder on 127.0.0.1 that the test can cut,
which takes the database away from this app only (other test runs on the machine keep theirs).
Backends are also killed mid-traffic with ``pg_terminate_backend``, filtered by this app's
``application_name`` and this run's database.

While the database is away every request is answered within a few seconds with
``503 temporarily_unavailable`` (JSON, ``Retry-After``, no stack trace); when it is back the
same app serves again with no restart (pool pre-ping replaces the dead connections); and no
session is half-written: each counter equals the number of refreshes its caller saw succeed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from factories import basic_auth, create_client, create_user, make_app
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from oauth_sessions import get_state
from oauth_sessions.core.types import Aal
from oauth_sessions.storage.database import create_auth_engine

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

APP_NAME = "oauth_sessions_fault_test"
CALLERS = 4
FAST = 5.0  # seconds: a request while the database is away must be answered within this


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the PostgreSQL server until :meth:`cut`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                downstream.close()  # the database is "down": the connection ends at once
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._open += [downstream, upstream]
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.down.set()
        with self._lock:
            sockets, self._open = self._open, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self.closed.set()
        self.cut()
        self.listener.close()


@dataclass
class Caller:
    """One client refreshing one session in a loop, counting what it saw."""

    token: str
    successes: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)
    slowest: float = 0.0
    ok_after_restore: int = 0


@pytest.fixture
def proxy(pg_url: str) -> Iterator[CuttableProxy]:
    url = make_url(pg_url)
    p = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    yield p
    p.close()


@pytest.fixture
def fault_engine(pg_url: str, pg_engine: Engine, proxy: CuttableProxy) -> Iterator[Engine]:
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    engine = create_auth_engine(url, pool_size=CALLERS, max_overflow=2, pool_timeout=3,
                                connect_args={"connect_timeout": 3, "application_name": APP_NAME})
    yield engine
    engine.dispose()


def _terminate_app_backends(engine: Engine) -> int:
    with engine.connect() as conn:
        killed = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = :name "
            "AND pid <> pg_backend_pid()"), {"name": APP_NAME}).scalar_one()
        conn.commit()
    return int(killed)


def test_outage_answers_503_fast_recovers_without_restart_and_counts_stay_exact(
    pg_engine: Engine, fault_engine: Engine, proxy: CuttableProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(fault_engine, refresh_token_reuse_interval=60)
    client, secret = create_client(app)
    assert secret is not None
    user = create_user(pg_engine)
    sessions = get_state(app).components["sessions"]
    callers = [Caller(sessions.create_session(
        user_id=user, client_id=client.id, scopes="openid offline_access", aal=Aal.AAL1,
        amr=["pwd"]).refresh_token) for _ in range(CALLERS)]
    auth = basic_auth(client.client_id, secret)
    stop = threading.Event()
    restored = threading.Event()

    def run(caller: Caller) -> None:
        try:
            loop(caller)
        except Exception as exc:  # an exception out of the app is a failure, not a dead thread
            caller.bad.append(f"raised {type(exc).__name__}: {exc}")

    def loop(caller: Caller) -> None:
        http = app.test_client()
        while not stop.is_set():
            started = time.monotonic()
            response = http.post("/oauth/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": caller.token},
                                 headers={"Authorization": auth})
            elapsed = time.monotonic() - started
            caller.slowest = max(caller.slowest, elapsed)
            caller.statuses[response.status_code] = caller.statuses.get(response.status_code, 0) + 1
            body: Any = response.get_json(silent=True)
            if response.status_code == 200:
                caller.token = body["refresh_token"]
                caller.successes += 1
                if restored.is_set():
                    caller.ok_after_restore += 1
            elif response.status_code == 503:
                if (body != {"error": "temporarily_unavailable",
                             "error_description": "the service is temporarily unavailable, retry later"}
                        or response.headers.get("Retry-After") != "2"):
                    caller.bad.append(response.get_data(as_text=True))
                time.sleep(0.05)
            else:
                caller.bad.append(f"{response.status_code} {response.get_data(as_text=True)[:200]}")

    threads = [threading.Thread(target=run, args=(c,)) for c in callers]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        killed = _terminate_app_backends(pg_engine)  # connections die under the pool
        time.sleep(1.0)
        proxy.cut()  # the database goes away for this app
        time.sleep(2.0)
        proxy.restore()
        restored.set()
        time.sleep(1.5)
        killed += _terminate_app_backends(pg_engine)
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)

    assert killed >= 1
    for caller in callers:
        assert caller.bad == [], caller.bad
        assert set(caller.statuses) <= {200, 503}, caller.statuses
        assert caller.slowest < FAST, caller.slowest
        assert caller.ok_after_restore > 0, "no success after the database came back"
    assert sum(c.statuses.get(503, 0) for c in callers) > 0, "the cut was never seen"

    with pg_engine.connect() as conn:
        counters = {row[0]: row[1] for row in conn.execute(text(
            "SELECT id, refresh_token_counter FROM auth.sessions"))}
    assert len(counters) == CALLERS  # nothing revoked: no caller's retry was taken for reuse
    assert sorted(counters.values()) == sorted(c.successes for c in callers)
    for caller in callers:  # and each caller's last token is the current one
        final = app.test_client().post("/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": caller.token},
            headers={"Authorization": auth})
        assert final.status_code == 200
    logged = caplog.text
    assert "Traceback" not in logged
    assert all(c.token not in logged for c in callers)
    assert "temporarily" not in logged or "sqlstate" in logged
