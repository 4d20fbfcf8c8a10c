"""``flask oauth-sessions`` session commands: an operator lists and ends sessions of any user.

First-party sessions (``oauth_client_id`` NULL: on Supabase, Supabase Auth's own sign-ins) are
left alone unless ``--first-party`` says otherwise, as in the library's ``revoke_user``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import create_client, create_user, make_app
from freezegun import freeze_time
from sqlalchemy import Engine

from oauth_sessions import Aal, get_state
from oauth_sessions.core import signals
from oauth_sessions.flask.cli import cli

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
SESSION_KEYS = {"id", "user_id", "client_id", "client_name", "scopes", "aal", "ip", "user_agent",
                "tag", "created_at", "refreshed_at", "not_after", "first_party", "expired"}


class Operator:
    def __init__(self, engine: Engine) -> None:
        self.app = make_app(engine)
        self.store = get_state(self.app).services.sessions
        self.photos, _ = create_client(self.app, name="PhotoPrint", scopes="openid profile")
        self.notes, _ = create_client(self.app, name="Notes", scopes="openid profile")
        self.alice, self.bob = create_user(engine), create_user(engine)

    def session(self, user: uuid.UUID, client: Any, **options: Any) -> uuid.UUID:
        issued = self.store.create_session(
            user_id=user, client_id=None if client is None else client.id,
            scopes="openid profile", aal=Aal.AAL1, amr=["password"], **options)
        return issued.session.id  # type: ignore[no-any-return]

    def run(self, *args: str) -> Any:
        return self.app.test_cli_runner().invoke(args=["oauth-sessions", *args])

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    def alive(self, session_id: uuid.UUID) -> bool:
        return self.store.get(session_id) is not None


@pytest.fixture
def op(engine: Engine) -> Operator:
    return Operator(engine)


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


# --------------------------------------------------------------------------- list-sessions


def test_list_sessions_filters_by_user_and_by_client_newest_first(op: Operator) -> None:
    a1 = op.session(op.alice, op.photos, now=T0)
    a2 = op.session(op.alice, op.notes, now=T0 + timedelta(minutes=1))
    b1 = op.session(op.bob, op.photos, now=T0 + timedelta(minutes=2))
    assert _ids(op.json("list-sessions")) == [str(b1), str(a2), str(a1)]
    assert _ids(op.json("list-sessions", "--user", str(op.alice))) == [str(a2), str(a1)]
    assert _ids(op.json("list-sessions", "--client", str(op.photos.client_id))) == [str(b1), str(a1)]
    both = op.json("list-sessions", "--user", str(op.alice), "--client", str(op.photos.client_id))
    assert _ids(both) == [str(a1)]
    assert _ids(op.json("list-sessions", "--limit", "1")) == [str(b1)]


def test_list_sessions_json_shape(op: Operator) -> None:
    sid = op.session(op.alice, op.photos, now=T0, ip="192.0.2.7", user_agent="Firefox",
                     host_not_after=T0 + timedelta(hours=1))
    with freeze_time(T0 + timedelta(minutes=5)):
        [row] = op.json("list-sessions")
    assert set(row) == SESSION_KEYS
    assert row["id"] == str(sid) and row["user_id"] == str(op.alice)
    assert row["client_id"] == str(op.photos.client_id) and row["client_name"] == "PhotoPrint"
    assert row["scopes"] == ["openid", "profile"] and row["aal"] == "aal1"
    assert row["ip"] == "192.0.2.7" and row["user_agent"] == "Firefox"
    assert row["created_at"] == T0.isoformat()
    assert row["not_after"] == (T0 + timedelta(hours=1)).isoformat()
    assert row["first_party"] is False and row["expired"] is False
    assert "refresh_token_hmac_key" not in json.dumps(row)


def test_list_sessions_text_is_one_line_per_session(op: Operator) -> None:
    sid = op.session(op.alice, op.photos, now=T0, host_not_after=T0 + timedelta(hours=1))
    with freeze_time(T0 + timedelta(hours=2)):
        result = op.run("list-sessions")
    assert result.exit_code == 0
    assert result.output == (
        f"{sid}  user {op.alice}  PhotoPrint ({op.photos.client_id})  aal1  "
        f"created 2026-11-25T08:00:00+00:00  expires 2026-11-25T09:00:00+00:00  EXPIRED\n")
    assert op.run("list-sessions", "--user", str(op.bob)).output == "no sessions\n"


def test_list_sessions_expired_at_the_exact_not_after(op: Operator) -> None:
    end = T0 + timedelta(hours=1)
    ends_now = op.session(op.alice, op.photos, now=T0, host_not_after=end)
    ends_later = op.session(op.alice, op.photos, now=T0,
                            host_not_after=end + timedelta(microseconds=1))
    with freeze_time(end - timedelta(microseconds=1)):
        assert op.json("list-sessions", "--expired") == []
    with freeze_time(end):
        rows = op.json("list-sessions", "--expired")
        assert _ids(rows) == [str(ends_now)] and rows[0]["expired"] is True
        flags = {r["id"]: r["expired"] for r in op.json("list-sessions")}
        assert flags == {str(ends_now): True, str(ends_later): False}


def test_list_sessions_leaves_first_party_out_unless_asked(op: Operator) -> None:
    oauth = op.session(op.alice, op.photos, now=T0)
    own = op.session(op.alice, None, now=T0 + timedelta(minutes=1))
    assert _ids(op.json("list-sessions", "--user", str(op.alice))) == [str(oauth)]
    rows = op.json("list-sessions", "--user", str(op.alice), "--first-party")
    assert _ids(rows) == [str(own), str(oauth)]
    assert rows[0]["first_party"] is True and rows[0]["client_id"] is None
    text = op.run("list-sessions", "--first-party").output.splitlines()
    assert "  first-party  " in text[0]


def test_list_sessions_bad_input_is_one_line(op: Operator) -> None:
    unknown = uuid.uuid4()
    result = op.run("list-sessions", "--user", str(unknown))
    assert (result.exit_code, result.output) == (1, f"Error: no user with id {unknown}\n")
    result = op.run("list-sessions", "--client", str(unknown))
    assert (result.exit_code, result.output) == (1, f"Error: no client with id {unknown}\n")
    result = op.run("list-sessions", "--user", "alice")
    assert result.exit_code == 2
    assert result.output == ("Error: 'alice' is not a user id (a UUID such as "
                             "0b5f8e2c-8d1e-4c39-9a7e-2f1d6c3b4a50)\n")


# --------------------------------------------------------------------------- revoke-session


def test_revoke_session_ends_exactly_that_session_and_signals(op: Operator) -> None:
    target = op.session(op.alice, op.photos)
    other = op.session(op.alice, op.photos)
    seen: list[tuple[uuid.UUID, str]] = []

    def on_revoked(_sender: object, session: Any, reason: str) -> None:
        seen.append((session.id, reason))

    with signals.session_revoked.connected_to(on_revoked):
        assert op.json("revoke-session", str(target)) == {"session_id": str(target), "revoked": 1}
    assert seen == [(target, "operator_revoked")]
    assert not op.alive(target) and op.alive(other)
    result = op.run("revoke-session", str(other))
    assert (result.exit_code, result.output) == (0, f"revoked session {other}\n")


def test_revoke_session_unknown_or_malformed_id(op: Operator) -> None:
    unknown = uuid.uuid4()
    result = op.run("revoke-session", str(unknown))
    assert (result.exit_code, result.output) == (1, f"Error: no session with id {unknown}\n")
    result = op.run("revoke-session", "12345")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "'12345' is not a session id" in result.output


def test_revoke_session_refuses_a_first_party_session_without_the_flag(op: Operator) -> None:
    own = op.session(op.alice, None)
    result = op.run("revoke-session", str(own))
    assert result.exit_code == 1
    assert result.output == (f"Error: session {own} is first-party (oauth_client_id NULL); "
                             f"add --first-party to end it\n")
    assert op.alive(own)
    assert op.json("revoke-session", str(own), "--first-party")["revoked"] == 1
    assert not op.alive(own)


# --------------------------------------------------------------------------- revoke-user


def test_revoke_user_ends_their_oauth_sessions_only(op: Operator) -> None:
    a1, a2 = op.session(op.alice, op.photos), op.session(op.alice, op.notes)
    own = op.session(op.alice, None)
    bobs = op.session(op.bob, op.photos)
    body = op.json("revoke-user", str(op.alice))
    assert body == {"user_id": str(op.alice), "revoked": 2, "first_party": False}
    assert not op.alive(a1) and not op.alive(a2)
    assert op.alive(own) and op.alive(bobs)
    result = op.run("revoke-user", str(op.alice), "--first-party")
    assert result.exit_code == 0
    assert result.output == f"revoked 1 session of user {op.alice}\n"
    assert not op.alive(own) and op.alive(bobs)
    result = op.run("revoke-user", str(op.bob))
    assert result.output == f"revoked 1 session of user {op.bob} (first-party sessions kept)\n"


def test_revoke_user_unknown_user(op: Operator) -> None:
    op.session(op.alice, op.photos)
    unknown = uuid.uuid4()
    result = op.run("revoke-user", str(unknown))
    assert (result.exit_code, result.output) == (1, f"Error: no user with id {unknown}\n")
    assert op.json("list-sessions") != []


# --------------------------------------------------------------------------- revoke-client-sessions


def test_revoke_client_sessions_ends_every_user_of_that_client(op: Operator) -> None:
    a = op.session(op.alice, op.photos)
    b = op.session(op.bob, op.photos)
    notes = op.session(op.alice, op.notes)
    body = op.json("revoke-client-sessions", str(op.photos.client_id))
    assert body == {"client_id": str(op.photos.client_id), "revoked": 2}
    assert not op.alive(a) and not op.alive(b) and op.alive(notes)
    assert get_state(op.app).services.clients.get(op.photos.client_id, fresh=True) is not None
    result = op.run("revoke-client-sessions", str(op.notes.client_id))
    assert result.output == f"revoked 1 session of client {op.notes.client_id}\n"


def test_revoke_client_sessions_unknown_client(op: Operator) -> None:
    unknown = uuid.uuid4()
    result = op.run("revoke-client-sessions", str(unknown))
    assert (result.exit_code, result.output) == (1, f"Error: no client with id {unknown}\n")


# --------------------------------------------------------------------------- help texts


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*path, name))
        if hasattr(command, "commands"):
            found += _commands(command, (*path, name))
    return found


@pytest.mark.parametrize("path", _commands(cli), ids=" ".join)
def test_help_texts_have_no_rest_markup(path: tuple[str, ...], sqlite_engine: Engine) -> None:
    result = make_app(sqlite_engine).test_cli_runner().invoke(
        args=["oauth-sessions", *path, "--help"])
    assert result.exit_code == 0, result.output
    for markup in ("``", ":class:", ":meth:", ":func:", ":data:", ":mod:"):
        assert markup not in result.output, f"{' '.join(path)} --help shows {markup}"
