"""The models behave the same on SQLite and PostgreSQL: types, checks, cascades."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session as OrmSession

from oauth_sessions.core.types import Aal
from oauth_sessions.storage.models import (
    LegacyRefreshToken,
    MfaAmrClaim,
    OAuthClient,
    Session,
    User,
)

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def make_user(db: OrmSession) -> User:
    user = User(id=uuid.uuid4(), email=f"{uuid.uuid4().hex}@example.com", created_at=NOW)
    db.add(user)
    return user


def make_client(db: OrmSession) -> OAuthClient:
    client = OAuthClient(
        id=uuid.uuid4(), registration_type="manual", redirect_uris="https://app.example/cb",
        grant_types="authorization_code,refresh_token", client_name="App", created_at=NOW,
        updated_at=NOW, client_type="confidential",
        token_endpoint_auth_method="client_secret_basic",
    )
    db.add(client)
    return client


def make_session(db: OrmSession, user: User, client: OAuthClient | None, **kw: object) -> Session:
    values: dict[str, object] = {
        "id": uuid.uuid4(), "user_id": user.id, "created_at": NOW, "updated_at": NOW,
        "aal": Aal.AAL1, "not_after": NOW + timedelta(days=1),
        "refreshed_at": datetime(2026, 11, 25, 12, 0, 0), "user_agent": "test-agent",
        "ip": "192.0.2.1", "oauth_client_id": client.id if client else None,
        "refresh_token_hmac_key": "k", "refresh_token_counter": 0, "scopes": "openid",
    }
    values.update(kw)
    session = Session(**values)
    db.add(session)
    return session


def test_session_round_trip_keeps_types(engine: Engine) -> None:
    with OrmSession(engine) as db:
        user, client = make_user(db), make_client(db)
        db.flush()
        sid = make_session(db, user, client, ip="2001:DB8::0001", aal=Aal.AAL2,
                           factor_id=uuid.uuid4()).id
        db.commit()
    with OrmSession(engine) as db:
        row = db.get(Session, sid)
        assert row is not None
        assert row.ip == "2001:db8::1"
        assert row.aal is Aal.AAL2
        assert row.not_after == NOW + timedelta(days=1)
        assert row.not_after.tzinfo is not None
        assert row.refreshed_at == datetime(2026, 11, 25, 12, 0, 0)
        assert row.refreshed_at.tzinfo is None
        assert row.refresh_token_counter == 0


def test_invalid_ip_is_refused_before_the_database(engine: Engine) -> None:
    with OrmSession(engine) as db:
        user = make_user(db)
        db.flush()
        make_session(db, user, None, ip="not-an-ip'); DROP TABLE auth.sessions; --")
        with pytest.raises(StatementError):
            db.commit()


def test_scopes_longer_than_4096_characters_are_refused(engine: Engine) -> None:
    with OrmSession(engine) as db:
        user = make_user(db)
        db.flush()
        make_session(db, user, None, scopes="a" * 4096)
        db.commit()
        make_session(db, user, None, scopes="a" * 4097)
        with pytest.raises(IntegrityError):
            db.commit()


def test_naive_timestamptz_is_refused(engine: Engine) -> None:
    with OrmSession(engine) as db:
        user = make_user(db)
        db.flush()
        make_session(db, user, None, not_after=datetime(2030, 1, 1))
        with pytest.raises(StatementError):
            db.commit()


def test_deleting_a_user_cascades_to_sessions_claims_and_legacy_tokens(engine: Engine) -> None:
    with OrmSession(engine) as db:
        user, other = make_user(db), make_user(db)
        db.flush()
        gone, kept = make_session(db, user, None), make_session(db, other, None)
        db.flush()
        for s in (gone, kept):
            db.add(MfaAmrClaim(session_id=s.id, created_at=NOW, updated_at=NOW,
                               authentication_method="password"))
            db.add(LegacyRefreshToken(token=uuid.uuid4().hex, session_id=s.id, revoked=False))
        db.commit()
        db.execute(delete(User).where(User.id == user.id))
        db.commit()
        assert db.scalars(select(Session.id)).all() == [kept.id]
        assert db.scalars(select(MfaAmrClaim.session_id)).all() == [kept.id]
        assert db.scalars(select(LegacyRefreshToken.session_id)).all() == [kept.id]


def test_deleting_a_client_ends_its_sessions_only(engine: Engine) -> None:
    with OrmSession(engine) as db:
        user = make_user(db)
        a, b = make_client(db), make_client(db)
        db.flush()
        make_session(db, user, a)
        kept = make_session(db, user, b)
        first_party = make_session(db, user, None)
        db.commit()
        db.execute(delete(OAuthClient).where(OAuthClient.id == a.id))
        db.commit()
        assert set(db.scalars(select(Session.id))) == {kept.id, first_party.id}


def test_aal_outside_the_enum_is_refused(engine: Engine) -> None:
    with OrmSession(engine) as db:
        user = make_user(db)
        db.flush()
        make_session(db, user, None, aal="aal9")
        with pytest.raises((StatementError, LookupError)):
            db.commit()
        db.rollback()
        assert db.scalar(select(func.count()).select_from(Session)) == 0
