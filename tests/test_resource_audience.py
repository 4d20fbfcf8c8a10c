"""The resource helper checks the audience (RFC 8707) in both modes, on SQLite and PostgreSQL;
the CLI registers resource servers; RFC 9728 metadata names the resource the audience is.

Local mode runs the one access-token validation in-process; remote mode calls the live
introspection endpoint, as a registered resource server (the endpoint filters) or as a client
allowed to introspect (the helper's own check then refuses a token for another resource).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from factories import basic_auth, create_client
from flask import Flask
from sqlalchemy import Engine
from test_resource_indicators import API, ISSUER, MAIL, Setup, claims, setup
from test_resource_modes import live

from oauth_sessions import get_state
from oauth_sessions.flask.resource import ResourceProtector, current_token

_OPEN: list[ResourceProtector] = []


@pytest.fixture(autouse=True)
def _close_protectors() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def guard(app: Flask, protector: ResourceProtector, path: str) -> None:
    @app.get(path, endpoint=path)
    @protector.require(scope="profile")
    def view() -> dict[str, Any]:
        return {"client_id": current_token().client_id}


def local_setup(engine: Engine) -> Setup:
    s = setup(engine)
    guard(s.app, ResourceProtector.local(s.app, resource=API, accept_issuer_audience=False),
          "/strict")
    guard(s.app, ResourceProtector.local(s.app, resource=API), "/compatible")
    guard(s.app, ResourceProtector.local(s.app), "/default")
    return s


def test_local_mode_accepts_only_tokens_for_its_resource(engine: Engine) -> None:
    s = local_setup(engine)
    for_api = s.tokens([API, MAIL], [API])
    for_mail = s.refresh(for_api["refresh_token"], [MAIL]).json
    default = s.tokens([])
    assert claims(for_mail["access_token"])["aud"] == MAIL
    assert s.http.get("/strict", headers=bearer(for_api["access_token"])).status_code == 200
    refused = s.http.get("/strict", headers=bearer(for_mail["access_token"]))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert s.http.get("/strict", headers=bearer(default["access_token"])).status_code == 401
    # The compatible default: tokens minted without resource still pass, another's never.
    assert s.http.get("/compatible", headers=bearer(default["access_token"])).status_code == 200
    assert s.http.get("/compatible", headers=bearer(for_mail["access_token"])).status_code == 401
    # Without a resource of its own the helper wants the default audience (the issuer).
    assert s.http.get("/default", headers=bearer(default["access_token"])).status_code == 200
    assert s.http.get("/default", headers=bearer(for_api["access_token"])).status_code == 401


def test_remote_mode_as_a_registered_resource_server(engine: Engine) -> None:
    s = setup(engine)
    for_api = s.tokens([API, MAIL], [API])
    for_mail = s.refresh(for_api["refresh_token"], [MAIL]).json
    server, secret = s.servers[API]
    with live(s.app) as base:
        protector = ResourceProtector.remote(base + "/oauth/introspect", server.client_id, secret,
                                             resource=API, accept_issuer_audience=False)
        _OPEN.append(protector)
        api = Flask("api")
        guard(api, protector, "/things")
        http = api.test_client()
        assert http.get("/things", headers=bearer(for_api["access_token"])).status_code == 200
        assert http.get("/things", headers=bearer(for_mail["access_token"])).status_code == 401
        assert http.get("/things", headers=bearer(for_api["refresh_token"])).status_code == 401


def test_remote_mode_checks_the_audience_itself_for_a_client_credential(engine: Engine) -> None:
    """The client the tokens were issued to may introspect them all (its own tokens): the
    endpoint says active for the token meant for MAIL, and the helper for API refuses it."""
    s = setup(engine)
    assert get_state(s.app).services.clients.update_metadata(s.client.id, can_introspect=True)
    for_api = s.tokens([API, MAIL], [API])
    for_mail = s.refresh(for_api["refresh_token"], [MAIL]).json
    with live(s.app) as base:
        protector = ResourceProtector.remote(base + "/oauth/introspect", s.client.client_id,
                                             s.secret, resource=API)
        _OPEN.append(protector)
        api = Flask("api")
        guard(api, protector, "/things")
        http = api.test_client()
        assert http.get("/things", headers=bearer(for_api["access_token"])).status_code == 200
        refused = http.get("/things", headers=bearer(for_mail["access_token"]))
        assert refused.status_code == 401
        assert refused.json["error_description"] == "the access token is not meant for this resource"


def test_protected_resource_metadata_names_the_resource_its_tokens_are_for(engine: Engine) -> None:
    s = setup(engine)
    protector = ResourceProtector.local(s.app, resource=API)
    protector.init_app(s.app)
    document = s.http.get("/.well-known/oauth-protected-resource/v1").json
    assert document["resource"] == API == claims(s.tokens([API])["access_token"])["aud"]
    assert document["authorization_servers"] == [ISSUER]


def test_discovery_stays_exactly_what_it_was(engine: Engine) -> None:
    """RFC 8707 defines no authorization-server metadata: nothing new is advertised, and the
    introspection methods (which resource servers use too) stay the two secret methods."""
    s = setup(engine)
    document = s.http.get("/.well-known/openid-configuration").json
    assert not [k for k in document if "resource" in k]
    assert document["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post"]


# --------------------------------------------------------------------------- the CLI


def test_the_cli_registers_lists_and_deletes_resource_servers(engine: Engine) -> None:
    s = setup(engine)
    runner = s.app.test_cli_runner()
    created = runner.invoke(args=["oauth-sessions", "create-resource-server",
                                  "https://cli.example.test/api", "--name", "CLI API",
                                  "--min-aal", "aal2", "--scope", "profile", "--json"])
    assert created.exit_code == 0, created.output
    body = json.loads(created.output)
    assert body["resource"] == "https://cli.example.test/api" and body["min_aal"] == "aal2"
    assert body["scope"] == "profile" and len(body["secret"]) >= 43
    listed = json.loads(runner.invoke(args=["oauth-sessions", "list-resource-servers",
                                            "--json"]).output)
    assert body["id"] in [r["id"] for r in listed]
    assert all("secret" not in r for r in listed)
    bad = runner.invoke(args=["oauth-sessions", "create-resource-server", API + "#frag"])
    assert bad.exit_code == 2 and "absolute URI" in bad.output
    twice = runner.invoke(args=["oauth-sessions", "create-resource-server", API])
    assert twice.exit_code == 2 and "already registered" in twice.output
    gone = runner.invoke(args=["oauth-sessions", "delete-resource-server", body["id"], "--yes"])
    assert gone.exit_code == 0
    assert runner.invoke(args=["oauth-sessions", "delete-resource-server", body["id"],
                               "--yes"]).exit_code == 1
    assert runner.invoke(args=["oauth-sessions", "delete-resource-server", "nope",
                               "--yes"]).exit_code == 2


def test_a_client_id_is_never_taken_for_a_resource_server(engine: Engine) -> None:
    """A resource server's id is looked up only when no client has it: a client keeps its
    own credentials and rules even at /introspect."""
    s = setup(engine)
    rs, secret = create_client(s.app, name="introspecting client", can_introspect=True)
    assert secret
    token = s.tokens([])["access_token"]
    answer = s.http.post("/oauth/introspect", data={"token": token},
                         headers={"Authorization": basic_auth(rs.client_id, secret)})
    assert answer.json["active"] is True
