"""Session events the host application can subscribe to (blinker, as Flask's own signals).

Each signal is sent with ``sender`` = the Flask app the store belongs to (``None`` when the
store is used without an app) and keyword arguments:

========================  ===============================================================
``session_created``       ``session=SessionInfo``
``session_refreshed``     ``session=SessionInfo`` (after the counter advanced; a replay
                          inside the reuse interval is not a refresh and sends nothing)
``session_stepped_up``    ``session=SessionInfo`` (aal raised, counter advanced by two)
``session_downgraded``    ``session=SessionInfo`` (aal lowered, e.g. a factor was removed)
``session_revoked``       ``session=SessionInfo, reason=str`` (one per revoked session)
``refresh_token_reused``  ``session=SessionInfo`` (sent before the matching
                          ``session_revoked`` with ``reason="refresh_token_reused"``)
``client_deleted``        ``client_id=UUID`` (sent by the client store)
========================  ===============================================================

Receivers run inside the request that caused the event; they must be quick and must not raise
(an exception in a receiver propagates to the caller, after the database change is committed).
A session's ``SessionInfo`` never contains its HMAC key, so receivers cannot leak it.
"""

from __future__ import annotations

from blinker import Namespace

__all__ = [
    "client_deleted",
    "refresh_token_reused",
    "session_created",
    "session_downgraded",
    "session_refreshed",
    "session_revoked",
    "session_stepped_up",
]

_signals = Namespace()

session_created = _signals.signal("oauth-sessions.session-created")
session_refreshed = _signals.signal("oauth-sessions.session-refreshed")
session_stepped_up = _signals.signal("oauth-sessions.session-stepped-up")
session_downgraded = _signals.signal("oauth-sessions.session-downgraded")
session_revoked = _signals.signal("oauth-sessions.session-revoked")
refresh_token_reused = _signals.signal("oauth-sessions.refresh-token-reused")
client_deleted = _signals.signal("oauth-sessions.client-deleted")
