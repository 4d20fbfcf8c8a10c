"""RFC 9470 round trip: the resource asks for more, the client re-authorizes, the user steps up.

A cookie-session host stands in for a real one: password sign-in gives aal1; its step-up page
verifies a TOTP code (pyotp, RFC 6238) and raises the sign-in to aal2 with amr ``totp``. The
resource endpoint is protected by the library's helper in local mode on the same app.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pyotp
from factories import HeaderHost, basic_auth, create_client, create_user, make_app, pkce_pair, query_of
from flask import Flask, redirect, request, session
from flask.testing import FlaskClient
from flask.typing import ResponseReturnValue
from freezegun import freeze_time
from sqlalchemy import Engine

from oauth_sessions.core.types import Aal
from oauth_sessions.flask.host import Authentication
from oauth_sessions.flask.resource import ResourceProtector, current_token
from oauth_sessions.storage.clients import ClientInfo
from oauth_sessions.storage.sessions import AmrEntry

TOTP_SECRET = pyotp.random_base32()


class TotpHost(HeaderHost):
    """Who is signed in lives in Flask's cookie session; step-up means a valid TOTP code."""

    def current_authentication(self) -> Authentication | None:
        if "user" not in session:
            return None
        amr = [AmrEntry(method, datetime.fromtimestamp(at, UTC)) for method, at in session["amr"]]
        return Authentication(user_id=uuid.UUID(session["user"]), aal=Aal(session["aal"]), amr=amr,
                              auth_time=datetime.fromtimestamp(max(at for _, at in session["amr"]), UTC))

    def login(self, next_url: str, prompt: str | None) -> ResponseReturnValue:
        return redirect("/host/login?" + urlencode({"next": next_url}))

    def step_up(self, next_url: str, required_aal: Aal) -> ResponseReturnValue:
        return redirect("/host/step-up?" + urlencode({"next": next_url, "aal": required_aal.value}))


def add_host_pages(app: Flask, user: uuid.UUID) -> None:
    @app.post("/host/login")
    def login() -> ResponseReturnValue:
        now = int(datetime.now(UTC).timestamp())
        session.update(user=str(user), aal="aal1", amr=[["password", now]])
        return redirect(request.args.get("next", "/"))

    @app.post("/host/step-up")
    def step_up() -> ResponseReturnValue:
        if "user" not in session or not pyotp.TOTP(TOTP_SECRET).verify(request.form.get("code", "")):
            return {"error": "wrong code"}, 400
        now = int(datetime.now(UTC).timestamp())
        session.update(aal="aal2", amr=[*session["amr"], ["totp", now]])
        return redirect(request.args["next"])


def setup(engine: Engine, **options: Any) -> tuple[Flask, FlaskClient, ClientInfo, str]:
    app = make_app(engine, host=TotpHost(), **options)
    user = create_user(engine)
    add_host_pages(app, user)
    protector = ResourceProtector.local(app, resource="https://api.example.test")

    @app.get("/api/transfer")
    @protector.require(scope="profile", aal="aal2")
    def transfer() -> dict[str, Any]:
        token = current_token()
        return {"aal": token.aal.value, "amr": list(token.amr)}

    @app.get("/api/recent")
    @protector.require(scope="profile", max_age=300)
    def recent() -> dict[str, Any]:
        return {"auth_time": current_token().auth_time}

    client, secret = create_client(app, scopes="openid profile")
    assert secret is not None
    return app, app.test_client(), client, secret


def authorize(browser: FlaskClient, client: ClientInfo, secret: str, **extra: str) -> dict[str, Any]:
    """What a client app does: /authorize, follow the host's pages, consent, exchange the code."""
    verifier, challenge = pkce_pair()
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uris[0],
              "scope": "openid profile", "state": "s1", "code_challenge": challenge,
              "code_challenge_method": "S256", **extra}
    response = browser.get("/oauth/authorize", query_string=params)
    hops = 0
    while not response.headers.get("Location", "").startswith(client.redirect_uris[0]):
        hops += 1
        assert hops < 6, response.get_data(as_text=True)
        if response.status_code == 200 and response.is_json and response.json.get("consent"):
            form = {**dict(response.json["form_fields"]), "decision": "approve"}
            response = browser.post(response.json["action"], data=form)
        elif urlsplit(response.headers["Location"]).path == "/host/login":
            response = browser.post(response.headers["Location"])
        elif urlsplit(response.headers["Location"]).path == "/host/step-up":
            return {"step_up": response.headers["Location"]}
        else:
            response = browser.get(response.headers["Location"])
    code = query_of(response.headers["Location"])["code"]
    token = browser.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
        "code_verifier": verifier}, headers={"Authorization": basic_auth(client.client_id, secret)})
    assert token.status_code == 200, token.json
    body: dict[str, Any] = token.json
    return body


def challenge_params(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def test_an_aal1_token_is_challenged_and_a_token_after_totp_step_up_is_accepted(engine: Engine) -> None:
    _, browser, client, secret = setup(engine)
    first = authorize(browser, client, secret)
    refused = browser.get("/api/transfer", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert refused.status_code == 401
    asked = challenge_params(refused.headers["WWW-Authenticate"])
    assert asked["error"] == "insufficient_user_authentication"
    assert asked["acr_values"] == "aal2"

    # The client sends the user back with what the challenge asked for; the host wants TOTP.
    step = authorize(browser, client, secret, acr_values=asked["acr_values"])["step_up"]
    assert query_of(step)["aal"] == "aal2"
    wrong = browser.post(step, data={"code": "000000" if pyotp.TOTP(TOTP_SECRET).now() != "000000"
                                     else "111111"})
    assert wrong.status_code == 400
    stepped = browser.post(step, data={"code": pyotp.TOTP(TOTP_SECRET).now()})
    assert stepped.status_code == 302 and urlsplit(stepped.headers["Location"]).path == "/oauth/authorize"

    second = authorize(browser, client, secret, acr_values=asked["acr_values"])
    accepted = browser.get("/api/transfer", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert accepted.status_code == 200
    assert accepted.json == {"aal": "aal2", "amr": ["password", "totp"]}
    # The old token stays what it was: stepping up the sign-in does not raise tokens issued before.
    again = browser.get("/api/transfer", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert again.status_code == 401


def test_a_max_age_challenge_is_met_by_signing_in_again(engine: Engine) -> None:
    _, browser, client, secret = setup(engine, access_token_lifetime=3600)
    t0 = datetime(2030, 7, 1, 10, 0, 0, tzinfo=UTC)
    with freeze_time(t0) as clock:
        old = authorize(browser, client, secret)
        clock.move_to(t0 + timedelta(seconds=300))
        fresh_enough = browser.get("/api/recent", headers={"Authorization": f"Bearer {old['access_token']}"})
        assert fresh_enough.status_code == 200
        clock.move_to(t0 + timedelta(seconds=301))
        refused = browser.get("/api/recent", headers={"Authorization": f"Bearer {old['access_token']}"})
        assert refused.status_code == 401
        asked = challenge_params(refused.headers["WWW-Authenticate"])
        assert (asked["error"], asked["max_age"]) == ("insufficient_user_authentication", "300")

        new = authorize(browser, client, secret, max_age=asked["max_age"])  # signs in again
        accepted = browser.get("/api/recent", headers={"Authorization": f"Bearer {new['access_token']}"})
    assert accepted.status_code == 200
    assert accepted.json == {"auth_time": int((t0 + timedelta(seconds=301)).timestamp())}
