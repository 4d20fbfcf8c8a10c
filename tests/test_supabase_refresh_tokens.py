"""Issue 17 item 4: refresh tokens in Supabase Auth's format ("version 0").

Vectors are built here from the byte layout in ``shared/supabase.md``::

    base64url_nopad(0x00 || session id (16) || counter (uvarint) || HMAC-SHA256(key, ...)[:16]
                    || SHA-256(...)[:4])

They are accepted for sessions of OAuth clients with the library's own rotation, reuse and
revocation rules (the counter is the same column), rotation answers in the ``osr1_`` format,
and a first-party session's token is never refreshed here (Supabase Auth refreshes those).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from freezegun import freeze_time
from sqlalchemy import Engine, select, update
from test_store_support import T0, add_client, add_user, make_store, new_session

from oauth_sessions.core.errors import (
    ClientMismatch,
    InvalidRefreshToken,
    RefreshTokenReused,
    UnknownSession,
)
from oauth_sessions.core.refresh_tokens import (
    TOKEN_PREFIX,
    MalformedRefreshToken,
    key_bytes,
    looks_like_refresh_token,
    parse_refresh_token,
    verify_tag,
)
from oauth_sessions.storage.models import Session
from oauth_sessions.storage.sessions import SessionStore

SESSIONS = Session.__table__
KEY = bytes(range(32))
SID = uuid.UUID("6f1c2a4e-9b7d-4c3e-8a21-0d5e6f7a8b9c")


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def supabase_raw(session_id: uuid.UUID, counter: int, key: bytes) -> bytes:
    body = b"\x00" + session_id.bytes + _uvarint(counter)
    body += hmac.new(key, body, hashlib.sha256).digest()[:16]
    return body + hashlib.sha256(body).digest()[:4]


def supabase_token(session_id: uuid.UUID, counter: int, key: bytes) -> str:
    return _b64(supabase_raw(session_id, counter, key))


def _with_checksum(body: bytes) -> str:
    return _b64(body + hashlib.sha256(body).digest()[:4])


def _row(engine: Engine, session_id: uuid.UUID) -> tuple[Any, ...] | None:
    with engine.connect() as conn:
        row = conn.execute(select(SESSIONS).where(SESSIONS.c.id == session_id)).first()
    return None if row is None else tuple(row)


def _oauth_session(engine: Engine, store: SessionStore, *, counter: int,
                   client: bool = True) -> tuple[uuid.UUID, uuid.UUID | None, bytes]:
    """A session of a client at ``counter``; returns (session id, client id, key bytes)."""
    user = add_user(engine)
    client_id = add_client(engine) if client else None
    info = new_session(store, user, client_id, now=T0).session
    with engine.begin() as conn:
        conn.execute(update(SESSIONS).where(SESSIONS.c.id == info.id)
                     .values(refresh_token_counter=counter))
        stored = conn.execute(select(SESSIONS.c.refresh_token_hmac_key)
                              .where(SESSIONS.c.id == info.id)).scalar_one()
    return info.id, client_id, key_bytes(stored)


@pytest.mark.parametrize("counter", [0, 1, 127, 128, 300, 2**35, 2**63 - 1])
def test_issue17_item4_vectors_from_the_layout_parse_and_verify(counter: int) -> None:
    token = supabase_token(SID, counter, KEY)
    assert looks_like_refresh_token(token) and not token.startswith(TOKEN_PREFIX)
    parsed = parse_refresh_token(token)
    assert (parsed.session_id, parsed.counter, parsed.is_supabase_format) == (SID, counter, True)
    assert verify_tag(parsed, KEY)
    assert not verify_tag(parsed, bytes(32))
    if counter < 128:
        assert len(token) == 51  # "about 51 characters"


def test_issue17_item4_every_single_byte_change_is_refused_by_the_codec() -> None:
    raw = supabase_raw(SID, 300, KEY)
    for index in range(len(raw)):
        for flip in (0x01, 0x80):
            changed = bytearray(raw)
            changed[index] ^= flip
            with pytest.raises(MalformedRefreshToken):
                parse_refresh_token(_b64(bytes(changed)))  # the checksum sheds it unread
    for bad in (raw[:-1], raw + b"\x00", b"\x01" + raw[1:]):
        with pytest.raises(MalformedRefreshToken):
            parse_refresh_token(_b64(bad))
    padded = supabase_token(SID, 300, KEY) + "="
    with pytest.raises(MalformedRefreshToken):
        parse_refresh_token(padded)
    # A non-minimal varint (0 spelled 0x80 0x00) with a correct checksum: refused too.
    body = b"\x00" + SID.bytes + b"\x80\x00"
    body += hmac.new(KEY, body, hashlib.sha256).digest()[:16]
    with pytest.raises(MalformedRefreshToken):
        parse_refresh_token(_with_checksum(body))


def test_issue17_item4_changes_with_a_recomputed_checksum_fail_before_any_write(
    engine: Engine,
) -> None:
    store = make_store(engine)
    sid, client, key = _oauth_session(engine, store, counter=5)
    body = supabase_raw(sid, 5, key)[:-4]
    before = _row(engine, sid)
    for index in range(len(body)):
        changed = bytearray(body)
        changed[index] ^= 0x01
        token = _with_checksum(bytes(changed))
        with pytest.raises((InvalidRefreshToken, UnknownSession)):
            store.rotate(token, client_id=client, now=T0)
        assert store.find_refresh_session(token) is None
        assert _row(engine, sid) == before


def test_issue17_item4_counter_rules_are_the_librarys(engine: Engine) -> None:
    store = make_store(engine, refresh_token_reuse_interval=10)
    sid, client, key = _oauth_session(engine, store, counter=5)
    ahead = supabase_token(sid, 6, key)
    with pytest.raises(InvalidRefreshToken):
        store.rotate(ahead, client_id=client, now=T0)
    with pytest.raises(ClientMismatch):
        store.rotate(supabase_token(sid, 5, key), client_id=uuid.uuid4(), now=T0)
    found = store.find_refresh_session(supabase_token(sid, 5, key))
    assert found is not None and found.is_current
    with freeze_time(T0):
        rotated = store.rotate(supabase_token(sid, 5, key), client_id=client, now=T0)
    assert rotated.session.counter == 6 and rotated.refresh_token.startswith(TOKEN_PREFIX)
    assert parse_refresh_token(rotated.refresh_token).counter == 6
    # The same (now previous) Supabase token inside the reuse interval: the current token again.
    again = store.rotate(supabase_token(sid, 5, key), client_id=client,
                         now=T0 + timedelta(seconds=9))
    assert again.replayed and again.refresh_token == rotated.refresh_token
    assert _row(engine, sid) is not None
    # Two behind: reuse, the session is revoked.
    with pytest.raises(RefreshTokenReused):
        store.rotate(supabase_token(sid, 4, key), client_id=client, now=T0 + timedelta(seconds=9))
    assert _row(engine, sid) is None


def test_issue17_item4_first_party_sessions_are_left_to_supabase_auth(engine: Engine) -> None:
    store = make_store(engine)
    sid, _, key = _oauth_session(engine, store, counter=3, client=False)
    before = _row(engine, sid)
    token = supabase_token(sid, 3, key)
    with pytest.raises(InvalidRefreshToken):
        store.rotate(token, client_id=None, now=T0)
    assert store.find_refresh_session(token) is None
    assert _row(engine, sid) == before


@pytest.mark.postgres
def test_issue17_item4_eight_threads_refreshing_one_supabase_token_advance_once(
    pg_engine: Engine,
) -> None:
    store = make_store(pg_engine, refresh_token_reuse_interval=60)
    sid, client, key = _oauth_session(pg_engine, store, counter=41)
    token = supabase_token(sid, 41, key)
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def refresh() -> None:
        barrier.wait()
        try:
            results.append(store.rotate(token, client_id=client).refresh_token)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=refresh) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(results) == 8 and len(set(results)) == 1
    with pg_engine.connect() as conn:
        counter = conn.execute(select(SESSIONS.c.refresh_token_counter)
                               .where(SESSIONS.c.id == sid)).scalar_one()
    assert counter == 42


def test_issue17_item4_endpoints_take_a_supabase_token_over_http(engine: Engine) -> None:
    from factories import basic_auth, create_client, make_app

    from oauth_sessions import get_state

    app = make_app(engine, refresh_token_reuse_interval=10)
    client, secret = create_client(app, can_introspect=True)
    assert secret is not None
    store = get_state(app).components["sessions"]
    issued = store.create_session(user_id=add_user(engine), client_id=client.id,
                                  scopes="openid profile", aal="aal1", amr=["pwd"])
    sid = issued.session.id
    with engine.connect() as conn:
        key = key_bytes(conn.execute(select(SESSIONS.c.refresh_token_hmac_key)
                                     .where(SESSIONS.c.id == sid)).scalar_one())
    token = supabase_token(sid, 0, key)
    http = app.test_client()
    auth = {"Authorization": basic_auth(client.client_id, secret)}
    introspected = http.post("/oauth/introspect", data={"token": token}, headers=auth)
    assert introspected.status_code == 200 and introspected.get_json()["active"] is True
    refreshed = http.post("/oauth/token", headers=auth,
                          data={"grant_type": "refresh_token", "refresh_token": token})
    assert refreshed.status_code == 200, refreshed.get_json()
    new = refreshed.get_json()["refresh_token"]
    assert new.startswith(TOKEN_PREFIX) and parse_refresh_token(new).counter == 1
    forged = supabase_token(sid, 1, bytes(32))
    refused = http.post("/oauth/token", headers=auth,
                        data={"grant_type": "refresh_token", "refresh_token": forged})
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"
    revoked = http.post("/oauth/revoke", data={"token": supabase_token(sid, 1, key)}, headers=auth)
    assert revoked.status_code == 200 and _row(engine, sid) is None
