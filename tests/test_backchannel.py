"""OpenID Connect Back-Channel Logout 1.0 against a live receiver on 127.0.0.1.

Every way a session can end must reach the client's ``backchannel_logout_uri`` exactly once,
with a logout token (section 2.4) that verifies with the provider's published JWKS and names the
ended session in ``sid``; delivery happens outside the request that ended the session.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from factories import (
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
)
from flask import Flask
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import Engine

from oauth_sessions import Aal, get_state
from oauth_sessions.core.errors import RefreshTokenReused
from oauth_sessions.flask.extension import revoke_consent
from oauth_sessions.flask.management import sessions_manager
from oauth_sessions.jose.logout_tokens import BACKCHANNEL_LOGOUT_EVENT, build_logout_token_claims
from oauth_sessions.protocol.backchannel import BackchannelSender, Delivery


@dataclass
class Post:
    path: str
    token: str
    status: int


class Receiver:
    """A relying party's back-channel endpoint: records every POST; per path, a plan of
    answers (``500``, ``"hang"``...) is used up first, then it answers 200."""

    def __init__(self, hang_seconds: float = 2.0) -> None:
        self.posts: list[Post] = []
        self.plan: dict[str, list[int | str]] = {}
        self.release = threading.Event()
        self.hang_seconds = hang_seconds
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                token = parse_qs(body).get("logout_token", [""])[0]
                plan = receiver.plan.get(self.path, [])
                answer = plan.pop(0) if plan else 200
                if answer == "hang":
                    receiver.release.wait(receiver.hang_seconds)
                    answer = 200
                status = int(answer)
                receiver.posts.append(Post(self.path, token, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def accepted(self, path: str | None = None) -> list[str]:
        return [p.token for p in self.posts if p.status == 200 and path in (None, p.path)]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sender() -> Iterator[BackchannelSender]:
    s = BackchannelSender(timeout=1.0, attempts=3, backoff=0.05)
    yield s
    s.close()


def _verify(app: Flask, token: str) -> dict[str, Any]:
    """What a relying party does (section 2.6): signature with the JWKS, then the claims."""
    jwks = app.test_client().get("/oauth/jwks").json
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256", "RS256", "EdDSA"])
    assert decoded.header["typ"] == "logout+jwt"
    claims = dict(decoded.claims)
    assert claims["iss"] == get_state(app).settings.issuer
    assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
    assert "nonce" not in claims
    assert 0 < claims["exp"] - claims["iat"] <= 300 and abs(claims["iat"] - time.time()) < 30
    return claims


def _session(app: Flask, user: uuid.UUID, client_id: uuid.UUID | None) -> Any:
    store = get_state(app).services.sessions
    return store.create_session(user_id=user, client_id=client_id, scopes="openid",
                                aal=Aal.AAL1, amr=["password"])


def test_logout_token_claims_follow_section_2_4() -> None:
    claims = build_logout_token_claims(issuer="https://op.example", client_id="c", subject="u",
                                       session_id="s")
    assert set(claims) == {"iss", "aud", "iat", "exp", "jti", "sub", "sid", "events"}
    assert claims["aud"] == "c" and claims["sid"] == "s" and claims["sub"] == "u"
    assert claims["exp"] - claims["iat"] == 120
    assert build_logout_token_claims(issuer="i", client_id="c", subject="u",
                                     session_id="s")["jti"] != claims["jti"]


def test_each_client_gets_exactly_one_verified_token_per_ended_session(
        engine: Engine, receiver: Receiver, sender: BackchannelSender) -> None:
    app = make_app(engine, backchannel=sender)
    a, _ = create_client(app, name="A", backchannel_logout_uri=receiver.url("/a"))
    b, _ = create_client(app, name="B", backchannel_logout_uri=receiver.url("/b"))
    silent, _ = create_client(app, name="no back-channel")
    user = create_user(engine)
    a1, a2 = _session(app, user, a.id).session, _session(app, user, a.id).session
    b1 = _session(app, user, b.id).session
    _session(app, user, silent.id)
    _session(app, user, None)

    assert get_state(app).services.sessions.revoke_user(user, reason="test", first_party=True) == 5
    assert sender.wait_idle(10)

    assert len(receiver.posts) == 3
    sids_a = sorted(_verify(app, t)["sid"] for t in receiver.accepted("/a"))
    assert sids_a == sorted([str(a1.id), str(a2.id)])
    (token_b,) = receiver.accepted("/b")
    claims_b = _verify(app, token_b)
    assert claims_b["sid"] == str(b1.id) and claims_b["aud"] == b.client_id
    assert claims_b["sub"] == str(user)
    assert all(_verify(app, t)["aud"] == a.client_id for t in receiver.accepted("/a"))


def test_a_failed_first_delivery_is_retried_and_the_retry_is_the_only_accepted_token(
        engine: Engine, receiver: Receiver, sender: BackchannelSender) -> None:
    app = make_app(engine, backchannel=sender)
    client, _ = create_client(app, backchannel_logout_uri=receiver.url("/rp"))
    receiver.plan["/rp"] = [500]
    session = _session(app, create_user(engine), client.id).session

    get_state(app).services.sessions.revoke(session.id, reason="test")
    assert sender.wait_idle(10)

    assert [p.status for p in receiver.posts] == [500, 200]
    (token,) = receiver.accepted()
    assert _verify(app, token)["sid"] == str(session.id)
    # The retry is the same token (signed once), so an RP can recognise it by jti.
    assert receiver.posts[0].token == token
    assert (sender.delivered, sender.failed) == (1, 0)


def test_a_refusing_receiver_is_not_retried_and_unreachable_ones_stop_after_the_attempts(
        engine: Engine, receiver: Receiver, sender: BackchannelSender) -> None:
    app = make_app(engine, backchannel=sender)
    refusing, _ = create_client(app, backchannel_logout_uri=receiver.url("/refuse"))
    receiver.plan["/refuse"] = [400]
    closed_port = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    dead_url = f"http://127.0.0.1:{closed_port.server_address[1]}/gone"
    closed_port.server_close()
    dead, _ = create_client(app, backchannel_logout_uri=dead_url)
    user = create_user(engine)
    _session(app, user, refusing.id)
    _session(app, user, dead.id)

    get_state(app).services.sessions.revoke_user(user, reason="test", first_party=True)
    assert sender.wait_idle(10)

    assert [p.status for p in receiver.posts] == [400]  # section 2.8: 400 is the RP's answer
    assert (sender.delivered, sender.failed) == (0, 2)


def test_a_hanging_receiver_does_not_slow_the_revoking_request(engine: Engine,
                                                               receiver: Receiver) -> None:
    sender = BackchannelSender(timeout=1.0, attempts=1)  # a synchronous send would take >= 1 s
    try:
        app = make_app(engine, backchannel=sender)
        client, secret = create_client(app, backchannel_logout_uri=receiver.url("/slow"))
        receiver.plan["/slow"] = ["hang"]  # answers after 2 s
        http, user = app.test_client(), create_user(engine)
        verifier, challenge = pkce_pair()
        code = obtain_code(http, client, user, challenge)["code"]
        tokens = exchange_code(http, client, secret, code, verifier).json

        started = time.perf_counter()
        response = http.post("/oauth/revoke", data={"token": tokens["refresh_token"]},
                             headers={"Authorization": basic_auth(client.client_id, secret or "")})
        elapsed = time.perf_counter() - started

        assert response.status_code == 200
        assert elapsed < 0.5, f"revocation took {elapsed:.3f} s behind a 2 s receiver"
        print(f"revoking request: {elapsed * 1000:.1f} ms behind a receiver that hangs 2 s")
        assert sender.wait_idle(5)
        assert sender.failed == 1  # timed out after 1 s, attempts exhausted
    finally:
        sender.close()


def _reuse(app: Flask, user: uuid.UUID, client: Any) -> uuid.UUID:
    store = get_state(app).services.sessions
    issued = _session(app, user, client.id)
    store.rotate(issued.refresh_token, client_id=client.id)
    store.rotate(store.rotate(issued.refresh_token, client_id=client.id).refresh_token,
                 client_id=client.id)
    with pytest.raises(RefreshTokenReused):
        store.rotate(issued.refresh_token, client_id=client.id)
    return issued.session.id  # type: ignore[no-any-return]


def _consent(app: Flask, user: uuid.UUID, client: Any) -> uuid.UUID:
    sid = _session(app, user, client.id).session.id
    assert revoke_consent(user, client.id, app) == 1
    return sid  # type: ignore[no-any-return]


def _client_deleted(app: Flask, user: uuid.UUID, client: Any) -> uuid.UUID:
    sid = _session(app, user, client.id).session.id
    assert get_state(app).services.clients.delete(client.id)
    return sid  # type: ignore[no-any-return]


def _client_revoked(app: Flask, user: uuid.UUID, client: Any) -> uuid.UUID:
    sid = _session(app, user, client.id).session.id
    assert sessions_manager(app).revoke_client(client.id) == 1
    return sid  # type: ignore[no-any-return]


def _user_deleted(app: Flask, user: uuid.UUID, client: Any) -> uuid.UUID:
    sid = _session(app, user, client.id).session.id
    assert sessions_manager(app).end_user(user, delete_user=True) == 1
    return sid  # type: ignore[no-any-return]


def _superseded(app: Flask, user: uuid.UUID, client: Any) -> uuid.UUID:
    get_state(app).services.sessions.settings = get_state(app).settings.replace(
        single_session_per_client=True)
    sid = _session(app, user, client.id).session.id
    _session(app, user, client.id)
    return sid  # type: ignore[no-any-return]


@pytest.mark.parametrize("end", [_reuse, _consent, _client_deleted, _client_revoked,
                                 _user_deleted, _superseded])
def test_every_way_a_session_ends_reaches_the_back_channel_once(
        engine: Engine, receiver: Receiver, sender: BackchannelSender, end: Any) -> None:
    app = make_app(engine, backchannel=sender)
    client, _ = create_client(app, backchannel_logout_uri=receiver.url("/rp"))
    user = create_user(engine)

    sid = end(app, user, client)
    assert sender.wait_idle(10)

    (token,) = receiver.accepted("/rp")
    assert _verify(app, token)["sid"] == str(sid)
    assert len(receiver.posts) == 1


@pytest.mark.parametrize("commit", [False, True])
def test_a_session_ended_in_a_callers_transaction_is_announced_only_once_committed(
        engine: Engine, receiver: Receiver, sender: BackchannelSender, commit: bool) -> None:
    app = make_app(engine, backchannel=sender, single_session_per_client=True)
    client, _ = create_client(app, backchannel_logout_uri=receiver.url("/rp"))
    user = create_user(engine)
    first = _session(app, user, client.id).session
    store = get_state(app).services.sessions
    with engine.connect() as conn:
        conn.begin()
        store.create_session(user_id=user, client_id=client.id, scopes="openid", aal=Aal.AAL1,
                             amr=["password"], conn=conn)  # supersedes ``first``, signals now
        time.sleep(0.08)  # the worker looks while the delete is still uncommitted
        assert receiver.posts == []
        conn.commit() if commit else conn.rollback()
    assert sender.wait_idle(10)
    if commit:
        (token,) = receiver.accepted("/rp")
        assert _verify(app, token)["sid"] == str(first.id)
    else:
        assert receiver.posts == [] and store.get(first.id) is not None


def test_the_queue_is_bounded_and_submit_never_blocks() -> None:
    gate = threading.Event()

    def post(uri: str, token: str, timeout: float) -> int:
        gate.wait(5)
        return 200

    sender = BackchannelSender(post=post, workers=1, max_pending=2)
    try:
        deliveries = [Delivery("http://127.0.0.1:9/x", "c", uuid.uuid4(), lambda: "t")
                      for _ in range(3)]
        started = time.perf_counter()
        results = [sender.submit(d) for d in deliveries]
        assert time.perf_counter() - started < 0.1
        assert results == [True, True, False]
        gate.set()
        assert sender.wait_idle(5) and sender.delivered == 2
    finally:
        sender.close()


def test_close_stops_the_workers_and_refuses_new_work() -> None:
    sender = BackchannelSender(post=lambda uri, token, timeout: 503, attempts=3, backoff=30)
    sender.submit(Delivery("http://127.0.0.1:9/x", "c", uuid.uuid4(), lambda: "t"))
    deadline = time.monotonic() + 5
    while sender.pending and sender._busy and time.monotonic() < deadline:
        time.sleep(0.01)
    sender.close(timeout=2)
    assert all(not t.is_alive() for t in sender._threads)
    assert sender.pending == 0  # the retry due in 30 s was dropped, not waited for
    assert sender.submit(Delivery("http://127.0.0.1:9/x", "c", uuid.uuid4(), lambda: "t")) is False


def test_registration_metadata_carries_the_back_channel_settings(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    body = {"redirect_uris": ["https://rp.example/cb"], "client_name": "RP",
            "backchannel_logout_uri": "https://rp.example/bc",
            "backchannel_logout_session_required": False,
            "post_logout_redirect_uris": ["https://rp.example/bye"]}
    response = app.test_client().post("/oauth/register", data=json.dumps(body),
                                      content_type="application/json")
    assert response.status_code == 201, response.json
    assert response.json["backchannel_logout_uri"] == "https://rp.example/bc"
    assert response.json["backchannel_logout_session_required"] is False
    info = get_state(app).services.clients.get(response.json["client_id"], fresh=True)
    assert info.post_logout_redirect_uris == ("https://rp.example/bye",)
    bad = {**body, "backchannel_logout_session_required": "yes"}
    refused = app.test_client().post("/oauth/register", data=json.dumps(bad),
                                     content_type="application/json")
    assert refused.status_code == 400 and refused.json["error"] == "invalid_client_metadata"


def test_the_cli_registers_logout_uris_and_refuses_unsafe_ones(engine: Engine) -> None:
    app = make_app(engine)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["oauth-sessions", "create-client", "--name", "RP", "--redirect-uri",
                                 "https://rp.example/cb", "--post-logout-redirect-uri",
                                 "https://rp.example/bye", "--backchannel-logout-uri",
                                 "https://rp.example/bc", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["post_logout_redirect_uris"] == ["https://rp.example/bye"]
    assert body["backchannel_logout_uri"] == "https://rp.example/bc"
    for option, value in (("--backchannel-logout-uri", "javascript:alert(1)"),
                          ("--backchannel-logout-uri", "https://rp.example/bc#frag"),
                          ("--post-logout-redirect-uri", "https://rp.example/bye#x")):
        refused = runner.invoke(args=["oauth-sessions", "create-client", "--name", "Bad",
                                      "--redirect-uri", "https://rp.example/cb", option, value])
        assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert len(get_state(app).services.clients.list()) == 1
