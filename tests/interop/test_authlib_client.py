"""Interoperability with Authlib's own OAuth 2.0 / OIDC client against a live server."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken
from conftest import REDIRECT_URI, LiveServer

pytestmark = pytest.mark.slow


def _browser_login(server: LiveServer, url: str) -> str:
    """Sign in (test header) and approve consent; return the callback URL."""
    headers = {"X-Test-User": server.user_id, "X-Test-Amr": "password"}
    response = requests.get(url, headers=headers, allow_redirects=False, timeout=10)
    if response.status_code == 200:
        page = response.json()
        form = dict(page["form_fields"]) | {"decision": "approve"}
        response = requests.post(server.issuer + page["action"], data=form, headers=headers,
                                 allow_redirects=False, timeout=10)
    assert response.status_code == 302
    location: str = response.headers["Location"]
    return location


def test_authlib_client_code_flow_refresh_userinfo_revoke(live_server: LiveServer) -> None:
    meta = requests.get(live_server.issuer + "/.well-known/openid-configuration", timeout=10).json()
    session = OAuth2Session(live_server.client_id, live_server.client_secret,
                            scope="openid profile offline_access", redirect_uri=REDIRECT_URI,
                            code_challenge_method="S256",
                            token_endpoint_auth_method="client_secret_basic")
    verifier = generate_token(48)
    nonce = generate_token(16)
    url, state = session.create_authorization_url(meta["authorization_endpoint"],
                                                  code_verifier=verifier, nonce=nonce)
    callback = _browser_login(live_server, url)
    params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    assert params["state"] == state and params["iss"] == meta["issuer"]  # RFC 9207 check
    token = session.fetch_token(meta["token_endpoint"], authorization_response=callback,
                                code_verifier=verifier)
    assert token["token_type"] == "Bearer" and token["refresh_token"]

    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(token["id_token"], keys, claims_cls=CodeIDToken,
                        claims_options={"iss": {"essential": True, "value": meta["issuer"]}},
                        claims_params={"nonce": nonce, "client_id": live_server.client_id,
                                       "access_token": token["access_token"]})
    claims.validate()  # iss, aud, exp, iat, nonce, at_hash, auth_time
    assert claims["sub"] == live_server.user_id and claims["acr"] == "aal1"

    info = session.get(meta["userinfo_endpoint"], timeout=10)
    assert info.status_code == 200 and info.json()["sub"] == live_server.user_id

    refreshed = session.refresh_token(meta["token_endpoint"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    revoked = session.revoke_token(meta["revocation_endpoint"], refreshed["refresh_token"],
                                   token_type_hint="refresh_token")
    assert revoked.status_code == 200
    after = session.get(meta["userinfo_endpoint"], timeout=10)
    assert after.status_code == 401


def test_authlib_client_with_a_wrong_verifier_gets_invalid_grant(live_server: LiveServer) -> None:
    meta = requests.get(live_server.issuer + "/.well-known/openid-configuration", timeout=10).json()
    session = OAuth2Session(live_server.client_id, live_server.client_secret, scope="openid",
                            redirect_uri=REDIRECT_URI, code_challenge_method="S256")
    url, _ = session.create_authorization_url(meta["authorization_endpoint"],
                                              code_verifier=generate_token(48))
    callback = _browser_login(live_server, url)
    from authlib.integrations.base_client import OAuthError

    with pytest.raises(OAuthError) as caught:
        session.fetch_token(meta["token_endpoint"], authorization_response=callback,
                            code_verifier=generate_token(48))
    assert caught.value.error == "invalid_grant"


def test_authlib_client_authenticates_with_private_key_jwt(live_server: LiveServer) -> None:
    """RFC 7523 client assertions made by Authlib's own PrivateKeyJWT, verified by this server."""
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from joserfc import jwk

    from oauth_sessions import get_state

    key = jwk.generate_key("EC", "P-256", parameters={"kid": "rp-1"})
    info, secret = get_state(live_server.app).services.clients.create(
        name="JWT RP", redirect_uris=[REDIRECT_URI], scopes="openid offline_access",
        token_endpoint_auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]})
    assert secret is None
    meta = requests.get(live_server.issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    auth = PrivateKeyJWT(meta["token_endpoint"], alg="ES256")
    session = OAuth2Session(info.client_id, key, scope="openid offline_access",
                            redirect_uri=REDIRECT_URI, code_challenge_method="S256",
                            token_endpoint_auth_method=auth)
    verifier = generate_token(48)
    url, _ = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    callback = _browser_login(live_server, url)
    token = session.fetch_token(meta["token_endpoint"], authorization_response=callback,
                                code_verifier=verifier)
    assert token["access_token"] and token["refresh_token"]
    refreshed = session.refresh_token(meta["token_endpoint"])
    assert refreshed["access_token"] != token["access_token"]


def test_authlib_client_registered_without_scope_gets_a_subset_and_rs256(
        registration_server: LiveServer) -> None:
    """Issue 20 items 4 and 5: the provider signs its own ID tokens with EdDSA, yet a client
    that registered neither scope nor alg gets RS256 ID tokens and the standard scopes, and a
    request for more than allowed gets the allowed subset, named in the token response."""
    server = registration_server
    meta = requests.get(server.issuer + "/.well-known/openid-configuration", timeout=10).json()
    registered = requests.post(meta["registration_endpoint"], timeout=10,
                               json={"redirect_uris": [REDIRECT_URI]}).json()
    assert registered["id_token_signed_response_alg"] == "RS256"
    session = OAuth2Session(registered["client_id"], registered["client_secret"],
                            scope="openid profile email payments", redirect_uri=REDIRECT_URI,
                            code_challenge_method="S256",
                            token_endpoint_auth_method="client_secret_basic")
    verifier = generate_token(48)
    nonce = generate_token(16)
    url, _ = session.create_authorization_url(meta["authorization_endpoint"],
                                              code_verifier=verifier, nonce=nonce)
    token = session.fetch_token(meta["token_endpoint"],
                                authorization_response=_browser_login(server, url),
                                code_verifier=verifier)
    assert token["scope"] == "openid profile email"
    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(token["id_token"], keys, claims_cls=CodeIDToken,
                        claims_options={"iss": {"essential": True, "value": meta["issuer"]}},
                        claims_params={"nonce": nonce, "client_id": registered["client_id"],
                                       "access_token": token["access_token"]})
    claims.validate()
    assert claims.header["alg"] == "RS256"


def test_authlib_client_with_dpop_proofs_gets_bound_tokens(live_server: LiveServer) -> None:
    """RFC 9449 from Authlib's client (which has no DPoP of its own): the proofs are made with
    joserfc (tests/dpop_support.py) and sent as the extra ``DPoP`` header of each request."""
    from dpop_support import DpopKey

    meta = requests.get(live_server.issuer + "/.well-known/openid-configuration", timeout=10).json()
    token_url = meta["token_endpoint"]
    session = OAuth2Session(live_server.public_client_id, scope="openid offline_access",
                            redirect_uri=REDIRECT_URI, code_challenge_method="S256",
                            token_endpoint_auth_method="none")
    verifier = generate_token(48)
    url, _ = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    callback = _browser_login(live_server, url)
    key = DpopKey("EdDSA")
    token = session.fetch_token(token_url, authorization_response=callback, code_verifier=verifier,
                                headers={"DPoP": key.proof("POST", token_url)})
    assert token["token_type"] == "DPoP" and token["refresh_token"].startswith("osb1_")

    userinfo = meta["userinfo_endpoint"]
    access = token["access_token"]
    ok = requests.get(userinfo, timeout=10, headers={
        "Authorization": f"DPoP {access}", "DPoP": key.proof("GET", userinfo, access_token=access)})
    assert ok.status_code == 200 and ok.json()["sub"] == live_server.user_id
    as_bearer = requests.get(userinfo, timeout=10, headers={"Authorization": f"Bearer {access}"})
    assert as_bearer.status_code == 401

    from authlib.integrations.base_client import OAuthError

    with pytest.raises(OAuthError) as caught:
        session.refresh_token(token_url, refresh_token=token["refresh_token"])
    assert caught.value.error == "invalid_dpop_proof"
    refreshed = session.refresh_token(token_url, refresh_token=token["refresh_token"],
                                      headers={"DPoP": key.proof("POST", token_url)})
    assert refreshed["token_type"] == "DPoP"
    assert refreshed["refresh_token"] != token["refresh_token"]
