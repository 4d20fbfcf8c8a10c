"""Issue 18 item 2: two app hosts over one PostgreSQL, and nothing in a worker that correctness needs.

The test makes two network namespaces, each with its own address on a veth pair
(``netns_support``), and runs the provider in each as a separate gunicorn process. Both reach
the run's PostgreSQL through one PgBouncer in transaction mode listening on the namespaces'
gateways (the production shape: hosts -> pooler -> primary). Then, over real HTTP: a session
created through host A refreshes through host B; a revocation through A shows in B's very next
introspection; signing keys rotated through A are published and used by B within
``SIGNING_KEY_RELOAD_SECONDS`` (short here) and B accepts A's new tokens at once; concurrent
refreshes of one token split across both hosts advance the counter once.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from factories import ISSUER, HeaderHost, authorize_params, basic_auth, create_user, pkce_pair, query_of
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from netns_support import net_hosts, serve_in
from pgbouncer_support import pgbouncer
from sqlalchemy import Engine, text

from oauth_sessions import OAuthSessions, get_state
from oauth_sessions.storage.clients import ClientStore
from oauth_sessions.storage.database import create_auth_engine

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TESTS = Path(__file__).resolve().parent
RELOAD_SECONDS = 2  # OAUTH_SESSIONS_SIGNING_KEY_RELOAD_SECONDS on both hosts
PORT = 8000  # each host has its own namespace, so its own port space
CALLERS = 16


def create_app() -> Flask:
    """What each app host serves: the provider on the shared database, the test host adapter,
    and one test-only view that rotates the signing keys from inside this host's process."""
    app = Flask("app-host")
    app.config["SECRET_KEY"] = os.environ["OAUTH_SESSIONS_HOSTS_SECRET"]  # the same on every host
    OAuthSessions(app, host=HeaderHost(), issuer=ISSUER,
                  database_url=os.environ["OAUTH_SESSIONS_HOSTS_DB"],
                  refresh_token_reuse_interval=30, signing_key_reload_seconds=RELOAD_SECONDS)

    @app.post("/test-rotate-keys")
    def rotate_keys() -> ResponseReturnValue:
        return jsonify(kid=get_state(app).services.keys.rotate().kid)

    return app


@dataclass(frozen=True)
class Hosts:
    a: str
    b: str
    engine: Engine  # direct to PostgreSQL, for the test's own reads and writes


@pytest.fixture(scope="module")
def hosts(pg_url: str) -> Iterator[Hosts]:
    engine = create_auth_engine(pg_url)
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        stack.callback(_empty_tables, engine)  # the run's database is shared with other modules
        nets = stack.enter_context(net_hosts(2))
        bouncer = stack.enter_context(pgbouncer(
            pg_url, mode="transaction", listen=("127.0.0.1", *(n.gateway for n in nets))))
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        secret = base64.urlsafe_b64encode(os.urandom(24)).decode()
        urls = []
        for net in nets:
            env = {**os.environ, "OAUTH_SESSIONS_HOSTS_DB": bouncer.url(pg_url, host=net.gateway),
                   "OAUTH_SESSIONS_HOSTS_SECRET": secret,
                   # Plain HTTP between the test and the hosts, as between a TLS-terminating
                   # load balancer and its backends; Authlib insists on https otherwise.
                   "AUTHLIB_INSECURE_TRANSPORT": "1",
                   "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
            stack.enter_context(serve_in(net, [
                gunicorn, "-w", "1", "-k", "gthread", "--threads", "8", "-b", f"{net.address}:{PORT}",
                "--graceful-timeout", "2", "--log-level", "warning", "test_two_hosts:create_app()"], env))
            urls.append(f"http://{net.address}:{PORT}")
        for url in urls:
            _wait_until_serving(url)
        yield Hosts(urls[0], urls[1], engine)


def _empty_tables(engine: Engine) -> None:
    """What the ``pg_engine`` fixture does after each test (this module cannot use it: a
    truncated key table under running hosts would leave them signing with deleted keys)."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE auth.users, auth.oauth_clients, "
                          "oauth_sessions.oauth_signing_keys CASCADE"))


def _wait_until_serving(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/.well-known/openid-configuration", timeout=1).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # still booting
            time.sleep(0.1)
    pytest.fail(f"the app host at {url} did not start within 30 s")


@dataclass(frozen=True)
class Provider:
    client_id: str
    auth: str  # client_secret_basic of the client
    rs_auth: str  # of a resource server allowed to introspect


@pytest.fixture
def provider(hosts: Hosts) -> Provider:
    clients = ClientStore(hosts.engine, cache_seconds=0)
    client, secret = clients.create(name="two-hosts", redirect_uris=["https://client.example/cb"],
                                    scopes="openid profile offline_access", verified=True)
    rs, rs_secret = clients.create(name="rs", redirect_uris=["https://rs.example/cb"],
                                   can_introspect=True, verified=True)
    assert secret and rs_secret
    return Provider(client.client_id, basic_auth(client.client_id, secret),
                    basic_auth(rs.client_id, rs_secret))


def _sign_in_through(base: str, hosts: Hosts, p: Provider) -> dict[str, Any]:
    """Authorization code flow with PKCE against one host, consent included: its tokens."""
    user = create_user(hosts.engine)
    headers = {"X-Test-User": str(user), "X-Test-Aal": "aal1", "X-Test-Amr": "password"}
    verifier, challenge = pkce_pair()
    client = ClientStore(hosts.engine, cache_seconds=0).get(p.client_id)
    assert client is not None
    with requests.Session() as http:
        r = http.get(base + "/oauth/authorize", params=authorize_params(client, challenge),
                     headers=headers, allow_redirects=False, timeout=10)
        if r.status_code == 200 and r.json().get("consent"):
            form = {**dict(r.json()["form_fields"]), "decision": "approve"}
            r = http.post(urljoin(base, r.json()["action"]), data=form, headers=headers,
                          allow_redirects=False, timeout=10)
        assert r.status_code == 302, r.text
        code = query_of(r.headers["Location"])["code"]
        r = http.post(base + "/oauth/token", headers={"Authorization": p.auth}, timeout=10, data={
            "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": "https://client.example/cb"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _refresh(base: str, p: Provider, token: str) -> requests.Response:
    return requests.post(base + "/oauth/token", headers={"Authorization": p.auth}, timeout=30,
                         data={"grant_type": "refresh_token", "refresh_token": token})


def _introspect(base: str, p: Provider, token: str) -> dict[str, Any]:
    r = requests.post(base + "/oauth/introspect", data={"token": token},
                      headers={"Authorization": p.rs_auth}, timeout=10)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _counter(engine: Engine, sid: str) -> int | None:
    with engine.connect() as conn:
        value = conn.execute(text("SELECT refresh_token_counter FROM auth.sessions WHERE id = :i"),
                             {"i": uuid.UUID(sid)}).scalar_one_or_none()
    return None if value is None else int(value)


def _kid(jwt: str) -> str:
    header = jwt.split(".")[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid


def _published(base: str) -> set[str]:
    return {k["kid"] for k in requests.get(base + "/oauth/jwks", timeout=10).json()["keys"]}


def test_the_two_hosts_are_separate_machines_on_their_own_addresses(hosts: Hosts) -> None:
    assert hosts.a != hosts.b
    assert not hosts.a.startswith("http://127.") and not hosts.b.startswith("http://127.")


def test_a_session_created_through_host_a_refreshes_through_host_b(hosts: Hosts, provider: Provider) -> None:
    issued = _sign_in_through(hosts.a, hosts, provider)
    sid = _introspect(hosts.b, provider, issued["access_token"])["sid"]
    assert _counter(hosts.engine, sid) == 0
    r = _refresh(hosts.b, provider, issued["refresh_token"])
    assert r.status_code == 200, r.text
    assert _counter(hosts.engine, sid) == 1
    again = _refresh(hosts.a, provider, r.json()["refresh_token"])  # and back through A
    assert again.status_code == 200, again.text
    assert _counter(hosts.engine, sid) == 2


def test_a_revocation_through_host_a_shows_in_host_b_introspection_at_the_very_next_call(
        hosts: Hosts, provider: Provider) -> None:
    issued = _sign_in_through(hosts.a, hosts, provider)
    assert _introspect(hosts.b, provider, issued["access_token"])["active"] is True
    r = requests.post(hosts.a + "/oauth/revoke", data={"token": issued["refresh_token"]},
                      headers={"Authorization": provider.auth}, timeout=10)
    assert r.status_code == 200, r.text
    assert _introspect(hosts.b, provider, issued["access_token"]) == {"active": False}
    refused = _refresh(hosts.b, provider, issued["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_keys_rotated_through_host_a_are_published_and_used_by_host_b_within_the_reload_period(
        hosts: Hosts, provider: Provider) -> None:
    issued = _sign_in_through(hosts.a, hosts, provider)
    old_kid = _kid(issued["access_token"])
    assert old_kid in _published(hosts.b)
    rotated_at = time.monotonic()
    new_kid = requests.post(hosts.a + "/test-rotate-keys", timeout=10).json()["kid"]
    assert new_kid != old_kid
    # Host A: at once. Its next tokens carry the new key.
    assert new_kid in _published(hosts.a)
    fresh = _refresh(hosts.a, provider, issued["refresh_token"])
    assert fresh.status_code == 200, fresh.text
    assert _kid(fresh.json()["access_token"]) == new_kid
    # Host B publishes it within its reload period, without being told.
    while new_kid not in _published(hosts.b):
        assert time.monotonic() - rotated_at < RELOAD_SECONDS + 1.5, "host B never published the key"
        time.sleep(0.05)
    # ... accepts A's new tokens, and the old key's tokens until they expire ...
    assert _introspect(hosts.b, provider, fresh.json()["access_token"])["active"] is True
    assert _introspect(hosts.b, provider, issued["access_token"])["active"] is True
    assert old_kid in _published(hosts.b)
    # ... and signs with the new key itself.
    own = _refresh(hosts.b, provider, fresh.json()["refresh_token"])
    assert own.status_code == 200, own.text
    assert _kid(own.json()["access_token"]) == new_kid


def test_host_b_accepts_a_token_signed_by_a_key_rotated_through_host_a_at_once(
        hosts: Hosts, provider: Provider) -> None:
    """A kid it does not know makes a host read the keys again (rate limited), so a token from a
    host that rotated a moment ago is not refused while the other host's period runs."""
    issued = _sign_in_through(hosts.a, hosts, provider)
    assert _introspect(hosts.b, provider, issued["access_token"])["active"] is True
    new_kid = requests.post(hosts.a + "/test-rotate-keys", timeout=10).json()["kid"]
    fresh = _refresh(hosts.a, provider, issued["refresh_token"]).json()
    assert _kid(fresh["access_token"]) == new_kid
    assert _introspect(hosts.b, provider, fresh["access_token"])["active"] is True


def test_concurrent_refreshes_of_one_token_split_across_both_hosts_advance_the_counter_once(
        hosts: Hosts, provider: Provider) -> None:
    issued = _sign_in_through(hosts.a, hosts, provider)
    sid = _introspect(hosts.a, provider, issued["access_token"])["sid"]
    token = issued["refresh_token"]
    for round_no in range(1, 6):
        barrier = threading.Barrier(CALLERS)

        def post(i: int, current: str = token, barrier: threading.Barrier = barrier
                 ) -> tuple[str, int, dict[str, Any]]:
            base = hosts.a if i % 2 == 0 else hosts.b
            with requests.Session() as http:
                barrier.wait()
                r = http.post(base + "/oauth/token", headers={"Authorization": provider.auth},
                              data={"grant_type": "refresh_token", "refresh_token": current},
                              timeout=30)
            return base, r.status_code, r.json()

        with ThreadPoolExecutor(CALLERS) as pool:
            answers = list(pool.map(post, range(CALLERS)))
        assert [status for _, status, _ in answers] == [200] * CALLERS, (round_no, answers)
        assert {base for base, _, _ in answers} == {hosts.a, hosts.b}
        new_tokens = {body["refresh_token"] for _, _, body in answers}
        assert len(new_tokens) == 1, (round_no, new_tokens)  # every caller the winner's answer
        assert _counter(hosts.engine, sid) == round_no
        token = new_tokens.pop()
