"""The one place that turns the library's domain errors into Authlib's RFC 6749 errors, and
the one rendering of the token endpoint's answers (Authlib's status, body and headers as an
:class:`~oauth_sessions.protocol.http.Answer`), for the grant Authlib dispatches (the code
grant) and the one it does not (the refresh grant) alike."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from authlib.consts import default_json_headers
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidScopeError

from ..core.errors import InvalidRefreshToken, OAuthSessionsError
from ..core.refresh_tokens import MalformedRefreshToken
from .http import NO_STORE, Answer

__all__ = ["TOKEN_HEADERS", "InvalidDpopProofError", "InvalidTargetError", "UseDpopNonceError",
           "oauth2_answer", "oauth2_error_answer", "to_oauth2_error"]

#: The headers of a token response (Authlib's, RFC 6749 section 5.1: JSON, not cached).
TOKEN_HEADERS: Final[tuple[tuple[str, str], ...]] = tuple(default_json_headers)


def oauth2_answer(status: int, payload: Any, headers: Iterable[tuple[Any, Any]]) -> Answer:
    """A token endpoint answer from Authlib's ``(status, body, headers)`` triple.

    RFC 6749 section 5.1: responses carrying tokens (or errors about them) are not cached, so
    the ``no-store`` headers are added when the triple lacks them.
    """
    listed = [(str(k), str(v)) for k, v in headers]
    names = {k.lower() for k, _ in listed}
    listed.extend((k, v) for k, v in NO_STORE.items() if k.lower() not in names)
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return Answer(status, tuple(listed), body.encode())


def oauth2_error_answer(error: OAuth2Error) -> Answer:
    """The answer Authlib's server gives for ``error`` (no error URIs are configured)."""
    return oauth2_answer(*error())


class InvalidDpopProofError(OAuth2Error):  # type: ignore[misc]
    """RFC 9449 section 5: 400 ``invalid_dpop_proof`` at the token endpoint."""

    error = "invalid_dpop_proof"


class UseDpopNonceError(OAuth2Error):  # type: ignore[misc]
    """RFC 9449 section 8: 400 ``use_dpop_nonce`` with the nonce to use in ``DPoP-Nonce``."""

    error = "use_dpop_nonce"

    def __init__(self, description: str, nonce: str) -> None:
        super().__init__(description=description)
        self.nonce = nonce

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("DPoP-Nonce", self.nonce)]


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707 section 2: ``invalid_target``, 400 (Authlib has no class for it)."""

    error = "invalid_target"


_BY_CODE: Final[dict[str, type[OAuth2Error]]] = {
    "invalid_grant": InvalidGrantError,
    "invalid_scope": InvalidScopeError,
    "invalid_target": InvalidTargetError,
    "invalid_dpop_proof": InvalidDpopProofError,
}


def to_oauth2_error(exc: Exception) -> OAuth2Error:
    """The Authlib error to send for ``exc``: the RFC 6749 code with the public description.

    The codec's own :class:`~oauth_sessions.core.refresh_tokens.MalformedRefreshToken` is accepted
    too, so a caller can pass whatever parsing raised. Anything else is a programming error and
    is re-raised rather than shown to a client as if it were a protocol answer.
    """
    if isinstance(exc, OAuthSessionsError):
        return _BY_CODE[exc.error](description=exc.description)
    if isinstance(exc, MalformedRefreshToken):
        return InvalidGrantError(description=InvalidRefreshToken.description)
    raise TypeError(f"{type(exc).__name__} is not an oauth_sessions domain error") from exc
