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


def _run_node(server: LiveServer, script: str = "flow.mjs",
              extra_env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    """Run ``script`` with node against ``server`` (``extra_env`` on top of the server's own
    variables); the JSON object it prints."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "openid-client").is_dir():
        # Locally the rest of the suite runs without Node; under CI=true the suite turns this
        # skip into a failure (tests/conftest.py), and `make test` provisions npm first.
        pytest.skip("node or tests/interop/node_modules is missing: sudo apt-get install npm, "
                    "then make test (it runs npm ci)")
    env = {**os.environ, "ISSUER": server.issuer, "CLIENT_ID": server.client_id,
           "CLIENT_SECRET": server.client_secret, "PUBLIC_CLIENT_ID": server.public_client_id,
           "USER_ID": server.user_id, "REDIRECT_URI": "http://127.0.0.1:9/callback",
           **(extra_env or {})}
    done = subprocess.run([node, str(HERE / script)], cwd=HERE, env=env, capture_output=True,
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


def test_openid_client_registers_dynamically_and_gets_rs256_and_the_standard_scopes(
        registration_server: LiveServer) -> None:
    """Issue 20 items 4 and 5, with the provider's own ID token alg set to EdDSA."""
    result = _run_node(registration_server, "registration.mjs")
    registered = result["registered"]
    assert registered["id_token_signed_response_alg"] == "RS256"
    assert registered["scope"] == "openid profile email address phone offline_access"
    assert result["plain_alg"] == "RS256"  # validated by openid-client with the JWKS
    assert result["plain_scope"] == "openid profile email"
    assert result["plain_claims"]["aud"] == registered["client_id"]
    assert result["userinfo"]["email"] and result["userinfo"]["name"]
    # RFC 6749 3.3: more than allowed is answered with the allowed subset, named in the response
    assert result["subset_scope"] == "openid profile email offline_access"
    assert result["subset_refreshed"] is True
    assert result["eddsa_registered_alg"] == "EdDSA" and result["eddsa_alg"] == "EdDSA"


def test_openid_client_binds_tokens_with_dpop_and_is_refused_without_its_key(
        dpop_server: LiveServer) -> None:
    """Issue 20 item 2 from an independent client: RFC 9449 end to end (proofs at the token
    endpoint, UserInfo and a resource; refresh bound to the key), with and without nonces."""
    from oauth_sessions.jose.dpop import DPOP_ALGS

    result = _run_node(dpop_server, "dpop.mjs")
    assert result["algs"] == list(DPOP_ALGS)
    assert result["token_type"].lower() == "dpop"
    jkt = result["cnf"]["jkt"]
    assert isinstance(jkt, str) and len(jkt) == 43
    assert result["refresh_prefix"] == "osb1_"
    assert result["userinfo"]["sub"] == result["sub"] == dpop_server.user_id
    assert result["resource_status"] == 200 and result["resource"]["jkt"] == jkt
    assert result["bearer_status"] == 401
    assert result["bearer_challenge"].startswith('DPoP error="invalid_token"')
    assert result["refresh_other_key"] == "invalid_grant"
    assert result["refresh_no_proof"] == "invalid_dpop_proof"
    assert result["refreshed_token_type"].lower() == "dpop"
    assert result["refreshed_cnf"] == {"jkt": jkt}
    assert result["refresh_rotated"] is True and result["refreshed_sid"] is True
    # RFC 9449 section 10.1: the proof sent with the pushed request bound the code to the key.
    assert result["pushed_token_type"].lower() == "dpop"
    assert result["pushed_cnf"] == {"jkt": jkt}
    assert result["pushed_other_key"] == "invalid_grant"
