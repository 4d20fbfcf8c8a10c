"""DPoP server nonces (RFC 9449 section 8), stateless so that every worker accepts them.

A nonce names a time window and authenticates it, with the client it was given to::

    base64url_nopad(window (8, big-endian) || HMAC-SHA256(key, b"dpop-nonce" || window
                                                          || 0x00 || client_id)[:16])

At the authorization server (token endpoint, PAR) the client is known when a nonce is handed
out, so the nonce is good for that client only: a nonce one client was given and another
presents fails the MAC, and the second client is asked to use a fresh nonce of its own. The
client id is not in the nonce itself, so a nonce tells nothing about whose it is. A resource
server, which hands out nonces before it knows whose token it is, makes them for no client
(nothing after the window in the MAC input); such a nonce is no good for any client, nor a
client's nonce at a resource, since the two MAC inputs never coincide (the 0x00 marker).

``window`` is ``floor(unix time / lifetime)``. A nonce is accepted in its own window and the
next one, so it lives from ``lifetime`` to ``2 * lifetime`` seconds, and it stops exactly at
the start of the window after that (``(window + 2) * lifetime``). Nothing is stored: the key is
the same on every worker (derived from ``OAUTH_SESSIONS_DPOP_NONCE_SECRET`` or the app's
``SECRET_KEY``), so a nonce given out by one worker is good at every other.

A nonce here limits how far ahead a client can make proofs (section 11.2), not how often a
proof is used: one-time use is the ``jti`` ledger's job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import time
from typing import Final

__all__ = ["NONCE_LENGTH", "NonceIssuer", "derive_nonce_key"]

_WINDOW: Final = struct.Struct(">Q")
_TAG_BYTES: Final = 16
_LABEL: Final = b"dpop-nonce"
#: Characters of every nonce (24 bytes, unpadded base64url).
NONCE_LENGTH: Final = 32


def derive_nonce_key(secret: str | bytes) -> bytes:
    """The nonce key from a longer-lived secret, so the secret itself never keys nonces."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.digest(raw, b"oauth_sessions DPoP nonce key", hashlib.sha256)


class NonceIssuer:
    """Makes and checks the nonces of the module docstring under one key."""

    def __init__(self, key: bytes, lifetime: int) -> None:
        if len(key) < 32:
            raise ValueError("the DPoP nonce key must have at least 32 bytes")
        if lifetime <= 0:
            raise ValueError("the DPoP nonce lifetime must be positive")
        self._key = key
        self.lifetime = lifetime

    def _tag(self, window: int, client_id: str | None) -> bytes:
        bound = b"" if client_id is None else b"\x00" + client_id.encode("utf-8", "replace")
        return hmac.digest(self._key, _LABEL + _WINDOW.pack(window) + bound,
                           hashlib.sha256)[:_TAG_BYTES]

    def _window(self, now: float | None) -> int:
        return int((time.time() if now is None else now) // self.lifetime)

    def issue(self, now: float | None = None, *, client_id: str | None = None) -> str:
        """The nonce of the current window for ``client_id`` (None: for no client, at a
        resource server); the same string for every call in the window."""
        window = self._window(now)
        raw = _WINDOW.pack(window) + self._tag(window, client_id)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def is_valid(self, nonce: str, now: float | None = None, *,
                 client_id: str | None = None) -> bool:
        """Whether ``nonce`` was made under this key, for ``client_id``, for the current or the
        previous window."""
        if not isinstance(nonce, str) or len(nonce) != NONCE_LENGTH:
            return False
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return False
        if len(raw) != _WINDOW.size + _TAG_BYTES:
            return False
        (window,) = _WINDOW.unpack(raw[:_WINDOW.size])
        current = self._window(now)
        if window not in (current, current - 1):
            return False
        return hmac.compare_digest(self._tag(window, client_id), raw[_WINDOW.size:])
