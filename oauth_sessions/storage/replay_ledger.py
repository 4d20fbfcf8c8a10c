"""One-time ``jti`` values shared by every worker through the database: the one replay ledger.

A JWT that may be used once (a ``private_key_jwt`` client assertion, OIDC Core section 9 and
RFC 7523 section 3; a DPoP proof, RFC 9449 section 11.1) is recorded as the SHA-256 of its
owner and its ``jti`` in a table of the library's schema whose primary key is that hash. A
second insert of the same value fails whichever worker makes it, so the first use wins and
every other one is a replay; no read-then-write race is possible. A record is kept until its
token could not be accepted anyway; each insert deletes the owner's expired records in the same
transaction, so the table stays small without a cron, and ``flask oauth-sessions purge``
deletes the rest.

:class:`ReplayLedger` is that rule over one table. The two ledgers are instances with their
table and owner column fixed, and nothing else of their own:

* :class:`ClientAssertionLedger`: ``oauth_client_assertions``; the owner is the client, also
  stored in ``client_id`` (deleting a client deletes its records through the foreign key);
* :class:`DpopReplayLedger`: ``oauth_dpop_proofs``; the owner is the proof key's RFC 7638
  thumbprint, which only enters the hash, so one key cannot use up another's values.

The protocol layer depends on :class:`JtiLedger` only. Callers pass a ``jti`` that is Unicode
text (:func:`oauth_sessions.jose.jws.is_text` judged it); the hash needs its UTF-8 bytes.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar, cast

from sqlalchemy import Engine, Table, delete, insert
from sqlalchemy.exc import IntegrityError

from .models import OAuthClientAssertion, OAuthDpopProof

__all__ = ["ClientAssertionLedger", "DpopReplayLedger", "JtiLedger", "ReplayLedger"]

OwnerT = TypeVar("OwnerT")
OwnerT_contra = TypeVar("OwnerT_contra", contravariant=True)


class JtiLedger(Protocol[OwnerT_contra]):
    """One-time use of a ``jti`` per owner, across every worker."""

    def consume(self, owner: OwnerT_contra, jti: str, expires_at: datetime, *,
                now: datetime | None = None) -> bool:
        """Record ``jti`` of ``owner`` until ``expires_at``; False when it was recorded before."""
        ...


class ReplayLedger(Generic[OwnerT]):
    """The ledger of the module docstring over ``table`` (columns ``jti_hash``, ``expires_at``
    and, when ``owner_column`` is given, that column holding the owner)."""

    def __init__(self, engine: Engine, table: Table, *, owner_column: str | None = None) -> None:
        self._engine = engine
        self._table = table
        self._owner = table.c[owner_column] if owner_column is not None else None

    def consume(self, owner: OwnerT, jti: str, expires_at: datetime, *,
                now: datetime | None = None) -> bool:
        """Record ``jti`` of ``owner``; False when it was already recorded (a replay).

        Committed on its own: the record must hold even if the request fails afterwards, or a
        failed request would leave its token usable again.
        """
        cutoff = now or datetime.now(UTC)
        digest = hashlib.sha256(f"{owner}:{jti}".encode()).hexdigest()
        table = self._table
        expired = table.c.expires_at < cutoff
        values: dict[str, object] = {"jti_hash": digest, "expires_at": expires_at}
        if self._owner is not None:
            expired = expired & (self._owner == owner)
            values[self._owner.name] = owner
        try:
            with self._engine.begin() as conn:
                conn.execute(delete(table).where(expired))
                conn.execute(insert(table).values(values))
        except IntegrityError:
            return False
        return True

    def purge(self, *, now: datetime | None = None) -> int:
        """Forget every expired record (its token can no longer be accepted anyway)."""
        cutoff = now or datetime.now(UTC)
        with self._engine.begin() as conn:
            return int(conn.execute(delete(self._table).where(
                self._table.c.expires_at < cutoff)).rowcount)


class ClientAssertionLedger(ReplayLedger[uuid.UUID]):
    """``private_key_jwt`` assertions, by client (``oauth_client_assertions``)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, cast(Table, OAuthClientAssertion.__table__),
                         owner_column="client_id")


class DpopReplayLedger(ReplayLedger[str]):
    """DPoP proofs, by key thumbprint (``oauth_dpop_proofs``)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, cast(Table, OAuthDpopProof.__table__))
