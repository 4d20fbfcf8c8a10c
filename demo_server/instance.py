"""The demo's instance folder: private files only (issue 15 item 5).

``instance/`` holds the SQLite database (signing private keys, session HMAC keys, TOTP seeds),
the Flask ``SECRET_KEY``, the seeded client's secret and the application key that encrypts
session HMAC keys at rest. The folder is made (or narrowed to) mode 0700 and every file in it
0600, whatever the umask; SQLite creates its ``-journal``, ``-wal`` and ``-shm`` files with the
mode of the database file, so creating that file 0600 before SQLite opens it covers them too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

FOLDER_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("", "-journal", "-wal", "-shm")


def instance_dir() -> Path:
    """``DEMO_INSTANCE_DIR`` or ``./instance``, created 0700 (and narrowed to it if wider)."""
    path = Path(os.environ.get("DEMO_INSTANCE_DIR", Path.cwd() / "instance"))
    path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    _narrow(path, FOLDER_MODE)
    return path


def _narrow(path: Path, mode: int) -> None:
    """Take away group and other permissions from a path that has them."""
    if stat.S_IMODE(path.stat().st_mode) & ~mode:
        path.chmod(mode)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing; narrow it to 0600 if it exists."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        _narrow(path, FILE_MODE)


def secret_file(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in ``path``, made by ``make`` and written 0600 on first use."""
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if value:
        _narrow(path, FILE_MODE)
        return value
    value = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:  # another worker wrote it first (or an empty file was left): use it
        existing = path.read_text().strip()
        if existing:
            return existing
        path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def protect_sqlite_files(database_url: str) -> None:
    """For a SQLite file database: the file (created now if missing) and its companions 0600."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    database = Path(url.database)
    database.parent.mkdir(parents=True, exist_ok=True)
    private_file(database)
    for suffix in SQLITE_COMPANIONS[1:]:
        companion = database.with_name(database.name + suffix)
        if companion.exists():
            _narrow(companion, FILE_MODE)
