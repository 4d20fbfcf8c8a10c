"""Issue 19 item 7: start-up and CLI errors a person can act on, each exactly one line.

The demo (``python -m demo_server``, what ``make demo`` runs) and a host's
``flask oauth-sessions ...`` are run as subprocesses, as a person runs them: a missing database
names the ``createdb`` command, a refused connection names host and port, an unsupported URL
scheme names the supported ones, a missing ``SECRET_KEY`` stops ``init_app``. No traceback,
exit status 1, and never the password of the URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.engine import make_url

from demo_server.testing import free_port
from oauth_sessions import OAuthSessions
from oauth_sessions.core.settings import ConfigurationError
from oauth_sessions.storage.database_errors import explain_connect_error

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "pw-never-printed"
HOST_APP = """
import os
from flask import Flask
from oauth_sessions import OAuthSessions

app = Flask("host")
app.config.update(SECRET_KEY="k", OAUTH_SESSIONS_ISSUER="http://127.0.0.1:5000",
                  OAUTH_SESSIONS_DATABASE_URL=os.environ["HOST_DATABASE_URL"])
OAuthSessions(app)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "SECRET_KEY", "PGHOST", "PGPORT", "PGUSER")}
    return {**env, **extra}


def _demo(tmp_path: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "demo_server"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False,
                          env=_env(DATABASE_URL=database_url, PORT=str(free_port()),
                                   DEMO_INSTANCE_DIR=str(tmp_path / "instance")))


def _host_cli(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "hostapp.py").write_text(HOST_APP)
    return subprocess.run([sys.executable, "-m", "flask", "--app", "hostapp", "oauth-sessions", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
                          env=_env(HOST_DATABASE_URL=database_url, PYTHONPATH=str(tmp_path)))


def _absent_database(pg_databases) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    name = f"{pg_databases.prefix}_absent"
    url = make_url(pg_databases.admin_url).set(database=name, drivername="postgresql")
    return name, url.render_as_string(hide_password=False)


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr


# --------------------------------------------------------------------------- the demo


@pytest.mark.postgres
def test_demo_on_a_missing_database_names_the_createdb_command(
        tmp_path: Path, pg_databases) -> None:  # type: ignore[no-untyped-def]
    name, url = _absent_database(pg_databases)
    assert _one_line(_demo(tmp_path, url)) == (
        f'demo_server: database "{name}" does not exist on 127.0.0.1:5432: '
        f"create it with: createdb -h 127.0.0.1 -U postgres {name}\n")


def test_demo_with_nothing_listening_names_host_and_port(tmp_path: Path) -> None:
    port = free_port()
    line = _one_line(_demo(tmp_path, f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/demo"))
    assert line == (f"demo_server: cannot connect to PostgreSQL at 127.0.0.1:{port}: connection "
                    f"refused; is the server running and listening there? "
                    f"(check with: pg_isready -h 127.0.0.1 -p {port})\n")


def test_demo_with_an_unsupported_scheme_names_the_supported_ones(tmp_path: Path) -> None:
    line = _one_line(_demo(tmp_path, f"mysql://root:{PASSWORD}@127.0.0.1/demo"))
    assert line == ("demo_server: DATABASE_URL: unsupported database URL scheme 'mysql://': use "
                    "postgresql://user@host:5432/dbname (PostgreSQL, through psycopg 3) or "
                    "sqlite:///path/to/file.db (SQLite)\n")


# --------------------------------------------------------------------------- a host's CLI


@pytest.mark.postgres
def test_cli_db_upgrade_on_a_missing_database(tmp_path: Path, pg_databases) -> None:  # type: ignore[no-untyped-def]
    name, url = _absent_database(pg_databases)
    assert _one_line(_host_cli(tmp_path, url, "db", "upgrade")) == (
        f'Error: database "{name}" does not exist on 127.0.0.1:5432: '
        f"create it with: createdb -h 127.0.0.1 -U postgres {name}\n")


def test_cli_with_nothing_listening(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/auth"
    line = _one_line(_host_cli(tmp_path, url, "list-clients"))
    assert line == (f"Error: cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused; "
                    f"is the server running and listening there? "
                    f"(check with: pg_isready -h 127.0.0.1 -p {port})\n")


def test_cli_before_the_migrations_says_to_run_them(tmp_path: Path) -> None:
    line = _one_line(_host_cli(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}", "list-sessions"))
    assert line == ("Error: the database has no table sessions: create the auth schema with: "
                    "flask oauth-sessions db upgrade\n")


# --------------------------------------------------------------------------- init_app


def _app(**config: object) -> Flask:
    app = Flask("x")
    app.config.update(OAUTH_SESSIONS_ISSUER="https://id.example", **config)
    return app


def test_init_app_refuses_an_unsupported_scheme_without_showing_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        OAuthSessions(_app(SECRET_KEY="k", OAUTH_SESSIONS_DATABASE_URL=f"mysql://u:{PASSWORD}@h/db"))
    assert str(caught.value) == (
        "OAUTH_SESSIONS_DATABASE_URL: unsupported database URL scheme 'mysql://': use "
        "postgresql://user@host:5432/dbname (PostgreSQL, through psycopg 3) or "
        "sqlite:///path/to/file.db (SQLite)")


def test_init_app_refuses_a_missing_secret_key_at_start_up() -> None:
    with pytest.raises(ConfigurationError) as caught:
        OAuthSessions(_app(OAUTH_SESSIONS_DATABASE_URL="sqlite://"))
    assert str(caught.value) == (
        "SECRET_KEY is not set: the consent page signs its CSRF ticket with it; set "
        "app.config['SECRET_KEY'] before OAuthSessions(app) to a random value kept secret, e.g. "
        "the output of: python -c 'import secrets; print(secrets.token_hex(32))'")
    OAuthSessions(_app(OAUTH_SESSIONS_DATABASE_URL="sqlite://", SECRET_KEY="k"))


# --------------------------------------------------------------------------- the explanations


class _Refusal(Exception):
    pass


@pytest.mark.parametrize(("message", "url", "expected"), [
    ('connection to server at "10.0.0.5", port 6543 failed: FATAL:  role "app" does not exist',
     f"postgresql://app:{PASSWORD}@10.0.0.5:6543/auth",
     'PostgreSQL on 10.0.0.5:6543 has no role "app": create it with: createuser -h 10.0.0.5 '
     "-p 6543 -U postgres app, or put an existing user in the database URL"),
    ('connection to server at "db", port 5432 failed: FATAL:  password authentication failed '
     'for user "app"', f"postgresql://app:{PASSWORD}@db/auth",
     'PostgreSQL on db:5432 refused the password of user "app": check the user and password in '
     "the database URL (or PGPASSWORD, ~/.pgpass)"),
    ("failed to resolve host 'dbb.internal': [Errno -2] Name or service not known",
     "postgresql://app@dbb.internal/auth",
     "cannot connect to PostgreSQL: the host 'dbb.internal' of the database URL does not "
     "resolve; check its spelling"),
    ('connection to server at "db", port 5433 failed: FATAL:  database "my db" does not exist',
     "postgresql://ops@db:5433/my%20db",
     'database "my db" does not exist on db:5433: create it with: createdb -h db -p 5433 -U ops '
     "'my db'"),
])
def test_explanations(message: str, url: str, expected: str) -> None:
    line = explain_connect_error(_Refusal(message), url)
    assert line == expected
    assert PASSWORD not in line


def test_an_unknown_error_is_not_explained() -> None:
    assert explain_connect_error(_Refusal("something else"), "postgresql://db/x") is None


def test_the_demo_still_needs_no_secret_key_of_its_own(tmp_path: Path) -> None:
    """The library refuses an app without SECRET_KEY; the demo makes one in instance/."""
    from demo_server.testing import make_demo_app
    from oauth_sessions import get_state

    app = make_demo_app(tmp_path / "instance", f"sqlite:///{tmp_path / 'demo.db'}")
    try:
        kept = (tmp_path / "instance" / "secret_key").read_text().strip()
        assert app.secret_key == kept and len(kept) >= 32
    finally:
        get_state(app).engine.dispose()


def test_the_readmes_own_url_without_a_user_suggests_the_postgres_role(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGUSER", raising=False)
    refusal = _Refusal('connection to server at "127.0.0.1", port 5432 failed: FATAL:  '
                       'database "demo" does not exist')
    assert explain_connect_error(refusal, "postgresql://127.0.0.1/demo") == (
        'database "demo" does not exist on 127.0.0.1:5432: create it with: '
        "createdb -h 127.0.0.1 -U postgres demo")
