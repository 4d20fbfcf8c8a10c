"""Introspection and refresh throughput, every target and baseline in one run, at two sizes.

    .venv/bin/python -m benchmarks.suite                        # 10,000 then 1,000,000 sessions
    .venv/bin/python -m benchmarks.suite --sizes 10000 --duration 3 --no-pgbouncer   # quick look
    .venv/bin/python -m benchmarks.suite --profile 2000         # cProfile of ours, in-process

All on 127.0.0.1, in one run, so the figures share the machine's state; only their ratios mean
anything on a shared machine. For each size:

1. the database grows to that many sessions (``INSERT ... SELECT generate_series``, in SQL: a
   million sessions with their amr claims and as many Authlib token rows take well under a
   minute), then ``VACUUM ANALYZE``;
2. access tokens are minted for a random sample of all the sessions; refresh tokens are
   derived from each sampled session's *current* counter, read back from the database before
   every wrk run (the seeded HMAC keys are known), several per session in order, so every
   token is used exactly once and a small table still feeds a long run;
3. each target (``suite_apps.py``) is served by ``gunicorn -w 2 -k gthread --threads 4``, checked
   with one real request, warmed up, then loaded with ``wrk -t2 -c16``; server CPU per request
   (gunicorn, this database's PostgreSQL backends and PgBouncer, from ``/proc``) is printed
   beside req/s because it moves much less when other jobs share the machine;
4. the same through PgBouncer in transaction mode (unless ``--no-pgbouncer``);
5. the ratios the issue sets targets for, each marked met or not.

Any non-2xx answer under load is counted and printed; a target whose check fails is skipped
with the reason.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import math
import os
import pstats
import pwd
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402
from benchmarks.harness import AUTHLIB_SCHEMA, authlib_models, fresh_database  # noqa: E402
from benchmarks.suite_apps import ISSUER, host_app  # noqa: E402
from oauth_sessions.core.refresh_tokens import encode_refresh_token  # noqa: E402
from oauth_sessions.flask.state import get_keyset  # noqa: E402
from oauth_sessions.jose.access_tokens import build_access_token_claims, sign_access_token  # noqa: E402
from oauth_sessions.storage import migrate  # noqa: E402
from oauth_sessions.storage.clients import ClientStore  # noqa: E402
from oauth_sessions.storage.database import create_auth_engine, normalize_url  # noqa: E402

TOKEN_LIFETIME = 3600
PLAIN_SCOPES = "profile offline_access"  # odd sessions: access + refresh token only
OPENID_SCOPES = "openid profile offline_access"  # even sessions: an ID token on every refresh
AUTHLIB_APP, AUTHLIB_RS = "bench-app", "bench-rs"
#: Upper bound of refreshes per second any target reaches here, to size the token files.
MAX_RATE = 6000
#: The same for plain Authlib's refresh grant (several times slower than ours).
AUTHLIB_MAX_RATE = 1000

INTROSPECT_LUA = """
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic %(basic)s"
function setup(thread) thread:set("seed", math.random(1, 1000000)) end
function init(args) math.randomseed(seed or os.time()) end
request = function()
  local t = tokens[math.random(#tokens)]
  return wrk.format(nil, nil, nil, "token=" .. t .. "&token_type_hint=access_token")
end
"""

# Each wrk thread takes every n-th line (n = threads) in order. The file lists the sampled
# sessions (an even number of them) round after round with the counter one higher each round,
# so a session always falls to the same thread and its next token is sent thousands of requests
# after the previous one, long after that one was answered.
REFRESH_LUA = """
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic %(basic)s"
function init(args)
  tokens = {}
  local i = 0
  for line in io.lines("%(tokens)s") do
    if i %% %(threads)d == id then tokens[#tokens + 1] = line end
    i = i + 1
  end
  pos = 0
end
request = function()
  pos = pos + 1
  local t = tokens[pos] or "exhausted"
  return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. t)
end
"""


def sid(i: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"s{i}".encode()).hexdigest())


def session_key(i: int) -> bytes:
    """The seeded HMAC key of session ``i`` (benchmark data only; real keys are random)."""
    return hashlib.sha256(f"k{i}".encode()).digest()


# --------------------------------------------------------------------------- database


def retrying(make: Any, seconds: float = 60) -> Any:
    """``make()``, again while the server has no connection slot free: the machine's
    PostgreSQL is shared, and other jobs may hold every slot for a moment."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return make()
        except Exception as exc:
            if "too many clients" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@dataclass
class Fixture:
    url: str
    users: int
    app_client: str = ""
    app_client_id: uuid.UUID | None = None
    app_secret: str = ""
    rs_client: str = ""
    rs_secret: str = ""
    authlib_secret: str = ""
    sessions: int = 0
    authlib_used: set[int] = field(default_factory=set)


def prepare(url: str, max_sessions: int) -> Fixture:
    """Schema, clients, users (for the largest size at once); no sessions yet."""
    fixture = Fixture(url, users=max(1, max_sessions // 10))
    engine = create_auth_engine(url)
    migrate.upgrade(engine)
    clients = ClientStore(engine, cache_seconds=0)
    app_client, fixture.app_secret = clients.create(
        name="bench app", redirect_uris=["http://127.0.0.1/cb"], scopes=OPENID_SCOPES)
    rs, fixture.rs_secret = clients.create(
        name="bench resource server", redirect_uris=["http://127.0.0.1/rs"], scopes="openid",
        can_introspect=True)
    fixture.app_client, fixture.rs_client = app_client.client_id, rs.client_id
    fixture.app_client_id = app_client.id
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO auth.users (id, email, created_at) "
            "SELECT md5('u' || i)::uuid, 'user' || i || '@bench.test', now() "
            "FROM generate_series(0, :n - 1) AS i"), {"n": fixture.users})
    engine.dispose()

    db, _user, _client, _token = authlib_models()
    fixture.authlib_secret = secrets.token_urlsafe(32)
    authlib_engine = create_engine(normalize_url(url))
    with authlib_engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {AUTHLIB_SCHEMA}"))
        db.metadata.create_all(conn)
        conn.execute(text(
            f"INSERT INTO {AUTHLIB_SCHEMA}.user (id, username) "
            "SELECT i, 'user' || i FROM generate_series(0, :n - 1) AS i"), {"n": fixture.users})
        for client_id, metadata in (
            (AUTHLIB_APP, {"token_endpoint_auth_method": "client_secret_basic",
                           "grant_types": ["authorization_code", "refresh_token"],
                           "scope": PLAIN_SCOPES}),
            (AUTHLIB_RS, {"token_endpoint_auth_method": "client_secret_basic",
                          "can_introspect": True}),
        ):
            conn.execute(text(
                f"INSERT INTO {AUTHLIB_SCHEMA}.oauth2_client (client_id, client_secret, "
                "client_id_issued_at, client_secret_expires_at, client_metadata, user_id) "
                "VALUES (:client, :secret, 0, 0, :meta, 0)"),
                {"client": client_id, "secret": fixture.authlib_secret, "meta": json.dumps(metadata)})
    authlib_engine.dispose()
    return fixture


def grow(fixture: Fixture, sessions: int) -> None:
    """Add sessions ``fixture.sessions .. sessions - 1`` (with amr claims) and as many Authlib
    token rows, all in SQL, then ``VACUUM ANALYZE``."""
    started = time.monotonic()
    engine = create_engine(normalize_url(fixture.url))
    bounds = {"lo": fixture.sessions, "hi": sessions, "users": fixture.users}
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, not_after, "
            "refreshed_at, oauth_client_id, refresh_token_hmac_key, refresh_token_counter, scopes, "
            "user_agent, ip) "
            "SELECT md5('s' || i)::uuid, md5('u' || (i % :users))::uuid, now(), now(), 'aal1', "
            "now() + interval '30 days', NULL, :client, "
            "translate(encode(sha256(('k' || i)::bytea), 'base64'), '+/=', '-_'), 0, "
            "CASE WHEN i % 2 = 0 THEN :openid ELSE :plain END, 'bench-agent/1', '127.0.0.1' "
            "FROM generate_series(:lo, :hi - 1) AS i"),
            {**bounds, "client": fixture.app_client_id, "openid": OPENID_SCOPES, "plain": PLAIN_SCOPES})
        conn.execute(text(
            "INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, "
            "authentication_method) SELECT md5('a' || i)::uuid, md5('s' || i)::uuid, now(), now(), "
            "'pwd' FROM generate_series(:lo, :hi - 1) AS i"), bounds)
        conn.execute(text(
            f"INSERT INTO {AUTHLIB_SCHEMA}.oauth2_token (client_id, token_type, access_token, "
            "refresh_token, scope, issued_at, access_token_revoked_at, refresh_token_revoked_at, "
            "expires_in, user_id) SELECT :client, 'Bearer', md5('a' || i) || md5('b' || i), "
            "md5('r' || i), :plain, extract(epoch from now())::int, 0, 0, :life, i % :users "
            "FROM generate_series(:lo, :hi - 1) AS i"),
            {**bounds, "client": AUTHLIB_APP, "plain": PLAIN_SCOPES, "life": TOKEN_LIFETIME})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    print(f"grew to {sessions:,} sessions (+ amr claims, + Authlib token rows) in "
          f"{time.monotonic() - started:.1f}s", flush=True)
    fixture.sessions = sessions


def access_tokens(fixture: Fixture, sample: int, path: Path) -> Path:
    """Access tokens (the library's default alg) for a random sample of all the sessions."""
    rows = random.Random(fixture.sessions).sample(range(fixture.sessions), min(sample, fixture.sessions))
    app = host_app(fixture.url)
    with app.app_context():
        keyset = get_keyset(app)  # creates the signing keys, active from now
        now = datetime.now(UTC)
        lines = [sign_access_token(keyset, build_access_token_claims(
            issuer=ISSUER, subject=str(uuid.UUID(hashlib.md5(f"u{i % fixture.users}".encode()).hexdigest())),
            audience=ISSUER, client_id=fixture.app_client, scope="profile", session_id=str(sid(i)),
            aal="aal1", amr=["pwd"], auth_time=int(now.timestamp()), lifetime=TOKEN_LIFETIME, now=now),
            now=now) for i in rows]
    path.write_text("\n".join(lines) + "\n")
    authlib = path.with_suffix(".authlib.txt")
    authlib.write_text("\n".join(hashlib.md5(f"a{i}".encode()).hexdigest()
                                 + hashlib.md5(f"b{i}".encode()).hexdigest() for i in rows) + "\n")
    return authlib


def refresh_sample(fixture: Fixture, sample: int, parity: int) -> list[int]:
    """An even number of random sessions of one parity (0: openid granted, 1: not)."""
    pool = range(parity, fixture.sessions, 2)
    rows = random.Random(fixture.sessions + parity).sample(pool, min(sample, len(pool)))
    return rows[: len(rows) - len(rows) % 2]


def refresh_tokens(fixture: Fixture, rows: list[int], seconds: float, path: Path) -> None:
    """The next tokens of ``rows`` from their current counters, enough rounds for ``seconds``."""
    dsn = normalize_url(fixture.url).replace("postgresql+psycopg://", "postgresql://")
    with retrying(lambda: psycopg.connect(dsn)) as conn:
        counters = dict(conn.execute(
            "SELECT id, refresh_token_counter FROM auth.sessions WHERE id = ANY(%s)",
            [[sid(i) for i in rows]]).fetchall())
    rounds = max(1, math.ceil(seconds * MAX_RATE / len(rows)))
    lines = [encode_refresh_token(sid(i), counters[sid(i)] + r, session_key(i))
             for r in range(rounds) for i in rows]
    path.write_text("\n".join(lines) + "\n")


def authlib_refresh_tokens(fixture: Fixture, seconds: float, path: Path) -> None:
    """Stored Authlib refresh tokens never used before (Authlib's rotation revokes them)."""
    wanted = int(seconds * AUTHLIB_MAX_RATE)
    free = [i for i in random.Random(len(fixture.authlib_used)).sample(
        range(fixture.sessions), min(fixture.sessions, wanted + len(fixture.authlib_used)))
            if i not in fixture.authlib_used][:wanted]
    fixture.authlib_used.update(free)
    path.write_text("\n".join(hashlib.md5(f"r{i}".encode()).hexdigest() for i in free) + "\n")


# --------------------------------------------------------------------------- PgBouncer


@contextmanager
def pgbouncer(url: str) -> Iterator[tuple[str, int]]:
    """PgBouncer in transaction mode in front of ``url``'s server; yields its URL and pid."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.access(binary, os.X_OK):
        raise SystemExit("pgbouncer is required (apt-get install -y pgbouncer), or pass --no-pgbouncer")
    parsed = make_url(normalize_url(url))
    port = harness.free_port()
    workdir = Path(tempfile.mkdtemp(prefix="bench_pgbouncer_"))
    (workdir / "users.txt").write_text(f'"{parsed.username or "postgres"}" ""\n')
    config = [
        "[databases]", f"* = host={parsed.host or '127.0.0.1'} port={parsed.port or 5432}",
        "[pgbouncer]", "listen_addr = 127.0.0.1", f"listen_port = {port}", "unix_socket_dir =",
        "auth_type = trust", f"auth_file = {workdir / 'users.txt'}", "pool_mode = transaction",
        "default_pool_size = 20", "max_client_conn = 500", "server_reset_query =",
        f"logfile = {workdir / 'pgbouncer.log'}", f"pidfile = {workdir / 'pgbouncer.pid'}",
        "ignore_startup_parameters = extra_float_digits,options",
    ]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        account = pwd.getpwnam("postgres")
        config.append("user = postgres")
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
    (workdir / "pgbouncer.ini").write_text("\n".join(config) + "\n")
    proc = subprocess.Popen([binary, str(workdir / "pgbouncer.ini")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                psycopg.connect(f"host=127.0.0.1 port={port} user={parsed.username or 'postgres'} "
                                f"dbname={parsed.database}", connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("pgbouncer did not start") from None
                time.sleep(0.1)
        yield parsed.set(host="127.0.0.1", port=port).render_as_string(hide_password=False), proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Run:
    endpoint: str  # "introspection" or "refresh"
    target: str  # a suite_apps target
    variant: str = ""  # "id-token" for the sessions granted openid
    pooler: bool = False

    @property
    def label(self) -> str:
        name = self.target + (f" {self.variant}" if self.variant else "")
        return name + (" @pgbouncer" if self.pooler else "")


@contextmanager
def serving(target: str, url: str, pooler_pid: int | None) -> Iterator[tuple[str, Any]]:
    """gunicorn for ``target``; yields its base URL and a CPU snapshot function."""
    if pooler_pid is not None:
        os.environ["BENCH_POOLER"] = "transaction"
    try:
        with harness.gunicorn("benchmarks.suite_apps", target, url) as (base, pgid):
            def snapshot() -> dict[int, float]:
                usage: dict[int, float] = retrying(lambda: harness.server_cpu_seconds(pgid, url))
                if pooler_pid is not None:
                    stat = Path(f"/proc/{pooler_pid}/stat").read_text().rsplit(")", 1)[1].split()
                    usage[pooler_pid] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
                return usage
            yield base, snapshot
    finally:
        os.environ.pop("BENCH_POOLER", None)


def check(base: str, run: Run, token: str, auth: tuple[str, str]) -> str | None:
    """One real request; the reason it is not a success, or None."""
    if run.endpoint == "introspection":
        response = requests.post(base + "/oauth/introspect", auth=auth, timeout=90,
                                 data={"token": token, "token_type_hint": "access_token"})
        ok = response.status_code == 200 and response.json().get("active") is True
    else:
        response = requests.post(base + "/oauth/token", auth=auth, timeout=90,
                                 data={"grant_type": "refresh_token", "refresh_token": token})
        ok = response.status_code == 200 and response.json().get("refresh_token") not in (None, "", token)
        if ok and run.variant == "id-token" and run.target not in ("trivial", "floor"):
            ok = "id_token" in response.json()
    return None if ok else f"{response.status_code} {response.text[:200]}"


def load(fixture: Fixture, base: str, run: Run, args: argparse.Namespace, tmp: Path,
         tokens: dict[str, Any], snapshot: Any, seconds: float) -> dict[str, float] | None:
    """One wrk run (``seconds`` long); the figures, CPU per request included."""
    if run.endpoint == "introspection":
        authlib = run.target == "authlib"
        auth = (AUTHLIB_RS, fixture.authlib_secret) if authlib else (fixture.rs_client, fixture.rs_secret)
        token_file = tokens["authlib_access"] if authlib else tokens["access"]
        script = INTROSPECT_LUA % {"tokens": token_file, "basic": harness.basic_credentials(auth)}
        path = base + "/oauth/introspect"
    else:
        token_file = tmp / "refresh.txt"
        if run.target == "authlib":
            auth = (AUTHLIB_APP, fixture.authlib_secret)
            authlib_refresh_tokens(fixture, seconds + 1, token_file)
        else:
            auth = (fixture.app_client, fixture.app_secret)
            rows = tokens["openid_rows"] if run.variant == "id-token" else tokens["plain_rows"]
            refresh_tokens(fixture, rows, seconds + 1, token_file)
        script = REFRESH_LUA % {"tokens": token_file, "basic": harness.basic_credentials(auth),
                                "threads": args.threads}
        path = base + "/oauth/token"
    lua = tmp / "run.lua"
    lua.write_text(script)
    before = snapshot()
    result = harness.run_wrk(path, lua, int(seconds), args.connections, args.threads)
    result["cpu"] = harness.cpu_per_request(before, snapshot(), int(result["requests"]))
    return result


def first_token(fixture: Fixture, run: Run, tokens: dict[str, Any], tmp: Path) -> tuple[str, tuple[str, str]]:
    if run.endpoint == "introspection":
        if run.target == "authlib":
            return tokens["authlib_access"].read_text().split()[0], (AUTHLIB_RS, fixture.authlib_secret)
        return tokens["access"].read_text().split()[0], (fixture.rs_client, fixture.rs_secret)
    if run.target == "authlib":
        path = tmp / "check.txt"
        authlib_refresh_tokens(fixture, 4 / AUTHLIB_MAX_RATE, path)
        return path.read_text().split()[0], (AUTHLIB_APP, fixture.authlib_secret)
    rows = tokens["openid_rows"] if run.variant == "id-token" else tokens["plain_rows"]
    path = tmp / "check.txt"
    refresh_tokens(fixture, rows[:2], 0, path)
    return path.read_text().split()[0], (fixture.app_client, fixture.app_secret)


def plan(with_wsgi: bool) -> list[tuple[str, list[Run]]]:
    """(target served, its runs): one gunicorn per target, both endpoints through it."""
    ours = ["host"] + (["wsgi"] if with_wsgi else [])
    targets: list[tuple[str, list[Run]]] = [
        ("trivial", [Run("introspection", "trivial"), Run("refresh", "trivial")]),
        ("floor", [Run("introspection", "floor"), Run("refresh", "floor")]),
        ("authlib", [Run("introspection", "authlib"), Run("refresh", "authlib")]),
    ]
    for target in ours:
        targets.append((target, [Run("introspection", target), Run("refresh", target),
                                 Run("refresh", target, "id-token")]))
    targets.append(("host-es256", [Run("refresh", "host-es256", "id-token")]))
    return targets


def pooled_plan(with_wsgi: bool) -> list[tuple[str, list[Run]]]:
    ours = ["host"] + (["wsgi"] if with_wsgi else [])
    return [("floor", [Run("introspection", "floor", pooler=True), Run("refresh", "floor", pooler=True)])] + [
        (t, [Run("introspection", t, pooler=True), Run("refresh", t, pooler=True)]) for t in ours]


def measure_size(fixture: Fixture, args: argparse.Namespace, tmp: Path,
                 with_wsgi: bool) -> dict[Run, dict[str, float]]:
    tokens: dict[str, Any] = {"access": tmp / "access.txt"}
    tokens["authlib_access"] = access_tokens(fixture, args.sample, tokens["access"])
    tokens["plain_rows"] = refresh_sample(fixture, args.sample, 1)
    tokens["openid_rows"] = refresh_sample(fixture, args.sample, 0)
    results: dict[Run, dict[str, float]] = {}
    stages: list[tuple[str | None, list[tuple[str, list[Run]]]]] = [(None, plan(with_wsgi))]
    if not args.no_pgbouncer:
        stages.append(("pgbouncer", pooled_plan(with_wsgi)))
    for stage, targets in stages:
        with (pgbouncer(fixture.url) if stage else _direct(fixture.url)) as (url, pooler_pid):
            for target, runs in targets:
                try:
                    measure_target(fixture, args, tmp, tokens, target, runs, url, pooler_pid, results)
                except RuntimeError as exc:  # the target did not start (e.g. a new entry point)
                    print(f"  {target:42} skipped: {exc}", flush=True)
    return results


def measure_target(fixture: Fixture, args: argparse.Namespace, tmp: Path, tokens: dict[str, Any],
                   target: str, runs: list[Run], url: str, pooler_pid: int | None,
                   results: dict[Run, dict[str, float]]) -> None:
    with serving(target, url, pooler_pid) as (base, snapshot):
        for run in runs:
            token, auth = first_token(fixture, run, tokens, tmp)
            problem = check(base, run, token, auth)
            if problem:
                print(f"  {run.endpoint:13} {run.label:28} skipped: {problem}", flush=True)
                continue
            load(fixture, base, run, args, tmp, tokens, snapshot, args.warmup)
            result = load(fixture, base, run, args, tmp, tokens, snapshot, args.duration)
            if result is None:
                continue
            results[run] = result
            errors = f"  {result['errors']:.0f} non-2xx" if result["errors"] else ""
            print(f"  {run.endpoint:13} {run.label:28} {result['rps']:7.0f} req/s  "
                  f"p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms  "
                  f"CPU {result['cpu']:.3f} ms/req{errors}", flush=True)


@contextmanager
def _direct(url: str) -> Iterator[tuple[str, None]]:
    yield url, None


# --------------------------------------------------------------------------- report


def report(size: int, results: dict[Run, dict[str, float]]) -> None:
    by_label = {(r.endpoint, r.label): v for r, v in results.items()}
    print(f"\n{size:,} sessions")
    print(f"{'endpoint':14}{'target':30}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU ms':>8}"
          f"{'/trivial':>9}{'/floor':>8}{'/authlib':>9}{'CPU trivial/this':>18}")
    for (endpoint, label), v in by_label.items():
        trivial = by_label.get((endpoint, "trivial"))
        floor = by_label.get((endpoint, "floor @pgbouncer" if "@pgbouncer" in label else "floor"))
        authlib = by_label.get((endpoint, "authlib"))

        def share(base: dict[str, float] | None, v: dict[str, float] = v) -> str:
            return f"{v['rps'] / base['rps']:.2f}" if base else "-"

        cpu_share = f"{trivial['cpu'] / v['cpu']:.2f}" if trivial and v["cpu"] else "-"
        print(f"{endpoint:14}{label:30}{v['rps']:8.0f}{v['p50']:8.2f}{v['p99']:8.2f}{v['cpu']:8.3f}"
              f"{share(trivial):>9}{share(floor):>8}{share(authlib):>9}{cpu_share:>18}")


def verdicts(all_results: dict[int, dict[Run, dict[str, float]]]) -> None:
    print("\nTargets of issue 16 (ratios of req/s in the same run; 'CPU trivial/this' above is the"
          " same ratio computed from CPU per request, which a shared machine disturbs less):")
    for size, results in all_results.items():
        got = {(r.endpoint, r.label): v["rps"] for r, v in results.items()}
        for endpoint, ours, base, goal in (
            ("introspection", "host", "trivial", 0.55), ("introspection", "wsgi", "floor", 0.95),
            ("refresh", "host", "trivial", 0.33), ("refresh", "wsgi", "floor", 0.90),
        ):
            a, b = got.get((endpoint, ours)), got.get((endpoint, base))
            value = a / b if a and b else None
            verdict = ("not measured" if value is None
                       else f"{value:.2f} {'met' if value >= goal else 'NOT met'}")
            print(f"  {size:>9,}  {endpoint:13} {ours:5} / {base:8} >= {goal:.2f}: {verdict}")
    sizes = sorted(all_results)
    if len(sizes) >= 2:
        small, large = all_results[sizes[0]], all_results[sizes[-1]]
        for run, v in small.items():
            if run.target in ("host", "wsgi", "host-es256") and run in large:
                change = large[run]["rps"] / v["rps"] - 1
                print(f"  {sizes[-1]:,} vs {sizes[0]:,}: {run.endpoint:13} {run.label:28} "
                      f"{change:+.0%} req/s ({'within' if abs(change) <= 0.10 else 'NOT within'} 10%)")


# --------------------------------------------------------------------------- profile


def profile(fixture: Fixture, requests_count: int) -> None:
    """cProfile of ours the Flask way in (host app), in-process, without gunicorn or wrk."""
    from werkzeug.test import EnvironBuilder

    app = host_app(fixture.url)
    basic_rs = "Basic " + harness.basic_credentials((fixture.rs_client, fixture.rs_secret))
    basic_app = "Basic " + harness.basic_credentials((fixture.app_client, fixture.app_secret))
    with tempfile.TemporaryDirectory() as tmp:
        access = Path(tmp) / "access.txt"
        access_tokens(fixture, min(requests_count, 2000), access)
        access_list = access.read_text().split()
        rows = refresh_sample(fixture, requests_count, 1)
        refresh_path = Path(tmp) / "refresh.txt"
        refresh_tokens(fixture, rows, 0, refresh_path)
        refresh_list = refresh_path.read_text().split()

    def environ(path: str, form: dict[str, str], auth: str) -> dict[str, Any]:
        return EnvironBuilder(path=path, method="POST", data=form,  # type: ignore[no-any-return]
                              headers={"Authorization": auth}).get_environ()

    def call(env: dict[str, Any]) -> bytes:
        status: list[str] = []
        body = b"".join(app(env, lambda s, h, e=None: status.append(s)))
        if not status[0].startswith("200"):
            raise SystemExit(f"{env['PATH_INFO']}: {status[0]} {body[:200]!r}")
        return body

    for endpoint, calls in (
        ("introspection", [environ("/oauth/introspect", {"token": access_list[i % len(access_list)],
                                                         "token_type_hint": "access_token"}, basic_rs)
                           for i in range(requests_count)]),
        ("refresh", [environ("/oauth/token", {"grant_type": "refresh_token", "refresh_token": t},
                             basic_app) for t in refresh_list[:requests_count]]),
    ):
        for env in calls[:20]:  # warm caches (keys, client record, prepared statements)
            call(env)
        profiler = cProfile.Profile(time.process_time)  # CPU time: waits on the DB count nothing
        started = time.process_time()
        profiler.enable()
        for env in calls[20:]:  # environs built beforehand: the profile is of the app alone
            call(env)
        profiler.disable()
        spent = (time.process_time() - started) / max(1, len(calls) - 20) * 1000
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(18)
        print(f"\n=== {endpoint}: {spent:.3f} ms CPU per request in-process (with cProfile on) ===")
        shares: dict[str, float] = {}
        for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
            shares[_component(filename, function)] = shares.get(_component(filename, function), 0) + row[2]
        total = sum(shares.values()) or 1.0
        print("own CPU time by component: " + ", ".join(
            f"{name} {value / total:.0%}" for name, value in sorted(shares.items(), key=lambda kv: -kv[1])
            if value / total >= 0.01))
        print("\n".join(out.getvalue().splitlines()[5:]))


def _component(filename: str, function: str) -> str:
    """Which part of the stack a profiled function belongs to, for the summary line."""
    for marker, name in (("oauth_sessions/storage", "ours: storage"), ("oauth_sessions/core", "ours: core"),
                         ("oauth_sessions/jose", "ours: jose"), ("oauth_sessions/protocol", "ours: protocol"),
                         ("oauth_sessions/flask", "ours: flask"), ("oauth_sessions", "ours: other"),
                         ("/authlib/", "authlib"), ("/werkzeug/", "werkzeug"), ("/flask/", "flask"),
                         ("/psycopg", "psycopg+libpq"), ("/sqlalchemy/", "sqlalchemy"),
                         ("/joserfc/", "joserfc"), ("benchmarks/", "benchmark driver")):
        if marker in filename:
            return name
    if "cryptography" in function or "openssl" in function or "_hashlib" in function:
        return "crypto (OpenSSL)"
    if "pgconn" in function or "psycopg" in function or "'exec_" in function or "'prepare'" in function:
        return "psycopg+libpq"
    return "python stdlib/builtins"


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000",
                        help="comma-separated session counts, measured in increasing order")
    parser.add_argument("--sample", type=int, default=20_000, help="sessions sampled per size")
    parser.add_argument("--duration", type=int, default=5, help="seconds of load per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-pgbouncer", action="store_true", help="skip the PgBouncer stage")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead of the load: cProfile N requests of each endpoint in-process")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if not args.profile and shutil.which("wrk") is None:
        raise SystemExit("wrk is required: apt-get install -y wrk")
    try:
        import oauth_sessions.wsgi  # noqa: F401
        with_wsgi = True
    except ImportError:
        with_wsgi = False
        print("oauth_sessions.wsgi does not exist yet: the WSGI target is left out")

    with fresh_database(args.keep_db) as url, tempfile.TemporaryDirectory() as tmp:
        fixture = prepare(url, sizes[-1])
        if args.profile:
            grow(fixture, sizes[0])
            profile(fixture, args.profile)
            return
        all_results: dict[int, dict[Run, dict[str, float]]] = {}
        started = time.monotonic()
        for size in sizes:
            grow(fixture, size)
            print(f"{size:,} sessions: wrk -t{args.threads} -c{args.connections} -d{args.duration}s "
                  f"after {args.warmup}s of warm-up; gunicorn -w 2 -k gthread --threads 4; "
                  f"{os.cpu_count()} CPUs shared by wrk, gunicorn, PostgreSQL and PgBouncer", flush=True)
            all_results[size] = measure_size(fixture, args, Path(tmp), with_wsgi)
        for size, results in all_results.items():
            report(size, results)
        verdicts(all_results)
        print(f"\nmeasured in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
