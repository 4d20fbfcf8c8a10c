"""RFC 8414 and OpenID Connect Discovery documents, and the JWKS they point to."""

from __future__ import annotations

from factories import ISSUER, make_app
from sqlalchemy import Engine


def test_both_documents_are_identical_and_name_this_issuer(engine: Engine) -> None:
    http = make_app(engine).test_client()
    oidc = http.get("/.well-known/openid-configuration")
    rfc8414 = http.get("/.well-known/oauth-authorization-server")
    assert oidc.status_code == rfc8414.status_code == 200
    assert oidc.json == rfc8414.json
    assert oidc.json["issuer"] == ISSUER


def test_document_lists_exactly_what_is_supported(engine: Engine) -> None:
    doc = make_app(engine).test_client().get("/.well-known/openid-configuration").json
    assert doc["response_types_supported"] == ["code"]
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_modes_supported"] == ["query"]
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    assert "HS256" not in doc["token_endpoint_auth_signing_alg_values_supported"]
    # OIDC Discovery 1.0 section 3: RS256 MUST be listed; it is also the default ID token alg.
    # ES256 (SIGNING_ALG's key) can sign ID tokens of clients that register it.
    assert doc["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["request_parameter_supported"] is False
    assert doc["request_uri_parameter_supported"] is False
    assert {"openid", "offline_access"} <= set(doc["scopes_supported"])
    assert {"sid", "acr", "amr", "auth_time", "nonce", "at_hash"} <= set(doc["claims_supported"])
    assert "registration_endpoint" not in doc  # dynamic registration is off by default


def test_every_advertised_endpoint_exists(engine: Engine) -> None:
    http = make_app(engine).test_client()
    doc = http.get("/.well-known/openid-configuration").json
    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                "revocation_endpoint", "introspection_endpoint"):
        assert doc[key].startswith(ISSUER + "/oauth/")
        path = doc[key][len(ISSUER):]
        assert http.open(path, method="OPTIONS").status_code == 200, key


def test_signing_alg_setting_is_what_discovery_and_jwks_say(engine: Engine) -> None:
    http = make_app(engine, signing_alg="EdDSA", id_token_signing_alg="EdDSA").test_client()
    doc = http.get("/.well-known/openid-configuration").json
    assert doc["id_token_signing_alg_values_supported"] == ["RS256", "EdDSA"]
    keys = {k["alg"]: k for k in http.get("/oauth/jwks").json["keys"]}
    # issue 20 item 4: RS256 was listed without a key; OIDC Core 15.1 needs one published.
    assert sorted(keys) == ["EdDSA", "RS256"] and keys["EdDSA"]["crv"] == "Ed25519"


def test_access_and_id_token_algs_each_get_a_published_key(engine: Engine) -> None:
    http = make_app(engine, signing_alg="EdDSA").test_client()
    doc = http.get("/.well-known/openid-configuration").json
    assert doc["id_token_signing_alg_values_supported"] == ["RS256", "EdDSA"]
    keys = http.get("/oauth/jwks").json["keys"]
    assert sorted(k["alg"] for k in keys) == ["EdDSA", "RS256"]


def test_jwks_publishes_public_keys_only(engine: Engine) -> None:
    http = make_app(engine, signing_alg="RS256").test_client()
    for key in http.get("/oauth/jwks").json["keys"]:
        assert key["use"] == "sig" and key["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
