"""``SessionStore``: sessions in ``auth.sessions``, their lifecycle and their refresh tokens.

Plain Python over SQLAlchemy Core: no Flask request, no ORM session. Create a session (with its
amr claims and a computed ``not_after``), read it by primary key, step its aal up or down,
revoke one or many, list a user's, purge expired ones in batches. Refresh-token rotation, the
hot path, is in :mod:`oauth_sessions.storage.rotation`; :meth:`SessionStore.rotate` runs it.

Step-up (:meth:`SessionStore.step_up`) advances the counter by two, as Supabase Auth does.
The token ``n + 1`` is never issued, so right after a step-up the "previous" token that the
reuse interval would forgive does not exist: every token from before the step-up is at least
two behind and counts as reuse. A pre-step-up (aal1) token can therefore never be exchanged
for aal2 tokens, neither by refreshing nor by the replay rule; presenting one revokes the
session, which is the conservative answer for a token that may be in an attacker's hands.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from ..core import signals
from ..core.errors import SessionExpired, UnknownSession
from ..core.policy import (
    MAX_SCOPE_LENGTH,
    ResourceMinAal,
    compute_not_after,
    join_scope,
    parse_scope,
)
from ..core.refresh_tokens import encode_refresh_token, generate_hmac_key, key_bytes
from ..core.settings import Settings
from ..core.types import Aal
from .after_commit import when_committed
from .dpop import DpopBindings
from .key_encryption import SecretBox, secret_box
from .migrate import is_supabase_managed
from .rotation import AudienceRule, Rotator, check_active, clean_ip, utc_now
from .rotation import RefreshTokenLookup as RefreshTokenLookup
from .rotation import RotationResult as RotationResult
from .session_rows import AMR_CLAIMS as _A
from .session_rows import CLIENT_LIVE, NOT_EXPIRED_AT_B_NOW, SESSION_COLUMNS, session_from_row
from .session_rows import SESSIONS as _S
from .session_rows import AmrEntry as AmrEntry
from .session_rows import SessionInfo as SessionInfo

__all__ = [
    "AmrEntry", "IssuedSession", "RefreshTokenLookup", "RotationResult", "SessionInfo", "SessionStore",
]


@dataclass(frozen=True, slots=True)
class IssuedSession:
    session: SessionInfo
    refresh_token: str



class SessionStore:
    """Create, read, rotate, step up/down, revoke, list and purge sessions.

    Each method owns its transaction unless given ``conn`` (then it never commits). Signals are
    sent with ``sender`` (the Flask app, or ``None``) only for changes that are committed: with
    ``conn``, when the caller commits that transaction, and never if it rolls back.
    """

    def __init__(self, engine: Engine, settings: Settings, encryptor: SecretBox | None = None,
                 *, sender: object | None = None) -> None:
        self._engine = engine
        self._auto = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.settings = settings
        if encryptor is None:
            encryptor = secret_box(settings)
        self._box = encryptor
        self._bindings = DpopBindings(engine)
        self._rotator = Rotator(engine, settings, encryptor, sender, self._bindings)

    @property
    def engine(self) -> Engine:
        """The engine the store writes through (readers such as introspection share it)."""
        return self._engine

    @property
    def sender(self) -> object | None:
        """What signals are sent with: the Flask app, or ``None``."""
        return self._rotator.sender

    @sender.setter
    def sender(self, value: object | None) -> None:
        self._rotator.sender = value

    # -- creation and reading ------------------------------------------------------------

    def create_session(
        self, *, user_id: uuid.UUID, client_id: uuid.UUID | None, scopes: Sequence[str] | str,
        aal: Aal, amr: Sequence[AmrEntry | str], factor_id: uuid.UUID | None = None,
        user_agent: str | None = None, ip: str | None = None, tag: str | None = None,
        host_not_after: datetime | None = None, client_max_seconds: int | None = None,
        replaces: uuid.UUID | None = None, conn: Connection | None = None,
        dpop_jkt: str | None = None, now: datetime | None = None,
    ) -> IssuedSession:
        """Start a session and return it with its first refresh token (counter 0).

        ``dpop_jkt`` binds the session's refresh tokens to that DPoP key (RFC 9449 section 5):
        the binding row is written in the same transaction and every token of the session is
        an ``osb1_`` one, refreshed only with a proof made with that key.

        ``not_after`` is the earliest of the configured timebox, the client's maximum and
        ``host_not_after`` (e.g. an SSO assertion's end). With ``SINGLE_SESSION_PER_CLIENT``
        the user's earlier sessions with the same client end in the same transaction.
        ``replaces`` names one earlier session that the new one supersedes (a step-up or
        another re-authorization of the same client): it ends in the same transaction, with
        ``session_revoked`` and reason ``"superseded"``, but only if it belongs to the same user
        and client; otherwise it is left alone. Given ``conn``, everything runs in the
        caller's transaction and the signals wait for it: sent when the caller commits, dropped
        if it rolls back
        (:func:`~oauth_sessions.storage.after_commit.when_committed`).
        """
        now = utc_now(now)
        scope_text = join_scope(parse_scope(scopes))
        if len(scope_text) > MAX_SCOPE_LENGTH:
            raise ValueError(f"scopes exceed {MAX_SCOPE_LENGTH} characters")
        session_id = uuid.uuid4()
        key = generate_hmac_key()
        not_after = compute_not_after(now, timebox_seconds=self.settings.session_timebox,
                                      client_max_seconds=client_max_seconds,
                                      host_not_after=host_not_after)
        values = {
            "id": session_id, "user_id": user_id, "created_at": now, "updated_at": now,
            "factor_id": factor_id, "aal": Aal(aal), "not_after": not_after, "refreshed_at": None,
            "user_agent": user_agent, "ip": clean_ip(ip), "tag": tag, "oauth_client_id": client_id,
            "refresh_token_hmac_key": self._box.encrypt(key, context=session_id.bytes),
            "refresh_token_counter": 0, "scopes": scope_text,
        }
        latest: dict[str, AmrEntry] = {}
        for entry in (e if isinstance(e, AmrEntry) else AmrEntry(e, now) for e in amr):
            if entry.method not in latest or entry.timestamp > latest[entry.method].timestamp:
                latest[entry.method] = entry  # one row per method (unique in mfa_amr_claims)
        claims = list(latest.values())
        superseded: list[SessionInfo] = []
        with self._transaction(conn) as c:
            if self.settings.single_session_per_client and client_id is not None:
                stmt = delete(_S).where(_S.c.user_id == user_id, _S.c.oauth_client_id == client_id)
                superseded = [session_from_row(r) for r in c.execute(stmt.returning(*SESSION_COLUMNS))]
            elif replaces is not None and client_id is not None:
                stmt = delete(_S).where(_S.c.id == replaces, _S.c.user_id == user_id,
                                        _S.c.oauth_client_id == client_id)
                superseded = [session_from_row(r) for r in c.execute(stmt.returning(*SESSION_COLUMNS))]
            row = c.execute(insert(_S).values(values).returning(*SESSION_COLUMNS)).one()
            if dpop_jkt is not None:
                DpopBindings.bind(c, session_id, dpop_jkt, now)
            if claims:
                c.execute(insert(_A), [
                    {"id": uuid.uuid4(), "session_id": session_id, "created_at": e.timestamp,
                     "updated_at": e.timestamp, "authentication_method": e.method} for e in claims
                ])
        info, sender = session_from_row(row), self.sender

        def send() -> None:
            for old in superseded:
                signals.session_revoked.send(sender, session=old, reason="superseded")
            signals.session_created.send(sender, session=info)

        when_committed(conn, send)
        return IssuedSession(info, encode_refresh_token(session_id, 0, key_bytes(key),
                                                        dpop_bound=dpop_jkt is not None))

    def get(self, session_id: uuid.UUID, *, conn: Connection | None = None) -> SessionInfo | None:
        """The session, read by primary key; never cached, so a revocation shows at once.

        ``None`` as well for a session of a soft-deleted client (``deleted_at`` set).
        """
        stmt = select(*SESSION_COLUMNS).where(_S.c.id == session_id, CLIENT_LIVE)
        if conn is not None:
            row = conn.execute(stmt).first()
        else:
            with self._auto.connect() as c:
                row = c.execute(stmt).first()
        return session_from_row(row) if row is not None else None

    def get_amr(self, session_id: uuid.UUID) -> list[AmrEntry]:
        stmt = select(_A.c.authentication_method, _A.c.updated_at).where(
            _A.c.session_id == session_id).order_by(_A.c.updated_at)
        with self._auto.connect() as c:
            return [AmrEntry(r.authentication_method, r.updated_at) for r in c.execute(stmt)]

    def check_active(self, info: SessionInfo, *, now: datetime | None = None) -> None:
        """Raise ``SessionExpired`` / ``SessionInactive`` if the session has ended.

        Inactivity counts from the last refresh, or from creation if it was never refreshed.
        """
        check_active(info, utc_now(now), self.settings.inactivity_timeout)

    def list_for_user(self, user_id: uuid.UUID) -> list[SessionInfo]:
        """The user's sessions, newest first (``user_id_created_at_idx``)."""
        stmt = select(*SESSION_COLUMNS).where(_S.c.user_id == user_id).order_by(
            _S.c.created_at.desc(), _S.c.id)
        with self._auto.connect() as c:
            return [session_from_row(r) for r in c.execute(stmt)]

    def find(self, *, user_id: uuid.UUID | None = None, client_id: uuid.UUID | None = None,
             expired: bool = False, first_party: bool = False, limit: int = 100,
             now: datetime | None = None) -> list[SessionInfo]:
        """Sessions as an operator looks them up, newest first, at most ``limit`` of them.

        Filters combine: ``user_id``'s, ``client_id``'s, only those past ``not_after`` with
        ``expired`` (what :meth:`purge_expired` would delete). First-party sessions
        (``oauth_client_id`` NULL) are included only with ``first_party``, as in
        :meth:`revoke_user`, so a listing shows what a revocation would touch.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        stmt = select(*SESSION_COLUMNS)
        if user_id is not None:
            stmt = stmt.where(_S.c.user_id == user_id)
        if client_id is not None:
            stmt = stmt.where(_S.c.oauth_client_id == client_id)
        elif not first_party:
            stmt = stmt.where(_S.c.oauth_client_id.is_not(None))
        if expired:
            stmt = stmt.where(_S.c.not_after <= utc_now(now))
        stmt = stmt.order_by(_S.c.created_at.desc(), _S.c.id).limit(limit)
        with self._auto.connect() as c:
            return [session_from_row(r) for r in c.execute(stmt)]

    # -- rotation (the refresh path lives in rotation.py) ---------------------------------

    def rotate(
        self, refresh_token: str, *, client_id: uuid.UUID | None, scope: str | None = None,
        user_agent: str | None = None, ip: str | None = None,
        client_min_aal: Aal | None = None, dpop_jkt: str | None = None,
        resources: tuple[str, ...] = (), audience: AudienceRule | None = None,
        resource_min_aal: ResourceMinAal | None = None,
        now: datetime | None = None,
    ) -> RotationResult:
        """Exchange a refresh token for the next one (rules: :mod:`oauth_sessions.storage.rotation`).

        ``dpop_jkt`` is the thumbprint of the request's verified DPoP proof, if it had one; a
        bound session's token is refused without it or with another (RFC 9449 section 5).

        ``client_id`` is the authenticated client (``None`` for a first-party session);
        ``scope`` an optional narrowing (RFC 6749 section 6); ``client_min_aal`` the client's
        minimum aal; ``resources`` the RFC 8707 resources the request names, and ``audience``
        the rule that picks the new token's audience from them and the session's grant
        (:class:`~oauth_sessions.storage.rotation.AudienceRule`), ``resource_min_aal`` the
        registered resource servers' minimum aal for that audience. Raises a domain error from
        :mod:`oauth_sessions.core.errors`; every error except
        :class:`~oauth_sessions.core.errors.RefreshTokenReused` leaves the database untouched.
        """
        return self._rotator.rotate(refresh_token, client_id=client_id, scope=scope,
                                    user_agent=user_agent, ip=ip, client_min_aal=client_min_aal,
                                    dpop_jkt=dpop_jkt, resources=resources, audience=audience,
                                    resource_min_aal=resource_min_aal, now=now)

    def find_refresh_session(self, refresh_token: str) -> RefreshTokenLookup | None:
        """Which session and counter this refresh token names, without changing anything.

        The one read for every caller that must not rotate: introspection (RFC 7662 section
        2.2), revocation (RFC 7009 section 2.1), the CLI. ``None`` unless the token is
        well-formed, its session exists and its tag verifies (in constant time) under the
        session's key, so a forged token learns nothing. A verified but superseded token comes
        back with ``is_current`` False: the caller decides what an old token may still do.
        One primary-key SELECT (prepared, on PostgreSQL), the same as the first step of
        :meth:`rotate`.
        """
        return self._rotator.find_refresh_session(refresh_token)

    # -- assurance level -----------------------------------------------------------------

    def step_up(self, session_id: uuid.UUID, *, aal: Aal, factor_id: uuid.UUID | None,
                method: str, now: datetime | None = None) -> IssuedSession:
        """Raise the session to ``aal`` after an MFA verification and return its new token.

        The counter advances by two in one atomic ``UPDATE`` (see the module docstring), so
        no token from before the step-up can ever yield tokens at the new level. ``method``
        (e.g. ``"totp"``) is recorded in ``mfa_amr_claims`` with the time of verification.
        A re-verification at the current level advances the counter the same way; lowering
        is refused (``set_aal``). Raises ``UnknownSession``, ``SessionExpired`` or
        ``SessionInactive`` and then changes nothing.
        """
        now = utc_now(now)
        with self._engine.begin() as conn:
            current = self.get(session_id, conn=conn)
            if current is None or current.counter is None:
                raise UnknownSession()
            check_active(current, now, self.settings.inactivity_timeout)
            if Aal(aal) < current.aal:
                raise ValueError("step_up cannot lower the aal; use set_aal")
            stmt = (update(_S).where(_S.c.id == session_id, NOT_EXPIRED_AT_B_NOW)
                    .values(refresh_token_counter=_S.c.refresh_token_counter + 2, aal=Aal(aal),
                            factor_id=factor_id, updated_at=now)
                    .returning(*SESSION_COLUMNS, _S.c.refresh_token_hmac_key.label("hmac_key")))
            row = conn.execute(stmt, {"b_now": now}).first()
            if row is None:
                raise SessionExpired()
            claim = update(_A).where(_A.c.session_id == session_id,
                                     _A.c.authentication_method == method).values(updated_at=now)
            if conn.execute(claim).rowcount == 0:
                conn.execute(insert(_A).values(id=uuid.uuid4(), session_id=session_id, created_at=now,
                                               updated_at=now, authentication_method=method))
            # A bound session stays bound: its new token must not be an unbound one.
            bound = self._bindings.jkt(session_id, conn=conn) is not None
        info = session_from_row(row)
        key = key_bytes(self._box.decrypt(row.hmac_key, context=session_id.bytes))
        signals.session_stepped_up.send(self.sender, session=info)
        return IssuedSession(info, encode_refresh_token(session_id, row.counter, key,
                                                        dpop_bound=bound))

    def set_aal(self, session_id: uuid.UUID, aal: Aal, *,
                now: datetime | None = None) -> SessionInfo | None:
        """Set the aal, typically lower it when a factor is removed.

        Lowering needs no new token: tokens carry the aal they were issued with and the
        effective aal is the lower of that and the session's (``policy.effective_aal``).
        Raising must go through :meth:`step_up`, which invalidates the older tokens.
        """
        now = utc_now(now)
        aal = Aal(aal)
        with self._engine.begin() as conn:
            before = self.get(session_id, conn=conn)
            if before is None:
                return None
            if aal > before.aal:
                raise ValueError("set_aal cannot raise the aal; use step_up")
            values: dict[str, Any] = {"aal": aal, "updated_at": now}
            if aal == Aal.AAL1:
                values["factor_id"] = None
            row = conn.execute(update(_S).where(_S.c.id == session_id).values(values)
                               .returning(*SESSION_COLUMNS)).first()
        if row is None:
            return None
        info = session_from_row(row)
        if aal < before.aal:
            signals.session_downgraded.send(self.sender, session=info)
        return info

    # -- revocation and housekeeping -----------------------------------------------------

    def revoke(self, session_id: uuid.UUID, *, reason: str) -> bool:
        """End one session; its amr claims and legacy refresh tokens go by cascade."""
        return self._revoke_where(_S.c.id == session_id, reason=reason) == 1

    def revoke_user(self, user_id: uuid.UUID, *, except_session: uuid.UUID | None = None,
                    reason: str, first_party: bool = False) -> int:
        """End the user's OAuth sessions, or all but ``except_session`` ("sign out elsewhere").

        First-party sessions (``oauth_client_id`` NULL: on a Supabase database, Supabase
        Auth's own sign-ins) are left alone unless ``first_party`` is True, which ends every
        session of the user.
        """
        condition = _S.c.user_id == user_id
        if not first_party:
            condition = condition & _S.c.oauth_client_id.is_not(None)
        if except_session is not None:
            condition = condition & (_S.c.id != except_session)
        return self._revoke_where(condition, reason=reason)

    def revoke_client(self, client_id: uuid.UUID, *, reason: str,
                      conn: Connection | None = None) -> int:
        """End every session of a client; given ``conn``, inside the caller's transaction."""
        return self._revoke_where(_S.c.oauth_client_id == client_id, reason=reason, conn=conn)

    def revoke_user_client(self, user_id: uuid.UUID, client_id: uuid.UUID, *, reason: str) -> int:
        return self._revoke_where((_S.c.user_id == user_id) & (_S.c.oauth_client_id == client_id),
                                  reason=reason)

    def _revoke_where(self, condition: Any, *, reason: str, conn: Connection | None = None) -> int:
        with self._transaction(conn) as c:
            revoked = [session_from_row(r) for r in c.execute(delete(_S).where(condition)
                                                   .returning(*SESSION_COLUMNS))]
        sender = self.sender

        def send() -> None:
            for info in revoked:
                signals.session_revoked.send(sender, session=info, reason=reason)

        when_committed(conn, send)
        return len(revoked)

    def set_tag(self, session_id: uuid.UUID, tag: str | None) -> bool:
        with self._engine.begin() as conn:
            result = conn.execute(update(_S).where(_S.c.id == session_id).values(tag=tag))
        return result.rowcount == 1

    def rewrap_keys(self, *, batch_size: int = 500, first_party: bool = False) -> int:
        """Re-encrypt session HMAC keys, in the form each session's other reader can read.

        For after ``ENCRYPTION_KEY_ID`` (or ``SUPABASE_ENCRYPTION_KEY_ID``) changed, or
        encryption was switched on: rows are walked by primary key in batches, each its own
        transaction, and every update is a compare-and-swap on the old value so a concurrent
        change is never overwritten. The keys themselves do not change, so every live refresh
        token keeps working. Returns the number of rows rewritten.

        Only sessions of OAuth clients are touched unless ``first_party`` is True: a
        first-party session (``oauth_client_id`` NULL) is read by whoever signed the user in
        (on a Supabase database, Supabase Auth). The form written follows
        :meth:`~oauth_sessions.storage.key_encryption.SecretBox.rewrap`: a key in Supabase
        Auth's ``aes-gcm-hkdf`` JSON form never becomes ``enc1:``; a plain first-party key
        becomes Supabase's form (given a current Supabase root key), stays plain on a database
        Supabase Auth manages, and becomes ``enc1:`` only on a database nobody else reads.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        column = _S.c.refresh_token_hmac_key
        rewritten, after = 0, None
        scope: Any = column.is_not(None)
        if not first_party:
            scope = scope & _S.c.oauth_client_id.is_not(None)
        with self._engine.connect() as conn:
            managed = is_supabase_managed(conn)
        while True:
            stmt = (select(_S.c.id, column, _S.c.oauth_client_id).where(scope)
                    .order_by(_S.c.id).limit(batch_size))
            if after is not None:
                stmt = stmt.where(_S.c.id > after)
            with self._engine.begin() as conn:
                rows = conn.execute(stmt).all()
                for row in rows:
                    session_id, stored = row.id, row.refresh_token_hmac_key
                    new = self._box.rewrap(stored, context=session_id.bytes,
                                           first_party=row.oauth_client_id is None,
                                           managed=managed)
                    if new is None:
                        continue
                    rewritten += conn.execute(update(_S).where(_S.c.id == session_id, column == stored)
                                              .values(refresh_token_hmac_key=new)).rowcount
            if len(rows) < batch_size:
                return rewritten
            after = rows[-1].id

    def purge_expired(self, *, batch_size: int = 1000, now: datetime | None = None,
                      first_party: bool = False) -> int:
        """Delete OAuth sessions past ``not_after`` in batches of ``batch_size``, each its own commit.

        Only sessions of OAuth clients (``oauth_client_id`` set) are purged unless
        ``first_party`` is True: first-party sessions belong to whoever signed the user in (on
        a Supabase database, Supabase Auth, whose own cleanup removes them).

        Batches keep lock time and WAL bursts bounded on a table of millions of rows; the
        inner ``SELECT`` walks ``sessions_not_after_idx``. Sends no signals: these sessions
        already ended. Sessions ended only by inactivity are left (no index can find them).
        On PostgreSQL the batch is picked ``FOR UPDATE SKIP LOCKED``: a row some other
        transaction holds is left for the next run instead of making the purge wait, and two
        purges running at once split the work instead of queueing behind each other.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        now = utc_now(now)
        expired: Any = _S.c.not_after <= now
        if not first_party:
            expired = expired & _S.c.oauth_client_id.is_not(None)
        batch = (select(_S.c.id).where(expired).order_by(_S.c.not_after)
                 .limit(batch_size).with_for_update(skip_locked=True))
        total = 0
        while True:
            with self._engine.begin() as conn:
                deleted = conn.execute(delete(_S).where(_S.c.id.in_(batch.scalar_subquery()))).rowcount
            total += deleted
            if deleted < batch_size:
                return total

    def _transaction(self, conn: Connection | None) -> Any:
        if conn is not None:
            return _Borrowed(conn)
        return self._engine.begin()


class _Borrowed:
    """Use a caller's connection inside ``with`` without committing or closing it."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __enter__(self) -> Connection:
        return self._conn

    def __exit__(self, *exc: object) -> None:
        return None
