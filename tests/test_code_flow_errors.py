"""Hostile and malformed token requests: the RFC 6749 error, the right status, nothing written."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from factories import (
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
    snapshot,
    user_headers,
)
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from oauth_sessions.storage.clients import ClientInfo
from oauth_sessions.storage.models import Session


class Flow:
    """One pending code of a confidential client, ready to be exchanged."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.app: Flask = make_app(engine)
        self.http: FlaskClient = self.app.test_client()
        client, secret = create_client(self.app)
        assert secret is not None
        self.client: ClientInfo = client
        self.secret: str = secret
        self.user = create_user(engine)
        self.verifier, challenge = pkce_pair()
        self.code = obtain_code(self.http, client, self.user, challenge)["code"]

    def form(self, **changes: str | None) -> dict[str, str]:
        data = {"grant_type": "authorization_code", "code": self.code,
                "redirect_uri": self.client.redirect_uris[0], "code_verifier": self.verifier}
        data.update({k: v for k, v in changes.items() if v is not None})
        return {k: v for k, v in data.items() if changes.get(k, "") is not None}

    def post(self, data: Any, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        if headers is None:
            headers = {"Authorization": basic_auth(self.client.client_id, self.secret)}
        return self.http.post("/oauth/token", data=data, headers=headers, **kwargs)


@pytest.fixture
def flow(engine: Engine) -> Flow:
    return Flow(engine)


def _refused(flow: Flow, response: Any, status: int, error: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["error"] == error
    assert response.json.get("error_description")
    assert response.headers["Cache-Control"] == "no-store"
    with flow.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Session.__table__)).scalar() == 0


@pytest.mark.parametrize(("changes", "error"), [
    ({"code_verifier": "A" * 43}, "invalid_grant"),                 # wrong verifier
    ({"code_verifier": None}, "invalid_request"),                   # PKCE skipped
    ({"code_verifier": "short"}, "invalid_request"),                # malformed verifier
    ({"redirect_uri": "https://client.example/other"}, "invalid_grant"),
    ({"redirect_uri": None}, "invalid_request"),
    ({"code": "not-a-code"}, "invalid_grant"),
    ({"code": None}, "invalid_request"),
    ({"grant_type": "password"}, "unsupported_grant_type"),
    ({"grant_type": "implicit"}, "unsupported_grant_type"),
    ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
    ({"grant_type": None}, "invalid_request"),
])
def test_bad_exchange_is_refused_and_writes_nothing(flow: Flow, changes: dict[str, str | None],
                                                    error: str) -> None:
    before = snapshot(flow.engine)
    _refused(flow, flow.post(flow.form(**changes)), 400, error)
    assert snapshot(flow.engine) == before


def test_wrong_verifier_does_not_burn_the_code(flow: Flow) -> None:
    """Checks run before the code is marked used, so a typo by the client costs nothing."""
    assert flow.post(flow.form(code_verifier="B" * 43)).status_code == 400
    assert flow.post(flow.form()).status_code == 200


def test_plain_verifier_equal_to_the_challenge_is_refused(engine: Engine) -> None:
    """PKCE downgrade: sending the challenge itself as verifier must fail (S256 only)."""
    f = Flow(engine)
    _, challenge = pkce_pair()
    code = obtain_code(f.http, f.client, f.user, challenge)["code"]
    _refused(f, f.post(f.form(code=code, code_verifier=challenge)), 400, "invalid_grant")


@pytest.mark.parametrize("headers", [
    {"Authorization": "Basic " + base64.b64encode(b"00000000-0000-4000-8000-000000000000:x").decode()},
    {},
])
def test_unknown_or_missing_client_is_invalid_client(flow: Flow, headers: dict[str, str]) -> None:
    response = flow.post(flow.form(), headers=headers)
    assert response.json["error"] == "invalid_client"
    assert response.status_code in (400, 401)
    if "Authorization" in headers:
        assert response.status_code == 401 and "Basic" in response.headers["WWW-Authenticate"]


def test_bad_client_secret_is_401_invalid_client(flow: Flow) -> None:
    before = snapshot(flow.engine)
    response = flow.post(flow.form(), headers={
        "Authorization": basic_auth(flow.client.client_id, flow.secret[:-1] + "x")})
    _refused(flow, response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert flow.secret not in response.get_data(as_text=True)
    assert snapshot(flow.engine) == before


def test_code_of_another_client_is_invalid_grant(flow: Flow) -> None:
    other, other_secret = create_client(flow.app, name="Other")
    assert other_secret is not None
    response = flow.post(flow.form(), headers={"Authorization": basic_auth(other.client_id,
                                                                           other_secret)})
    _refused(flow, response, 400, "invalid_grant")


def test_confidential_client_cannot_skip_authentication(flow: Flow) -> None:
    response = flow.post(flow.form(client_id=flow.client.client_id), headers={})
    _refused(flow, response, 401, "invalid_client")


def test_replayed_code_is_refused_and_revokes_the_session_it_produced(flow: Flow) -> None:
    """RFC 6749 section 4.1.2: "If an authorization code is used more than once, the
    authorization server MUST deny the request and SHOULD revoke ... all tokens previously
    issued based on that authorization code"."""
    first = flow.post(flow.form())
    assert first.status_code == 200
    token = first.json["access_token"]
    assert flow.http.get("/oauth/userinfo", headers={"Authorization": "Bearer " + token}).status_code == 200
    replay = flow.post(flow.form())
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    assert replay.json["error_description"] == "authorization code was already used"
    with flow.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Session.__table__)).scalar() == 0
    assert flow.http.get("/oauth/userinfo", headers={"Authorization": "Bearer " + token}).status_code == 401
    refresh = flow.http.post("/oauth/token", data={"grant_type": "refresh_token",
                                                   "refresh_token": first.json["refresh_token"]},
                             headers={"Authorization": basic_auth(flow.client.client_id, flow.secret)})
    assert refresh.status_code == 400 and refresh.json["error"] == "invalid_grant"


@pytest.mark.parametrize("body", [
    "grant_type=authorization_code&grant_type=authorization_code&code={code}",
    "grant_type=authorization_code&code={code}&code={code}",
    "grant_type=authorization_code&code={code}&code_verifier=a&code_verifier=b",
    "grant_type=authorization_code&code={code}&redirect_uri=%FF%FE",
    "grant_type=authorization_code&code={code}&code_verifier=" + "a" * 5000,
    "grant_type=authorization_code&code={code}&x=%00",
    "grant_type=authorization_code&code={code}&state=%C3%A9",
])
def test_duplicated_oversized_or_non_ascii_parameters_are_invalid_request(flow: Flow, body: str) -> None:
    before = snapshot(flow.engine)
    response = flow.post(body.format(code=flow.code), content_type="application/x-www-form-urlencoded")
    _refused(flow, response, 400, "invalid_request")
    assert snapshot(flow.engine) == before


def test_parameters_in_the_query_string_are_refused(flow: Flow) -> None:
    response = flow.http.post("/oauth/token?code=" + flow.code, data=flow.form(),
                              headers={"Authorization": basic_auth(flow.client.client_id, flow.secret)})
    _refused(flow, response, 400, "invalid_request")


def test_json_body_is_refused(flow: Flow) -> None:
    response = flow.post(None, json=flow.form())
    _refused(flow, response, 400, "invalid_request")


def test_oversized_body_is_refused(flow: Flow) -> None:
    response = flow.post("x=" + "a" * (70 * 1024), content_type="application/x-www-form-urlencoded")
    _refused(flow, response, 400, "invalid_request")


@pytest.mark.parametrize("header", [
    "Basic !!!notbase64",
    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    "Basic " + base64.b64encode(b"no-colon").decode(),
])
def test_malformed_basic_credentials_are_401_not_500(flow: Flow, header: str) -> None:
    response = flow.post(flow.form(), headers={"Authorization": header})
    _refused(flow, response, 401, "invalid_client")


def test_get_on_the_token_endpoint_is_not_allowed(flow: Flow) -> None:
    assert flow.http.get("/oauth/token", query_string=flow.form()).status_code == 405


def test_public_client_must_send_a_verifier(engine: Engine) -> None:
    app = make_app(engine)
    client, _ = create_client(app, public=True)
    http = app.test_client()
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge, headers=user_headers(user))["code"]
    response = http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0]})
    assert response.status_code == 400 and response.json["error"] == "invalid_request"
    assert exchange_code(http, client, None, code, verifier).status_code == 200


@pytest.mark.postgres
def test_two_racing_exchanges_of_one_code_cannot_both_win(pg_engine: Engine) -> None:
    """The code is redeemed by a compare-and-swap on ``used_at``: one winner, and the loser's
    attempt counts as a replay, which revokes what the winner got (RFC 6749 4.1.2)."""
    import threading

    for _ in range(5):
        flow = Flow(pg_engine)
        barrier = threading.Barrier(2)
        results: list[Any] = []

        def exchange(flow: Flow = flow, barrier: threading.Barrier = barrier,
                     results: list[Any] = results) -> None:
            http = flow.app.test_client()
            barrier.wait()
            results.append(http.post("/oauth/token", data=flow.form(), headers={
                "Authorization": basic_auth(flow.client.client_id, flow.secret)}))

        threads = [threading.Thread(target=exchange) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200, 400]
        loser = next(r for r in results if r.status_code == 400)
        assert loser.json["error"] == "invalid_grant"
        with pg_engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Session.__table__)).scalar() == 0


def _session_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Session.__table__)).scalar_one())


@pytest.mark.parametrize(("changes", "error"), [
    ({"code_verifier": None}, "invalid_request"),
    ({"code_verifier": "W" * 43}, "invalid_grant"),
    ({"code_verifier": "short"}, "invalid_request"),
    ({"redirect_uri": "https://client.example/other"}, "invalid_grant"),
    ({"redirect_uri": None}, "invalid_request"),
])
def test_issue15_item12_replay_without_the_verifier_or_redirect_uri_revokes_nothing(
        engine: Engine, changes: dict[str, str | None], error: str) -> None:
    """Issue 15 item 12: whoever holds a used code and the public client id but not the PKCE
    verifier (or sends another redirect_uri) is refused before the replay rule, so the session
    that code produced lives on."""
    f = Flow(engine)
    public, _ = create_client(f.app, name="Public", public=True)
    verifier, challenge = pkce_pair()
    code = obtain_code(f.http, public, f.user, challenge)["code"]
    first = exchange_code(f.http, public, None, code, verifier)
    assert first.status_code == 200
    token = first.json["access_token"]
    before = snapshot(engine)
    form = f.form(**{"code": code, "client_id": public.client_id, "code_verifier": verifier,
                     **changes})
    replay = f.http.post("/oauth/token", data=form, headers={})
    assert replay.status_code == 400 and replay.json["error"] == error
    assert snapshot(engine) == before and _session_count(engine) == 1
    me = f.http.get("/oauth/userinfo", headers={"Authorization": "Bearer " + token})
    assert me.status_code == 200


def test_issue15_item12_replay_with_the_right_verifier_still_revokes(engine: Engine) -> None:
    """Issue 15 item 12, other side: the replay rule of RFC 6749 section 4.1.2 (and RFC 9700
    section 4.5) still applies to a replay that passes PKCE and redirect_uri."""
    f = Flow(engine)
    public, _ = create_client(f.app, name="Public", public=True)
    verifier, challenge = pkce_pair()
    code = obtain_code(f.http, public, f.user, challenge)["code"]
    assert exchange_code(f.http, public, None, code, verifier).status_code == 200
    assert _session_count(engine) == 1
    replay = exchange_code(f.http, public, None, code, verifier)
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    assert replay.json["error_description"] == "authorization code was already used"
    assert _session_count(engine) == 0
