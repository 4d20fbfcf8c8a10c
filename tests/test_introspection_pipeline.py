"""The RFC 7662 pipeline as pure functions: fakes for the session source, a real KeySet, frozen time.

Each test reads like the rule it checks; the HTTP endpoint and the real store are covered in
``test_introspection_endpoint.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from oauth_sessions.core.introspection import (
    AalTooLow,
    Inactive,
    RefreshSession,
    TokenChecks,
    check_token,
)
from oauth_sessions.core.settings import Settings
from oauth_sessions.core.types import Aal
from oauth_sessions.jose.access_tokens import build_access_token_claims, sign_access_token
from oauth_sessions.jose.keys import KeySet, generate_signing_key

ISSUER = "https://id.example.test"
T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
USER = uuid.UUID("3f1c9a52-7b0e-4a8e-9f0d-2c7d5e6b8a41")
CLIENT = uuid.UUID("9b2d7c1e-5f3a-4e8b-a6c0-1d4e7f9a2b35")
SID = uuid.UUID("c5e8a1b4-2d6f-4a9c-8e3b-7f0d1a5c9e62")

KEY = generate_signing_key("ES256", kid="k1", now=T0 - timedelta(days=1), activated_at=T0 - timedelta(days=1))
OTHER_KEY = generate_signing_key("ES256", kid="k1", now=T0 - timedelta(days=1),
                                 activated_at=T0 - timedelta(days=1))
KEYSET = KeySet([KEY], publish_grace=timedelta(hours=1))
FORGER = KeySet([OTHER_KEY], publish_grace=timedelta(hours=1))


@dataclass(frozen=True)
class FakeSession:
    id: uuid.UUID = SID
    user_id: uuid.UUID = USER
    client_id: uuid.UUID | None = CLIENT
    scopes: tuple[str, ...] = ("openid", "profile", "payments")
    aal: Aal = Aal.AAL2
    created_at: datetime = T0 - timedelta(hours=1)
    refreshed_at: datetime | None = None
    not_after: datetime | None = T0 + timedelta(days=1)


class FakeSessions:
    """A session source that counts its reads, as the real one must make exactly one."""

    def __init__(self, *sessions: FakeSession) -> None:
        self.rows = {s.id: s for s in sessions}
        self.reads = 0
        self.refresh: dict[str, RefreshSession] = {}

    def get(self, session_id: uuid.UUID) -> FakeSession | None:
        self.reads += 1
        return self.rows.get(session_id)

    def current_refresh_session(self, token: str) -> RefreshSession | None:
        self.reads += 1
        return self.refresh.get(token)


def make_checks(sessions: FakeSessions, **settings_changes: Any) -> TokenChecks:
    base = Settings(issuer=ISSUER, scope_min_aal={"payments": Aal.AAL2})
    return TokenChecks(keyset=lambda: KEYSET, sessions=sessions,
                       settings=base.replace(**settings_changes), audience=ISSUER)


def mint(keyset: KeySet = KEYSET, *, now: datetime = T0, scope: str = "openid profile",
         aal: str = "aal2", **changes: Any) -> str:
    claims = build_access_token_claims(
        issuer=ISSUER, subject=str(USER), audience=ISSUER, client_id=str(CLIENT), scope=scope,
        session_id=str(SID), aal=aal, amr=["pwd", "totp"], auth_time=int(now.timestamp()) - 60,
        lifetime=300, now=now, jti="jti-1",
    )
    claims.update(changes)
    return sign_access_token(keyset, claims, now=now)


def mint_with(**changes: Any) -> str:
    """A token signed by our key whose claims were changed after building (bad shapes)."""
    claims = build_access_token_claims(
        issuer=ISSUER, subject=str(USER), audience=ISSUER, client_id=str(CLIENT), scope="openid",
        session_id=str(SID), aal="aal2", amr=["pwd"], auth_time=int(T0.timestamp()), lifetime=300,
        now=T0,
    )
    claims.update(changes)
    return sign_access_token(KEYSET, claims, now=T0)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def is_active(token: str, checks: TokenChecks, **kwargs: Any) -> bool:
    try:
        check_token(token, checks, **kwargs)
    except Inactive:
        return False
    return True


# --------------------------------------------------------------------------- the active answer


def test_an_active_access_token_reports_every_member_of_rfc7662_section_2_2() -> None:
    sessions = FakeSessions(FakeSession())
    with freeze_time(T0):
        body = check_token(mint(), make_checks(sessions)).response()
    assert body == {
        "active": True, "scope": "openid profile", "client_id": str(CLIENT), "sub": str(USER),
        "exp": int(T0.timestamp()) + 300, "iat": int(T0.timestamp()), "iss": ISSUER, "aud": ISSUER,
        "token_type": "Bearer", "jti": "jti-1", "sid": str(SID), "aal": "aal2", "acr": "aal2",
        "amr": ["pwd", "totp"], "auth_time": int(T0.timestamp()) - 60,
    }


def test_the_session_is_read_once_by_primary_key_per_introspection() -> None:
    sessions = FakeSessions(FakeSession())
    with freeze_time(T0):
        check_token(mint(), make_checks(sessions))
        check_token(mint(), make_checks(sessions))
    assert sessions.reads == 2


def test_username_comes_from_the_host_when_it_provides_one() -> None:
    checks = replace(make_checks(FakeSessions(FakeSession())),
                     username=lambda user_id: "ada" if user_id == USER else None)
    with freeze_time(T0):
        assert check_token(mint(), checks).response()["username"] == "ada"


# --------------------------------------------------------------------------- session state, frozen time


def test_active_one_second_before_not_after_and_inactive_at_and_after_it() -> None:
    end = T0 + timedelta(minutes=2)
    checks = make_checks(FakeSessions(FakeSession(not_after=end)))
    token = mint()
    with freeze_time(end - timedelta(seconds=1)):
        assert is_active(token, checks)
    with freeze_time(end):
        assert not is_active(token, checks)
    with freeze_time(end + timedelta(seconds=1)):
        assert not is_active(token, checks)


def test_inactivity_counts_from_the_last_refresh() -> None:
    refreshed = T0 - timedelta(seconds=3600 - 60)
    checks = make_checks(FakeSessions(FakeSession(refreshed_at=refreshed)), inactivity_timeout=3600)
    token = mint()
    with freeze_time(refreshed + timedelta(seconds=3599)):
        assert is_active(token, checks)
    with freeze_time(refreshed + timedelta(seconds=3600)):
        assert not is_active(token, checks)


def test_inactivity_counts_from_sign_in_when_never_refreshed() -> None:
    created = T0 - timedelta(seconds=100)
    checks = make_checks(FakeSessions(FakeSession(created_at=created)), inactivity_timeout=120)
    token = mint()
    with freeze_time(created + timedelta(seconds=119)):
        assert is_active(token, checks)
    with freeze_time(created + timedelta(seconds=120)):
        assert not is_active(token, checks)


def test_a_revoked_session_makes_the_very_next_introspection_inactive() -> None:
    sessions = FakeSessions(FakeSession())
    checks = make_checks(sessions)
    token = mint()
    with freeze_time(T0):
        assert is_active(token, checks)
        del sessions.rows[SID]
        assert not is_active(token, checks)


def test_the_token_client_must_be_the_sessions_client() -> None:
    other = FakeSessions(FakeSession(client_id=uuid.uuid4()))
    first_party = FakeSessions(FakeSession(client_id=None))
    with freeze_time(T0):
        assert not is_active(mint(), make_checks(other))
        assert not is_active(mint(), make_checks(first_party))


def test_token_scopes_must_still_be_within_the_sessions_scopes() -> None:
    narrowed = FakeSessions(FakeSession(scopes=("openid",)))
    with freeze_time(T0):
        assert not is_active(mint(scope="openid profile"), make_checks(narrowed))
        assert is_active(mint(scope="openid"), make_checks(narrowed))


# --------------------------------------------------------------------------- assurance level


def test_a_downgraded_session_is_inactive_for_aal2_scopes_and_active_for_others() -> None:
    downgraded = FakeSessions(FakeSession(aal=Aal.AAL1))
    checks = make_checks(downgraded)
    with freeze_time(T0):
        with pytest.raises(AalTooLow) as refused:
            check_token(mint(scope="openid payments"), checks)
        answer = check_token(mint(scope="openid profile"), checks).response()
    assert (refused.value.effective, refused.value.required) == (Aal.AAL1, Aal.AAL2)
    assert answer["aal"] == answer["acr"] == "aal1"


def test_a_step_up_after_issuance_does_not_raise_the_token() -> None:
    checks = make_checks(FakeSessions(FakeSession(aal=Aal.AAL2)))
    with freeze_time(T0), pytest.raises(AalTooLow):
        check_token(mint(scope="payments", aal="aal1"), checks)


def test_the_calling_resource_servers_minimum_applies() -> None:
    checks = make_checks(FakeSessions(FakeSession(aal=Aal.AAL1)),
                         audience_min_aal={"bank-api": Aal.AAL2})
    token = mint(aal="aal1")
    with freeze_time(T0):
        assert is_active(token, checks, audiences=["calendar-api"])
        assert not is_active(token, checks, audiences=["bank-api"])
        assert not is_active(token, checks, caller_min_aal=Aal.AAL2)


# --------------------------------------------------------------------------- forged and malformed


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def _claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return result


def test_forged_tokens_are_inactive() -> None:
    checks = make_checks(FakeSessions(FakeSession()))
    good = mint()
    claims = _claims_of(good)
    public_jwk = json.dumps(KEYSET.jwks()["keys"][0]).encode()
    hs_header = {"alg": "HS256", "kid": "k1", "typ": "at+jwt"}
    hs_input = f"{b64(json.dumps(hs_header).encode())}.{b64(json.dumps(claims).encode())}"
    hs256_with_public_key = hs_input + "." + b64(
        hmac.digest(public_jwk, hs_input.encode(), hashlib.sha256))
    forged = {
        "signed with another key": mint(FORGER),
        "alg none": _unsigned({"alg": "none", "kid": "k1", "typ": "at+jwt"}, claims),
        "alg none with a dot": _unsigned({"alg": "none", "kid": "k1", "typ": "at+jwt"}, claims) + "x",
        "HS256 keyed with the public key": hs256_with_public_key,
        "wrong issuer": mint(iss="https://evil.example"),
        "wrong audience": mint(aud="https://elsewhere.example"),
        "payload swapped": good.split(".")[0] + "." + b64(json.dumps({**claims, "scope": "payments"})
                                                            .encode()) + "." + good.split(".")[2],
    }
    with freeze_time(T0):
        assert is_active(good, checks)
        refused = [name for name, token in forged.items() if not is_active(token, checks)]
    assert refused == list(forged)


def test_an_access_token_is_inactive_at_its_exp_and_before_its_nbf() -> None:
    checks = make_checks(FakeSessions(FakeSession()))
    token = mint()
    with freeze_time(T0 + timedelta(seconds=299)):
        assert is_active(token, checks)
    with freeze_time(T0 + timedelta(seconds=300)):
        assert not is_active(token, checks)
    later = mint(nbf=int(T0.timestamp()) + 10)
    with freeze_time(T0 + timedelta(seconds=9)):
        assert not is_active(later, checks)
    with freeze_time(T0 + timedelta(seconds=10)):
        assert is_active(later, checks)


def test_a_malformed_sid_or_aal_claim_is_inactive_not_an_error() -> None:
    checks = make_checks(FakeSessions(FakeSession()))
    with freeze_time(T0):
        assert not is_active(mint(sid="not-a-uuid"), checks)
        assert not is_active(mint_with(aal="aal9"), checks)
        assert not is_active(mint_with(scope=["openid"]), checks)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=200).map(lambda b: b64(b)),
                 st.lists(st.text(alphabet="AZaz09-_", max_size=40), min_size=1, max_size=6)
                 .map(".".join), st.just("osr1_" + "A" * 75)))
def test_garbage_is_inactive_and_never_raises_anything_else(garbage: str) -> None:
    checks = make_checks(FakeSessions(FakeSession()))
    with pytest.raises(Inactive):
        check_token(garbage, checks, hint="refresh_token")


# --------------------------------------------------------------------------- refresh tokens, the hint


def test_a_refresh_token_is_recognised_whatever_the_hint_says() -> None:
    session = FakeSession(refreshed_at=T0 - timedelta(minutes=5))
    sessions = FakeSessions(session)
    refresh = "osr1_" + "r" * 75
    sessions.refresh[refresh] = RefreshSession(session, ["pwd"], int(T0.timestamp()) - 600)
    checks = make_checks(sessions)
    with freeze_time(T0):
        as_hinted = check_token(refresh, checks, hint="refresh_token").response()
        mis_hinted = check_token(refresh, checks, hint="access_token").response()
        access = check_token(mint(), checks, hint="refresh_token").response()
    assert as_hinted == mis_hinted
    assert "token_type" not in as_hinted and as_hinted["token_use"] == "refresh_token"
    assert as_hinted["scope"] == "openid profile payments"
    assert as_hinted["sid"] == str(SID) and as_hinted["sub"] == str(USER)
    assert as_hinted["exp"] == int(session.not_after.timestamp())  # type: ignore[union-attr]
    assert as_hinted["amr"] == ["pwd"] and as_hinted["auth_time"] == int(T0.timestamp()) - 600
    assert access["token_type"] == "Bearer" and "token_use" not in access


def test_a_refresh_token_follows_the_same_session_rules() -> None:
    session = FakeSession(not_after=T0 + timedelta(seconds=5))
    sessions = FakeSessions(session)
    refresh = "osr1_" + "r" * 75
    sessions.refresh[refresh] = RefreshSession(session, ["pwd"], None)
    checks = make_checks(sessions)
    with freeze_time(T0 + timedelta(seconds=4)):
        assert is_active(refresh, checks)
    with freeze_time(T0 + timedelta(seconds=5)):
        assert not is_active(refresh, checks)
    with freeze_time(T0):
        assert not is_active("osr1_" + "s" * 75, checks)  # unknown to the source: forged or old
