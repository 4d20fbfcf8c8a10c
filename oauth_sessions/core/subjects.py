"""Subject identifiers (OpenID Connect Core 1.0 section 8): public, or pairwise per sector.

A *public* client sees every user under the same ``sub``, the user's id. A *pairwise* client
sees a ``sub`` of its own sector (section 8.1), so that relying parties of different sectors
cannot correlate their users by ``sub``. The sector identifier is the host of the client's
redirect URIs (all on one host; ``sector_identifier_uri`` documents are never fetched, so they
are not accepted at all), and the value is

    sub = base64url( HMAC-SHA256( key = OAUTH_SESSIONS_PAIRWISE_SALT, sector NUL user id ) )

HMAC under a server secret has the properties section 8.1 asks of its SHA-256 example
(stable per sector and user, not reversible, not computable by anyone without the salt).
The salt must never change once a pairwise client exists: every pairwise ``sub`` would.

Pure code: no Flask, no database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

__all__ = ["MIN_SALT_LENGTH", "pairwise_subject", "subject_for"]

#: The salt is a server secret: at least 32 characters (``secrets.token_urlsafe(32)`` gives 43).
MIN_SALT_LENGTH = 32


def pairwise_subject(sector: str, user_id: uuid.UUID, salt: str) -> str:
    """The pairwise ``sub`` of ``user_id`` in ``sector`` (43 base64url characters)."""
    message = sector.lower().encode("utf-8") + b"\x00" + str(user_id).encode("ascii")
    digest = hmac.new(salt.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def subject_for(user_id: uuid.UUID, sector: str | None, salt: str | None) -> str:
    """The ``sub`` a client of ``sector`` sees (``None``: a public client, the user id).

    ``RuntimeError`` when the client is pairwise and no salt is configured: the provider
    refuses to start in that state (see ``oauth_sessions.flask.extension``), so this is a
    programming error, never a request's.
    """
    if sector is None:
        return str(user_id)
    if not salt:
        raise RuntimeError("a pairwise client needs OAUTH_SESSIONS_PAIRWISE_SALT")
    return pairwise_subject(sector, user_id, salt)
