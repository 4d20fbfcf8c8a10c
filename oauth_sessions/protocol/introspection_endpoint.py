"""``POST /oauth/introspect`` (RFC 7662): the HTTP side of :mod:`oauth_sessions.core.introspection`.

The steps in the order they run (the token steps are :func:`~oauth_sessions.core.introspection.check_token`)::

    authenticate_caller       RFC 6749 section 2.3.1: Basic or client_secret_post, exactly one
    require_may_introspect    the client is registered as a resource server (``can_introspect``)
    token parameter present   else 400 invalid_request
    check_token               verify → session by sid → not_after → inactivity → client →
                              scopes → aal (the caller's minimum and AUDIENCE_MIN_AAL included)
    answer                    JSON, or a signed JWT when asked for (RFC 9701)

A caller that fails the first two steps gets 401 ``invalid_client`` and learns nothing about the
token; every token that is not good now gets exactly ``{"active": false}``.

Cost on PostgreSQL: one database round trip per introspection (the prepared session read of
:mod:`oauth_sessions.storage.introspection_store`); the caller's client record comes from the client
store's short cache and the signing keys are parsed once per worker.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote_plus

from flask import Flask, Response, current_app, request

from ..core.introspection import INACTIVE, Inactive, TokenChecks, check_token
from ..flask.state import get_state
from ..jose.jws import sign_jwt
from ..storage.clients import ClientInfo, ClientStore, verify_client_secret

__all__ = ["authenticate_caller", "checks_for", "introspection_endpoint", "require_may_introspect"]

log = logging.getLogger(__name__)

JWT_RESPONSE_TYPE: Final = "application/token-introspection+jwt"
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class _ClientAuthFailed(Exception):
    """401 ``invalid_client`` (RFC 6749 section 5.2); the description is public."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def introspection_endpoint() -> Response:
    """``POST /oauth/introspect``: the pipeline of the module docstring, step by step."""
    state = get_state()
    try:
        caller = authenticate_caller(state.services.clients)
        require_may_introspect(caller)
    except _ClientAuthFailed as exc:
        return _error(401, "invalid_client", exc.description,
                      {"WWW-Authenticate": 'Basic realm="oauth_sessions"'})
    token = request.form.get("token")
    if not token:
        return _error(400, "invalid_request", "the token parameter is required")
    try:
        active = check_token(
            token,
            checks_for(current_app),
            hint=request.form.get("token_type_hint"),
            audiences=(caller.client_id,),
            caller_client_id=caller.client_id,
            caller_min_aal=caller.min_aal,
        )
        body: Mapping[str, Any] = active.response()
    except Inactive as exc:
        log.debug("introspection: inactive (%s)", exc.reason)
        body = INACTIVE
    if _wants_jwt():
        return _jwt_response(body, caller.client_id, state.settings.issuer)
    return Response(_json.encode(body), 200, _NO_STORE, mimetype="application/json")


def authenticate_caller(clients: ClientStore) -> ClientInfo:
    """RFC 6749 section 2.3.1: HTTP Basic, or ``client_id``+``client_secret`` in the body; one only.

    The secret check is one SHA-256 and a constant-time compare (secrets are 256-bit random),
    and the client record may come from the short client cache: both cheap on the hot path.
    """
    form = request.form
    basic = request.authorization
    if basic is not None and basic.type == "basic":
        if "client_secret" in form:
            raise _ClientAuthFailed("use one client authentication method, not two")
        client_id, secret = unquote_plus(basic.username or ""), unquote_plus(basic.password or "")
        method = "client_secret_basic"
    elif "client_secret" in form:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        method = "client_secret_post"
    else:
        raise _ClientAuthFailed("client authentication is required")
    client = clients.get(client_id)
    stored = client.secret_hash if client is not None else None
    if not verify_client_secret(secret, stored) or client is None:
        raise _ClientAuthFailed("client authentication failed")
    if client.token_endpoint_auth_method != method:
        raise _ClientAuthFailed("client authentication failed")
    return client


def require_may_introspect(client: ClientInfo) -> None:
    """Only clients registered as resource servers (``can_introspect``) may ask (RFC 7662 section 4:
    without this a client could probe tokens it was never meant to see)."""
    if not client.can_introspect:
        raise _ClientAuthFailed("this client is not allowed to introspect tokens")


def _wants_jwt() -> bool:
    """RFC 9701 section 4: the JWT answer only when asked for by ``Accept``."""
    if "token-introspection+jwt" not in request.headers.get("Accept", ""):
        return False  # the common case, without parsing the header
    accept = request.accept_mimetypes
    return accept.quality(JWT_RESPONSE_TYPE) > 0 and JWT_RESPONSE_TYPE in accept.values()


def _jwt_response(body: Mapping[str, Any], caller_id: str, issuer: str) -> Response:
    """RFC 9701 section 5: the answer signed by the provider, addressed to the caller."""
    # Signed with the active key; the typ keeps this JWT from passing as another kind.
    claims = {"iss": issuer, "aud": caller_id, "iat": int(time.time()),
              "token_introspection": dict(body)}
    jwt = sign_jwt(checks_for(current_app).keyset(), claims, typ="token-introspection+jwt")
    return Response(jwt, 200, _NO_STORE, mimetype=JWT_RESPONSE_TYPE)


def _error(status: int, error: str, description: str,
           headers: Mapping[str, str] | None = None) -> Response:
    body = _json.encode({"error": error, "error_description": description})
    return Response(body, status, {**_NO_STORE, **(headers or {})}, mimetype="application/json")


_json = json.JSONEncoder(separators=(",", ":"))


# --------------------------------------------------------------------------- wiring to the app


def checks_for(app: Flask) -> TokenChecks:
    """The app's :class:`TokenChecks`, built once by ``init_app`` with the other services."""
    return get_state(app).services.introspection
