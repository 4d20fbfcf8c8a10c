"""A shortened soak (``benchmarks/soak.py``): ~30 s of mixed traffic through gunicorn on PostgreSQL.

Authorize + code exchange, refreshes (some as concurrent duplicates), replays of old tokens,
introspection and revocation, from 8 callers against 2 workers x 4 threads. Afterwards: no 5xx,
no unexpected answer, every session's counter equals the rotations its caller saw, reuse was
detected exactly as often as replays were sent, and no worker grew by more than 32 MiB.
Run direct and through a PgBouncer in transaction mode. The long run is
``python -m benchmarks.soak --duration 300`` (``--pooler`` for the PgBouncer one).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.pgbouncer import INSTALL_HINT, PGBOUNCER
from benchmarks.soak import run

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.mark.parametrize("pooler", [False, True], ids=["direct", "pgbouncer-transaction"])
def test_mixed_traffic_for_30_seconds_balances_the_books(pg_databases: object, pooler: bool,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The same traffic and audit direct to PostgreSQL and through PgBouncer in transaction
    mode (issue 18: the soak passes through a transaction pooler)."""
    if pooler and not os.access(PGBOUNCER, os.X_OK):
        message = f"{PGBOUNCER} not found ({INSTALL_HINT}; .ci/run installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " and CI=true requires it", pytrace=False)
        pytest.skip(message)
    url = pg_databases.create("_soak_pooled" if pooler else "_soak")  # type: ignore[attr-defined]
    report = run(url, duration=30, callers=8, pooler=pooler)
    with capsys.disabled():
        print()
        report.print()
    assert report.total > 500, "too little traffic to call this a soak"
    assert report.books.replays_sent > 0 and report.books.requests["refresh_duplicate"] > 0
    assert report.books.requests["revoke"] > 0 and report.books.requests["introspect"] > 0
    assert report.problems(max_rss_growth_kib=32 * 1024) == []
