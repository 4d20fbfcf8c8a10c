"""A "Your sessions" page built on ``SessionManager`` (docs/guides/sessions-page.md).

Mount it with the host's own "who is signed in" callbacks::

    app.register_blueprint(sessions_page(current_user_id, current_session_id),
                           url_prefix="/account")

``current_user_id()`` returns the signed-in user's id (``None``: not signed in);
``current_session_id()`` the ``auth.sessions`` row of this browser's own sign-in, if the host
keeps one (``None`` otherwise). Every form carries a CSRF token kept in Flask's session.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Callable

from flask import Blueprint, abort, redirect, render_template_string, request, session, url_for
from flask.typing import ResponseReturnValue

from oauth_sessions.flask.management import SessionView, sessions_manager

PAGE = """<!doctype html>
<title>Your sessions</title>
<h1>Your sessions</h1>
<form method="post" action="{{ url_for('.sign_out_elsewhere') }}">
  <input type="hidden" name="csrf" value="{{ csrf }}">
  <button>Sign out everywhere else</button>
</form>
<ul>
{% for s in sessions %}
  <li>
    <strong>{{ s.client_name or "This site" }}</strong>{% if s.id == current %} (this browser){% endif %}
    · {{ level(s) }} · signed in {{ s.created_at.strftime("%d %b %Y %H:%M") }} UTC
    · {{ s.user_agent or "unknown device" }}{% if s.ip %} from {{ s.ip }}{% endif %}
    · {% if s.not_after %}ends {{ s.not_after.strftime("%d %b %Y %H:%M") }} UTC
      {%- else %}no end date{% endif %}
    <form method="post" action="{{ url_for('.sign_out', session_id=s.id) }}">
      <input type="hidden" name="csrf" value="{{ csrf }}">
      <button>Sign out</button>
    </form>
  </li>
{% else %}
  <li>No sessions.</li>
{% endfor %}
</ul>
"""


def level(view: SessionView) -> str:
    """Words for people; the aal codes are for developers."""
    return "verified with a second factor" if view.aal in ("aal2", "aal3") else "signed in with password"


def _csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    token: str = session["csrf"]
    return token


def _check_csrf() -> None:
    sent = request.form.get("csrf", "")
    if not hmac.compare_digest(sent.encode(), _csrf_token().encode()):
        abort(400)


def sessions_page(current_user_id: Callable[[], uuid.UUID | None],
                  current_session_id: Callable[[], uuid.UUID | None] = lambda: None) -> Blueprint:
    bp = Blueprint("sessions_page", __name__)

    def user() -> uuid.UUID:
        user_id = current_user_id()  # from the host's sign-in, never from the request
        if user_id is None:
            abort(401)
        return user_id

    @bp.get("/sessions")
    def page() -> ResponseReturnValue:
        views = sessions_manager().list_sessions(user())
        return render_template_string(PAGE, sessions=views, current=current_session_id(),
                                      csrf=_csrf_token(), level=level)

    @bp.post("/sessions/<uuid:session_id>/sign-out")
    def sign_out(session_id: uuid.UUID) -> ResponseReturnValue:
        _check_csrf()
        # False for a session that is not this user's: the same answer as for none at all.
        if not sessions_manager().revoke(user(), session_id):
            abort(404)
        return redirect(url_for(".page"), 303)

    @bp.post("/sessions/sign-out-elsewhere")
    def sign_out_elsewhere() -> ResponseReturnValue:
        _check_csrf()
        current = current_session_id()
        manager = sessions_manager()
        if current is None:
            manager.revoke_all(user(), first_party=True)
        else:
            manager.revoke_others(user(), current, first_party=True)
        return redirect(url_for(".page"), 303)

    return bp
