"""The machine-to-machine endpoints as a plain WSGI app, for a deployment that mounts it on purpose.

``make_wsgi_app(app)`` returns a WSGI application answering, for the provider initialised on the
Flask ``app``, exactly these routes (the full path, ``SCRIPT_NAME`` + ``PATH_INFO``, so it
answers the same URLs wherever it is mounted)::

    POST {prefix}/token                          protocol/token_endpoint.py   (both grants)
    POST {prefix}/introspect                     protocol/introspection_endpoint.py
    POST {prefix}/revoke                         protocol/revocation.py
    POST {prefix}/par                            protocol/pushed_requests.py  (RFC 9126)
    GET  {prefix}/jwks                           protocol/jwks.py
    GET  /.well-known/openid-configuration       protocol/discovery.py
    GET  /.well-known/oauth-authorization-server protocol/discovery.py

and, when ``OAUTH_SESSIONS_DYNAMIC_REGISTRATION`` is on, as on the blueprint::

    POST               {prefix}/register              protocol/registration.py (RFC 7591)
    GET, PUT, DELETE   {prefix}/register/<client_id>  protocol/registration.py (RFC 7592)

with the same handlers as the Flask blueprint, so the status, headers and body of every answer
are the blueprint's (``tests/test_wsgi_app.py`` compares them). ``HEAD`` is answered where
``GET`` is, as Flask does. Anything else is 404, a wrong method 405.

**No Flask request hooks run here**: not the host's ``before_request``/``after_request``/
``teardown_request`` functions, not its error handlers, not Flask's request signals, not a
wrapper put on ``app.view_functions``. That is the point (a resource server introspecting or a
client refreshing needs none of a browser-facing app's CSRF, CORS or session hooks, and they
cost as much as the work itself), and the reason it is never installed implicitly: mount it
with Werkzeug's ``DispatcherMiddleware`` on the paths above, or serve it on a port of its own
(see the production guide). An app context of ``app`` is pushed for each request, so signal
receivers may use ``current_app``; there is no request context: receivers get what they need
as arguments (``session_refreshed`` gets the refreshed ``session``, with this request's
``user_agent`` and ``ip``).

A database error answers the blueprint's ``503 temporarily_unavailable`` (or ``500``); any
other exception is logged by class and place only (never its message, which may hold what the
request carried) and answered ``500 server_error``, unless the app is testing or propagates
exceptions, when it is raised.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from .flask.state import get_state
from .protocol.http import Answer, HttpRequest, from_werkzeug, with_security_headers
from .protocol.outage import database_error_answer, server_error_answer
from .storage.database_errors import DATABASE_ERRORS

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["MachineApp", "make_wsgi_app"]

log = logging.getLogger(__name__)

Handler = Callable[[HttpRequest], Answer]


def make_wsgi_app(app: Flask) -> MachineApp:
    """The WSGI app of the module docstring for ``app`` (after ``OAuthSessions(app)``)."""
    return MachineApp(app)


class MachineApp:
    """The machine-to-machine endpoints of one provider, without Flask's request cycle."""

    def __init__(self, app: Flask) -> None:
        state = get_state(app)  # raises, saying how to fix it, when the extension is missing
        services, prefix = state.services, state.settings.url_prefix
        self._app = app
        self._routes: dict[str, Mapping[str, Handler]] = {
            prefix + "/token": {"POST": services.token_endpoint},
            prefix + "/introspect": {"POST": services.introspection_endpoint},
            prefix + "/revoke": {"POST": services.revocation_endpoint},
            prefix + "/par": {"POST": services.pushed_authorization_endpoint},
            prefix + "/jwks": {"GET": services.jwks_endpoint},
            "/.well-known/openid-configuration": {"GET": services.discovery_endpoint},
            "/.well-known/oauth-authorization-server": {"GET": services.discovery_endpoint},
        }
        #: ``{prefix}/register/`` when registration is on: the RFC 7592 configuration URIs.
        self._client_uris: str | None = None
        if state.settings.dynamic_registration:
            self._registration = services.registration_endpoint
            self._routes[prefix + "/register"] = {"POST": self._registration.register}
            self._client_uris = prefix + "/register/"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        methods = self._routes.get(path) or self._client_uri(path)
        if methods is None:
            return NotFound()(environ, start_response)
        asked = environ.get("REQUEST_METHOD", "GET")
        handler = methods.get(asked) or (methods.get("GET") if asked == "HEAD" else None)
        if handler is None:
            allowed = sorted({*methods, "HEAD"} if "GET" in methods else methods)
            return MethodNotAllowed(valid_methods=allowed)(environ, start_response)
        answer = self._answer(handler, Request(environ))
        # In the order the blueprint sends them: the answer's, the length (none on a 204, RFC
        # 9110 section 8.6), the security headers.
        length = [] if answer.status == 204 else [("Content-Length", str(len(answer.body)))]
        headers = with_security_headers([*answer.headers, *length])
        start_response(f"{answer.status} {HTTP_STATUS_CODES.get(answer.status, 'UNKNOWN').upper()}",
                       headers)
        return [answer.body] if asked != "HEAD" else []

    def _client_uri(self, path: str) -> Mapping[str, Handler] | None:
        """RFC 7592 ``{prefix}/register/<client_id>``: one path segment, decoded as Flask does."""
        if self._client_uris is None or not path.startswith(self._client_uris):
            return None
        client_id = path[len(self._client_uris):].encode("latin-1").decode("utf-8", "replace")
        if not client_id or "/" in client_id:
            return None
        manage = partial(self._registration.manage, client_id=client_id)
        return {"GET": manage, "PUT": manage, "DELETE": manage}

    def _answer(self, handler: Handler, request: Request) -> Answer:
        try:
            with self._app.app_context():
                return handler(from_werkzeug(request))
        except DATABASE_ERRORS as exc:  # the blueprint's outage handler, the same answer
            return database_error_answer(exc)
        except Exception as exc:
            if self._app.testing or self._app.config.get("PROPAGATE_EXCEPTIONS"):
                raise
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error("oauth_sessions.wsgi: unexpected %s at %s:%s", type(exc).__name__,
                      where.filename.rsplit("/", 1)[-1], where.lineno)
            return server_error_answer()

    def routes(self) -> dict[str, str]:
        """The paths to mount this app on and their methods (for mounting and for docs).

        Werkzeug's ``DispatcherMiddleware`` hands a mount point the paths below it too, so
        ``{prefix}/register`` (when registration is on) also carries the RFC 7592
        configuration URIs ``{prefix}/register/<client_id>`` (``GET``, ``PUT``, ``DELETE``).
        """
        return {path: ", ".join(methods) for path, methods in self._routes.items()}
