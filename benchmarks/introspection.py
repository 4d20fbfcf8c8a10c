"""Introspection throughput on PostgreSQL: ours against a trivial Flask view and plain Authlib.

    .venv/bin/python -m benchmarks.introspection [--sessions 1000000] [--duration 10]

What it does, all on 127.0.0.1 and in one run so the three figures share the machine's state:

1. creates a fresh database, migrates the auth schema, seeds ``--sessions`` sessions with
   ``INSERT ... SELECT generate_series`` (and as many stored tokens for the Authlib baseline),
   ``ANALYZE``;
2. mints access tokens for a random sample of the sessions (and picks the same sample of
   Authlib tokens) into files;
3. for each target (trivial, authlib, ours) starts ``gunicorn -w 2 -k gthread --threads 4``,
   checks that sample tokens answer ``active: true``, warms up, then runs ``wrk -t2 -c16`` with
   a Lua script that sends a random token of the sample per request;
4. counts the database statements per introspection in-process (Flask test client, SQLAlchemy
   cursor events + pool pre-pings);
5. prints req/s, p50, p99 and the ratios ours/trivial and ours/authlib; drops the database.

Targets: ours >= 60% of trivial, >= 3x authlib, <= 2 database round trips per introspection.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import secrets
import shutil
import statistics
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
from benchmarks.harness import AUTHLIB_SCHEMA, authlib_models, fresh_database  # noqa: E402
from benchmarks.introspection_apps import (  # noqa: E402
    ISSUER,
    QueryCounter,
    authlib_app,
    ours_app,
)
from oauth_sessions.flask.state import get_keyset  # noqa: E402
from oauth_sessions.jose.access_tokens import build_access_token_claims, sign_access_token  # noqa: E402
from oauth_sessions.storage import migrate  # noqa: E402
from oauth_sessions.storage.clients import ClientStore  # noqa: E402
from oauth_sessions.storage.database import create_auth_engine, normalize_url  # noqa: E402

TOKEN_LIFETIME = 3600

LUA = """
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local counter = 0
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


def sid(i: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"s{i}".encode()).hexdigest())


def uid(i: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"u{i}".encode()).hexdigest())


# --------------------------------------------------------------------------- database


def seed(url: str, sessions: int) -> dict[str, Any]:
    """Sessions for ours, stored tokens for Authlib; the same count of each."""
    engine = create_auth_engine(url)
    migrate.upgrade(engine)
    users = max(1, sessions // 10)
    clients = ClientStore(engine, cache_seconds=0)
    app_client, _ = clients.create(name="bench app", redirect_uris=["http://127.0.0.1/cb"],
                                   scopes="openid profile")
    rs, rs_secret = clients.create(name="bench resource server", redirect_uris=["http://127.0.0.1/rs"],
                                   scopes="openid", can_introspect=True)
    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO auth.users (id, email, created_at) "
            "SELECT md5('u' || i)::uuid, 'user' || i || '@bench.test', now() "
            "FROM generate_series(0, :n - 1) AS i"), {"n": users})
        conn.execute(text(
            "INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, not_after, "
            "refreshed_at, oauth_client_id, refresh_token_hmac_key, refresh_token_counter, scopes) "
            "SELECT md5('s' || i)::uuid, md5('u' || (i % :users))::uuid, now(), now(), 'aal1', "
            "now() + interval '30 days', NULL, :client, "
            "translate(encode(sha256(('k' || i)::bytea), 'base64'), '+/=', '-_'), 0, "
            "'openid profile' FROM generate_series(0, :n - 1) AS i"),
            {"n": sessions, "users": users, "client": app_client.id})
    print(f"seeded {sessions:,} sessions and {users:,} users in {time.monotonic() - started:.1f}s")

    db, _User, _Client, _Token = authlib_models()
    authlib_engine = create_engine(normalize_url(url))
    with authlib_engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {AUTHLIB_SCHEMA}"))
        db.metadata.create_all(conn)
        conn.execute(text(
            f"INSERT INTO {AUTHLIB_SCHEMA}.user (id, username) "
            "SELECT i, 'user' || i FROM generate_series(0, :n - 1) AS i"), {"n": users})
        conn.execute(text(
            f"INSERT INTO {AUTHLIB_SCHEMA}.oauth2_token (client_id, token_type, access_token, "
            "refresh_token, scope, issued_at, access_token_revoked_at, refresh_token_revoked_at, "
            "expires_in, user_id) SELECT 'bench-app', 'Bearer', md5('a' || i) || md5('b' || i), "
            "md5('r' || i), 'openid profile', extract(epoch from now())::int, 0, 0, :life, i % :users "
            "FROM generate_series(0, :n - 1) AS i"),
            {"n": sessions, "users": users, "life": TOKEN_LIFETIME})
        authlib_secret = secrets.token_urlsafe(32)
        conn.execute(text(
            f"INSERT INTO {AUTHLIB_SCHEMA}.oauth2_client (client_id, client_secret, "
            "client_id_issued_at, client_secret_expires_at, client_metadata, user_id) "
            "VALUES ('bench-rs', :secret, 0, 0, :meta, 0)"),
            {"secret": authlib_secret,
             "meta": '{"token_endpoint_auth_method": "client_secret_basic", "can_introspect": true}'})
        conn.execute(text("ANALYZE"))
    authlib_engine.dispose()
    engine.dispose()
    return {"rs_id": rs.client_id, "rs_secret": rs_secret, "authlib_secret": authlib_secret,
            "app_client": app_client.client_id}


def mint_tokens(url: str, sessions: int, sample: int, app_client: str, directory: Path) -> tuple[Path, Path]:
    """Access tokens for ``sample`` random sessions, and the Authlib tokens of the same rows."""
    rows = random.Random(7).sample(range(sessions), min(sample, sessions))
    app = ours_app(url)
    ours, theirs = directory / "ours.txt", directory / "authlib.txt"
    with app.app_context():
        keyset = get_keyset(app)  # creates the first signing key, active from now
        now = datetime.now(UTC)
        lines = []
        for i in rows:
            claims = build_access_token_claims(
                issuer=ISSUER, subject=str(uid(i % max(1, sessions // 10))), audience=ISSUER,
                client_id=app_client, scope="openid profile", session_id=str(sid(i)), aal="aal1",
                amr=["pwd"], auth_time=int(now.timestamp()), lifetime=TOKEN_LIFETIME, now=now)
            lines.append(sign_access_token(keyset, claims, now=now))
    ours.write_text("\n".join(lines) + "\n")
    theirs.write_text("\n".join(
        hashlib.md5(f"a{i}".encode()).hexdigest() + hashlib.md5(f"b{i}".encode()).hexdigest()
        for i in rows) + "\n")
    return ours, theirs


# --------------------------------------------------------------------------- load


def gunicorn(target: str, url: str) -> Any:
    return harness.gunicorn("benchmarks.introspection_apps", target, url)


def check_active(base: str, path: str, tokens: Path, auth: tuple[str, str]) -> None:
    """Every figure is for real answers: sample tokens must come back active."""
    sample = tokens.read_text().split()[:20]
    with requests.Session() as http:
        for token in sample:
            response = http.post(base + path, data={"token": token, "token_type_hint": "access_token"},
                                 auth=auth, timeout=10)
            if response.status_code != 200 or response.json().get("active") is not True:
                raise SystemExit(f"{base}{path} did not answer active: {response.status_code} "
                                 f"{response.text[:200]}")


def run_wrk(url: str, tokens: Path, auth: tuple[str, str], duration: int, directory: Path,
            connections: int, threads: int) -> dict[str, float]:
    script = directory / "introspect.lua"
    script.write_text(LUA % {"tokens": tokens, "basic": harness.basic_credentials(auth)})
    result = harness.run_wrk(url, script, duration, connections, threads)
    if result["errors"]:
        raise SystemExit(f"{url}: {result['errors']:.0f} error responses under load")
    return result


# --------------------------------------------------------------------------- statement count


def count_queries(app: Any, path: str, tokens: Path, auth: tuple[str, str],
                  n: int = 300) -> tuple[float, float]:
    """Round trips per introspection: (statements, pool pre-pings), counted at the driver."""
    sample = tokens.read_text().split()
    header = {"Authorization": "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()}
    client = app.test_client()
    for token in sample[:20]:  # warm caches that are allowed to exist (keys, client record)
        client.post(path, data={"token": token, "token_type_hint": "access_token"}, headers=header)
    counter = QueryCounter()
    counter.attach()
    try:
        for token in random.Random(3).choices(sample, k=n):
            response = client.post(path, data={"token": token, "token_type_hint": "access_token"},
                                   headers=header)
            assert response.json["active"] is True, response.json
    finally:
        counter.detach()
    return counter.statements / n, counter.pings / n


def explain(url: str) -> str:
    """The plan of the hot read: it must walk ``sessions_pkey`` and nothing else."""
    from oauth_sessions.storage.introspection_store import _PG_SESSION_BY_ID

    engine = create_engine(normalize_url(url))
    sql = _PG_SESSION_BY_ID.decode().replace("$1", f"'{sid(0)}'::uuid")
    with engine.connect() as conn:
        plan = [row[0] for row in conn.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF) " + sql)]
    engine.dispose()
    return "\n".join("    " + line for line in plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000, help="tokens minted for the load")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per target")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--alg", default="RS256", choices=["RS256", "ES256", "EdDSA"],
                        help="OAUTH_SESSIONS_SIGNING_ALG of our provider (RS256 verifies fastest)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per target")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    os.environ["BENCH_SIGNING_ALG"] = args.alg
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required: apt-get install -y wrk")

    with fresh_database(args.keep_db) as url, tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        ids = seed(url, args.sessions)
        ours_tokens, authlib_tokens = mint_tokens(url, args.sessions, args.sample, ids["app_client"],
                                                  directory)
        ours_auth = (ids["rs_id"], ids["rs_secret"])
        authlib_auth = ("bench-rs", ids["authlib_secret"])
        plan = [("trivial", "/introspect", ours_tokens, ours_auth),
                ("authlib", "/oauth/introspect", authlib_tokens, authlib_auth),
                ("trivial+read", "/introspect", ours_tokens, ours_auth),
                ("ours", "/oauth/introspect", ours_tokens, ours_auth)]
        runs: dict[str, list[dict[str, float]]] = {target: [] for target, *_ in plan}
        # Rounds alternate the targets so that load from elsewhere on the machine spreads over
        # all of them; each figure is the median of its rounds.
        for round_no in range(args.rounds):
            for target, path, tokens, auth in plan if round_no % 2 == 0 else plan[::-1]:
                with gunicorn(target, url) as (base, pgid):
                    check_active(base, path, tokens, auth)
                    run_wrk(base + path, tokens, auth, 2, directory, args.connections, args.threads)
                    before = harness.server_cpu_seconds(pgid, url)
                    result = run_wrk(base + path, tokens, auth, args.duration, directory,
                                     args.connections, args.threads)
                    result["cpu"] = harness.cpu_per_request(before, harness.server_cpu_seconds(pgid, url),
                                                    int(result["requests"]))
                runs[target].append(result)
                print(f"round {round_no + 1} {target:13} {result['rps']:8.0f} req/s  "
                      f"p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms  "
                      f"server CPU {result['cpu']:.3f} ms/req", flush=True)
        results = {target: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99", "cpu")}
                   for target, rs in runs.items()}

        counts = {
            "ours": count_queries(ours_app(url), "/oauth/introspect", ours_tokens, ours_auth),
            "authlib": count_queries(authlib_app(url), "/oauth/introspect", authlib_tokens, authlib_auth),
        }
        query_plan = explain(url)

    t, a = results["trivial"], results["authlib"]
    print()
    print(f"sessions {args.sessions:,}; wrk -t{args.threads} -c{args.connections} -d{args.duration}s "
          f"x {args.rounds} rounds (median); gunicorn -w 2 -k gthread --threads 4; "
          f"{os.cpu_count()} CPUs shared by wrk, gunicorn and PostgreSQL; our tokens {args.alg}")
    print(f"{'target':14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'/trivial':>10}{'/authlib':>10}"
          f"{'CPU ms/req':>12}{'DB trips':>10}")
    for name, r in results.items():
        statements, pings = counts.get(name, (0.0, 0.0))
        trips = f"{statements:.2f}+{pings:.2f}" if name in counts else "-"
        print(f"{name:14}{r['rps']:9.0f}{r['p50']:9.2f}{r['p99']:9.2f}{r['rps'] / t['rps']:10.2f}"
              f"{r['rps'] / a['rps']:10.2f}{r['cpu']:12.3f}{trips:>10}")
    o = results["ours"]
    print(f"CPU per request: ours / trivial = {o['cpu'] / t['cpu']:.2f}x, "
          f"authlib / ours = {a['cpu'] / o['cpu']:.2f}x")
    print("targets: ours/trivial >= 0.60, ours/authlib >= 3.00, DB round trips "
          "(statements + pool pre-pings) <= 2")
    print("plan of our one statement:")
    print(query_plan)


if __name__ == "__main__":
    main()
