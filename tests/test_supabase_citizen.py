"""Issue 17 (good citizen of a shared Supabase database), on SQLite and PostgreSQL.

* item 3a: ``rewrap_keys`` rewrites only keys of OAuth clients' sessions, never a first-party
  session (``oauth_client_id`` NULL, Supabase Auth's own) and never a key in Supabase Auth's
  ``aes-gcm-hkdf`` JSON form;
* item 3b: ``purge_expired`` and ``revoke_user`` leave first-party sessions alone by default;
* item 3c: a client with ``deleted_at`` set (soft-deleted, as Supabase Auth does it, leaving
  its sessions in place) is unknown, and its sessions' tokens are inactive at once, in the
  same read; deleting a client from the library soft-deletes it and ends its sessions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from datetime import timedelta
from typing import Any

import pytest
from factories import basic_auth, make_app
from sqlalchemy import Engine, insert, select, update
from test_store_support import T0, add_client, add_user, make_store, new_session, recording

from oauth_sessions import get_state
from oauth_sessions.core import signals
from oauth_sessions.core.errors import UnknownSession
from oauth_sessions.storage.clients import ClientStore, OAuthClientWrapper, verify_client_secret
from oauth_sessions.storage.introspection_store import StoreSessions
from oauth_sessions.storage.key_encryption import KeyEncryptor, is_supabase_encrypted
from oauth_sessions.storage.models import OAuthClient, Session
from oauth_sessions.storage.sessions import SessionStore

SESSIONS = Session.__table__
CLIENTS = OAuthClient.__table__

#: What Supabase Auth stores when its database encryption is on (shape from supabase.md).
SUPABASE_ENCRYPTED_KEY = json.dumps({
    "key_id": "root-1", "alg": "aes-gcm-hkdf",
    "data": "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k=", "nonce": "AAECAwQFBgcICQoL",
})


def _row(engine: Engine, session_id: uuid.UUID) -> tuple[Any, ...] | None:
    """Every column of the session row as stored (for byte-identical comparisons)."""
    with engine.connect() as conn:
        row = conn.execute(select(SESSIONS).where(SESSIONS.c.id == session_id)).first()
    return None if row is None else tuple(row)


def _set_key(engine: Engine, session_id: uuid.UUID, stored: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(SESSIONS).where(SESSIONS.c.id == session_id)
                     .values(refresh_token_hmac_key=stored))


def _soft_delete_as_supabase(engine: Engine, client_id: uuid.UUID) -> None:
    """What Supabase Auth does on a client delete: set deleted_at, leave the sessions."""
    with engine.begin() as conn:
        conn.execute(update(CLIENTS).where(CLIENTS.c.id == client_id).values(deleted_at=T0))


def test_issue17_item3_supabase_encrypted_form_is_recognised() -> None:
    assert is_supabase_encrypted(SUPABASE_ENCRYPTED_KEY)
    box = KeyEncryptor({"k1": KeyEncryptor.generate_key()}, "k1")
    assert box.needs_rewrap(SUPABASE_ENCRYPTED_KEY) is False
    assert box.needs_rewrap("c2VjcmV0LWtleS1vZi0zMi1ieXRlcy1sb25nLi4uLi4") is True


def test_issue17_item3_rewrap_leaves_first_party_sessions_byte_identical(engine: Engine) -> None:
    user, client = add_user(engine), add_client(engine)
    settings = make_store(engine).settings
    plain_store = SessionStore(engine, settings)
    first_party_plain = new_session(plain_store, user, None, now=T0).session
    first_party_encrypted = new_session(plain_store, user, None, now=T0).session
    _set_key(engine, first_party_encrypted.id, SUPABASE_ENCRYPTED_KEY)
    oauth_supabase_form = new_session(plain_store, user, client, now=T0).session
    _set_key(engine, oauth_supabase_form.id, SUPABASE_ENCRYPTED_KEY)
    ours = new_session(plain_store, user, client, now=T0)
    untouched = {s.id: _row(engine, s.id)
                 for s in (first_party_plain, first_party_encrypted, oauth_supabase_form)}

    box = KeyEncryptor({"k1": KeyEncryptor.generate_key()}, "k1")
    rewrapping = SessionStore(engine, settings, box)
    assert rewrapping.rewrap_keys(batch_size=1) == 1
    assert {sid: _row(engine, sid) for sid in untouched} == untouched
    stored = _row(engine, ours.session.id)
    assert stored is not None and str(stored[SESSIONS.c.keys().index("refresh_token_hmac_key")]
                                      ).startswith("enc1:k1:")
    assert rewrapping.rotate(ours.refresh_token, client_id=client, now=T0).session.counter == 1
    # Told to include first-party sessions, plain keys are wrapped; Supabase's form never is.
    assert rewrapping.rewrap_keys(first_party=True) == 1
    assert _row(engine, first_party_encrypted.id) == untouched[first_party_encrypted.id]
    assert _row(engine, oauth_supabase_form.id) == untouched[oauth_supabase_form.id]


def test_issue17_item3_purge_leaves_expired_first_party_sessions_alone(engine: Engine) -> None:
    store = make_store(engine, session_timebox=None)
    user, client = add_user(engine), add_client(engine)
    day_ago = T0 - timedelta(days=1)
    first_party = new_session(store, user, None, host_not_after=T0, now=day_ago).session
    oauth = new_session(store, user, client, host_not_after=T0, now=day_ago).session
    before = _row(engine, first_party.id)
    assert store.purge_expired(now=T0) == 1
    assert _row(engine, oauth.id) is None
    assert _row(engine, first_party.id) == before
    assert store.purge_expired(now=T0, first_party=True) == 1
    assert _row(engine, first_party.id) is None


def test_issue17_item3_revoke_user_leaves_first_party_sessions_by_default(engine: Engine) -> None:
    store = make_store(engine)
    user, client = add_user(engine), add_client(engine)
    first_party = new_session(store, user, None).session
    a, b = (new_session(store, user, client).session for _ in range(2))
    before = _row(engine, first_party.id)
    assert store.revoke_user(user, except_session=a.id, reason="elsewhere") == 1
    assert _row(engine, b.id) is None and _row(engine, a.id) is not None
    assert store.revoke_user(user, reason="password changed") == 1
    assert _row(engine, first_party.id) == before
    assert store.revoke_user(user, reason="everything", first_party=True) == 1
    assert store.list_for_user(user) == []


def test_issue17_item3_client_soft_deleted_by_supabase_is_unknown_and_its_tokens_dead(
    engine: Engine,
) -> None:
    store = make_store(engine)
    clients = ClientStore(engine, cache_seconds=0, sessions=store)
    user, client = add_user(engine), add_client(engine)
    issued = new_session(store, user, client, now=T0)
    assert clients.get(client) is not None
    assert StoreSessions(store).current_refresh_session(issued.refresh_token) is not None

    _soft_delete_as_supabase(engine, client)
    row_before = _row(engine, issued.session.id)
    assert clients.get(client) is None and clients.get(str(client)) is None
    assert client not in {c.id for c in clients.list()}
    assert store.get(issued.session.id) is None
    source = StoreSessions(store)
    assert source.get(issued.session.id) is None
    assert source.current_refresh_session(issued.refresh_token) is None
    assert store.find_refresh_session(issued.refresh_token) is None
    with pytest.raises(UnknownSession):
        store.rotate(issued.refresh_token, client_id=client, now=T0)
    assert _row(engine, issued.session.id) == row_before  # refused before any write
    assert clients.rotate_secret(client) is None
    assert clients.update_metadata(client, client_name="renamed") is False
    assert clients.delete(client) is False


def test_issue17_item3_library_delete_is_a_soft_delete_that_ends_sessions(engine: Engine) -> None:
    store = make_store(engine)
    clients = ClientStore(engine, cache_seconds=0, sessions=store)
    user, client, other = add_user(engine), add_client(engine), add_client(engine, name="other")
    gone = new_session(store, user, client, now=T0).session
    kept = new_session(store, user, other, now=T0).session
    with recording(signals.session_revoked, signals.client_deleted) as events:
        assert clients.delete(client, now=T0) is True
    with engine.connect() as conn:
        deleted_at = conn.execute(select(CLIENTS.c.deleted_at)
                                  .where(CLIENTS.c.id == client)).scalar_one()
    assert deleted_at == T0  # the row stays, as Supabase Auth keeps it
    assert _row(engine, gone.id) is None and _row(engine, kept.id) is not None
    assert [name for name, _ in events] == ["oauth-sessions.session-revoked",
                                            "oauth-sessions.client-deleted"]
    assert events[0][1]["reason"] == "client_deleted"
    assert clients.get(client) is None


def test_issue17_a_client_supabase_auth_made_authenticates_and_refreshes(engine: Engine) -> None:
    """Supabase's encodings: base64url SHA-256 secret hash, comma-separated grant types."""
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    stored = base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()).rstrip(b"=").decode()
    client_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(insert(CLIENTS).values(
            id=client_id, client_secret_hash=stored, registration_type="dynamic",
            redirect_uris="https://app.example/cb", grant_types="authorization_code,refresh_token",
            client_name="made by Supabase Auth", created_at=T0, updated_at=T0,
            client_type="confidential", token_endpoint_auth_method="client_secret_basic"))
    app = make_app(engine)
    info = get_state(app).services.clients.get(client_id)
    assert info is not None and info.grant_types == ("authorization_code", "refresh_token")
    # No settings row (Supabase Auth made it): the defaults for such a client.
    assert info.scopes == ("openid", "email", "profile", "phone", "offline_access")
    assert not info.can_introspect and not info.verified and info.min_aal is None
    wrapper = OAuthClientWrapper(info)
    assert wrapper.check_client_secret(secret) and not wrapper.check_client_secret(secret + "x")
    assert not verify_client_secret(secret, stored[:-1] + ("A" if stored[-1] != "A" else "B"))
    store = get_state(app).services.sessions
    issued = store.create_session(user_id=add_user(engine), client_id=client_id,
                                  scopes="openid profile", aal="aal1", amr=["pwd"])
    answer = app.test_client().post(
        "/oauth/token", headers={"Authorization": basic_auth(str(client_id), secret)},
        data={"grant_type": "refresh_token", "refresh_token": issued.refresh_token})
    assert answer.status_code == 200, answer.get_json()
    wrong = app.test_client().post(
        "/oauth/token", headers={"Authorization": basic_auth(str(client_id), "not-it")},
        data={"grant_type": "refresh_token", "refresh_token": answer.get_json()["refresh_token"]})
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
