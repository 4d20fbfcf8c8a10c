"""``flask oauth-sessions …``: database migrations and administration commands."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TextIO

import click
from flask.cli import ScriptInfo, with_appcontext
from sqlalchemy.engine import make_url

from ..storage import migrate
from ..storage.clients import ClientInfo, parse_client_id
from ..storage.database_errors import DATABASE_ERRORS, explain_database_error
from ..storage.replay_ledger import ClientAssertionLedger, DpopReplayLedger
from ..storage.resource_servers import ResourceServerInfo
from .management import SessionView, sessions_manager
from .state import get_state


class _Commands(click.Group):
    """The command group: a database error becomes one line saying what is wrong and what
    fixes it (``createdb ...``, ``db upgrade``), exit status 1, never a driver traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except DATABASE_ERRORS as exc:
            raise click.ClickException(_database_problem(ctx, exc)) from None


def _database_problem(ctx: click.Context, exc: BaseException) -> str:
    info = ctx.find_object(ScriptInfo)
    try:
        url = get_state(info.load_app() if info is not None else None).engine.url
    except Exception:  # no app to ask: the error still gets its one line
        url = make_url("postgresql://")
    return explain_database_error(exc, url)


@click.group("oauth-sessions", cls=_Commands, help="Administer the oauth_sessions provider.")
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
    try:
        migrate.downgrade(state.engine, revision)
    except NotImplementedError as exc:  # revision 0006 is one-way
        raise click.ClickException(str(exc)) from None
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


class BadId(click.ClickException):
    """An id that is not a UUID: one line and exit status 2, like click's other usage errors."""

    exit_code = 2


def _uuid(value: str, what: str) -> uuid.UUID:
    parsed = parse_client_id(value)
    if parsed is None:
        raise BadId(f"{value!r} is not a {what} (a UUID such as 0b5f8e2c-8d1e-4c39-9a7e-2f1d6c3b4a50)")
    return parsed


def _client_id(value: str) -> uuid.UUID:
    return _uuid(value, "client id")


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
@click.option("--userinfo-alg", type=click.Choice(["ES256", "EdDSA", "RS256"]), default=None,
              help="Sign this client's UserInfo answers with this alg (userinfo_signed_response_alg, "
                   "application/jwt); default: plain JSON.")
@click.option("--require-par", is_flag=True,
              help="The client must push its authorization requests (RFC 9126, "
                   "require_pushed_authorization_requests).")
@click.option("--dpop-bound-access-tokens", "dpop_bound", is_flag=True,
              help="Every token request of this client must carry a DPoP proof (RFC 9449 "
                   "section 5.2); see require-dpop to change it later.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
@with_appcontext
def create_client(name: str, redirect_uris: tuple[str, ...], scope: str, public: bool,
                  introspect: bool, auth_method: str | None, jwks_file: TextIO | None,
                  no_refresh: bool,
                  min_aal: str | None, max_session_seconds: int | None,
                  post_logout_redirect_uris: tuple[str, ...], backchannel_logout_uri: str | None,
                  unverified: bool, id_token_alg: str | None, pairwise: bool,
                  userinfo_alg: str | None, require_par: bool, dpop_bound: bool,
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
    for option, chosen in (("--id-token-alg", id_token_alg), ("--userinfo-alg", userinfo_alg)):
        if chosen is not None and chosen not in services.keys.id_token_algs:
            raise click.UsageError(
                f"{option} {chosen}: this provider holds no {chosen} key; choose "
                f"one of {', '.join(services.keys.id_token_algs)}, or set "
                f"OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG={chosen} first")
    try:
        info, secret = services.clients.create(
            name=name, redirect_uris=list(redirect_uris), scopes=scope, public=public,
            can_introspect=introspect, token_endpoint_auth_method=auth_method,
            grant_types=["authorization_code"] if no_refresh else None,
            min_aal=min_aal, max_session_seconds=max_session_seconds,
            jwks=jwks_file.read() if jwks_file is not None else None,
            post_logout_redirect_uris=list(post_logout_redirect_uris),
            backchannel_logout_uri=backchannel_logout_uri, verified=not unverified,
            id_token_signed_response_alg=id_token_alg, pairwise=pairwise,
            require_pushed_authorization_requests=require_par,
            userinfo_signed_response_alg=userinfo_alg,
            dpop_bound_access_tokens=dpop_bound)
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


@cli.command("require-par")
@click.argument("client_id")
@click.option("--undo", is_flag=True, help="Accept plain authorization requests again.")
@with_appcontext
def require_par(client_id: str, undo: bool) -> None:
    """Require a client to push its authorization requests (RFC 9126 section 6): /authorize
    then accepts only the request_uri that /par answered it."""
    if not get_state().services.clients.update_metadata(
            _client_id(client_id), require_pushed_authorization_requests=not undo):
        raise click.ClickException("no client with that id")
    click.echo(f"{client_id} {'may send plain' if undo else 'must push its'} authorization "
               "requests")


@cli.command("require-dpop")
@click.argument("client_id")
@click.option("--undo", is_flag=True, help="Let the client send token requests without DPoP again.")
@with_appcontext
def require_dpop(client_id: str, undo: bool) -> None:
    """Make every token request of a client carry a DPoP proof (dpop_bound_access_tokens,
    RFC 9449 section 5.2); other workers see the change within OAUTH_SESSIONS_CLIENT_CACHE_SECONDS."""
    clients = get_state().services.clients
    if not clients.update_metadata(_client_id(client_id), dpop_bound_access_tokens=not undo):
        raise click.ClickException("no client with that id")
    click.echo(f"{client_id} {'may send token requests without DPoP' if undo else 'must use DPoP'}")


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


# --------------------------------------------------------------------------- resource servers


def _resource_server_json(info: ResourceServerInfo, secret: str | None = None) -> dict[str, object]:
    body: dict[str, object] = info.as_json()
    if secret is not None:
        body["secret"] = secret
    return body


@cli.command("create-resource-server")
@click.argument("resource")
@click.option("--name", default=None, help="A label for operators.")
@click.option("--min-aal", type=click.Choice(["aal1", "aal2", "aal3"]), default=None,
              help="Minimum assurance level of the tokens meant for this resource server "
                   "(asked for at authorize, enforced at introspection).")
@click.option("--scope", default=None,
              help='Space-separated scopes its tokens may carry, e.g. "payments" (default: any).')
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
@with_appcontext
def create_resource_server(resource: str, name: str | None, min_aal: str | None,
                           scope: str | None, as_json: bool) -> None:
    """Register the resource server RESOURCE (an absolute URI, RFC 8707 section 2).

    Clients name it with resource=RESOURCE; its tokens carry aud=RESOURCE. It introspects as
    itself with its id and secret (HTTP Basic). The secret is printed once and never stored in
    clear."""
    try:
        info, secret = get_state().services.resource_servers.create(
            resource, name=name, min_aal=min_aal, scopes=scope)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(_resource_server_json(info, secret)))
        return
    click.echo(f"id:       {info.client_id}")
    click.echo(f"resource: {info.resource}")
    click.echo(f"secret:   {secret}   (shown once: store it now)")


@cli.command("list-resource-servers")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@with_appcontext
def list_resource_servers(as_json: bool) -> None:
    """List registered resource servers (never their secrets)."""
    servers = get_state().services.resource_servers.list()
    if as_json:
        click.echo(json.dumps([_resource_server_json(s) for s in servers]))
        return
    for s in servers:
        click.echo(f"{s.client_id}  {s.resource}  {s.min_aal.value if s.min_aal else '-'}  "
                   f"[{' '.join(s.scopes) if s.scopes is not None else '*'}]  {s.name or ''}")


@cli.command("delete-resource-server")
@click.argument("server_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def delete_resource_server(server_id: str, yes: bool) -> None:
    """Remove a resource server: it can no longer introspect and no new token names it."""
    parsed = _uuid(server_id, "resource server id")
    if not yes:
        click.confirm(f"Delete resource server {server_id}?", abort=True)
    if not get_state().services.resource_servers.delete(parsed):
        raise click.ClickException("no resource server with that id")
    click.echo(f"deleted {server_id}")


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
    day (kept that long so a late replay still revokes), expired client assertion ids, the
    ids of DPoP proofs too old to be accepted and pushed authorization requests expired for a
    day.

    Sessions go in batches, oldest not_after first, each batch its own short transaction, so
    it is safe to run from cron while traffic flows. Only OAuth clients' sessions are
    purged unless --first-party is given."""
    state = get_state()
    sessions = state.services.sessions.purge_expired(batch_size=batch_size,
                                                           first_party=first_party)
    codes = state.services.authorizations.purge()
    assertions = ClientAssertionLedger(state.engine).purge()
    proofs = DpopReplayLedger(state.engine).purge()
    pushed = state.services.pushed_requests.purge()
    which = "sessions" if first_party else "OAuth client sessions"
    click.echo(f"purged {sessions} {which}, {codes} authorization codes, "
               f"{assertions} client assertions, {proofs} DPoP proofs, {pushed} pushed requests")


# --------------------------------------------------------------------------- sessions


def _session_json(view: SessionView, now: datetime) -> dict[str, object]:
    body = view.as_json()
    del body["current"]  # only meaningful to a browser asking about its own session
    body["user_id"] = str(view.user_id) if view.user_id is not None else None
    body["first_party"] = view.client_id is None
    body["expired"] = view.not_after is not None and view.not_after <= now
    return body


def _session_line(view: SessionView, now: datetime) -> str:
    app = (f"{view.client_name or '(unnamed)'} ({view.client_id})" if view.client_id is not None
           else "first-party")
    expires = view.not_after.isoformat(timespec="seconds") if view.not_after else "never"
    ended = "  EXPIRED" if view.not_after is not None and view.not_after <= now else ""
    return (f"{view.id}  user {view.user_id}  {app}  {view.aal}  "
            f"created {view.created_at.isoformat(timespec='seconds')}  expires {expires}{ended}")


_FIRST_PARTY_HELP = ("Include first-party sessions (oauth_client_id NULL). Leave off on a "
                     "Supabase database: those are Supabase Auth's own sign-ins.")


@cli.command("list-sessions")
@click.option("--user", "user", metavar="USER_ID", default=None, help="Only this user's sessions.")
@click.option("--client", "client", metavar="CLIENT_ID", default=None,
              help="Only this client's sessions.")
@click.option("--expired", is_flag=True,
              help="Only sessions past their not_after (what purge deletes).")
@click.option("--first-party", is_flag=True, help=_FIRST_PARTY_HELP)
@click.option("--limit", type=click.IntRange(min=1, max=100_000), default=100, show_default=True,
              help="At most this many sessions, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@with_appcontext
def list_sessions(user: str | None, client: str | None, expired: bool, first_party: bool,
                  limit: int, as_json: bool) -> None:
    """List sessions, newest first, with their user, client, assurance level and expiry.

    The filters combine. Only OAuth clients' sessions are listed unless --first-party is
    given, so the list shows what revoke-user would end. Never prints a session's key or
    refresh token."""
    user_id = _uuid(user, "user id") if user is not None else None
    client_id = _client_id(client) if client is not None else None
    if client_id is not None and get_state().services.clients.get(client_id, fresh=True) is None:
        raise click.ClickException(f"no client with id {client_id}")
    manager = sessions_manager()
    if user_id is not None and not manager.user_exists(user_id):
        raise click.ClickException(f"no user with id {user_id}")
    views = manager.find_sessions(user_id=user_id, client_id=client_id, expired=expired,
                                  first_party=first_party, limit=limit)
    now = datetime.now(UTC)
    if as_json:
        click.echo(json.dumps([_session_json(v, now) for v in views]))
        return
    if not views:
        click.echo("no sessions")
    for view in views:
        click.echo(_session_line(view, now))


@cli.command("revoke-session")
@click.argument("session_id")
@click.option("--first-party", is_flag=True,
              help="Allow ending a first-party session (oauth_client_id NULL).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@with_appcontext
def revoke_session(session_id: str, first_party: bool, as_json: bool) -> None:
    """End one session of any user at once: its refresh token stops working and its client
    is told through back-channel logout."""
    parsed = _uuid(session_id, "session id")
    manager = sessions_manager()
    view = manager.session(parsed)
    if view is None:
        raise click.ClickException(f"no session with id {parsed}")
    if view.client_id is None and not first_party:
        raise click.ClickException(f"session {parsed} is first-party (oauth_client_id NULL); "
                                   f"add --first-party to end it")
    revoked = manager.revoke_session(parsed, reason="operator_revoked", first_party=first_party)
    if as_json:
        click.echo(json.dumps({"session_id": str(parsed), "revoked": int(revoked)}))
    else:
        click.echo(f"revoked session {parsed}" if revoked else f"session {parsed} had already ended")


@cli.command("revoke-user")
@click.argument("user_id")
@click.option("--first-party", is_flag=True, help="Also end the user's first-party sessions "
              "(oauth_client_id NULL). Leave off on a Supabase database.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@with_appcontext
def revoke_user(user_id: str, first_party: bool, as_json: bool) -> None:
    """End every OAuth session of a user ("sign out everywhere"), each client told through
    back-channel logout. The user stays; first-party sessions stay unless --first-party."""
    parsed = _uuid(user_id, "user id")
    manager = sessions_manager()
    if not manager.user_exists(parsed):
        raise click.ClickException(f"no user with id {parsed}")
    count = manager.revoke_all(parsed, reason="operator_revoked", first_party=first_party)
    if as_json:
        click.echo(json.dumps({"user_id": str(parsed), "revoked": count,
                               "first_party": first_party}))
        return
    kept = "" if first_party else " (first-party sessions kept)"
    click.echo(f"revoked {count} session{'' if count == 1 else 's'} of user {parsed}{kept}")


@cli.command("revoke-client-sessions")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@with_appcontext
def revoke_client_sessions(client_id: str, as_json: bool) -> None:
    """End every session of a client, for all its users; the client stays registered (use
    delete-client to remove it as well)."""
    parsed = _client_id(client_id)
    if get_state().services.clients.get(parsed, fresh=True) is None:
        raise click.ClickException(f"no client with id {parsed}")
    count = sessions_manager().revoke_client(parsed, reason="operator_revoked")
    if as_json:
        click.echo(json.dumps({"client_id": str(parsed), "revoked": count}))
    else:
        click.echo(f"revoked {count} session{'' if count == 1 else 's'} of client {parsed}")
