"""The live PostgreSQL catalog of ``auth.sessions`` is exactly the shape of design.md.

The expected values are written out here from the design notes (not derived from
the models), so a drift in the migrations, the models or the database fails.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

pytestmark = pytest.mark.postgres

EXPECTED_COLUMNS = [
    ("id", "uuid", "NO"),
    ("user_id", "uuid", "NO"),
    ("created_at", "timestamp with time zone", "YES"),
    ("updated_at", "timestamp with time zone", "YES"),
    ("factor_id", "uuid", "YES"),
    ("aal", "auth.aal_level", "YES"),
    ("not_after", "timestamp with time zone", "YES"),
    ("refreshed_at", "timestamp without time zone", "YES"),
    ("user_agent", "text", "YES"),
    ("ip", "inet", "YES"),
    ("tag", "text", "YES"),
    ("oauth_client_id", "uuid", "YES"),
    ("refresh_token_hmac_key", "text", "YES"),
    ("refresh_token_counter", "bigint", "YES"),
    ("scopes", "text", "YES"),
]

EXPECTED_INDEXES = {
    "sessions_not_after_idx":
        "CREATE INDEX sessions_not_after_idx ON auth.sessions USING btree (not_after DESC)",
    "sessions_oauth_client_id_idx":
        "CREATE INDEX sessions_oauth_client_id_idx ON auth.sessions USING btree (oauth_client_id)",
    "sessions_pkey":
        "CREATE UNIQUE INDEX sessions_pkey ON auth.sessions USING btree (id)",
    "sessions_user_id_idx":
        "CREATE INDEX sessions_user_id_idx ON auth.sessions USING btree (user_id)",
    "user_id_created_at_idx":
        "CREATE INDEX user_id_created_at_idx ON auth.sessions USING btree (user_id, created_at)",
}

EXPECTED_FKS = {
    # constraint: (column, referenced table, referenced column, delete rule)
    "sessions_user_id_fkey": ("user_id", "auth.users", "id", "CASCADE"),
    "sessions_oauth_client_id_fkey": ("oauth_client_id", "auth.oauth_clients", "id", "CASCADE"),
}

EXPECTED_REFERENCED_BY = {
    "mfa_amr_claims_session_id_fkey": ("auth.mfa_amr_claims", "session_id", "CASCADE"),
    "refresh_tokens_session_id_fkey": ("auth.refresh_tokens", "session_id", "CASCADE"),
}
#: The library's own tables that reference sessions, in its own schema (so ``auth`` keeps
#: exactly Supabase's constraints), each row gone with its session.
LIBRARY_REFERENCED_BY = {
    # DPoP bindings (revision 0010).
    "oauth_dpop_bindings_session_id_fkey": ("oauth_sessions.oauth_dpop_bindings", "session_id",
                                            "CASCADE"),
    # RFC 8707 resources granted to the session (revision 0014).
    "oauth_session_resources_session_id_fkey": ("oauth_sessions.oauth_session_resources",
                                                "session_id", "CASCADE"),
}

EXPECTED_COMMENTS = {
    "not_after": "Auth: Not after is a nullable column that contains a timestamp after which "
                 "the session should be regarded as expired.",
    "refresh_token_hmac_key":
        "Holds a HMAC-SHA256 key used to sign refresh tokens for this session.",
    "refresh_token_counter": "Holds the ID (counter) of the last issued refresh token.",
}


def live_columns(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod),
                   CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END
            FROM pg_attribute a
            WHERE a.attrelid = 'auth.sessions'::regclass AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """
        )).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def live_indexes(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = 'auth' AND tablename = 'sessions'"
        )).all()
    return dict(rows)  # type: ignore[arg-type]


def live_foreign_keys(engine: Engine, *, referencing_sessions: bool) -> dict[str, tuple[str, ...]]:
    side = "confrelid" if referencing_sessions else "conrelid"
    with engine.connect() as conn:
        rows = conn.execute(text(
            f"""
            SELECT c.conname, c.conrelid::regclass::text, a.attname,
                   c.confrelid::regclass::text, fa.attname, c.confdeltype
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]
            WHERE c.contype = 'f' AND c.{side} = 'auth.sessions'::regclass
            """
        )).all()
    rules = {"c": "CASCADE", "a": "NO ACTION", "r": "RESTRICT", "n": "SET NULL", "d": "SET DEFAULT"}
    if referencing_sessions:
        return {r[0]: (r[1], r[2], rules[r[5]]) for r in rows}
    return {r[0]: (r[2], r[3], r[4], rules[r[5]]) for r in rows}


def test_columns_types_and_nullability(pg_engine: Engine) -> None:
    assert live_columns(pg_engine) == EXPECTED_COLUMNS


def test_every_index_definition_by_name(pg_engine: Engine) -> None:
    assert live_indexes(pg_engine) == EXPECTED_INDEXES


def test_primary_key_is_sessions_pkey_on_id(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        row = conn.execute(text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'auth.sessions'::regclass AND contype = 'p'"
        )).one()
    assert tuple(row) == ("sessions_pkey", "PRIMARY KEY (id)")


def test_foreign_keys_cascade(pg_engine: Engine) -> None:
    assert live_foreign_keys(pg_engine, referencing_sessions=False) == EXPECTED_FKS
    referenced_by = live_foreign_keys(pg_engine, referencing_sessions=True)
    assert {k: v for k, v in referenced_by.items() if v[0].startswith("auth.")} == (
        EXPECTED_REFERENCED_BY)
    assert referenced_by == {**EXPECTED_REFERENCED_BY, **LIBRARY_REFERENCED_BY}


def test_scopes_length_check(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'auth.sessions'::regclass AND contype = 'c'"
        )).all()
    assert [tuple(r) for r in rows] == [
        ("sessions_scopes_length", "CHECK ((char_length(scopes) <= 4096))")
    ]


def test_aal_level_enum_labels(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        labels = conn.execute(text(
            "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
            "JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = 'auth' AND t.typname = 'aal_level' ORDER BY e.enumsortorder"
        )).scalars().all()
    assert labels == ["aal1", "aal2", "aal3"]


def test_comments(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        table_comment = conn.execute(
            text("SELECT obj_description('auth.sessions'::regclass, 'pg_class')")
        ).scalar()
        rows = conn.execute(text(
            "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
            "WHERE a.attrelid = 'auth.sessions'::regclass AND a.attnum > 0 "
            "AND col_description(a.attrelid, a.attnum) IS NOT NULL"
        )).all()
    assert table_comment == "Auth: Stores session data associated to a user."
    assert dict(rows) == EXPECTED_COMMENTS  # type: ignore[arg-type]


def test_row_level_security_enabled_without_policies(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        rls = conn.execute(
            text("SELECT relrowsecurity FROM pg_class WHERE oid = 'auth.sessions'::regclass")
        ).scalar()
        policies = conn.execute(
            text("SELECT count(*) FROM pg_policies WHERE schemaname = 'auth' "
                 "AND tablename = 'sessions'")
        ).scalar()
    assert rls is True
    assert policies == 0


def test_the_schema_test_notices_a_changed_index(pg_databases: object, fresh_pg_url: str) -> None:
    """Guard against a schema test that cannot fail: alter one index and compare again."""
    from oauth_sessions.storage import migrate
    from oauth_sessions.storage.database import create_auth_engine

    engine = create_auth_engine(fresh_pg_url)
    try:
        migrate.upgrade(engine)
        assert live_indexes(engine) == EXPECTED_INDEXES
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX auth.sessions_not_after_idx"))
            conn.execute(text("CREATE INDEX sessions_not_after_idx ON auth.sessions (not_after)"))
        assert live_indexes(engine) != EXPECTED_INDEXES
    finally:
        engine.dispose()
