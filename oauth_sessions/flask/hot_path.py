"""The two hot endpoints answered beneath Flask's request cycle: refresh at ``/token``, and ``/introspect``.

Clients refresh and resource servers introspect far more often than anything else happens, and
the library's own work there is small (one or two primary-key statements, one signature). At
that size Flask's request cycle (request and response objects, routing, hooks, form parsing)
and Authlib's grant dispatch cost as much as the work itself, so :class:`HotPath`, a WSGI
middleware put around the app's ``wsgi_app`` by ``init_app``, answers these two requests
directly, on the same functions the Flask views call:

* ``POST {prefix}/token`` with ``grant_type=refresh_token``:
  :func:`oauth_sessions.protocol.refresh_grant.refresh`;
* ``POST {prefix}/introspect`` (JSON answers): :func:`oauth_sessions.core.introspection.check_token`.

It is an accelerator, never a second implementation of a rule. It answers only requests of the
plainest shape: a urlencoded body with a ``Content-Length``, every parameter once, printable
ASCII, no query string, a client that authenticates with its registered method
(``client_secret_basic``, ``client_secret_post``, or ``none`` at the token endpoint). Everything
else, including every request that would be refused *before* a session is read (bad client
credentials, a missing parameter, a repeated one, a JWT introspection answer, ``private_key_jwt``),
is handed on untouched to Flask, whose views produce the error; nothing has been read from or
written to the database by then, so the request runs exactly once. Decisions that need the
session row (expired, reused, another client's token) are answered here with the same
functions, statuses, bodies and headers as the Flask view (``tests/test_hot_path.py`` compares
the two answer for answer).

It stands aside entirely, for every request, when the app has anything that Flask would run
around these views and this path cannot: ``before_request``/``after_request``/``teardown``
functions of the host app (Flask-Limiter's limits, Flask-CORS's headers, a host's audit hook),
or receivers of Flask's request signals (tracing). ``OAUTH_SESSIONS_HOT_PATH = False`` turns it
off. It sits directly around Flask's own ``wsgi_app``, inside any middleware the host wrapped
around the app before or after ``init_app`` (``ProxyFix`` must see every request first; see
:func:`install`).

The library's signal receivers run inside an app context here, as in the view (no request
context: they are given everything they need as arguments).
"""

from __future__ import annotations

import binascii
import json
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping
from io import BytesIO
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote_plus

from authlib.oauth2 import OAuth2Error
from flask import Flask
from flask import signals as flask_signals
from werkzeug.http import HTTP_STATUS_CODES

from ..protocol.introspection_endpoint import _NO_STORE
from ..protocol.introspection_endpoint import _json as _compact
from ..protocol.refresh_grant import RefreshTokenGrant, refresh, scope_is_well_formed
from ..storage.clients import ClientInfo, verify_client_secret
from .blueprints import _PRINTABLE_ASCII, MAX_BODY, MAX_VALUE
from .outage import DATABASE_ERRORS, SERVER_ERROR, database_error

if TYPE_CHECKING:
    from .extension import AppState

__all__ = ["HotPath", "install"]

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Answer = tuple[int, list[tuple[str, str]], bytes]  # status, headers, body

_FORM: Final = "application/x-www-form-urlencoded"
#: What the Flask path adds to every answer of these endpoints (RFC 6749 section 5.1 and
#: ``security_headers.protect``), in the order the Flask path sends them.
_TAIL: Final = [("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                ("Content-Security-Policy", "frame-ancestors 'none'")]
_TOKEN_HEADERS: Final = list(RefreshTokenGrant.TOKEN_RESPONSE_HEADER)  # as the grant sends them
_INTROSPECT_HEADERS: Final = [*_NO_STORE.items(), ("Content-Type", "application/json")]
_TOKEN_PARAMETERS: Final = frozenset({"grant_type", "refresh_token", "scope", "client_id",
                                      "client_secret"})
_INTROSPECT_PARAMETERS: Final = frozenset({"token", "token_type_hint", "client_id", "client_secret"})
_SERVER_ERROR: Final = json.dumps(SERVER_ERROR).encode()

class _Pass(Exception):
    """Not for this path: hand the request to Flask as it came."""


def install(app: Flask, state: AppState) -> bool:
    """Put :class:`HotPath` directly around Flask's own ``wsgi_app`` (once, from ``init_app``).

    When the host wrapped ``app.wsgi_app`` already, the hot path goes *inside* its middleware,
    so that middleware (``ProxyFix`` fixing the remote address, say) still sees every request
    first. That works for middleware that keeps the app it wraps in ``.app``, as Werkzeug's
    do; for any other kind the hot path stays off, with a warning. Returns whether it is on.
    """
    holder: Any = app
    attribute = "wsgi_app"
    for _ in range(8):  # a chain of middleware, outermost first
        current = getattr(holder, attribute)
        if getattr(current, "__func__", None) is Flask.wsgi_app and current.__self__ is app:
            setattr(holder, attribute, HotPath(app, state, current))
            return True
        if not callable(getattr(current, "app", None)):
            break
        holder, attribute = current, "app"
    log.warning("oauth_sessions: app.wsgi_app is wrapped by middleware that does not expose the "
                "app it wraps as .app; the hot path for refresh and introspection stays off "
                "(wrap after init_app to have both)")
    return False


class HotPath:
    """WSGI middleware: see the module docstring for what it answers and what it passes on."""

    def __init__(self, app: Flask, state: AppState, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.next = wsgi_app
        self._state = state
        prefix = state.settings.url_prefix
        self._routes: dict[str, Callable[[dict[str, Any], dict[str, str]], Answer]] = {
            prefix + "/token": self._token, prefix + "/introspect": self._introspect}
        self._frozen = False

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        handler = self._routes.get(environ.get("PATH_INFO", ""))
        if handler is None or environ.get("REQUEST_METHOD") != "POST" or not self._clear():
            return self.next(environ, start_response)
        body = self._read_body(environ)
        if body is None:
            return self.next(environ, start_response)
        environ["wsgi.input"] = BytesIO(body)  # whoever reads it next reads it whole
        try:
            form = _parse_form(body, _TOKEN_PARAMETERS if handler == self._token
                               else _INTROSPECT_PARAMETERS)
            with self.app.app_context():
                status, headers, payload = handler(environ, form)
        except _Pass:
            environ["wsgi.input"] = BytesIO(body)
            return self.next(environ, start_response)
        except DATABASE_ERRORS as exc:  # the blueprint's outage handler, same answer
            status, headers, payload = _from_response(database_error(exc))
        except Exception as exc:
            if self.app.config.get("PROPAGATE_EXCEPTIONS") or self.app.testing:
                raise
            # The class and where it was raised, not the message or the trace: those may hold
            # what the request carried (tokens, secrets).
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error("oauth_sessions: unexpected %s on the hot path at %s:%s", type(exc).__name__,
                      where.filename.rsplit("/", 1)[-1], where.lineno)
            status, headers, payload = 500, list(_TOKEN_HEADERS), _SERVER_ERROR
        self.app._got_first_request = True  # as Flask marks it: setup is over once serving
        start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}",
                       [*headers, ("Content-Length", str(len(payload))), *_TAIL])
        return [payload]

    # ------------------------------------------------------------------ when to stand aside

    def _clear(self) -> bool:
        """True when Flask would run nothing around our views that this path leaves out."""
        if (flask_signals.request_started.receivers or flask_signals.request_finished.receivers
                or flask_signals.got_request_exception.receivers):
            return False
        if self._frozen:
            return True
        clear = self._hooks_are_ours()
        # Flask refuses new hooks once it has served a request, so from then on the answer
        # cannot change; until then it is looked at every time.
        self._frozen = clear and bool(getattr(self.app, "_got_first_request", False))
        return clear

    def _hooks_are_ours(self) -> bool:
        from .blueprints import check_parameters
        from .security_headers import protect

        app = self.app
        for registry in (app.before_request_funcs, app.after_request_funcs,
                         app.teardown_request_funcs, app.url_value_preprocessors):
            for name, funcs in registry.items():
                if funcs and (name != "oauth_sessions"
                              or any(f not in (check_parameters, protect) for f in funcs)):
                    return False
        return not app.url_map.host_matching

    def _read_body(self, environ: dict[str, Any]) -> bytes | None:
        """The body when the request has the plain shape this path takes, else None (unread)."""
        if environ.get("CONTENT_TYPE") != _FORM or environ.get("QUERY_STRING") \
                or "HTTP_TRANSFER_ENCODING" in environ:
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit():
            return None
        size = int(length)
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if not 0 < size <= MAX_BODY or (limit is not None and size > limit):
            return None
        body: bytes = environ["wsgi.input"].read(size)
        if len(body) != size:  # a client that sent less than it announced: let Flask say so
            environ["wsgi.input"] = BytesIO(body)
            return None
        return body

    # ------------------------------------------------------------------ the endpoints

    def _token(self, environ: dict[str, Any], form: dict[str, str]) -> Answer:
        """``grant_type=refresh_token``, the steps of :mod:`oauth_sessions.protocol.refresh_grant`."""
        if form.get("grant_type") != "refresh_token" or "refresh_token" not in form:
            raise _Pass
        client = self._client(environ, form, allow_none=True)
        if not client.may_refresh():
            raise _Pass
        if not scope_is_well_formed(form.get("scope")):
            raise _Pass
        try:
            body = refresh(client, form["refresh_token"], scope=form.get("scope"),
                           user_agent=environ.get("HTTP_USER_AGENT"), ip=environ.get("REMOTE_ADDR"))
        except OAuth2Error as err:
            status, error_body, headers = err(None)
            return status, [(k, v) for k, v in headers], json.dumps(error_body).encode()
        return 200, _TOKEN_HEADERS, json.dumps(body).encode()

    def _introspect(self, environ: dict[str, Any], form: dict[str, str]) -> Answer:
        """RFC 7662 JSON answers, the steps of :mod:`oauth_sessions.protocol.introspection_endpoint`."""
        from ..core.introspection import INACTIVE, Inactive, check_token
        from ..protocol.introspection_endpoint import checks_for

        if "token-introspection+jwt" in environ.get("HTTP_ACCEPT", "") or "token" not in form:
            raise _Pass
        caller = self._client(environ, form, allow_none=False)
        if not caller.can_introspect:
            raise _Pass
        try:
            body: Mapping[str, Any] = check_token(
                form["token"], checks_for(self.app), hint=form.get("token_type_hint"),
                audiences=(caller.client_id,), caller_min_aal=caller.min_aal,
                caller_client_id=caller.client_id).response()
        except Inactive as exc:
            log.debug("introspection: inactive (%s)", exc.reason)
            body = INACTIVE
        return 200, _INTROSPECT_HEADERS, _compact.encode(body).encode()

    def _client(self, environ: dict[str, Any], form: dict[str, str], *, allow_none: bool) -> ClientInfo:
        """The client, authenticated by its registered method; anything doubtful passes to Flask.

        The views refuse what fails here with the exact RFC 6749 section 5.2 error, so this only
        has to recognise success. The secret is checked in constant time.
        """
        header = environ.get("HTTP_AUTHORIZATION")
        secret: str | None
        if header is not None:
            if "client_id" in form or "client_secret" in form or not header.startswith("Basic "):
                raise _Pass
            try:
                decoded = binascii.a2b_base64(header[6:].encode("ascii"), strict_mode=True).decode("ascii")
            except (ValueError, UnicodeError):
                raise _Pass from None
            client_id, colon, secret = decoded.partition(":")
            if not colon or "%" in decoded or "+" in decoded or not _PRINTABLE_ASCII.fullmatch(decoded):
                raise _Pass
            method = "client_secret_basic"
        elif "client_secret" in form:
            client_id, secret, method = form.get("client_id", ""), form["client_secret"], "client_secret_post"
        elif allow_none and "client_id" in form:
            client_id, secret, method = form["client_id"], None, "none"
        else:
            raise _Pass
        client: ClientInfo | None = self._state.components["clients"].get(client_id)
        if client is None or client.token_endpoint_auth_method != method:
            raise _Pass
        if secret is not None and not verify_client_secret(secret, client.secret_hash):
            raise _Pass
        return client


def _parse_form(body: bytes, allowed: frozenset[str]) -> dict[str, str]:
    """The urlencoded body as a dict, or :class:`_Pass` for anything but the plainest shape.

    The same hygiene as ``endpoints.check_parameters`` (each parameter once, values of at most
    4096 printable ASCII characters, RFC 6749 Appendix A), plus: only the parameters the
    endpoint knows, none empty, none percent-encoding anything outside ASCII.
    """
    if not body.isascii():
        raise _Pass
    form: dict[str, str] = {}
    for part in body.decode("ascii").split("&"):
        name, eq, value = part.partition("=")
        if not eq or not value:
            raise _Pass
        if "%" in part or "+" in part:
            try:
                name, value = unquote_plus(name, errors="strict"), unquote_plus(value, errors="strict")
            except UnicodeDecodeError:
                raise _Pass from None
        if (name not in allowed or name in form or len(value) > MAX_VALUE
                or not _PRINTABLE_ASCII.fullmatch(value)):
            raise _Pass
        form[name] = value
    return form


def _from_response(response: Any) -> Answer:
    """A werkzeug ``Response`` built by a shared helper (the outage answer), as a triple."""
    headers = [(k, v) for k, v in response.headers.items() if k != "Content-Length"]
    return response.status_code, headers, response.get_data()
