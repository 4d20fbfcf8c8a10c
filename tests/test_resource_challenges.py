"""The resource helper's answers (RFC 6750 section 3, RFC 9470 section 3, RFC 9728), with a fake validator.

Local and remote validation against the real provider are in ``test_resource_modes.py``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from freezegun import freeze_time

from oauth_sessions.core.types import Aal
from oauth_sessions.flask.resource import (
    Challenge,
    ResourceProtector,
    TokenInfo,
    TokenValidator,
    current_token,
    metadata_url,
    www_authenticate,
)

NOW = 1_780_000_000


def info(scope: str = "openid profile", aal: str = "aal1", auth_time: int | None = NOW - 60) -> TokenInfo:
    return TokenInfo.from_introspection({
        "active": True, "sub": "user-1", "client_id": "client-1", "scope": scope, "aal": aal,
        "sid": "sid-1", "amr": ["pwd"], "auth_time": auth_time, "exp": NOW + 300,
    })


class FakeValidator(TokenValidator):
    def __init__(self, tokens: dict[str, TokenInfo]) -> None:
        self.tokens = tokens
        self.seen: list[str] = []

    def validate(self, token: str) -> TokenInfo:
        self.seen.append(token)
        if token not in self.tokens:
            raise Challenge(401, "invalid_token", "the access token is not active")
        return self.tokens[token]


def make_app(tokens: dict[str, TokenInfo], **protector_options: Any) -> tuple[Flask, FakeValidator]:
    app = Flask(__name__)
    validator = FakeValidator(tokens)
    protector = ResourceProtector(validator, realm="api", **protector_options)

    @app.get("/profile")
    @protector.require(scope="profile")
    def profile() -> dict[str, Any]:
        return {"sub": current_token().sub}

    @app.get("/payments")
    @protector.require(scope="profile", aal="aal2")
    def payments() -> dict[str, Any]:
        return {"aal": current_token().aal.value}

    @app.get("/recent")
    @protector.require(max_age=300)
    def recent() -> dict[str, Any]:
        return {"ok": True}

    return app, validator


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_request_without_a_token_gets_a_bare_challenge_without_an_error_code() -> None:
    app, _ = make_app({})
    response = app.test_client().get("/profile")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_an_inactive_token_gets_invalid_token() -> None:
    app, validator = make_app({})
    response = app.test_client().get("/profile", headers=bearer("nope"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token", error_description="the access token is not active"')
    assert response.json == {"error": "invalid_token", "error_description": "the access token is not active"}
    assert validator.seen == ["nope"]


def test_a_missing_scope_gets_403_insufficient_scope_naming_the_scope_needed() -> None:
    app, _ = make_app({"t": info(scope="openid")})
    response = app.test_client().get("/profile", headers=bearer("t"))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert 'scope="profile"' in response.headers["WWW-Authenticate"]
    assert response.json["error"] == "insufficient_scope"


def test_aal_too_low_gets_the_rfc9470_challenge_with_acr_values() -> None:
    app, _ = make_app({"t": info(aal="aal1")})
    response = app.test_client().get("/payments", headers=bearer("t"))
    assert response.status_code == 401
    header = response.headers["WWW-Authenticate"]
    assert header.startswith('Bearer realm="api", error="insufficient_user_authentication", ')
    assert 'acr_values="aal2"' in header
    assert response.json["error"] == "insufficient_user_authentication"


def test_a_token_at_the_required_aal_reaches_the_view_with_its_info() -> None:
    app, _ = make_app({"t": info(aal="aal2")})
    client = app.test_client()
    assert client.get("/payments", headers=bearer("t")).json == {"aal": "aal2"}
    assert client.get("/profile", headers=bearer("t")).json == {"sub": "user-1"}


def test_max_age_asks_for_a_fresh_authentication_once_auth_time_is_too_old() -> None:
    app, _ = make_app({"fresh": info(auth_time=NOW - 300), "old": info(auth_time=NOW - 301),
                       "unknown": info(auth_time=None)})
    client = app.test_client()
    with freeze_time(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(NOW))):
        assert client.get("/recent", headers=bearer("fresh")).status_code == 200
        old = client.get("/recent", headers=bearer("old"))
        unknown = client.get("/recent", headers=bearer("unknown"))
    assert old.status_code == unknown.status_code == 401
    assert 'error="insufficient_user_authentication"' in old.headers["WWW-Authenticate"]
    assert 'max_age="300"' in old.headers["WWW-Authenticate"]


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b", "Bearer  "])
def test_a_malformed_authorization_header_is_invalid_request(header: str) -> None:
    app, validator = make_app({"a": info()})
    response = app.test_client().get("/profile", headers={"Authorization": header})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert validator.seen == []


def test_another_scheme_or_a_query_token_counts_as_no_token() -> None:
    app, validator = make_app({"a": info()})
    client = app.test_client()
    basic = client.get("/profile", headers={"Authorization": "Basic YTpi"})
    query = client.get("/profile?access_token=a")
    assert basic.status_code == query.status_code == 401
    assert basic.headers["WWW-Authenticate"] == query.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert validator.seen == []


def test_challenges_point_to_the_protected_resource_metadata() -> None:
    app, _ = make_app({}, resource="https://api.example.com/v1")
    response = app.test_client().get("/profile", headers=bearer("x"))
    assert response.headers["WWW-Authenticate"].endswith(
        'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/v1"')


def test_quoted_values_escape_backslash_and_quote() -> None:
    header = www_authenticate(Challenge(401, "invalid_token", 'a "b" \\c'), realm="r", resource_metadata=None)
    assert header == 'Bearer realm="r", error="invalid_token", error_description="a \\"b\\" \\\\c"'


def test_the_metadata_url_inserts_the_well_known_segment_before_the_path() -> None:
    assert metadata_url("https://api.example.com") == (
        "https://api.example.com/.well-known/oauth-protected-resource")
    assert metadata_url("https://api.example.com/orders/") == (
        "https://api.example.com/.well-known/oauth-protected-resource/orders")


def test_protected_resource_metadata_is_served_at_the_well_known_url() -> None:
    app = Flask(__name__)
    protector = ResourceProtector(FakeValidator({}), resource="https://api.example.com/orders",
                                  authorization_servers=["https://id.example.com"])
    protector.init_app(app, scopes_supported=["orders"], resource_name="Orders")
    response = app.test_client().get("/.well-known/oauth-protected-resource/orders")
    assert response.status_code == 200
    assert response.json == {
        "resource": "https://api.example.com/orders",
        "authorization_servers": ["https://id.example.com"],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["orders"],
        "resource_name": "Orders",
    }


def test_current_token_outside_a_protected_view_says_how_to_use_it() -> None:
    app = Flask(__name__)
    with app.test_request_context(), pytest.raises(RuntimeError, match="require"):
        current_token()


def test_token_info_refuses_an_answer_without_sub_or_client_id() -> None:
    with pytest.raises(ValueError):
        TokenInfo.from_introspection({"active": True, "client_id": "c"})
    assert info(aal="aal2").aal is Aal.AAL2
