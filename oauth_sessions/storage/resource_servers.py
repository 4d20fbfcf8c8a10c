"""Registered resource servers (RFC 8707) and the resources granted to each session.

* ``oauth_resource_servers`` (the library's schema): one row per resource server, identified
  by its absolute URI (RFC 8707 section 2). Each has its own introspection secret, generated
  here and stored hashed exactly like a client secret
  (:func:`~oauth_sessions.storage.clients.hash_client_secret`, verified in constant time), its
  minimum aal for the tokens meant for it, and optionally the scopes it accepts. A resource
  server authenticates to ``/introspect`` as itself: HTTP Basic (or ``client_secret_post``)
  with its ``id`` (a UUID, like a client id) and that secret.
* ``oauth_session_resources``: the resources a session was granted at authorize, one row per
  session that named any, written in the transaction that creates the session and removed
  with it (``ON DELETE CASCADE``). The refresh path reads it in the same statement as the
  session row (:mod:`oauth_sessions.storage.rotation`), so it costs no round trip.

Records are cached per worker like client records (``CLIENT_CACHE_SECONDS``): a deleted
resource server may still authenticate for that long on another worker.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError

from ..core.client_rules import check_client_name
from ..core.errors import InvalidTarget
from ..core.policy import is_valid_scope_token, join_scope, parse_scope
from ..core.resource_indicators import check_resource, join_resources
from ..core.types import Aal
from .clients import generate_client_secret, hash_client_secret, parse_client_id
from .models import OAuthResourceServer, OAuthSessionResources

__all__ = ["ResourceServerInfo", "ResourceServerStore", "record_session_resources"]

_RS = cast(Table, OAuthResourceServer.__table__)
_SR = cast(Table, OAuthSessionResources.__table__)


@dataclass(frozen=True, slots=True)
class ResourceServerInfo:
    """One registered resource server."""

    id: uuid.UUID
    resource: str
    name: str | None
    min_aal: Aal | None
    #: The scopes tokens for it may carry; ``None``: any the client was granted.
    scopes: tuple[str, ...] | None
    created_at: datetime
    secret_hash: str | None = field(default=None, repr=False)

    @property
    def client_id(self) -> str:
        """The username it authenticates with (HTTP Basic), like a client's id."""
        return str(self.id)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.client_id, "resource": self.resource, "name": self.name,
                "min_aal": self.min_aal.value if self.min_aal else None,
                "scope": join_scope(self.scopes) if self.scopes is not None else None,
                "created_at": self.created_at.isoformat()}


def _info(row: Any) -> ResourceServerInfo:
    return ResourceServerInfo(
        id=row.id, resource=row.resource, name=row.name,
        min_aal=Aal(row.min_aal) if row.min_aal else None,
        scopes=parse_scope(row.scope) if row.scope is not None else None,
        created_at=row.created_at, secret_hash=row.secret_hash)


def record_session_resources(conn: Connection, session_id: uuid.UUID,
                             resources: Sequence[str]) -> None:
    """Remember the resources granted to a new session, in the caller's transaction."""
    if resources:
        conn.execute(insert(_SR).values(session_id=session_id,
                                        resources=join_resources(resources)))


class ResourceServerStore:
    """Register, look up and remove resource servers."""

    def __init__(self, engine: Engine, *, cache_seconds: float = 5) -> None:
        self._engine = engine
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._cache_seconds = cache_seconds
        self._by_id: dict[uuid.UUID, tuple[float, ResourceServerInfo | None]] = {}
        self._by_resource: dict[str, tuple[float, ResourceServerInfo | None]] = {}
        self._lock = threading.Lock()

    def create(self, resource: str, *, name: str | None = None, min_aal: Aal | str | None = None,
               scopes: str | Iterable[str] | None = None,
               now: datetime | None = None) -> tuple[ResourceServerInfo, str]:
        """Register ``resource`` (an absolute URI without a fragment); returns the record and
        its introspection secret, shown this once. ``ValueError`` for a bad URI, name, aal or
        scope, or a resource already registered."""
        try:
            check_resource(resource)
        except InvalidTarget:
            raise ValueError("resource must be an absolute URI without a fragment, printable "
                             "ASCII without spaces, at most 2048 characters "
                             "(RFC 8707 section 2)") from None
        if name is not None:
            name = check_client_name(name)
        aal = Aal(min_aal) if min_aal else None
        scope_list: tuple[str, ...] | None = None
        if scopes is not None:
            scope_list = parse_scope(scopes)
            if not scope_list or not all(is_valid_scope_token(s) for s in scope_list):
                raise ValueError("scope must list scope tokens (RFC 6749 section 3.3)")
        secret = generate_client_secret()
        row_id = uuid.uuid4()
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(_RS).values(
                    id=row_id, resource=resource, name=name, secret_hash=hash_client_secret(secret),
                    min_aal=aal, scope=join_scope(scope_list) if scope_list is not None else None,
                    created_at=now or datetime.now(UTC)))
        except IntegrityError:
            raise ValueError(f"a resource server is already registered for {resource}") from None
        self._forget()
        info = self.get(row_id, fresh=True)
        assert info is not None
        return info, secret

    def get(self, server_id: uuid.UUID | str, *, fresh: bool = False) -> ResourceServerInfo | None:
        """The resource server with this id; a string that is not a canonical UUID names none."""
        key = server_id if isinstance(server_id, uuid.UUID) else parse_client_id(server_id)
        if key is None:
            return None
        return self._cached(self._by_id, key, _RS.c.id == key, fresh)

    def by_resource(self, resource: str, *, fresh: bool = False) -> ResourceServerInfo | None:
        """The resource server registered for the URI ``resource`` (exact string match)."""
        return self._cached(self._by_resource, resource, _RS.c.resource == resource, fresh)

    def min_aal(self, resource: str) -> Aal | None:
        """The minimum aal of the resource server registered for ``resource`` (``None``: none
        is registered, or it sets none): the registry's part of
        :func:`~oauth_sessions.core.policy.required_aal` (a
        :data:`~oauth_sessions.core.policy.ResourceMinAal`).

        A value that is no resource indicator (a client id) names no resource server and is
        answered without a read; a registered one comes from :meth:`by_resource`'s cache.
        """
        try:
            check_resource(resource)
        except InvalidTarget:
            return None
        server = self.by_resource(resource)
        return server.min_aal if server is not None else None

    def list(self) -> list[ResourceServerInfo]:
        with self._reads.connect() as conn:
            rows = conn.execute(select(_RS).order_by(_RS.c.created_at, _RS.c.id)).all()
        return [_info(r) for r in rows]

    def delete(self, server_id: uuid.UUID) -> bool:
        """Remove a resource server: it can no longer introspect, and new grants cannot name
        it. Tokens already minted for it keep their ``aud`` until they expire."""
        with self._engine.begin() as conn:
            done = conn.execute(delete(_RS).where(_RS.c.id == server_id)).rowcount
        self._forget()
        return bool(done)

    def _cached(self, cache: dict[Any, tuple[float, ResourceServerInfo | None]], key: Any,
                where: Any, fresh: bool) -> ResourceServerInfo | None:
        if not fresh and self._cache_seconds:
            hit = cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        with self._reads.connect() as conn:
            row = conn.execute(select(_RS).where(where)).first()
        info = _info(row) if row is not None else None
        if self._cache_seconds:
            with self._lock:
                if len(cache) > 10_000:
                    cache.clear()
                cache[key] = (time.monotonic() + self._cache_seconds, info)
        return info

    def _forget(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._by_resource.clear()
