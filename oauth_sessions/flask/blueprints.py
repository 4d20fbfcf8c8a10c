"""The Flask blueprints: every HTTP endpoint of the provider, mounted under the URL prefix.

Under ``OAUTH_SESSIONS_URL_PREFIX`` (default ``/oauth``): ``/authorize``, ``/token``,
``/revoke``, ``/userinfo``, ``/jwks``, ``/logout``, ``/par`` (RFC 9126) (and ``/introspect``,
``/register`` from their modules).
At the app root: ``/.well-known/openid-configuration`` and
``/.well-known/oauth-authorization-server`` (RFC 8414 section 3: the well-known suffix is
inserted after the host, so an issuer with a path needs the host to route it too).

Every endpoint but ``/authorize`` (and the OpenAPI document) is a protocol handler's
(``protocol/``), reached through a view of a few lines; the machine endpoints' handlers
(registration included) serve the WSGI app (:mod:`oauth_sessions.wsgi`) too.
Before any other endpoint runs, :func:`oauth_sessions.flask.parameters.check_parameters` refuses
what no endpoint can use (the handlers run the same checks themselves).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, url_for
from flask.globals import request_ctx
from flask.typing import ResponseReturnValue

from ..protocol.http import Answer, HttpRequest, from_werkzeug
from .authorize import authorize
from .openapi import openapi_document
from .outage import install_outage_handlers
from .parameters import check_parameters
from .responses import to_response
from .security_headers import protect
from .state import AppState, get_state

log = logging.getLogger(__name__)

__all__ = ["register_blueprints"]

def _state() -> AppState:
    return get_state()


def _http() -> HttpRequest:
    """The handlers' request value of the current request, read from the request object itself
    (through Flask's ``request`` proxy every attribute read would be a context lookup)."""
    return from_werkzeug(request_ctx.request)


# --------------------------------------------------------------------------- the handlers' views
# Each a few lines: the request value, the handler, the response. Everything Flask runs around
# a view (the host's hooks, error handlers, signals, a wrapper put on app.view_functions) runs.


def token() -> ResponseReturnValue:
    """``/token`` (RFC 6749 section 3.2): :class:`~oauth_sessions.protocol.token_endpoint.TokenEndpoint`."""
    return to_response(_state().services.token_endpoint(_http()))


def revoke() -> ResponseReturnValue:
    """``/revoke`` (RFC 7009): :class:`~oauth_sessions.protocol.revocation.RevocationEndpoint`."""
    return to_response(_state().services.revocation_endpoint(_http()))


def introspect() -> ResponseReturnValue:
    """``/introspect`` (RFC 7662): the introspection handler (``protocol/introspection_endpoint.py``)."""
    return to_response(_state().services.introspection_endpoint(_http()))


def userinfo() -> ResponseReturnValue:
    """``/userinfo`` (OIDC Core section 5.3): :class:`~oauth_sessions.protocol.userinfo.UserinfoEndpoint`."""
    return to_response(_state().services.userinfo_endpoint(_http()))


def jwks() -> ResponseReturnValue:
    """``/jwks`` (RFC 7517 section 5): :class:`~oauth_sessions.protocol.jwks.JwksEndpoint`."""
    return to_response(_state().services.jwks_endpoint(_http()))


def pushed_authorization_request() -> ResponseReturnValue:
    """``/par`` (RFC 9126): :class:`~oauth_sessions.protocol.pushed_requests.PushedAuthorizationEndpoint`."""
    return to_response(_state().services.pushed_authorization_endpoint(_http()))


def openid_configuration() -> ResponseReturnValue:
    """Both well-known metadata URLs (RFC 8414, OIDC Discovery 1.0): the discovery handler."""
    return to_response(_state().services.discovery_endpoint(_http()))


def register() -> ResponseReturnValue:
    """``/register`` (RFC 7591 section 3): the registration handler's ``register``."""
    return to_response(_state().services.registration_endpoint.register(_http()))


def manage(client_id: str) -> ResponseReturnValue:
    """``/register/<client_id>`` (RFC 7592 section 2): the registration handler's ``manage``."""
    return to_response(_state().services.registration_endpoint.manage(_http(),
                                                                      client_id))


def end_session() -> ResponseReturnValue:
    """``/logout`` (RP-Initiated Logout 1.0): :class:`~oauth_sessions.protocol.logout.LogoutEndpoint`;
    the host's own pages (confirmation, signed out) go back to Flask as the host made them."""
    answer = _state().services.logout_endpoint(_http(),
                                               form_action=url_for("oauth_sessions.end_session"))
    return to_response(answer) if isinstance(answer, Answer) else answer


# --------------------------------------------------------------------------- mounting


def register_blueprints(app: Flask, state: AppState) -> None:
    """Mount the endpoints (called once by ``OAuthSessions.init_app``)."""
    bp = Blueprint("oauth_sessions", __name__, url_prefix=state.settings.url_prefix)
    bp.before_request(check_parameters)
    bp.add_url_rule("/authorize", "authorize", authorize, methods=["GET", "POST"])
    bp.add_url_rule("/token", "token", token, methods=["POST"])
    bp.add_url_rule("/revoke", "revoke", revoke, methods=["POST"])
    bp.add_url_rule("/userinfo", "userinfo", userinfo, methods=["GET", "POST"])
    bp.add_url_rule("/jwks", "jwks", jwks, methods=["GET"])
    bp.add_url_rule("/logout", "end_session", end_session, methods=["GET", "POST"])
    bp.add_url_rule("/openapi.yaml", "openapi", openapi_document, methods=["GET"])
    bp.add_url_rule("/introspect", "introspect", introspect, methods=["POST"])
    bp.add_url_rule("/par", "pushed_authorization_request", pushed_authorization_request,
                    methods=["POST"])
    if state.settings.dynamic_registration:
        bp.add_url_rule("/register", "register", register, methods=["POST"])
        bp.add_url_rule("/register/<client_id>", "manage_client", manage,
                        methods=["GET", "PUT", "DELETE"])
    install_outage_handlers(bp)  # database down: 503 temporarily_unavailable, no trace
    bp.after_request(protect)  # anti-framing (consent page), nosniff, no-store on /authorize
    app.register_blueprint(bp)
    wk = Blueprint("oauth_sessions_discovery", __name__)
    wk.add_url_rule("/.well-known/openid-configuration", "openid_configuration",
                    openid_configuration, methods=["GET"])
    wk.add_url_rule("/.well-known/oauth-authorization-server", "oauth_authorization_server",
                    openid_configuration, methods=["GET"])
    install_outage_handlers(wk)
    wk.after_request(protect)  # the same headers as every provider answer (and the WSGI app's)
    app.register_blueprint(wk)
