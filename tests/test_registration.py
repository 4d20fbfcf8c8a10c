"""Dynamic client registration (RFC 7591) and management (RFC 7592)."""

from __future__ import annotations

from typing import Any

import pytest
from factories import create_user, exchange_code, make_app, obtain_code, pkce_pair, snapshot
from sqlalchemy import Engine

from oauth_sessions import get_state
from oauth_sessions.storage.clients import verify_client_secret

METADATA = {"redirect_uris": ["https://rp.example/cb"], "client_name": "RP",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile offline_access", "unknown_field": "ignored"}


def _register(http: Any, body: Any, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.post("/oauth/register", json=body, headers=headers)


def test_registration_is_off_by_default(engine: Engine) -> None:
    http = make_app(engine).test_client()
    assert _register(http, METADATA).status_code == 404


def test_registered_client_completes_the_code_flow(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    http = app.test_client()
    response = _register(http, METADATA)
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["client_secret"] and body["client_secret_expires_at"] == 0
    assert body["registration_access_token"] and body["client_id_issued_at"] > 0
    assert body["registration_client_uri"].endswith("/oauth/register/" + body["client_id"])
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert "unknown_field" not in body
    info = get_state(app).services.clients.get(body["client_id"])
    assert info.registration_type == "dynamic" and info.can_introspect is False
    assert body["registration_access_token"] not in (info.registration_access_token_hash or "")
    verifier, challenge = pkce_pair()
    user = create_user(engine)
    code = obtain_code(http, info, user, challenge)["code"]
    assert exchange_code(http, info, body["client_secret"], code, verifier).status_code == 200


@pytest.mark.parametrize(("change", "error"), [
    ({"redirect_uris": []}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://rp.example/cb#x"]}, "invalid_redirect_uri"),
    ({"redirect_uris": "https://rp.example/cb"}, "invalid_redirect_uri"),
    ({"grant_types": ["implicit"]}, "invalid_client_metadata"),
    ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
    ({"response_types": ["token"]}, "invalid_client_metadata"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
    ({"scope": "openid admin"}, "invalid_client_metadata"),
    ({"client_name": "x" * 2000}, "invalid_client_metadata"),
    ({"logo_uri": "javascript:alert(1)"}, "invalid_client_metadata"),
    # Supabase Auth's CHECK limits and encodings, refused before any database error (issue 17):
    ({"client_uri": "https://rp.example/" + "a" * 2030}, "invalid_client_metadata"),
    ({"logo_uri": "https://rp.example/" + "a" * 2030}, "invalid_client_metadata"),
    ({"redirect_uris": ["https://rp.example/" + "a" * 2030]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["https://rp.example/cb,https://evil.example/cb"]},
     "invalid_redirect_uri"),
])
def test_bad_metadata_is_refused_and_writes_nothing(engine: Engine, change: dict[str, Any],
                                                     error: str) -> None:
    http = make_app(engine, dynamic_registration=True).test_client()
    before = snapshot(engine)
    response = _register(http, METADATA | change)
    assert response.status_code == 400 and response.json["error"] == error
    assert snapshot(engine) == before


def test_issue17_uris_at_supabase_limit_register(engine: Engine) -> None:
    """2,048 characters is Supabase's limit itself: accepted, stored as given."""
    http = make_app(engine, dynamic_registration=True).test_client()
    uri = "https://rp.example/" + "a" * (2048 - len("https://rp.example/"))
    response = _register(http, METADATA | {"client_uri": uri, "logo_uri": uri})
    assert response.status_code == 201, response.json
    assert response.json["client_uri"] == uri and response.json["logo_uri"] == uri


@pytest.mark.parametrize("body", [None, [], "text"])
def test_non_object_bodies_are_invalid_client_metadata(engine: Engine, body: Any) -> None:
    http = make_app(engine, dynamic_registration=True).test_client()
    response = (http.post("/oauth/register", data="{not json", content_type="application/json")
                if body is None else _register(http, body))
    assert response.status_code == 400 and response.json["error"] == "invalid_client_metadata"


def test_initial_access_token_guards_registration(engine: Engine) -> None:
    http = make_app(engine, dynamic_registration=True,
                    registration_initial_access_token="let-me-in").test_client()
    assert _register(http, METADATA).status_code == 401
    assert _register(http, METADATA, token="wrong").status_code == 401
    assert _register(http, METADATA, token="let-me-in").status_code == 201


def test_public_client_registration_gets_no_secret(engine: Engine) -> None:
    http = make_app(engine, dynamic_registration=True).test_client()
    body = _register(http, METADATA | {"token_endpoint_auth_method": "none"}).json
    assert "client_secret" not in body and body["token_endpoint_auth_method"] == "none"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


def test_management_read_update_delete_with_the_registration_token(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True)
    http = app.test_client()
    created = _register(http, METADATA).json
    uri = "/oauth/register/" + created["client_id"]
    assert http.get(uri).status_code == 401
    assert http.get(uri, headers=_bearer("nope")).status_code == 401
    read = http.get(uri, headers=_bearer(created["registration_access_token"]))
    assert read.status_code == 200 and read.json["client_name"] == "RP"
    assert "client_secret" not in read.json
    update = {k: v for k, v in read.json.items() if k != "registration_access_token"}
    update |= {"client_name": "RP 2", "redirect_uris": ["https://rp.example/new"]}
    updated = http.put(uri, json=update, headers=_bearer(read.json["registration_access_token"]))
    assert updated.status_code == 200 and updated.json["client_name"] == "RP 2"
    info = get_state(app).services.clients.get(created["client_id"], fresh=True)
    assert info.redirect_uris == ("https://rp.example/new",)
    assert verify_client_secret(created["client_secret"], info.secret_hash)  # secret unchanged
    current = _bearer(updated.json["registration_access_token"])
    wrong_id = http.put(uri, json=update | {"client_id": "other"}, headers=current)
    assert wrong_id.status_code == 400
    assert http.delete(uri, headers=current).status_code == 204
    assert http.get(uri, headers=current).status_code == 401
    assert get_state(app).services.clients.get(created["client_id"], fresh=True) is None


def test_issue15_also_rfc7592_answers_carry_a_fresh_token_and_retire_the_old(
        engine: Engine) -> None:
    """RFC 7592 section 3: GET and PUT answers include registration_access_token; only its hash
    is stored, so each answer issues a new one and the one presented stops working."""
    app = make_app(engine, dynamic_registration=True)
    http = app.test_client()
    created = _register(http, METADATA).json
    uri = "/oauth/register/" + created["client_id"]
    first = created["registration_access_token"]
    read = http.get(uri, headers=_bearer(first))
    second = read.json["registration_access_token"]
    assert read.status_code == 200 and second and second != first
    info = get_state(app).services.clients.get(created["client_id"], fresh=True)
    assert verify_client_secret(second, info.registration_access_token_hash)
    assert second not in (info.registration_access_token_hash or "")
    assert http.get(uri, headers=_bearer(first)).status_code == 401  # retired
    body = {k: v for k, v in read.json.items() if k != "registration_access_token"}
    put = http.put(uri, json=body, headers=_bearer(second))
    third = put.json["registration_access_token"]
    assert put.status_code == 200 and third not in (first, second)
    assert http.get(uri, headers=_bearer(second)).status_code == 401
    assert http.get(uri, headers=_bearer(third)).status_code == 200


@pytest.mark.postgres
def test_issue15_also_rfc7592_two_racing_reads_with_one_token_get_one_new_token(
        pg_engine: Engine) -> None:
    """The swap of the token hash is a compare-and-swap: of threads presenting the same token at
    once, exactly one gets a new token (the others 401), and that token is the one stored."""
    import threading

    app = make_app(pg_engine, dynamic_registration=True)
    created = _register(app.test_client(), METADATA).json
    uri = "/oauth/register/" + created["client_id"]
    barrier = threading.Barrier(6)
    answers: list[Any] = []

    def read() -> None:
        http = app.test_client()
        barrier.wait()
        answers.append(http.get(uri, headers=_bearer(created["registration_access_token"])))

    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [a for a in answers if a.status_code == 200]
    assert len(ok) == 1 and sorted(a.status_code for a in answers) == [200] + [401] * 5
    info = get_state(app).services.clients.get(created["client_id"], fresh=True)
    assert verify_client_secret(ok[0].json["registration_access_token"],
                                info.registration_access_token_hash)


def test_manually_created_clients_cannot_be_managed_through_registration(engine: Engine) -> None:
    from factories import create_client

    app = make_app(engine, dynamic_registration=True)
    info, _ = create_client(app)
    response = app.test_client().get("/oauth/register/" + info.client_id,
                                     headers={"Authorization": "Bearer anything"})
    assert response.status_code == 401


def test_discovery_advertises_the_registration_endpoint_when_enabled(engine: Engine) -> None:
    doc = make_app(engine, dynamic_registration=True).test_client().get(
        "/.well-known/openid-configuration").json
    assert doc["registration_endpoint"].endswith("/oauth/register")


def test_private_key_jwt_registration_needs_public_jwks(engine: Engine) -> None:
    from joserfc import jwk

    http = make_app(engine, dynamic_registration=True).test_client()
    key = jwk.generate_key("EC", "P-256", parameters={"kid": "k"})
    method = {"token_endpoint_auth_method": "private_key_jwt"}
    missing = _register(http, METADATA | method)
    assert missing.status_code == 400 and missing.json["error"] == "invalid_client_metadata"
    private = _register(http, METADATA | method | {"jwks": {"keys": [key.as_dict(private=True)]}})
    assert private.status_code == 400
    ok = _register(http, METADATA | method | {"jwks": {"keys": [key.as_dict(private=False)]}})
    assert ok.status_code == 201 and "client_secret" not in ok.json
    assert ok.json["jwks"]["keys"][0]["kid"] == "k"


PRODUCTION = "https://issuer.example"


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:6379/",            # loopback over http on a production deployment
    "https://localhost/logout",          # this machine, whatever the scheme
    "http://rp.example/logout",          # https is required (OIDC Back-Channel Logout 2.2)
    "https://169.254.169.254/latest",    # cloud metadata address
    "https://10.0.0.5/logout",           # private network
    "https://[::ffff:127.0.0.1]/",       # loopback dressed as IPv6
    "https://2130706433/",               # 127.0.0.1 in the decimal form resolvers accept
    "https://admin:pw@rp.example/logout",
    "https://rp.example/logout#frag",
    "ftp://rp.example/logout",
    ["https://rp.example/logout"],
])
def test_backchannel_logout_uri_cannot_aim_the_server_at_internal_hosts(
        engine: Engine, uri: Any) -> None:
    http = make_app(engine, dynamic_registration=True, issuer=PRODUCTION).test_client()
    before = snapshot(engine)
    response = _register(http, METADATA | {"backchannel_logout_uri": uri})
    assert response.status_code == 400 and response.json["error"] == "invalid_client_metadata"
    description = response.json["error_description"]
    assert description and (not isinstance(uri, str) or uri not in description)  # no echo
    assert snapshot(engine) == before


def test_an_https_backchannel_logout_uri_is_accepted_in_production(engine: Engine) -> None:
    http = make_app(engine, dynamic_registration=True, issuer=PRODUCTION).test_client()
    response = _register(http, METADATA | {"backchannel_logout_uri": "https://rp.example/bc"})
    assert response.status_code == 201
    assert response.json["backchannel_logout_uri"] == "https://rp.example/bc"


def test_loopback_http_backchannel_is_only_for_a_loopback_issuer(engine: Engine) -> None:
    body = METADATA | {"backchannel_logout_uri": "http://127.0.0.1:9000/bc"}
    development = make_app(engine, dynamic_registration=True).test_client()  # http://127.0.0.1
    assert _register(development, body).status_code == 201
    production = make_app(engine, dynamic_registration=True, issuer=PRODUCTION).test_client()
    assert _register(production, body).status_code == 400


@pytest.mark.parametrize("key", ["redirect_uris", "post_logout_redirect_uris"])
def test_redirect_uris_with_userinfo_are_refused(engine: Engine, key: str) -> None:
    http = make_app(engine, dynamic_registration=True).test_client()
    before = snapshot(engine)
    response = _register(http, METADATA | {key: ["https://rp.example@evil.example/cb"]})
    assert response.status_code == 400
    assert response.json["error"] == ("invalid_redirect_uri" if key == "redirect_uris"
                                      else "invalid_client_metadata")
    assert snapshot(engine) == before


def test_an_update_cannot_point_the_backchannel_inside_either(engine: Engine) -> None:
    app = make_app(engine, dynamic_registration=True, issuer=PRODUCTION)
    http = app.test_client()
    created = _register(http, METADATA).json
    uri = "/oauth/register/" + created["client_id"]
    current = http.get(uri, headers=_bearer(created["registration_access_token"])).json
    auth = _bearer(current.pop("registration_access_token"))
    before = snapshot(engine)
    response = http.put(uri, headers=auth,
                        json=current | {"backchannel_logout_uri": "https://192.168.1.1/"})
    assert response.status_code == 400 and response.json["error"] == "invalid_client_metadata"
    assert snapshot(engine) == before


@pytest.mark.parametrize(("change", "description"), [
    ({"subject_type": "pairwise"}, "subject_type must be public"),  # no PAIRWISE_SALT here
    ({"subject_type": 1}, "subject_type must be public"),
    ({"sector_identifier_uri": "https://rp.example/sector.json"},
     "sector_identifier_uri is not supported: this server fetches no client documents; a "
     "pairwise client's sector is the one host of its redirect URIs"),
    ({"id_token_encrypted_response_alg": "RSA-OAEP"},
     "encrypted ID tokens are not supported: leave out id_token_encrypted_response_alg"),
    # A signed UserInfo alg is supported now, but only one the provider holds a key of.
    ({"userinfo_signed_response_alg": "HS256"},
     "userinfo_signed_response_alg must be one of RS256, ES256"),
    ({"userinfo_signed_response_alg": "none"},
     "userinfo_signed_response_alg must be one of RS256, ES256"),
    ({"userinfo_encrypted_response_enc": "A128GCM"},
     "encrypted UserInfo answers are not supported: leave out userinfo_encrypted_response_enc"),
])
def test_issue20_metadata_that_would_change_the_wire_is_refused_not_ignored(
        engine: Engine, change: dict[str, Any], description: str) -> None:
    """Unknown metadata is ignored (RFC 7591 section 2), but these are known and not done:
    ignoring ``subject_type=pairwise`` (on a provider without ``PAIRWISE_SALT``) would silently
    give a privacy-minded client public subjects. Refused, naming what to do, nothing written."""
    app = make_app(engine, dynamic_registration=True)
    get_state(app).services.keys.keyset()
    before = snapshot(engine)
    response = _register(app.test_client(), {**METADATA, **change})
    assert response.status_code == 400
    assert response.json == {"error": "invalid_client_metadata", "error_description": description}
    assert snapshot(engine) == before


def test_issue20_subject_type_public_is_accepted(engine: Engine) -> None:
    http = make_app(engine, dynamic_registration=True).test_client()
    assert _register(http, {**METADATA, "subject_type": "public"}).status_code == 201
