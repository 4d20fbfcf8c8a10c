"""Pushed authorization requests (RFC 9126) waiting in ``oauth_pushed_requests``.

A pushed request lives through three states, each change a compare-and-swap in one statement,
so racing workers cannot both win one:

1. pushed (:meth:`PushedRequestStore.push`): the row holds the SHA-256 of its ``request_uri``
   (a database reader cannot use the references), the client that pushed it and the
   parameters, for the setting ``PUSHED_REQUEST_LIFETIME``. The parameters are a JSON object
   of strings, one per name, as the authorization endpoint reads them; ``resource``, which may
   repeat (RFC 8707), holds every value, joined by spaces (a resource indicator has none);
2. used (:meth:`PushedRequestStore.use`): the authorization endpoint took it, before its
   expiry, for the client that pushed it; from then on the bare ``request_uri`` is refused
   (RFC 9126 section 4: one-time), and only the browser that used it can come back to it
   (the authorization endpoint's continuation, :meth:`PushedRequestStore.resume`);
3. completed (:meth:`PushedRequestStore.complete`): a code was issued from it, once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final, cast

from sqlalchemy import Engine, Table, delete, select, update

from .models import OAuthPushedRequest

__all__ = ["REQUEST_URI_PREFIX", "PushedRequestStore", "hash_reference"]

#: RFC 9126 section 2.2: the form of the ``request_uri`` this server hands out.
REQUEST_URI_PREFIX: Final = "urn:ietf:params:oauth:request_uri:"

_TABLE = cast(Table, OAuthPushedRequest.__table__)


def hash_reference(request_uri: str) -> str:
    return hashlib.sha256(request_uri.encode("utf-8")).hexdigest()


def _parameters(text: str) -> dict[str, str]:
    data = json.loads(text)
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


class PushedRequestStore:
    """Push, use, resume and complete pushed authorization requests. Owns its transactions."""

    def __init__(self, engine: Engine, *, lifetime: int) -> None:
        self._engine = engine
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.lifetime = lifetime

    def push(self, client_id: uuid.UUID, parameters: Mapping[str, str],
             *, now: datetime | None = None) -> str:
        """Store ``parameters`` for ``client_id``; returns the ``request_uri`` (256 random bits)."""
        now = now or datetime.now(UTC)
        request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
        with self._engine.begin() as conn:
            conn.execute(_TABLE.insert().values(
                request_hash=hash_reference(request_uri), client_id=client_id,
                parameters=json.dumps(dict(parameters)), created_at=now,
                expires_at=now + timedelta(seconds=self.lifetime)))
        return request_uri

    def use(self, request_uri: str, client_id: uuid.UUID,
            *, now: datetime | None = None) -> dict[str, str] | None:
        """Take the request: its parameters, or ``None`` when it is unknown, another client's,
        expired (``now >= expires_at``) or already used. Exactly one racing caller wins."""
        now = now or datetime.now(UTC)
        digest = hash_reference(request_uri)
        with self._engine.begin() as conn:
            won = conn.execute(
                update(_TABLE).where(_TABLE.c.request_hash == digest,
                                     _TABLE.c.client_id == client_id,
                                     _TABLE.c.used_at.is_(None), _TABLE.c.expires_at > now)
                .values(used_at=now)).rowcount
            if not won:
                return None
            text = conn.execute(select(_TABLE.c.parameters)
                                .where(_TABLE.c.request_hash == digest)).scalar_one()
        return _parameters(text)

    def resume(self, request_uri: str, client_id: uuid.UUID) -> dict[str, str] | None:
        """The parameters of a request already used and not yet completed (the same browser
        coming back from sign-in or consent; the caller checks it is the same browser)."""
        with self._reads.connect() as conn:
            text = conn.execute(
                select(_TABLE.c.parameters)
                .where(_TABLE.c.request_hash == hash_reference(request_uri),
                       _TABLE.c.client_id == client_id, _TABLE.c.used_at.is_not(None),
                       _TABLE.c.completed_at.is_(None))).scalar()
        return _parameters(text) if text is not None else None

    def complete(self, request_uri: str, *, now: datetime | None = None) -> bool:
        """Record that a code is issued from the request; ``False`` if one already was."""
        with self._engine.begin() as conn:
            done = conn.execute(
                update(_TABLE).where(_TABLE.c.request_hash == hash_reference(request_uri),
                                     _TABLE.c.used_at.is_not(None),
                                     _TABLE.c.completed_at.is_(None))
                .values(completed_at=now or datetime.now(UTC))).rowcount
        return bool(done)

    def purge(self, *, older_than: timedelta = timedelta(days=1),
              now: datetime | None = None) -> int:
        """Delete requests expired for ``older_than`` (none of them can be used any more)."""
        cutoff = (now or datetime.now(UTC)) - older_than
        with self._engine.begin() as conn:
            return int(conn.execute(delete(_TABLE).where(_TABLE.c.expires_at < cutoff)).rowcount)
