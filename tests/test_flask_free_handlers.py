"""The registration and logout handlers know no Flask (issue 16).

Each is called here with a request value built by hand, outside any Flask app or request
context, over the stores of a provider on SQLite and PostgreSQL; the logout handler talks to a
host that is not a ``HostAdapter`` at all, only what :class:`~oauth_sessions.protocol.logout.LogoutHost`
asks for. The Flask app is used only to set the provider up.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import flask
import pytest
from factories import create_client, create_user, exchange_code, make_app, obtain_code, pkce_pair, query_of
from sqlalchemy import Engine

from oauth_sessions import get_state
from oauth_sessions.protocol.http import FORM, Answer, HttpRequest
from oauth_sessions.protocol.logout import LogoutConfirmation, LogoutEndpoint, LogoutOutcome
from oauth_sessions.protocol.registration import RegistrationEndpoint

BYE = "https://client.example/bye"
ACTION = "/mounted/oauth/logout"


@dataclass(frozen=True)
class Who:
    user_id: uuid.UUID


@dataclass
class PlainHost:
    """A host with pages of its own kind (tuples), no Flask anywhere."""

    signed_in: uuid.UUID | None = None
    ended: list[uuid.UUID] = field(default_factory=list)

    def current_authentication(self) -> Who | None:
        return Who(self.signed_in) if self.signed_in is not None else None

    def logout(self, user_id: uuid.UUID) -> None:
        self.ended.append(user_id)

    def confirm_logout(self, confirmation: LogoutConfirmation) -> tuple[str, Any]:
        return ("confirm", confirmation)

    def logged_out(self, outcome: LogoutOutcome) -> tuple[str, Any]:
        return ("logged out", outcome)


def _get(**params: str) -> HttpRequest:
    return HttpRequest("GET", {}, query=tuple(params.items()))


def _post(**params: str) -> HttpRequest:
    return HttpRequest("POST", {"content-type": FORM}, form=tuple(params.items()), mimetype=FORM)


@pytest.fixture
def signed_in(engine: Engine) -> tuple[LogoutEndpoint[tuple[str, Any]], PlainHost, Any, Any]:
    app = make_app(engine)
    client, secret = create_client(app, post_logout_redirect_uris=[BYE])
    http, user = app.test_client(), create_user(engine)
    verifier, challenge = pkce_pair()
    tokens = exchange_code(http, client, secret, obtain_code(http, client, user, challenge)["code"],
                           verifier).json
    state = get_state(app)
    host = PlainHost()
    endpoint = LogoutEndpoint(settings=state.settings, keys=state.services.keys,
                              clients=state.services.clients, sessions=state.services.sessions,
                              host=host, secret_key=lambda: "a-secret-of-this-test")
    return endpoint, host, (client, user, tokens), state.services.sessions


def test_logout_with_a_hint_ends_the_session_without_flask(signed_in: Any) -> None:
    endpoint, host, (_, user, tokens), sessions = signed_in
    host.signed_in = user
    sid = uuid.UUID(json.loads(_payload(tokens["id_token"]))["sid"])
    assert not flask.has_app_context() and not flask.has_request_context()
    answer = endpoint(_get(id_token_hint=tokens["id_token"], post_logout_redirect_uri=BYE,
                           state="s 1"), form_action=ACTION)
    assert isinstance(answer, Answer) and answer.status == 302
    assert query_of(answer.header("Location") or "") == {"state": "s 1"}
    assert answer.header("Cache-Control") == "no-store"
    assert sessions.get(sid) is None and host.ended == [user]


def test_logout_without_a_hint_asks_the_host_then_signs_out_on_the_ticket(signed_in: Any) -> None:
    endpoint, host, (client, user, _), _ = signed_in
    host.signed_in = user
    page = endpoint(_get(client_id=client.client_id, state="st"), form_action=ACTION)
    assert page[0] == "confirm" and page[1].action == ACTION and page[1].client.id == client.id
    fields = dict(page[1].form_fields)
    assert host.ended == []
    as_get = endpoint(_get(**fields, decision="logout"), form_action=ACTION)  # a ticket needs POST
    assert as_get[0] == "confirm" and host.ended == []
    host.signed_in = someone_else = uuid.uuid4()  # the ticket is bound to the signed-in user
    assert endpoint(_post(**fields, decision="logout"), form_action=ACTION)[0] == "confirm"
    assert someone_else not in host.ended
    host.signed_in = user
    done = endpoint(_post(**fields, decision="logout"), form_action=ACTION)
    assert done[0] == "logged out" and done[1].provider_signed_out is True
    assert host.ended == [user]


def test_a_hostile_logout_request_is_refused_by_the_handler_itself(signed_in: Any) -> None:
    endpoint, host, (_, user, tokens), sessions = signed_in
    host.signed_in = user
    twice = HttpRequest("GET", {}, query=(("id_token_hint", tokens["id_token"]),
                                          ("id_token_hint", tokens["id_token"])))
    answer = endpoint(twice, form_action=ACTION)
    assert isinstance(answer, Answer) and answer.status == 400
    assert json.loads(answer.body)["error"] == "invalid_request"
    forged = endpoint(_get(id_token_hint=tokens["id_token"][:-4] + "AAAA"), form_action=ACTION)
    assert isinstance(forged, Answer) and forged.status == 400
    assert host.ended == []
    sid = uuid.UUID(json.loads(_payload(tokens["id_token"]))["sid"])
    assert sessions.get(sid) is not None


def test_registration_and_management_without_flask(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    state = get_state(app)
    endpoint = RegistrationEndpoint(state.settings, state.services.clients, state.services.keys)
    body = json.dumps({"redirect_uris": ["https://rp.example/cb"], "client_name": "RP"}).encode()
    assert not flask.has_app_context()
    created = endpoint.register(HttpRequest("POST", {"content-type": "application/json"},
                                            mimetype="application/json", body=body,
                                            content_length=len(body)))
    assert created.status == 201 and created.header("Cache-Control") == "no-store"
    registered = json.loads(created.body)
    bearer = {"authorization": "Bearer " + registered["registration_access_token"]}
    read = endpoint.manage(HttpRequest("GET", bearer), registered["client_id"])
    assert read.status == 200 and json.loads(read.body)["client_name"] == "RP"
    stale = endpoint.manage(HttpRequest("GET", bearer), registered["client_id"])
    assert stale.status == 401  # the read replaced the token (RFC 7592 section 3)
    fresh = {"authorization": "Bearer " + json.loads(read.body)["registration_access_token"]}
    gone = endpoint.manage(HttpRequest("DELETE", fresh), registered["client_id"])
    assert gone.status == 204 and gone.body == b""
    assert state.services.clients.get(registered["client_id"], fresh=True) is None


def _payload(jwt: str) -> str:
    part = jwt.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()
