"""The one validation of an access token, for ``/userinfo`` and the resource helper alike.

:func:`validate_access_token` runs the introspection pipeline
(:func:`oauth_sessions.core.introspection.check_token`: signature, session alive and unexpired,
client binding, scopes still granted, the aal policy) and turns every refusal into a
:class:`~oauth_sessions.core.bearer.Challenge` (RFC 6750 section 3, RFC 9470 for the aal);
:func:`credentials_of` takes the token and its scheme out of a request (the one header parser,
:func:`oauth_sessions.core.bearer.access_token_credentials`); :func:`require_sender` checks that
a DPoP-bound token comes with a proof of its key (RFC 9449 section 7); :func:`challenge_answer`
renders a refusal.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Collection

from ..core.bearer import (
    Challenge,
    MalformedCredentials,
    TokenInfo,
    aal_challenge,
    access_token_credentials,
    dpop_challenge,
    www_authenticate,
)
from ..core.introspection import AalTooLow, Inactive, TokenChecks, check_token
from ..storage.database_errors import is_unavailable
from .dpop import DPOP_ALGS, INVALID_DPOP_PROOF, DpopChecker, DpopRefused
from .http import FORM, NO_STORE, Answer, HttpRequest

__all__ = ["bearer_of", "challenge_answer", "credentials_of", "require_sender",
           "validate_access_token"]

log = logging.getLogger(__name__)


def credentials_of(request: HttpRequest, *, allow_form: bool = False) -> tuple[str, str]:
    """``(scheme, token)`` of ``request``: the ``Authorization`` header with the ``Bearer``
    (RFC 6750 section 2.1) or ``DPoP`` (RFC 9449 section 7.1) scheme, or with ``allow_form`` a
    form body's ``access_token`` (RFC 6750 section 2.2, scheme ``bearer``) when there is no header.

    No token: ``Challenge(401)``; a header that cannot be read: 400 ``invalid_request``.
    Tokens in the query string end up in logs and Referer headers, so they are never read.
    """
    header = request.header("Authorization")
    try:
        found = access_token_credentials(header)
    except MalformedCredentials as exc:
        raise Challenge(400, "invalid_request", str(exc)) from None
    if found is not None:
        return found
    if header is None and allow_form and request.method == "POST" and request.mimetype == FORM:
        posted = request.param("access_token")
        if posted:
            return "bearer", posted
    raise Challenge(401)


def bearer_of(request: HttpRequest, *, allow_form: bool = False) -> str:
    """The token of :func:`credentials_of`, whatever its scheme (the sender check is
    :func:`require_sender`'s)."""
    return credentials_of(request, allow_form=allow_form)[1]


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


def require_sender(info: TokenInfo, scheme: str, token: str, request: HttpRequest,
                   dpop: DpopChecker | None, *, uri: str) -> None:
    """RFC 9449 section 7: a DPoP-bound token only with the ``DPoP`` scheme and a proof made
    with its key for this request (``htm``, ``htu`` = ``uri``, ``iat``, ``ath``, one-time
    ``jti``, the nonce when required); an unbound token never with the ``DPoP`` scheme.

    ``dpop`` None (a remote resource helper given no replay ledger): bound tokens are refused,
    since their proofs could not be made one-time here. Each refusal is a DPoP challenge.
    """
    if info.jkt is None:
        if scheme == "dpop":
            raise Challenge(401, "invalid_token", "the access token is not DPoP-bound",
                            dpop=True)
        return
    if scheme != "dpop":
        raise Challenge(401, "invalid_token",
                        "a DPoP-bound access token must be sent with the DPoP scheme", dpop=True)
    if dpop is None:
        raise Challenge(401, "invalid_token",
                        "this resource server does not accept DPoP-bound tokens", dpop=True)
    try:
        proof = dpop.check(request, uri=uri, access_token=token)
    except DpopRefused as exc:
        raise Challenge(401, exc.error, exc.description, dpop=True, nonce=exc.nonce) from None
    if proof is None:
        raise Challenge(401, INVALID_DPOP_PROOF, "a DPoP proof is required", dpop=True,
                        nonce=dpop.fresh_nonce())
    if not hmac.compare_digest(proof.jkt.encode(), info.jkt.encode()):
        raise Challenge(401, INVALID_DPOP_PROOF,
                        "the DPoP proof's key is not the one the token is bound to", dpop=True)


def challenge_answer(challenge: Challenge, *, realm: str, resource_metadata: str | None = None,
                     dpop_algs: tuple[str, ...] = ()) -> Answer:
    """The HTTP answer to a refusal: status, ``WWW-Authenticate`` and the same error as JSON.

    The challenge on 401 and 403 (and a malformed header's 400), ``Retry-After`` on 503, never
    cached. With ``dpop_algs`` (a resource that accepts DPoP) a ``DPoP`` challenge too (RFC
    9449 section 7.1), first when the refusal is about DPoP, with ``DPoP-Nonce`` when it asks
    for a nonce. The body is compact JSON with sorted keys and a final newline (as Flask's
    ``jsonify`` writes it, which this answer replaced).
    """
    body: dict[str, str] = {}
    if challenge.error:
        body["error"] = challenge.error
        if challenge.description:
            body["error_description"] = challenge.description
    headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
    if challenge.status in (401, 403) or challenge.error == "invalid_request":
        bearer = ("WWW-Authenticate", www_authenticate(
            challenge, realm=realm, resource_metadata=resource_metadata))
        algs = dpop_algs or (DPOP_ALGS if challenge.dpop else ())
        dpop = [("WWW-Authenticate", dpop_challenge(challenge, algs=algs))] if algs else []
        headers.extend([*dpop, bearer] if challenge.dpop else [bearer, *dpop])
    if challenge.nonce is not None:
        headers.append(("DPoP-Nonce", challenge.nonce))
    if challenge.status == 503:
        headers.append(("Retry-After", "1"))
    headers.extend(NO_STORE.items())
    text = json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n"
    return Answer(challenge.status, tuple(headers), text.encode())
