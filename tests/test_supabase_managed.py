"""Issue 17 item 1: a database whose ``auth`` schema Supabase Auth manages, on PostgreSQL.

The fixture builds ``auth`` the way Supabase Auth leaves it (written from
``shared/supabase.md``, not from the models): ``auth.schema_migrations`` with rows, and either
the 11-column ``auth.sessions`` of releases before v2.179.0 or the current shape with Supabase's
own ``oauth_clients``. Attaching there must run no DDL at all: the whole catalog is compared
before and after. Also: a role without UPDATE on ``auth.sessions`` is stopped at start-up with
the grant to give (issue 17, "Missing privileges").
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from factories import make_app
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url

from oauth_sessions.storage import migrate
from oauth_sessions.storage.clients import ClientStore, verify_client_secret
from oauth_sessions.storage.database import create_auth_engine

pytestmark = pytest.mark.postgres

#: Supabase Auth's current OAuth objects (shape from shared/supabase.md).
SUPABASE_OAUTH_DDL = (
    "CREATE TYPE auth.oauth_registration_type AS ENUM ('dynamic', 'manual')",
    "CREATE TYPE auth.oauth_client_type AS ENUM ('public', 'confidential')",
    "CREATE TABLE auth.oauth_clients ("
    " id uuid NOT NULL CONSTRAINT oauth_clients_pkey PRIMARY KEY,"
    " client_secret_hash text, registration_type auth.oauth_registration_type NOT NULL,"
    " redirect_uris text NOT NULL, grant_types text NOT NULL, client_name text,"
    " client_uri text, logo_uri text, created_at timestamptz NOT NULL DEFAULT now(),"
    " updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz,"
    " client_type auth.oauth_client_type NOT NULL DEFAULT 'confidential',"
    " token_endpoint_auth_method text NOT NULL,"
    " CONSTRAINT oauth_clients_client_name_length CHECK (char_length(client_name) <= 1024),"
    " CONSTRAINT oauth_clients_client_uri_length CHECK (char_length(client_uri) <= 2048),"
    " CONSTRAINT oauth_clients_logo_uri_length CHECK (char_length(logo_uri) <= 2048),"
    " CONSTRAINT oauth_clients_token_endpoint_auth_method_check CHECK"
    " (token_endpoint_auth_method IN ('client_secret_basic', 'client_secret_post', 'none')))",
    "CREATE INDEX oauth_clients_deleted_at_idx ON auth.oauth_clients (deleted_at)",
    "CREATE TABLE auth.oauth_consents ("
    " id uuid NOT NULL CONSTRAINT oauth_consents_pkey PRIMARY KEY,"
    " user_id uuid NOT NULL CONSTRAINT oauth_consents_user_id_fkey REFERENCES auth.users (id)"
    " ON DELETE CASCADE,"
    " client_id uuid NOT NULL CONSTRAINT oauth_consents_client_id_fkey"
    " REFERENCES auth.oauth_clients (id) ON DELETE CASCADE,"
    " scopes text NOT NULL, granted_at timestamptz NOT NULL DEFAULT now(), revoked_at timestamptz,"
    " CONSTRAINT oauth_consents_user_client_unique UNIQUE (user_id, client_id),"
    " CONSTRAINT oauth_consents_scopes_length CHECK (char_length(scopes) <= 2048),"
    " CONSTRAINT oauth_consents_scopes_not_empty CHECK (char_length(trim(scopes)) > 0),"
    " CONSTRAINT oauth_consents_revoked_after_granted CHECK"
    " (revoked_at IS NULL OR revoked_at >= granted_at))",
    "ALTER TABLE auth.sessions ADD COLUMN oauth_client_id uuid,"
    " ADD COLUMN refresh_token_hmac_key text, ADD COLUMN refresh_token_counter bigint,"
    " ADD COLUMN scopes text,"
    " ADD CONSTRAINT sessions_oauth_client_id_fkey FOREIGN KEY (oauth_client_id)"
    " REFERENCES auth.oauth_clients (id) ON DELETE CASCADE,"
    " ADD CONSTRAINT sessions_scopes_length CHECK (char_length(scopes) <= 4096)",
)

#: Everything a migration could create, alter or drop, anywhere in the database.
CATALOG_SNAPSHOT = text("""
SELECT 'rel', n.nspname, c.relname, c.relkind::text, '' FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
UNION ALL
SELECT 'col', n.nspname, c.relname, a.attname,
       format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' '
       || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND a.attnum > 0
    AND NOT a.attisdropped
UNION ALL
SELECT 'con', n.nspname, conname, pg_get_constraintdef(o.oid), '' FROM pg_constraint o
  JOIN pg_namespace n ON n.oid = o.connamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'type', n.nspname, t.typname, coalesce(string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder), ''), ''
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  LEFT JOIN pg_enum e ON e.enumtypid = t.oid
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') GROUP BY 1, 2, 3
UNION ALL
SELECT 'ns', nspname, '', '', '' FROM pg_namespace
ORDER BY 1, 2, 3, 4, 5
""")


def _catalog(engine: Engine) -> list[tuple[str, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(CATALOG_SNAPSHOT)]


def _rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT * FROM auth.sessions ORDER BY id"))]


def _supabase_auth(url: str, *, current: bool) -> Engine:
    """``auth`` as Supabase Auth leaves it: its ledger, a user, a first-party session."""
    engine = create_auth_engine(url)
    migrate.upgrade(engine, "0001")  # the 11-column sessions, users, mfa_amr_claims, ...
    user = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA oauth_sessions CASCADE"))  # the library never ran here
        conn.execute(text("CREATE TABLE auth.schema_migrations (version varchar(255) NOT NULL "
                          "CONSTRAINT schema_migrations_pkey PRIMARY KEY)"))
        conn.execute(text("INSERT INTO auth.schema_migrations VALUES ('20171026211738'), "
                          "('20250731150234')"))
        if current:
            for ddl in SUPABASE_OAUTH_DDL:
                conn.execute(text(ddl))
        conn.execute(text("INSERT INTO auth.users (id, email) VALUES (:id, 'pat@example.com')"),
                     {"id": user})
        conn.execute(text(
            "INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, not_after) "
            "VALUES (:id, :user, :t, :t, 'aal1', NULL)"),
            {"id": uuid.uuid4(), "user": user, "t": datetime(2026, 3, 1, tzinfo=UTC)})
    return engine


@pytest.fixture
def old_managed(fresh_pg_url: str) -> Iterator[Engine]:
    engine = _supabase_auth(fresh_pg_url, current=False)
    yield engine
    engine.dispose()


@pytest.fixture
def current_managed(fresh_pg_url: str) -> Iterator[Engine]:
    engine = _supabase_auth(fresh_pg_url, current=True)
    yield engine
    engine.dispose()


def test_issue17_item1_old_shape_managed_by_supabase_is_refused_and_nothing_changes(
    old_managed: Engine,
) -> None:
    catalog, rows = _catalog(old_managed), _rows(old_managed)
    with old_managed.connect() as conn:
        assert migrate.is_supabase_managed(conn)
    with pytest.raises(migrate.SupabaseManagedError) as refused:
        migrate.upgrade(old_managed)
    message = str(refused.value)
    assert "v2.179.0" in message and "auth.oauth_clients" in message
    assert "auth.sessions.oauth_client_id" in message and "Nothing was changed" in message
    assert _catalog(old_managed) == catalog and _rows(old_managed) == rows
    assert migrate.current_revision(old_managed) is None


def _catalog_outside(engine: Engine, schema: str) -> list[tuple[str, ...]]:
    """The catalog snapshot without the library's own schema (the only place it may write)."""
    return [row for row in _catalog(engine) if row[1] != schema]


def test_issue17_item1_current_shape_managed_attaches_with_no_ddl_in_auth(
    current_managed: Engine,
) -> None:
    catalog, rows = _catalog(current_managed), _rows(current_managed)
    migrate.upgrade(current_managed)
    assert migrate.current_revision(current_managed) == migrate.head_revision()
    assert _catalog_outside(current_managed, "oauth_sessions") == catalog
    assert _rows(current_managed) == rows
    with current_managed.connect() as conn:
        tables = set(inspect(conn).get_table_names(schema="oauth_sessions"))
    assert tables == {"oauth_client_settings", "oauth_authorization_codes", "oauth_signing_keys",
                      "oauth_client_assertions", "oauth_dpop_proofs", "oauth_dpop_bindings",
                      "oauth_resource_servers", "oauth_session_resources",
                      "oauth_pushed_requests", migrate.VERSION_TABLE}
    migrate.upgrade(current_managed)  # again: nothing left to do, nothing changes
    assert _catalog_outside(current_managed, "oauth_sessions") == catalog


def test_issue17_item1_managed_attach_serves_library_and_supabase_clients(
    current_managed: Engine,
) -> None:
    migrate.upgrade(current_managed)
    catalog = _catalog(current_managed)
    store = ClientStore(current_managed, cache_seconds=0)
    info, secret = store.create(name="Library app", redirect_uris=["https://app.example/cb"],
                                scopes="openid profile", can_introspect=True)
    assert secret is not None
    supabase_secret = secrets.token_urlsafe(32)
    supabase_id = uuid.uuid4()
    digest = hashlib.sha256(supabase_secret.encode()).digest()
    with current_managed.begin() as conn:
        conn.execute(text(
            "INSERT INTO auth.oauth_clients (id, client_secret_hash, registration_type, "
            "redirect_uris, grant_types, client_name, token_endpoint_auth_method) VALUES "
            "(:id, :h, 'dynamic', 'https://a.example/cb,https://b.example/cb', "
            "'authorization_code,refresh_token', 'Made by Supabase', 'client_secret_post')"),
            {"id": supabase_id,
             "h": base64.urlsafe_b64encode(digest).rstrip(b"=").decode()})
        row = conn.execute(text("SELECT redirect_uris, grant_types, client_secret_hash FROM "
                                "auth.oauth_clients WHERE id = :id"), {"id": info.id}).one()
    # What the library wrote is a valid row for Supabase Auth: its encodings.
    assert row.redirect_uris == "https://app.example/cb"
    assert row.grant_types == "authorization_code,refresh_token"
    assert row.client_secret_hash == base64.urlsafe_b64encode(
        hashlib.sha256(secret.encode()).digest()).rstrip(b"=").decode()
    mine = store.get(info.id)
    assert mine is not None and mine.can_introspect and mine.scopes == ("openid", "profile")
    theirs = store.get(supabase_id)
    assert theirs is not None
    assert theirs.redirect_uris == ("https://a.example/cb", "https://b.example/cb")
    assert theirs.grant_types == ("authorization_code", "refresh_token")
    assert verify_client_secret(supabase_secret, theirs.secret_hash)
    assert not verify_client_secret(supabase_secret + "x", theirs.secret_hash)
    assert store.update_metadata(supabase_id, can_introspect=True)  # settings row created
    assert store.get(supabase_id).can_introspect  # type: ignore[union-attr]
    assert _catalog(current_managed) == catalog  # rows only: no DDL at all


def test_issue17_item1_managed_with_old_library_objects_in_auth_is_refused(
    current_managed: Engine,
) -> None:
    with current_managed.begin() as conn:
        conn.execute(text("CREATE TABLE auth.oauth_signing_keys (kid text PRIMARY KEY)"))
    catalog = _catalog(current_managed)
    with pytest.raises(migrate.SupabaseManagedError, match=r"auth\.oauth_signing_keys"):
        migrate.upgrade(current_managed)
    assert _catalog(current_managed) == catalog


def test_issue17_item1_db_upgrade_and_stamp_print_the_message_not_a_traceback(
    old_managed: Engine,
) -> None:
    catalog = _catalog(old_managed)
    app = make_app(old_managed)
    runner = app.test_cli_runner()
    for args in (["oauth-sessions", "db", "upgrade"], ["oauth-sessions", "db", "stamp", "0004"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1, result.output
        assert "v2.179.0" in result.output and "Traceback" not in result.output
        assert not isinstance(result.exception, migrate.AttachError)  # handled, not raised
    assert _catalog(old_managed) == catalog


def test_issue17_item1_demo_create_app_exits_with_the_message(
    old_managed: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: object,
) -> None:
    from demo_server.app import create_app

    url = old_managed.url.render_as_string(hide_password=False)
    catalog = _catalog(old_managed)
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(SystemExit) as exited:
        create_app({"DEMO_CREDENTIALS_FILE": f"{tmp_path}/creds.json"})
    assert "v2.179.0" in str(exited.value.code)
    assert _catalog(old_managed) == catalog


def test_issue17_item1_not_managed_old_shape_still_migrates_forward(fresh_pg_url: str) -> None:
    engine = _supabase_auth(fresh_pg_url, current=False)
    try:
        before = _rows(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE auth.schema_migrations"))
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert [r[:11] for r in _rows(engine)] == before
    finally:
        engine.dispose()


def test_issue17_missing_update_on_sessions_is_a_clear_startup_error(
    pg_url: str, pg_engine: Engine,
) -> None:
    role = f"oauth_sessions_ro_{secrets.token_hex(4)}"
    with pg_engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA auth TO "{role}"'))
        conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA auth '
                          f'TO "{role}"'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA oauth_sessions TO "{role}"'))
        conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA '
                          f'oauth_sessions TO "{role}"'))
        conn.execute(text(f'REVOKE UPDATE ON auth.sessions FROM "{role}"'))
    limited = create_auth_engine(make_url(pg_url).set(username=role, password=None)
                                 .render_as_string(hide_password=False))
    try:
        with pytest.raises(migrate.PrivilegeError) as refused:
            make_app(limited)
        message = str(refused.value)
        assert f"GRANT UPDATE ON auth.sessions TO {role}" in message
        assert message.count("GRANT ") == 1  # only what is missing
        with pg_engine.begin() as conn:
            conn.execute(text(f'GRANT UPDATE ON auth.sessions TO "{role}"'))
        make_app(limited)  # complete grants: starts
    finally:
        limited.dispose()
        with pg_engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def test_issue17_missing_usage_on_the_library_schema_is_named(
    pg_url: str, pg_engine: Engine,
) -> None:
    role = f"oauth_sessions_nousage_{secrets.token_hex(4)}"
    with pg_engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA auth TO "{role}"'))
        conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA auth '
                          f'TO "{role}"'))
    limited = create_auth_engine(make_url(pg_url).set(username=role, password=None)
                                 .render_as_string(hide_password=False))
    try:
        with pytest.raises(migrate.PrivilegeError) as refused:
            make_app(limited)
        message = str(refused.value)
        assert f"GRANT USAGE ON SCHEMA oauth_sessions TO {role}" in message
        assert "auth." not in message  # everything in auth is granted
    finally:
        limited.dispose()
        with pg_engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
