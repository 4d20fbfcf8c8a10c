"""SessionStore: creating, reading, listing, revoking and purging sessions (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, insert, select, text
from test_store_support import T0, add_client, add_user, make_store, new_session, recording

from oauth_sessions.core import errors, signals
from oauth_sessions.core.refresh_tokens import TOKEN_PREFIX, parse_refresh_token
from oauth_sessions.core.types import Aal
from oauth_sessions.storage.key_encryption import KeyEncryptor
from oauth_sessions.storage.models import LegacyRefreshToken, MfaAmrClaim, Session, User
from oauth_sessions.storage.sessions import AmrEntry, SessionStore

SESSIONS = Session.__table__
AMR = MfaAmrClaim.__table__
LEGACY = LegacyRefreshToken.__table__


def _count(engine: Engine, table: object, **where: object) -> int:
    stmt = select(func.count()).select_from(table)  # type: ignore[arg-type]
    for column, value in where.items():
        stmt = stmt.where(table.c[column] == value)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _stored_key(engine: Engine, session_id: uuid.UUID) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(SESSIONS.c.refresh_token_hmac_key)
                                .where(SESSIONS.c.id == session_id)).scalar_one())


def test_created_session_has_every_field_and_a_first_token(engine: Engine) -> None:
    store = make_store(engine, session_timebox=3600)
    user, client = add_user(engine), add_client(engine)
    factor = uuid.uuid4()
    issued = new_session(store, user, client, scopes="openid profile openid", aal=Aal.AAL2,
                         amr=["pwd", AmrEntry("totp", T0 + timedelta(seconds=5))], factor_id=factor,
                         user_agent="Firefox", ip=" 203.0.113.9 ", tag="laptop", now=T0)
    info = issued.session
    assert (info.user_id, info.client_id, info.aal, info.factor_id) == (user, client, Aal.AAL2, factor)
    assert info.scopes == ("openid", "profile")
    assert (info.user_agent, info.ip, info.tag) == ("Firefox", "203.0.113.9", "laptop")
    assert info.created_at == T0 and info.refreshed_at is None and info.counter == 0
    assert info.not_after == T0 + timedelta(seconds=3600)
    assert store.get(info.id) == info
    assert [(a.method, a.timestamp) for a in store.get_amr(info.id)] == [
        ("pwd", T0), ("totp", T0 + timedelta(seconds=5))]
    parsed = parse_refresh_token(issued.refresh_token)
    assert issued.refresh_token.startswith(TOKEN_PREFIX) and len(issued.refresh_token) < 100
    assert (parsed.session_id, parsed.counter) == (info.id, 0)


def test_earliest_of_timebox_client_maximum_and_host_not_after_wins(engine: Engine) -> None:
    store = make_store(engine, session_timebox=3 * 3600)
    user, client = add_user(engine), add_client(engine)
    by_client = new_session(store, user, client, client_max_seconds=2 * 3600, now=T0).session
    by_host = new_session(store, user, client, client_max_seconds=2 * 3600,
                          host_not_after=T0 + timedelta(minutes=30), now=T0).session
    unbounded = new_session(make_store(engine, session_timebox=None), user, None, now=T0).session
    assert by_client.not_after == T0 + timedelta(hours=2)
    assert by_host.not_after == T0 + timedelta(minutes=30)
    assert unbounded.not_after is None


def test_session_keys_are_random_per_session_and_never_in_the_snapshot(engine: Engine) -> None:
    store = make_store(engine)
    user = add_user(engine)
    a, b = new_session(store, user, None).session, new_session(store, user, None).session
    key_a, key_b = _stored_key(engine, a.id), _stored_key(engine, b.id)
    assert key_a != key_b and len(key_a) == 43
    assert key_a not in repr(a) and key_a not in repr(store.get(a.id))


def test_keys_are_encrypted_at_rest_and_plain_rows_keep_working(engine: Engine) -> None:
    user = add_user(engine)
    plain_store = make_store(engine)
    old = new_session(plain_store, user, None, now=T0)
    encryptor = KeyEncryptor({"k1": KeyEncryptor.generate_key()}, "k1")
    store = SessionStore(engine, plain_store.settings, encryptor)
    new = new_session(store, user, None, now=T0)
    assert _stored_key(engine, new.session.id).startswith("enc1:k1:")
    assert store.rotate(new.refresh_token, client_id=None, now=T0).session.counter == 1
    assert store.rotate(old.refresh_token, client_id=None, now=T0).session.counter == 1


def test_an_encrypted_key_moved_to_another_row_does_not_decrypt(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    user = add_user(engine)
    encryptor = KeyEncryptor({"k1": KeyEncryptor.generate_key()}, "k1")
    store = SessionStore(engine, make_store(engine).settings, encryptor)
    a, b = new_session(store, user, None, now=T0), new_session(store, user, None, now=T0)
    with engine.begin() as conn:
        conn.execute(SESSIONS.update().where(SESSIONS.c.id == b.session.id)
                     .values(refresh_token_hmac_key=_stored_key(engine, a.session.id)))
    before = store.get(b.session.id)
    with caplog.at_level("ERROR"), pytest.raises(errors.InvalidRefreshToken):
        store.rotate(b.refresh_token, client_id=None, now=T0)
    assert "belongs to another row" in caplog.text
    assert store.get(b.session.id) == before


def test_list_for_user_is_newest_first_and_only_theirs(engine: Engine) -> None:
    store = make_store(engine)
    alice, bob = add_user(engine), add_user(engine)
    first = new_session(store, alice, None, now=T0).session
    second = new_session(store, alice, None, now=T0 + timedelta(minutes=1)).session
    new_session(store, bob, None, now=T0)
    assert [s.id for s in store.list_for_user(alice)] == [second.id, first.id]


def test_revoke_one_session_removes_its_amr_claims_and_legacy_tokens(engine: Engine) -> None:
    store = make_store(engine)
    user = add_user(engine)
    gone, kept = new_session(store, user, None).session, new_session(store, user, None).session
    with engine.begin() as conn:
        conn.execute(insert(LEGACY).values(token="legacy-1", user_id=str(user), revoked=False,
                                           session_id=gone.id, created_at=T0, updated_at=T0))
    with recording(signals.session_revoked) as events:
        assert store.revoke(gone.id, reason="logout") is True
    assert events == [("oauth-sessions.session-revoked", {"session": gone, "reason": "logout"})]
    assert store.get(gone.id) is None and store.get(kept.id) is not None
    assert _count(engine, AMR, session_id=gone.id) == 0
    assert _count(engine, LEGACY, session_id=gone.id) == 0
    assert _count(engine, AMR, session_id=kept.id) == 1
    assert store.revoke(gone.id, reason="logout") is False


def test_deleting_a_user_removes_sessions_claims_and_legacy_tokens(engine: Engine) -> None:
    store = make_store(engine)
    user, other = add_user(engine), add_user(engine)
    session = new_session(store, user, None).session
    survivor = new_session(store, other, None).session
    with engine.begin() as conn:
        conn.execute(insert(LEGACY).values(token="legacy-2", session_id=session.id, revoked=False))
        conn.execute(delete(User.__table__).where(User.__table__.c.id == user))
    assert store.get(session.id) is None
    assert _count(engine, AMR, session_id=session.id) == 0
    assert _count(engine, LEGACY, session_id=session.id) == 0
    assert store.get(survivor.id) is not None


def test_revoke_user_all_or_all_but_the_current_one(engine: Engine) -> None:
    store = make_store(engine)
    user, other = add_user(engine), add_user(engine)
    here, a, b = (new_session(store, user, None).session for _ in range(3))
    theirs = new_session(store, other, None).session
    assert store.revoke_user(user, except_session=here.id, reason="sign out elsewhere",
                             first_party=True) == 2
    assert [s.id for s in store.list_for_user(user)] == [here.id]
    assert store.revoke_user(user, reason="password changed", first_party=True) == 1
    assert store.list_for_user(user) == [] and store.get(theirs.id) is not None
    assert store.get(a.id) is None and store.get(b.id) is None


def test_revoke_client_and_user_client(engine: Engine) -> None:
    store = make_store(engine)
    alice, bob = add_user(engine), add_user(engine)
    app, other_app = add_client(engine), add_client(engine, name="other")
    alice_app = new_session(store, alice, app).session
    new_session(store, bob, app)
    alice_other = new_session(store, alice, other_app).session
    assert store.revoke_user_client(alice, app, reason="consent withdrawn") == 1
    assert store.get(alice_app.id) is None
    assert store.revoke_client(app, reason="client disabled") == 1
    assert [s.id for s in store.list_for_user(alice)] == [alice_other.id]


def test_deleting_a_client_ends_its_sessions_by_cascade(engine: Engine) -> None:
    from oauth_sessions.storage.models import OAuthClient

    store = make_store(engine)
    user, client = add_user(engine), add_client(engine)
    session = new_session(store, user, client).session
    with engine.begin() as conn:
        conn.execute(delete(OAuthClient.__table__).where(OAuthClient.__table__.c.id == client))
    assert store.get(session.id) is None and _count(engine, AMR, session_id=session.id) == 0


def test_one_session_per_user_per_client_when_configured(engine: Engine) -> None:
    store = make_store(engine, single_session_per_client=True)
    user, client, other_client = add_user(engine), add_client(engine), add_client(engine)
    first = new_session(store, user, client).session
    elsewhere = new_session(store, user, other_client).session
    with recording(signals.session_revoked) as events:
        second = new_session(store, user, client).session
    assert store.get(first.id) is None and store.get(second.id) is not None
    assert store.get(elsewhere.id) is not None
    assert events == [("oauth-sessions.session-revoked", {"session": first, "reason": "superseded"})]
    relaxed = make_store(engine)
    new_session(relaxed, user, client)
    assert len([s for s in relaxed.list_for_user(user) if s.client_id == client]) == 2


def test_set_tag(engine: Engine) -> None:
    store = make_store(engine)
    session = new_session(store, add_user(engine), None).session
    assert store.set_tag(session.id, "phone") is True
    assert store.get(session.id).tag == "phone"  # type: ignore[union-attr]
    assert store.set_tag(uuid.uuid4(), "x") is False


def test_purge_deletes_only_sessions_at_or_past_not_after_in_batches(engine: Engine) -> None:
    store = make_store(engine, session_timebox=None)
    user = add_user(engine)
    expired = [new_session(store, user, None, host_not_after=T0 - timedelta(seconds=i), now=T0
                           - timedelta(days=1)).session for i in range(5)]
    at_boundary = new_session(store, user, None, host_not_after=T0, now=T0 - timedelta(days=1))
    live = new_session(store, user, None, host_not_after=T0 + timedelta(seconds=1),
                       now=T0 - timedelta(days=1)).session
    forever = new_session(store, user, None, now=T0).session
    assert store.purge_expired(batch_size=2, now=T0, first_party=True) == 6
    remaining = {s.id for s in store.list_for_user(user)}
    assert remaining == {live.id, forever.id}
    assert all(s.id not in remaining for s in expired) and at_boundary.session.id not in remaining
    assert store.purge_expired(batch_size=2, now=T0, first_party=True) == 0


@pytest.mark.postgres
def test_purge_batch_walks_the_not_after_index(pg_engine: Engine) -> None:
    store = make_store(pg_engine)
    user = add_user(pg_engine)
    new_session(store, user, None)
    batch = (select(SESSIONS.c.id).where(SESSIONS.c.not_after <= T0)
             .order_by(SESSIONS.c.not_after).limit(1000))
    compiled = batch.compile(pg_engine, compile_kwargs={"literal_binds": True})
    with pg_engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {compiled}")))
    assert "sessions_not_after_idx" in plan


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.one_of(st.text(max_size=200), st.text(alphabet="osr1_-ABCabc0123456789",
                                                          min_size=80, max_size=80)))
def test_any_string_is_refused_with_invalid_refresh_token_and_writes_nothing(
    sqlite_engine: Engine, garbage: str
) -> None:
    from oauth_sessions.core.errors import InvalidRefreshToken, UnknownSession

    store = make_store(sqlite_engine)
    with pytest.raises((InvalidRefreshToken, UnknownSession)):
        store.rotate(garbage, client_id=None)
    assert _count(sqlite_engine, SESSIONS) == 0


def test_application_keys_rotate_and_rewrap_keeps_every_token_working(engine: Engine) -> None:
    user = add_user(engine)
    settings = make_store(engine).settings
    old_key, new_key = KeyEncryptor.generate_key(), KeyEncryptor.generate_key()
    plain = new_session(SessionStore(engine, settings), user, None, now=T0)
    under_k1 = new_session(SessionStore(engine, settings, KeyEncryptor({"k1": old_key}, "k1")),
                           user, None, now=T0)
    rotated = SessionStore(engine, settings, KeyEncryptor({"k1": old_key, "k2": new_key}, "k2"))
    assert rotated.rewrap_keys(batch_size=1, first_party=True) == 2
    for issued in (plain, under_k1):
        assert _stored_key(engine, issued.session.id).startswith("enc1:k2:")
    assert rotated.rewrap_keys(first_party=True) == 0
    only_k2 = SessionStore(engine, settings, KeyEncryptor({"k2": new_key}, "k2"))
    for issued in (plain, under_k1):
        assert only_k2.rotate(issued.refresh_token, client_id=None, now=T0).session.counter == 1
