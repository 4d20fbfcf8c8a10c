"""The Flask blueprints: every HTTP endpoint of the provider, mounted under the URL prefix.

Under ``OAUTH_SESSIONS_URL_PREFIX`` (default ``/oauth``): ``/authorize``, ``/token``,
``/revoke``, ``/userinfo``, ``/jwks``, ``/logout`` (and ``/introspect``, ``/register`` from their modules).
At the app root: ``/.well-known/openid-configuration`` and
``/.well-known/oauth-authorization-server`` (RFC 8414 section 3: the well-known suffix is
inserted after the host, so an issuer with a path needs the host to route it too).

``/token``, ``/revoke`` and ``/introspect`` are the protocol handlers' (``protocol/``), reached
through views of a few lines; the same handlers serve the WSGI app (:mod:`oauth_sessions.wsgi`).
Before any other endpoint runs, :func:`oauth_sessions.flask.parameters.check_parameters` refuses
what no endpoint can use (the handlers run the same checks themselves).
"""

from __future__ import annotations

import json
import logging
import uuid

from flask import Blueprint, Flask, Response, request
from flask.typing import ResponseReturnValue

from ..core.bearer import Challenge
from ..protocol.discovery import openid_configuration
from ..protocol.http import from_werkzeug
from ..protocol.logout import end_session
from ..protocol.registration import manage, register
from .authorize import authorize
from .openapi import openapi_document
from .outage import install_outage_handlers
from .parameters import check_parameters
from .resource import LocalValidator, challenge_response, check_grant
from .responses import json_response, to_response
from .security_headers import protect
from .state import AppState, get_state

log = logging.getLogger(__name__)

__all__ = ["register_blueprints"]

def _state() -> AppState:
    return get_state()


# --------------------------------------------------------------------------- the handlers' views
# Each a few lines: the request value, the handler, the response. Everything Flask runs around
# a view (the host's hooks, error handlers, signals, a wrapper put on app.view_functions) runs.


def token() -> ResponseReturnValue:
    """``/token`` (RFC 6749 section 3.2): :class:`~oauth_sessions.protocol.token_endpoint.TokenEndpoint`."""
    return to_response(_state().services.token_endpoint(from_werkzeug(request)))


def revoke() -> ResponseReturnValue:
    """``/revoke`` (RFC 7009): :class:`~oauth_sessions.protocol.revocation.RevocationEndpoint`."""
    return to_response(_state().services.revocation_endpoint(from_werkzeug(request)))


def introspect() -> ResponseReturnValue:
    """``/introspect`` (RFC 7662): the introspection handler (``protocol/introspection_endpoint.py``)."""
    return to_response(_state().services.introspection_endpoint(from_werkzeug(request)))


def _bearer_token() -> str | None:
    """RFC 6750 section 2.1 (header) or 2.2 (form body); one method only."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        return request.form.get("access_token") or None
    return None


def userinfo() -> ResponseReturnValue:
    """``/userinfo`` (OIDC Core section 5.3): the token through the same checks as the resource
    helper's local mode (the introspection pipeline: session alive and unexpired, client binding,
    scopes granted, the aal policy with its RFC 9470 challenge), then ``openid``, then the claims.
    """
    state = _state()
    try:
        value = _bearer_token()
        if value is None:
            raise Challenge(401)
        info = LocalValidator(None).validate(value)
        check_grant(info, ("openid",), None, None)
    except Challenge as challenge:
        return challenge_response(challenge, realm=state.settings.issuer)
    body = dict(state.services.host.userinfo(uuid.UUID(info.sub), info.scopes))
    body["sub"] = info.sub
    return json_response(body)


def jwks() -> ResponseReturnValue:
    """``/jwks`` (RFC 7517 section 5): published keys, retired ones through their grace."""
    body = _state().services.keys.keyset().jwks()
    return Response(json.dumps(body), 200, {"Cache-Control": "public, max-age=300"},
                    mimetype="application/json")


# --------------------------------------------------------------------------- registration


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
    app.register_blueprint(wk)
