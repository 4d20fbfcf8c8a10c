"""Soak: bounded mixed traffic against gunicorn on 127.0.0.1, then the books must balance.

``.venv/bin/python -m benchmarks.soak --duration 300`` (a few minutes; ``tests/test_soak_short.py``
runs the same thing for ~30 s). It creates a throwaway PostgreSQL database (``SOAK_ADMIN_URL``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``), migrates it, serves
``OAuthSessions`` with ``gunicorn -w 2 -k gthread --threads 4`` and runs ``--callers`` loops,
each doing, at random:

* authorize (a signed-in user who already consented) + code exchange with PKCE: a new session;
* refresh, sometimes as 3 concurrent duplicates of the same token (all must get the same new
  token, and the counter must move once);
* a replay of a token two rotations old (reuse: the session must be revoked);
* introspection of the current access token (must be active);
* revocation of the refresh token (the session must be gone);
* walking away from a session (it stays alive; its counter is audited at the end).

It then checks: no 5xx; every live session's ``refresh_token_counter`` equals the rotations
its caller saw; every revoked or replayed session is gone; "refresh token already used" was
answered exactly as many times as replays were sent; worker RSS at start and end. Exit status 1
when any of these fails.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from flask import Flask, request
from flask.typing import ResponseReturnValue
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
ISSUER = "http://127.0.0.1:9"
REDIRECT_URI = "https://soak.example/cb"
SCOPES = "openid offline_access"
REUSED = "refresh token already used"


# --------------------------------------------------------------------------- the served app


def create_app() -> Flask:
    """What gunicorn serves: the library with a host that trusts an ``X-Soak-User`` header."""
    from oauth_sessions import OAuthSessions
    from oauth_sessions.core.types import Aal
    from oauth_sessions.flask.host import Authentication, HostAdapter

    class SoakHost(HostAdapter):
        def current_authentication(self) -> Authentication | None:
            user = request.headers.get("X-Soak-User")
            if not user:
                return None
            now = datetime.now(UTC)
            return Authentication(user_id=uuid.UUID(user), aal=Aal.AAL1, amr=[], auth_time=now)

        def login(self, next_url: str, prompt: str | None) -> ResponseReturnValue:
            return ("sign in first", 401)

        def render_consent(self, request_info: Any) -> ResponseReturnValue:
            return ("consent was seeded; this should not happen", 409)

    app = Flask("soak")
    app.config["SECRET_KEY"] = "benchmark-only"  # init_app requires one (the consent page)
    OAuthSessions(app, host=SoakHost(), issuer=ISSUER, database_url=os.environ["SOAK_DB_URL"],
                  refresh_token_reuse_interval=30)
    return app


# --------------------------------------------------------------------------- seeding and serving


@dataclass(frozen=True)
class Seed:
    client_id: str
    secret: str
    users: list[str]


def seed(db_url: str, users: int) -> Seed:
    from oauth_sessions.storage import migrate
    from oauth_sessions.storage.authorizations import ConsentStore
    from oauth_sessions.storage.clients import ClientStore
    from oauth_sessions.storage.database import create_auth_engine

    engine = create_auth_engine(db_url)
    migrate.upgrade(engine)
    client, secret = ClientStore(engine, cache_seconds=0).create(
        name="soak", redirect_uris=[REDIRECT_URI], scopes=SCOPES, can_introspect=True)
    assert secret is not None
    ids = [uuid.uuid4() for _ in range(users)]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO auth.users (id, email, created_at, updated_at) "
                          "VALUES (:id, :email, now(), now())"),
                     [{"id": u, "email": f"{u.hex[:10]}@soak.test"} for u in ids])
    consents = ConsentStore(engine)
    for u in ids:
        consents.grant(u, client.id, SCOPES.split())
    engine.dispose()
    return Seed(client.client_id, secret, [str(u) for u in ids])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(db_url: str, workers: int, threads: int) -> Iterator[tuple[str, int]]:
    port = _free_port()
    env = {**os.environ, "SOAK_DB_URL": db_url,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [str(Path(sys.executable).parent / "gunicorn"), "-w", str(workers), "-k", "gthread",
           "--threads", str(threads), "-b", f"127.0.0.1:{port}", "--log-level", "warning",
           "benchmarks.soak:create_app()"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/oauth/jwks", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.1)
        yield base, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def worker_rss(master: int) -> dict[int, int]:
    """Resident memory in KiB of each gunicorn worker (children of the master), from /proc."""
    result: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == str(master):
            result[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0])
    return result


# --------------------------------------------------------------------------- traffic


@dataclass
class Books:
    """What the callers saw, merged at the end."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    replays_sent: int = 0
    reuse_detected: int = 0
    #: session id -> rotations its caller saw (live sessions), or None when it must be gone
    expected: dict[str, int | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Live:
    session_id: str
    tokens: list[str]  # every refresh token of this session, oldest first
    access_token: str
    rotations: int = 0


class Caller:
    def __init__(self, base: str, seed: Seed, books: Books, rng: random.Random) -> None:
        self.base = base
        self.seed = seed
        self.books = books
        self.rng = rng
        self.http = requests.Session()
        self.auth = (seed.client_id, seed.secret)
        self.live: Live | None = None

    def _post(self, kind: str, path: str, data: dict[str, str], http: requests.Session | None = None,
              ) -> requests.Response:
        response = (http or self.http).post(self.base + path, data=data, auth=self.auth, timeout=30)
        self._count(kind, response)
        return response

    def _count(self, kind: str, response: requests.Response) -> None:
        with self.books.lock:
            self.books.requests[kind] += 1
            self.books.statuses[response.status_code] += 1
            if response.status_code >= 500:
                self.books.server_errors.append(f"{kind} {response.status_code} {response.text[:200]}")
            if response.status_code == 400 and REUSED in response.text:
                self.books.reuse_detected += 1

    def _unexpected(self, what: str, response: requests.Response) -> None:
        with self.books.lock:
            self.books.unexpected.append(f"{what}: {response.status_code} {response.text[:200]}")

    def _settle(self, live: Live, gone: bool) -> None:
        with self.books.lock:
            self.books.expected[live.session_id] = None if gone else live.rotations

    def step(self) -> None:
        if self.live is None:
            self.start()
            return
        roll = self.rng.random()
        if roll < 0.40:
            self.refresh()
        elif roll < 0.55:
            self.duplicates()
        elif roll < 0.75:
            self.introspect()
        elif roll < 0.83 and len(self.live.tokens) >= 3:
            self.replay()
        elif roll < 0.90:
            self.revoke()
        else:
            # Leave the session alive and start another: its counter is audited at the end.
            self.live = None

    def start(self) -> None:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        user = self.rng.choice(self.seed.users)
        response = self.http.get(self.base + "/oauth/authorize", params={
            "response_type": "code", "client_id": self.seed.client_id, "redirect_uri": REDIRECT_URI,
            "scope": SCOPES, "state": secrets.token_hex(4), "code_challenge": challenge.decode(),
            "code_challenge_method": "S256"}, headers={"X-Soak-User": user}, allow_redirects=False,
            timeout=30)
        self._count("authorize", response)
        if response.status_code != 302:
            self._unexpected("authorize", response)
            return
        code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
        token = self._post("code_exchange", "/oauth/token", {
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier})
        if token.status_code != 200:
            self._unexpected("code exchange", token)
            return
        body = token.json()
        sid = _sid(body["access_token"])
        self.live = Live(sid, [body["refresh_token"]], body["access_token"])
        self._settle(self.live, gone=False)

    def refresh(self) -> None:
        assert self.live is not None
        response = self._post("refresh", "/oauth/token", {"grant_type": "refresh_token",
                                                          "refresh_token": self.live.tokens[-1]})
        if response.status_code != 200:
            self._unexpected("refresh", response)
            self.live = None
            return
        self._rotated(response.json())

    def duplicates(self) -> None:
        """Three callers race with the same token: one rotation, one answer for all."""
        assert self.live is not None
        token = self.live.tokens[-1]
        barrier = threading.Barrier(3)

        def post(_: int) -> requests.Response:
            with requests.Session() as http:
                barrier.wait()
                return self._post("refresh_duplicate", "/oauth/token",
                                  {"grant_type": "refresh_token", "refresh_token": token}, http)

        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(post, range(3)))
        if any(a.status_code != 200 for a in answers) or len(
                {a.json()["refresh_token"] for a in answers}) != 1:
            for a in answers:
                self._unexpected("concurrent duplicate", a)
            self.live = None
            return
        self._rotated(answers[0].json())

    def _rotated(self, body: dict[str, Any]) -> None:
        assert self.live is not None
        self.live.tokens.append(body["refresh_token"])
        self.live.access_token = body["access_token"]
        self.live.rotations += 1
        self._settle(self.live, gone=False)

    def replay(self) -> None:
        """A token two rotations old: reuse (RFC 9700 section 4.14.2), the session must end."""
        assert self.live is not None
        with self.books.lock:
            self.books.replays_sent += 1
        response = self._post("replay", "/oauth/token", {"grant_type": "refresh_token",
                                                         "refresh_token": self.live.tokens[-3]})
        if response.status_code != 400 or REUSED not in response.text:
            self._unexpected("replay", response)
        self._settle(self.live, gone=True)
        self.live = None

    def introspect(self) -> None:
        assert self.live is not None
        response = self._post("introspect", "/oauth/introspect", {"token": self.live.access_token})
        if response.status_code != 200 or response.json().get("active") is not True:
            self._unexpected("introspect", response)

    def revoke(self) -> None:
        assert self.live is not None
        response = self._post("revoke", "/oauth/revoke", {"token": self.live.tokens[-1],
                                                          "token_type_hint": "refresh_token"})
        if response.status_code != 200:
            self._unexpected("revoke", response)
        self._settle(self.live, gone=True)
        self.live = None


def _sid(access_token: str) -> str:
    import json

    payload = access_token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"])


# --------------------------------------------------------------------------- the run


@dataclass
class Report:
    duration: float
    books: Books
    anomalies: list[str]
    rss_start: dict[int, int]
    rss_end: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.books.requests.values())

    def ok(self, max_rss_growth_kib: int) -> bool:
        return not self.problems(max_rss_growth_kib)

    def problems(self, max_rss_growth_kib: int) -> list[str]:
        found = [*self.books.server_errors, *self.books.unexpected, *self.anomalies]
        if self.books.reuse_detected != self.books.replays_sent:
            found.append(f"reuse detected {self.books.reuse_detected} times for "
                         f"{self.books.replays_sent} replays")
        for pid, start in self.rss_start.items():
            end = self.rss_end.get(pid)
            if end is None:
                found.append(f"worker {pid} is gone (restarted?)")
            elif end - start > max_rss_growth_kib:
                found.append(f"worker {pid} grew from {start} to {end} KiB")
        return found

    def print(self) -> None:
        b = self.books
        print(f"soak: {self.total} requests in {self.duration:.0f} s "
              f"({self.total / self.duration:.0f} req/s)")
        print("  by kind:  " + ", ".join(f"{k} {v}" for k, v in sorted(b.requests.items())))
        print("  statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(b.statuses.items())))
        print(f"  5xx: {len(b.server_errors)}   unexpected answers: {len(b.unexpected)}   "
              f"counter anomalies: {len(self.anomalies)}")
        print(f"  replays sent: {b.replays_sent}   reuse detected: {b.reuse_detected}")
        print(f"  sessions checked: {len(b.expected)} "
              f"({sum(v is not None for v in b.expected.values())} live)")
        for pid, start in sorted(self.rss_start.items()):
            end = self.rss_end.get(pid, 0)
            print(f"  worker {pid} RSS: {start / 1024:.1f} MiB -> {end / 1024:.1f} MiB")


def run(db_url: str, *, duration: float, callers: int = 8, workers: int = 2, threads: int = 4,
        users: int = 50, seed_value: int = 9) -> Report:
    """Seed ``db_url`` (an empty database), serve it, drive it for ``duration`` s, audit it."""
    seeded = seed(db_url, users)
    books = Books()
    with gunicorn(db_url, workers, threads) as (base, master):
        warm = Caller(base, seeded, Books(), random.Random(0))
        for _ in range(20):  # warm every worker up before the first memory reading
            warm.step()
        rss_start = worker_rss(master)
        stop = time.monotonic() + duration
        started = time.monotonic()

        def loop(index: int) -> None:
            caller = Caller(base, seeded, books, random.Random(seed_value * 1000 + index))
            while time.monotonic() < stop:
                caller.step()

        with ThreadPoolExecutor(callers) as pool:
            list(pool.map(loop, range(callers)))
        elapsed = time.monotonic() - started
        rss_end = worker_rss(master)
    return Report(elapsed, books, audit(db_url, books.expected), rss_start, rss_end)


def audit(db_url: str, expected: dict[str, int | None]) -> list[str]:
    """Every session the callers know of against the database row."""
    from oauth_sessions.storage.database import create_auth_engine

    engine = create_auth_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = {str(r[0]): r[1] for r in conn.execute(
                text("SELECT id, refresh_token_counter FROM auth.sessions"))}
    finally:
        engine.dispose()
    anomalies = []
    for sid, rotations in expected.items():
        if rotations is None and sid in rows:
            anomalies.append(f"session {sid} should be gone but has counter {rows[sid]}")
        elif rotations is not None and rows.get(sid) != rotations:
            anomalies.append(f"session {sid}: counter {rows.get(sid)} after {rotations} rotations")
    return anomalies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of traffic")
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--max-rss-growth-mib", type=float, default=32.0)
    args = parser.parse_args(argv)
    admin_url = os.environ.get("SOAK_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    from oauth_sessions.storage.database import normalize_url

    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"oauth_sessions_soak_{os.getpid()}_{secrets.token_hex(3)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(normalize_url(admin_url)).set(database=name).render_as_string(hide_password=False)
        report = run(url, duration=args.duration, callers=args.callers, workers=args.workers,
                     threads=args.threads)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    report.print()
    problems = report.problems(int(args.max_rss_growth_mib * 1024))
    for problem in problems[:20]:
        print("  PROBLEM:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
