"""``/userinfo`` (OpenID Connect Core section 5.3): the claims of the user behind an access token.

The steps, in order::

    check_request            request hygiene (protocol/request_checks.py)
    bearer_of                the token: Authorization header, or a form body's access_token
    validate_access_token    the one access-token validation (protocol/access_tokens.py): the
                             introspection pipeline with the session alive and unexpired, client
                             binding, scopes granted, the aal policy with its RFC 9470 challenge
    require openid           403 insufficient_scope without it
    claims                   the host adapter's ``userinfo(user_id, scopes)``, then ``sub``

Any refusal is a ``WWW-Authenticate: Bearer`` challenge (RFC 6750 section 3).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..core.bearer import Challenge, check_grant
from ..core.introspection import TokenChecks
from .access_tokens import bearer_of, challenge_answer, validate_access_token
from .http import Answer, HttpRequest, json_answer
from .request_checks import check_request

__all__ = ["UserinfoEndpoint"]

#: The host's claims for a user and the token's scopes (``HostAdapter.userinfo``).
Claims = Callable[[uuid.UUID, Sequence[str]], Mapping[str, Any]]
#: The ``sub`` a client sees for a user (``(user_id, client_id) -> sub``).
Subject = Callable[[uuid.UUID, str], str]


class UserinfoEndpoint:
    """The handler: :meth:`__call__` runs the steps of the module docstring."""

    def __init__(self, checks: TokenChecks, claims: Claims, realm: str,
                 subject: Subject | None = None) -> None:
        #: OIDC Core 5.3.2 / section 8: the ``sub`` of the client's ID tokens (pairwise for a
        #: pairwise client); the access token's own ``sub`` is the user id.
        self._subject = subject
        self._checks = checks
        self._claims = claims
        self._realm = realm

    def __call__(self, request: HttpRequest) -> Answer:
        refused = check_request(request)
        if refused is not None:
            return refused
        try:
            info = validate_access_token(bearer_of(request, allow_form=True), self._checks)
            check_grant(info, ("openid",), None, None)
        except Challenge as challenge:
            return challenge_answer(challenge, realm=self._realm)
        body = dict(self._claims(uuid.UUID(info.sub), info.scopes))
        body["sub"] = (self._subject(uuid.UUID(info.sub), info.client_id)
                       if self._subject is not None else info.sub)
        return json_answer(body)
