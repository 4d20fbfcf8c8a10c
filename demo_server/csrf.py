"""CSRF protection for every form of the demo: a synchronizer token kept in the session.

Each browser session gets one random token, stored in Flask's signed session
cookie and echoed in a hidden ``csrf_token`` field of every form. A state-changing
request (anything but GET/HEAD/OPTIONS) must send the same value back, compared in
constant time. A page on another origin can make the browser send the cookie, but
it cannot read the token, so it cannot forge the field (OWASP "synchronizer token
pattern"). The session cookie is also ``SameSite=Lax`` (see ``config.py``), which
already stops most cross-site POSTs; the token is the part that does not depend on
the browser.

Requests to the OAuth endpoints are exempt: ``/oauth/token``, ``/oauth/revoke`` and
``/oauth/introspect`` are called by clients, not by forms, and authenticate
themselves (client credentials, PKCE); the consent form posted to
``/oauth/authorize`` carries the library's own ``consent_ticket``, signed and bound
to the user and to the exact request (an extra field there would break that
binding). The JSON API uses bearer tokens, which a foreign page cannot attach, so
it is exempt too.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, abort, request, session

SESSION_KEY = "csrf_token"
FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token() -> str:
    """The token of this browser session, created on first use."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def token_is_valid(sent: str | None) -> bool:
    expected = session.get(SESSION_KEY)
    if not isinstance(expected, str) or not sent:
        return False
    return hmac.compare_digest(expected.encode(), sent.encode())


def init_csrf(app: Flask, *, exempt_prefixes: tuple[str, ...]) -> None:
    """Check the token before every unsafe request whose path starts with none of ``exempt_prefixes``."""

    @app.before_request
    def _check_csrf() -> None:
        if request.method in SAFE_METHODS:
            return
        if any(request.path.startswith(prefix) for prefix in exempt_prefixes):
            return
        if not token_is_valid(request.form.get(FIELD)):
            abort(400, description="This form has expired or did not come from this site. "
                                   "Go back, reload the page and try again.")

    app.jinja_env.globals["csrf_token"] = csrf_token
