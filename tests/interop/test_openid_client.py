"""Interoperability with openid-client v6 (npm, Node 20) against a live server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import LiveServer

HERE = Path(__file__).parent
pytestmark = pytest.mark.slow


def _run_node(server: LiveServer) -> dict:  # type: ignore[type-arg]
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "openid-client").is_dir():
        # Locally the rest of the suite runs without Node; under CI=true the suite turns this
        # skip into a failure (tests/conftest.py), and `make test` provisions npm first.
        pytest.skip("node or tests/interop/node_modules is missing: sudo apt-get install npm, "
                    "then make test (it runs npm ci)")
    env = {**os.environ, "ISSUER": server.issuer, "CLIENT_ID": server.client_id,
           "CLIENT_SECRET": server.client_secret, "PUBLIC_CLIENT_ID": server.public_client_id,
           "USER_ID": server.user_id, "REDIRECT_URI": "http://127.0.0.1:9/callback"}
    done = subprocess.run([node, str(HERE / "flow.mjs")], cwd=HERE, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result: dict = json.loads(done.stdout)  # type: ignore[type-arg]
    return result


def test_openid_client_runs_discovery_pkce_refresh_userinfo_and_revocation(
        live_server: LiveServer) -> None:
    result = _run_node(live_server)
    assert result["discovered_issuer"] == live_server.issuer
    assert result["callback_iss"] == live_server.issuer
    claims = result["id_token_claims"]
    assert claims["iss"] == live_server.issuer and claims["aud"] == live_server.client_id
    assert claims["sub"] == live_server.user_id
    assert claims["acr"] == "aal1" and claims["amr"] == ["password"]
    assert claims["sid"] and claims["nonce"] and claims["at_hash"] and claims["auth_time"]
    assert result["scope"] == "openid profile offline_access"
    assert result["token_type"].lower() == "bearer" and result["has_refresh_token"] is True
    assert result["userinfo"]["sub"] == live_server.user_id and result["userinfo"]["name"]
    assert result["refresh_rotated"] is True
    assert result["refreshed_claims"]["sid"] == claims["sid"]
    assert result["refreshed_claims"]["auth_time"] == claims["auth_time"]
    # the revoked session's access token is refused with a Bearer challenge
    assert result["userinfo_after_revoke"] == "OAUTH_WWW_AUTHENTICATE_CHALLENGE"
    assert result["second_flow_ok"] is True
    assert result["mixup_rejected"] == "OAUTH_INVALID_RESPONSE"  # foreign iss refused
    assert result["public_sub"] == live_server.user_id and result["public_refreshed"] is True
