"""RFC 8707 resource indicators from independent clients against a live server on 127.0.0.1:
openid-client v6 (node, ``resource.mjs``) and Authlib's OAuth 2.0 client (Python), each also
introspecting as the registered resource servers with their own credentials."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from conftest import REDIRECT_URI, LiveServer
from test_authlib_client import _browser_login
from test_openid_client import _run_node

from oauth_sessions import get_state

API = "https://api.example.test/v1"
MAIL = "https://mail.example.test"
OTHER = "https://other.example.test"
pytestmark = pytest.mark.slow


@pytest.fixture
def servers(live_server: LiveServer) -> Iterator[dict[str, tuple[str, str]]]:
    """The two registered resource servers: URI -> (id, secret)."""
    store = get_state(live_server.app).services.resource_servers
    registered = {}
    for uri in (API, MAIL):
        info, secret = store.create(uri)
        registered[uri] = (info.client_id, secret)
    yield registered


def aud(token: str) -> Any:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["aud"]


def test_openid_client_names_resources_and_each_resource_server_sees_its_own(
        live_server: LiveServer, servers: dict[str, tuple[str, str]]) -> None:
    result = _run_node(live_server, "resource.mjs", {
        "REDIRECT_URI": REDIRECT_URI, "API": API, "MAIL": MAIL, "OTHER": OTHER,
        "API_ID": servers[API][0], "API_SECRET": servers[API][1],
        "MAIL_ID": servers[MAIL][0], "MAIL_SECRET": servers[MAIL][1]})
    assert result["code_aud"] == API
    assert result["id_token_aud"] == live_server.client_id  # the ID token stays the client's
    assert result["api_sees_api_token"] is True and result["mail_sees_api_token"] is False
    assert result["refresh_aud"] == MAIL
    assert result["mail_sees_mail_token"] is True and result["api_sees_mail_token"] is False
    assert result["widen_error"] == "invalid_target"
    assert result["after_refusal_aud"] == API
    assert result["userinfo_with_api_token"] == "OAUTH_WWW_AUTHENTICATE_CHALLENGE"


def test_authlib_client_names_a_resource_and_refresh_cannot_widen_it(
        live_server: LiveServer, servers: dict[str, tuple[str, str]]) -> None:
    meta = requests.get(live_server.issuer + "/.well-known/openid-configuration", timeout=10).json()
    session = OAuth2Session(live_server.client_id, live_server.client_secret,
                            scope="openid offline_access", redirect_uri=REDIRECT_URI,
                            code_challenge_method="S256",
                            token_endpoint_auth_method="client_secret_basic")
    verifier = generate_token(48)
    url, _ = session.create_authorization_url(meta["authorization_endpoint"],
                                              code_verifier=verifier, resource=API)
    assert parse_qs(urlsplit(url).query)["resource"] == [API]
    token = session.fetch_token(meta["token_endpoint"],
                                authorization_response=_browser_login(live_server, url),
                                code_verifier=verifier, resource=API)
    assert aud(token["access_token"]) == API

    def introspect(uri: str, access_token: str) -> Any:
        rs = OAuth2Session(*servers[uri], token_endpoint_auth_method="client_secret_basic")
        response = rs.introspect_token(meta["introspection_endpoint"], access_token)
        assert response.status_code == 200
        return response.json()

    assert introspect(API, token["access_token"])["active"] is True
    assert introspect(MAIL, token["access_token"]) == {"active": False}

    with pytest.raises(OAuthError) as caught:
        session.refresh_token(meta["token_endpoint"], resource=MAIL)  # granted: API only
    assert caught.value.error == "invalid_target"
    refreshed = session.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert aud(refreshed["access_token"]) == API  # the refused refresh rotated nothing
