"""Issue 17, "one layout, two owners": revision 0007 on PostgreSQL and SQLite.

* a fresh database gets Supabase Auth's shape in ``auth`` (no column of the library there) and
  the library's tables in its own schema (``oauth_sessions``, or the configured name);
* a database of the previous layout (revision 0005: the library's columns and tables inside
  ``auth``) moves to the new one without losing a row: settings, codes, signing keys and
  assertion records move out, clients are re-encoded as Supabase Auth writes them, and every
  secret still verifies;
* a ``private_key_jwt`` client is kept safe where Supabase's CHECK cannot name its method.

The expected column lists are written out from ``shared/supabase.md``, not from the models.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from oauth_sessions.core.types import Aal
from oauth_sessions.storage import migrate
from oauth_sessions.storage.authorizations import AuthorizationStore, hash_code
from oauth_sessions.storage.clients import (
    UNUSABLE_SECRET_PREFIX,
    ClientStore,
    OAuthClientWrapper,
    verify_client_secret,
)
from oauth_sessions.storage.database import create_auth_engine

SUPABASE_CLIENT_COLUMNS = [
    "id", "client_secret_hash", "registration_type", "redirect_uris", "grant_types",
    "client_name", "client_uri", "logo_uri", "created_at", "updated_at", "deleted_at",
    "client_type", "token_endpoint_auth_method",
]
SUPABASE_CONSENT_COLUMNS = ["id", "user_id", "client_id", "scopes", "granted_at", "revoked_at"]
LIBRARY_TABLES = {"oauth_client_settings", "oauth_authorization_codes", "oauth_signing_keys",
                  "oauth_client_assertions", "oauth_dpop_proofs", "oauth_dpop_bindings",
                  "oauth_resource_servers", "oauth_session_resources",
                  "oauth_pushed_requests",
                  "oauth_sessions_alembic_version"}
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'layout.db'}"
    url: str = request.getfixturevalue("fresh_pg_url")
    return url


@pytest.fixture
def empty_engine(empty_url: str) -> Iterator[Engine]:
    engine = create_auth_engine(empty_url)
    yield engine
    engine.dispose()


def _schemas(engine: Engine) -> tuple[str | None, str | None]:
    return (None, None) if engine.dialect.name == "sqlite" else ("auth", "oauth_sessions")


def _q(engine: Engine, table: str) -> str:
    return table if engine.dialect.name == "sqlite" else f"auth.{table}"


def _id(engine: Engine, value: uuid.UUID) -> Any:
    return value.hex if engine.dialect.name == "sqlite" else value


def _t(engine: Engine, value: datetime) -> Any:
    return value.replace(tzinfo=None).isoformat(" ") if engine.dialect.name == "sqlite" else value


def test_fresh_database_has_supabase_shape_in_auth_and_library_tables_apart(
    empty_engine: Engine,
) -> None:
    migrate.upgrade(empty_engine)
    auth, library = _schemas(empty_engine)
    inspector = inspect(empty_engine)
    columns = [c["name"] for c in inspector.get_columns("oauth_clients", schema=auth)]
    assert columns == SUPABASE_CLIENT_COLUMNS
    assert [c["name"] for c in inspector.get_columns("oauth_consents", schema=auth)] == \
        SUPABASE_CONSENT_COLUMNS
    users = [c["name"] for c in inspector.get_columns("users", schema=auth)]
    assert len(users) == 35 and users[:2] == ["instance_id", "id"] and users[-1] == "is_anonymous"
    assert "aal" not in {c["name"] for c in inspector.get_columns("oauth_authorizations",
                                                                  schema=auth)}
    if library is not None:
        assert set(inspector.get_table_names(schema=library)) == LIBRARY_TABLES
        assert not LIBRARY_TABLES & set(inspector.get_table_names(schema=auth))
    else:
        assert set(inspector.get_table_names()) >= LIBRARY_TABLES


def test_consent_and_client_checks_of_supabase_hold(empty_engine: Engine) -> None:
    """Supabase's CHECKs are in place: the store refuses first with a clear error."""
    migrate.upgrade(empty_engine)
    store = ClientStore(empty_engine, cache_seconds=0)
    base = "https://app.example/"  # 20 characters
    with pytest.raises(ValueError, match="2048"):  # 2,049: one over Supabase's CHECK
        store.create(name="App", redirect_uris=["https://app.example/cb"],
                     client_uri=base + "a" * 2029)
    with pytest.raises(ValueError, match="comma"):
        store.create(name="App", redirect_uris=["https://app.example/cb,https://evil.example/"])
    info, _ = store.create(name="App", redirect_uris=["https://app.example/cb"],
                           client_uri=base + "a" * 2028)
    assert info.client_uri is not None and len(info.client_uri) == 2048
    with empty_engine.begin() as conn:  # what a hand-written row would meet in the database
        user = uuid.uuid4()
        conn.execute(text(f"INSERT INTO {_q(empty_engine, 'users')} (id, email) VALUES (:id, 'x')"),
                     {"id": _id(empty_engine, user)})
    with pytest.raises(IntegrityError, match=r"oauth_consents_scopes_not_empty|CHECK"), \
            empty_engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {_q(empty_engine, 'oauth_consents')} (id, user_id, "
                          "client_id, scopes, granted_at) VALUES (:id, :u, :c, '  ', :t)"),
                     {"id": _id(empty_engine, uuid.uuid4()), "u": _id(empty_engine, user),
                      "c": _id(empty_engine, info.id), "t": _t(empty_engine, T0)})


def _seed_previous_layout(engine: Engine) -> dict[str, Any]:
    """Rows as revision 0005 stored them: the library's columns and tables inside auth."""
    user = uuid.uuid4()
    secret = secrets.token_urlsafe(32)
    confidential, jwt_client, public = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    token = secrets.token_urlsafe(32)
    jwks = json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "1" * 43}]})
    session = uuid.uuid4()
    code = secrets.token_urlsafe(32)
    i, t = (lambda v: _id(engine, v)), (lambda v: _t(engine, v))
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {_q(engine, 'users')} (id, email) VALUES (:id, 'p@e.x')"),
                     {"id": i(user)})
        for cid, method, kind, hashed, extra in (
            (confidential, "client_secret_basic", "confidential",
             "sha256$" + hashlib.sha256(secret.encode()).hexdigest(), None),
            (jwt_client, "private_key_jwt", "confidential", None, jwks),
            (public, "none", "public", None, None),
        ):
            conn.execute(text(
                f"INSERT INTO {_q(engine, 'oauth_clients')} (id, client_secret_hash, "
                "registration_type, redirect_uris, grant_types, client_name, created_at, "
                "updated_at, client_type, token_endpoint_auth_method, scope, min_aal, "
                "max_session_seconds, can_introspect, post_logout_redirect_uris, "
                "backchannel_logout_uri, backchannel_logout_session_required, jwks, "
                "registration_access_token_hash, verified) VALUES (:id, :h, 'dynamic', "
                ":r, 'authorization_code refresh_token', :n, :t, :t, :k, :m, "
                "'openid profile', :aal, 3600, :intro, :plr, NULL, :bsr, :jwks, :rat, :v)"),
                {"id": i(cid), "h": hashed, "r": "https://a.example/cb\nhttps://b.example/cb",
                 "n": f"{method} app", "t": t(T0), "k": kind, "m": method,
                 "aal": "aal2" if cid == confidential else None,
                 "intro": cid == confidential, "plr": "https://a.example/bye",
                 "bsr": cid != public, "jwks": extra,
                 "rat": "sha256$" + hashlib.sha256(token.encode()).hexdigest(),
                 "v": cid == confidential})
        conn.execute(text(
            f"INSERT INTO {_q(engine, 'sessions')} (id, user_id, created_at, updated_at, aal, "
            "oauth_client_id, refresh_token_hmac_key, refresh_token_counter, scopes) VALUES "
            "(:id, :u, :t, :t, 'aal1', :c, 'k', 0, 'openid')"),
            {"id": i(session), "u": i(user), "t": t(T0), "c": i(confidential)})
        conn.execute(text(
            f"INSERT INTO {_q(engine, 'oauth_consents')} (id, user_id, client_id, scopes, "
            "granted_at) VALUES (:id, :u, :c, 'openid profile', :t)"),
            {"id": i(uuid.uuid4()), "u": i(user), "c": i(confidential), "t": t(T0)})
        conn.execute(text(
            f"INSERT INTO {_q(engine, 'oauth_consents')} (id, user_id, client_id, scopes, "
            "granted_at) VALUES (:id, :u, :c, '', :t)"),
            {"id": i(uuid.uuid4()), "u": i(user), "c": i(public), "t": t(T0)})
        conn.execute(text(
            f"INSERT INTO {_q(engine, 'oauth_authorizations')} (id, client_id, user_id, "
            "redirect_uri, scope, authorization_code, status, aal, amr, auth_time, created_at, "
            "expires_at, code_challenge, code_challenge_method, user_agent) VALUES (:id, :c, :u, "
            "'https://a.example/cb', 'openid', :code, 'approved', 'aal1', '[[\"pwd\", 1]]', "
            ":t, :t, :exp, 'x', 'S256', 'agent')"),
            {"id": i(uuid.uuid4()), "c": i(confidential), "u": i(user),
             "code": hash_code(code), "t": t(T0), "exp": t(T0 + timedelta(days=3650))})
        conn.execute(text(
            f"INSERT INTO {_q(engine, 'oauth_signing_keys')} (kid, alg, private_jwk, "
            "created_at, activated_at) VALUES ('kid-1', 'EdDSA', '{}', :t, :t)"), {"t": t(T0)})
        conn.execute(text(
            f"INSERT INTO {_q(engine, 'oauth_client_assertions')} (jti_hash, client_id, "
            "expires_at) VALUES ('jti-1', :c, :t)"), {"c": i(jwt_client), "t": t(T0)})
    return {"secret": secret, "token": token, "confidential": confidential,
            "jwt": jwt_client, "public": public, "code": code, "session": session}


def test_previous_layout_moves_to_the_new_one_keeping_every_row(empty_engine: Engine) -> None:
    engine = empty_engine
    migrate.upgrade(engine, "0005")
    seeded = _seed_previous_layout(engine)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    auth, library = _schemas(engine)
    inspector = inspect(engine)
    assert [c["name"] for c in inspector.get_columns("oauth_clients", schema=auth)] == \
        SUPABASE_CLIENT_COLUMNS
    if library is not None:
        assert not LIBRARY_TABLES & set(inspector.get_table_names(schema=auth))
    store = ClientStore(engine, cache_seconds=0)
    confidential = store.get(seeded["confidential"])
    assert confidential is not None
    assert confidential.scopes == ("openid", "profile") and confidential.can_introspect
    assert confidential.min_aal is not None and confidential.min_aal.value == "aal2"
    assert confidential.max_session_seconds == 3600 and confidential.verified
    assert confidential.redirect_uris == ("https://a.example/cb", "https://b.example/cb")
    assert confidential.post_logout_redirect_uris == ("https://a.example/bye",)
    assert confidential.grant_types == ("authorization_code", "refresh_token")
    # Secrets survive the re-encoding: the same digest, Supabase's form.
    assert OAuthClientWrapper(confidential).check_client_secret(seeded["secret"])
    assert verify_client_secret(seeded["token"], confidential.registration_access_token_hash)
    digest = base64.urlsafe_b64encode(hashlib.sha256(seeded["secret"].encode()).digest())
    with engine.connect() as conn:
        rows = {r.id if isinstance(r.id, uuid.UUID) else uuid.UUID(r.id): r for r in conn.execute(
            text(f"SELECT id, client_secret_hash, redirect_uris, grant_types, "
                 f"token_endpoint_auth_method, client_type FROM {_q(engine, 'oauth_clients')}"))}
        counts = {name: conn.execute(text(f"SELECT count(*) FROM {name}")).scalar() for name in (
            _q(engine, "sessions"), _q(engine, "oauth_consents"),
            (f"{library}." if library else "") + "oauth_authorization_codes",
            (f"{library}." if library else "") + "oauth_signing_keys",
            (f"{library}." if library else "") + "oauth_client_assertions",
            (f"{library}." if library else "") + "oauth_client_settings")}
    row = rows[seeded["confidential"]]
    assert row.client_secret_hash == digest.rstrip(b"=").decode()
    assert row.redirect_uris == "https://a.example/cb,https://b.example/cb"
    assert row.grant_types == "authorization_code,refresh_token"
    # private_key_jwt: confidential and client_secret_basic for Supabase, with a hash that
    # no secret matches; the real method and keys in the library's settings.
    jwt_row = rows[seeded["jwt"]]
    assert (jwt_row.client_type, jwt_row.token_endpoint_auth_method) == \
        ("confidential", "client_secret_basic")
    assert jwt_row.client_secret_hash.startswith(UNUSABLE_SECRET_PREFIX)
    jwt_client = store.get(seeded["jwt"])
    assert jwt_client is not None and jwt_client.token_endpoint_auth_method == "private_key_jwt"
    assert jwt_client.jwks is not None and jwt_client.secret_hash is None
    assert store.rotate_secret(seeded["jwt"]) is None  # never given a usable secret
    assert rows[seeded["public"]].token_endpoint_auth_method == "none"
    # Every row kept, but the blank consent (Supabase's CHECK refuses it; it granted nothing).
    assert list(counts.values()) == [1, 1, 1, 1, 1, 3]
    found = AuthorizationStore(engine, code_lifetime=60).find(seeded["code"])
    assert found is not None and found.user_agent == "agent" and found.amr == (("pwd", 1),)


def test_private_key_jwt_client_created_now_is_never_public_for_supabase(
    empty_engine: Engine,
) -> None:
    migrate.upgrade(empty_engine)
    store = ClientStore(empty_engine, cache_seconds=0)
    jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(
        secrets.token_bytes(32)).rstrip(b"=").decode(), "use": "sig", "kid": "k1"}]}
    info, secret = store.create(name="Signed", redirect_uris=["https://s.example/cb"],
                                token_endpoint_auth_method="private_key_jwt", jwks=jwks)
    assert secret is None and info.token_endpoint_auth_method == "private_key_jwt"
    with empty_engine.connect() as conn:
        row = conn.execute(text(
            f"SELECT client_type, token_endpoint_auth_method, client_secret_hash FROM "
            f"{_q(empty_engine, 'oauth_clients')}")).one()
    assert row.client_type == "confidential" and row.token_endpoint_auth_method == \
        "client_secret_basic"
    assert row.client_secret_hash.startswith(UNUSABLE_SECRET_PREFIX)
    # Nothing a client could send matches it, in Supabase's comparison or the library's.
    for guess in ("", row.client_secret_hash, row.client_secret_hash[len(UNUSABLE_SECRET_PREFIX):]):
        candidate = base64.urlsafe_b64encode(hashlib.sha256(guess.encode()).digest())
        assert candidate.rstrip(b"=").decode() != row.client_secret_hash
        assert not verify_client_secret(guess, row.client_secret_hash)


@pytest.mark.postgres
def test_library_schema_name_is_configurable(fresh_pg_url: str) -> None:
    engine = create_auth_engine(fresh_pg_url, schema="idp_private")
    try:
        migrate.upgrade(engine)
        inspector = inspect(engine)
        assert set(inspector.get_table_names(schema="idp_private")) == LIBRARY_TABLES
        assert "oauth_sessions" not in inspector.get_schema_names()
        store = ClientStore(engine, cache_seconds=0)
        info, _ = store.create(name="App", redirect_uris=["https://app.example/cb"],
                               can_introspect=True)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT can_introspect FROM idp_private."
                                     "oauth_client_settings")).scalar() is True
        assert store.get(info.id).can_introspect  # type: ignore[union-attr]
    finally:
        engine.dispose()
    with pytest.raises(ValueError, match="auth"):
        create_auth_engine(fresh_pg_url, schema="auth")


def test_library_rows_follow_supabase_rows_by_cascade(empty_engine: Engine) -> None:
    """Deleting Supabase's client row (as Supabase Auth's hard delete would) takes its settings,
    codes and assertion records with it, on SQLite as on PostgreSQL."""
    migrate.upgrade(empty_engine)
    store = ClientStore(empty_engine, cache_seconds=0)
    info, _ = store.create(name="App", redirect_uris=["https://app.example/cb"])
    user = uuid.uuid4()
    with empty_engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {_q(empty_engine, 'users')} (id, email) VALUES (:id, 'y')"),
                     {"id": _id(empty_engine, user)})
    AuthorizationStore(empty_engine, code_lifetime=60).issue(
        client_id=info.id, user_id=user, redirect_uri="https://app.example/cb", scopes=["openid"],
        state=None, nonce=None, code_challenge="x" * 43, code_challenge_method="S256",
        aal=Aal.AAL1, amr=[("pwd", 1)], factor_id=None, auth_time=T0, not_after=None)
    library = "" if empty_engine.dialect.name == "sqlite" else "oauth_sessions."

    def count(table: str) -> int:
        with empty_engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {library}{table}")).scalar_one())

    assert (count("oauth_client_settings"), count("oauth_authorization_codes")) == (1, 1)
    with empty_engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {_q(empty_engine, 'oauth_clients')} WHERE id = :id"),
                     {"id": _id(empty_engine, info.id)})
    assert (count("oauth_client_settings"), count("oauth_authorization_codes")) == (0, 0)
