"""The live PostgreSQL catalog of a freshly migrated database has Supabase Auth's ``auth`` tables.

Every expected value below is written out by hand from ``shared/supabase.md`` (Supabase Auth
v2.196.0; ``auth.users``' 35 columns and the exact types, defaults and index definitions checked
against a database built with Supabase Auth's own 70 migrations), never derived from the
models, so a drift in the migrations, the models or the database fails here.
``tests/test_schema.py`` checks ``auth.sessions``' columns, indexes, foreign keys and comments
against ``design.md``; this file adds its check constraint and row-level security, and the
other tables.

Compared per table: columns (type, nullability, default, generated expression), constraints
(name and definition), indexes (name and definition) and whether row-level security is on.
For ``users`` and ``refresh_tokens`` the document names only some constraints and indexes:
those must be there as named; for the other tables the sets are exact.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from supabase_fixture import add_supabase_rows, create_current_auth

pytestmark = pytest.mark.postgres


class Column(NamedTuple):
    type: str
    not_null: bool = False
    default: str | None = None
    generated: str | None = None


TSTZ = "timestamp with time zone"
V255 = "character varying(255)"


def _nullable(type_: str, default: str | None = None) -> Column:
    return Column(type_, False, default)


def _required(type_: str, default: str | None = None) -> Column:
    return Column(type_, True, default)


ENUMS = {
    "aal_level": ["aal1", "aal2", "aal3"],
    "factor_type": ["totp", "webauthn", "phone"],
    "factor_status": ["unverified", "verified"],
    "oauth_registration_type": ["dynamic", "manual"],
    "oauth_client_type": ["public", "confidential"],
    "oauth_authorization_status": ["pending", "approved", "denied", "expired"],
    "oauth_response_type": ["code"],
    "code_challenge_method": ["s256", "plain"],
}
#: The enums the tables every deployment has use; the others belong to optional tables.
REQUIRED_ENUMS = {"aal_level", "oauth_registration_type", "oauth_client_type"}


class Table(NamedTuple):
    columns: dict[str, Column]
    constraints: dict[str, str]
    indexes: dict[str, str]
    rls: bool | None  # None: the document does not say
    exact: bool = True  # False: the document names only some constraints and indexes


SESSIONS = Table(
    columns={
        "id": _required("uuid"), "user_id": _required("uuid"),
        "created_at": _nullable(TSTZ), "updated_at": _nullable(TSTZ),
        "factor_id": _nullable("uuid"), "aal": _nullable("auth.aal_level"),
        "not_after": _nullable(TSTZ), "refreshed_at": _nullable("timestamp without time zone"),
        "user_agent": _nullable("text"), "ip": _nullable("inet"), "tag": _nullable("text"),
        "oauth_client_id": _nullable("uuid"), "refresh_token_hmac_key": _nullable("text"),
        "refresh_token_counter": _nullable("bigint"), "scopes": _nullable("text"),
    },
    constraints={
        "sessions_pkey": "PRIMARY KEY (id)",
        "sessions_user_id_fkey":
            "FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE",
        "sessions_oauth_client_id_fkey":
            "FOREIGN KEY (oauth_client_id) REFERENCES auth.oauth_clients(id) ON DELETE CASCADE",
        "sessions_scopes_length": "CHECK ((char_length(scopes) <= 4096))",
    },
    indexes={
        "sessions_pkey": "CREATE UNIQUE INDEX sessions_pkey ON auth.sessions USING btree (id)",
        "sessions_not_after_idx":
            "CREATE INDEX sessions_not_after_idx ON auth.sessions USING btree (not_after DESC)",
        "sessions_oauth_client_id_idx": "CREATE INDEX sessions_oauth_client_id_idx "
                                        "ON auth.sessions USING btree (oauth_client_id)",
        "sessions_user_id_idx":
            "CREATE INDEX sessions_user_id_idx ON auth.sessions USING btree (user_id)",
        "user_id_created_at_idx": "CREATE INDEX user_id_created_at_idx "
                                  "ON auth.sessions USING btree (user_id, created_at)",
    },
    rls=True,
)

MFA_AMR_CLAIMS = Table(
    columns={
        "id": _required("uuid"), "session_id": _required("uuid"),
        "created_at": _required(TSTZ), "updated_at": _required(TSTZ),
        "authentication_method": _required("text"),
    },
    constraints={
        "amr_id_pk": "PRIMARY KEY (id)",
        "mfa_amr_claims_session_id_authentication_method_pkey":
            "UNIQUE (session_id, authentication_method)",
        "mfa_amr_claims_session_id_fkey":
            "FOREIGN KEY (session_id) REFERENCES auth.sessions(id) ON DELETE CASCADE",
    },
    indexes={
        "amr_id_pk": "CREATE UNIQUE INDEX amr_id_pk ON auth.mfa_amr_claims USING btree (id)",
        "mfa_amr_claims_session_id_authentication_method_pkey":
            "CREATE UNIQUE INDEX mfa_amr_claims_session_id_authentication_method_pkey "
            "ON auth.mfa_amr_claims USING btree (session_id, authentication_method)",
    },
    rls=True,
)

REFRESH_TOKENS = Table(
    columns={
        "instance_id": _nullable("uuid"),
        "id": _required("bigint", "nextval('auth.refresh_tokens_id_seq'::regclass)"),
        "token": _nullable(V255), "user_id": _nullable(V255), "revoked": _nullable("boolean"),
        "created_at": _nullable(TSTZ), "updated_at": _nullable(TSTZ),
        "parent": _nullable(V255), "session_id": _nullable("uuid"),
    },
    constraints={
        "refresh_tokens_pkey": "PRIMARY KEY (id)",
        "refresh_tokens_session_id_fkey":
            "FOREIGN KEY (session_id) REFERENCES auth.sessions(id) ON DELETE CASCADE",
    },
    indexes={
        "refresh_tokens_pkey":
            "CREATE UNIQUE INDEX refresh_tokens_pkey ON auth.refresh_tokens USING btree (id)",
    },
    rls=True,
    exact=False,
)

USERS = Table(
    columns={
        "instance_id": _nullable("uuid"), "id": _required("uuid"),
        "aud": _nullable(V255), "role": _nullable(V255), "email": _nullable(V255),
        "encrypted_password": _nullable(V255), "email_confirmed_at": _nullable(TSTZ),
        "invited_at": _nullable(TSTZ), "confirmation_token": _nullable(V255),
        "confirmation_sent_at": _nullable(TSTZ), "recovery_token": _nullable(V255),
        "recovery_sent_at": _nullable(TSTZ), "email_change_token_new": _nullable(V255),
        "email_change": _nullable(V255), "email_change_sent_at": _nullable(TSTZ),
        "last_sign_in_at": _nullable(TSTZ), "raw_app_meta_data": _nullable("jsonb"),
        "raw_user_meta_data": _nullable("jsonb"), "is_super_admin": _nullable("boolean"),
        "created_at": _nullable(TSTZ), "updated_at": _nullable(TSTZ),
        "phone": _nullable("text"), "phone_confirmed_at": _nullable(TSTZ),
        "phone_change": _nullable("text", "''"), "phone_change_token": _nullable(V255, "''"),
        "phone_change_sent_at": _nullable(TSTZ),
        "confirmed_at": Column(TSTZ, generated="LEAST(email_confirmed_at, phone_confirmed_at)"),
        "email_change_token_current": _nullable(V255, "''"),
        "email_change_confirm_status": _nullable("smallint", "0"),
        "banned_until": _nullable(TSTZ), "reauthentication_token": _nullable(V255, "''"),
        "reauthentication_sent_at": _nullable(TSTZ),
        "is_sso_user": _required("boolean", "false"), "deleted_at": _nullable(TSTZ),
        "is_anonymous": _required("boolean", "false"),
    },
    constraints={"users_pkey": "PRIMARY KEY (id)"},
    indexes={"users_pkey": "CREATE UNIQUE INDEX users_pkey ON auth.users USING btree (id)"},
    rls=True,
    exact=False,
)

OAUTH_CLIENTS = Table(
    columns={
        "id": _required("uuid"), "client_secret_hash": _nullable("text"),
        "registration_type": _required("auth.oauth_registration_type"),
        "redirect_uris": _required("text"), "grant_types": _required("text"),
        "client_name": _nullable("text"), "client_uri": _nullable("text"),
        "logo_uri": _nullable("text"), "created_at": _required(TSTZ, "now()"),
        "updated_at": _required(TSTZ, "now()"), "deleted_at": _nullable(TSTZ),
        "client_type": _required("auth.oauth_client_type",
                                 "'confidential'::auth.oauth_client_type"),
        "token_endpoint_auth_method": _required("text"),
    },
    constraints={
        "oauth_clients_pkey": "PRIMARY KEY (id)",
        "oauth_clients_client_name_length": "CHECK ((char_length(client_name) <= 1024))",
        "oauth_clients_client_uri_length": "CHECK ((char_length(client_uri) <= 2048))",
        "oauth_clients_logo_uri_length": "CHECK ((char_length(logo_uri) <= 2048))",
        "oauth_clients_token_endpoint_auth_method_check":
            "CHECK ((token_endpoint_auth_method = ANY (ARRAY['client_secret_basic'::text, "
            "'client_secret_post'::text, 'none'::text])))",
    },
    indexes={
        "oauth_clients_pkey":
            "CREATE UNIQUE INDEX oauth_clients_pkey ON auth.oauth_clients USING btree (id)",
        "oauth_clients_deleted_at_idx": "CREATE INDEX oauth_clients_deleted_at_idx "
                                        "ON auth.oauth_clients USING btree (deleted_at)",
    },
    rls=False,
)

OAUTH_CONSENTS = Table(
    columns={
        "id": _required("uuid"), "user_id": _required("uuid"), "client_id": _required("uuid"),
        "scopes": _required("text"), "granted_at": _required(TSTZ, "now()"),
        "revoked_at": _nullable(TSTZ),
    },
    constraints={
        "oauth_consents_pkey": "PRIMARY KEY (id)",
        "oauth_consents_user_id_fkey":
            "FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE",
        "oauth_consents_client_id_fkey":
            "FOREIGN KEY (client_id) REFERENCES auth.oauth_clients(id) ON DELETE CASCADE",
        "oauth_consents_user_client_unique": "UNIQUE (user_id, client_id)",
        "oauth_consents_scopes_length": "CHECK ((char_length(scopes) <= 2048))",
        "oauth_consents_scopes_not_empty": "CHECK ((char_length(TRIM(BOTH FROM scopes)) > 0))",
        "oauth_consents_revoked_after_granted":
            "CHECK (((revoked_at IS NULL) OR (revoked_at >= granted_at)))",
    },
    indexes={
        "oauth_consents_pkey":
            "CREATE UNIQUE INDEX oauth_consents_pkey ON auth.oauth_consents USING btree (id)",
        "oauth_consents_user_client_unique":
            "CREATE UNIQUE INDEX oauth_consents_user_client_unique "
            "ON auth.oauth_consents USING btree (user_id, client_id)",
        "oauth_consents_active_client_idx":
            "CREATE INDEX oauth_consents_active_client_idx ON auth.oauth_consents "
            "USING btree (client_id) WHERE (revoked_at IS NULL)",
        "oauth_consents_active_user_client_idx":
            "CREATE INDEX oauth_consents_active_user_client_idx ON auth.oauth_consents "
            "USING btree (user_id, client_id) WHERE (revoked_at IS NULL)",
        "oauth_consents_user_order_idx":
            "CREATE INDEX oauth_consents_user_order_idx ON auth.oauth_consents "
            "USING btree (user_id, granted_at DESC)",
    },
    # supabase.md says nothing of RLS here (Supabase Auth's migrations leave it off, as on
    # oauth_clients); the library may keep it on, which only the owner's role bypasses.
    rls=None,
)

MFA_FACTORS = Table(
    columns={
        "id": _required("uuid"), "user_id": _required("uuid"),
        "friendly_name": _nullable("text"), "factor_type": _required("auth.factor_type"),
        "status": _required("auth.factor_status"), "created_at": _required(TSTZ),
        "updated_at": _required(TSTZ), "secret": _nullable("text"), "phone": _nullable("text"),
        "last_challenged_at": _nullable(TSTZ), "web_authn_credential": _nullable("jsonb"),
        "web_authn_aaguid": _nullable("uuid"), "last_webauthn_challenge_data": _nullable("jsonb"),
    },
    constraints={
        "mfa_factors_pkey": "PRIMARY KEY (id)",
        "mfa_factors_last_challenged_at_key": "UNIQUE (last_challenged_at)",
        "mfa_factors_user_id_fkey":
            "FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE",
    },
    indexes={
        "mfa_factors_pkey":
            "CREATE UNIQUE INDEX mfa_factors_pkey ON auth.mfa_factors USING btree (id)",
        "mfa_factors_last_challenged_at_key":
            "CREATE UNIQUE INDEX mfa_factors_last_challenged_at_key "
            "ON auth.mfa_factors USING btree (last_challenged_at)",
    },
    rls=True,
    exact=False,
)

#: Every table of the document; the library may create only these in ``auth``.
TABLES = {
    "sessions": SESSIONS, "mfa_amr_claims": MFA_AMR_CLAIMS, "refresh_tokens": REFRESH_TOKENS,
    "users": USERS, "oauth_clients": OAUTH_CLIENTS, "oauth_consents": OAUTH_CONSENTS,
    "mfa_factors": MFA_FACTORS,
}
#: Those a freshly migrated standalone database must have.
REQUIRED_TABLES = {"sessions", "mfa_amr_claims", "refresh_tokens", "users", "oauth_clients",
                   "oauth_consents"}


def _default(expr: str | None) -> str | None:
    """A default as the document gives it: a cast to the column's own text type says nothing."""
    if expr is None:
        return None
    plain = re.sub(r"::(character varying|text)\b", "", expr)
    return None if plain == "NULL" else plain


def read_table(conn: Connection, table: str) -> Table:
    name = f"auth.{table}"
    columns = {
        row[0]: Column(row[1], row[2], _default(row[3]) if not row[4] else None,
                       row[3] if row[4] else None)
        for row in conn.execute(text("""
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   pg_get_expr(d.adbin, d.adrelid), a.attgenerated <> ''
            FROM pg_attribute a
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 AND NOT a.attisdropped
        """), {"t": name})
    }
    constraints: dict[str, Any] = dict(conn.execute(text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = CAST(:t AS regclass)"), {"t": name}).all())
    indexes: dict[str, Any] = dict(conn.execute(text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'auth' AND tablename = :t"),
        {"t": table}).all())
    rls = conn.execute(text("SELECT relrowsecurity FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                       {"t": name}).scalar_one()
    return Table(columns, {k: str(v) for k, v in constraints.items()},
                 {k: str(v) for k, v in indexes.items()}, bool(rls))


def auth_tables(conn: Connection) -> set[str]:
    return set(conn.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'auth'")).scalars())


def _compare(table: str, live: Table, expected: Table) -> None:
    assert live.columns == expected.columns, f"auth.{table} columns"
    if expected.exact:
        assert live.constraints == expected.constraints, f"auth.{table} constraints"
        assert live.indexes == expected.indexes, f"auth.{table} indexes"
    else:
        assert {k: live.constraints.get(k) for k in expected.constraints} == expected.constraints
        assert {k: live.indexes.get(k) for k in expected.indexes} == expected.indexes
    if expected.rls is not None:
        assert live.rls is expected.rls, f"auth.{table} row-level security"


def _check(engine: Engine, table: str) -> None:
    with engine.connect() as conn:
        assert table in auth_tables(conn), f"auth.{table} is missing"
        _compare(table, read_table(conn, table), TABLES[table])


@pytest.mark.parametrize("table", ["sessions", "mfa_amr_claims", "refresh_tokens"])
def test_auth_table_has_supabase_shape(pg_engine: Engine, table: str) -> None:
    _check(pg_engine, table)


def test_auth_enums_have_supabase_labels(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        rows = conn.execute(text("""
            SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
            FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
            JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE n.nspname = 'auth' GROUP BY t.typname
        """)).all()
    live: dict[str, Any] = {name: list(labels) for name, labels in rows}
    assert set(live) >= REQUIRED_ENUMS
    assert {name: ENUMS.get(name) for name in live} == live


def test_the_comparison_sees_a_drift(pg_engine: Engine) -> None:
    """The check is not vacuous: one changed default, check or index is caught."""
    with pg_engine.connect() as conn:
        live = read_table(conn, "sessions")
    _compare("sessions", live, SESSIONS)
    drifted = [
        live._replace(columns={**live.columns, "scopes": _nullable("text", "''")}),
        live._replace(constraints={**live.constraints,
                                   "sessions_scopes_length": "CHECK ((char_length(scopes) <= 4097))"}),
        live._replace(indexes={k: v for k, v in live.indexes.items() if k != "sessions_user_id_idx"}),
        live._replace(rls=False),
    ]
    for table in drifted:
        with pytest.raises(AssertionError):
            _compare("sessions", table, SESSIONS)


def test_the_supabase_fixture_has_the_documented_shape(fresh_pg_url: str) -> None:
    """``tests/supabase_fixture.py`` builds Supabase Auth's current ``auth`` to these same facts."""
    engine = create_engine(fresh_pg_url)
    try:
        with engine.begin() as conn:
            create_current_auth(conn)
            rows = add_supabase_rows(conn)  # and its rows fit Supabase's constraints
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM auth.sessions WHERE user_id = :u"),
                                {"u": rows.user_id}).scalar_one() == 4
            assert auth_tables(conn) == set(TABLES) | {"oauth_authorizations", "schema_migrations"}
            for table, expected in TABLES.items():
                _compare(table, read_table(conn, table), expected)
    finally:
        engine.dispose()


@pytest.mark.parametrize("table", ["users", "oauth_clients", "oauth_consents"])
def test_auth_table_the_library_shares_has_supabase_shape(pg_engine: Engine, table: str) -> None:
    """No column, check or index of the library's own in Supabase's tables."""
    _check(pg_engine, table)


def test_auth_holds_only_supabase_tables(pg_engine: Engine) -> None:
    """Everything of the library's own lives in its own schema; mfa_factors only if created."""
    with pg_engine.connect() as conn:
        tables = auth_tables(conn)
        assert tables >= REQUIRED_TABLES
        assert tables <= set(TABLES) | {"oauth_authorizations"}, tables - set(TABLES)
        if "mfa_factors" in tables:
            _compare("mfa_factors", read_table(conn, "mfa_factors"), MFA_FACTORS)
