"""The one validation of a bearer access token, for ``/userinfo`` and the resource helper alike.

:func:`validate_access_token` runs the introspection pipeline
(:func:`oauth_sessions.core.introspection.check_token`: signature, session alive and unexpired,
client binding, scopes still granted, the aal policy) and turns every refusal into a
:class:`~oauth_sessions.core.bearer.Challenge` (RFC 6750 section 3, RFC 9470 for the aal);
:func:`bearer_of` takes the token out of a request (the one header parser,
:func:`oauth_sessions.core.bearer.bearer_token`); :func:`challenge_answer` renders a refusal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection

from ..core.bearer import (
    Challenge,
    MalformedCredentials,
    TokenInfo,
    aal_challenge,
    bearer_token,
    www_authenticate,
)
from ..core.introspection import AalTooLow, Inactive, TokenChecks, check_token
from .http import FORM, NO_STORE, Answer, HttpRequest
from .outage import is_unavailable

__all__ = ["bearer_of", "challenge_answer", "validate_access_token"]

log = logging.getLogger(__name__)


def bearer_of(request: HttpRequest, *, allow_form: bool = False) -> str:
    """The bearer token of ``request``: the ``Authorization`` header (RFC 6750 section 2.1), or
    with ``allow_form`` a form body's ``access_token`` (section 2.2) when there is no header.

    No token: ``Challenge(401)``; a Bearer header that cannot be read: 400 ``invalid_request``.
    Tokens in the query string end up in logs and Referer headers, so they are never read.
    """
    header = request.header("Authorization")
    try:
        token = bearer_token(header)
    except MalformedCredentials as exc:
        raise Challenge(400, "invalid_request", str(exc)) from None
    if token is not None:
        return token
    if header is None and allow_form and request.method == "POST" and request.mimetype == FORM:
        posted = request.param("access_token")
        if posted:
            return posted
    raise Challenge(401)


def validate_access_token(token: str, checks: TokenChecks, *, audiences: Collection[str] = (),
                          resource: str | None = None,
                          accept_default_audience: bool = False) -> TokenInfo:
    """The active access token, or raise :class:`Challenge` (``invalid_token``, an aal challenge, 503).

    ``resource`` None (``/userinfo``): the token must be of the default audience, the issuer.
    Given, the token's ``aud`` must name it (RFC 8707), or with ``accept_default_audience``
    be of the default audience only (tokens minted without a ``resource``).
    """
    try:
        active = check_token(token, checks, audiences=audiences, resource=resource,
                             accept_default_audience=accept_default_audience)
    except AalTooLow as exc:
        raise aal_challenge(exc.required) from None
    except Inactive as exc:
        log.debug("bearer token refused: %s", exc.reason)
        raise Challenge(401, "invalid_token", "the access token is not active") from None
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # Not invalid_token for a token that may well be good: "try later".
        log.warning("session database unavailable: %s", type(exc).__name__)
        raise Challenge(503, "temporarily_unavailable", "token validation unavailable") from None
    if active.token_type != "access_token":
        raise Challenge(401, "invalid_token", "a refresh token is not a bearer access token")
    return TokenInfo.from_introspection(active.response())


def challenge_answer(challenge: Challenge, *, realm: str, resource_metadata: str | None = None) -> Answer:
    """The HTTP answer to a refusal: status, ``WWW-Authenticate`` and the same error as JSON.

    The challenge on 401 and 403 (and a malformed header's 400), ``Retry-After`` on 503, never
    cached. The body is compact JSON with sorted keys and a final newline (as Flask's
    ``jsonify`` writes it, which this answer replaced).
    """
    body: dict[str, str] = {}
    if challenge.error:
        body["error"] = challenge.error
        if challenge.description:
            body["error_description"] = challenge.description
    headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
    if challenge.status in (401, 403) or challenge.error == "invalid_request":
        headers.append(("WWW-Authenticate", www_authenticate(
            challenge, realm=realm, resource_metadata=resource_metadata)))
    if challenge.status == 503:
        headers.append(("Retry-After", "1"))
    headers.extend(NO_STORE.items())
    text = json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n"
    return Answer(challenge.status, tuple(headers), text.encode())
