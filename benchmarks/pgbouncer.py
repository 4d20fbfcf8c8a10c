"""A private PgBouncer on its own free port and directory, stopped afterwards.

Used by the tests (``tests/pgbouncer_support.py`` turns its errors into skips or failures) and
by the scripts here (``soak.py --pooler``). Debian's ``pgbouncer`` package puts the binary at
``/usr/sbin/pgbouncer``. PgBouncer refuses to run as root, so as root it is told to switch to
the ``postgres`` user (``user =``) and its directory is handed over.
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

from sqlalchemy.engine import make_url

PGBOUNCER = "/usr/sbin/pgbouncer"
INSTALL_HINT = "apt-get install pgbouncer"


class PgBouncerMissing(RuntimeError):
    """The binary is not installed."""


class PgBouncerFailed(RuntimeError):
    """It is installed but did not start."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Bouncer:
    port: int
    mode: str

    def url(self, database_url: str, host: str = "127.0.0.1") -> str:
        """``database_url`` (a PostgreSQL URL of the server behind) through this PgBouncer,
        reached at ``host`` (one of the addresses it listens on)."""
        return make_url(database_url).set(host=host, port=self.port).render_as_string(
            hide_password=False)


@contextmanager
def run_pgbouncer(database_url: str, *, mode: str = "transaction", server_pool: int = 8,
                  listen: Sequence[str] = ("127.0.0.1",),
                  query_wait_timeout: int | None = None) -> Iterator[Bouncer]:
    """Run PgBouncer in ``mode`` in front of the server of ``database_url``.

    ``server_pool``: server connections per database and user (few, so that many client
    connections share them). ``listen``: the addresses it accepts clients on (the first is
    probed). ``query_wait_timeout``: seconds a client may wait for a server connection before
    PgBouncer drops it (a starved pool then shows as errors instead of a hang).
    """
    if not os.access(PGBOUNCER, os.X_OK):
        raise PgBouncerMissing(f"{PGBOUNCER} not found ({INSTALL_HINT})")
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
                raise PgBouncerFailed(
                    f"pgbouncer exited: {stderr_path.read_text(errors='replace')[-2000:]}")
            try:
                socket.create_connection((listen[0], port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise PgBouncerFailed("pgbouncer did not listen within 15 s") from None
                time.sleep(0.05)
        yield Bouncer(port, mode)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)
