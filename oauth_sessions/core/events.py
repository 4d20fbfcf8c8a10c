"""Structured log lines for every session event, with identifiers only and never a secret.

:func:`connect_logging` subscribes to each signal of :mod:`oauth_sessions.core.signals` and writes
one line per event to the ``oauth_sessions.core.events`` logger, as ``key=value`` text for people
and as ``extra`` attributes (``record.event``, ``record.fields``) for JSON formatters. A line
carries what an operator needs to follow a session (event, session id, user id, client id, aal,
reason) and nothing that authenticates: :class:`~oauth_sessions.storage.session_rows.SessionInfo` holds no
HMAC key and the signals carry no token, and the fields are picked one by one here, so adding a
field to ``SessionInfo`` cannot leak it into logs by accident. IPs and user agents are left out
too (personal data that access logs already hold).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from blinker import NamedSignal

from . import signals

__all__ = ["EVENTS", "connect_logging", "event_fields"]

log = logging.getLogger("oauth_sessions.events")

#: Signal → event name in the log; ``session_revoked`` adds ``reason``.
EVENTS: Final[dict[str, NamedSignal]] = {
    "session_created": signals.session_created,
    "session_refreshed": signals.session_refreshed,
    "session_stepped_up": signals.session_stepped_up,
    "session_downgraded": signals.session_downgraded,
    "session_revoked": signals.session_revoked,
    "refresh_token_reused": signals.refresh_token_reused,
    "client_deleted": signals.client_deleted,
}
_LEVELS: Final = {"refresh_token_reused": logging.WARNING}


def event_fields(event: str, **kwargs: Any) -> dict[str, str]:
    """The loggable fields of one event, chosen explicitly (an allow-list, not a deny-list)."""
    fields = {"event": event}
    session = kwargs.get("session")
    if session is not None:
        fields["session_id"] = str(session.id)
        fields["user_id"] = str(session.user_id)
        fields["client_id"] = "" if session.client_id is None else str(session.client_id)
        fields["aal"] = str(getattr(session.aal, "value", session.aal))
        if session.counter is not None:
            fields["counter"] = str(session.counter)
    if "client_id" in kwargs:
        fields["client_id"] = str(kwargs["client_id"])
    if "reason" in kwargs:
        fields["reason"] = str(kwargs["reason"])
    return fields


def _receiver(event: str) -> Any:
    level = _LEVELS.get(event, logging.INFO)

    def receive(sender: object, **kwargs: Any) -> None:
        if not log.isEnabledFor(level):  # every refresh passes here: cost nothing when unheard
            return
        try:
            fields = event_fields(event, **kwargs)
            text = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
            log.log(level, text, extra={"event": event, "fields": fields})
        except Exception:  # logging must never fail the request that caused the event
            log.debug("could not log %s", event, exc_info=True)

    receive.__name__ = f"log_{event}"
    return receive


def _quote(value: str) -> str:
    return value if value and all(c.isalnum() or c in "-_.:" for c in value) else repr(value)


_RECEIVERS: Final = {name: _receiver(name) for name in EVENTS}


def connect_logging() -> None:
    """Log every event of every app (idempotent; receivers are module-level, held strongly)."""
    for name, signal in EVENTS.items():
        signal.connect(_RECEIVERS[name])
