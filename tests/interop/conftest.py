"""A live oauth_sessions server on 127.0.0.1 for clients that speak real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from factories import create_client, create_user, make_app
from flask import Flask
from sqlalchemy import Engine
from werkzeug.serving import make_server

from oauth_sessions.flask.resource import ResourceProtector, current_token

REDIRECT_URI = "http://127.0.0.1:9/callback"


@dataclass
class LiveServer:
    app: Flask
    issuer: str
    client_id: str
    client_secret: str
    public_client_id: str
    user_id: str


@contextmanager
def _serve(engine: Engine, *, public_scopes: str = "openid offline_access",
           setup: Callable[[Flask], None] | None = None, **options: Any) -> Iterator[LiveServer]:
    """The app of ``make_app(engine, **options)`` on a free port of 127.0.0.1, with a
    confidential and a public client and one user; ``setup`` adds views to the app."""
    holder: dict[str, Flask] = {}

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        return holder["app"](environ, start_response)

    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    issuer = f"http://127.0.0.1:{server.port}"
    app = make_app(engine, issuer=issuer, **options)
    holder["app"] = app
    if setup is not None:
        setup(app)
    client, secret = create_client(app, redirect_uris=[REDIRECT_URI])
    public, _ = create_client(app, name="SPA", redirect_uris=[REDIRECT_URI], public=True,
                              scopes=public_scopes)
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


@pytest.fixture
def live_server(engine: Engine) -> Iterator[LiveServer]:
    with _serve(engine) as server:
        yield server


def _dpop_resource(app: Flask) -> None:
    """A protected resource of the provider's own app (local mode), for the DPoP flow."""
    protector = ResourceProtector.local(app)

    @app.get("/api/profile")
    @protector.require(scope="profile")
    def profile() -> dict[str, Any]:
        return {"sub": current_token().sub, "jkt": current_token().jkt}


@pytest.fixture(params=["nonces off", "nonces required"])
def dpop_server(request: pytest.FixtureRequest, engine: Engine) -> Iterator[LiveServer]:
    """The live server with a DPoP-protected resource, with and without required nonces."""
    required = request.param == "nonces required"
    with _serve(engine, dpop_nonce_required=required, public_scopes="openid profile offline_access",
                setup=_dpop_resource) as server:
        yield server


@pytest.fixture
def registration_server(engine: Engine) -> Iterator[LiveServer]:
    """Dynamic registration on, and EdDSA for access tokens and for the ID tokens of clients
    that chose no alg (issue 20 items 4 and 5: what independent relying parties tripped on)."""
    with _serve(engine, dynamic_registration=True, signing_alg="EdDSA",
                id_token_signing_alg="EdDSA") as server:
        yield server


@pytest.fixture
def par_server(engine: Engine) -> Iterator[LiveServer]:
    """Every client must push its authorization requests (RFC 9126 section 5)."""
    with _serve(engine, require_pushed_authorization_requests=True) as server:
        yield server
