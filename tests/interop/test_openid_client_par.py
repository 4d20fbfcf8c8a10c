"""Pushed authorization requests (RFC 9126) from openid-client v6 against a live server."""

from __future__ import annotations

import pytest
from conftest import LiveServer
from test_openid_client import _run_node

from oauth_sessions.storage.pushed_requests import REQUEST_URI_PREFIX

pytestmark = pytest.mark.slow


def test_openid_client_pushes_its_requests_and_completes_the_flow(par_server: LiveServer) -> None:
    result = _run_node(par_server, "par.mjs")
    assert result["par_endpoint"] == par_server.issuer + "/oauth/par"
    assert result["require_par"] is True
    # The browser carried the reference only, and openid-client got and validated its tokens.
    assert result["authorize_query_keys"] == ["client_id", "request_uri"]
    assert result["request_uri"].startswith(REQUEST_URI_PREFIX)
    claims = result["id_token_claims"]
    assert claims["aud"] == par_server.client_id and claims["sub"] == par_server.user_id
    assert claims["nonce"]
    assert result["scope"] == "openid profile offline_access"
    assert result["userinfo"]["sub"] == par_server.user_id
    assert (result["replay_status"], result["replay_error"]) == (400, "invalid_request_uri")
    assert (result["plain_status"], result["plain_error"]) == (302, "invalid_request")
    assert result["public_sub"] == par_server.user_id
