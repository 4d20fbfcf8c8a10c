"""``POST /oauth/introspect`` (RFC 7662): the HTTP side of :mod:`oauth_sessions.core.introspection`.

The steps in the order they run (the token steps are :func:`~oauth_sessions.core.introspection.check_token`)::

    check_request             request hygiene (protocol/request_checks.py)
    authenticate the caller   the one client authentication (protocol/client_auth.py), no public
                              clients; or a registered resource server (RFC 8707) as itself
    require_may_introspect    a client must be registered with ``can_introspect``
    require_token             the token parameter, else 400 invalid_request
    check_token               verify → audience → session by sid → not_after → inactivity →
                              client → scopes → aal (the caller's minimum, and for the token's
                              audience AUDIENCE_MIN_AAL and the registered resource server's
                              min_aal, whoever the caller is)

Who sees what (RFC 7662 section 4, RFC 9700 section 2.3): a registered resource server sees
only the access tokens meant for it (``aud`` names its URI), under its own minimum aal, and no
refresh token; a client with ``can_introspect`` sees every token of the default audience (as
before resource indicators) and, of the tokens meant for a resource server, only its own, and
those only while they meet that resource server's minimum aal: a token that would be inactive
for the resource server is inactive for every caller.
    answer                    JSON, or a signed JWT when asked for (RFC 9701)

A caller that fails the first steps gets 401 ``invalid_client`` and learns nothing about the
token; every token that is not good now gets exactly ``{"active": false}``.

Cost on PostgreSQL: one database round trip per introspection (the prepared session read of
:mod:`oauth_sessions.storage.introspection_store`); the caller's client record comes from the client
store's short cache and the signing keys are parsed once per worker. A token meant for a
registered resource server also needs that server's minimum aal, from the resource-server
store's cache as short (``CLIENT_CACHE_SECONDS``); a token of the default audience needs none.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Final

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from ..core.introspection import INACTIVE, Inactive, TokenChecks, check_token
from ..jose.jws import sign_jwt
from ..storage.clients import ClientInfo
from .client_auth import ClientAuthenticator, ClientAuthFailed, client_auth_error
from .http import NO_STORE, Answer, HttpRequest, error_answer
from .request_checks import check_request

__all__ = ["JWT_RESPONSE_TYPE", "IntrospectionEndpoint", "require_may_introspect"]

log = logging.getLogger(__name__)

JWT_RESPONSE_TYPE: Final = "application/token-introspection+jwt"
#: Prefixes a resource server's id where the pipeline wants a caller's client id.
RESOURCE_SERVER: Final = "resource-server:"
_JSON_HEADERS: Final = (*NO_STORE.items(), ("Content-Type", "application/json"))
_JWT_HEADERS: Final = (*NO_STORE.items(), ("Content-Type", JWT_RESPONSE_TYPE))
_json = json.JSONEncoder(separators=(",", ":"))


class IntrospectionEndpoint:
    """The handler: :meth:`__call__` runs the pipeline of the module docstring."""

    def __init__(self, authenticator: ClientAuthenticator, checks: TokenChecks, issuer: str) -> None:
        self._authenticator = authenticator
        self._checks = checks
        self._issuer = issuer

    def __call__(self, request: HttpRequest) -> Answer:
        refused = check_request(request)
        if refused is not None:
            return refused
        try:
            caller = self._authenticator.authenticate_introspector(request)
            if isinstance(caller, ClientInfo):
                require_may_introspect(caller)
        except ClientAuthFailed as exc:
            return client_auth_error(exc)
        token = request.param("token")
        if not token:
            return error_answer("invalid_request", "the token parameter is required")
        try:
            if isinstance(caller, ClientInfo):
                active = check_token(
                    token, self._checks, hint=request.param("token_type_hint"),
                    audiences=(caller.client_id,), caller_client_id=caller.client_id,
                    caller_min_aal=caller.min_aal)
            else:
                # A resource server: no client's refresh token is ever its own, hence the
                # caller id no client has.
                active = check_token(
                    token, self._checks, hint=request.param("token_type_hint"),
                    audiences=(caller.resource,), caller_client_id=RESOURCE_SERVER + caller.client_id,
                    caller_min_aal=caller.min_aal, resource=caller.resource)
            body: Mapping[str, Any] = active.response()
        except Inactive as exc:
            log.debug("introspection: inactive (%s)", exc.reason)
            body = INACTIVE
        if _wants_jwt(request.header("Accept")):
            return self._jwt_answer(body, caller.client_id)
        return Answer(200, _JSON_HEADERS, _json.encode(body).encode())

    def _jwt_answer(self, body: Mapping[str, Any], caller_id: str) -> Answer:
        """RFC 9701 section 5: the answer signed by the provider, addressed to the caller."""
        # Signed with the active key; the typ keeps this JWT from passing as another kind.
        claims = {"iss": self._issuer, "aud": caller_id, "iat": int(time.time()),
                  "token_introspection": dict(body)}
        jwt = sign_jwt(self._checks.keyset(), claims, typ="token-introspection+jwt")
        return Answer(200, _JWT_HEADERS, jwt.encode())


def require_may_introspect(client: ClientInfo) -> None:
    """Only clients registered as resource servers (``can_introspect``) may ask (RFC 7662 section 4:
    without this a client could probe tokens it was never meant to see)."""
    if not client.can_introspect:
        raise ClientAuthFailed("this client is not allowed to introspect tokens")


def _wants_jwt(accept: str | None) -> bool:
    """RFC 9701 section 4: the JWT answer only when asked for by ``Accept``."""
    if accept is None or "token-introspection+jwt" not in accept:
        return False  # the common case, without parsing the header
    accepted = parse_accept_header(accept, MIMEAccept)
    return accepted.quality(JWT_RESPONSE_TYPE) > 0 and JWT_RESPONSE_TYPE in accepted.values()
