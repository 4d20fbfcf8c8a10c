"""Settings are validated at start-up; a bad value names its key and what is allowed."""

from __future__ import annotations

import pytest
from flask import Flask

from oauth_sessions import Aal, ConfigurationError, OAuthSessions, get_state
from oauth_sessions.core.settings import load_settings

BASE = {"OAUTH_SESSIONS_ISSUER": "https://id.example.com", "SQLALCHEMY_DATABASE_URI": "sqlite://"}


def test_defaults() -> None:
    s = load_settings(BASE)
    assert s.issuer == "https://id.example.com"
    assert s.refresh_token_reuse_interval == 10
    assert s.database_url == "sqlite://"
    assert s.scope_min_aal == {}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("OAUTH_SESSIONS_REFRESH_TOKEN_REUSE_INTERVAL", 301, "from 0 to 300"),
        ("OAUTH_SESSIONS_REFRESH_TOKEN_REUSE_INTERVAL", "ten", "whole number"),
        ("OAUTH_SESSIONS_ACCESS_TOKEN_LIFETIME", 5, "from 30 to 86400"),
        ("OAUTH_SESSIONS_ISSUER", "http://id.example.com", "https URL"),
        ("OAUTH_SESSIONS_ISSUER", "https://id.example.com/?x=1", "https URL"),
        ("OAUTH_SESSIONS_SCOPE_MIN_AAL", {"pay": "aal9"}, "aal1, aal2, aal3"),
        ("OAUTH_SESSIONS_SIGNING_ALG", "HS256", "ES256, EdDSA, RS256"),
        ("OAUTH_SESSIONS_ALWAYS_ISSUE_REFRESH_TOKEN", "maybe", "true or false"),
        ("OAUTH_SESSIONS_TYPO", 1, "not a setting"),
        ("OAUTH_SESSIONS_ENCRYPTION_KEY_ID", "k2", "ENCRYPTION_KEYS is empty"),
    ],
)
def test_bad_values_name_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings({**BASE, key: value})
    assert key in str(info.value)
    assert message in str(info.value)


def test_issuer_is_required() -> None:
    with pytest.raises(ConfigurationError, match="OAUTH_SESSIONS_ISSUER is required"):
        load_settings({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_loopback_http_issuer_allowed_for_development() -> None:
    assert load_settings({**BASE, "OAUTH_SESSIONS_ISSUER": "http://127.0.0.1:5000/"}).issuer == (
        "http://127.0.0.1:5000"
    )


def test_aal_map_and_overrides() -> None:
    s = load_settings({**BASE, "OAUTH_SESSIONS_SCOPE_MIN_AAL": {"payments": "aal2"}},
                      {"refresh_token_reuse_interval": 0})
    assert s.scope_min_aal == {"payments": Aal.AAL2}
    assert s.refresh_token_reuse_interval == 0


def test_extension_fails_at_start_up_and_registers_state() -> None:
    app = Flask(__name__)
    app.config.update(BASE, OAUTH_SESSIONS_ACCESS_TOKEN_LIFETIME=0)
    with pytest.raises(ConfigurationError, match="OAUTH_SESSIONS_ACCESS_TOKEN_LIFETIME"):
        OAuthSessions(app)
    app = Flask(__name__)
    app.config.update(BASE, SECRET_KEY="test")
    ext = OAuthSessions()
    ext.init_app(app)
    assert get_state(app).settings.issuer == "https://id.example.com"
    assert not hasattr(ext, "app")
    with pytest.raises(RuntimeError, match="already initialised"):
        ext.init_app(app)


def test_get_state_without_init_says_how_to_fix() -> None:
    with pytest.raises(RuntimeError, match=r"OAuthSessions\(app\)"):
        get_state(Flask(__name__))
