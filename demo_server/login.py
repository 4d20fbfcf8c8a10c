"""Who is signed in to this browser: a first-party row of ``auth.sessions``.

Signing in creates a session with no OAuth client (``oauth_client_id`` NULL) through
the library's ``SessionStore``; the signed session cookie keeps only its id. Every
request reads that row again by primary key, so revoking it on the "Your sessions"
page (from this browser or another) signs this browser out at once, and a TOTP
step-up raises exactly this row to aal2 with the factor and the ``totp`` amr claim.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from flask import g, request, session

from oauth_sessions import Aal, get_state
from oauth_sessions.core.errors import OAuthSessionsError
from oauth_sessions.core.policy import clean_user_agent
from oauth_sessions.storage.sessions import SessionInfo, SessionStore

from .users import Account, get_account

SESSION_ID_KEY = "sid"
MAX_USER_AGENT = 512  # as the library keeps at /oauth/authorize
AUTH_TIME_KEY = "auth_time"


@dataclass(frozen=True, slots=True)
class Login:
    account: Account
    session: SessionInfo
    auth_time: int  # seconds since the epoch of the password sign-in (OIDC auth_time)

    @property
    def aal(self) -> Aal:
        return self.session.aal


def session_store() -> SessionStore:
    store: SessionStore = get_state().components["sessions"]
    return store


def client_ip() -> str | None:
    """The peer address. The demo serves directly, so X-Forwarded-For is not trusted."""
    return request.remote_addr


def sign_in(account: Account, *, now: datetime | None = None) -> Login:
    """Start a first-party session after a password check.

    The cookie session is cleared first: a session id planted before sign-in
    (session fixation) never carries over, and the CSRF token is renewed.
    """
    issued = session_store().create_session(
        user_id=account.id, client_id=None, scopes=(), aal=Aal.AAL1, amr=["pwd"],
        user_agent=clean_user_agent(request.user_agent.string, MAX_USER_AGENT), ip=client_ip(),
        now=now,
    )
    info = issued.session
    session.clear()
    session[SESSION_ID_KEY] = str(info.id)
    session[AUTH_TIME_KEY] = int(info.created_at.timestamp())
    session.permanent = True
    login = Login(account=account, session=info, auth_time=session[AUTH_TIME_KEY])
    g.demo_login = login
    return login


def current_login() -> Login | None:
    """The signed-in person of this request, or ``None`` (cookie missing, session ended)."""
    if "demo_login" in g:
        cached: Login | None = g.demo_login
        return cached
    login = _load_login()
    g.demo_login = login
    return login


def _load_login() -> Login | None:
    raw = session.get(SESSION_ID_KEY)
    if not isinstance(raw, str):
        return None
    try:
        session_id = uuid.UUID(raw)
    except ValueError:
        session.clear()
        return None
    store = session_store()
    info = store.get(session_id)
    if info is None or info.client_id is not None:
        session.clear()
        return None
    try:
        store.check_active(info)
    except OAuthSessionsError:  # SessionExpired / SessionInactive: the sign-in is over either way
        session.clear()
        return None
    account = get_account(get_state().engine, info.user_id)
    if account is None:
        session.clear()
        return None
    auth_time = session.get(AUTH_TIME_KEY)
    if not isinstance(auth_time, int):
        auth_time = int(info.created_at.timestamp())
    return Login(account=account, session=info, auth_time=auth_time)


def refresh_login(info: SessionInfo) -> None:
    """Replace this request's cached login after the row changed (step-up)."""
    login = current_login()
    if login is not None:
        g.demo_login = Login(account=login.account, session=info, auth_time=login.auth_time)


def sign_out() -> None:
    login = current_login()
    if login is not None:
        session_store().revoke(login.session.id, reason="signed out")
    session.clear()
    g.demo_login = None
