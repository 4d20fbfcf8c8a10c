"""The refresh path: rotation of a session's refresh tokens, and the rows it reads and writes.

:class:`Rotator` is what :meth:`SessionStore.rotate <oauth_sessions.storage.sessions.SessionStore.rotate>`
runs. It is written for PostgreSQL under READ COMMITTED with any number of workers, and costs
two autocommitted statements in the common case:

1. one primary-key ``SELECT`` of the row (joined to its amr claims) to get the HMAC key, so the
   token's tag is verified in constant time *before* anything is written;
2. one compare-and-swap ``UPDATE ... WHERE id = :sid AND refresh_token_counter = :n AND
   (not_after IS NULL OR not_after > :now) RETURNING ...``.

On PostgreSQL with psycopg both run as libpq prepared statements on a connection reserved for
the hot paths (:mod:`oauth_sessions.storage.rotation_pg`); elsewhere they go through SQLAlchemy Core.
No ``SELECT ... FOR UPDATE`` is needed: PostgreSQL re-checks the ``WHERE`` of a blocked
``UPDATE`` against the row version the winner committed, so of N racers presenting the same
token exactly one matches. The losers re-read the row, find their token is now the previous
one, refreshed a moment ago, and get the same new token (it is derived, never stored).

Token rules, in the words of RFC 9700 section 4.14.2 (refresh token rotation):

* counter ``n`` (current): refreshes once; the counter becomes ``n + 1``.
* counter ``n - 1`` while ``now < refreshed_at + reuse_interval``: the same current token
  again, nothing written (two tabs, or a retry after a lost response).
* any other counter below ``n``, or ``n - 1`` at or after the interval: reuse. The row is
  deleted (its amr claims and legacy tokens go by ``ON DELETE CASCADE``), every token of the
  session dies, and :data:`~oauth_sessions.core.signals.refresh_token_reused` is sent.
* a counter above ``n`` has a valid tag only if the key leaked or a row was restored from a
  backup; it is refused as not found and changes nothing.
* an ``osb1_`` token (a session bound to a DPoP key, RFC 9449 section 5) first needs a proof
  made with that key: without one, or with another key, it is refused before any of the rules
  above and changes nothing. Only such tokens cost a third statement (the binding's read).

Step-up advances the counter by two, so no pre-step-up token is ever "the previous one":
see :mod:`oauth_sessions.storage.sessions` for why that makes every such token reuse.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    delete,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import psycopg

from ..core import signals
from ..core.errors import (
    ClientMismatch,
    DpopKeyMismatch,
    DpopProofRequired,
    InsufficientAal,
    InvalidRefreshToken,
    RefreshTokenReused,
    ScopeNeedsHigherAal,
    ScopeNotGranted,
    SessionExpired,
    SessionInactive,
    UnknownSession,
)
from ..core.policy import (
    ResourceMinAal,
    narrow_scope,
    required_aal,
    session_expired,
    session_inactive,
)
from ..core.refresh_tokens import (
    MalformedRefreshToken,
    ParsedRefreshToken,
    encode_refresh_token,
    key_bytes,
    parse_refresh_token,
    verify_tag,
)
from ..core.resource_indicators import choose_audience, split_resources
from ..core.settings import Settings
from ..core.types import Aal, normalize_ip
from .dpop import DpopBindings
from .introspection_store import reserved_connections
from .key_encryption import SecretBox
from .migrate import library_schema
from .models import OAuthSessionResources
from .rotation_pg import PgStatements, PreparedUnavailable
from .session_rows import (
    AMR_CLAIMS,
    CLIENT_LIVE,
    NOT_EXPIRED_AT_B_NOW,
    SESSION_COLUMNS,
    SESSIONS,
    AmrEntry,
    KeyedSession,
    SessionInfo,
    amr_entries,
    session_from_row,
)

__all__ = ["AmrEntry", "AudienceRule", "RefreshTokenLookup", "RotationResult", "Rotator", "SessionInfo",
           "check_active"]

log = logging.getLogger(__name__)

_S = SESSIONS
_A = AMR_CLAIMS

# The hot statements are built once; SQLAlchemy caches their compiled form.
_R = cast(Table, OAuthSessionResources.__table__)
_READ = (
    select(*SESSION_COLUMNS, _S.c.refresh_token_hmac_key.label("hmac_key"),
           _A.c.authentication_method.label("amr_method"), _A.c.updated_at.label("amr_at"),
           _R.c.resources.label("resources"))
    .select_from(_S.outerjoin(_A, _A.c.session_id == _S.c.id)
                 .outerjoin(_R, _R.c.session_id == _S.c.id))
    .where(_S.c.id == bindparam("b_sid"), CLIENT_LIVE)
)
_CAS = (
    update(_S)
    .where(_S.c.id == bindparam("b_sid"), _S.c.refresh_token_counter == bindparam("b_n"),
           NOT_EXPIRED_AT_B_NOW)
    .values(
        refresh_token_counter=_S.c.refresh_token_counter + literal_column("1"),
        refreshed_at=bindparam("b_refreshed", type_=_S.c.refreshed_at.type),
        updated_at=bindparam("b_updated", type_=_S.c.updated_at.type),
        user_agent=bindparam("b_ua", type_=_S.c.user_agent.type),
        ip=bindparam("b_ip", type_=_S.c.ip.type),
    )
    .returning(*SESSION_COLUMNS)
)
_DELETE_ONE = delete(_S).where(_S.c.id == bindparam("b_sid")).returning(*SESSION_COLUMNS)


def _pg_sql(stmt: Any) -> str:
    return str(stmt.compile(dialect=psycopg.dialect()))  # type: ignore[no-untyped-call]


# On PostgreSQL the read and the compare-and-swap are libpq prepared statements
# (:mod:`oauth_sessions.storage.rotation_pg`): SQLAlchemy's per-execution work cost more CPU than the rest
# of rotate() together (0.45 of 0.63 ms measured). The rare delete goes through psycopg.
_PG_DELETE_ONE = _pg_sql(_DELETE_ONE)


class AudienceRule(Protocol):
    """Decides a refresh's audience (RFC 8707) before anything is written: given the resources
    the request names, those the session was granted and the scopes so far, the one audience
    (``None``: the default) and the scopes the token may carry, or a domain error."""

    def __call__(self, requested: tuple[str, ...], granted: tuple[str, ...],
                 scopes: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]: ...


def _default_audience_rule(requested: tuple[str, ...], granted: tuple[str, ...],
                           scopes: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    return choose_audience(requested, granted), scopes


@dataclass(frozen=True, slots=True)
class RotationResult:
    """What a refresh produced. ``replayed`` is True for the reuse-interval answer.

    ``audience`` is the resource (RFC 8707) the new access token is for, ``None`` for the
    default audience; ``scopes`` are the access token's.
    """

    session: SessionInfo
    refresh_token: str
    scopes: tuple[str, ...]
    amr: tuple[AmrEntry, ...] = ()
    replayed: bool = False
    audience: str | None = None

    @property
    def auth_time(self) -> datetime:
        """OIDC ``auth_time``: the latest authentication behind the session."""
        return max((a.timestamp for a in self.amr), default=self.session.created_at)


class RefreshTokenLookup(NamedTuple):
    """What a refresh token names, read without changing anything.

    The one shared answer for every reader that must not rotate: introspection (RFC 7662
    section 2.2), revocation (RFC 7009 section 2.1) and the CLI. ``counter`` is the token's
    own; only a token whose counter is the session's current one (``is_current``) is usable,
    an older one is superseded (or, presented to the token endpoint, reuse).
    """

    session: SessionInfo
    amr: tuple[AmrEntry, ...]
    counter: int

    @property
    def is_current(self) -> bool:
        """True when this is the token the next refresh expects (RFC 9700 section 4.14.2)."""
        return self.session.counter is not None and self.counter == self.session.counter


def _foreign_first_party(parsed: ParsedRefreshToken, session: SessionInfo) -> bool:
    """A Supabase-format token of a first-party session (``oauth_client_id`` NULL).

    Those sessions are Supabase Auth's to refresh: rotating one here would move the counter
    under Supabase Auth, which would then take its own next refresh for reuse.
    """
    return parsed.is_supabase_format and session.client_id is None


def clean_ip(ip: str | None) -> str | None:
    """A bad address from a proxy header is dropped, not allowed to fail the request."""
    if ip is None:
        return None
    try:
        return normalize_ip(ip)
    except ValueError:
        return None


def utc_now(now: datetime | None) -> datetime:
    """``now`` checked to be aware and converted to UTC; the clock when ``None``."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be an aware UTC datetime")
    return now.astimezone(UTC)


def check_active(info: SessionInfo, now: datetime, inactivity_timeout: int | None) -> None:
    """Raise if the session has ended by ``not_after`` or by inactivity.

    Inactivity counts from the last refresh, or from creation if it was never refreshed.
    """
    if session_expired(info.not_after, now):
        raise SessionExpired()
    if session_inactive(info.refreshed_at or info.created_at, now, inactivity_timeout):
        raise SessionInactive()


class Rotator:
    """The refresh path of one :class:`~oauth_sessions.storage.sessions.SessionStore`."""

    def __init__(self, engine: Engine, settings: Settings, box: SecretBox,
                 sender: object | None, bindings: DpopBindings) -> None:
        self._engine = engine
        self._bindings = bindings
        # Autocommit: the hot path is two single statements, each atomic on its own, so an
        # explicit BEGIN/COMMIT would only add two round trips.
        self._auto = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._pg = engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
        self._reserved = reserved_connections(engine) if self._pg else None
        self._schema = library_schema(engine) or "oauth_sessions"
        self.settings = settings
        self._box = box
        self.sender = sender
        self._reuse_interval = timedelta(seconds=settings.refresh_token_reuse_interval)

    def rotate(
        self, refresh_token: str, *, client_id: uuid.UUID | None, scope: str | None = None,
        user_agent: str | None = None, ip: str | None = None,
        client_min_aal: Aal | None = None, dpop_jkt: str | None = None,
        resources: tuple[str, ...] = (), audience: AudienceRule | None = None,
        resource_min_aal: ResourceMinAal | None = None,
        now: datetime | None = None,
    ) -> RotationResult:
        """Exchange a refresh token for the next one (see the module docstring for the rules).

        ``resources`` are the RFC 8707 resources the request names; ``audience`` decides the
        new token's audience from them and the session's granted ones (read with the row, so
        no statement more), before the compare-and-swap. It runs only when the request or the
        session names a resource. ``resource_min_aal`` is the registry's minimum aal for that
        audience (:func:`~oauth_sessions.core.policy.required_aal`). Raises a domain error
        from :mod:`oauth_sessions.core.errors`; every error except :class:`RefreshTokenReused`
        leaves the database untouched.
        """
        rule = audience or _default_audience_rule
        args = (refresh_token, client_id, scope, user_agent, ip, client_min_aal, dpop_jkt,
                resources, rule, resource_min_aal,
                utc_now(now))
        try:
            return self._rotate(*args)
        except PreparedUnavailable:  # nothing ran; the ordinary path is selected from now on
            log.warning("prepared statements refused; refreshing through SQLAlchemy from now on")
            return self._rotate(*args)

    def _rotate(self, refresh_token: str, client_id: uuid.UUID | None, scope: str | None,
                user_agent: str | None, ip: str | None, client_min_aal: Aal | None,
                dpop_jkt: str | None, resources: tuple[str, ...], rule: AudienceRule,
                resource_min_aal: ResourceMinAal | None, now: datetime) -> RotationResult:
        try:
            parsed = parse_refresh_token(refresh_token)
        except MalformedRefreshToken:
            raise InvalidRefreshToken("malformed refresh token") from None
        sid = parsed.session_id
        with self._statements() as db:
            found = db.read(sid)
            if found is None or found.hmac_key is None:
                raise UnknownSession()
            key = self._verified_key(parsed, found.hmac_key, found.session)
            if key is None:  # forged, foreign or unreadable: the session is left as it is
                raise InvalidRefreshToken("refresh token tag does not verify")
            info, amr = found.session, found.amr
            if info.client_id != client_id:
                raise ClientMismatch()
            if parsed.dpop_bound:
                self._require_bound_key(sid, dpop_jkt)
            check_active(info, now, self.settings.inactivity_timeout)
            scopes, aud = self._decide(found, scope, client_min_aal, resources, rule,
                                       resource_min_aal)
            if parsed.counter == info.counter:
                agent = user_agent if user_agent is not None else info.user_agent
                address = clean_ip(ip) or info.ip
                new = db.cas(sid, parsed.counter, now, agent, address)
                if new is not None:
                    info = new
                    signals.session_refreshed.send(self.sender, session=info)
                    return RotationResult(info, encode_refresh_token(
                        sid, parsed.counter + 1, key, dpop_bound=parsed.dpop_bound), scopes, amr,
                        audience=aud)
                # Lost the race (or the row changed since the read): decide on the fresh row.
                found = db.read(sid)
                if found is None:
                    raise UnknownSession()
                info, amr = found.session, found.amr
                check_active(info, now, self.settings.inactivity_timeout)
                scopes, aud = self._decide(found, scope, client_min_aal, resources, rule,
                                           resource_min_aal)
            current = info.counter
            if current is None or parsed.counter > current:
                raise InvalidRefreshToken("refresh token counter is ahead of the session")
            if parsed.counter == current - 1 and self._within_reuse_interval(info, now):
                return RotationResult(info, encode_refresh_token(
                    sid, current, key, dpop_bound=parsed.dpop_bound), scopes, amr, replayed=True,
                    audience=aud)
            if parsed.counter == current:  # unreachable: the CAS only fails when the row moved
                raise SessionExpired()
            revoked = db.delete(sid)
        log.warning("refresh token reuse detected: session %s revoked", sid)
        if revoked is not None:
            signals.refresh_token_reused.send(self.sender, session=revoked)
            signals.session_revoked.send(self.sender, session=revoked, reason="refresh_token_reused")
        raise RefreshTokenReused(f"refresh token reuse detected on session {sid}")

    def find_refresh_session(self, refresh_token: str) -> RefreshTokenLookup | None:
        """Read-only: the session of a refresh token whose tag verifies, its amr, the token's counter.

        ``None`` for anything else (malformed, unknown session, forged tag, unusable key). One
        primary-key SELECT, the same as :meth:`rotate`'s first step; for introspection, which
        must answer without changing anything (RFC 7662 section 2.2).
        """
        try:
            parsed = parse_refresh_token(refresh_token)
        except MalformedRefreshToken:
            return None
        with self._statements() as db:
            found = db.read(parsed.session_id)
        if found is None or found.hmac_key is None:
            return None
        if self._verified_key(parsed, found.hmac_key, found.session) is None:
            return None
        return RefreshTokenLookup(found.session, found.amr, parsed.counter)

    def _require_bound_key(self, sid: uuid.UUID, dpop_jkt: str | None) -> None:
        """RFC 9449 section 5: a bound session refreshes only with a proof of its key.

        Checked before the counter is looked at, so neither a missing proof nor another key
        rotates anything or counts as reuse: at the token endpoint a thief of the token can
        neither use it nor end the holder's session with it. ``/revoke`` can end it without a
        proof: RFC 7009 revokes by possession, and ending a session is the safe direction
        (:mod:`oauth_sessions.protocol.revocation`, docs/guides/dpop.md). Only ``osb1_``
        tokens get here, so unbound sessions never pay for this read.
        """
        if dpop_jkt is None:
            raise DpopProofRequired()
        bound = self._bindings.jkt(sid)
        if bound is None or not hmac.compare_digest(bound.encode(), dpop_jkt.encode()):
            raise DpopKeyMismatch()

    def _verified_key(self, parsed: ParsedRefreshToken, hmac_key: str,
                      session: SessionInfo) -> bytes | None:
        """The session's refresh-token key when the token's tag verifies with it and the token
        may be used here (not a first-party session's Supabase token); else ``None``.

        A key this deployment cannot read (Supabase's encrypted form without its root keys, a
        damaged value) means the token cannot be checked: it is treated like a forged one, and
        the log says why (the messages name key ids and settings, never key material).
        """
        try:
            key = key_bytes(self._box.decrypt(hmac_key, context=parsed.session_id.bytes))
        except ValueError as exc:
            log.error("session %s has a refresh-token key this deployment cannot read: %s",
                      parsed.session_id, exc)
            return None
        if not verify_tag(parsed, key) or _foreign_first_party(parsed, session):
            return None
        return key

    @contextmanager
    def _statements(self) -> Iterator[_CoreStatements | PgStatements]:
        """The hot statements on one connection, each autocommitted on its own.

        On PostgreSQL the connection is one of the engine's reserved connections (shared with
        introspection, :mod:`oauth_sessions.storage.introspection_store`): no pool checkout and no
        pre-ping round trip per refresh. A reserved connection that turns out dead on the first
        statement (the read, which changes nothing) is replaced by a fresh one and the read
        retried; a failure of a write is never retried (it may have committed) and reaches the
        caller, which answers 503.
        """
        if not self._pg or self._reserved is None or self._reserved.disabled:
            with self._auto.connect() as conn:
                yield _CoreStatements(conn)
            return
        statements = PgStatements(self._reserved, _PG_DELETE_ONE, self._schema)
        try:
            yield statements
        finally:
            statements.release()

    def _within_reuse_interval(self, info: SessionInfo, now: datetime) -> bool:
        return info.refreshed_at is not None and now < info.refreshed_at + self._reuse_interval

    def _decide(self, found: KeyedSession, scope: str | None, client_min_aal: Aal | None,
                resources: tuple[str, ...], rule: AudienceRule,
                resource_min_aal: ResourceMinAal | None) -> tuple[tuple[str, ...], str | None]:
        """The new access token's scopes and audience (``None``: the default), decided on the
        row before anything is written, or a domain error.

        Scopes first (:meth:`_refresh_scopes`), then the audience among the granted resources
        (RFC 8707 section 2.2), then the aal the token would need
        (:func:`~oauth_sessions.core.policy.required_aal`: the client's ``min_aal``, and for the
        audience ``AUDIENCE_MIN_AAL`` and the registered resource server's ``min_aal``). A
        session whose aal fell below it (a factor removed) is refused with ``invalid_grant``,
        like a client's minimum: the counter does not move and the session is not revoked (the
        client may still refresh for another granted resource, or send the user to step up).
        """
        info = found.session
        scopes = self._refresh_scopes(info, scope, client_min_aal)
        aud: str | None = None
        if resources or found.resources:
            aud, scopes = rule(resources, found.resources, scopes)
        needed = required_aal(scopes, scope_min_aal=self.settings.scope_min_aal,
                              audience_min_aal=self.settings.audience_min_aal,
                              audiences=(aud,) if aud is not None else (),
                              client_min_aal=client_min_aal, resource_min_aal=resource_min_aal,
                              default_audience=self.settings.issuer)
        if info.aal < needed:
            raise InsufficientAal()
        return scopes, aud

    def _refresh_scopes(self, info: SessionInfo, scope: str | None,
                        client_min_aal: Aal | None) -> tuple[str, ...]:
        """Scopes for this refresh: RFC 6749 section 6 narrowing, then the scopes' aal policy.

        A session whose aal fell below the client's minimum is refused first. A scope whose
        minimum aal the session no longer meets is dropped when the client asked for the
        default scope (the response's ``scope`` says so, RFC 6749 section 5.1), and refused
        with ``invalid_scope`` when the client asked for it by name.
        """
        if client_min_aal is not None and info.aal < client_min_aal:
            raise InsufficientAal()
        narrowed = narrow_scope(scope, info.scopes)
        if narrowed is None:
            raise ScopeNotGranted()
        minimum = self.settings.scope_min_aal
        if not minimum:
            return narrowed
        allowed = tuple(s for s in narrowed if minimum.get(s, Aal.AAL1) <= info.aal)
        if scope and allowed != narrowed:
            raise ScopeNeedsHigherAal()
        return allowed


class _CoreStatements:
    """The hot statements through SQLAlchemy Core (SQLite, and any non-psycopg driver)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def read(self, sid: uuid.UUID) -> KeyedSession | None:
        rows = self._conn.execute(_READ, {"b_sid": sid}).all()
        if not rows:
            return None
        first = rows[0]
        return KeyedSession(session_from_row(first), first.hmac_key,
                            amr_entries((r.amr_method, r.amr_at) for r in rows),
                            split_resources(first.resources))

    def cas(self, sid: uuid.UUID, counter: int, now: datetime, user_agent: str | None,
            ip: str | None) -> SessionInfo | None:
        row = self._conn.execute(_CAS, {
            "b_sid": sid, "b_n": counter, "b_now": now, "b_refreshed": now.replace(tzinfo=None),
            "b_updated": now, "b_ua": user_agent, "b_ip": ip}).first()
        return None if row is None else session_from_row(row)

    def delete(self, sid: uuid.UUID) -> SessionInfo | None:
        row = self._conn.execute(_DELETE_ONE, {"b_sid": sid}).first()
        return None if row is None else session_from_row(row)
