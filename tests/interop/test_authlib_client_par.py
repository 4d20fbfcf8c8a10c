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
