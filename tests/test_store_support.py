"""Builders shared by the session-store tests (no tests here).

Small functions instead of a factory library: a user row, a client row, a store with the
settings a test needs, and a signal recorder.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from blinker import Signal
from sqlalchemy import Engine, insert

from oauth_sessions.core.settings import Settings
from oauth_sessions.core.types import Aal
from oauth_sessions.storage.models import OAuthClient, OAuthClientSettings, User
from oauth_sessions.storage.sessions import SessionStore

ISSUER = "https://issuer.example"
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def make_settings(**changes: Any) -> Settings:
    return Settings(issuer=ISSUER).replace(**changes)


def make_store(engine: Engine, **changes: Any) -> SessionStore:
    return SessionStore(engine, make_settings(**changes))


def add_user(engine: Engine) -> uuid.UUID:
    user_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(insert(User.__table__).values(id=user_id, email=f"{user_id}@example.com",
                                                   created_at=T0, updated_at=T0))
    return user_id


def add_client(engine: Engine, *, name: str = "app") -> uuid.UUID:
    client_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(insert(OAuthClient.__table__).values(
            id=client_id, registration_type="manual", redirect_uris="https://app.example/cb",
            grant_types="authorization_code,refresh_token", client_name=name, created_at=T0,
            updated_at=T0, client_type="confidential",
            token_endpoint_auth_method="client_secret_basic",
        ))
        conn.execute(insert(OAuthClientSettings.__table__).values(
            client_id=client_id, scope="openid profile payments", can_introspect=False,
            backchannel_logout_session_required=True,
        ))
    return client_id


def new_session(store: SessionStore, user_id: uuid.UUID, client_id: uuid.UUID | None,
                **kwargs: Any) -> Any:
    kwargs.setdefault("scopes", "openid profile")
    kwargs.setdefault("aal", Aal.AAL1)
    kwargs.setdefault("amr", ["pwd"])
    return store.create_session(user_id=user_id, client_id=client_id, **kwargs)


@contextmanager
def recording(*signals: Signal) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Collect ``(signal name, kwargs)`` for every send of ``signals`` inside the block."""
    events: list[tuple[str, dict[str, Any]]] = []
    receivers = []
    for signal in signals:
        def receiver(sender: object, _name: str = str(signal.name), **kw: Any) -> None:
            events.append((_name, kw))
        receivers.append(receiver)
        signal.connect(receiver)
    try:
        yield events
    finally:
        for signal, receiver in zip(signals, receivers, strict=True):
            signal.disconnect(receiver)
