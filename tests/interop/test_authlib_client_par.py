"""Pushed authorization requests (RFC 9126) from Authlib's client against a live server.

Authlib's client has no PAR helper: the request it builds for the authorization endpoint is
pushed with its own client authentication (``OAuth2ClientAuth``, client_secret_basic), and
the rest of the flow (code exchange, ID token validation) is Authlib's.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.requests_client.oauth2_session import OAuth2ClientAuth
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken
from conftest import REDIRECT_URI, LiveServer
from test_authlib_client import _browser_login

from oauth_sessions import get_state

pytestmark = pytest.mark.slow


def test_authlib_client_pushes_its_request_and_exchanges_the_code(par_server: LiveServer) -> None:
    meta = requests.get(par_server.issuer + "/.well-known/openid-configuration", timeout=10).json()
    session = OAuth2Session(par_server.client_id, par_server.client_secret,
                            scope="openid profile", redirect_uri=REDIRECT_URI,
                            code_challenge_method="S256",
                            token_endpoint_auth_method="client_secret_basic")
    verifier, nonce = generate_token(48), generate_token(16)
    built, state = session.create_authorization_url(meta["authorization_endpoint"],
                                                    code_verifier=verifier, nonce=nonce)
    params = {k: v[0] for k, v in parse_qs(urlsplit(built).query).items()}
    auth = OAuth2ClientAuth(par_server.client_id, par_server.client_secret,
                            auth_method="client_secret_basic")
    pushed = requests.post(meta["pushed_authorization_request_endpoint"], data=params, auth=auth,
                           timeout=10)
    assert pushed.status_code == 201, pushed.text
    reference = pushed.json()["request_uri"]
    url = meta["authorization_endpoint"] + "?" + urlencode(
        {"client_id": par_server.client_id, "request_uri": reference})
    callback = _browser_login(par_server, url)
    assert parse_qs(urlsplit(callback).query)["state"] == [state]
    token = session.fetch_token(meta["token_endpoint"], authorization_response=callback,
                                code_verifier=verifier)
    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(token["id_token"], keys, claims_cls=CodeIDToken,
                        claims_options={"iss": {"essential": True, "value": meta["issuer"]}},
                        claims_params={"nonce": nonce, "client_id": par_server.client_id,
                                       "access_token": token["access_token"]})
    claims.validate()
    assert claims["sub"] == par_server.user_id
    # The same request_uri again: refused, shown to the person, not redirected.
    again = requests.get(url, headers={"X-Test-User": par_server.user_id},
                         allow_redirects=False, timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_request_uri"


def test_authlib_client_pushes_two_resources_and_gets_a_token_for_each(
        par_server: LiveServer) -> None:
    """RFC 8707 with RFC 9126: both pushed ``resource`` values are granted, and Authlib's code
    exchange and refresh, each naming one, get an access token meant for that one alone."""
    api, mail = "https://api.example.test", "https://mail.example.test"
    servers = get_state(par_server.app).services.resource_servers
    servers.create(api, name="API")
    servers.create(mail, name="Mail")
    meta = requests.get(par_server.issuer + "/.well-known/openid-configuration", timeout=10).json()
    session = OAuth2Session(par_server.client_id, par_server.client_secret,
                            scope="openid offline_access", redirect_uri=REDIRECT_URI,
                            code_challenge_method="S256",
                            token_endpoint_auth_method="client_secret_basic")
    verifier = generate_token(48)
    built, _ = session.create_authorization_url(meta["authorization_endpoint"],
                                                code_verifier=verifier)
    params = [(k, v[0]) for k, v in parse_qs(urlsplit(built).query).items()]
    auth = OAuth2ClientAuth(par_server.client_id, par_server.client_secret,
                            auth_method="client_secret_basic")
    endpoint = meta["pushed_authorization_request_endpoint"]
    unknown = requests.post(endpoint, data=[*params, ("resource", "https://other.example.test")],
                            auth=auth, timeout=10)
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_target"
    pushed = requests.post(endpoint, data=[*params, ("resource", api), ("resource", mail)],
                           auth=auth, timeout=10)
    assert pushed.status_code == 201, pushed.text
    url = meta["authorization_endpoint"] + "?" + urlencode(
        {"client_id": par_server.client_id, "request_uri": pushed.json()["request_uri"]})
    token = session.fetch_token(meta["token_endpoint"], authorization_response=_browser_login(
        par_server, url), code_verifier=verifier, resource=mail)
    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    assert jwt.decode(token["access_token"], keys)["aud"] == mail
    refreshed = session.refresh_token(meta["token_endpoint"], resource=api)
    assert jwt.decode(refreshed["access_token"], keys)["aud"] == api
