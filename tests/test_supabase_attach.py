"""Issue 17: the library attached to a database Supabase Auth manages, in its current shape.

The database is built by ``tests/supabase_fixture.py`` (Supabase Auth v2.196.0's ``auth``,
``auth.schema_migrations`` filled in) with rows Supabase Auth would have written. Attaching
runs no DDL in ``auth``; the client Supabase Auth registered works at every endpoint; the one
it soft-deleted is refused everywhere; the library's maintenance leaves Supabase Auth's own
first-party sessions byte-identical.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import basic_auth, create_client, exchange_code, make_app, obtain_code, pkce_pair, user_headers
from sqlalchemy import Engine, text
from supabase_fixture import (
    SupabaseRows,
    add_supabase_rows,
    auth_catalog,
    create_current_auth,
    supabase_root_keys,
)

from oauth_sessions import get_state
from oauth_sessions.core.refresh_tokens import key_bytes
from oauth_sessions.storage import migrate
from oauth_sessions.storage.database import create_auth_engine
from oauth_sessions.storage.key_encryption import KeyEncryptor

pytestmark = pytest.mark.postgres


def _auth_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of Supabase's tables, as stored."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in ("users", "sessions", "mfa_amr_claims", "oauth_clients", "oauth_consents",
                      "mfa_factors", "refresh_tokens", "schema_migrations"):
            out[table] = sorted((tuple(r) for r in conn.execute(text(f"SELECT * FROM auth.{table}"))),
                                key=repr)
    return out


def _session_row(engine: Engine, session_id: uuid.UUID) -> tuple[Any, ...] | None:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM auth.sessions WHERE id = :id"),
                           {"id": session_id}).first()
    return None if row is None else tuple(row)


@pytest.fixture
def managed(fresh_pg_url: str) -> Iterator[tuple[Engine, SupabaseRows, list[tuple[Any, ...]],
                                                 dict[str, list[tuple[Any, ...]]]]]:
    engine = create_auth_engine(fresh_pg_url)
    with engine.begin() as conn:
        create_current_auth(conn)
        rows = add_supabase_rows(conn)
    catalog, data = auth_catalog(engine), _auth_rows(engine)
    migrate.upgrade(engine)
    migrate.check_privileges(engine)
    yield engine, rows, catalog, data
    engine.dispose()


def _supabase_v0_token(session_id: uuid.UUID, counter: int, key: bytes) -> str:
    body = b"\x00" + session_id.bytes + bytes([counter])  # counters below 128: one varint byte
    body += hmac.new(key, body, hashlib.sha256).digest()[:16]
    raw = body + hashlib.sha256(body).digest()[:4]
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def test_attaching_runs_no_ddl_in_auth_and_changes_no_row(managed: Any) -> None:
    engine, _, catalog, data = managed
    assert auth_catalog(engine) == catalog
    assert _auth_rows(engine) == data
    migrate.upgrade(engine)  # a second start changes nothing either
    assert auth_catalog(engine) == catalog


def test_every_endpoint_works_for_the_client_supabase_made(managed: Any) -> None:
    engine, rows, _, _ = managed
    app = make_app(engine, always_issue_refresh_token=True)
    http = app.test_client()
    client = get_state(app).services.clients.get(rows.client_id)
    assert client is not None and client.redirect_uris[0] == rows.redirect_uri
    verifier, challenge = pkce_pair()
    query = obtain_code(http, client, rows.user_id, challenge, scope="openid email",
                        headers=user_headers(rows.user_id))
    assert "code" in query, query
    tokens = exchange_code(http, client, rows.client_secret, query["code"], verifier)
    assert tokens.status_code == 200, tokens.get_json()
    body = tokens.get_json()
    auth = {"Authorization": basic_auth(str(rows.client_id), rows.client_secret)}
    refreshed = http.post("/oauth/token", headers=auth, data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.get_json()
    new = refreshed.get_json()
    # A resource server (a client of the library's own, allowed to introspect) sees its tokens.
    resource, resource_secret = create_client(app, name="API", can_introspect=True)
    assert resource_secret is not None
    seen = http.post("/oauth/introspect", data={"token": new["access_token"]},
                     headers={"Authorization": basic_auth(resource.client_id, resource_secret)})
    assert seen.status_code == 200 and seen.get_json()["active"] is True
    assert seen.get_json()["client_id"] == str(rows.client_id)
    info = http.get("/oauth/userinfo", headers={"Authorization": f"Bearer {new['access_token']}"})
    assert info.status_code == 200 and info.get_json()["sub"] == str(rows.user_id)
    revoked = http.post("/oauth/revoke", headers=auth, data={"token": new["refresh_token"]})
    assert revoked.status_code == 200
    after = http.post("/oauth/token", headers=auth, data={
        "grant_type": "refresh_token", "refresh_token": new["refresh_token"]})
    assert after.status_code == 400 and after.get_json()["error"] == "invalid_grant"
    # The grant Supabase Auth's OAuth server made refreshes with its own token format.
    legacy = _supabase_v0_token(rows.oauth_session_id, 2, key_bytes(rows.oauth_key))
    moved = http.post("/oauth/token", headers=auth, data={
        "grant_type": "refresh_token", "refresh_token": legacy})
    assert moved.status_code == 200, moved.get_json()


def test_the_client_supabase_soft_deleted_is_refused_everywhere(managed: Any) -> None:
    engine, rows, _, _ = managed
    app = make_app(engine)
    http = app.test_client()
    assert get_state(app).services.clients.get(rows.deleted_client_id) is None
    before = _auth_rows(engine)
    _, challenge = pkce_pair()
    authorize = http.get("/oauth/authorize", headers=user_headers(rows.user_id), query_string={
        "response_type": "code", "client_id": str(rows.deleted_client_id),
        "redirect_uri": rows.redirect_uri, "scope": "openid", "state": "s",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    assert authorize.status_code in (400, 401) and "Location" not in authorize.headers
    auth = {"Authorization": basic_auth(str(rows.deleted_client_id), rows.deleted_client_secret)}
    token = _supabase_v0_token(rows.deleted_client_session_id, 0, bytes(32))
    for path, data in (
        ("/oauth/token", {"grant_type": "refresh_token", "refresh_token": token}),
        ("/oauth/introspect", {"token": token}),
        ("/oauth/revoke", {"token": token}),
    ):
        answer = http.post(path, headers=auth, data=data)
        assert answer.status_code == 401, (path, answer.get_json())
        assert answer.get_json()["error"] == "invalid_client"
    assert _auth_rows(engine) == before


def test_rewrap_and_purge_leave_first_party_sessions_byte_identical(managed: Any) -> None:
    engine, rows, _, _ = managed
    app = make_app(engine, encryption_keys={"lib-1": KeyEncryptor.generate_key()},
                   encryption_key_id="lib-1", supabase_encryption_keys=supabase_root_keys())
    store = get_state(app).services.sessions
    first_party = (rows.plain_session_id, rows.encrypted_session_id)
    before = {sid: _session_row(engine, sid) for sid in first_party}
    assert store.rewrap_keys() == 2  # the OAuth sessions' plain keys: Supabase's and the deleted one's
    assert {sid: _session_row(engine, sid) for sid in first_party} == before
    # Even told to include first-party sessions: on a managed database with no current Supabase
    # root key, the plain key stays plain and Supabase's form stays as it is.
    assert store.rewrap_keys(first_party=True) == 0
    assert {sid: _session_row(engine, sid) for sid in first_party} == before
    far = datetime.now(UTC) + timedelta(days=3650)
    with engine.begin() as conn:
        conn.execute(text("UPDATE auth.sessions SET not_after = :t WHERE id = ANY(:ids)"),
                     {"t": datetime.now(UTC) - timedelta(minutes=1), "ids": list(first_party)})
    before = {sid: _session_row(engine, sid) for sid in first_party}
    store.purge_expired(now=far)
    assert {sid: _session_row(engine, sid) for sid in first_party} == before
