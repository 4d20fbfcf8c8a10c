"""Rules every client registration obeys, whichever way it comes in (issue 15 items 8, 10, 17
and the "Also" item on redirect URIs): ``ClientStore``, the CLI and RFC 7591/7592."""

from __future__ import annotations

from typing import Any

import pytest
from factories import (
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
    snapshot,
    user_headers,
)
from sqlalchemy import Engine

from oauth_sessions import get_state
from oauth_sessions.core.client_rules import MAX_CLIENT_SCOPE, name_is_taken
from oauth_sessions.flask.cli import cli

METADATA = {"redirect_uris": ["https://rp.example/cb"], "client_name": "RP",
            "scope": "openid profile"}


def _register(http: Any, body: Any) -> Any:
    return http.post("/oauth/register", json=body)


def _nested(depth: int) -> str:
    return '{"redirect_uris": ["https://rp.example/cb"], "x": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("raw", [
    _nested(2000),                                       # RecursionError in the JSON parser
    _nested(50),                                         # parses, but deeper than the bound
    '{"redirect_uris": ["https://rp.example/cb"], "client_name": "\\ud800"}',  # lone surrogate
    '{"redirect_uris": ["https://rp.example/cb"], "client_name": "a\\u0000b"}',  # NUL
    '{"redirect_uris": ["https://rp.example/cb"], "client_name": "a\\u001bb"}',  # ESC
    '{"redirect_uris": ["https://rp.example/cb"], "client_name": "a\\u0085b"}',  # C1 control
    '{"redirect_uris": ["https://rp.example/cb"], "unknown\\u0000": "ignored"}',  # in a key
    '{"redirect_uris": ["https://rp.example/cb"], "contacts": ["\\udfff"]}',  # unknown field
])
def test_issue15_item10_hostile_registration_bodies_are_400_and_write_nothing(
        engine: Engine, raw: str) -> None:
    http = make_app(engine, dynamic_registration=True).test_client()
    before = snapshot(engine)
    response = http.post("/oauth/register", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client_metadata"
    assert snapshot(engine) == before


def test_issue15_item10_hostile_update_bodies_are_400_and_change_nothing(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    http = app.test_client()
    created = _register(http, METADATA).json
    uri = "/oauth/register/" + created["client_id"]
    read = http.get(uri, headers={"Authorization": "Bearer " + created["registration_access_token"]})
    auth = {"Authorization": "Bearer " + read.json["registration_access_token"]}
    before = snapshot(engine)
    cid = created["client_id"]
    for raw in (_nested(2000), '{"client_id": "' + cid + '", "client_name": "\\ud800"}',
                '{"client_id": "' + cid + '", "client_name": "x\\u0000"}'):
        response = http.put(uri, data=raw, content_type="application/json", headers=auth)
        assert response.status_code == 400
        assert response.json["error"] == "invalid_client_metadata"
    assert snapshot(engine) == before


def test_issue15_item17_scopes_beyond_the_consent_column_are_refused_at_registration(
        engine: Engine) -> None:
    """At MAX_CLIENT_SCOPE characters the client registers and can be authorized; one more is a
    clear ValueError at registration instead of a constraint failure at consent."""
    app = make_app(engine)
    store = get_state(app).components["clients"]

    def scopes_of_length(n: int) -> str:
        head = "openid s"
        return head + "x" * (n - len(head))

    fits = scopes_of_length(MAX_CLIENT_SCOPE)
    info, secret = create_client(app, scopes=fits)
    assert len(" ".join(info.scopes)) == MAX_CLIENT_SCOPE
    verifier, challenge = pkce_pair()
    user = create_user(engine)
    http = app.test_client()
    code = obtain_code(http, info, user, challenge)["code"]
    assert exchange_code(http, info, secret, code, verifier).status_code == 200
    before = snapshot(engine)
    with pytest.raises(ValueError, match="at most 2048 characters"):
        create_client(app, scopes=scopes_of_length(MAX_CLIENT_SCOPE + 1))
    with pytest.raises(ValueError, match="at most 2048 characters"):
        store.update_metadata(info.id, scope=scopes_of_length(MAX_CLIENT_SCOPE + 1))
    with pytest.raises(ValueError, match="client name has at most 1024"):
        create_client(app, name="n" * 1025)
    with pytest.raises(ValueError, match="at most 20"):
        create_client(app, redirect_uris=[f"https://rp.example/{i}" for i in range(21)])
    assert snapshot(engine) == before
    assert create_client(app, name="n" * 1024)[0].name == "n" * 1024


def test_issue15_item17_the_cli_reports_an_oversized_scope_list(engine: Engine) -> None:
    app = make_app(engine)
    before = snapshot(engine)
    result = app.test_cli_runner().invoke(cli, [
        "create-client", "--name", "Big", "--redirect-uri", "https://rp.example/cb",
        "--scope", "openid " + "x" * 5000])
    assert result.exit_code == 2 and "at most 2048 characters" in result.output
    assert "Traceback" not in result.output
    assert snapshot(engine) == before


@pytest.mark.parametrize("uri", ["http://rp.example/cb", "HTTP://rp.example/cb",
                                 "http://10.0.0.1/cb", "http://127.0.0.1.nip.io/cb"])
def test_issue15_also_plain_http_redirects_to_non_loopback_hosts_are_refused(
        engine: Engine, uri: str) -> None:
    app = make_app(engine, dynamic_registration=True)
    before = snapshot(engine)
    with pytest.raises(ValueError, match="redirect URI 1: plain http"):
        create_client(app, redirect_uris=[uri])
    response = _register(app.test_client(), METADATA | {"redirect_uris": [uri]})
    assert response.status_code == 400 and response.json["error"] == "invalid_redirect_uri"
    result = app.test_cli_runner().invoke(cli, ["create-client", "--name", "X",
                                                "--redirect-uri", uri])
    assert result.exit_code == 2 and "plain http" in result.output
    assert snapshot(engine) == before


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8765/cb", "http://[::1]/cb",
                                 "http://localhost:3000/cb", "https://rp.example/cb",
                                 "com.example.app:/cb"])
def test_issue15_also_loopback_http_https_and_private_schemes_stay_allowed(
        engine: Engine, uri: str) -> None:
    info, _ = create_client(make_app(engine), redirect_uris=[uri], public=True)
    assert info.redirect_uris == (uri,)


def test_issue15_also_the_bad_uri_error_names_its_line(engine: Engine) -> None:
    with pytest.raises(ValueError, match="redirect URI 2: URI must not contain a fragment"):
        create_client(make_app(engine), redirect_uris=["https://rp.example/a", "https://rp.example/b#x"])


def _authorize(http: Any, info: Any, user: Any, redirect_uri: str, challenge: str) -> Any:
    """/authorize, approving the consent page if it comes."""
    response = http.get("/oauth/authorize", headers=user_headers(user), query_string={
        "response_type": "code", "client_id": info.client_id, "redirect_uri": redirect_uri,
        "scope": "openid", "state": "s", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    if response.status_code == 200 and response.is_json and response.json.get("consent"):
        form = dict(response.json["form_fields"]) | {"decision": "approve"}
        response = http.post(response.json["action"], data=form, headers=user_headers(user))
    return response


def test_issue15_also_loopback_redirects_of_native_clients_match_on_any_port(
        engine: Engine) -> None:
    """RFC 8252 section 7.3: the port of a loopback IP redirect URI is not compared for a public
    (native) client; path, query, scheme and host still are, and the token request must repeat
    the URI used at /authorize."""
    app = make_app(engine)
    http = app.test_client()
    info, _ = create_client(app, public=True, scopes="openid",
                            redirect_uris=["http://127.0.0.1/cb?x=1", "http://[::1]:8000/cb"])
    user = create_user(engine)
    verifier, challenge = pkce_pair()
    response = _authorize(http, info, user, "http://127.0.0.1:51004/cb?x=1", challenge)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("http://127.0.0.1:51004/cb?x=1&code=")
    code = response.headers["Location"].split("code=", 1)[1].split("&", 1)[0]
    token = http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": info.client_id,
        "redirect_uri": "http://127.0.0.1:51004/cb?x=1", "code_verifier": verifier})
    assert token.status_code == 200
    assert _authorize(http, info, user, "http://[::1]:1/cb", challenge).status_code == 302
    for wrong in ("http://127.0.0.1:51004/cb?x=2", "http://127.0.0.1:51004/cb/", "http://[::1]:8000/cb?x=1",
                  "http://localhost:51004/cb?x=1", "https://127.0.0.1:51004/cb?x=1",
                  "http://127.0.0.1:99999/cb?x=1", "http://127.0.0.1:80@evil.example/cb?x=1"):
        response = _authorize(http, info, user, wrong, challenge)
        assert response.status_code == 400, wrong
        assert response.json["error_description"] == "redirect_uri is not registered for this client"


def test_issue15_also_confidential_clients_keep_exact_loopback_matching(engine: Engine) -> None:
    app = make_app(engine)
    info, _ = create_client(app, redirect_uris=["http://127.0.0.1:8000/cb"], scopes="openid")
    _, challenge = pkce_pair()
    response = _authorize(app.test_client(), info, create_user(engine),
                          "http://127.0.0.1:8001/cb", challenge)
    assert response.status_code == 400


@pytest.mark.parametrize("copy", ["Demo client app", "demo CLIENT app", "  Demo  client  app ",
                                  "\uff24\uff45\uff4d\uff4f client app", "Demo client app\u200b",
                                  "D\u00e9mo client app",
                                  "D\u0435mo client app",  # Cyrillic e
                                  "Demo-client-app", "Dem0 client app"])
def test_issue15_item8_unverified_clients_cannot_take_a_verified_clients_name(
        engine: Engine, copy: str) -> None:
    app = make_app(engine, dynamic_registration=True)
    create_client(app, name="Demo client app")  # verified, as the seed makes it
    before = snapshot(engine)
    with pytest.raises(ValueError, match="belongs to a verified app"):
        create_client(app, name=copy, verified=False)
    response = _register(app.test_client(), METADATA | {"client_name": copy})
    assert response.status_code == 400 and response.json["error"] == "invalid_client_metadata"
    assert snapshot(engine) == before
    assert create_client(app, name="Demo client app two", verified=False)[0].verified is False


def test_issue15_item8_an_unverified_client_cannot_rename_itself_to_a_verified_name(
        engine: Engine) -> None:
    app = make_app(engine)
    store = get_state(app).components["clients"]
    create_client(app, name="Bank")
    mine, _ = create_client(app, name="Mine", verified=False)
    with pytest.raises(ValueError, match="belongs to a verified app"):
        store.update_metadata(mine.id, client_name="BANK")
    assert store.get(mine.id, fresh=True).name == "Mine"


def test_issue15_item8_name_comparison_is_not_too_eager() -> None:
    assert not name_is_taken("PhotoPrint Pro", ["PhotoPrint"])
    assert not name_is_taken("", ["Demo"])
    assert name_is_taken("\uff30\uff28\uff2f\uff34\uff2f\uff30\uff32\uff29\uff2e\uff34", ["PhotoPrint"])


def test_issue15_item7_cli_clients_are_verified_unless_told_otherwise(engine: Engine) -> None:
    import json

    app = make_app(engine)
    runner = app.test_cli_runner()
    vetted = json.loads(runner.invoke(cli, ["create-client", "--name", "A", "--redirect-uri",
                                            "https://a.example/cb", "--json"]).output)
    stranger = json.loads(runner.invoke(cli, ["create-client", "--name", "B", "--unverified",
                                              "--redirect-uri", "https://b.example/cb",
                                              "--json"]).output)
    assert vetted["verified"] is True and stranger["verified"] is False
    assert runner.invoke(cli, ["verify-client", stranger["client_id"]]).exit_code == 0
    store = get_state(app).components["clients"]
    assert store.get(stranger["client_id"], fresh=True).verified is True
    assert runner.invoke(cli, ["verify-client", "--undo", stranger["client_id"]]).exit_code == 0
    assert store.get(stranger["client_id"], fresh=True).verified is False


def test_issue15_item7_dynamically_registered_clients_are_unverified(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    body = _register(app.test_client(), METADATA).json
    assert get_state(app).components["clients"].get(body["client_id"]).verified is False


def test_issue15_item8_a_deleted_verified_clients_name_is_free_again(engine: Engine) -> None:
    app = make_app(engine)
    store = get_state(app).components["clients"]
    gone, _ = create_client(app, name="Retired App")
    with pytest.raises(ValueError, match="belongs to a verified app"):
        create_client(app, name="retired app", verified=False)
    assert store.delete(gone.id)
    assert create_client(app, name="retired app", verified=False)[0].name == "retired app"
