"""Failover: a PostgreSQL primary with a synchronous standby, the primary killed under load.

``.venv/bin/python -m benchmarks.failover`` (about a minute; needs ``apt-get install
postgresql-15-auto-failover``, and runs the cluster as the ``postgres`` user when started as
root). Not a test: it prints figures and exits 1 when an audit fails.

The cluster is pg_auto_failover (Debian's ``postgresql-15-auto-failover``, maintained by the
Citus team): a monitor and two data nodes on 127.0.0.1, each on a free port with its data
directory under a fresh ``/tmp/oauth_sessions_failover_*``. pg_auto_failover puts the standby
in the primary's ``synchronous_standby_names`` (``ANY 1 (...)``) as soon as it is in sync, so
a COMMIT the primary acknowledges is on the standby too. It was chosen over Patroni because
it is one Debian package and one binary, with no separate consensus store (Patroni needs etcd,
Consul or ZooKeeper beside it, plus a PyPI install), which is the least to set up and tear
down on one host. Its monitor's health checks are made faster than the defaults (every
second, one retry), the keepers' network-partition timeout is 5 s and the monitor waits 10 s
for an unreachable primary to demote itself before the standby accepts writes (defaults: 5 s
checks, 20 s, 30 s), so the figure below is that of a tuned deployment; with the defaults
expect about 30 to 50 s.

The library is one process (a Flask app driven through its WSGI interface by ``--callers``
threads) on the libpq multi-host URL
``postgresql://postgres@/oauth?host=127.0.0.1:P1&host=127.0.0.1:P2&target_session_attrs=read-write``,
never restarted. Each caller owns one session and loops: refresh its current refresh token,
introspect the new access token. Then the primary's whole node (its pg_auto_failover keeper and
its PostgreSQL) is killed with SIGKILL, the standby is promoted by the monitor, and the callers
go on. Checks:

* every answer is 200, or a JSON ``503 temporarily_unavailable`` with ``Retry-After``; never a
  500, and never a refresh token that does not work next (a token answered but not stored);
* a caller that got a 503 retries with the same token (within the reuse interval a token whose
  rotation committed but whose answer was lost gets the same current token again);
* afterwards every session's ``refresh_token_counter`` on the new primary equals the rotations
  its caller saw acknowledged (none lost, none applied twice), and each caller's last token
  still refreshes.

It prints the time from the kill to the first successful refresh, and tears everything down.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask
from sqlalchemy import text

from benchmarks.pgbouncer import free_port
from oauth_sessions import OAuthSessions
from oauth_sessions.core.settings import load_settings
from oauth_sessions.core.types import Aal
from oauth_sessions.storage import migrate
from oauth_sessions.storage.clients import ClientStore
from oauth_sessions.storage.database import create_auth_engine
from oauth_sessions.storage.sessions import SessionStore

PG_AUTOCTL = "/usr/bin/pg_autoctl"
PG_BIN = "/usr/lib/postgresql/15/bin"
INSTALL = "apt-get install postgresql-15-auto-failover"
ISSUER = "http://127.0.0.1:9"
SCOPES = "openid offline_access"
REUSE_INTERVAL = 60  # longer than the switch, so a retry after a lost answer is a replay answer
MONITOR_SETTINGS = {  # milliseconds; see the module docstring
    "pgautofailover.health_check_period": 1000,
    "pgautofailover.health_check_timeout": 1000,
    "pgautofailover.health_check_max_retries": 1,
    "pgautofailover.health_check_retry_delay": 500,
    "pgautofailover.node_considered_unhealthy_timeout": 2000,
    "pgautofailover.primary_demote_timeout": 10000,
}
NETWORK_PARTITION_TIMEOUT = 5  # seconds, keepers: an isolated primary demotes itself by then


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- the cluster


class Cluster:
    """A pg_auto_failover monitor and two data nodes under one temporary directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="oauth_sessions_failover_"))
        self.monitor_port, self.ports = free_port(), (free_port(), free_port())
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.as_postgres = os.geteuid() == 0  # pg_autoctl and PostgreSQL refuse to run as root
        if self.as_postgres:
            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        self.env = {**os.environ, "PATH": PG_BIN + os.pathsep + "/usr/bin:/bin",
                    "XDG_CONFIG_HOME": str(self.dir / "config"),
                    "XDG_DATA_HOME": str(self.dir / "share"),
                    "XDG_RUNTIME_DIR": str(self.dir / "run"), "HOME": str(self.dir)}

    # -- processes

    def _argv(self, args: Sequence[str]) -> list[str]:
        env = [f"{k}={self.env[k]}" for k in ("PATH", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                                               "XDG_RUNTIME_DIR", "HOME")]
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        return [*prefix, "env", *env, PG_AUTOCTL, *args]

    def ctl(self, *args: str) -> str:
        done = subprocess.run(self._argv(args), cwd=self.dir, capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"pg_autoctl {' '.join(args)}: {done.stderr.strip()[-800:]}")
        return done.stdout

    def spawn(self, name: str, args: Sequence[str]) -> None:
        with open(self.dir / f"{name}.log", "wb") as out:
            self.procs[name] = subprocess.Popen(self._argv(args), cwd=self.dir, stdout=out,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group: the keeper, its supervisor and its PostgreSQL."""
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)

    # -- set-up

    def pgdata(self, name: str) -> str:
        return str(self.dir / name)

    @property
    def monitor_uri(self) -> str:
        return f"postgres://autoctl_node@127.0.0.1:{self.monitor_port}/pg_auto_failover?sslmode=disable"

    def start(self) -> None:
        (self.dir / "run").mkdir()
        if self.as_postgres:
            account = pwd.getpwnam("postgres")
            os.chown(self.dir / "run", account.pw_uid, account.pw_gid)
        log(f"pg_auto_failover: monitor on {self.monitor_port}, nodes on {self.ports}, in {self.dir}")
        self.spawn("monitor", ["create", "monitor", "--pgdata", self.pgdata("monitor"),
                               "--pgport", str(self.monitor_port), "--hostname", "127.0.0.1",
                               "--listen", "127.0.0.1", "--auth", "trust", "--no-ssl", "--run"])
        self._wait(lambda: self._query(self.monitor_port, "pg_auto_failover", "SELECT 1"),
                   "the monitor to accept connections", 60)
        with self._connect(self.monitor_port, "pg_auto_failover") as conn:
            for key, value in MONITOR_SETTINGS.items():
                conn.execute(f"ALTER SYSTEM SET {key} = {int(value)}")
            conn.execute("SELECT pg_reload_conf()")
        for i, port in enumerate(self.ports, start=1):
            name = f"node{i}"
            self.spawn(name, ["create", "postgres", "--pgdata", self.pgdata(name), "--pgport",
                              str(port), "--hostname", "127.0.0.1", "--listen", "127.0.0.1",
                              "--name", name, "--dbname", "oauth", "--auth", "trust", "--no-ssl",
                              "--monitor", self.monitor_uri, "--run"])
            want = "single" if i == 1 else "secondary"
            self._wait(lambda name=name, want=want: self._state(name) == (want, want),
                       f"{name} to reach {want}", 180, nudge=self._checkpoint)
            self.ctl("config", "set", "--pgdata", self.pgdata(name),
                     "timeout.network_partition_timeout", str(NETWORK_PARTITION_TIMEOUT))
            self.ctl("reload", "--pgdata", self.pgdata(name))
            got = self.ctl("config", "get", "--pgdata", self.pgdata(name),
                           "timeout.network_partition_timeout").strip()
            if got != str(NETWORK_PARTITION_TIMEOUT):
                raise RuntimeError(f"{name}: network_partition_timeout is {got!r}")
        self._wait(lambda: self._state("node1") == ("primary", "primary"), "node1 to be primary", 60)
        self._wait(self._synchronous, "the standby to be synchronous", 60)
        log("cluster ready: node1 primary, node2 synchronous standby "
            f"({self._query(self.ports[0], 'oauth', 'SHOW synchronous_standby_names')})")

    def _checkpoint(self) -> None:
        """pg_basebackup waits for a spread checkpoint (minutes on an idle server); ask for one."""
        self._query(self.ports[0], "oauth", "CHECKPOINT")

    def _synchronous(self) -> bool:
        states = self._query(self.ports[0], "oauth", "SELECT string_agg(sync_state, ',') "
                             "FROM pg_stat_replication")
        return bool(states) and any(s in ("sync", "quorum") for s in str(states).split(","))

    def _state(self, name: str) -> tuple[str, str] | None:
        row = self._row(self.monitor_port, "pg_auto_failover",
                        "SELECT reportedstate::text, goalstate::text FROM pgautofailover.node "
                        f"WHERE nodename = '{name}'")
        return None if row is None else (str(row[0]), str(row[1]))

    def states(self) -> str:
        rows = []
        with self._connect(self.monitor_port, "pg_auto_failover") as conn:
            for name, reported, goal in conn.execute(
                    "SELECT nodename, reportedstate, goalstate FROM pgautofailover.node ORDER BY nodeid"):
                rows.append(f"{name} {reported}/{goal}")
        return ", ".join(rows)

    # -- small helpers

    @staticmethod
    def _connect(port: int, db: str) -> psycopg.Connection[Any]:
        return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=db,
                               connect_timeout=2, autocommit=True)

    def _row(self, port: int, db: str, sql: str) -> tuple[Any, ...] | None:
        try:
            with self._connect(port, db) as conn:
                return conn.execute(sql).fetchone()  # type: ignore[arg-type]
        except psycopg.Error:
            return None

    def _query(self, port: int, db: str, sql: str) -> Any:
        row = self._row(port, db, sql)
        return None if row is None else row[0]

    def _wait(self, ready: Any, what: str, seconds: float, nudge: Any = None) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            for name, proc in self.procs.items():
                if proc.poll() is not None and name != "node1-killed":
                    tail = (self.dir / f"{name}.log").read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"pg_autoctl {name} exited while waiting for {what}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what} ({self.states()})")
            if nudge is not None:
                nudge()
            time.sleep(0.5)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            self.kill(name, signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill(name)
                proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()
        log("cluster stopped and removed")


# --------------------------------------------------------------------------- the library


def make_app(url: str) -> Flask:
    app = Flask("failover")
    app.config["SECRET_KEY"] = "benchmark-only"  # init_app requires one (the consent page)
    OAuthSessions(app, issuer=ISSUER, database_url=url, refresh_token_reuse_interval=REUSE_INTERVAL)
    return app


@dataclass
class Seeded:
    auth: str
    rs_auth: str
    sessions: list[tuple[str, str]]  # (session id, refresh token)


def seed(url: str, count: int) -> Seeded:
    engine = create_auth_engine(url)
    try:
        migrate.upgrade(engine)
        clients = ClientStore(engine, cache_seconds=0)
        client, secret = clients.create(name="failover", redirect_uris=["https://c.example/cb"],
                                        scopes=SCOPES, verified=True)
        rs, rs_secret = clients.create(name="rs", redirect_uris=["https://rs.example/cb"],
                                       can_introspect=True, verified=True)
        assert secret and rs_secret
        users = [uuid.uuid4() for _ in range(count)]
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO auth.users (id, email, created_at, updated_at) "
                              "VALUES (:id, :email, now(), now())"),
                         [{"id": u, "email": f"{u.hex[:10]}@failover.test"} for u in users])
        store = SessionStore(engine, load_settings({"OAUTH_SESSIONS_ISSUER": ISSUER},
                                                   {"refresh_token_reuse_interval": REUSE_INTERVAL}))
        sessions = []
        for u in users:
            issued = store.create_session(user_id=u, client_id=client.id, scopes=SCOPES,
                                          aal=Aal.AAL1, amr=["pwd"])
            sessions.append((str(issued.session.id), issued.refresh_token))
    finally:
        engine.dispose()

    def basic(cid: str, s: str) -> str:
        return "Basic " + base64.b64encode(f"{cid}:{s}".encode()).decode()

    return Seeded(basic(client.client_id, secret), basic(rs.client_id, rs_secret), sessions)


# --------------------------------------------------------------------------- the load


@dataclass
class Books:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[str] = field(default_factory=Counter)
    anomalies: list[str] = field(default_factory=list)
    acknowledged: dict[str, int] = field(default_factory=dict)  # session id -> rotations seen
    last_token: dict[str, str] = field(default_factory=dict)
    first_503: float | None = None
    last_503: float | None = None
    first_success_after_kill: float | None = None
    killed_at: float | None = None


def _check_unavailable(kind: str, response: Any, books: Books) -> None:
    body = response.get_json(silent=True) or {}
    retry = response.headers.get("Retry-After", "")
    if body.get("error") != "temporarily_unavailable" or not retry.isdigit():
        books.anomalies.append(f"{kind} 503 without the JSON temporarily_unavailable + "
                               f"Retry-After answer: {response.headers} {response.get_data()[:200]!r}")


def caller(app: Flask, seeded: Seeded, index: int, books: Books, stop: threading.Event) -> None:
    http = app.test_client()
    sid, token = seeded.sessions[index]
    rotations = 0
    while not stop.is_set():
        now = time.monotonic()
        try:
            r = http.post("/oauth/token", headers={"Authorization": seeded.auth},
                          data={"grant_type": "refresh_token", "refresh_token": token})
        except Exception as exc:  # the app raised through WSGI: as bad as a 500
            with books.lock:
                books.anomalies.append(f"refresh raised {type(exc).__name__}: {exc}")
            time.sleep(0.2)
            continue
        with books.lock:
            books.statuses[f"refresh {r.status_code}"] += 1
            if r.status_code == 503:
                _check_unavailable("refresh", r, books)
                books.first_503 = books.first_503 or now
                books.last_503 = now
            elif r.status_code != 200:
                books.anomalies.append(f"refresh {r.status_code}: {r.get_data()[:200]!r}")
        if r.status_code == 503:
            time.sleep(0.1)
            continue
        if r.status_code != 200:
            return  # this session's books are audited as they stand
        body = r.get_json()
        token = body["refresh_token"]
        rotations += 1
        with books.lock:
            books.acknowledged[sid] = rotations
            books.last_token[sid] = token
            # Only a refresh sent after the kill counts: one in flight may finish on the old
            # primary's last breath.
            if (books.killed_at is not None and now > books.killed_at
                    and books.first_success_after_kill is None):
                books.first_success_after_kill = time.monotonic()
        try:
            i = http.post("/oauth/introspect", data={"token": body["access_token"]},
                          headers={"Authorization": seeded.rs_auth})
        except Exception as exc:
            with books.lock:
                books.anomalies.append(f"introspection raised {type(exc).__name__}: {exc}")
            continue
        with books.lock:
            books.statuses[f"introspect {i.status_code}"] += 1
            if i.status_code == 503:
                _check_unavailable("introspection", i, books)
            elif i.status_code != 200 or i.get_json().get("active") is not True:
                books.anomalies.append(f"introspection {i.status_code}: {i.get_data()[:200]!r}")


def audit(url: str, books: Books, app: Flask, seeded: Seeded) -> list[str]:
    engine = create_auth_engine(url)
    deadline = time.monotonic() + 60
    try:
        while True:  # the new primary may still refuse sessions a moment (read-only until ready)
            try:
                with engine.connect() as conn:
                    counters = {str(r[0]): r[1] for r in conn.execute(
                        text("SELECT id, refresh_token_counter FROM auth.sessions"))}
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        engine.dispose()
    problems = []
    for sid, _ in seeded.sessions:
        seen = books.acknowledged.get(sid, 0)
        if counters.get(sid) != seen:
            problems.append(f"session {sid}: counter {counters.get(sid)} after {seen} "
                            "acknowledged rotations")
    http = app.test_client()
    for sid, token in books.last_token.items():
        r = http.post("/oauth/token", headers={"Authorization": seeded.auth},
                      data={"grant_type": "refresh_token", "refresh_token": token})
        if r.status_code != 200:
            problems.append(f"session {sid}: its last acknowledged token was refused after the "
                            f"failover: {r.status_code} {r.get_data()[:120]!r}")
    return problems


# --------------------------------------------------------------------------- the run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=8, help="threads, one session each")
    parser.add_argument("--before", type=float, default=5.0, help="seconds of load before the kill")
    parser.add_argument("--after", type=float, default=5.0,
                        help="seconds of load after the first successful refresh")
    parser.add_argument("--max-switch", type=float, default=90.0,
                        help="give up when no refresh succeeds this long after the kill")
    args = parser.parse_args(argv)
    if not os.access(PG_AUTOCTL, os.X_OK) or not os.access(f"{PG_BIN}/pg_ctl", os.X_OK):
        print(f"failover needs pg_auto_failover and PostgreSQL 15: {INSTALL}")
        return 2
    # The library logs each 503 ("database unavailable") as a warning: hundreds during the
    # switch. Errors (a 500 would log one) still show.
    logging.getLogger("oauth_sessions").setLevel(logging.ERROR)
    with cluster() as c:
        url = (f"postgresql://postgres@/oauth?host=127.0.0.1:{c.ports[0]}&host=127.0.0.1:"
               f"{c.ports[1]}&target_session_attrs=read-write&connect_timeout=2")
        seeded = seed(url, args.callers)
        app = make_app(url)
        app.test_client().get("/oauth/jwks")  # the first signing keys, made once before the load
        books = Books()
        stop = threading.Event()
        threads = [threading.Thread(target=caller, args=(app, seeded, i, books, stop), daemon=True)
                   for i in range(args.callers)]
        for t in threads:
            t.start()
        time.sleep(args.before)
        with books.lock:
            before = sum(books.acknowledged.values())
        log(f"{before} refreshes acknowledged before the kill; killing node1 (keeper + PostgreSQL)")
        books.killed_at = time.monotonic()
        c.kill("node1")
        c.procs["node1-killed"] = c.procs.pop("node1")
        deadline = books.killed_at + args.max_switch
        while books.first_success_after_kill is None and time.monotonic() < deadline:
            time.sleep(0.05)
        switched = books.first_success_after_kill
        if switched is not None:
            log(f"first successful refresh {switched - books.killed_at:.1f} s after the kill "
                f"({c.states()})")
            time.sleep(args.after)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        problems = list(books.anomalies)
        if switched is None:
            problems.append(f"no refresh succeeded within {args.max_switch:.0f} s of the kill "
                            f"({c.states()})")
        else:
            problems += audit(url, books, app, seeded)
        print()
        print(f"failover: {args.callers} callers, pg_auto_failover 2.0, PostgreSQL 15, "
              "synchronous standby (ANY 1)")
        print("  answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(books.statuses.items())))
        if switched is not None:
            print(f"  kill -> first successful refresh: {switched - books.killed_at:.1f} s")
        if books.first_503 is not None and books.last_503 is not None:
            print(f"  503 temporarily_unavailable from {books.first_503 - books.killed_at:+.1f} s "
                  f"to {books.last_503 - books.killed_at:+.1f} s (relative to the kill)")
        print(f"  rotations acknowledged: {sum(books.acknowledged.values())} over "
              f"{len(books.acknowledged)} sessions; audited against the new primary")
        print(f"  anomalies: {len(problems)}")
        for p in problems[:20]:
            print("  PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
