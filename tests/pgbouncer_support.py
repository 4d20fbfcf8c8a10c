"""A private PgBouncer for a test (``benchmarks/pgbouncer.py``), skipped or failed when missing.

Debian's ``pgbouncer`` package (``.ci/run`` installs it) puts the binary at
``/usr/sbin/pgbouncer``. Without it the test is skipped locally with one line, and fails under
``CI=true`` like the PostgreSQL tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from benchmarks.pgbouncer import Bouncer, PgBouncerFailed, PgBouncerMissing, free_port, run_pgbouncer

__all__ = ["Bouncer", "free_port", "pgbouncer"]


@contextmanager
def pgbouncer(database_url: str, *, mode: str = "transaction", server_pool: int = 8,
              listen: Sequence[str] = ("127.0.0.1",),
              query_wait_timeout: int | None = None) -> Iterator[Bouncer]:
    """:func:`benchmarks.pgbouncer.run_pgbouncer` for a test.

    ``server_pool`` is small on purpose: many client connections then share few server
    connections, so a statement prepared through one client lands under another.
    """
    try:
        with run_pgbouncer(database_url, mode=mode, server_pool=server_pool, listen=listen,
                           query_wait_timeout=query_wait_timeout) as bouncer:
            yield bouncer
    except PgBouncerMissing as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc}; .ci/run installs it and CI=true requires it", pytrace=False)
        pytest.skip(f"{exc}; .ci/run installs it")
    except PgBouncerFailed as exc:
        pytest.fail(str(exc), pytrace=False)
