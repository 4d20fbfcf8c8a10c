"""Builders of test data and a tiny test host, shared by the test modules.

``HeaderHost`` is the test stand-in for a host application: the signed-in user, their aal, amr
and auth_time come from request headers (``X-Test-User``, ``X-Test-Aal``, ``X-Test-Amr``,
``X-Test-Auth-Time``), login and step-up answer with recognisable redirects, and the consent
page is the :class:`~oauth_sessions.flask.host.ConsentRequest` as JSON, so a test can post its
``form_fields`` back like a browser would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Flask, jsonify, redirect, request
from flask.testing import FlaskClient
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine, event, insert

from oauth_sessions import Aal, OAuthSessions, get_state
from oauth_sessions.flask.host import ConsentRequest, HostAdapter
from oauth_sessions.storage.clients import ClientInfo
from oauth_sessions.storage.models import User
from oauth_sessions.storage.sessions import AmrEntry

ISSUER = "http://127.0.0.1:5000"
REDIRECT_URI = "https://client.example/cb"


def create_user(engine: Engine, email: str | None = None) -> uuid.UUID:
    """An ``auth.users`` row (sessions reference it)."""
    user_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(insert(User.__table__).values(
            id=user_id, email=email or f"{user_id.hex[:12]}@example.test",
            created_at=datetime.now(UTC), updated_at=datetime.now(UTC)))
    return user_id


def create_client(app: Flask, *, name: str = "Test client",
                  redirect_uris: Sequence[str] = (REDIRECT_URI,),
                  scopes: str = "openid profile offline_access", public: bool = False,
                  **options: Any) -> tuple[ClientInfo, str | None]:
    """A client registered through the app's ClientStore: (record, secret or None).

    Verified (as an operator's CLI registration is) unless ``verified=False`` is passed."""
    options.setdefault("verified", True)
    result: tuple[ClientInfo, str | None] = get_state(app).services.clients.create(
        name=name, redirect_uris=list(redirect_uris), scopes=scopes, public=public, **options)
    return result


class HeaderHost(HostAdapter):
    """Who is signed in comes from test headers; pages are JSON or plain redirects."""

    claims_supported = ("name", "email")

    def current_authentication(self) -> Any:
        from oauth_sessions.flask.host import Authentication

        user = request.headers.get("X-Test-User")
        if not user:
            return None
        auth_time = datetime.fromtimestamp(
            int(request.headers.get("X-Test-Auth-Time", int(datetime.now(UTC).timestamp()))), UTC)
        amr = [AmrEntry(m, auth_time) for m in
               request.headers.get("X-Test-Amr", "password").split(",") if m]
        return Authentication(user_id=uuid.UUID(user), aal=Aal(request.headers.get("X-Test-Aal", "aal1")),
                              amr=amr, auth_time=auth_time)

    def login(self, next_url: str, prompt: str | None) -> ResponseReturnValue:
        return redirect("/test-login?" + urlencode({"next": next_url, "prompt": prompt or ""}))

    def step_up(self, next_url: str, required_aal: Aal) -> ResponseReturnValue:
        return redirect("/test-step-up?" + urlencode({"next": next_url, "aal": required_aal.value}))

    def render_consent(self, request_info: ConsentRequest) -> ResponseReturnValue:
        return jsonify(consent=True, client_id=request_info.client.client_id,
                       scopes=list(request_info.scopes),
                       granted_scopes=list(request_info.granted_scopes),
                       action=request_info.action, form_fields=list(request_info.form_fields))

    def userinfo(self, user_id: uuid.UUID, scopes: Sequence[str]) -> dict[str, Any]:
        claims: dict[str, Any] = {}
        if "profile" in scopes:
            claims["name"] = f"User {user_id.hex[:6]}"
        if "email" in scopes:
            claims["email"] = f"{user_id.hex[:12]}@example.test"
        return claims


def make_app(engine: Engine, *, host: HostAdapter | None = None, **options: Any) -> Flask:
    """A Flask app with the extension on ``engine`` and the header test host."""
    app = Flask("oauth_sessions_test")
    app.config.update(TESTING=True, SECRET_KEY="test-secret-key-" + secrets.token_hex(8))
    options.setdefault("issuer", ISSUER)
    OAuthSessions(app, engine=engine, host=host or HeaderHost(), **options)
    return app


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636 section 4.1/4.2."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def user_headers(user_id: uuid.UUID, *, aal: str = "aal1", amr: str = "password",
                 auth_time: int | None = None) -> dict[str, str]:
    headers = {"X-Test-User": str(user_id), "X-Test-Aal": aal, "X-Test-Amr": amr}
    if auth_time is not None:
        headers["X-Test-Auth-Time"] = str(auth_time)
    return headers


def query_of(location: str) -> dict[str, str]:
    """The single-valued query parameters of a redirect ``Location``."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize_params(client: ClientInfo, challenge: str, **extra: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": client.client_id,
              "redirect_uri": client.redirect_uris[0], "scope": " ".join(client.scopes),
              "state": "st-" + secrets.token_hex(4), "code_challenge": challenge,
              "code_challenge_method": "S256", "nonce": "n-" + secrets.token_hex(4)}
    params.update(extra)
    return params


def obtain_code(http: FlaskClient, client: ClientInfo, user_id: uuid.UUID, challenge: str,
                *, headers: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """Run /authorize (approving consent if asked) and return the redirect's query."""
    headers = headers or user_headers(user_id)
    params = authorize_params(client, challenge, **extra)
    response = http.get("/oauth/authorize", query_string=params, headers=headers)
    if response.status_code == 200 and response.is_json and response.json.get("consent"):
        form = dict(response.json["form_fields"])
        form["decision"] = "approve"
        response = http.post(response.json["action"], data=form, headers=headers)
    assert response.status_code == 302, response.get_data(as_text=True)
    return query_of(response.headers["Location"])


def exchange_code(http: FlaskClient, client: ClientInfo, secret: str | None, code: str,
                  verifier: str, **extra: str) -> Any:
    """POST the code to /token with client_secret_basic (or none for public clients)."""
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": client.redirect_uris[0], "code_verifier": verifier, **extra}
    headers = {}
    if secret is not None:
        headers["Authorization"] = basic_auth(client.client_id, secret)
    else:
        data["client_id"] = client.client_id
    return http.post("/oauth/token", data=data, headers=headers)


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS, decoded without verifying anything: what a test reads
    of a token the provider issued (``sid``, ``aud``, ``cnf`` ...)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements SQLAlchemy sends while the block runs (statements that bypass it, such
    as the prepared libpq reads on PostgreSQL, are not seen)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def snapshot(engine: Engine, *, ledgers: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the OAuth tables, to prove that a refused request wrote nothing.

    ``ledgers``: also the one-time ``jti`` ledgers, pushed requests and DPoP bindings, for a
    request refused before any of them may be written (a request that passes client
    authentication or a DPoP check and fails later has rightly used up its ``jti``).
    """
    from sqlalchemy import select

    from oauth_sessions.storage.models import (
        MfaAmrClaim,
        OAuthAuthorizationCode,
        OAuthClient,
        OAuthClientAssertion,
        OAuthClientSettings,
        OAuthConsent,
        OAuthDpopBinding,
        OAuthDpopProof,
        OAuthPushedRequest,
        OAuthResourceServer,
        OAuthSessionResources,
        OAuthSigningKey,
        Session,
    )

    models: list[Any] = [Session, MfaAmrClaim, OAuthAuthorizationCode, OAuthConsent, OAuthClient,
                         OAuthClientSettings, OAuthSigningKey, OAuthResourceServer,
                         OAuthSessionResources]
    if ledgers:
        models += [OAuthClientAssertion, OAuthDpopProof, OAuthDpopBinding, OAuthPushedRequest]
    result: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for model in models:
            table = model.__table__
            rows = conn.execute(select(table)).all()
            result[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return result
