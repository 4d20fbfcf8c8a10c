"""``flask oauth-sessions …``: database migrations and administration commands."""

from __future__ import annotations

import json
import uuid
from typing import TextIO

import click
from flask.cli import with_appcontext

from ..protocol.client_auth import AssertionLedger
from ..storage import migrate
from ..storage.clients import ClientInfo, parse_client_id
from .state import get_state


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
    try:
        migrate.upgrade(state.engine, revision)
        migrate.check_privileges(state.engine)
    except (migrate.AttachError, migrate.PrivilegeError) as exc:
        raise click.ClickException(str(exc)) from None
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
    engine = get_state().engine
    with engine.connect() as connection:
        managed = migrate.is_supabase_managed(connection)
    if managed:
        # Stamping would make the library read columns Supabase's tables do not have.
        with engine.connect() as connection:
            try:
                migrate.check_supabase_managed(connection, pending=False)
            except migrate.SupabaseManagedError as exc:
                raise click.ClickException(str(exc)) from None
    migrate.stamp(engine, revision)
    click.echo(f"stamped {revision}")


# --------------------------------------------------------------------------- clients and keys


def _client_json(info: ClientInfo, secret: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        **info.as_metadata(),
        "client_type": info.type,
        "can_introspect": info.can_introspect,
        "min_aal": info.min_aal.value if info.min_aal else None,
        "max_session_seconds": info.max_session_seconds,
        "verified": info.verified,
    }
    if secret is not None:
        body["client_secret"] = secret
    return body


def _client_id(value: str) -> uuid.UUID:
    parsed = parse_client_id(value)
    if parsed is None:
        raise click.BadParameter("not a client id (a UUID)", param_hint="CLIENT_ID")
    return parsed


@cli.command("create-client")
@click.option("--name", required=True, help="Shown to users on the consent page.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, required=True,
              help="Exact redirect URI; repeat for several.")
@click.option("--scope", default="openid", show_default=True,
              help='Space-separated scopes the client may ask for, e.g. "openid profile offline_access".')
@click.option("--public", is_flag=True, help="Public client (no secret; PKCE only, auth method none).")
@click.option("--introspect", is_flag=True, help="Allow this client to call the introspection endpoint.")
@click.option("--auth-method",
              type=click.Choice(["client_secret_basic", "client_secret_post", "private_key_jwt"]),
              default=None, help="Token endpoint authentication of a confidential client.")
@click.option("--jwks", "jwks_file", type=click.File("r"), default=None,
              help="JSON file with the client's public JWK Set (for --auth-method private_key_jwt).")
@click.option("--no-refresh", is_flag=True, help="Never issue refresh tokens to this client.")
@click.option("--min-aal", type=click.Choice(["aal1", "aal2", "aal3"]), default=None,
              help="Minimum assurance level for every authorization of this client.")
@click.option("--max-session-seconds", type=click.IntRange(min=60), default=None,
              help="Upper bound of the life of this client's sessions.")
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True,
              help="Exact URI RP-initiated logout may return to; repeat for several.")
@click.option("--backchannel-logout-uri", default=None,
              help="Where logout tokens are POSTed when a session of this client ends.")
@click.option("--unverified", is_flag=True,
              help="Do not vouch for this client: its errors are shown, never redirected, and "
                   "its name may not copy a verified client's (see verify-client).")
@click.option("--id-token-alg", type=click.Choice(["ES256", "EdDSA", "RS256"]), default=None,
              help="Alg of this client's ID tokens (id_token_signed_response_alg); default: "
                   "OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG.")
@click.option("--pairwise", is_flag=True,
              help="Pairwise subject identifiers (OIDC Core 8): the client's users get a sub of "
                   "its redirect URIs' host; needs OAUTH_SESSIONS_PAIRWISE_SALT.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
@with_appcontext
def create_client(name: str, redirect_uris: tuple[str, ...], scope: str, public: bool,
                  introspect: bool, auth_method: str | None, jwks_file: TextIO | None,
                  no_refresh: bool,
                  min_aal: str | None, max_session_seconds: int | None,
                  post_logout_redirect_uris: tuple[str, ...], backchannel_logout_uri: str | None,
                  unverified: bool, id_token_alg: str | None, pairwise: bool,
                  as_json: bool) -> None:
    """Register a client. The secret is printed once and never stored in clear.

    A client created here is verified (you, the operator, vouch for it) unless --unverified."""
    if public and auth_method:
        raise click.UsageError("--auth-method is for confidential clients; public ones use none")
    state = get_state()
    services = state.services
    if pairwise and state.settings.pairwise_salt is None:
        raise click.UsageError("--pairwise needs OAUTH_SESSIONS_PAIRWISE_SALT (a secret of 32+ "
                               "characters that must never change); set it first")
    if id_token_alg is not None and id_token_alg not in services.keys.id_token_algs:
        raise click.UsageError(
            f"--id-token-alg {id_token_alg}: this provider holds no {id_token_alg} key; choose "
            f"one of {', '.join(services.keys.id_token_algs)}, or set "
            f"OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG={id_token_alg} first")
    try:
        info, secret = services.clients.create(
            name=name, redirect_uris=list(redirect_uris), scopes=scope, public=public,
            can_introspect=introspect, token_endpoint_auth_method=auth_method,
            grant_types=["authorization_code"] if no_refresh else None,
            min_aal=min_aal, max_session_seconds=max_session_seconds,
            jwks=jwks_file.read() if jwks_file is not None else None,
            post_logout_redirect_uris=list(post_logout_redirect_uris),
            backchannel_logout_uri=backchannel_logout_uri, verified=not unverified,
            id_token_signed_response_alg=id_token_alg, pairwise=pairwise)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(_client_json(info, secret)))
        return
    click.echo(f"client_id:     {info.client_id}")
    if secret is not None:
        click.echo(f"client_secret: {secret}   (shown once: store it now)")


@cli.command("list-clients")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@with_appcontext
def list_clients(as_json: bool) -> None:
    """List registered clients (never their secrets)."""
    clients = get_state().services.clients.list()
    if as_json:
        click.echo(json.dumps([_client_json(c) for c in clients]))
        return
    for c in clients:
        mark = "verified" if c.verified else "unverified"
        click.echo(f"{c.client_id}  {c.type:<12}  {mark:<10}  {c.name or ''}  "
                   f"[{' '.join(c.scopes)}]")


@cli.command("verify-client")
@click.argument("client_id")
@click.option("--undo", is_flag=True, help="Stop vouching for the client.")
@with_appcontext
def verify_client(client_id: str, undo: bool) -> None:
    """Vouch for a client someone else registered (dynamic registration, a developer page).

    Only verified clients receive automatic error redirects from /authorize and /logout, and
    their names cannot be taken by unverified ones."""
    if not get_state().services.clients.set_verified(_client_id(client_id), not undo):
        raise click.ClickException("no client with that id")
    click.echo(f"{client_id} is now {'unverified' if undo else 'verified'}")


@cli.command("rotate-secret")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@with_appcontext
def rotate_secret(client_id: str, as_json: bool) -> None:
    """Give a confidential client a new secret; the old one stops working."""
    secret = get_state().services.clients.rotate_secret(_client_id(client_id))
    if secret is None:
        raise click.ClickException("no confidential client with that id")
    if as_json:
        click.echo(json.dumps({"client_id": client_id, "client_secret": secret}))
    else:
        click.echo(f"client_secret: {secret}   (shown once: store it now)")


@cli.command("delete-client")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def delete_client(client_id: str, yes: bool) -> None:
    """Delete a client; every session it holds ends with it."""
    parsed = _client_id(client_id)
    if not yes:
        click.confirm(f"Delete client {client_id} and end all its sessions?", abort=True)
    if not get_state().services.clients.delete(parsed):
        raise click.ClickException("no client with that id")
    click.echo(f"deleted {client_id}")


@cli.command("rotate-keys")
@click.option("--alg", type=click.Choice(["ES256", "EdDSA", "RS256"]), default=None,
              help="Rotate only this algorithm's key (default: every algorithm in use, i.e. "
                   "OAUTH_SESSIONS_SIGNING_ALG and OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG).")
@with_appcontext
def rotate_keys(alg: str | None) -> None:
    """Sign with new keys from now on; old keys stay published until their tokens expire."""
    store = get_state().services.keys
    for key in store.rotate_all(algs=(alg,) if alg else None):
        click.echo(f"active signing key: {key.kid} ({key.alg})")


@cli.command("purge")
@click.option("--batch-size", type=click.IntRange(min=1, max=100_000), default=1000,
              show_default=True, help="Sessions deleted per transaction (short locks, cron-safe).")
@click.option("--first-party", is_flag=True,
              help="Also expired first-party sessions (oauth_client_id NULL). Leave off on a "
                   "Supabase database: those are Supabase Auth's, and it purges them itself.")
@with_appcontext
def purge(batch_size: int, first_party: bool) -> None:
    """Delete what can never be used again: expired sessions, authorization codes expired for a
    day (kept that long so a late replay still revokes), and expired client assertion ids.

    Sessions go in batches by ``not_after`` (``sessions_not_after_idx``), each its own short
    transaction, so it is safe to run from cron while traffic flows. Only OAuth clients'
    sessions, unless ``--first-party``."""
    state = get_state()
    sessions = state.services.sessions.purge_expired(batch_size=batch_size,
                                                           first_party=first_party)
    codes = state.services.authorizations.purge()
    assertions = AssertionLedger(state.engine).purge()
    which = "sessions" if first_party else "OAuth client sessions"
    click.echo(f"purged {sessions} {which}, {codes} authorization codes, "
               f"{assertions} client assertions")
