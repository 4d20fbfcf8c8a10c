"""A private PgBouncer for a test: its own free port, its own directory, stopped afterwards.

Debian's ``pgbouncer`` package (``.ci/run`` installs it) puts the binary at
``/usr/sbin/pgbouncer``. Without it the test is skipped locally with one line, and fails under
``CI=true`` like the PostgreSQL tests. PgBouncer refuses to run as root, so when the tests run as
root it is told to switch to the ``postgres`` user (``user =``) and its directory is handed over.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

PGBOUNCER = "/usr/sbin/pgbouncer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _required() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@dataclass(frozen=True)
class Bouncer:
    port: int
    mode: str

    def url(self, database_url: str, host: str = "127.0.0.1") -> str:
        """``database_url`` (a PostgreSQL URL of the test server) through this PgBouncer,
        reached at ``host`` (one of the addresses it listens on)."""
        return make_url(database_url).set(host=host, port=self.port).render_as_string(
            hide_password=False)


@contextmanager
def pgbouncer(database_url: str, *, mode: str = "transaction", server_pool: int = 8,
              listen: Sequence[str] = ("127.0.0.1",),
              query_wait_timeout: int | None = None) -> Iterator[Bouncer]:
    """Run PgBouncer in ``mode`` in front of the server of ``database_url``.

    ``server_pool`` is small on purpose: many client connections then share few server
    connections, so a statement prepared through one client lands under another. ``listen``:
    the addresses it accepts clients on (the first is probed). ``query_wait_timeout``: seconds
    a client may wait for a server connection before PgBouncer drops it (a starved pool then
    shows as errors instead of a hang).
    """
    if not os.access(PGBOUNCER, os.X_OK):
        message = f"{PGBOUNCER} not found (apt-get install pgbouncer; .ci/run installs it)"
        if _required():
            pytest.fail(message + " and CI=true requires it", pytrace=False)
        pytest.skip(message)
    url = make_url(database_url)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="oauth_sessions_pgbouncer_"))
    user = url.username or "postgres"
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    lines = [
        "[databases]",
        f"* = host={url.host or '127.0.0.1'} port={url.port or 5432}",
        "[pgbouncer]",
        f"listen_addr = {','.join(listen)}",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {workdir / 'userlist.txt'}",
        f"pool_mode = {mode}",
        f"default_pool_size = {server_pool}",
        "max_client_conn = 500",
        "server_reset_query =",
        f"logfile = {workdir / 'pgbouncer.log'}",
        f"pidfile = {workdir / 'pgbouncer.pid'}",
        "ignore_startup_parameters = extra_float_digits,options",
    ]
    if query_wait_timeout is not None:
        lines.append(f"query_wait_timeout = {query_wait_timeout}")
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        lines.append("user = postgres")
        os.chown(workdir, account.pw_uid, account.pw_gid)
        for child in workdir.iterdir():
            os.chown(child, account.pw_uid, account.pw_gid)
    (workdir / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
    # PgBouncer logs every login and close to stderr as well as to its logfile. A pipe that
    # nobody reads fills up (64 KiB, a few hundred connections) and PgBouncer then blocks in
    # write(2) with every client waiting: stderr goes to a file.
    stderr_path = workdir / "pgbouncer.stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([PGBOUNCER, str(workdir / "pgbouncer.ini")],
                                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"pgbouncer exited: {stderr_path.read_text(errors='replace')[-2000:]}")
            try:
                socket.create_connection((listen[0], port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("pgbouncer did not listen within 15 s")
                time.sleep(0.05)
        yield Bouncer(port, mode)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)
