"""Refresh-token rotation: refresh once, replay inside the reuse interval, revoke on reuse.

Time-sensitive rules are checked at their exact boundaries with freezegun (the store reads the
clock itself here), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import Engine, select
from test_store_support import T0, add_client, add_user, make_store, new_session, recording

from oauth_sessions.core import errors, signals
from oauth_sessions.core.refresh_tokens import encode_refresh_token, parse_refresh_token
from oauth_sessions.core.types import Aal
from oauth_sessions.protocol.oauth_errors import to_oauth2_error
from oauth_sessions.storage.models import Session
from oauth_sessions.storage.sessions import SessionStore

SECOND = timedelta(seconds=1)


def _row(engine: Engine, session_id: uuid.UUID) -> object:
    table = Session.__table__
    with engine.connect() as conn:
        return conn.execute(select(table).where(table.c.id == session_id)).first()


def _counter(store: SessionStore, session_id: uuid.UUID) -> int | None:
    info = store.get(session_id)
    return None if info is None else info.counter


@pytest.fixture
def client(engine: Engine) -> uuid.UUID:
    return add_client(engine)


@pytest.fixture
def user(engine: Engine) -> uuid.UUID:
    return add_user(engine)


def test_the_current_token_refreshes_once_and_the_row_records_it(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine)
    issued = new_session(store, user, client, user_agent="old-agent", ip="198.51.100.1", now=T0)
    with freeze_time(T0 + timedelta(minutes=5)), recording(signals.session_refreshed) as events:
        result = store.rotate(issued.refresh_token, client_id=client, user_agent="new-agent",
                              ip="2001:db8::1")
    info = result.session
    assert parse_refresh_token(result.refresh_token).counter == 1 == info.counter
    assert result.refresh_token != issued.refresh_token and not result.replayed
    assert info.refreshed_at == info.updated_at == T0 + timedelta(minutes=5)
    assert (info.user_agent, info.ip) == ("new-agent", "2001:db8::1")
    assert result.scopes == ("openid", "profile") and [a.method for a in result.amr] == ["pwd"]
    raw = _row(engine, info.id)
    assert raw.refreshed_at.tzinfo is None  # type: ignore[attr-defined]  # naive UTC column
    assert raw.refreshed_at == (T0 + timedelta(minutes=5)).replace(tzinfo=None)  # type: ignore[attr-defined]
    assert events == [("oauth-sessions.session-refreshed", {"session": info})]


def test_refresh_without_user_agent_or_ip_keeps_the_recorded_ones(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine)
    issued = new_session(store, user, client, user_agent="agent", ip="198.51.100.1", now=T0)
    info = store.rotate(issued.refresh_token, client_id=client, ip="not-an-ip", now=T0).session
    assert (info.user_agent, info.ip) == ("agent", "198.51.100.1")


def test_previous_token_inside_the_reuse_interval_gets_the_same_new_token(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine, refresh_token_reuse_interval=10)
    issued = new_session(store, user, client, now=T0)
    with freeze_time(T0):
        first = store.rotate(issued.refresh_token, client_id=client)
    with freeze_time(T0 + 10 * SECOND - timedelta(microseconds=1)):
        again = store.rotate(issued.refresh_token, client_id=client)
    assert again.refresh_token == first.refresh_token and again.replayed
    assert _counter(store, issued.session.id) == 1
    assert store.rotate(first.refresh_token, client_id=client, now=T0 + 11 * SECOND).session.counter == 2


def test_previous_token_at_the_end_of_the_reuse_interval_is_reuse_and_revokes(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine, refresh_token_reuse_interval=10)
    issued = new_session(store, user, client, now=T0)
    with freeze_time(T0):
        first = store.rotate(issued.refresh_token, client_id=client)
    with freeze_time(T0 + 10 * SECOND), \
            recording(signals.refresh_token_reused, signals.session_revoked) as events, \
            pytest.raises(errors.RefreshTokenReused):
        store.rotate(issued.refresh_token, client_id=client)
    assert store.get(issued.session.id) is None
    assert [name for name, _ in events] == ["oauth-sessions.refresh-token-reused",
                                            "oauth-sessions.session-revoked"]
    assert events[1][1]["reason"] == "refresh_token_reused"
    with pytest.raises(errors.UnknownSession):  # every token of the session died with it
        store.rotate(first.refresh_token, client_id=client, now=T0 + 10 * SECOND)


def test_a_token_two_behind_is_reuse_even_inside_the_interval(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine, refresh_token_reuse_interval=300)
    issued = new_session(store, user, client, now=T0)
    first = store.rotate(issued.refresh_token, client_id=client, now=T0)
    store.rotate(first.refresh_token, client_id=client, now=T0 + SECOND)
    with pytest.raises(errors.RefreshTokenReused):
        store.rotate(issued.refresh_token, client_id=client, now=T0 + 2 * SECOND)
    assert store.get(issued.session.id) is None


def test_reuse_never_touches_another_session(engine: Engine, user: uuid.UUID, client: uuid.UUID) -> None:
    store = make_store(engine, refresh_token_reuse_interval=0)
    victim = new_session(store, user, client, now=T0)
    bystander = new_session(store, user, client, now=T0)
    store.rotate(victim.refresh_token, client_id=client, now=T0)
    with pytest.raises(errors.RefreshTokenReused):
        store.rotate(victim.refresh_token, client_id=client, now=T0)
    assert store.get(victim.session.id) is None
    assert store.rotate(bystander.refresh_token, client_id=client, now=T0).session.counter == 1


def test_expiry_at_not_after_boundaries(engine: Engine, user: uuid.UUID, client: uuid.UUID) -> None:
    store = make_store(engine, session_timebox=3600)
    issued = new_session(store, user, client, now=T0)
    end = T0 + timedelta(seconds=3600)
    for moment in (end, end + SECOND):
        with freeze_time(moment), pytest.raises(errors.SessionExpired):
            store.rotate(issued.refresh_token, client_id=client)
        assert _counter(store, issued.session.id) == 0  # an expired refresh writes nothing
    with freeze_time(end - SECOND):
        assert store.rotate(issued.refresh_token, client_id=client).session.counter == 1


def test_inactivity_counts_from_creation_then_from_the_last_refresh(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine, inactivity_timeout=600, session_timebox=None)
    issued = new_session(store, user, client, now=T0)
    limit = T0 + timedelta(seconds=600)
    for moment in (limit, limit + SECOND):
        with freeze_time(moment), pytest.raises(errors.SessionInactive):
            store.rotate(issued.refresh_token, client_id=client)
    with freeze_time(limit - SECOND):
        refreshed = store.rotate(issued.refresh_token, client_id=client)
    later = limit - SECOND + timedelta(seconds=600)
    with freeze_time(later - SECOND):
        store.check_active(store.get(issued.session.id))  # type: ignore[arg-type]
    with freeze_time(later), pytest.raises(errors.SessionInactive):
        store.rotate(refreshed.refresh_token, client_id=client)
    assert _counter(store, issued.session.id) == 1


def test_token_presented_by_another_client_is_refused_and_changes_nothing(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine)
    other = add_client(engine, name="other")
    issued = new_session(store, user, client, now=T0)
    for presenter in (other, None):
        with pytest.raises(errors.ClientMismatch):
            store.rotate(issued.refresh_token, client_id=presenter, now=T0)
    assert _counter(store, issued.session.id) == 0
    assert store.rotate(issued.refresh_token, client_id=client, now=T0).session.counter == 1


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1],
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "Q"),
    lambda t: "osr2_" + t[5:],
    lambda t: t + "=",
    lambda t: "",
])
def test_malformed_or_altered_tokens_are_refused_before_any_write(
    engine: Engine, user: uuid.UUID, client: uuid.UUID, mangle: object
) -> None:
    store = make_store(engine)
    issued = new_session(store, user, client, now=T0)
    with pytest.raises(errors.InvalidRefreshToken):
        store.rotate(mangle(issued.refresh_token), client_id=client, now=T0)  # type: ignore[operator]
    assert _counter(store, issued.session.id) == 0


def test_a_forged_tag_for_a_real_session_neither_refreshes_nor_revokes(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine)
    issued = new_session(store, user, client, now=T0)
    for counter in (0, 5):  # current, and "ahead" with a wrong key
        forged = encode_refresh_token(issued.session.id, counter, bytes(32))
        with pytest.raises(errors.InvalidRefreshToken):
            store.rotate(forged, client_id=client, now=T0)
    assert _counter(store, issued.session.id) == 0


def test_token_of_an_unknown_session(engine: Engine, client: uuid.UUID) -> None:
    store = make_store(engine)
    with pytest.raises(errors.UnknownSession):
        store.rotate(encode_refresh_token(uuid.uuid4(), 0, bytes(32)), client_id=client, now=T0)


def test_refresh_may_narrow_scope_but_never_widen_it(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine)
    issued = new_session(store, user, client, scopes="openid profile", now=T0)
    with pytest.raises(errors.ScopeNotGranted):
        store.rotate(issued.refresh_token, client_id=client, scope="openid email", now=T0)
    assert _counter(store, issued.session.id) == 0
    narrowed = store.rotate(issued.refresh_token, client_id=client, scope="openid", now=T0)
    assert narrowed.scopes == ("openid",)
    assert narrowed.session.scopes == ("openid", "profile")  # the grant itself is not reduced
    assert store.rotate(narrowed.refresh_token, client_id=client, now=T0).scopes == ("openid", "profile")


def test_scopes_above_the_sessions_aal_are_dropped_or_refused(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine, scope_min_aal={"payments": Aal.AAL2})
    issued = new_session(store, user, client, scopes="openid payments", aal=Aal.AAL1, now=T0)
    with pytest.raises(errors.ScopeNeedsHigherAal):
        store.rotate(issued.refresh_token, client_id=client, scope="payments", now=T0)
    assert store.rotate(issued.refresh_token, client_id=client, now=T0).scopes == ("openid",)


def test_session_below_the_clients_minimum_aal_is_refused(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine)
    issued = new_session(store, user, client, aal=Aal.AAL2, now=T0)
    store.set_aal(issued.session.id, Aal.AAL1, now=T0)
    with pytest.raises(errors.InsufficientAal):
        store.rotate(issued.refresh_token, client_id=client, client_min_aal=Aal.AAL2, now=T0)
    assert _counter(store, issued.session.id) == 0


def test_step_up_advances_by_two_and_kills_every_earlier_token(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine, refresh_token_reuse_interval=300)
    issued = new_session(store, user, client, now=T0)
    first = store.rotate(issued.refresh_token, client_id=client, now=T0)
    factor = uuid.uuid4()
    with recording(signals.session_stepped_up) as events:
        stepped = store.step_up(issued.session.id, aal=Aal.AAL2, factor_id=factor, method="totp",
                                now=T0 + SECOND)
    assert stepped.session.counter == 3 and stepped.session.aal == Aal.AAL2
    assert stepped.session.factor_id == factor and len(events) == 1
    assert parse_refresh_token(stepped.refresh_token).counter == 3
    assert {a.method for a in store.get_amr(issued.session.id)} == {"pwd", "totp"}
    # The token from before the step-up, inside the reuse interval, yields no aal2 token:
    with pytest.raises(errors.RefreshTokenReused):
        store.rotate(first.refresh_token, client_id=client, now=T0 + 2 * SECOND)
    assert store.get(issued.session.id) is None


def test_the_step_up_token_refreshes_at_the_new_level(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine)
    issued = new_session(store, user, client, now=T0)
    stepped = store.step_up(issued.session.id, aal=Aal.AAL2, factor_id=None, method="totp", now=T0)
    result = store.rotate(stepped.refresh_token, client_id=client, now=T0 + SECOND)
    assert result.session.aal == Aal.AAL2 and result.session.counter == 3
    assert result.auth_time == T0 and {a.method for a in result.amr} == {"pwd", "totp"}


def test_step_up_of_an_expired_or_missing_session_is_refused(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine, session_timebox=60)
    issued = new_session(store, user, client, now=T0)
    with pytest.raises(errors.SessionExpired):
        store.step_up(issued.session.id, aal=Aal.AAL2, factor_id=None, method="totp",
                      now=T0 + timedelta(seconds=60))
    with pytest.raises(errors.UnknownSession):
        store.step_up(uuid.uuid4(), aal=Aal.AAL2, factor_id=None, method="totp", now=T0)
    assert _counter(store, issued.session.id) == 0


def test_downgrade_lowers_the_aal_clears_the_factor_and_is_announced(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine)
    issued = new_session(store, user, client, aal=Aal.AAL2, factor_id=uuid.uuid4(), now=T0)
    with recording(signals.session_downgraded) as events:
        info = store.set_aal(issued.session.id, Aal.AAL1, now=T0)
    assert info is not None and info.aal == Aal.AAL1 and info.factor_id is None
    assert len(events) == 1 and info.counter == 0
    with pytest.raises(ValueError, match="step_up"):
        store.set_aal(issued.session.id, Aal.AAL2)
    assert store.set_aal(uuid.uuid4(), Aal.AAL1) is None


@pytest.mark.parametrize(("exc", "code", "description"), [
    (errors.InvalidRefreshToken(), "invalid_grant", "refresh token not found"),
    (errors.UnknownSession(), "invalid_grant", "refresh token not found"),
    (errors.RefreshTokenReused(), "invalid_grant", "refresh token already used"),
    (errors.SessionExpired(), "invalid_grant", "session expired"),
    (errors.ClientMismatch(), "invalid_grant", "refresh token was issued to another client"),
    (errors.ScopeNotGranted(), "invalid_scope", "requested scope exceeds the scope granted to this session"),
])
def test_domain_errors_map_to_rfc6749_errors(exc: Exception, code: str, description: str) -> None:
    error = to_oauth2_error(exc)
    assert (error.error, error.description, error.status_code) == (code, description, 400)


def test_internal_detail_stays_out_of_the_public_description() -> None:
    sid = uuid.uuid4()
    exc = errors.RefreshTokenReused(f"reuse on {sid}")
    assert str(sid) in str(exc) and str(sid) not in to_oauth2_error(exc).get_body()[1][1]
    with pytest.raises(TypeError):
        to_oauth2_error(RuntimeError("boom"))


def test_rows_of_an_older_deployment_without_a_key_are_not_found(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine)
    issued = new_session(store, user, client, now=T0)
    table = Session.__table__
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == issued.session.id)
                     .values(refresh_token_hmac_key=None, refresh_token_counter=None))
    with pytest.raises(errors.UnknownSession):
        store.rotate(issued.refresh_token, client_id=client, now=T0)
    assert store.get(issued.session.id) is not None


def test_tokens_are_never_stored_and_keys_never_logged(
    engine: Engine, user: uuid.UUID, client: uuid.UUID, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(engine, refresh_token_reuse_interval=0)
    issued = new_session(store, user, client, now=T0)
    key = str(_row(engine, issued.session.id).refresh_token_hmac_key)  # type: ignore[attr-defined]
    second = store.rotate(issued.refresh_token, client_id=client, now=T0)
    stored = " ".join(str(v) for v in _row(engine, issued.session.id))  # type: ignore[attr-defined]
    assert issued.refresh_token not in stored and second.refresh_token not in stored
    with caplog.at_level("DEBUG"), pytest.raises(errors.RefreshTokenReused) as raised:
        store.rotate(issued.refresh_token, client_id=client, now=T0)
    logged = caplog.text + str(raised.value)
    assert "reuse" in logged
    for secret in (key, issued.refresh_token, second.refresh_token):
        assert secret not in logged


def test_find_refresh_session_reads_without_writing(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine)
    issued = new_session(store, user, client, now=T0)
    found = store.find_refresh_session(issued.refresh_token)
    assert found is not None
    info, amr, counter = found
    assert info == store.get(issued.session.id) and [a.method for a in amr] == ["pwd"]
    assert counter == 0 and info.counter == 0
    forged = encode_refresh_token(issued.session.id, 0, bytes(32))
    assert store.find_refresh_session(forged) is None
    assert store.find_refresh_session("osr1_nope") is None
    assert store.find_refresh_session(encode_refresh_token(uuid.uuid4(), 0, bytes(32))) is None


@pytest.mark.postgres
def test_pooled_connections_go_back_in_transaction_mode(pg_engine: Engine) -> None:
    """The fast path borrows pooled psycopg connections in autocommit; none may leak that mode."""
    store = make_store(pg_engine, refresh_token_reuse_interval=0)
    user, client = add_user(pg_engine), add_client(pg_engine)
    issued = new_session(store, user, client, now=T0)
    store.rotate(issued.refresh_token, client_id=client, now=T0)
    with pytest.raises(errors.RefreshTokenReused):
        store.rotate(issued.refresh_token, client_id=client, now=T0)
    with pytest.raises(errors.InvalidRefreshToken):
        store.rotate(encode_refresh_token(uuid.uuid4(), 0, bytes(32))[:-1], client_id=client)
    size = pg_engine.pool.checkedin()  # type: ignore[attr-defined]
    borrowed = [pg_engine.raw_connection() for _ in range(size)]
    try:
        assert size >= 1
        assert all(c.driver_connection.autocommit is False for c in borrowed)  # type: ignore[union-attr]
    finally:
        for conn in borrowed:
            conn.close()


def test_step_up_of_an_inactive_session_is_refused_and_changes_nothing(
    engine: Engine, user: uuid.UUID, client: uuid.UUID
) -> None:
    store = make_store(engine, inactivity_timeout=600, session_timebox=None)
    issued = new_session(store, user, client, now=T0)
    with pytest.raises(errors.SessionInactive):
        store.step_up(issued.session.id, aal=Aal.AAL2, factor_id=None, method="totp",
                      now=T0 + timedelta(seconds=600))
    info = store.get(issued.session.id)
    assert info is not None and info.counter == 0 and info.aal == Aal.AAL1
    strong = new_session(store, user, client, aal=Aal.AAL2, now=T0)
    with pytest.raises(ValueError, match="set_aal"):
        store.step_up(strong.session.id, aal=Aal.AAL1, factor_id=None, method="pwd", now=T0)
    assert store.get(strong.session.id).counter == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(("after_refresh", "replayed"), [(9, True), (10, False), (11, False)])
def test_reuse_interval_one_second_before_at_and_after(
    engine: Engine, user: uuid.UUID, client: uuid.UUID, after_refresh: int, replayed: bool
) -> None:
    store = make_store(engine, refresh_token_reuse_interval=10)
    issued = new_session(store, user, client, now=T0)
    with freeze_time(T0 + SECOND):
        first = store.rotate(issued.refresh_token, client_id=client)
    with freeze_time(T0 + SECOND + after_refresh * SECOND):
        if replayed:
            assert store.rotate(issued.refresh_token, client_id=client).refresh_token == \
                first.refresh_token
            assert _counter(store, issued.session.id) == 1
        else:
            with pytest.raises(errors.RefreshTokenReused):
                store.rotate(issued.refresh_token, client_id=client)
            assert store.get(issued.session.id) is None


@pytest.mark.parametrize("stored_key", [
    # Supabase Auth's encrypted form, with no Supabase root keys configured here.
    '{"key_id": "root-a", "alg": "aes-gcm-hkdf", "data": "AAAAAAAAAAAAAAAAAAAAAA==", '
    '"nonce": "AAAAAAAAAAAAAAAA"}',
    "not-a-key",  # a damaged value
])
def test_a_session_key_this_deployment_cannot_read_refuses_the_token_and_changes_nothing(
    engine: Engine, user: uuid.UUID, client: uuid.UUID, stored_key: str
) -> None:
    store = make_store(engine)
    issued = new_session(store, user, client, now=T0)
    table = Session.__table__
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == issued.session.id)
                     .values(refresh_token_hmac_key=stored_key))
    before = _row(engine, issued.session.id)
    with pytest.raises(errors.InvalidRefreshToken) as raised:
        store.rotate(issued.refresh_token, client_id=client, now=T0)
    assert to_oauth2_error(raised.value).error == "invalid_grant"
    assert _row(engine, issued.session.id) == before
