"""What the throughput benchmark (``benchmarks.suite``) is built on: a throwaway database, a
gunicorn target, server CPU accounting, a wrk run, and plain Authlib's documented models.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from oauth_sessions.storage.database import normalize_url  # noqa: E402

AUTHLIB_SCHEMA = "authlib_bench"  # where the plain-Authlib baselines keep their tables
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database(keep: bool, prefix: str = "oauth_sessions_bench") -> Iterator[str]:
    """A new, empty database for one run (dropped afterwards unless ``keep``); yields its URL."""
    admin = create_engine(normalize_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalize_url(ADMIN_URL)).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(apps_module: str, target: str, url: str) -> Iterator[tuple[str, int]]:
    """``gunicorn -w 2 -k gthread --threads 4`` serving ``apps_module:create(target)``.

    Yields the base URL and the process-group id (for CPU accounting); the whole group is
    stopped on exit.
    """
    port = free_port()
    env = {**os.environ, "BENCH_DB_URL": url, "PYTHONPATH": str(ROOT)}
    cmd = [str(Path(sys.executable).parent / "gunicorn"), "-w", "2", "-k", "gthread", "--threads", "4",
           "-b", f"127.0.0.1:{port}", "--log-level", "warning", f"{apps_module}:create({target!r})"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"gunicorn for {target} did not start")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


_TICK = os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(gunicorn_pgid: int, url: str) -> dict[int, float]:
    """CPU seconds used so far by the gunicorn process group and this database's backends.

    CPU per request is steadier than req/s on a shared machine: other work delays our
    processes but does not make them burn more CPU.
    """
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == gunicorn_pgid:  # field 5 of stat: the process group
                pids.add(int(entry.name))
    engine = create_engine(normalize_url(url))
    with engine.connect() as conn:
        pids |= {row[0] for row in conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")}
    engine.dispose()
    usage = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        usage[pid] = (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    return usage


def cpu_per_request(before: dict[int, float], after: dict[int, float], requests: int) -> float:
    """Milliseconds of server CPU per request between two snapshots."""
    used = sum(after[pid] - before.get(pid, 0.0) for pid in after)
    return used / max(requests, 1) * 1000


def basic_credentials(auth: tuple[str, str]) -> str:
    return base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()


def run_wrk(url: str, script: Path, duration: int, connections: int,
            threads: int) -> dict[str, float]:
    """One ``wrk --latency`` run with a Lua ``script``: req/s, p50/p99 in ms, counts."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s",
           "-s", str(script), url]
    output = subprocess.run(cmd, capture_output=True, text=True, check=True,
                            timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    latency = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", output).group(1))  # type: ignore[union-attr]
               for p in ("50", "99")}
    return {"rps": rps, "p50": latency["50"], "p99": latency["99"], "requests": total,
            "errors": int(errors.group(1)) if errors else 0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def authlib_models() -> tuple[Any, Any, Any, Any]:
    """Flask-SQLAlchemy models as in Authlib's "Flask OAuth 2.0 Server" documentation.

    One schema for both baselines (introspection and refresh).
    """
    from authlib.integrations.sqla_oauth2 import OAuth2ClientMixin, OAuth2TokenMixin
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy import MetaData

    db = SQLAlchemy(metadata=MetaData(schema=AUTHLIB_SCHEMA))

    class User(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "user"
        id = db.Column(db.Integer, primary_key=True)
        username = db.Column(db.String(40), unique=True)

        def get_user_id(self) -> int:
            return int(self.id)

    class Client(db.Model, OAuth2ClientMixin):  # type: ignore[name-defined,misc]
        __tablename__ = "oauth2_client"
        id = db.Column(db.Integer, primary_key=True)
        user_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"))
        user = db.relationship("User")

    class Token(db.Model, OAuth2TokenMixin):  # type: ignore[name-defined,misc]
        __tablename__ = "oauth2_token"
        id = db.Column(db.Integer, primary_key=True)
        user_id = db.Column(db.Integer, db.ForeignKey("user.id", ondelete="CASCADE"))
        user = db.relationship("User")

    # SQLAlchemy's class registry holds models weakly: a caller that drops ``User`` would let
    # the garbage collector take it, and ``relationship("User")`` would then fail to resolve.
    db.bench_models = (User, Client, Token)
    return db, User, Client, Token
