"""A tiny third-party app that signs in with the demo provider (Authlib's Flask client).

Run it beside the provider: ``make demo-client`` (``python -m demo_server.client_app``) listens
on ``CLIENT_PORT`` (5001) and finds the provider on ``PROVIDER_PORT`` (5000) or at
``PROVIDER_URL``; ``make demo`` takes the same two variables (:mod:`demo_server.ports`). It reads
the seeded confidential client's credentials from the provider's ``instance/demo-clients.json``
unless ``CLIENT_ID`` / ``CLIENT_SECRET`` are set, and finds every endpoint through the
provider's discovery document. When the provider cannot be reached, a page says so and how to
start it, instead of a bare 500.

It shows the whole life of a session from the app's side: authorization code with PKCE,
the ID token's ``acr``/``amr``, calls to the provider's API, the way back to the provider
when ``/api/payments`` wants what the token lacks (its ``payments`` scope, RFC 6750, and
aal2, RFC 9470: one authorization request asks for both), refresh-token rotation, and
introspection, which all start failing the moment the person revokes the session on the provider.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from . import ports
from .seed import THIRD_PARTY_APP_NAME

SCOPE = "openid profile email offline_access"
PAYMENTS_SCOPE = f"{SCOPE} payments"  # asked for only with acr_values=aal2: it needs aal2
TIMEOUT = (3.0, 10.0)


class TokenVault:
    """Tokens per browser, kept in this process: never in a cookie, never in a log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] = {}

    def get(self, key: str | None) -> dict[str, Any] | None:
        with self._lock:
            return self._data.get(key) if key else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._data[key] = value

    def drop(self, key: str | None) -> None:
        with self._lock:
            self._data.pop(key or "", None)


def create_client_app(provider_url: str, client_id: str, client_secret: str) -> Flask:
    app = Flask(__name__, template_folder="templates/client", static_folder="static")
    app.config.update(
        SECRET_KEY=secrets.token_hex(32),
        # Both apps live on 127.0.0.1 and cookies ignore ports: a name of its own.
        SESSION_COOKIE_NAME="demo_client_app_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.jinja_env.globals["app_name"] = THIRD_PARTY_APP_NAME
    provider_url = provider_url.rstrip("/")
    oauth = OAuth(app)
    provider = oauth.register(
        "provider", client_id=client_id, client_secret=client_secret,
        server_metadata_url=f"{provider_url}/.well-known/openid-configuration",
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256",
                       "token_endpoint_auth_method": "client_secret_basic", "timeout": TIMEOUT[1]},
    )
    vault = TokenVault()

    def current() -> dict[str, Any] | None:
        return vault.get(session.get("vault_key"))

    def remember_result(title: str, status: int | None, body: Any, *, hint: str | None = None) -> None:
        record = current()
        if record is not None:
            record["result"] = {"title": title, "status": status, "body": body, "hint": hint}

    @app.get("/")
    def index() -> str:
        record = current()
        return render_template("client_index.html", record=record, provider_url=provider_url)

    @app.get("/login")
    def login() -> Response:
        extra: dict[str, str] = {}
        acr = request.args.get("acr_values")
        if acr in ("aal2", "aal3"):
            extra.update(acr_values=acr, scope=PAYMENTS_SCOPE)
        record = current()
        id_token = (record or {}).get("token", {}).get("id_token")
        if id_token:
            # Already signed in (a step-up, say): the hint names the session this one replaces,
            # and the provider ends it when the new one starts, so the person sees one session
            # of this app instead of two.
            extra["id_token_hint"] = id_token
        redirect_uri = url_for("callback", _external=True)
        response: Response = provider.authorize_redirect(redirect_uri, **extra)
        return response

    @app.get("/callback")
    def callback() -> Response | tuple[str, int]:
        if "error" in request.args:
            return render_template("client_error.html", error=request.args.get("error"),
                                   description=request.args.get("error_description")), 400
        try:
            token = provider.authorize_access_token()
        except OAuthError as exc:
            return render_template("client_error.html", error=exc.error,
                                   description=exc.description), 400
        # The ID token says who and how (sub, sid, acr, amr); the UserInfo endpoint adds the
        # profile claims the person allowed (OIDC Core section 5.3).
        claims = dict(token.get("userinfo") or {})
        try:
            profile = provider.userinfo(token=token)
        except (OAuthError, requests.RequestException):
            profile = {}
        claims.update({k: v for k, v in dict(profile).items() if k != "sub"})
        key = session.get("vault_key") or secrets.token_urlsafe(24)
        session["vault_key"] = key
        vault.put(key, {"token": dict(token), "claims": claims, "result": None})
        return redirect(url_for("index"))

    def call_api(path: str, title: str) -> Response:
        record = current()
        if record is None:
            return redirect(url_for("index"))
        response = requests.get(f"{provider_url}{path}", timeout=TIMEOUT, headers={
            "Authorization": f"Bearer {record['token']['access_token']}"})
        hint = None
        challenge = response.headers.get("WWW-Authenticate", "")
        if "insufficient_user_authentication" in challenge or (
                'error="insufficient_scope"' in challenge and 'scope="payments"' in challenge):
            hint = "step_up"
        elif 'error="invalid_token"' in challenge:
            hint = "ended"
        remember_result(title, response.status_code, _json(response), hint=hint)
        return redirect(url_for("index"))

    @app.post("/call/me")
    def call_me() -> Response:
        return call_api("/api/me", "GET /api/me")

    @app.post("/call/payments")
    def call_payments() -> Response:
        return call_api("/api/payments", "GET /api/payments")

    @app.post("/refresh")
    def refresh() -> Response:
        record = current()
        if record is None or not record["token"].get("refresh_token"):
            return redirect(url_for("index"))
        metadata = provider.load_server_metadata()
        response = requests.post(metadata["token_endpoint"], timeout=TIMEOUT, auth=(client_id, client_secret),
                                 data={"grant_type": "refresh_token",
                                       "refresh_token": record["token"]["refresh_token"]})
        body = _json(response)
        if response.ok and isinstance(body, dict):
            record["token"].update(body)
            shown: Any = {k: v for k, v in body.items() if k in ("token_type", "expires_in", "scope")}
            shown["note"] = "new access and refresh tokens received (not shown)"
        else:
            shown = body
        ended = isinstance(body, dict) and body.get("error") == "invalid_grant"
        remember_result("Refresh tokens", response.status_code, shown, hint="ended" if ended else None)
        return redirect(url_for("index"))

    @app.post("/introspect")
    def introspect() -> Response:
        record = current()
        if record is None:
            return redirect(url_for("index"))
        metadata = provider.load_server_metadata()
        response = requests.post(metadata["introspection_endpoint"], timeout=TIMEOUT,
                                 auth=(client_id, client_secret),
                                 data={"token": record["token"]["access_token"]})
        body = _json(response)
        ended = isinstance(body, dict) and body.get("active") is False
        remember_result("Introspect the access token", response.status_code, body,
                        hint="ended" if ended else None)
        return redirect(url_for("index"))

    @app.post("/logout")
    def logout() -> Response | str:
        """Sign out here, then offer RP-initiated logout at the provider as a POST form, so
        the ID token travels in a body and not in a URL that access logs print."""
        record = current()
        vault.drop(session.get("vault_key"))
        session.clear()
        id_token = (record or {}).get("token", {}).get("id_token")
        if not id_token:
            return redirect(url_for("index"))
        endpoint = provider.load_server_metadata().get("end_session_endpoint")
        return render_template("client_logged_out.html", end_session_endpoint=endpoint,
                               id_token=id_token)

    @app.errorhandler(requests.RequestException)
    def _provider_unreachable(exc: requests.RequestException) -> tuple[str, int]:
        # Discovery, the code exchange, the API calls: any of them fails the same way when the
        # provider is not running (or runs on another port). Only the exception's class is
        # shown: its text may carry a URL with a code or token in the query.
        app.logger.warning("provider at %s unreachable: %s", provider_url, type(exc).__name__)
        return render_template("client_unreachable.html", provider_url=provider_url,
                               reason=type(exc).__name__,
                               command=ports.provider_command(provider_url, request.host_url)), 502

    app.jinja_env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True)
    return app


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"body": response.text[:500]}


def _credentials(callback: str) -> tuple[str, str]:
    """The seeded client's id and secret; its registered redirect URIs must include ``callback``."""
    if os.environ.get("CLIENT_ID") and os.environ.get("CLIENT_SECRET"):
        return os.environ["CLIENT_ID"], os.environ["CLIENT_SECRET"]
    instance = Path(os.environ.get("DEMO_INSTANCE_DIR", Path.cwd() / "instance"))
    path = instance / "demo-clients.json"
    try:
        saved = json.loads(path.read_text())["confidential"]
        client_id, client_secret = str(saved["client_id"]), str(saved["client_secret"])
    except (OSError, ValueError, KeyError, TypeError):
        raise SystemExit(f"No client credentials: start the provider first (make demo) so that it "
                         f"writes {path}, or set CLIENT_ID and CLIENT_SECRET.") from None
    registered = saved.get("redirect_uris")
    if isinstance(registered, list) and registered and callback not in registered:
        # Otherwise every sign-in would end on the provider's "redirect_uri is not registered".
        port = urlsplit(callback).port
        raise SystemExit(f"The provider registered {', '.join(map(str, registered))} for this app, "
                         f"not {callback}: restart the provider with CLIENT_PORT={port} "
                         f"(make demo CLIENT_PORT={port}).")
    return client_id, client_secret


def main() -> None:
    port = ports.client_port()
    provider_url = ports.provider_url()
    base = f"http://{ports.LOOPBACK}:{port}"
    client_id, client_secret = _credentials(f"{base}/callback")
    app = create_client_app(provider_url, client_id, client_secret)
    print(f"demo client app ({THIRD_PARTY_APP_NAME}): {base}/  (signs in with {provider_url})",
          flush=True)
    if os.environ.get("PORT") and "PROVIDER_PORT" not in os.environ:
        print(f"  note: PORT={os.environ['PORT']} is not read here; this app listens on CLIENT_PORT "
              f"and finds the provider on PROVIDER_PORT (or PROVIDER_URL).", flush=True)
    app.run(host=ports.LOOPBACK, port=port, debug=False, use_reloader=False)


if __name__ == "__main__":
    main()
