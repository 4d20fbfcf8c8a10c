"""The session management API: a user sees and ends only their own sessions (no IDOR)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import create_client, create_user, make_app
from flask import Flask, request
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import Engine, func, select

from oauth_sessions import Aal, get_state
from oauth_sessions.core import signals
from oauth_sessions.flask.management import management_blueprint, sessions_manager
from oauth_sessions.storage.models import User

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


class World:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.admins: set[uuid.UUID] = set()
        self.app = make_app(engine)

        def authenticate() -> uuid.UUID | None:
            value = request.headers.get("X-Test-User")
            return uuid.UUID(value) if value else None

        def current() -> uuid.UUID | None:
            value = request.headers.get("X-Test-Session")
            return uuid.UUID(value) if value else None

        self.app.register_blueprint(
            management_blueprint(authenticate=authenticate, current_session=current,
                                 is_admin=lambda user: user in self.admins),
            url_prefix="/account")
        self.http: FlaskClient = self.app.test_client()
        self.store = get_state(self.app).components["sessions"]
        self.client, _ = create_client(self.app, name="Photo app", scopes="openid profile")
        self.alice, self.bob = create_user(engine), create_user(engine)

    def session(self, user: uuid.UUID, client: Any = None, **options: Any) -> uuid.UUID:
        client_id = None if client is False else (client or self.client).id
        issued = self.store.create_session(user_id=user, client_id=client_id,
                                           scopes="openid profile", aal=Aal.AAL1,
                                           amr=["password"], **options)
        return issued.session.id  # type: ignore[no-any-return]

    def call(self, method: str, path: str, user: uuid.UUID | None, *, body: Any = None,
             json_type: bool = True, current: uuid.UUID | None = None) -> Any:
        headers = {}
        if user is not None:
            headers["X-Test-User"] = str(user)
        if current is not None:
            headers["X-Test-Session"] = str(current)
        kwargs: dict[str, Any] = {"headers": headers}
        if method != "GET":
            kwargs["data"] = json.dumps(body if body is not None else {})
            kwargs["content_type"] = "application/json" if json_type else "text/plain"
        return self.http.open("/account" + path, method=method, **kwargs)

    def exists(self, session_id: uuid.UUID) -> bool:
        return self.store.get(session_id) is not None


@pytest.fixture
def world(engine: Engine) -> World:
    return World(engine)


def test_listing_shows_my_sessions_with_what_a_person_needs_to_recognise_them(world: World) -> None:
    with freeze_time(T0):
        mine = world.session(world.alice, user_agent="Firefox on Linux", ip="203.0.113.9")
    first_party = world.session(world.alice, client=False)
    world.session(world.bob)
    response = world.call("GET", "/sessions", world.alice, current=first_party)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    rows = {r["id"]: r for r in response.json["sessions"]}
    assert set(rows) == {str(mine), str(first_party)}
    row = rows[str(mine)]
    assert row["client_name"] == "Photo app" and row["client_id"] == world.client.client_id
    assert row["scopes"] == ["openid", "profile"] and row["aal"] == "aal1"
    assert row["ip"] == "203.0.113.9" and row["user_agent"] == "Firefox on Linux"
    assert row["created_at"] == T0.isoformat() and row["refreshed_at"] is None
    assert row["not_after"] == (T0 + timedelta(days=30)).isoformat()
    assert row["current"] is False and rows[str(first_party)]["current"] is True
    assert "refresh_token_hmac_key" not in json.dumps(response.json)


def test_anonymous_callers_get_401(world: World) -> None:
    sid = world.session(world.alice)
    for method, path in (("GET", "/sessions"), ("DELETE", f"/sessions/{sid}"),
                         ("POST", "/sessions/revoke-all")):
        response = world.call(method, path, None)
        assert response.status_code == 401 and response.json["error"] == "login_required"
    assert world.exists(sid)


def test_another_users_session_cannot_be_revoked_it_looks_missing(world: World) -> None:
    bobs = world.session(world.bob)
    response = world.call("DELETE", f"/sessions/{bobs}", world.alice)
    missing = world.call("DELETE", f"/sessions/{uuid.uuid4()}", world.alice)
    assert response.status_code == missing.status_code == 404
    assert response.json == missing.json  # indistinguishable from a session that does not exist
    assert world.exists(bobs)
    assert world.call("DELETE", f"/sessions/{bobs}", world.bob).status_code == 204
    assert not world.exists(bobs)


def test_another_users_session_cannot_be_tagged(world: World) -> None:
    bobs = world.session(world.bob)
    response = world.call("PATCH", f"/sessions/{bobs}", world.alice, body={"tag": "mine now"})
    assert response.status_code == 404 and world.store.get(bobs).tag is None
    ok = world.call("PATCH", f"/sessions/{bobs}", world.bob, body={"tag": "work laptop"})
    assert ok.status_code == 200 and ok.json["tag"] == "work laptop"
    assert world.store.get(bobs).tag == "work laptop"
    cleared = world.call("PATCH", f"/sessions/{bobs}", world.bob, body={"tag": None})
    assert cleared.json["tag"] is None and world.store.get(bobs).tag is None


@pytest.mark.parametrize("body", [{"tag": "x" * 256}, {"tag": 5}, {}, {"tag": "a", "aal": "aal2"},
                                  ["tag"]])
def test_bad_tag_bodies_are_invalid_request_and_change_nothing(world: World, body: Any) -> None:
    sid = world.session(world.alice)
    response = world.call("PATCH", f"/sessions/{sid}", world.alice, body=body)
    assert response.status_code == 400 and response.json["error"] == "invalid_request"
    assert world.store.get(sid).tag is None


def test_a_tag_of_exactly_255_characters_is_accepted(world: World) -> None:
    sid = world.session(world.alice)
    assert world.call("PATCH", f"/sessions/{sid}", world.alice,
                      body={"tag": "x" * 255}).status_code == 200


@pytest.mark.parametrize("method,path", [("DELETE", "/sessions/{sid}"),
                                         ("POST", "/sessions/revoke-all"),
                                         ("POST", "/sessions/revoke-others"),
                                         ("PATCH", "/sessions/{sid}")])
def test_writes_must_be_json_so_a_cross_site_form_cannot_forge_them(world: World, method: str,
                                                                    path: str) -> None:
    sid = world.session(world.alice)
    response = world.call(method, path.format(sid=sid), world.alice, body={"tag": "t"},
                          json_type=False, current=sid)
    assert response.status_code == 415
    assert world.exists(sid) and world.store.get(sid).tag is None


def test_revoke_all_ends_only_my_sessions(world: World) -> None:
    mine = [world.session(world.alice), world.session(world.alice, client=False)]
    bobs = world.session(world.bob)
    response = world.call("POST", "/sessions/revoke-all", world.alice)
    assert response.status_code == 200 and response.json == {"revoked": 2}
    assert not any(world.exists(s) for s in mine) and world.exists(bobs)


def test_revoke_others_keeps_the_current_session(world: World) -> None:
    current, other = world.session(world.alice), world.session(world.alice)
    bobs = world.session(world.bob)
    assert world.call("POST", "/sessions/revoke-others", world.alice).status_code == 400
    assert world.exists(other)
    response = world.call("POST", "/sessions/revoke-others", world.alice, current=current)
    assert response.json == {"revoked": 1}
    assert world.exists(current) and not world.exists(other) and world.exists(bobs)


def test_revoking_a_clients_sessions_is_for_administrators_only(world: World) -> None:
    sessions = [world.session(world.alice), world.session(world.bob)]
    other_client, _ = create_client(world.app, name="Other")
    untouched = world.session(world.alice, client=other_client)
    path = f"/clients/{world.client.client_id}/revoke-sessions"
    denied = world.call("POST", path, world.alice)
    assert denied.status_code == 403 and all(world.exists(s) for s in sessions)
    world.admins.add(world.alice)
    assert world.call("POST", f"/clients/{uuid.uuid4()}/revoke-sessions", world.alice).status_code == 404
    assert world.call("POST", path, world.alice).json == {"revoked": 2}
    assert not any(world.exists(s) for s in sessions) and world.exists(untouched)
    assert get_state(world.app).components["clients"].get(world.client.id, fresh=True) is not None


def test_the_python_api_refuses_other_users_sessions_too(world: World) -> None:
    manager = sessions_manager(world.app)
    bobs = world.session(world.bob)
    assert manager.revoke(world.alice, bobs) is False and world.exists(bobs)
    assert manager.set_tag(world.alice, bobs, "x") is False
    assert [v.id for v in manager.list_sessions(world.bob)] == [bobs]
    assert manager.list_sessions(world.alice) == []


def test_end_user_announces_every_session_then_deletes_the_user(world: World) -> None:
    sids = {world.session(world.alice), world.session(world.alice, client=False)}
    bobs = world.session(world.bob)
    seen: list[tuple[uuid.UUID, str]] = []

    def record(sender: Flask, *, session: Any, reason: str) -> None:
        assert sender is world.app
        seen.append((session.id, reason))

    with signals.session_revoked.connected_to(record):
        assert sessions_manager(world.app).end_user(world.alice, delete_user=True) == 2
    assert sorted(seen) == sorted((s, "user_deleted") for s in sids)
    with world.engine.connect() as conn:
        users = conn.execute(select(func.count()).select_from(User.__table__)
                             .where(User.__table__.c.id == world.alice)).scalar()
    assert users == 0 and world.exists(bobs)
