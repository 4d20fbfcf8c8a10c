"""The Flask blueprints: every HTTP endpoint of the provider, mounted under the URL prefix.

Under ``OAUTH_SESSIONS_URL_PREFIX`` (default ``/oauth``): ``/authorize``, ``/token``,
``/revoke``, ``/userinfo``, ``/jwks``, ``/logout`` (and ``/introspect``, ``/register`` from their modules).
At the app root: ``/.well-known/openid-configuration`` and
``/.well-known/oauth-authorization-server`` (RFC 8414 section 3: the well-known suffix is
inserted after the host, so an issuer with a path needs the host to route it too).

Before any endpoint runs, :func:`oauth_sessions.flask.parameters.check_parameters` refuses what
no endpoint can use.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, Flask, Response, request
from flask.typing import ResponseReturnValue

from ..core.bearer import Challenge
from ..core.subjects import subject_for
from ..jose.access_tokens import InvalidAccessToken, verify_access_token
from ..jose.jws import kid_of
from ..protocol.discovery import openid_configuration
from ..protocol.introspection_endpoint import introspection_endpoint
from ..protocol.logout import end_session
from ..protocol.registration import manage, register
from ..storage.clients import GRANT_TYPES
from ..storage.sessions import SessionStore
from .authorize import authorize
from .openapi import openapi_document
from .outage import install_outage_handlers
from .parameters import check_parameters
from .resource import LocalValidator, challenge_response, check_grant
from .responses import NO_STORE, error_response, json_response
from .security_headers import protect
from .state import AppState, get_state

log = logging.getLogger(__name__)

__all__ = ["register_blueprints"]

def _state() -> AppState:
    return get_state()


# --------------------------------------------------------------------------- token, revocation


def token() -> ResponseReturnValue:
    """``/token`` (RFC 6749 section 3.2): Authlib dispatches on ``grant_type`` to our grants."""
    grant_type = request.form.get("grant_type")
    if not grant_type:
        return error_response("invalid_request", "grant_type is required")
    if grant_type not in GRANT_TYPES:
        # Authlib would answer without a description; implicit, password and client
        # credentials grants do not exist here (OAuth 2.1).
        return error_response("unsupported_grant_type",
                      "only authorization_code and refresh_token are supported")
    response: Response = _state().services.server.create_token_response()
    return response


def revoke() -> ResponseReturnValue:
    """``/revoke`` (RFC 7009). Revoking a refresh token *or* an access token ends its session.

    An access token is a JWT that cannot be recalled on its own; ending its session is the only
    way to make it fail everywhere the session is checked (introspection, UserInfo, the
    resource helper), and it matches what a user expects from "sign this app out". Unknown,
    invalid or foreign tokens get 200 as well (section 2.2), and a client can only end sessions
    issued to itself.
    """
    state = _state()
    server = state.services.server
    try:
        client = server.authenticate_endpoint_client(endpoint="revocation").info
    except OAuth2Error as exc:
        response: Response = server.handle_error_response(None, exc)
        return response
    value = request.form.get("token")
    if not value:
        return error_response("invalid_request", "token is required")
    session_id = _session_of(state, value)
    sessions = state.services.sessions
    if session_id is not None:
        info = sessions.get(session_id)
        if info is not None and info.client_id == client.id:
            sessions.revoke(session_id, reason="token_revoked")
    return Response(status=200, headers=NO_STORE)


def _session_of(state: AppState, value: str) -> uuid.UUID | None:
    """The session behind a token this server issued, or None (never raises)."""
    sessions: SessionStore = state.services.sessions
    found = sessions.find_refresh_session(value)  # read-only, the tag verified in constant time
    if found is not None and found.is_current:  # a superseded token revokes nothing, as before
        return found.session.id
    claims = _verify_bearer(state, value)
    return uuid.UUID(claims["sid"]) if claims is not None else None


def _verify_bearer(state: AppState, value: str) -> dict[str, Any] | None:
    keys = state.services.keys
    for attempt in range(2):
        try:
            return verify_access_token(keys.keyset() if attempt == 0 else
                                       keys.keyset(unknown_kid=kid_of(value) or ""), value,
                                       issuer=state.settings.issuer, audience=state.settings.issuer)
        except InvalidAccessToken as exc:
            if exc.reason != "unknown or retired kid":
                return None
        except ValueError:
            return None
    return None


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
    user_id = uuid.UUID(info.sub)
    body = dict(state.services.host.userinfo(user_id, info.scopes))
    body["sub"] = userinfo_subject(state, user_id, info.client_id)
    return json_response(body)


def userinfo_subject(state: AppState, user_id: uuid.UUID, client_id: str) -> str:
    """OIDC Core 5.3.2: the ``sub`` of the client's ID tokens (section 8: pairwise for a
    pairwise client). The access token's own ``sub`` stays the user id: resource servers need
    the account, and the pipeline just checked that the token's client exists."""
    client = state.services.clients.get(client_id)
    sector = client.sector_identifier if client is not None else None
    return subject_for(user_id, sector, state.settings.pairwise_salt)


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
    bp.add_url_rule("/introspect", "introspect", introspection_endpoint, methods=["POST"])
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
