"""``/userinfo`` (OpenID Connect Core section 5.3): the claims of the user behind an access token.

The steps, in order::

    check_request            request hygiene (protocol/request_checks.py)
    credentials_of           the token: Authorization header (Bearer or DPoP), or a form
                             body's access_token
    validate_access_token    the one access-token validation (protocol/access_tokens.py): the
                             introspection pipeline with the session alive and unexpired, client
                             binding, scopes granted, the aal policy with its RFC 9470 challenge
    require_sender           a DPoP-bound token with the DPoP scheme and a proof of its key
                             (RFC 9449 section 7), an unbound one without
    require openid           403 insufficient_scope without it
    claims                   the host adapter's ``userinfo(user_id, scopes)``, then ``sub``
    answer                   JSON, or for a client that registered
                             ``userinfo_signed_response_alg`` a JWT signed with that alg,
                             ``application/jwt``, with ``iss`` and ``aud`` (OIDC Core 5.3.2)

Any refusal is a ``WWW-Authenticate: Bearer`` challenge (RFC 6750 section 3) beside a ``DPoP``
one (RFC 9449 section 7.1).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from ..core.bearer import Challenge, check_grant
from ..core.introspection import TokenChecks
from ..jose.jws import sign_jwt
from .access_tokens import challenge_answer, credentials_of, require_sender, validate_access_token
from .dpop import DPOP_ALGS, DpopChecker
from .http import NO_STORE, Answer, HttpRequest, json_answer
from .request_checks import check_request

__all__ = ["UserinfoEndpoint"]

#: The host's claims for a user and the token's scopes (``HostAdapter.userinfo``).
Claims = Callable[[uuid.UUID, Sequence[str]], Mapping[str, Any]]
#: The ``sub`` a client sees for a user (``(user_id, client_id) -> sub``).
Subject = Callable[[uuid.UUID, str], str]
#: The alg a client's UserInfo answers are signed with, ``None`` for plain JSON (its
#: registered ``userinfo_signed_response_alg``; ``client_id -> alg``).
SigningAlg = Callable[[str], str | None]

_JWT_HEADERS: Final = (*NO_STORE.items(), ("Content-Type", "application/jwt"))


class UserinfoEndpoint:
    """The handler: :meth:`__call__` runs the steps of the module docstring."""

    def __init__(self, checks: TokenChecks, claims: Claims, realm: str,
                 subject: Subject | None = None, *, dpop: DpopChecker | None = None,
                 url: str | None = None, signing_alg: SigningAlg | None = None) -> None:
        #: The DPoP checks and the ``htu`` proofs name (this endpoint's published URL).
        self._dpop = dpop
        self._url = url or realm
        #: OIDC Core 5.3.2 / section 8: the ``sub`` of the client's ID tokens (pairwise for a
        #: pairwise client); the access token's own ``sub`` is the user id.
        self._subject = subject
        self._checks = checks
        self._claims = claims
        self._realm = realm
        #: ``realm`` is the issuer: the ``iss`` of a signed answer.
        self._signing_alg = signing_alg

    def __call__(self, request: HttpRequest) -> Answer:
        refused = check_request(request)
        if refused is not None:
            return refused
        try:
            scheme, token = credentials_of(request, allow_form=True)
            info = validate_access_token(token, self._checks)
            require_sender(info, scheme, token, request, self._dpop, uri=self._url)
            check_grant(info, ("openid",), None, None)
        except Challenge as challenge:
            return challenge_answer(challenge, realm=self._realm,
                                    dpop_algs=DPOP_ALGS if self._dpop is not None else ())
        body = dict(self._claims(uuid.UUID(info.sub), info.scopes))
        body["sub"] = (self._subject(uuid.UUID(info.sub), info.client_id)
                       if self._subject is not None else info.sub)
        alg = self._signing_alg(info.client_id) if self._signing_alg is not None else None
        if alg is None:
            return json_answer(body)
        # OIDC Core 5.3.2: signed, with iss and aud; sub as in the JSON answer.
        signed = sign_jwt(self._checks.keyset(), {**body, "iss": self._realm,
                                                  "aud": info.client_id}, typ="JWT", alg=alg)
        return Answer(200, _JWT_HEADERS, signed.encode())
