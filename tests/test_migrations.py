"""Migrations on PostgreSQL: old eleven-column schema with rows → head keeps every row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from oauth_sessions.storage import migrate
from oauth_sessions.storage.database import create_auth_engine
from oauth_sessions.storage.models import metadata

pytestmark = pytest.mark.postgres

OLD_ROWS = 50


def _seed_old_shape(engine: Engine) -> list[tuple[object, ...]]:
    user_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO auth.users (id, email) VALUES (:id, 'old@example.com')"),
                     {"id": user_id})
        for n in range(OLD_ROWS):
            conn.execute(text(
                "INSERT INTO auth.sessions (id, user_id, created_at, updated_at, factor_id, aal, "
                "not_after, refreshed_at, user_agent, ip, tag) VALUES (:id, :uid, :c, :c, :f, "
                ":aal, :na, :r, :ua, :ip, :tag)"
            ), {
                "id": uuid.uuid4(), "uid": user_id, "c": datetime(2025, 1, 1, tzinfo=UTC),
                "f": uuid.uuid4() if n % 2 else None, "aal": "aal2" if n % 2 else "aal1",
                "na": datetime(2027, 1, 1, tzinfo=UTC), "r": datetime(2025, 6, 1, 12, 0, n),
                "ua": f"agent {n}", "ip": f"10.0.0.{n}", "tag": f"tag-{n}",
            })
        conn.execute(text(
            "INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, "
            "authentication_method) SELECT gen_random_uuid(), id, now(), now(), 'password' "
            "FROM auth.sessions"
        ))
        return [tuple(r) for r in conn.execute(text("SELECT * FROM auth.sessions ORDER BY id"))]


def test_upgrade_from_old_shape_keeps_every_row(fresh_pg_url: str) -> None:
    engine = create_auth_engine(fresh_pg_url)
    try:
        migrate.upgrade(engine, "0001")
        before = _seed_old_shape(engine)
        assert len(before[0]) == 11
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as conn:
            after = [tuple(r) for r in conn.execute(text("SELECT * FROM auth.sessions ORDER BY id"))]
            claims = conn.execute(text("SELECT count(*) FROM auth.mfa_amr_claims")).scalar()
        assert [row[:11] for row in after] == before
        assert all(row[11:] == (None, None, None, None) for row in after)
        assert claims == OLD_ROWS
        columns = [c["name"] for c in inspect(engine).get_columns("sessions", schema="auth")]
        assert columns[11:] == ["oauth_client_id", "refresh_token_hmac_key",
                                "refresh_token_counter", "scopes"]
    finally:
        engine.dispose()


def test_downgrade_to_old_shape_keeps_rows(fresh_pg_url: str) -> None:
    engine = create_auth_engine(fresh_pg_url)
    try:
        migrate.upgrade(engine, "0001")
        before = _seed_old_shape(engine)
        migrate.upgrade(engine, "0005")
        migrate.downgrade(engine, "0001")
        with engine.connect() as conn:
            after = [tuple(r) for r in conn.execute(text("SELECT * FROM auth.sessions ORDER BY id"))]
        assert after == before
        assert "oauth_clients" not in inspect(engine).get_table_names(schema="auth")
        migrate.upgrade(engine)  # and forward again
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


@pytest.mark.parametrize("existing", ["0001", "head"])
def test_attach_to_existing_auth_schema_without_version_table(
    fresh_pg_url: str, existing: str
) -> None:
    """A Supabase-like database already has the tables but never ran our migrations."""
    engine = create_auth_engine(fresh_pg_url)
    try:
        migrate.upgrade(engine, existing)
        before = _seed_old_shape(engine) if existing == "0001" else None
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {migrate.version_table_sql(engine)}"))
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        if before is not None:
            with engine.connect() as conn:
                rows = [tuple(r)[:11] for r in
                        conn.execute(text("SELECT * FROM auth.sessions ORDER BY id"))]
            assert rows == before
    finally:
        engine.dispose()


def test_models_match_migrations(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_schemas": True, "version_table": migrate.VERSION_TABLE,
                        "version_table_schema": "oauth_sessions",
                        "include_name": lambda name, type_, parent: type_ != "schema"
                        or name in ("auth", "oauth_sessions")}
        )
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_attach_refuses_oauth_tables_of_an_unknown_shape_and_changes_nothing(
    fresh_pg_url: str,
) -> None:
    """An ``oauth_clients`` neither Supabase Auth nor these migrations made: refuse, not mis-stamp."""
    engine = create_auth_engine(fresh_pg_url)
    try:
        migrate.upgrade(engine, "0001")
        before = _seed_old_shape(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA oauth_sessions CASCADE"))
            conn.execute(text(
                "CREATE TABLE auth.oauth_clients (id uuid PRIMARY KEY, client_secret_hash text, "
                "redirect_uris text NOT NULL, grant_types text NOT NULL, client_name text, "
                "created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)"))
            conn.execute(text("ALTER TABLE auth.sessions ADD COLUMN oauth_client_id uuid"))
        with pytest.raises(migrate.AttachError, match=r"auth\.oauth_clients\.registration_type"):
            migrate.upgrade(engine)
        assert migrate.current_revision(engine) is None
        with engine.connect() as conn:
            rows = [tuple(r)[:11] for r in conn.execute(text("SELECT * FROM auth.sessions ORDER BY id"))]
        assert rows == before
        columns = {c["name"] for c in inspect(engine).get_columns("oauth_clients", schema="auth")}
        assert "registration_type" not in columns
    finally:
        engine.dispose()


def test_0008_adds_a_null_id_token_alg_to_existing_clients_and_back(fresh_pg_url: str) -> None:
    """Issue 20 item 4: clients made before 0008 keep NULL, i.e. ID_TOKEN_SIGNING_ALG, so their
    ID tokens do not change; the downgrade drops the column and keeps the row."""
    engine = create_auth_engine(fresh_pg_url)
    client_id = uuid.uuid4()
    try:
        migrate.upgrade(engine, "0007")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO auth.oauth_clients (id, registration_type, redirect_uris, grant_types,"
                " client_name, created_at, updated_at, client_type, token_endpoint_auth_method)"
                " VALUES (:id, 'manual', 'https://rp.example/cb', 'authorization_code', 'Old RP',"
                " now(), now(), 'confidential', 'client_secret_basic')"), {"id": client_id})
            conn.execute(text("INSERT INTO oauth_sessions.oauth_client_settings (client_id, scope)"
                              " VALUES (:id, 'openid')"), {"id": client_id})
        migrate.upgrade(engine)
        with engine.connect() as conn:
            alg = conn.execute(text("SELECT id_token_signed_response_alg FROM "
                                    "oauth_sessions.oauth_client_settings WHERE client_id = :id"),
                               {"id": client_id}).one()[0]
        assert alg is None
        migrate.downgrade(engine, "0007")
        columns = {c["name"] for c in inspect(engine).get_columns("oauth_client_settings",
                                                                  schema="oauth_sessions")}
        assert "id_token_signed_response_alg" not in columns
        with engine.connect() as conn:
            assert conn.execute(text("SELECT client_name FROM auth.oauth_clients")).scalar() == "Old RP"
    finally:
        engine.dispose()


def test_0015_leaves_existing_codes_unbound_and_back(fresh_pg_url: str) -> None:
    """RFC 9449 section 10: a code issued before 0015 gets a NULL dpop_jkt, i.e. bound to no
    key, so it is redeemed as before; the downgrade drops the column and keeps the row."""
    engine = create_auth_engine(fresh_pg_url)
    client_id, user_id, code_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        migrate.upgrade(engine, "0014")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO auth.users (id, email) VALUES (:id, 'c@example.com')"),
                         {"id": user_id})
            conn.execute(text(
                "INSERT INTO auth.oauth_clients (id, registration_type, redirect_uris, grant_types,"
                " client_name, created_at, updated_at, client_type, token_endpoint_auth_method)"
                " VALUES (:id, 'manual', 'https://rp.example/cb', 'authorization_code', 'RP',"
                " now(), now(), 'public', 'none')"), {"id": client_id})
            conn.execute(text(
                "INSERT INTO oauth_sessions.oauth_authorization_codes (id, client_id, user_id,"
                " redirect_uri, scope, authorization_code, aal, auth_time, created_at, expires_at)"
                " VALUES (:id, :cid, :uid, 'https://rp.example/cb', 'openid', 'h', 'aal1', now(),"
                " now(), now())"), {"id": code_id, "cid": client_id, "uid": user_id})
        migrate.upgrade(engine)
        with engine.connect() as conn:
            jkt = conn.execute(text("SELECT dpop_jkt FROM oauth_sessions.oauth_authorization_codes"
                                    " WHERE id = :id"), {"id": code_id}).one()[0]
        assert jkt is None
        migrate.downgrade(engine, "0014")
        columns = {c["name"] for c in inspect(engine).get_columns("oauth_authorization_codes",
                                                                  schema="oauth_sessions")}
        assert "dpop_jkt" not in columns
        with engine.connect() as conn:
            count = conn.execute(text(
                "SELECT count(*) FROM oauth_sessions.oauth_authorization_codes")).scalar()
        assert count == 1
    finally:
        engine.dispose()
