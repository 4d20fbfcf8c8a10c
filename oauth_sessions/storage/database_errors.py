"""Why the database cannot be used, said in one line a person can act on.

A missing database, a refused connection, an unknown role or a URL this library cannot use all
end, deep inside the driver, in a traceback of a hundred lines whose last one holds the fact.
:func:`explain_connect_error` turns such an error into one sentence that says what is wrong and
the command or the setting that fixes it; :func:`check_database_url` refuses a URL whose
scheme has no engine here before any driver is imported. Both speak of the URL by its parts
(host, port, database, user) and never print its password.

It is also where the library tells the database's errors apart, for everything above storage:
:data:`DATABASE_ERRORS` (SQLAlchemy's and the driver's, which the refresh path's own statements
raise unwrapped), :func:`is_unavailable` (connection trouble: retry later) and
:func:`error_origin` (what a log line may say of an error: class names and SQLSTATE, never
``str()``, which holds the statement's bound parameters).

The driver's connection errors carry no SQLSTATE (the server's ``FATAL`` arrives before a
session exists), so they are told apart by libpq's messages, which are stable across versions.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Final

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout

__all__ = ["DATABASE_ERRORS", "SUPPORTED_SCHEMES", "UnsupportedDatabaseURL", "check_database_url",
           "error_origin", "explain_connect_error", "explain_database_error", "is_unavailable"]

try:  # the refresh path runs prepared statements on the raw psycopg connection
    import psycopg
except ImportError:  # pragma: no cover - psycopg is a dependency; kept optional for SQLite-only hosts
    _DRIVER_ERRORS: tuple[type[Exception], ...] = ()
    _DRIVER_UNAVAILABLE: tuple[type[Exception], ...] = ()
else:
    _DRIVER_ERRORS = (psycopg.Error,)
    _DRIVER_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError)

#: Every error a statement or a checkout can raise: SQLAlchemy's, the pool's, the driver's.
DATABASE_ERRORS: Final[tuple[type[Exception], ...]] = (
    DBAPIError, DisconnectionError, PoolTimeout, *_DRIVER_ERRORS)


def is_unavailable(exc: BaseException) -> bool:
    """Connection trouble (retry later), as opposed to a statement the database refused."""
    if isinstance(exc, (OperationalError, SAInterfaceError, DisconnectionError, PoolTimeout,
                        *_DRIVER_UNAVAILABLE)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def error_origin(exc: BaseException) -> tuple[str, str, str]:
    """``(error class, driver error class, SQLSTATE)`` of a database error, ``"-"`` where
    unknown: all a log line may say of it."""
    orig = getattr(exc, "orig", exc if isinstance(exc, _DRIVER_ERRORS) else None)
    sqlstate = getattr(orig, "sqlstate", None)
    return (type(exc).__name__, type(orig).__name__ if orig is not None else "-",
            sqlstate or "-")

#: The URL schemes :func:`~oauth_sessions.storage.database.create_auth_engine` accepts.
SUPPORTED_SCHEMES: Final = ("postgresql", "postgres", "postgresql+psycopg", "sqlite",
                            "sqlite+pysqlite")
_HOW: Final = ("use postgresql://user@host:5432/dbname (PostgreSQL, through psycopg 3) or "
               "sqlite:///path/to/file.db (SQLite)")


class UnsupportedDatabaseURL(ValueError):
    """A database URL with no engine here (``mysql://``, a typo, no scheme at all)."""


def check_database_url(url: str | URL) -> URL:
    """``url`` parsed, or :class:`UnsupportedDatabaseURL` saying which schemes are supported."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UnsupportedDatabaseURL(f"not a database URL: {_HOW}") from None
    if parsed.drivername not in SUPPORTED_SCHEMES:
        raise UnsupportedDatabaseURL(
            f"unsupported database URL scheme {parsed.drivername + '://'!r}: {_HOW}")
    return parsed


def _where(url: URL) -> str:
    host = url.host or os.environ.get("PGHOST") or "the local socket"
    port = url.port or os.environ.get("PGPORT") or 5432
    return f"{host}:{port}" if url.host or os.environ.get("PGHOST") else host


def _client_args(url: URL, user: str | None = None) -> list[str]:
    """``-h HOST [-p PORT] -U USER`` for a PostgreSQL client command against ``url``.

    Without a user in the URL, ``postgres`` is suggested: creating a database takes a role
    with CREATEDB, and every cluster has that superuser.
    """
    args = []
    if url.host:
        args += ["-h", url.host]
    if url.port and url.port != 5432:
        args += ["-p", str(url.port)]
    args += ["-U", user or url.username or os.environ.get("PGUSER") or "postgres"]
    return args


def explain_connect_error(exc: BaseException, url: str | URL) -> str | None:
    """One line for a connection error ``exc`` met on ``url``; ``None`` if it is none we know.

    ``exc`` may be SQLAlchemy's wrapper or the driver's own error.
    """
    parsed = make_url(url)
    message = str(getattr(exc, "orig", None) or exc)
    if parsed.get_backend_name() == "sqlite":
        if "unable to open database file" in message:
            folder = os.path.dirname(parsed.database or "") or "."
            return (f"cannot open the SQLite database {parsed.database}: does the folder "
                    f"{folder} exist and is it writable? (mkdir -p {shlex.quote(folder)})")
        return None
    where = _where(parsed)
    found = re.search(r'database "([^"]+)" does not exist', message)
    if found:
        command = shlex.join(["createdb", *_client_args(parsed), found.group(1)])
        return f'database "{found.group(1)}" does not exist on {where}: create it with: {command}'
    found = re.search(r'role "([^"]+)" does not exist', message)
    if found:
        command = shlex.join(["createuser", *_client_args(parsed, user="postgres"),
                              found.group(1)])
        return (f'PostgreSQL on {where} has no role "{found.group(1)}": create it with: '
                f"{command}, or put an existing user in the database URL")
    found = re.search(r'password authentication failed for user "([^"]+)"', message)
    if found or "no password supplied" in message:
        user = found.group(1) if found else (parsed.username or "")
        return (f'PostgreSQL on {where} refused the password of user "{user}": check the user '
                f"and password in the database URL (or PGPASSWORD, ~/.pgpass)")
    if "Connection refused" in message or "No such file or directory" in message:
        check = shlex.join(["pg_isready", *_client_args(parsed)[:-2]])
        return (f"cannot connect to PostgreSQL at {where}: connection refused; is the server "
                f"running and listening there? (check with: {check})")
    found = re.search(r"(?:failed to resolve host|could not translate host name) '?\"?([^'\"]+)",
                      message)
    if found:
        return (f"cannot connect to PostgreSQL: the host {found.group(1)!r} of the database URL "
                f"does not resolve; check its spelling")
    if "timeout expired" in message or "timed out" in message:
        return (f"cannot connect to PostgreSQL at {where}: the connection timed out; is a "
                f"firewall in the way, or the host wrong?")
    return None


def explain_database_error(exc: BaseException, url: str | URL, *,
                           upgrade_command: str = "flask oauth-sessions db upgrade") -> str:
    """One line for any database error met on ``url``: :func:`explain_connect_error`'s, a
    missing table (the migrations have not run: ``upgrade_command``), else the driver's first
    line with its class and SQLSTATE. Never the statement or its parameters."""
    known = explain_connect_error(exc, url)
    if known is not None:
        return known
    orig = getattr(exc, "orig", None) or exc
    message = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    found = re.search(r'relation "([^"]+)" does not exist|no such table: (\S+)', message)
    if found:
        table = found.group(1) or found.group(2).removeprefix("main.")  # SQLite's own schema
        return f"the database has no table {table}: create the auth schema with: {upgrade_command}"
    sqlstate = getattr(orig, "sqlstate", None)
    code = f", SQLSTATE {sqlstate}" if sqlstate else ""
    return f"the database refused ({type(orig).__name__}{code}): {message}"
