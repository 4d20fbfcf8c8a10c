"""OpenID Connect RP-Initiated Logout 1.0 at ``/oauth/logout``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import (
    HeaderHost,
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    jwt_claims,
    make_app,
    obtain_code,
    pkce_pair,
    query_of,
    snapshot,
    user_headers,
)
from flask import Flask, jsonify
from flask.testing import FlaskClient
from flask.typing import ResponseReturnValue
from freezegun import freeze_time
from sqlalchemy import Engine

from oauth_sessions import get_state
from oauth_sessions.flask.host import LogoutConfirmation, LogoutOutcome
from oauth_sessions.jose.id_tokens import sign_id_token
from oauth_sessions.jose.keys import KeySet as ProviderKeySet
from oauth_sessions.jose.keys import generate_signing_key

BYE = "https://client.example/bye"


class RecordingHost(HeaderHost):
    def __init__(self) -> None:
        self.logged_out_users: list[uuid.UUID] = []

    def logout(self, user_id: uuid.UUID) -> None:
        self.logged_out_users.append(user_id)

    def confirm_logout(self, confirmation: LogoutConfirmation) -> ResponseReturnValue:
        return jsonify(confirm=True, action=confirmation.action,
                       client=confirmation.client.client_id if confirmation.client else None,
                       form_fields=list(confirmation.form_fields))

    def logged_out(self, outcome: LogoutOutcome) -> ResponseReturnValue:
        if outcome.continue_url is None:
            return jsonify(logged_out=True)
        return jsonify(logged_out=True, continue_url=outcome.continue_url,
                       continue_host=outcome.continue_host)


@dataclass
class SignedIn:
    app: Flask
    http: FlaskClient
    host: RecordingHost
    client: Any
    secret: str | None
    user: uuid.UUID
    tokens: dict[str, Any] = field(default_factory=dict)

    @property
    def sid(self) -> uuid.UUID:
        return uuid.UUID(jwt_claims(self.tokens["id_token"])["sid"])

    def session_exists(self) -> bool:
        return get_state(self.app).services.sessions.get(self.sid) is not None

    def logout(self, method: str = "GET", *, headers: dict[str, str] | None = None,
               **params: str) -> Any:
        if method == "GET":
            return self.http.get("/oauth/logout", query_string=params, headers=headers)
        return self.http.post("/oauth/logout", data=params, headers=headers)


def _signed_in(engine: Engine, **client_options: Any) -> SignedIn:
    host = RecordingHost()
    app = make_app(engine, host=host)
    client_options.setdefault("post_logout_redirect_uris", [BYE])
    client, secret = create_client(app, **client_options)
    http, user = app.test_client(), create_user(engine)
    verifier, challenge = pkce_pair()
    code = obtain_code(http, client, user, challenge)["code"]
    tokens = exchange_code(http, client, secret, code, verifier).json
    return SignedIn(app, http, host, client, secret, user, tokens)


def test_discovery_advertises_logout_endpoints(engine: Engine) -> None:
    doc = make_app(engine).test_client().get("/.well-known/openid-configuration").json
    assert doc["end_session_endpoint"] == "http://127.0.0.1:5000/oauth/logout"
    assert doc["backchannel_logout_supported"] is True
    assert doc["backchannel_logout_session_supported"] is True


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_valid_hint_ends_its_session_and_returns_to_the_registered_uri_with_state(
        engine: Engine, method: str) -> None:
    s = _signed_in(engine)
    response = s.logout(method, headers=user_headers(s.user), id_token_hint=s.tokens["id_token"],
                        post_logout_redirect_uri=BYE, state="xyz 1")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(BYE + "?")
    assert query_of(response.headers["Location"]) == {"state": "xyz 1"}
    assert not s.session_exists()
    assert s.host.logged_out_users == [s.user]
    refreshed = s.http.post("/oauth/token", data={"grant_type": "refresh_token",
                                                  "refresh_token": s.tokens["refresh_token"]},
                            headers={"Authorization": basic_auth(s.client.client_id, s.secret or "")})
    assert refreshed.status_code == 400 and refreshed.json["error"] == "invalid_grant"


def test_an_expired_hint_is_still_accepted(engine: Engine) -> None:
    """Section 2: the OP need not require the hint to be unexpired (the ID token lives 300 s)."""
    s = _signed_in(engine)
    later = datetime.now(UTC) + timedelta(hours=2)
    with freeze_time(later):
        response = s.logout(id_token_hint=s.tokens["id_token"], post_logout_redirect_uri=BYE)
    assert response.status_code == 302 and not s.session_exists()


@pytest.mark.parametrize(("age", "redirected"), [(86400, True), (86401, False)])
def test_issue15_item7_a_hint_older_than_its_max_age_ends_the_session_without_redirecting(
        engine: Engine, age: int, redirected: bool) -> None:
    """LOGOUT_HINT_MAX_AGE (default a day) bounds how long an ID token may bounce a browser to
    a post_logout_redirect_uri with no interaction; past it the session still ends and the page
    names the target instead."""
    s = _signed_in(engine)
    issued = jwt_claims(s.tokens["id_token"])["iat"]
    with freeze_time(datetime.fromtimestamp(issued + age, UTC)):
        response = s.logout(id_token_hint=s.tokens["id_token"], post_logout_redirect_uri=BYE,
                            state="x")
    assert not s.session_exists()
    if redirected:
        assert response.status_code == 302 and response.headers["Location"] == BYE + "?state=x"
    else:
        assert response.status_code == 200 and "Location" not in response.headers
        assert response.json == {"logged_out": True, "continue_url": BYE + "?state=x",
                                 "continue_host": "client.example"}


def test_issue15_item7_an_unverified_client_is_never_redirected_to_at_logout(
        engine: Engine) -> None:
    s = _signed_in(engine, verified=False)
    response = s.logout(id_token_hint=s.tokens["id_token"], post_logout_redirect_uri=BYE)
    assert response.status_code == 200 and "Location" not in response.headers
    assert response.json["continue_host"] == "client.example" and not s.session_exists()


def test_without_a_redirect_uri_the_host_signed_out_page_is_shown(engine: Engine) -> None:
    s = _signed_in(engine)
    response = s.logout(id_token_hint=s.tokens["id_token"])
    assert response.status_code == 200 and response.json == {"logged_out": True}
    assert not s.session_exists()
    assert s.host.logged_out_users == []  # nobody is signed in in this browser


def test_the_host_is_not_asked_to_sign_out_someone_else(engine: Engine) -> None:
    s = _signed_in(engine)
    other = create_user(engine)
    s.logout(headers=user_headers(other), id_token_hint=s.tokens["id_token"])
    assert s.host.logged_out_users == [] and not s.session_exists()


@pytest.mark.parametrize("uri", [BYE + "/", BYE + "?x=1", BYE.upper(), "https://evil.example/bye",
                                 BYE + "#f", "https://client.example/cb"])
def test_post_logout_redirect_uri_must_match_registration_exactly(engine: Engine, uri: str) -> None:
    s = _signed_in(engine)
    before = snapshot(engine)
    response = s.logout(id_token_hint=s.tokens["id_token"], post_logout_redirect_uri=uri,
                        state="s")
    assert response.status_code == 400 and "Location" not in response.headers
    assert response.json["error"] == "invalid_request"
    assert snapshot(engine) == before and s.session_exists()


def test_a_forged_or_foreign_hint_is_refused_and_ends_nothing(engine: Engine) -> None:
    s = _signed_in(engine)
    foreign = ProviderKeySet([generate_signing_key("ES256", activated_at=datetime.now(UTC)
                                                   - timedelta(seconds=1))],
                             publish_grace=timedelta(0))
    forged = sign_id_token(foreign, jwt_claims(s.tokens["id_token"]))
    head, body, sig = s.tokens["id_token"].split(".")
    tampered = f"{head}.{body}.{sig[:-4]}AAAA"
    before = snapshot(engine)
    for hint in (forged, tampered, "not-a-jwt", s.tokens["access_token"]):
        response = s.logout(id_token_hint=hint, post_logout_redirect_uri=BYE)
        assert response.status_code == 400, hint
        assert response.json["error"] == "invalid_request"
    assert snapshot(engine) == before and s.host.logged_out_users == []


def test_client_id_must_be_an_audience_of_the_hint(engine: Engine) -> None:
    s = _signed_in(engine)
    other, _ = create_client(s.app, post_logout_redirect_uris=[BYE])
    response = s.logout(id_token_hint=s.tokens["id_token"], client_id=other.client_id,
                        post_logout_redirect_uri=BYE)
    assert response.status_code == 400 and s.session_exists()
    unknown = s.logout(client_id=str(uuid.uuid4()), post_logout_redirect_uri=BYE)
    assert unknown.status_code == 400
    assert s.logout(id_token_hint=s.tokens["id_token"],
                    client_id=s.client.client_id).status_code == 200
    assert not s.session_exists()


def test_without_a_hint_the_user_is_asked_and_nothing_ends_until_they_confirm(engine: Engine) -> None:
    s = _signed_in(engine)
    headers = user_headers(s.user)
    page = s.logout(headers=headers, client_id=s.client.client_id, post_logout_redirect_uri=BYE,
                    state="st")
    assert page.status_code == 200 and page.json["confirm"] is True
    assert page.json["client"] == s.client.client_id
    assert s.host.logged_out_users == [] and s.session_exists()

    form = dict(page.json["form_fields"])
    assert s.logout("POST", headers=headers, **form).json["confirm"] is True  # no decision
    forged = {**form, "decision": "logout", "logout_ticket": form["logout_ticket"][:-2] + "xx"}
    assert s.logout("POST", headers=headers, **forged).json["confirm"] is True
    swapped = {**form, "decision": "logout", "state": "other"}
    assert s.logout("POST", headers=headers, **swapped).json["confirm"] is True
    as_other = s.logout("POST", headers=user_headers(create_user(engine)), decision="logout", **form)
    assert as_other.json["confirm"] is True
    assert s.host.logged_out_users == []

    done = s.logout("POST", headers=headers, decision="logout", **form)
    assert done.status_code == 302 and query_of(done.headers["Location"]) == {"state": "st"}
    assert s.host.logged_out_users == [s.user]


def test_the_default_host_pages_escape_what_they_show(engine: Engine) -> None:
    from oauth_sessions.flask.host import HostAdapter

    app = make_app(engine)
    client, _ = create_client(app, name="<script>x</script>")
    confirmation = LogoutConfirmation(client=client, action="/oauth/logout",
                                      form_fields=(("state", '"><script>'),))
    with app.test_request_context():
        body, status, _ = HostAdapter().confirm_logout(confirmation)  # type: ignore[misc]
    assert status == 200 and "<script>" not in body and "&lt;script&gt;" in body
