"""The demo's answer to the library's host-app protocol (``oauth_sessions.flask.host``).

The library asks four things during ``/oauth/authorize`` and the demo answers from its own
sign-in: who is signed in and how strongly (this browser's ``auth.sessions`` row and its amr
claims), where to sign in, where to step up with TOTP, and what the consent page looks like.
For RP-initiated logout it ends the browser's own sign-in (so ``prompt=none`` afterwards needs
a new sign-in) and says what ended; errors that are not redirected get the demo's error page.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from oauth_sessions import Aal, get_state
from oauth_sessions.core.uris import host_of
from oauth_sessions.flask.host import (
    Authentication,
    ConsentRequest,
    ErrorPage,
    HostAdapter,
    LogoutOutcome,
)

from .login import current_login, session_store, sign_out
from .scopes import describe_scope
from .users import get_account


def local_path(url: str) -> str:
    """Reduce an absolute URL of this site to its path and query (for ``next``)."""
    parts = urlsplit(url)
    if parts.netloc and parts.netloc != request.host:
        return "/"
    return urlunsplit(("", "", parts.path or "/", parts.query, ""))


class DemoHost(HostAdapter):
    #: What userinfo() below can return (discovery's claims_supported).
    claims_supported = ("email", "email_verified")

    def current_authentication(self) -> Authentication | None:
        login = current_login()
        if login is None:
            return None
        amr = session_store().get_amr(login.session.id)
        auth_time = max((entry.timestamp for entry in amr), default=login.session.created_at)
        return Authentication(user_id=login.account.id, aal=login.aal, amr=amr,
                              auth_time=auth_time, factor_id=login.session.factor_id,
                              username=login.account.email)

    def login(self, next_url: str, prompt: str | None) -> Response:
        target = local_path(next_url)
        prompts = (prompt or "").split()
        if "create" in prompts:
            return redirect(url_for("accounts.signup", next=target))
        if "login" in prompts or current_login() is not None:
            # Someone already signed in is sent here only to authenticate again (prompt=login,
            # or a max_age their sign-in is older than): show the form, never bounce back.
            return redirect(url_for("accounts.signin", next=target, prompt="login"))
        return redirect(url_for("accounts.signin", next=target))

    def step_up(self, next_url: str, required_aal: Aal) -> Response:
        return redirect(url_for("mfa.step_up", next=local_path(next_url)))

    def render_consent(self, request_info: ConsentRequest) -> str:
        new = [s for s in request_info.scopes if s not in request_info.granted_scopes]
        return render_template(
            "consent.html", req=request_info, client_name=request_info.client.name or "An app",
            redirect_host=host_of(request_info.redirect_uri),
            new_scopes=[(s, describe_scope(s)) for s in new],
            kept_scopes=[(s, describe_scope(s)) for s in request_info.scopes
                         if s in request_info.granted_scopes])

    def logout(self, user_id: uuid.UUID) -> None:
        login = current_login()
        if login is not None and login.account.id == user_id:
            sign_out()

    def logged_out(self, outcome: LogoutOutcome) -> tuple[str, int]:
        return render_template("logged_out.html", outcome=outcome), 200

    def render_error(self, page: ErrorPage) -> tuple[str, int]:
        return render_template("authorize_error.html", page=page), page.status

    def userinfo(self, user_id: uuid.UUID, scopes: Sequence[str]) -> dict[str, Any]:
        account = get_account(get_state().engine, user_id)
        if account is None:
            return {}
        claims: dict[str, Any] = {}
        if "email" in scopes:
            claims.update(email=account.email, email_verified=False)
        # "profile" adds nothing: the demo keeps no display name, and nothing derived from the
        # address (not even its local part) may stand in for one. The address is released
        # under "email" alone, the permission the person saw on the consent page.
        return claims
