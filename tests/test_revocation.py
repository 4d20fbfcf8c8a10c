"""Token revocation (RFC 7009): a revoked refresh or access token ends its session."""

from __future__ import annotations

from typing import Any

import pytest
from factories import (
    basic_auth,
    create_client,
    create_user,
    exchange_code,
    make_app,
    obtain_code,
    pkce_pair,
    snapshot,
)
from sqlalchemy import Engine, func, select

from oauth_sessions.storage.models import Session


class Issued:
    def __init__(self, engine: Engine, *, public: bool = False) -> None:
        self.engine = engine
        self.app = make_app(engine)
        self.http = self.app.test_client()
        self.client, self.secret = create_client(self.app, public=public)
        self.user = create_user(engine)
        verifier, challenge = pkce_pair()
        code = obtain_code(self.http, self.client, self.user, challenge)["code"]
        self.tokens: dict[str, Any] = exchange_code(self.http, self.client, self.secret, code,
                                                    verifier).json

    def revoke(self, token: str, *, client: Any = None, secret: str | None = None,
               **extra: str) -> Any:
        client = client or self.client
        secret = secret if client is not self.client else self.secret
        data = {"token": token, **extra}
        headers = {}
        if secret is None:
            data["client_id"] = client.client_id
        else:
            headers["Authorization"] = basic_auth(client.client_id, secret)
        return self.http.post("/oauth/revoke", data=data, headers=headers)

    def sessions(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Session.__table__)).scalar_one())

    def userinfo_status(self) -> int:
        return int(self.http.get("/oauth/userinfo", headers={
            "Authorization": "Bearer " + self.tokens["access_token"]}).status_code)


@pytest.mark.parametrize("kind", ["refresh_token", "access_token"])
@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token", "nonsense"])
def test_revoking_either_token_ends_the_session(engine: Engine, kind: str, hint: str | None) -> None:
    """The hint is only a hint (RFC 7009 section 2.1): a wrong one changes nothing."""
    issued = Issued(engine)
    assert issued.sessions() == 1 and issued.userinfo_status() == 200
    extra = {"token_type_hint": hint} if hint else {}
    response = issued.revoke(issued.tokens[kind], **extra)
    assert response.status_code == 200 and response.get_data() == b""
    assert issued.sessions() == 0
    assert issued.userinfo_status() == 401
    refresh = issued.http.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": issued.tokens["refresh_token"]},
        headers={"Authorization": basic_auth(issued.client.client_id, issued.secret or "")})
    assert refresh.status_code == 400 and refresh.json["error"] == "invalid_grant"


def test_public_client_revokes_with_its_client_id(engine: Engine) -> None:
    issued = Issued(engine, public=True)
    assert issued.revoke(issued.tokens["refresh_token"]).status_code == 200
    assert issued.sessions() == 0


@pytest.mark.parametrize("token", ["unknown", "osr1_" + "A" * 75, "a.b.c", "x" * 4000])
def test_unknown_tokens_answer_200_and_change_nothing(engine: Engine, token: str) -> None:
    issued = Issued(engine)
    before = snapshot(engine)
    assert issued.revoke(token).status_code == 200
    assert snapshot(engine) == before


def test_forged_refresh_token_for_a_real_session_changes_nothing(engine: Engine) -> None:
    """The session id alone (it is in every token's ``sid``) must not be enough to end it."""
    from oauth_sessions.core.refresh_tokens import encode_refresh_token, parse_refresh_token

    issued = Issued(engine)
    parsed = parse_refresh_token(issued.tokens["refresh_token"])
    forged = encode_refresh_token(parsed.session_id, parsed.counter, b"k" * 32)
    assert issued.revoke(forged).status_code == 200
    assert issued.sessions() == 1


def test_a_client_cannot_revoke_another_clients_tokens(engine: Engine) -> None:
    issued = Issued(engine)
    other, other_secret = create_client(issued.app, name="Other")
    for kind in ("refresh_token", "access_token"):
        response = issued.revoke(issued.tokens[kind], client=other, secret=other_secret)
        assert response.status_code == 200
    assert issued.sessions() == 1 and issued.userinfo_status() == 200


def test_revocation_requires_client_authentication(engine: Engine) -> None:
    issued = Issued(engine)
    before = snapshot(engine)
    response = issued.http.post("/oauth/revoke", data={"token": issued.tokens["refresh_token"]})
    assert response.status_code in (400, 401) and response.json["error"] == "invalid_client"
    wrong = issued.http.post("/oauth/revoke", data={"token": issued.tokens["refresh_token"]},
                             headers={"Authorization": basic_auth(issued.client.client_id, "nope")})
    assert wrong.status_code == 401 and wrong.json["error"] == "invalid_client"
    assert snapshot(engine) == before


def test_missing_or_repeated_token_is_invalid_request(engine: Engine) -> None:
    issued = Issued(engine)
    headers = {"Authorization": basic_auth(issued.client.client_id, issued.secret or "")}
    missing = issued.http.post("/oauth/revoke", data={}, headers=headers)
    assert missing.status_code == 400 and missing.json["error"] == "invalid_request"
    repeated = issued.http.post("/oauth/revoke", headers=headers,
                                data=f"token={issued.tokens['refresh_token']}&token=x",
                                content_type="application/x-www-form-urlencoded")
    assert repeated.status_code == 400 and repeated.json["error"] == "invalid_request"
    assert issued.sessions() == 1
