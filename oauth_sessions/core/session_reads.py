"""What the rules read of a session, and the interface they read it through.

:class:`SessionRow` is the part of an ``auth.sessions`` row the introspection pipeline and the
token checks look at; :class:`SessionSource` is where they read it (implemented over the store in
:mod:`oauth_sessions.storage.introspection_store`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .types import Aal

__all__ = ["RefreshSession", "SessionRow", "SessionSource"]


class SessionRow(Protocol):
    """What introspection reads of an ``auth.sessions`` row (``store.SessionInfo`` fits)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def client_id(self) -> uuid.UUID | None: ...
    @property
    def scopes(self) -> tuple[str, ...]: ...
    @property
    def aal(self) -> Aal: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def refreshed_at(self) -> datetime | None: ...
    @property
    def not_after(self) -> datetime | None: ...


class SessionSource(Protocol):
    """Where the pipeline reads sessions. Implementations must not cache: revocation shows at once."""

    def get(self, session_id: uuid.UUID) -> SessionRow | None:
        """The row by primary key, or None when it does not exist (revoked, purged, never was)."""

    def current_refresh_session(self, token: str) -> RefreshSession | None:
        """The session of a refresh token whose tag verifies and whose counter is current."""


@dataclass(frozen=True, slots=True)
class RefreshSession:
    """A refresh token's session with its authentication methods (read in the same SELECT)."""

    session: SessionRow
    amr: list[str]
    auth_time: int | None
