"""A protected API in the same app: add ``add_api(app)`` at the end of ``create_app()``."""

from flask import Flask

from oauth_sessions.flask.resource import ResourceProtector, current_token


def add_api(app: Flask) -> None:
    protector = ResourceProtector.local(app)  # same database: one row read per request

    @app.get("/api/me")
    @protector.require(scope="openid")
    def me() -> dict[str, object]:
        token = current_token()
        return {"user": token.sub, "client": token.client_id, "aal": token.aal.value,
                "scopes": list(token.scopes)}
