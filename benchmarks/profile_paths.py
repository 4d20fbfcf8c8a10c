"""CPU per request of introspection and refresh, in-process, beside the trivial view and the floors.

    .venv/bin/python -m benchmarks.profile_paths                    # 10,000 sessions, 1,000 requests each
    .venv/bin/python -m benchmarks.profile_paths --requests 2000 --top 25   # and the top functions

The same apps as ``benchmarks/suite.py`` (``suite_apps.py``: ``trivial``, ``floor``, ``host``
(ours the Flask way in, inside a host app with one no-op ``before_request`` and one
``after_request``) and ``wsgi`` (ours through ``oauth_sessions.wsgi.make_wsgi_app``)), on a
throwaway PostgreSQL database, but without gunicorn or wrk: the WSGI environs are built
beforehand and each app is called straight, one request after another, so what is measured is
the app alone. Two figures per target:

* ``app ms``: ``time.process_time()`` of this process per request (Python, libpq's client side,
  OpenSSL), the part a shared machine disturbs least;
* ``db ms``: CPU of this database's PostgreSQL backends per request (from ``/proc``, 10 ms ticks).

Ratios are printed against the trivial view (``trivial app ms / this app ms``) and against the
floor of the same endpoint (``floor total / this total``). They are harsher than the suite's,
which also counts gunicorn's own HTTP work (the same for every target). ``--top N`` then runs
each of ours again under cProfile (on a CPU clock, so waiting for PostgreSQL counts nothing) and
prints the N costliest functions by own time and a summary by component.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from werkzeug.test import EnvironBuilder  # noqa: E402

from benchmarks import harness, suite, suite_apps  # noqa: E402

WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def environ(path: str, form: dict[str, str], auth: str) -> dict[str, Any]:
    return EnvironBuilder(path=path, method="POST", data=form,  # type: ignore[no-any-return]
                          headers={"Authorization": auth}).get_environ()


def call(app: WsgiApp, env: dict[str, Any]) -> bytes:
    status: list[str] = []
    body = b"".join(app(env, lambda s, h, e=None: status.append(s)))
    if not status[0].startswith("200"):
        raise SystemExit(f"{env['PATH_INFO']}: {status[0]} {body[:300]!r}")
    return body


class Requests:
    """Prepared environs: introspection of random access tokens, refreshes of unused tokens."""

    def __init__(self, fixture: suite.Fixture, count: int, tmp: Path) -> None:
        self.fixture, self.count, self.tmp = fixture, count, tmp
        access = tmp / "access.txt"
        suite.access_tokens(fixture, min(count, 5000), access)
        self.access = access.read_text().split()
        self.basic_rs = "Basic " + harness.basic_credentials((fixture.rs_client, fixture.rs_secret))
        self.basic_app = "Basic " + harness.basic_credentials((fixture.app_client, fixture.app_secret))
        self.rows = {parity: suite.refresh_sample(fixture, count, parity) for parity in (0, 1)}

    def introspection(self) -> list[dict[str, Any]]:
        pick = random.Random(len(self.access))
        return [environ("/oauth/introspect", {"token": pick.choice(self.access),
                                              "token_type_hint": "access_token"}, self.basic_rs)
                for _ in range(self.count)]

    def refresh(self, id_token: bool = False) -> list[dict[str, Any]]:
        """The next refresh token of each sampled session, from its counter as it is now."""
        path = self.tmp / "refresh.txt"
        suite.refresh_tokens(self.fixture, self.rows[0 if id_token else 1], 0, path)
        return [environ("/oauth/token", {"grant_type": "refresh_token", "refresh_token": t},
                        self.basic_app) for t in path.read_text().split()[: self.count]]


def db_cpu(url: str) -> float:
    """CPU seconds used so far by this database's backends (our own connections' servers)."""
    usage = harness.server_cpu_seconds(-1, url)  # no process group is -1: the backends only
    return sum(usage.values())


def measure(app: WsgiApp, calls: list[dict[str, Any]], url: str) -> tuple[float, float]:
    """(app ms, db ms) per request over ``calls`` after 20 of them warm caches up."""
    for env in calls[:20]:
        call(app, env)
    timed = calls[20:]
    db_before = db_cpu(url)
    started = time.process_time()
    for env in timed:
        call(app, env)
    app_ms = (time.process_time() - started) / len(timed) * 1000
    return app_ms, (db_cpu(url) - db_before) / len(timed) * 1000


def profiled(app: WsgiApp, calls: list[dict[str, Any]], top: int, title: str,
             dump: Path | None) -> None:
    for env in calls[:20]:
        call(app, env)
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for env in calls[20:]:
        call(app, env)
    profiler.disable()
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(dump / (title.replace(", ", "-") + ".prof"))
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    shares: dict[str, float] = {}
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        name = suite._component(filename, function)
        shares[name] = shares.get(name, 0.0) + row[2]
    total = sum(shares.values()) or 1.0
    per_request = total / max(1, len(calls) - 20) * 1000
    print(f"\n=== {title}: {per_request:.3f} ms CPU per request under cProfile ===")
    print("own time by component: " + ", ".join(
        f"{name} {value / total:.0%}" for name, value in sorted(shares.items(), key=lambda kv: -kv[1])
        if value / total >= 0.01))
    print("\n".join(out.getvalue().splitlines()[5:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=1000, help="requests per target and endpoint")
    parser.add_argument("--top", type=int, default=0, metavar="N",
                        help="then cProfile ours (host, wsgi) and print the N costliest functions")
    parser.add_argument("--dump", type=Path, metavar="DIR",
                        help="with --top: also write each profile to DIR/<endpoint>-<target>.prof")
    parser.add_argument("--targets", default="trivial,floor,host,wsgi",
                        help="comma-separated targets to measure (trivial and floor are the bases)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every target this many times, keep the lowest figures")
    args = parser.parse_args()
    os.environ.pop("BENCH_POOLER", None)

    with harness.fresh_database(False) as url, tempfile.TemporaryDirectory() as tmp:
        fixture = suite.prepare(url, args.sessions)
        suite.grow(fixture, args.sessions)
        reqs = Requests(fixture, args.requests, Path(tmp))
        host = suite_apps.host_app(url)
        apps: dict[str, WsgiApp] = {
            "trivial": suite_apps.trivial_app(), "floor": suite_apps.floor_app(url),
            "host": host, "wsgi": suite_apps.wsgi_app(url),
        }
        chosen = [t for t in apps if t in args.targets.split(",")]
        runs = [("introspection", t, False) for t in chosen] + [("refresh", t, False) for t in chosen] \
            + [("refresh", t, True) for t in ("host", "wsgi") if t in chosen]
        best: dict[tuple[str, str, bool], tuple[float, float]] = {}
        for _ in range(args.rounds):
            for endpoint, target, id_token in runs:
                calls = reqs.introspection() if endpoint == "introspection" else reqs.refresh(id_token)
                got = measure(apps[target], calls, url)
                key = (endpoint, target, id_token)
                best[key] = min(best.get(key, got), got, key=sum)

        print(f"\n{args.sessions:,} sessions, {args.requests} requests per run, in-process, "
              f"best of {args.rounds}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'endpoint':14}{'target':22}{'app ms':>8}{'db ms':>8}{'total':>8}"
              f"{'trivial/this (app)':>20}{'floor/this (total)':>20}")
        for (endpoint, target, id_token), (app_ms, db_ms) in best.items():
            trivial = best.get((endpoint, "trivial", False), (math.nan, 0.0))[0]
            floor = sum(best.get((endpoint, "floor", False), (math.nan, 0.0)))
            label = target + (" id-token" if id_token else "")
            print(f"{endpoint:14}{label:22}{app_ms:8.3f}{db_ms:8.3f}{app_ms + db_ms:8.3f}"
                  f"{trivial / app_ms:20.2f}{floor / (app_ms + db_ms):20.2f}")

        if args.top:
            for endpoint, target in (("introspection", "host"), ("introspection", "wsgi"),
                                     ("refresh", "host"), ("refresh", "wsgi")):
                calls = reqs.introspection() if endpoint == "introspection" else reqs.refresh()
                profiled(apps[target], calls, args.top, f"{endpoint}, {target}", args.dump)


if __name__ == "__main__":
    main()
