"""A shortened soak (``benchmarks/soak.py``): ~30 s of mixed traffic through gunicorn on PostgreSQL.

Authorize + code exchange, refreshes (some as concurrent duplicates), replays of old tokens,
introspection and revocation, from 8 callers against 2 workers x 4 threads. Afterwards: no 5xx,
no unexpected answer, every session's counter equals the rotations its caller saw, reuse was
detected exactly as often as replays were sent, and no worker grew by more than 32 MiB.
The long run is ``python -m benchmarks.soak --duration 300``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.soak import run

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_mixed_traffic_for_30_seconds_balances_the_books(pg_databases: object,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    url = pg_databases.create("_soak")  # type: ignore[attr-defined]
    report = run(url, duration=30, callers=8)
    with capsys.disabled():
        print()
        report.print()
    assert report.total > 500, "too little traffic to call this a soak"
    assert report.books.replays_sent > 0 and report.books.requests["refresh_duplicate"] > 0
    assert report.books.requests["revoke"] > 0 and report.books.requests["introspect"] > 0
    assert report.problems(max_rss_growth_kib=32 * 1024) == []
