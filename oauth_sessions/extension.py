"""The Flask extension: ``OAuthSessions(app)`` or ``OAuthSessions().init_app(app)``.

Per-app state lives in ``app.extensions["oauth_sessions"]`` (an :class:`AppState`),
never on the extension object, so one extension instance can serve several apps
(app factories, tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Engine

from .database import create_auth_engine
from .settings import ConfigurationError, Settings, load_settings

EXTENSION_KEY = "oauth_sessions"


@dataclass
class AppState:
    """Everything the library keeps for one Flask app."""

    settings: Settings
    engine: Engine
    components: dict[str, Any] = field(default_factory=dict)


class OAuthSessions:
    """Plug a session-backed OAuth 2.1 / OpenID Connect provider into a Flask app.

    Options given here use the settings' short names (``issuer=...``) and win over
    ``app.config["OAUTH_SESSIONS_..."]``. An ``engine`` may be passed to share the
    host's SQLAlchemy engine; otherwise one is made from the settings.
    """

    def __init__(self, app: Flask | None = None, *, engine: Engine | None = None,
                 **options: Any) -> None:
        self._options = options
        self._engine = engine
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "oauth_sessions is already initialised on this app; call init_app once per app"
            )
        settings = load_settings(app.config, self._options)
        engine = self._engine
        if engine is None:
            if not settings.database_url:
                raise ConfigurationError(
                    "OAUTH_SESSIONS_DATABASE_URL (or SQLALCHEMY_DATABASE_URI) is required: "
                    "the SQLAlchemy URL of the database holding the auth schema"
                )
            engine = create_auth_engine(settings.database_url)
        state = AppState(settings=settings, engine=engine)
        app.extensions[EXTENSION_KEY] = state
        from .cli import cli

        if "oauth-sessions" not in app.cli.commands:
            app.cli.add_command(cli)


def get_state(app: Flask | None = None) -> AppState:
    """The library's state for ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    try:
        state: AppState = target.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "oauth_sessions is not initialised on this app: call OAuthSessions(app) or "
            "OAuthSessions().init_app(app) first"
        ) from None
    return state
