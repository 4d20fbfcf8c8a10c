"""Storage of pending authorizations (one-time codes) and remembered consents.

* ``oauth_authorization_codes`` (the library's schema: Supabase's ``auth.oauth_authorizations``
  has no session, aal, amr or auth_time column) keeps one row per issued code, holding only the
  SHA-256 of the code: a database reader cannot redeem codes. The row records what the code will produce
  (user, scopes, aal, amr, PKCE challenge, nonce), and after the exchange the session it
  produced, so that a replayed code can end that session (RFC 6749 section 4.1.2).
* ``auth.oauth_consents`` (Supabase's table, shared with Supabase Auth's own OAuth server) keeps,
  per user and client, the scopes the user approved, space-separated; a grant of no scope is
  not stored (Supabase's ``oauth_consents_scopes_not_empty``).

Codes are redeemed with a compare-and-swap on ``used_at`` in the caller's transaction
(:meth:`AuthorizationStore.redeem`), so two racing exchanges of one code cannot both win.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, Table, delete, select, update

from ..core.policy import join_scope, parse_scope
from ..core.resource_indicators import join_resources, split_resources
from ..core.types import Aal
from .models import OAuthAuthorizationCode, OAuthConsent

__all__ = ["AuthorizationRecord", "AuthorizationStore", "ConsentStore", "hash_code"]

_O_AUTH_AUTHORIZATION = cast(Table, OAuthAuthorizationCode.__table__)
_O_AUTH_CONSENT = cast(Table, OAuthConsent.__table__)

T = TypeVar("T")


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuthorizationRecord:
    id: uuid.UUID
    client_id: uuid.UUID
    user_id: uuid.UUID
    redirect_uri: str
    scopes: tuple[str, ...]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    aal: Aal
    amr: tuple[tuple[str, int], ...]
    factor_id: uuid.UUID | None
    auth_time: datetime
    not_after: datetime | None
    expires_at: datetime
    used_at: datetime | None
    session_id: uuid.UUID | None
    user_agent: str | None = None
    ip: str | None = None
    #: The session of the same user and client that the new one supersedes (ended with it).
    replaces_session_id: uuid.UUID | None = None
    #: RFC 8707 resources of the authorization request (revision 0014); empty: none named.
    resources: tuple[str, ...] = ()
    #: The OIDC Core 5.5 claims request, as parsed (JSON text), or ``None``.
    claims: str | None = None
    #: RFC 9449 section 10: the thumbprint of the only DPoP key that may redeem the code.
    dpop_jkt: str | None = None


def _record(row: Any) -> AuthorizationRecord:
    amr = tuple((str(m), int(t)) for m, t in json.loads(row.amr or "[]"))
    return AuthorizationRecord(
        id=row.id, client_id=row.client_id, user_id=row.user_id, redirect_uri=row.redirect_uri,
        scopes=parse_scope(row.scope), nonce=row.nonce, code_challenge=row.code_challenge,
        code_challenge_method=row.code_challenge_method, aal=Aal(row.aal), amr=amr,
        factor_id=row.factor_id, auth_time=row.auth_time, not_after=row.not_after,
        expires_at=row.expires_at, used_at=row.used_at, session_id=row.session_id,
        user_agent=row.user_agent, ip=row.ip, replaces_session_id=row.replaces_session_id,
        resources=split_resources(row.resources),
        claims=row.claims, dpop_jkt=row.dpop_jkt,
    )


class AuthorizationStore:
    """Issue, look up and redeem authorization codes."""

    def __init__(self, engine: Engine, *, code_lifetime: int) -> None:
        self._engine = engine
        # Single-statement reads need no BEGIN/ROLLBACK round trips around them.
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._lifetime = timedelta(seconds=code_lifetime)

    def issue(
        self, *, client_id: uuid.UUID, user_id: uuid.UUID, redirect_uri: str,
        scopes: Sequence[str], state: str | None, nonce: str | None, code_challenge: str,
        code_challenge_method: str, aal: Aal, amr: Sequence[tuple[str, int]],
        factor_id: uuid.UUID | None, auth_time: datetime, not_after: datetime | None,
        user_agent: str | None = None, ip: str | None = None,
        replaces_session_id: uuid.UUID | None = None, resources: Sequence[str] = (),
        claims: str | None = None, dpop_jkt: str | None = None,
        now: datetime | None = None,
    ) -> str:
        """Store a new authorization and return its code (256 random bits, shown once).

        ``replaces_session_id``: the session the code's session will supersede when it is
        redeemed (see :meth:`~oauth_sessions.storage.sessions.SessionStore.create_session`).
        """
        now = now or datetime.now(UTC)
        code = secrets.token_urlsafe(32)
        with self._engine.begin() as conn:
            conn.execute(_O_AUTH_AUTHORIZATION.insert().values(
                id=uuid.uuid4(), client_id=client_id, user_id=user_id, redirect_uri=redirect_uri,
                scope=join_scope(scopes), state=state, nonce=nonce, code_challenge=code_challenge,
                code_challenge_method=code_challenge_method, authorization_code=hash_code(code),
                status="approved", aal=aal, amr=json.dumps([list(a) for a in amr]),
                factor_id=factor_id, auth_time=auth_time, not_after=not_after, created_at=now,
                expires_at=now + self._lifetime, user_agent=user_agent, ip=ip,
                replaces_session_id=replaces_session_id, claims=claims, dpop_jkt=dpop_jkt,
                resources=join_resources(resources) if resources else None,
            ))
        return code

    def find(self, code: str) -> AuthorizationRecord | None:
        table = _O_AUTH_AUTHORIZATION
        with self._reads.connect() as conn:
            row = conn.execute(
                select(table).where(table.c.authorization_code == hash_code(code))
            ).first()
        return _record(row) if row is not None else None

    def redeem(
        self, record: AuthorizationRecord, produce: Callable[[Connection], tuple[uuid.UUID, T]],
        *, now: datetime | None = None,
    ) -> T | None:
        """Mark the code used and run ``produce`` (which creates the session) in ONE transaction.

        ``produce`` returns ``(session_id, result)``; the session id is written on the row for
        replay detection. ``None``: another exchange won the race (the caller treats it as a
        replay) and nothing was written by this call.
        """
        now = now or datetime.now(UTC)
        table = _O_AUTH_AUTHORIZATION
        with self._engine.begin() as conn:
            won = conn.execute(
                update(table).where(table.c.id == record.id, table.c.used_at.is_(None))
                .values(used_at=now, status="used")
            ).rowcount
            if not won:
                return None
            session_id, result = produce(conn)
            conn.execute(update(table).where(table.c.id == record.id).values(session_id=session_id))
        return result

    def retire(self, record: AuthorizationRecord, *, now: datetime | None = None) -> None:
        """Mark the code used without producing anything (a failed proof of possession for a
        code bound to a DPoP key): from then on it is refused like any used code."""
        table = _O_AUTH_AUTHORIZATION
        with self._engine.begin() as conn:
            conn.execute(update(table).where(table.c.id == record.id, table.c.used_at.is_(None))
                         .values(used_at=now or datetime.now(UTC), status="used"))

    def produced_session(self, record_id: uuid.UUID) -> uuid.UUID | None:
        """The session a redeemed code produced (read after the winner committed)."""
        table = _O_AUTH_AUTHORIZATION
        with self._reads.connect() as conn:
            value = conn.execute(select(table.c.session_id).where(table.c.id == record_id)).scalar()
        return value if isinstance(value, uuid.UUID) or value is None else uuid.UUID(str(value))

    def purge(self, *, older_than: timedelta = timedelta(days=1), now: datetime | None = None) -> int:
        """Delete rows expired for ``older_than`` (kept that long so replays are still caught)."""
        cutoff = (now or datetime.now(UTC)) - older_than
        table = _O_AUTH_AUTHORIZATION
        with self._engine.begin() as conn:
            return int(conn.execute(delete(table).where(table.c.expires_at < cutoff)).rowcount)


class ConsentStore:
    """Scopes each user granted each client (``auth.oauth_consents``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # Single-statement reads need no BEGIN/ROLLBACK round trips around them.
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")

    def granted(self, user_id: uuid.UUID, client_id: uuid.UUID) -> tuple[str, ...]:
        table = _O_AUTH_CONSENT
        with self._reads.connect() as conn:
            scopes = conn.execute(
                select(table.c.scopes).where(table.c.user_id == user_id,
                                             table.c.client_id == client_id,
                                             table.c.revoked_at.is_(None))
            ).scalar()
        return parse_scope(scopes) if scopes is not None else ()

    def grant(self, user_id: uuid.UUID, client_id: uuid.UUID, scopes: Sequence[str],
              *, now: datetime | None = None) -> tuple[str, ...]:
        """Remember ``scopes`` (added to what is already granted); returns the whole grant."""
        now = now or datetime.now(UTC)
        table = _O_AUTH_CONSENT
        with self._engine.begin() as conn:
            row = conn.execute(
                select(table.c.id, table.c.scopes, table.c.revoked_at)
                .where(table.c.user_id == user_id, table.c.client_id == client_id)
            ).first()
            if row is None:
                merged = parse_scope(list(scopes))
                if not merged:  # nothing granted: Supabase's table holds no empty grant
                    return merged
                conn.execute(table.insert().values(
                    id=uuid.uuid4(), user_id=user_id, client_id=client_id,
                    scopes=join_scope(merged), granted_at=now))
            else:
                previous = parse_scope(row.scopes) if row.revoked_at is None else ()
                merged = parse_scope([*previous, *scopes])
                conn.execute(update(table).where(table.c.id == row.id).values(
                    scopes=join_scope(merged), granted_at=now, revoked_at=None))
        return merged

    def revoke(self, user_id: uuid.UUID, client_id: uuid.UUID,
               *, now: datetime | None = None) -> bool:
        """Forget the grant. The caller also ends the user's sessions with the client."""
        table = _O_AUTH_CONSENT
        with self._engine.begin() as conn:
            result = conn.execute(
                update(table).where(table.c.user_id == user_id, table.c.client_id == client_id,
                                    table.c.revoked_at.is_(None))
                .values(revoked_at=now or datetime.now(UTC)))
        return bool(result.rowcount)
