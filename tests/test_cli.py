"""``flask oauth-sessions`` client and key commands, as scripts use them."""

from __future__ import annotations

import json

from factories import make_app
from sqlalchemy import Engine, func, select

from oauth_sessions import get_state
from oauth_sessions.storage.clients import verify_client_secret
from oauth_sessions.storage.models import OAuthSigningKey


def _run(app, *args: str):  # type: ignore[no-untyped-def]
    return app.test_cli_runner().invoke(args=["oauth-sessions", *args])


def test_create_client_json_prints_one_object_with_id_and_secret(engine: Engine) -> None:
    app = make_app(engine)
    result = _run(app, "create-client", "--name", "Billing", "--redirect-uri", "https://b.example/cb",
                  "--redirect-uri", "https://b.example/cb2", "--scope", "openid profile offline_access",
                  "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    info = get_state(app).services.clients.get(body["client_id"], fresh=True)
    assert info is not None and info.name == "Billing"
    assert info.redirect_uris == ("https://b.example/cb", "https://b.example/cb2")
    assert info.scopes == ("openid", "profile", "offline_access")
    assert info.type == "confidential" and info.can_introspect is False
    assert verify_client_secret(body["client_secret"], info.secret_hash)


def test_create_public_and_introspecting_clients(engine: Engine) -> None:
    app = make_app(engine)
    public = json.loads(_run(app, "create-client", "--name", "SPA", "--redirect-uri",
                             "http://127.0.0.1:3000/cb", "--public", "--json").output)
    assert "client_secret" not in public and public["token_endpoint_auth_method"] == "none"
    rs = json.loads(_run(app, "create-client", "--name", "API", "--redirect-uri",
                         "https://api.example/cb", "--introspect", "--json").output)
    assert rs["can_introspect"] is True and rs["client_secret"]


def test_create_client_refuses_bad_input_with_a_usage_error(engine: Engine) -> None:
    app = make_app(engine)
    result = _run(app, "create-client", "--name", "x", "--redirect-uri", "https://x/cb#f", "--json")
    assert result.exit_code == 2 and "fragment" in result.output
    result = _run(app, "create-client", "--name", "x", "--redirect-uri", "https://x/cb",
                  "--public", "--introspect", "--json")
    assert result.exit_code == 2
    assert get_state(app).services.clients.list() == []


def test_list_rotate_and_delete(engine: Engine) -> None:
    app = make_app(engine)
    created = json.loads(_run(app, "create-client", "--name", "A", "--redirect-uri",
                              "https://a.example/cb", "--json").output)
    listed = json.loads(_run(app, "list-clients", "--json").output)
    assert [c["client_id"] for c in listed] == [created["client_id"]]
    assert "client_secret" not in listed[0]
    rotated = json.loads(_run(app, "rotate-secret", created["client_id"], "--json").output)
    store = get_state(app).services.clients
    info = store.get(created["client_id"], fresh=True)
    assert verify_client_secret(rotated["client_secret"], info.secret_hash)
    assert not verify_client_secret(created["client_secret"], info.secret_hash)
    assert _run(app, "delete-client", created["client_id"], "--yes").exit_code == 0
    assert store.get(created["client_id"], fresh=True) is None
    again = _run(app, "delete-client", created["client_id"], "--yes")
    assert again.exit_code == 1 and "no client" in again.output
    assert _run(app, "rotate-secret", "not-a-uuid").exit_code == 2


def test_delete_client_ends_its_sessions(engine: Engine) -> None:
    from test_revocation import Issued

    issued = Issued(engine)
    assert issued.sessions() == 1
    result = _run(issued.app, "delete-client", issued.client.client_id, "--yes")
    assert result.exit_code == 0
    assert issued.sessions() == 0 and issued.userinfo_status() == 401


def test_rotate_keys_adds_an_active_key_and_keeps_the_old_one_published(engine: Engine) -> None:
    app = make_app(engine)
    http = app.test_client()
    first = {k["kid"]: k["alg"] for k in http.get("/oauth/jwks").json["keys"]}
    assert sorted(first.values()) == ["ES256", "RS256"]  # access-token and ID-token keys
    result = _run(app, "rotate-keys", "--alg", "RS256")
    assert result.exit_code == 0 and "RS256" in result.output and "ES256" not in result.output
    keys = http.get("/oauth/jwks").json["keys"]
    assert keys[0]["alg"] == "RS256" and keys[0]["kid"] not in first
    assert {k["kid"] for k in keys[1:]} == set(first)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(OAuthSigningKey.__table__)).scalar() == 3
    both = _run(app, "rotate-keys")
    assert both.exit_code == 0
    assert both.output.count("active signing key") == 2
    assert "(ES256)" in both.output and "(RS256)" in both.output
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(OAuthSigningKey.__table__)).scalar() == 5


def test_create_private_key_jwt_client_from_a_jwks_file(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from joserfc import jwk

    key = jwk.generate_key("EC", "P-256", parameters={"kid": "cli"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    app = make_app(engine)
    result = _run(app, "create-client", "--name", "J", "--redirect-uri", "https://j.example/cb",
                  "--auth-method", "private_key_jwt", "--jwks", str(path), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert "client_secret" not in body and body["token_endpoint_auth_method"] == "private_key_jwt"
    assert body["jwks"]["keys"][0]["kid"] == "cli"


def test_purge_deletes_only_what_can_never_be_used_again(engine: Engine) -> None:
    from datetime import UTC, datetime, timedelta

    from factories import create_client, create_user, obtain_code, pkce_pair
    from freezegun import freeze_time

    from oauth_sessions.storage.models import OAuthAuthorizationCode

    app = make_app(engine)
    client, _ = create_client(app)
    http = app.test_client()
    user = create_user(engine)
    start = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    with freeze_time(start):
        obtain_code(http, client, user, pkce_pair()[1])
    with freeze_time(start + timedelta(hours=2)):
        obtain_code(http, client, user, pkce_pair()[1])
    with freeze_time(start + timedelta(days=1, minutes=2)):
        result = _run(app, "purge")
    assert result.exit_code == 0 and "1 authorization codes" in result.output
    with engine.connect() as conn:
        left = conn.execute(select(func.count()).select_from(OAuthAuthorizationCode.__table__)).scalar()
    assert left == 1
