"""Shared fixtures: a private PostgreSQL database per test run, SQLite, and parametrized engines.

PostgreSQL is found through ``OAUTH_SESSIONS_TEST_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Each run creates its own database
next to that one and drops it at the end, so parallel runs never collide. When
PostgreSQL is unreachable the PostgreSQL tests are skipped locally, but fail under
``CI=true`` (or ``OAUTH_SESSIONS_REQUIRE_POSTGRES=1``): CI must never go green
without them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from oauth_sessions.storage import migrate
from oauth_sessions.storage.database import create_auth_engine, normalize_url

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
AUTH_TABLES = ("users", "oauth_clients")
#: The library's own tables that no cascade from ``auth`` empties.
LIBRARY_TABLES = ("oauth_signing_keys", "oauth_dpop_proofs", "oauth_resource_servers")


def _postgres_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or bool(
        os.environ.get("OAUTH_SESSIONS_REQUIRE_POSTGRES")
    )


def _admin_url() -> str:
    return normalize_url(os.environ.get("OAUTH_SESSIONS_TEST_DATABASE_URL", DEFAULT_PG))


class PostgresDatabases:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
        self.created: list[str] = []
        self.prefix = f"oauth_sessions_test_{os.getpid()}_{secrets.token_hex(3)}"

    def create(self, suffix: str = "") -> str:
        name = f"{self.prefix}{suffix}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases]:
    try:
        dbs = PostgresDatabases(_admin_url())
        with dbs.admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        message = f"PostgreSQL test database unreachable ({type(exc).__name__}: {exc})"
        if _postgres_required():
            pytest.fail(message + " and CI=true requires it", pytrace=False)
        pytest.skip(message)
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def pg_url(pg_databases: PostgresDatabases) -> str:
    """A database of this run, migrated to head."""
    url = pg_databases.create()
    engine = create_auth_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def fresh_pg_url(pg_databases: PostgresDatabases) -> str:
    """An empty database of its own, for migration tests."""
    return pg_databases.create(f"_{secrets.token_hex(3)}")


@pytest.fixture(scope="session")
def _pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = create_auth_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("sqlite") / "auth.db"
    engine = create_auth_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def _clean(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(
                [f"auth.{t}" for t in AUTH_TABLES] + [f"oauth_sessions.{t}" for t in LIBRARY_TABLES])
                + " CASCADE"))
        else:
            for table in AUTH_TABLES + LIBRARY_TABLES:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def pg_engine(_pg_engine: Engine) -> Iterator[Engine]:
    """The run's PostgreSQL engine; tables emptied after the test."""
    yield _pg_engine
    _clean(_pg_engine)


@pytest.fixture
def sqlite_engine(_sqlite_engine: Engine) -> Iterator[Engine]:
    yield _sqlite_engine
    _clean(_sqlite_engine)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """The same test on SQLite and on PostgreSQL."""
    name = "pg_engine" if request.param == "postgresql" else "sqlite_engine"
    result: Engine = request.getfixturevalue(name)
    return result


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI nothing may be skipped: a skip there means a requirement went missing."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and _postgres_required() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which requires every test to run: {report.longrepr}"


@pytest.fixture(scope="module")
def demo_pg_url(request: pytest.FixtureRequest, pg_databases: PostgresDatabases) -> str:
    """One PostgreSQL database per demo test module; the demo migrates it on first start."""
    return pg_databases.create(f"_{request.module.__name__.rsplit('_', 1)[-1]}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def demo_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """The demo provider on a fresh SQLite file, or on the module's wiped PostgreSQL database."""
    from demo_server.testing import make_demo_app, wipe_postgres
    from oauth_sessions import get_state

    if request.param == "postgresql":
        url = request.getfixturevalue("demo_pg_url")
        wipe_postgres(url)
    else:
        url = f"sqlite:///{tmp_path / 'demo.db'}"
    app = make_demo_app(tmp_path / "instance", url)
    yield app
    get_state(app).engine.dispose()
