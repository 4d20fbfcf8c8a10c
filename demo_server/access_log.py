"""Keep tokens out of the demo's access log.

RP-initiated logout may come as ``GET /oauth/logout?id_token_hint=...`` (OpenID Connect
RP-Initiated Logout 1.0 section 2 allows GET and POST), and the development server's access
log prints the whole request line, so a signed ID token with the user's identity would land
in every log file. The demo's own client posts instead; for the GET that other clients send,
:class:`RedactQuerySecrets` on the ``werkzeug`` logger replaces the value of every parameter
in :data:`SECRET_PARAMETERS` with ``[redacted]`` before the line is written.
"""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = ["SECRET_PARAMETERS", "RedactQuerySecrets", "install", "redact"]

#: Query parameters whose values must never be logged.
SECRET_PARAMETERS: Final = ("id_token_hint", "code", "access_token", "refresh_token",
                            "client_secret", "logout_ticket", "client_assertion")
_PATTERN: Final = re.compile(r"(?<=[?&;])(" + "|".join(SECRET_PARAMETERS) + r")=[^&\s\"]*")


def redact(text: str) -> str:
    """``text`` with the values of secret query parameters replaced."""
    return _PATTERN.sub(r"\1=[redacted]", text)


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
