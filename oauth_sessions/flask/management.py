"""Sessions seen and controlled by the people and apps they belong to: a Python API and a JSON API.

:class:`SessionManager` is the Python API (``sessions_manager(app)``); every method that acts for
a user takes that user's id and touches only that user's sessions. :func:`management_blueprint`
is the same as JSON over HTTP, for the host to mount where it likes::

    app.register_blueprint(management_blueprint(authenticate=current_user_id,
                                                current_session=current_session_id,
                                                is_admin=is_admin),
                           url_prefix="/account")

============================================  ===============================================
``GET    /sessions``                          the acting user's sessions (newest first)
``PATCH  /sessions/<id>``  ``{"tag": ...}``   set or clear (``null``) the session's tag
``DELETE /sessions/<id>``                     end one session (404 unless it is the user's)
``POST   /sessions/revoke-all``               end all of the user's sessions
``POST   /sessions/revoke-others``            end all but the current one (``current_session``)
``POST   /clients/<client_id>/revoke-sessions``  admin: end every session of a client
============================================  ===============================================

Who is acting is the host's ``authenticate()`` callback (``None`` → 401); the library never
trusts a user id from the request. Another user's session answers 404 exactly like a missing
one, so session ids cannot be probed (no IDOR). CSRF: every write must be sent with
``Content-Type: application/json`` (415 otherwise). A browser sends that cross-site only after a
CORS preflight, which the host does not grant, so a forged form or image cannot reach a write;
hosts that enable CORS for this blueprint must add their own CSRF token.

Ending a user (:meth:`SessionManager.end_user`) collects and deletes the user's sessions before
``auth.users`` cascades, so every client is told through the back-channel: a plain
``DELETE FROM auth.users`` would end the sessions silently.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from flask import Blueprint, Flask, Response, g, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Table, delete, select

from ..core import signals
from ..core.client_rules import has_forbidden_characters
from ..storage.clients import ClientStore, parse_client_id
from ..storage.models import User
from ..storage.session_rows import SESSION_COLUMNS, SESSIONS, SessionInfo, session_from_row
from ..storage.sessions import SessionStore
from .state import get_state

__all__ = ["MAX_TAG_LENGTH", "SessionManager", "SessionView", "management_blueprint",
           "sessions_manager"]

MAX_TAG_LENGTH: Final = 255
_USERS = cast(Table, User.__table__)


@dataclass(frozen=True, slots=True)
class SessionView:
    """What a "your sessions" page shows of one session (no key, no counter)."""

    id: uuid.UUID
    client_id: uuid.UUID | None
    client_name: str | None
    scopes: tuple[str, ...]
    aal: str
    ip: str | None
    user_agent: str | None
    tag: str | None
    created_at: datetime
    refreshed_at: datetime | None
    not_after: datetime | None
    user_id: uuid.UUID | None = None  # set in an operator's listings, which span users

    def as_json(self, current: uuid.UUID | None = None) -> dict[str, Any]:
        """JSON-ready fields; ``current`` marks the session of the browser asking (``"current": true``)."""
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {"id": str(self.id), "client_id": None if self.client_id is None else str(self.client_id),
                "client_name": self.client_name, "scopes": list(self.scopes), "aal": self.aal,
                "ip": self.ip, "user_agent": self.user_agent, "tag": self.tag,
                "created_at": iso(self.created_at), "refreshed_at": iso(self.refreshed_at),
                "not_after": iso(self.not_after), "current": self.id == current}


class SessionManager:
    """The session lifecycle as the host calls it; every change goes through the store, so
    each ended session sends ``session_revoked`` (and reaches the back-channel)."""

    def __init__(self, sessions: SessionStore, clients: ClientStore) -> None:
        self._sessions = sessions
        self._clients = clients

    def list_sessions(self, user_id: uuid.UUID) -> list[SessionView]:
        """``user_id``'s sessions, newest first, each with its client's name (if any)."""
        return self._views(self._sessions.list_for_user(user_id))

    def _views(self, sessions: list[SessionInfo], *, with_user: bool = False) -> list[SessionView]:
        names: dict[uuid.UUID, str | None] = {}
        views = []
        for s in sessions:
            if s.client_id is not None and s.client_id not in names:
                client = self._clients.get(s.client_id)
                names[s.client_id] = client.name if client else None
            views.append(SessionView(
                id=s.id, client_id=s.client_id,
                client_name=names.get(s.client_id) if s.client_id is not None else None,
                scopes=s.scopes, aal=s.aal.value, ip=s.ip, user_agent=s.user_agent, tag=s.tag,
                created_at=s.created_at, refreshed_at=s.refreshed_at, not_after=s.not_after,
                user_id=s.user_id if with_user else None))
        return views

    # -- an operator's view: any user's sessions (the CLI; never behind a user's request) --

    def find_sessions(self, *, user_id: uuid.UUID | None = None,
                      client_id: uuid.UUID | None = None, expired: bool = False,
                      first_party: bool = False, limit: int = 100) -> list[SessionView]:
        """Sessions of any user, newest first, filtered by user, client and expiry
        (:meth:`~oauth_sessions.storage.sessions.SessionStore.find`); each view carries its
        ``user_id``. First-party sessions only with ``first_party``."""
        found = self._sessions.find(user_id=user_id, client_id=client_id, expired=expired,
                                    first_party=first_party, limit=limit)
        return self._views(found, with_user=True)

    def session(self, session_id: uuid.UUID) -> SessionView | None:
        """One session of any user, or ``None``."""
        info = self._sessions.get(session_id)
        return None if info is None else self._views([info], with_user=True)[0]

    def revoke_session(self, session_id: uuid.UUID, *, reason: str = "operator_revoked",
                       first_party: bool = False) -> bool:
        """End any user's session; ``False`` if there is none. A first-party session
        (``oauth_client_id`` NULL) is left alone, also ``False``, unless ``first_party``."""
        info = self._sessions.get(session_id)
        if info is None or (info.client_id is None and not first_party):
            return False
        return self._sessions.revoke(session_id, reason=reason)

    def user_exists(self, user_id: uuid.UUID) -> bool:
        """Whether ``auth.users`` has the user (an operator's typo is told apart from a user
        without sessions)."""
        with self._sessions.engine.connect() as conn:
            return conn.execute(select(_USERS.c.id).where(_USERS.c.id == user_id)).first() is not None

    def _owned(self, user_id: uuid.UUID, session_id: uuid.UUID) -> SessionInfo | None:
        info = self._sessions.get(session_id)
        return info if info is not None and info.user_id == user_id else None

    def revoke(self, user_id: uuid.UUID, session_id: uuid.UUID, *,
               reason: str = "user_revoked") -> bool:
        """End ``session_id`` if it is ``user_id``'s; ``False`` for anyone else's or none.

        A session never changes owner, so checking the owner before the delete is race-free.
        """
        if self._owned(user_id, session_id) is None:
            return False
        return self._sessions.revoke(session_id, reason=reason)

    def revoke_all(self, user_id: uuid.UUID, *, reason: str = "user_revoked_all",
                   first_party: bool = False) -> int:
        """"Sign out everywhere": end every OAuth session of ``user_id``; returns how many ended.

        First-party sessions (``oauth_client_id`` NULL) are included only with ``first_party``.
        """
        return self._sessions.revoke_user(user_id, reason=reason, first_party=first_party)

    def revoke_others(self, user_id: uuid.UUID, current: uuid.UUID, *,
                      reason: str = "user_revoked_others", first_party: bool = False) -> int:
        """"Sign out everywhere else": the user's OAuth sessions but ``current`` (and their
        first-party ones too with ``first_party``)."""
        return self._sessions.revoke_user(user_id, except_session=current, reason=reason,
                                          first_party=first_party)

    def revoke_client(self, client_id: uuid.UUID, *, reason: str = "client_sessions_revoked") -> int:
        """Every session of a client (an administrator's action; the client stays registered)."""
        return self._sessions.revoke_client(client_id, reason=reason)

    def set_tag(self, user_id: uuid.UUID, session_id: uuid.UUID, tag: str | None) -> bool:
        """Label one of ``user_id``'s sessions (``None`` clears it); ``False`` for anyone else's.

        ``ValueError`` for a tag that is not a string, is longer than ``MAX_TAG_LENGTH`` or
        holds a control character (NUL included) or a lone surrogate: PostgreSQL's text type
        and every UTF-8 encoder refuse those, and a tag is shown to people.
        """
        if tag is not None and (not isinstance(tag, str) or len(tag) > MAX_TAG_LENGTH):
            raise ValueError(f"tag must be a string of at most {MAX_TAG_LENGTH} characters")
        if tag is not None and has_forbidden_characters(tag):
            raise ValueError("tag must not contain control characters, NUL or lone surrogates")
        if self._owned(user_id, session_id) is None:
            return False
        return self._sessions.set_tag(session_id, tag)

    def end_user(self, user_id: uuid.UUID, *, delete_user: bool = False) -> int:
        """End all of a user's sessions, announcing each, before the user goes away.

        Call it *instead of* deleting the user's ``auth.users`` row yourself (``delete_user=True``
        deletes it here, in the same transaction as the sessions, so no session created in
        between can vanish unannounced by the cascade), or right before your own delete.
        Returns the number of sessions ended; their ``session_revoked`` signals (reason
        ``user_deleted``) are sent after the commit.
        """
        engine = self._sessions._engine
        with engine.begin() as conn:
            ended = [session_from_row(r) for r in conn.execute(
                delete(SESSIONS).where(SESSIONS.c.user_id == user_id).returning(*SESSION_COLUMNS))]
            if delete_user:
                conn.execute(delete(_USERS).where(_USERS.c.id == user_id))
        for info in ended:
            signals.session_revoked.send(self._sessions.sender, session=info, reason="user_deleted")
        return len(ended)


def sessions_manager(app: Flask | None = None) -> SessionManager:
    """The :class:`SessionManager` of ``app`` (default: the current app)."""
    services = get_state(app).services
    return SessionManager(services.sessions, services.clients)


# --------------------------------------------------------------------------- the JSON API


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status, {"Cache-Control": "no-store"},
                    mimetype="application/json")


def _error(error: str, description: str, status: int) -> Response:
    return _json({"error": error, "error_description": description}, status)


def _uuid(value: str) -> uuid.UUID | None:
    return parse_client_id(value.lower()) if isinstance(value, str) else None


def management_blueprint(
    *, authenticate: Callable[[], uuid.UUID | None],
    current_session: Callable[[], uuid.UUID | None] | None = None,
    is_admin: Callable[[uuid.UUID], bool] | None = None,
    name: str = "oauth_sessions_management",
) -> Blueprint:
    """The JSON management API (module docstring). ``is_admin(user_id)`` guards the
    client-wide revocation (absent: nobody may); ``current_session()`` names the session of
    this request for ``current`` in listings and for ``revoke-others``."""
    bp = Blueprint(name, __name__)

    @bp.before_request
    def _guard() -> Response | None:
        if request.method not in ("GET", "HEAD", "OPTIONS") and request.mimetype != "application/json":
            return _error("invalid_request", "writes must be sent as application/json", 415)
        user = authenticate()
        if user is None:
            return _error("login_required", "sign in to manage your sessions", 401)
        g.oauth_sessions_acting_user = user  # per request, never from the request's data
        return None

    def user() -> uuid.UUID:
        acting: uuid.UUID = g.oauth_sessions_acting_user
        return acting

    def current() -> uuid.UUID | None:
        return current_session() if current_session is not None else None

    @bp.get("/sessions")
    def list_sessions() -> ResponseReturnValue:
        mine = current()
        return _json({"sessions": [v.as_json(mine) for v in sessions_manager().list_sessions(user())]})

    @bp.route("/sessions/<session_id>", methods=["PATCH", "DELETE"])
    def one_session(session_id: str) -> ResponseReturnValue:
        sid = _uuid(session_id)
        manager = sessions_manager()
        if request.method == "DELETE":
            if sid is None or not manager.revoke(user(), sid):
                return _error("not_found", "no such session", 404)
            return Response(status=204, headers={"Cache-Control": "no-store"})
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or set(body) != {"tag"}:
            return _error("invalid_request", 'the body must be {"tag": string or null}', 400)
        try:
            changed = sid is not None and manager.set_tag(user(), sid, body["tag"])
        except ValueError as exc:
            return _error("invalid_request", str(exc), 400)
        if not changed or sid is None:
            return _error("not_found", "no such session", 404)
        view = next((v for v in manager.list_sessions(user()) if v.id == sid), None)
        return _json(view.as_json(current())) if view else _error("not_found", "no such session", 404)

    @bp.post("/sessions/revoke-all")
    def revoke_all() -> ResponseReturnValue:
        # The signed-in user asked to sign out everywhere: first-party sign-ins too (a deleted
        # row is how Supabase Auth signs a session out as well, so it can read the result).
        return _json({"revoked": sessions_manager().revoke_all(user(), first_party=True)})

    @bp.post("/sessions/revoke-others")
    def revoke_others() -> ResponseReturnValue:
        mine = current()
        if mine is None:
            return _error("invalid_request", "the current session is not known", 400)
        return _json({"revoked": sessions_manager().revoke_others(user(), mine,
                                                                  first_party=True)})

    @bp.post("/clients/<client_id>/revoke-sessions")
    def revoke_client(client_id: str) -> ResponseReturnValue:
        if is_admin is None or not is_admin(user()):
            return _error("access_denied", "only an administrator may do this", 403)
        parsed = _uuid(client_id)
        if parsed is None or get_state().services.clients.get(parsed, fresh=True) is None:
            return _error("not_found", "no such client", 404)
        return _json({"revoked": sessions_manager().revoke_client(parsed)})

    return bp
