"""The one place that turns the library's domain errors into Authlib's RFC 6749 errors."""

from __future__ import annotations

from typing import Final

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidScopeError

from ..core.errors import InvalidRefreshToken, OAuthSessionsError
from ..core.refresh_tokens import MalformedRefreshToken

__all__ = ["InvalidDpopProofError", "InvalidTargetError", "UseDpopNonceError", "to_oauth2_error"]


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
