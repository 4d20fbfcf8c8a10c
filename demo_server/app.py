"""The demo provider: a Flask app built only on oauth_sessions' public API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, render_template

from oauth_sessions import OAuthSessions, get_state
from oauth_sessions.migrate import current_revision, upgrade

oauth = OAuthSessions()


def default_database_url() -> str:
    instance = Path(os.environ.get("DEMO_INSTANCE_DIR", Path.cwd() / "instance"))
    instance.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{instance / 'demo.db'}"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    port = os.environ.get("PORT", "5000")
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY") or os.urandom(32).hex(),
        OAUTH_SESSIONS_ISSUER=os.environ.get("ISSUER", f"http://127.0.0.1:{port}"),
        OAUTH_SESSIONS_DATABASE_URL=os.environ.get("DATABASE_URL") or default_database_url(),
    )
    if config:
        app.config.update(config)
    oauth.init_app(app)
    upgrade(get_state(app).engine)

    @app.get("/")
    def index() -> str:
        state = get_state()
        return render_template(
            "index.html",
            issuer=state.settings.issuer,
            revision=current_revision(state.engine),
            backend=state.engine.dialect.name,
        )

    return app
