"""The signed-in pages: home, "Your sessions" and "Connected apps".

Everything shown comes from the library's stores: ``SessionStore.list_for_user`` for the
sessions (one row of ``auth.sessions`` each, whether this browser or an OAuth client),
``ClientStore`` for the apps' names and ``ConsentStore`` for what each app was allowed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from user_agents import parse as parse_user_agent
from werkzeug.wrappers import Response

from oauth_sessions import get_state
from oauth_sessions.flask.extension import revoke_consent
from oauth_sessions.storage.authorizations import ConsentStore
from oauth_sessions.storage.clients import ClientInfo, ClientStore
from oauth_sessions.storage.sessions import SessionInfo

from .login import Login, current_login, session_store
from .nav import login_required
from .scopes import describe_scope

bp = Blueprint("pages", __name__)


def _login() -> Login:
    login = current_login()
    if login is None:  # guarded by @login_required
        abort(401)
    return login


def client_store() -> ClientStore:
    store: ClientStore = get_state().components["clients"]
    return store


def consent_store() -> ConsentStore:
    store: ConsentStore = get_state().components["consents"]
    return store


def describe_device(user_agent: str | None) -> str:
    """"Chrome 120 on Linux" from a User-Agent header; "Unknown device" without one."""
    if not user_agent:
        return "Unknown device"
    ua = parse_user_agent(user_agent)
    browser = f"{ua.browser.family} {ua.browser.version_string}".strip()
    system = f"{ua.os.family} {ua.os.version_string}".strip()
    if ua.browser.family == "Other":
        # A server-side client (the app's backend calling the token endpoint): its product name.
        return user_agent.split(" ", 1)[0][:60]
    if ua.os.family == "Other":
        return browser
    return f"{browser} on {system}"


@dataclass(frozen=True, slots=True)
class SessionRow:
    info: SessionInfo
    device: str
    app_name: str
    is_current: bool
    expires: datetime | None


def _client_names() -> dict[uuid.UUID, str]:
    return {c.id: c.name or "Unnamed app" for c in client_store().list()}


@bp.get("/")
def index() -> str:
    state = get_state()
    login = current_login()
    return render_template("index.html", login=login, issuer=state.settings.issuer,
                           backend=state.engine.dialect.name)


@bp.get("/account/sessions")
@login_required
def sessions() -> str:
    login = _login()
    names = _client_names()
    rows = [
        SessionRow(info=s, device=describe_device(s.user_agent),
                   app_name=names.get(s.client_id, "Deleted app") if s.client_id else "This website",
                   is_current=s.id == login.session.id, expires=s.not_after)
        for s in sorted(session_store().list_for_user(login.account.id),
                        key=lambda s: s.created_at, reverse=True)
    ]
    return render_template("sessions.html", rows=rows, now=datetime.now(UTC),
                           describe_scope=describe_scope)


@bp.post("/account/sessions/revoke")
@login_required
def revoke_sessions() -> Response:
    """Revoke one session, every other one, or all (which signs this browser out too)."""
    login = _login()
    store = session_store()
    which = request.form.get("which", "")
    if which == "one":
        try:
            session_id = uuid.UUID(request.form.get("session_id", ""))
        except ValueError:
            abort(400, description="No such session.")
        owned = {s.id for s in store.list_for_user(login.account.id)}
        if session_id not in owned:
            flash("That session had already ended.", "info")
        elif store.revoke(session_id, reason="revoked by user"):
            if session_id == login.session.id:
                flash("You ended this browser's session and are signed out.", "success")
                return redirect(url_for("pages.index"))
            flash("The session was revoked: its tokens no longer work.", "success")
    elif which == "others":
        count = store.revoke_user(login.account.id, except_session=login.session.id,
                                  reason="revoked by user", first_party=True)
        flash(f"Revoked {count} other session{'s' if count != 1 else ''}.", "success")
    elif which == "all":
        store.revoke_user(login.account.id, reason="revoked by user", first_party=True)
        flash("Every session was revoked, including this one: you are signed out.", "success")
        return redirect(url_for("pages.index"))
    else:
        abort(400, description="Choose which sessions to revoke.")
    return redirect(url_for("pages.sessions"))


@dataclass(frozen=True, slots=True)
class ConnectedApp:
    client: ClientInfo
    scopes: tuple[str, ...]
    session_count: int


@bp.get("/account/apps")
@login_required
def apps() -> str:
    login = _login()
    sessions_by_client: dict[uuid.UUID, int] = {}
    for s in session_store().list_for_user(login.account.id):
        if s.client_id is not None:
            sessions_by_client[s.client_id] = sessions_by_client.get(s.client_id, 0) + 1
    consents = consent_store()
    connected = []
    for client in client_store().list():
        granted = consents.granted(login.account.id, client.id)
        if granted or client.id in sessions_by_client:
            connected.append(ConnectedApp(client, granted, sessions_by_client.get(client.id, 0)))
    return render_template("apps.html", apps=connected, describe_scope=describe_scope)


@bp.post("/account/apps/revoke")
@login_required
def revoke_app() -> Response:
    """Withdraw consent and end every session of the app: its refresh tokens stop at once."""
    login = _login()
    client = client_store().get(request.form.get("client_id", ""))
    if client is None:
        abort(400, description="No such app.")
    ended = revoke_consent(login.account.id, client.id)
    flash(f"{client.name or 'The app'} no longer has access "
          f"({ended} session{'s' if ended != 1 else ''} ended).", "success")
    return redirect(url_for("pages.apps"))
