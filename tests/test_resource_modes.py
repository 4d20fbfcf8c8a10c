"""The resource helper against the real provider: local mode (same app and database) and remote
mode (RFC 7662 over HTTP to a live server on 127.0.0.1)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from factories import basic_auth, make_app
from flask import Flask
from sqlalchemy import Engine
from test_introspection_endpoint import Provider, provider, sid_of
from werkzeug.serving import make_server

from oauth_sessions import get_state
from oauth_sessions.core.types import Aal
from oauth_sessions.flask.resource import ResourceProtector, TokenInfo, current_token
from oauth_sessions.flask.resource_remote import _TtlCache
from oauth_sessions.storage.database import create_auth_engine

RESOURCE = "https://api.example.test/v1"


def add_views(app: Flask, protector: ResourceProtector) -> None:
    @app.get("/api/profile")
    @protector.require(scope="profile")
    def profile() -> dict[str, Any]:
        token = current_token()
        return {"sub": token.sub, "aal": token.aal.value, "sid": token.session_id}

    @app.get("/api/payments")
    @protector.require(scope="payments", aal="aal2")
    def payments() -> dict[str, Any]:
        return {"aal": current_token().aal.value}

    @app.get("/api/admin")
    @protector.require(scope="admin")
    def admin() -> dict[str, Any]:
        return {}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- local mode


def local_provider(engine: Engine) -> Provider:
    p = provider(engine)
    add_views(p.app, ResourceProtector.local(p.app, resource=RESOURCE))
    return p


def test_local_mode_lets_an_active_token_through_with_its_session(engine: Engine) -> None:
    p = local_provider(engine)
    token = p.tokens()["access_token"]
    response = p.http.get("/api/profile", headers=bearer(token))
    assert response.status_code == 200
    assert response.json == {"sub": str(p.user), "aal": "aal1", "sid": str(sid_of(token))}


def test_local_mode_refuses_at_once_after_revocation(engine: Engine) -> None:
    p = local_provider(engine)
    token = p.tokens()["access_token"]
    assert p.http.get("/api/profile", headers=bearer(token)).status_code == 200
    p.sessions.revoke(sid_of(token), reason="test")
    response = p.http.get("/api/profile", headers=bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert 'resource_metadata="https://api.example.test/.well-known/oauth-protected-resource/v1"' in (
        response.headers["WWW-Authenticate"])


def test_local_mode_asks_for_step_up_when_the_session_was_downgraded(engine: Engine) -> None:
    p = local_provider(engine)
    token = p.tokens(aal="aal2", amr="password,totp")["access_token"]
    assert p.http.get("/api/payments", headers=bearer(token)).json == {"aal": "aal2"}
    p.sessions.set_aal(sid_of(token), Aal.AAL1)
    response = p.http.get("/api/payments", headers=bearer(token))
    assert response.status_code == 401
    assert 'error="insufficient_user_authentication"' in response.headers["WWW-Authenticate"]
    assert 'acr_values="aal2"' in response.headers["WWW-Authenticate"]


def test_local_mode_answers_insufficient_scope_and_refuses_refresh_tokens(engine: Engine) -> None:
    p = local_provider(engine)
    tokens = p.tokens()
    scope = p.http.get("/api/admin", headers=bearer(tokens["access_token"]))
    assert scope.status_code == 403 and 'scope="admin"' in scope.headers["WWW-Authenticate"]
    refresh = p.http.get("/api/profile", headers=bearer(tokens["refresh_token"]))
    assert refresh.status_code == 401 and refresh.json["error"] == "invalid_token"


# --------------------------------------------------------------------------- remote mode, live server


@contextmanager
def live(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def resource_app(protector: ResourceProtector) -> Flask:
    app = Flask("resource_server")
    add_views(app, protector)
    return app


_OPEN: list[ResourceProtector] = []


@pytest.fixture(autouse=True)
def _close_protectors() -> Iterator[None]:
    """Remote protectors hold a connection pool: close them so no socket outlives its test."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def remote(p: Provider | None, base: str, client_id: str | None = None, secret: str | None = None,
           path: str = "/oauth/introspect", **options: Any) -> ResourceProtector:
    protector = ResourceProtector.remote(
        base + path, client_id or (p.resource_server.client_id if p else "c"),
        secret or (p.rs_secret if p else "s"), resource=RESOURCE, **options)
    _OPEN.append(protector)
    return protector


def test_remote_mode_validates_through_the_live_introspection_endpoint(engine: Engine) -> None:
    p = provider(engine)
    tokens = p.tokens()
    with live(p.app) as base:
        api = resource_app(remote(p, base)).test_client()
        ok = api.get("/api/profile", headers=bearer(tokens["access_token"]))
        assert ok.status_code == 200 and ok.json["sub"] == str(p.user)
        step_up = api.get("/api/payments", headers=bearer(tokens["access_token"]))
        assert step_up.status_code == 403  # no "payments" scope at all: a step-up cannot help
        p.sessions.revoke(sid_of(tokens["access_token"]), reason="test")
        revoked = api.get("/api/profile", headers=bearer(tokens["access_token"]))
    assert revoked.status_code == 401 and revoked.json["error"] == "invalid_token"


def test_remote_mode_challenges_for_aal2_with_acr_values(engine: Engine) -> None:
    p = provider(engine)
    protector_scope_only = p.tokens(scope="openid profile offline_access")
    with live(p.app) as base:
        protector = remote(p, base)
        api = resource_app(protector)

        @api.get("/api/strong-profile")
        @protector.require(scope="profile", aal="aal2")
        def strong_profile() -> dict[str, Any]:
            return {}

        response = api.test_client().get("/api/strong-profile",
                                         headers=bearer(protector_scope_only["access_token"]))
    assert response.status_code == 401
    assert 'error="insufficient_user_authentication"' in response.headers["WWW-Authenticate"]
    assert 'acr_values="aal2"' in response.headers["WWW-Authenticate"]


class _KeepAliveStub(BaseHTTPRequestHandler):
    """An HTTP/1.1 introspection stub that records the client port of every request."""

    protocol_version = "HTTP/1.1"
    ports: list[int] = []
    answer: dict[str, Any] = {"active": True, "sub": "u", "client_id": "c", "scope": "profile",
                              "aud": RESOURCE}

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.ports.append(self.client_address[1])
        body = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_remote_mode_reuses_one_keep_alive_connection() -> None:
    """Werkzeug's dev server closes every connection, so a plain HTTP/1.1 stub stands in."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        protector = remote(None, f"http://127.0.0.1:{server.server_port}", path="/introspect")
        api = resource_app(protector).test_client()
        for _ in range(5):
            assert api.get("/api/profile", headers=bearer("t")).status_code == 200
    finally:
        protector.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert len(_KeepAliveStub.ports) == 5
    assert len(set(_KeepAliveStub.ports)) == 1


def test_remote_cache_is_off_by_default_and_its_ttl_is_the_revocation_delay(engine: Engine) -> None:
    p = provider(engine)
    token = p.tokens()["access_token"]
    with live(p.app) as base:
        uncached = resource_app(remote(p, base)).test_client()
        cached = resource_app(remote(p, base, cache_ttl=60)).test_client()
        assert uncached.get("/api/profile", headers=bearer(token)).status_code == 200
        assert cached.get("/api/profile", headers=bearer(token)).status_code == 200
        p.sessions.revoke(sid_of(token), reason="test")
        assert uncached.get("/api/profile", headers=bearer(token)).status_code == 401
        # The cached answer is still believed: this is the documented price of cache_ttl.
        assert cached.get("/api/profile", headers=bearer(token)).status_code == 200


def test_the_cache_forgets_at_its_ttl_and_never_outlives_the_token() -> None:
    info = TokenInfo.from_introspection({"sub": "u", "client_id": "c", "exp": 1_000_100})
    cache = _TtlCache(ttl=30, size=2)
    cache.put(b"k", info, now=1_000_000)
    assert cache.get(b"k", now=1_000_029.9) is info
    assert cache.get(b"k", now=1_000_030) is None
    cache.put(b"k", info, now=1_000_090)  # exp comes before now + ttl
    assert cache.get(b"k", now=1_000_099.9) is info
    assert cache.get(b"k", now=1_000_100) is None
    for key in (b"a", b"b", b"c"):
        cache.put(key, info, now=1_000_000)
    assert cache.get(b"a", now=1_000_001) is None  # bounded: the oldest went first
    assert cache.get(b"c", now=1_000_001) is info


def test_an_unreachable_or_refusing_introspection_endpoint_is_503_not_invalid_token(engine: Engine) -> None:
    p = provider(engine)
    token = p.tokens()["access_token"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    down = remote(None, f"http://127.0.0.1:{closed_port}", timeout=(0.5, 0.5))
    response = resource_app(down).test_client().get("/api/profile", headers=bearer(token))
    assert response.status_code == 503 and response.json["error"] == "temporarily_unavailable"
    assert "WWW-Authenticate" not in response.headers
    with live(p.app) as base:
        wrong_secret = remote(p, base, secret="wrong")
        refused = resource_app(wrong_secret).test_client().get("/api/profile", headers=bearer(token))
    assert refused.status_code == 503


def test_remote_mode_slow_endpoint_hits_the_read_timeout(engine: Engine) -> None:
    slow = Flask("slow")

    @slow.post("/oauth/introspect")
    def sleepy() -> dict[str, Any]:
        time.sleep(1.5)
        return {"active": True, "sub": "u", "client_id": "c", "scope": "profile", "aud": RESOURCE}

    with live(slow) as base:
        protector = remote(None, base, timeout=(1, 0.3))
        started = time.monotonic()
        response = resource_app(protector).test_client().get("/api/profile", headers=bearer("t"))
        elapsed = time.monotonic() - started
    assert response.status_code == 503 and elapsed < 1.2


@pytest.mark.postgres
def test_remote_mode_with_a_real_requests_client_end_to_end(pg_engine: Engine) -> None:
    """Both servers live: a client calls the resource server, which calls the provider."""
    p = provider(pg_engine)
    token = p.tokens()["access_token"]
    with live(p.app) as provider_base, live(resource_app(remote(p, provider_base))) as api_base:
        ok = requests.get(api_base + "/api/profile", headers=bearer(token), timeout=5)
        missing = requests.get(api_base + "/api/profile", timeout=5)
        direct = requests.post(provider_base + "/oauth/introspect", data={"token": token},
                               headers={"Authorization": basic_auth(str(uuid.uuid4()), "x")}, timeout=5)
    assert ok.status_code == 200 and ok.json()["sub"] == str(p.user)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith('Bearer realm=')
    assert direct.status_code == 401
    assert get_state(p.app).settings.issuer == "http://127.0.0.1:5000"


@pytest.mark.postgres
def test_local_mode_answers_503_when_the_database_is_away(pg_engine: Engine) -> None:
    p = local_provider(pg_engine)
    token = p.tokens()["access_token"]
    assert p.http.get("/api/profile", headers=bearer(token)).status_code == 200
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    gone = create_auth_engine(f"postgresql://postgres@127.0.0.1:{closed_port}/nowhere",
                              connect_args={"connect_timeout": 2})
    try:
        app = make_app(gone)
        add_views(app, ResourceProtector.local(app, resource=RESOURCE))
        response = app.test_client().get("/api/profile", headers=bearer(token))
    finally:
        gone.dispose()
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert "WWW-Authenticate" not in response.headers


def test_local_mode_metadata_names_this_provider_as_the_authorization_server(engine: Engine) -> None:
    p = provider(engine)
    protector = ResourceProtector.local(p.app, resource=RESOURCE)
    protector.init_app(p.app, scopes_supported=["profile"])
    document = p.http.get("/.well-known/oauth-protected-resource/v1").json
    assert document == {"resource": RESOURCE, "authorization_servers": ["http://127.0.0.1:5000"],
                        "bearer_methods_supported": ["header"], "scopes_supported": ["profile"],
                        # local mode checks DPoP proofs with the app's own checks (RFC 9449)
                        "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA",
                                                              "RS256", "PS256"]}


class _RefreshAnswerStub(_KeepAliveStub):
    """An introspection endpoint that calls every token active, of whatever ``token_type`` the
    test set (other servers than ours may report refresh tokens active to anyone)."""

    ports: list[int] = []


@pytest.mark.parametrize(("token_type", "status"), [
    ("refresh_token", 401), ("urn:ietf:params:oauth:token-type:id_token", 401), ("", 401),
    ("Bearer", 200), ("bearer", 200), ("access_token", 200), (None, 200),
])
def test_issue15_item3_remote_mode_refuses_what_introspection_calls_no_access_token(
        token_type: str | None, status: int) -> None:
    """Issue 15 item 3: remote mode read only ``active`` and so let a refresh token through as a
    bearer access token; local mode refused it. Now both refuse anything not an access token."""
    _RefreshAnswerStub.answer = {**_KeepAliveStub.answer,
                                 **({} if token_type is None else {"token_type": token_type})}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefreshAnswerStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        protector = remote(None, f"http://127.0.0.1:{server.server_port}", path="/introspect")
        response = resource_app(protector).test_client().get("/api/profile", headers=bearer("t"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert response.status_code == status
    if status == 401:
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_issue20_item6_remote_mode_refuses_a_refresh_token_its_own_client_sees_active(
        engine: Engine) -> None:
    """A refresh token's answer has no ``token_type`` (RFC 7662 2.2 uses the RFC 6749 7.1
    access token types only), so remote mode must read ``token_use`` to keep refusing it, even
    with the credentials of the token's own client, the one caller that sees it active."""
    p = provider(engine)
    assert get_state(p.app).services.clients.update_metadata(p.client.id, can_introspect=True)
    tokens = p.tokens()
    answer = p.http.post("/oauth/introspect", data={"token": tokens["refresh_token"]},
                         headers={"Authorization": basic_auth(p.client.client_id, p.secret)}).json
    assert answer["active"] is True and "token_type" not in answer
    with live(p.app) as base:
        api = resource_app(remote(p, base, client_id=p.client.client_id, secret=p.secret))
        refused = api.test_client().get("/api/profile", headers=bearer(tokens["refresh_token"]))
        allowed = api.test_client().get("/api/profile", headers=bearer(tokens["access_token"]))
    assert refused.status_code == 401 and refused.json["error"] == "invalid_token"
    assert allowed.status_code == 200
