"""A live oauth_sessions server on 127.0.0.1 for clients that speak real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from factories import create_client, create_user, make_app
from flask import Flask
from sqlalchemy import Engine
from werkzeug.serving import make_server

REDIRECT_URI = "http://127.0.0.1:9/callback"


@dataclass
class LiveServer:
    app: Flask
    issuer: str
    client_id: str
    client_secret: str
    public_client_id: str
    user_id: str


@pytest.fixture
def live_server(engine: Engine) -> Iterator[LiveServer]:
    holder: dict[str, Flask] = {}

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        return holder["app"](environ, start_response)

    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    issuer = f"http://127.0.0.1:{server.port}"
    app = make_app(engine, issuer=issuer)
    holder["app"] = app
    client, secret = create_client(app, redirect_uris=[REDIRECT_URI])
    public, _ = create_client(app, name="SPA", redirect_uris=[REDIRECT_URI], public=True,
                              scopes="openid offline_access")
    assert secret is not None
    user = create_user(engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveServer(app, issuer, client.client_id, secret, public.client_id, str(user))
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
