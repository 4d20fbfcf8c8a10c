"""Refresh-token grant throughput on PostgreSQL: ours against a trivial Flask view and plain Authlib.

    .venv/bin/python -m benchmarks.refresh [--sessions 1000000] [--duration 10]

All on 127.0.0.1, in one run, so the three figures share the machine's state:

1. a fresh database: the auth schema migrated, ``--sessions`` sessions (each with a ``pwd``
   amr claim) seeded with ``INSERT ... SELECT generate_series``, as many stored token rows for
   the Authlib baseline, ``ANALYZE``;
2. refresh tokens for a random sample of sessions (counter 0; the seeded HMAC keys are
   ``sha256('k' || i)``, known to the driver) and the Authlib refresh tokens of the same rows,
   written to files: every token is used once, as a real client would;
3. for each target (trivial, authlib, ours) ``gunicorn -w 2 -k gthread --threads 4``, a check
   that a sample refresh answers 200 with a new refresh token, a warm-up, then ``wrk -t2 -c16``
   whose Lua script gives each wrk thread its own slice of the token file;
4. the statements per refresh counted in-process (SQLAlchemy cursor events + pool pre-pings),
   and ``EXPLAIN ANALYZE`` of the two hot statements (the UPDATE inside a rolled-back
   transaction) to show each touches ``auth.sessions`` through its primary key only;
5. req/s, p50, p99 and the ratios ours/trivial (target >= 0.40) and ours/authlib (>= 2.0).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402
from benchmarks.harness import AUTHLIB_SCHEMA, authlib_models  # noqa: E402
from benchmarks.refresh_apps import authlib_app, ours_app  # noqa: E402
from oauth_sessions.core.refresh_tokens import encode_refresh_token  # noqa: E402
from oauth_sessions.storage import migrate  # noqa: E402
from oauth_sessions.storage.clients import ClientStore  # noqa: E402
from oauth_sessions.storage.database import create_auth_engine, normalize_url  # noqa: E402

AUTHLIB_CLIENT = "bench-app"
OPENID = "openid "  # granted on top of --scopes to the even sessions

LUA = """
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
    """The seeded key of session ``i`` (benchmark data only; real keys are random)."""
    return hashlib.sha256(f"k{i}".encode()).digest()


def authlib_refresh(i: int) -> str:
    return hashlib.md5(f"r{i}".encode()).hexdigest()


# --------------------------------------------------------------------------- database


def seed(url: str, sessions: int, scopes: str) -> dict[str, Any]:
    """Sessions (+ amr claims) for ours, stored token rows for Authlib; the same count of each.

    Odd sessions are granted ``scopes``; even ones ``openid`` on top, so their refreshes also
    sign an ID token (the ``ours-openid`` target).
    """
    engine = create_auth_engine(url)
    migrate.upgrade(engine)
    users = max(1, sessions // 10)
    client, secret = ClientStore(engine, cache_seconds=0).create(
        name="bench app", redirect_uris=["http://127.0.0.1/cb"], scopes=OPENID + scopes)
    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO auth.users (id, email, created_at) "
            "SELECT md5('u' || i)::uuid, 'user' || i || '@bench.test', now() "
            "FROM generate_series(0, :n - 1) AS i"), {"n": users})
        conn.execute(text(
            "INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, not_after, "
            "refreshed_at, oauth_client_id, refresh_token_hmac_key, refresh_token_counter, scopes, "
            "user_agent, ip) "
            "SELECT md5('s' || i)::uuid, md5('u' || (i % :users))::uuid, now(), now(), 'aal1', "
            "now() + interval '30 days', NULL, :client, "
            "translate(encode(sha256(('k' || i)::bytea), 'base64'), '+/=', '-_'), 0, "
            "CASE WHEN i % 2 = 0 THEN :openid || :scopes ELSE :scopes END, "
            "'bench-agent/1', '127.0.0.1' FROM generate_series(0, :n - 1) AS i"),
            {"n": sessions, "users": users, "client": client.id, "scopes": scopes, "openid": OPENID})
        conn.execute(text(
            "INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, "
            "authentication_method) SELECT md5('a' || i)::uuid, md5('s' || i)::uuid, now(), now(), "
            "'pwd' FROM generate_series(0, :n - 1) AS i"), {"n": sessions})
    print(f"seeded {sessions:,} sessions (+ amr claims) and {users:,} users "
          f"in {time.monotonic() - started:.1f}s", flush=True)

    db, _user, _client, _token = authlib_models()
    authlib_engine = create_engine(normalize_url(url))
    authlib_secret = secrets.token_urlsafe(32)
    started = time.monotonic()
    with authlib_engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {AUTHLIB_SCHEMA}"))
        db.metadata.create_all(conn)
        conn.execute(text(
            f"INSERT INTO {AUTHLIB_SCHEMA}.user (id, username) "
            "SELECT i, 'user' || i FROM generate_series(0, :n - 1) AS i"), {"n": users})
        conn.execute(text(
            f"INSERT INTO {AUTHLIB_SCHEMA}.oauth2_token (client_id, token_type, access_token, "
            "refresh_token, scope, issued_at, access_token_revoked_at, refresh_token_revoked_at, "
            "expires_in, user_id) SELECT :client, 'Bearer', md5('a' || i) || md5('b' || i), "
            "md5('r' || i), :scopes, extract(epoch from now())::int, 0, 0, 3600, i % :users "
            "FROM generate_series(0, :n - 1) AS i"),
            {"n": sessions, "users": users, "client": AUTHLIB_CLIENT, "scopes": scopes})
        conn.execute(text(
            f"INSERT INTO {AUTHLIB_SCHEMA}.oauth2_client (client_id, client_secret, "
            "client_id_issued_at, client_secret_expires_at, client_metadata, user_id) "
            "VALUES (:client, :secret, 0, 0, :meta, 0)"),
            {"client": AUTHLIB_CLIENT, "secret": authlib_secret, "meta": json.dumps({
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code", "refresh_token"], "scope": scopes})})
    with authlib_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    print(f"seeded {sessions:,} Authlib token rows in {time.monotonic() - started:.1f}s", flush=True)
    authlib_engine.dispose()
    engine.dispose()
    return {"client": client, "secret": secret, "authlib_secret": authlib_secret}


def write_tokens(rows: list[int], directory: Path, name: str) -> tuple[Path, Path]:
    ours, theirs = directory / f"ours-{name}.txt", directory / f"authlib-{name}.txt"
    ours.write_text("\n".join(encode_refresh_token(sid(i), 0, session_key(i)) for i in rows) + "\n")
    theirs.write_text("\n".join(authlib_refresh(i) for i in rows) + "\n")
    return ours, theirs


# --------------------------------------------------------------------------- load


def gunicorn(target: str, url: str) -> Any:
    return harness.gunicorn("benchmarks.refresh_apps", target, url)


def check_refresh(base: str, token: str, auth: tuple[str, str]) -> None:
    """Every figure is for real answers: a sample refresh must return a new refresh token."""
    response = requests.post(base + "/oauth/token", auth=auth, timeout=10,
                             data={"grant_type": "refresh_token", "refresh_token": token})
    body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") \
        else {}
    if response.status_code != 200 or not body.get("refresh_token") or \
            body["refresh_token"] == token:
        raise SystemExit(f"{base} did not refresh: {response.status_code} {response.text[:300]}")


def run_wrk(url: str, tokens: Path, auth: tuple[str, str], duration: int, directory: Path,
            connections: int, threads: int) -> dict[str, float]:
    script = directory / "refresh.lua"
    script.write_text(LUA % {"tokens": tokens, "basic": harness.basic_credentials(auth),
                             "threads": threads})
    return harness.run_wrk(url, script, duration, connections, threads)


# --------------------------------------------------------------------------- statements and plans


def count_round_trips(app: Any, tokens: list[str], auth: tuple[str, str]) -> float:
    """Database round trips per refresh through the Flask test client.

    Counted at the driver: every ``psycopg`` cursor execution (statements, the pool's
    pre-ping), every command the connection sends itself (``BEGIN``, ``COMMIT``,
    ``ROLLBACK``) and every libpq call of ``rotation_pg`` (a first ``PREPARE`` on a connection
    is not counted: it happens once per connection), so a path that bypasses SQLAlchemy is
    counted too.
    """
    import psycopg
    from psycopg._connection_base import BaseConnection

    from oauth_sessions.storage import rotation_pg

    count = [0]
    original_execute, original_command = psycopg.Cursor.execute, BaseConnection._exec_command
    original_run = rotation_pg.PgStatements._run

    def counted_run(self: Any, *args: Any, **kwargs: Any) -> Any:  # libpq: PQexecPrepared
        count[0] += 1
        return original_run(self, *args, **kwargs)

    def counted_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original_execute(self, *args, **kwargs)

    def counted_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return original_command(self, *args, **kwargs)

    header = {"Authorization": "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()}
    http = app.test_client()
    for token in tokens[:10]:  # warm what may be cached (signing keys, the client record)
        http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token},
                  headers=header)
    psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
    BaseConnection._exec_command = counted_command  # type: ignore[method-assign]
    rotation_pg.PgStatements._run = counted_run  # type: ignore[method-assign]
    try:
        measured = tokens[10:]
        for token in measured:
            response = http.post("/oauth/token", headers=header,
                                 data={"grant_type": "refresh_token", "refresh_token": token})
            assert response.status_code == 200, response.get_json()
    finally:
        psycopg.Cursor.execute = original_execute  # type: ignore[method-assign]
        BaseConnection._exec_command = original_command  # type: ignore[method-assign]
        rotation_pg.PgStatements._run = original_run  # type: ignore[method-assign]
    return count[0] / len(measured)


def explain_hot_statements(url: str, i: int) -> str:
    """EXPLAIN ANALYZE of the SQL the refresh path sends (read, then compare-and-swap), as the
    prepared statements of ``oauth_sessions.storage.rotation_pg`` with this session's values."""
    from oauth_sessions.storage.rotation_pg import CAS_SQL, READ_SQL

    engine = create_auth_engine(url)
    now = datetime.now(UTC)
    out = []
    try:
        with engine.connect() as conn:
            for label, name, sql, args in (
                ("read (PK + amr claims)", "bench_read", READ_SQL, [str(sid(i))]),
                ("compare-and-swap", "bench_cas", CAS_SQL, [
                    str(sid(i)), "0", now.replace(tzinfo=None).isoformat(), now.isoformat(),
                    "bench", "127.0.0.1"]),
            ):
                conn.exec_driver_sql(f"PREPARE {name} AS {sql.decode()}")
                values = ", ".join("'" + a.replace("'", "''") + "'" for a in args)
                plan = conn.exec_driver_sql(
                    f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE {name}({values})").all()
                out.append(f"-- {label}\n" + "\n".join(r[0] for r in plan))
            conn.rollback()  # the UPDATE of EXPLAIN ANALYZE is undone
    finally:
        engine.dispose()
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=45_000, help="tokens per measured run")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per target")
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds of all targets; the best of each target counts")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scopes", default="profile offline_access",
                        help="granted scopes of the 'ours' sessions (what the baselines issue: an "
                             "access and a refresh token); 'ours-openid' sessions add openid, so "
                             "each of their refreshes also signs an ID token")
    parser.add_argument("--flask-path", action="store_true",
                        help="also measure ours-flask (the same Flask way in since the hot path was removed)")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required: apt-get install -y wrk")
    targets = ["trivial", "authlib", "trivial+write", "ours", "ours-openid"]
    targets += ["ours-flask"] if args.flask_path else []
    warm, count = 8_000, 210
    # odd sessions serve every target but ours-openid, even ones ours-openid: half each
    needed = 2 * (args.rounds * (len(targets) - 1) * (args.sample + warm + 1) + count + 1)
    if args.sessions < needed:
        raise SystemExit(f"--sessions must be at least {needed} (each token is used once)")

    with harness.fresh_database(args.keep_db, "oauth_sessions_bench_refresh") as url, \
            tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        ids = seed(url, args.sessions, args.scopes)
        shuffled = random.Random(7).sample(range(args.sessions), args.sessions)
        odd, even = iter([i for i in shuffled if i % 2]), iter([i for i in shuffled if not i % 2])

        def take(n: int, openid: bool = False) -> list[int]:
            rows = even if openid else odd
            return [next(rows) for _ in range(n)]

        auth = {"authlib": (AUTHLIB_CLIENT, ids["authlib_secret"])}
        ours_auth = (ids["client"].client_id, ids["secret"])
        runs: dict[str, list[dict[str, float]]] = {t: [] for t in targets}
        for round_number in range(1, args.rounds + 1):
            for target in targets:
                label = f"{target}-{round_number}"
                openid = target == "ours-openid"
                main_ours, main_theirs = write_tokens(take(args.sample, openid), directory, label)
                warm_ours, warm_theirs = write_tokens(take(warm, openid), directory, label + "-warm")
                check_row = take(1, openid)[0]
                theirs = target == "authlib"
                credentials = auth.get(target, ours_auth)
                with gunicorn(target, url) as (base, pid):
                    check_refresh(base, authlib_refresh(check_row) if theirs else
                                  encode_refresh_token(sid(check_row), 0, session_key(check_row)),
                                  credentials)
                    run_wrk(base + "/oauth/token", warm_theirs if theirs else warm_ours, credentials,
                            2, directory, args.connections, args.threads)
                    before = harness.server_cpu_seconds(pid, url)
                    r = run_wrk(base + "/oauth/token", main_theirs if theirs else main_ours,
                                credentials, args.duration, directory, args.connections, args.threads)
                    r["cpu_ms"] = harness.cpu_per_request(
                        before, harness.server_cpu_seconds(pid, url), int(r["requests"]))
                runs[target].append(r)
                print(f"round {round_number} {target:16} {r['rps']:9.0f} req/s  p50 {r['p50']:6.2f} ms"
                      f"  p99 {r['p99']:6.2f} ms  cpu {r['cpu_ms']:5.2f} ms/req  "
                      f"({r['requests']:.0f} requests, {r['errors']:.0f} errors)", flush=True)

        counted = take(count)
        ours_trips = count_round_trips(
            ours_app(url), [encode_refresh_token(sid(i), 0, session_key(i)) for i in counted[:count // 2]],
            ours_auth)
        theirs_trips = count_round_trips(
            authlib_app(url), [authlib_refresh(i) for i in counted[count // 2:]], auth["authlib"])
        plans = explain_hot_statements(url, take(1)[0])

    results = {t: max(rs, key=lambda r: r["rps"]) for t, rs in runs.items()}
    o, t, a = results["ours"], results["trivial"], results["authlib"]
    print()
    print(f"sessions {args.sessions:,}; scopes {args.scopes!r}; wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration}s; gunicorn -w 2 -k gthread --threads 4; {os.cpu_count()} CPUs; "
          f"best of {args.rounds} interleaved rounds")
    cpu = {t: min(r["cpu_ms"] for r in rs) for t, rs in runs.items()}
    print(f"{'target':18}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'cpu ms/req':>12}")
    for name, r in results.items():
        print(f"{name:18}{r['rps']:10.0f}{r['p50']:10.2f}{r['p99']:10.2f}{r['errors']:8.0f}"
              f"{cpu[name]:12.3f}")
    print(f"ours / trivial = {o['rps'] / t['rps']:.2f}   (target >= 0.40)")
    print(f"ours / authlib = {o['rps'] / a['rps']:.2f}   (target >= 2.00)")
    w = results["trivial+write"]
    print(f"floor of any design that reads and rotates the row: trivial+write / trivial = "
          f"{w['rps'] / t['rps']:.2f}; ours / trivial+write = {o['rps'] / w['rps']:.2f}")
    n = results["ours-openid"]
    print(f"with an ID token per refresh (openid granted): ours-openid / trivial = "
          f"{n['rps'] / t['rps']:.2f}, ours-openid / authlib = {n['rps'] / a['rps']:.2f}")
    if "ours-flask" in results:
        f = results["ours-flask"]
        print(f"Flask way in: ours-flask / trivial = {f['rps'] / t['rps']:.2f}, "
              f"ours-flask / authlib = {f['rps'] / a['rps']:.2f}")
    print(f"server CPU per request (gunicorn + this database's PostgreSQL backends, lowest of the "
          f"rounds): trivial / ours = {cpu['trivial'] / cpu['ours']:.2f}, "
          f"authlib / ours = {cpu['authlib'] / cpu['ours']:.2f}")
    print(f"database round trips per refresh (statements, pre-pings, BEGIN/COMMIT): "
          f"ours {ours_trips:.2f}, authlib {theirs_trips:.2f}")
    print()
    print(plans)


if __name__ == "__main__":
    main()
