"""Racing refreshes through a live gunicorn (2 worker processes x 4 threads) on PostgreSQL.

The production shape: requests from many connections land in different processes and threads,
each with its own pool, at the same moment. The counter must still move exactly once and every
caller get the same new refresh token, with no 5xx.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from flask import Flask
from sqlalchemy import Engine
from test_store_support import ISSUER, add_user

from oauth_sessions import OAuthSessions
from oauth_sessions.core.types import Aal
from oauth_sessions.storage.clients import ClientStore
from oauth_sessions.storage.sessions import SessionStore

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CALLERS = 16
TESTS = Path(__file__).resolve().parent


def create_app() -> Flask:
    """The app gunicorn serves: the library as a host would mount it."""
    app = Flask("live")
    app.config["SECRET_KEY"] = "live-test-secret"
    OAuthSessions(app, issuer=ISSUER, database_url=os.environ["OAUTH_SESSIONS_LIVE_DB"],
                  refresh_token_reuse_interval=30)
    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(pg_url: str, pg_engine: Engine) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "OAUTH_SESSIONS_LIVE_DB": pg_url,
           "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    proc = subprocess.Popen(  # the run's own server, stopped below by its process group
        [gunicorn, "-w", "2", "-k", "gthread", "--threads", "4", "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "test_refresh_live:create_app()"],
        env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration",
                                timeout=1).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # worker still booting
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_live_gunicorn_refresh_race_advances_once_and_answers_everyone_alike(
    live_server: str, pg_engine: Engine
) -> None:
    from test_store_support import make_settings

    client, secret = ClientStore(pg_engine, cache_seconds=0).create(
        name="live", redirect_uris=["https://app.example/cb"], scopes="openid offline_access")
    store = SessionStore(pg_engine, make_settings(refresh_token_reuse_interval=30))
    issued = store.create_session(user_id=add_user(pg_engine), client_id=client.id,
                                  scopes="openid offline_access", aal=Aal.AAL1, amr=["pwd"])
    basic = "Basic " + base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    url = live_server + "/oauth/token"

    def race(token: str) -> list[tuple[int, dict[str, object]]]:
        barrier = threading.Barrier(CALLERS)

        def post(_: int) -> tuple[int, dict[str, object]]:
            with requests.Session() as http:
                barrier.wait()
                r = http.post(url, data={"grant_type": "refresh_token", "refresh_token": token},
                              headers={"Authorization": basic}, timeout=30)
                return r.status_code, r.json()

        with ThreadPoolExecutor(CALLERS) as pool:
            return list(pool.map(post, range(CALLERS)))

    first = race(issued.refresh_token)
    assert [status for status, _ in first] == [200] * CALLERS, first
    assert len({body["refresh_token"] for _, body in first}) == 1
    assert store.get(issued.session.id).counter == 1  # type: ignore[union-attr]
    second = race(str(first[0][1]["refresh_token"]))
    assert [status for status, _ in second] == [200] * CALLERS, second
    assert store.get(issued.session.id).counter == 2  # type: ignore[union-attr]

    replay = requests.post(url, data={"grant_type": "refresh_token",
                                      "refresh_token": issued.refresh_token},
                           headers={"Authorization": basic}, timeout=30)
    assert replay.status_code == 400
    assert replay.json() == {"error": "invalid_grant", "error_description": "refresh token already used"}
    assert store.get(issued.session.id) is None
