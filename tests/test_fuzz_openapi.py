"""Property-based fuzzing of every operation in ``oauth_sessions/openapi.yaml`` (schemathesis).

For each operation, schemathesis generates requests from the shipped OpenAPI document, both
inside the schema (positive) and outside it (negative: wrong types, missing required fields,
values that break patterns). Each request goes to the app in-process (WSGI) on SQLite and on
PostgreSQL, and the answer must:

* never be a 5xx;
* keep to the document: a declared status, content type, response schema and required headers
  (``Cache-Control: no-store`` / ``Pragma: no-cache`` on token and introspection answers);
* when the request was refused (4xx, or a redirect carrying ``error=``), leave every row of the
  OAuth tables exactly as it was.

Two thirds of the generated requests carry a real client's credentials, client_id and redirect
URI (half of those also a signed-in user), so the fuzzing reaches past client authentication
into the grants, the authorization pipeline and registration management.

Bounded for CI: ``max_examples`` per operation and mode, derandomized, no deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from factories import basic_auth, create_client, create_user, make_app, snapshot, user_headers
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from oauth_sessions import get_state
from oauth_sessions.flask.openapi import openapi_text

SCHEMA = schemathesis.openapi.from_dict(yaml.safe_load(openapi_text()))
OPERATIONS = [(path, method.upper()) for path, item in yaml.safe_load(openapi_text())["paths"].items()
              for method in item if method in {"get", "post", "put", "delete"}]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
EXAMPLES = 30
#: Operations with constraints to break (enums, patterns, required members); the others take
#: free-form strings only, so there is no "outside the schema" to generate for them.
NEGATIVE = [op for op in OPERATIONS if op in {
    ("/oauth/authorize", "GET"), ("/oauth/authorize", "POST"), ("/oauth/token", "POST"),
    ("/oauth/revoke", "POST"), ("/oauth/introspect", "POST"), ("/oauth/register", "POST"),
    ("/oauth/register/{client_id}", "PUT")}]


class Fixture:
    def __init__(self, app: Flask, engine: Engine) -> None:
        self.app = app
        self.engine = engine
        self.client, secret = create_client(app, scopes="openid profile offline_access")
        assert secret is not None
        self.secret = secret
        self.user = create_user(engine)
        get_state(app).components["keys"].keyset()  # the first key, made on first use
        reg = app.test_client().post("/oauth/register", json={
            "redirect_uris": ["https://dyn.example/cb"], "scope": "openid"})
        assert reg.status_code == 201, reg.get_data(as_text=True)
        self.dynamic = reg.json


@pytest.fixture
def fuzz_target(engine: Engine) -> Iterator[Fixture]:
    app = make_app(engine, dynamic_registration=True)
    yield Fixture(app, engine)


def _personalise(case: Any, target: Fixture, choice: int) -> None:
    """Give the generated request real credentials (choice 1) or real credentials plus a
    signed-in user (choice 2); choice 0 leaves it as generated."""
    if choice == 0:
        return
    headers = dict(case.headers or {})
    if case.path.startswith("/oauth/register/"):
        case.path_parameters = {"client_id": target.dynamic["client_id"]}
        headers["Authorization"] = "Bearer " + target.dynamic["registration_access_token"]
    elif case.path in {"/oauth/token", "/oauth/revoke", "/oauth/introspect"}:
        headers["Authorization"] = basic_auth(target.client.client_id, target.secret)
        if isinstance(case.body, dict):
            case.body = {k: v for k, v in case.body.items() if k not in {"client_id", "client_secret"}}
    elif case.path == "/oauth/authorize":
        values = case.query if case.method == "GET" else case.body
        if isinstance(values, dict):
            values["client_id"] = target.client.client_id
            values["redirect_uri"] = target.client.redirect_uris[0]
    if choice == 2:
        headers.update(user_headers(target.user))
    case.headers = headers


def _refused(response: Any) -> bool:
    if response.status_code >= 400:
        return True
    location = response.headers.get("Location", "")
    return response.status_code == 302 and "error=" in location


@pytest.mark.parametrize(("path", "method", "mode"),
                         [(*op, GenerationMode.POSITIVE) for op in OPERATIONS]
                         + [(*op, GenerationMode.NEGATIVE) for op in NEGATIVE])
def test_every_operation_keeps_to_its_description_and_refusals_write_nothing(
    fuzz_target: Fixture, path: str, method: str, mode: GenerationMode
) -> None:
    operation = SCHEMA[path][method]
    target = fuzz_target

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), choice=st.sampled_from([0, 1, 2]))
    def run(case: Any, choice: int) -> None:
        _personalise(case, target, choice)
        before = snapshot(target.engine)
        response = case.call(app=target.app)
        case.validate_response(response, checks=CHECKS)
        if _refused(response):
            assert snapshot(target.engine) == before, (
                f"{method} {path} answered {response.status_code} but changed the database")

    run()


def test_the_document_is_served_and_names_every_mounted_endpoint(sqlite_engine: Engine) -> None:
    app = make_app(sqlite_engine, dynamic_registration=True)
    response = app.test_client().get("/oauth/openapi.yaml")
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    served = yaml.safe_load(response.get_data(as_text=True))
    assert served["openapi"].startswith("3.1")
    mounted = {rule.rule.replace("<client_id>", "{client_id}") for rule in app.url_map.iter_rules()
               if rule.endpoint.startswith("oauth_sessions")}
    assert mounted == set(served["paths"])


def test_the_demo_serves_the_same_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    from demo_server.app import create_app

    response = create_app().test_client().get("/oauth/openapi.yaml")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == openapi_text()
