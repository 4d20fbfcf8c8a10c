"""``flask oauth-sessions …``: database migrations and administration commands."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from . import migrate
from .extension import get_state


@click.group("oauth-sessions", help="Administer the oauth_sessions provider.")
def cli() -> None:
    pass


@cli.group("db", help="Migrations of the auth schema.")
def db() -> None:
    pass


@db.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Create or upgrade the auth schema (attaches to an existing one without dropping)."""
    state = get_state()
    migrate.upgrade(state.engine, revision)
    click.echo(f"auth schema at revision {migrate.current_revision(state.engine)}")


@db.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Step the auth schema back to REVISION (PostgreSQL; data in dropped columns is lost)."""
    state = get_state()
    migrate.downgrade(state.engine, revision)
    click.echo(f"auth schema at revision {migrate.current_revision(state.engine)}")


@db.command("current")
@with_appcontext
def db_current() -> None:
    """Print the revision the database is at."""
    click.echo(migrate.current_revision(get_state().engine) or "none")


@db.command("stamp")
@click.argument("revision")
@with_appcontext
def db_stamp(revision: str) -> None:
    """Record REVISION as applied without running anything (attach by hand)."""
    migrate.stamp(get_state().engine, revision)
    click.echo(f"stamped {revision}")
