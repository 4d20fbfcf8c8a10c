"""The Flask way in runs everything Flask runs around a view, on every request (issue 16).

The two defects of the removed hot path, each as the host would meet it: a wrapper put on
``app.view_functions`` was skipped, and a ``session_refreshed`` receiver that read
``flask.request`` answered 500 after the rotation had committed. And the host's request hooks
run on the token and introspection endpoints, whatever their number.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any

import pytest
from factories import create_client, create_user, make_app
from flask import Flask, jsonify, request
from sqlalchemy import Engine
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client

from oauth_sessions import OAuthSessions, get_state
from oauth_sessions.core import signals
from oauth_sessions.core.settings import ConfigurationError
from oauth_sessions.core.types import Aal
from oauth_sessions.storage.sessions import SessionStore
from oauth_sessions.wsgi import make_wsgi_app

SCOPES = "openid profile offline_access"


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


class Host:
    """A provider app with a confidential client and a resource server."""

    def __init__(self, engine: Engine) -> None:
        self.app = make_app(engine)
        self.client, secret = create_client(self.app, scopes=SCOPES)
        self.resource, resource_secret = create_client(self.app, name="api", can_introspect=True)
        assert secret and resource_secret
        self.secret, self.resource_secret = secret, resource_secret
        self.engine = engine

    @property
    def store(self) -> SessionStore:
        store: SessionStore = get_state(self.app).services.sessions
        return store

    def refresh_token(self) -> str:
        return self.store.create_session(user_id=create_user(self.engine), client_id=self.client.id,
                                         scopes=SCOPES, aal=Aal.AAL1, amr=["pwd"]).refresh_token

    def refresh(self, http: Any = None, **headers: str) -> Any:
        return (http or self.app.test_client()).post(
            "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": self.refresh_token()},
            headers={**_basic(self.client.client_id, self.secret), **headers})

    def introspect(self, token: str) -> Any:
        return self.app.test_client().post(
            "/oauth/introspect", data={"token": token},
            headers=_basic(self.resource.client_id, self.resource_secret))


def _wrap(app: Flask, endpoint: str, calls: list[str], *, refuse: bool = False) -> None:
    view: Callable[..., Any] = app.view_functions[endpoint]

    @functools.wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        calls.append(endpoint)
        if refuse:  # what a rate limiter does once the budget is spent
            return jsonify(error="slow_down"), 429
        return view(*args, **kwargs)

    app.view_functions[endpoint] = limited


@pytest.mark.parametrize("endpoint", ["oauth_sessions.introspect", "oauth_sessions.token"])
def test_a_wrapper_on_the_view_function_runs_on_every_request(engine: Engine, endpoint: str) -> None:
    host = Host(engine)
    calls: list[str] = []
    _wrap(host.app, endpoint, calls)
    access = host.refresh().get_json()["access_token"]
    assert host.introspect(access).get_json()["active"] is True
    assert calls == [endpoint]
    _wrap(host.app, endpoint, calls, refuse=True)  # the wrapper decides: the endpoint never runs
    refused = host.refresh() if endpoint.endswith("token") else host.introspect(access)
    assert refused.status_code == 429 and refused.get_json() == {"error": "slow_down"}


def test_a_session_refreshed_receiver_may_read_flask_request_and_gets_the_session(engine: Engine) -> None:
    host = Host(engine)
    seen: list[tuple[str, str | None, str | None]] = []

    def audit(sender: Any, session: Any, **kwargs: Any) -> None:
        # flask.request is there in the Flask way in; the session carries what the request set
        seen.append((request.path, session.user_agent, session.ip))

    signals.session_refreshed.connect(audit)
    try:
        response = host.refresh(**{"User-Agent": "audit-test/1"})
    finally:
        signals.session_refreshed.disconnect(audit)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert seen == [("/oauth/token", "audit-test/1", "127.0.0.1")]


def test_the_hosts_request_hooks_run_on_token_and_introspection(engine: Engine) -> None:
    host = Host(engine)
    ran: list[str] = []

    @host.app.before_request
    def before() -> None:
        ran.append("before:" + (request.endpoint or ""))

    @host.app.after_request
    def cors(response: Any) -> Any:  # what Flask-CORS does
        response.headers["Access-Control-Allow-Origin"] = "https://spa.example"
        return response

    refreshed = host.refresh()
    introspected = host.introspect(refreshed.get_json()["access_token"])
    for response in (refreshed, introspected):
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "https://spa.example"
    assert ran == ["before:oauth_sessions.token", "before:oauth_sessions.introspect"]


def test_a_host_hook_that_reads_the_form_first_changes_no_answer(engine: Engine) -> None:
    """A ``before_request`` that parses ``request.form`` (what a CSRF check does) consumes the
    body before the view runs; the endpoints then take the form Werkzeug parsed, repeated
    parameters included, and answer as they do without the hook."""
    host = Host(engine)
    read: list[str | None] = []

    @host.app.before_request
    def csrf() -> None:
        read.append(request.form.get("grant_type") or request.form.get("token"))

    refreshed = host.refresh()
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    access = refreshed.get_json()["access_token"]
    assert host.introspect(access).get_json()["active"] is True
    assert read == ["refresh_token", access]
    twice = host.app.test_client().post(
        "/oauth/token", data=f"grant_type=refresh_token&refresh_token={host.refresh_token()}"
        "&grant_type=refresh_token", content_type="application/x-www-form-urlencoded",
        headers=_basic(host.client.client_id, host.secret))
    assert twice.status_code == 400
    assert twice.get_json() == {"error": "invalid_request",
                                "error_description": "a parameter was given more than once"}


def test_a_proxy_fix_in_front_decides_the_recorded_address_either_way_in(engine: Engine) -> None:
    host = Host(engine)
    host.app.wsgi_app = ProxyFix(host.app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    machine = Client(ProxyFix(make_wsgi_app(host.app), x_for=1))
    for http in (host.app.test_client(), machine):
        token = host.refresh_token()
        response = http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token},
                             headers={**_basic(host.client.client_id, host.secret),
                                      "X-Forwarded-For": "203.0.113.9"})
        assert response.status_code == 200
        found = host.store.find_refresh_session(response.get_json()["refresh_token"])
        assert found is not None and found.session.ip == "203.0.113.9"


@pytest.mark.parametrize("where", ["config", "option"])
def test_the_removed_hot_path_setting_says_what_replaced_it(engine: Engine, where: str) -> None:
    with pytest.raises(ConfigurationError, match=r"HOT_PATH was removed: .*oauth_sessions\.wsgi"):
        if where == "config":
            app = Flask("t")
            app.config["OAUTH_SESSIONS_HOT_PATH"] = False
            OAuthSessions(app, engine=engine, issuer="http://127.0.0.1:5000")
        else:
            make_app(engine, hot_path=False)


def test_the_token_and_introspection_endpoints_never_touch_the_hosts_cookie_session(
        engine: Engine) -> None:
    """The library leaves ``flask.session`` alone on its machine endpoints (benchmarks/README.md:
    the host pays for opening it, the library adds no read and no write), so a host's session
    cookie is neither set nor varied on, even for a caller that sends one."""
    host = Host(engine)
    http = host.app.test_client()
    http.set_cookie("session", "not-a-valid-cookie")
    answers = [host.refresh(http)]
    answers.append(http.post("/oauth/introspect", data={"token": answers[0].get_json()["access_token"]},
                             headers=_basic(host.resource.client_id, host.resource_secret)))
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].get_json()["active"] is True
    for answer in answers:  # Flask adds "Vary: Cookie" once anything reads flask.session
        assert "Set-Cookie" not in answer.headers and "Cookie" not in answer.headers.get("Vary", "")
