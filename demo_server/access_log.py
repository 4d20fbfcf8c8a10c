"""Keep tokens out of the demo's access log.

RP-initiated logout may come as ``GET /oauth/logout?id_token_hint=...`` (OpenID Connect
RP-Initiated Logout 1.0 section 2 allows GET and POST), and the development server's access
log prints the whole request line, so a signed ID token with the user's identity would land
in every log file. The demo's own client posts instead; for the GET that other clients send,
:class:`RedactQuerySecrets` on the ``werkzeug`` logger replaces the value of every parameter
in :data:`SECRET_PARAMETERS` with ``[redacted]`` before the line is written. The same
parameters inside a percent-encoded URL are redacted too: a step-up sends the browser to
``/account/step-up?next=/oauth/authorize%3F...%26id_token_hint%3D...``, the authorization
request (and the client's ``id_token_hint``) travelling in ``next``.
"""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = ["SECRET_PARAMETERS", "RedactQuerySecrets", "install", "redact"]

#: Query parameters whose values must never be logged.
SECRET_PARAMETERS: Final = ("id_token_hint", "code", "access_token", "refresh_token",
                            "client_secret", "logout_ticket", "client_assertion")
_NAMES: Final = "|".join(SECRET_PARAMETERS)
_PATTERN: Final = re.compile(r"(?<=[?&;])(" + _NAMES + r")=[^&\s\"]*")
#: The same inside a percent-encoded URL (a ``next`` parameter): ``%26code%3D...``.
_ENCODED: Final = re.compile(r"((?:%3[Ff]|%26|%3[Bb])(?:" + _NAMES + r"))%3[Dd][^&\s\"%]*")


def redact(text: str) -> str:
    """``text`` with the values of secret query parameters replaced, plain or percent-encoded."""
    return _ENCODED.sub(r"\1%3D[redacted]", _PATTERN.sub(r"\1=[redacted]", text))


class RedactQuerySecrets(logging.Filter):
    """Rewrites a record's arguments (werkzeug logs the request line as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install(logger_name: str = "werkzeug") -> None:
    """Add the filter once to ``logger_name`` (idempotent)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactQuerySecrets) for f in logger.filters):
        logger.addFilter(RedactQuerySecrets())
