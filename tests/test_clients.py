"""Client records: hashed secrets, exact redirect URIs, registered auth method, cache, delete."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

import pytest
from factories import REDIRECT_URI, basic_auth, create_client, make_app
from sqlalchemy import Engine, select

from oauth_sessions import get_state
from oauth_sessions.storage.clients import (
    ClientStore,
    OAuthClientWrapper,
    hash_client_secret,
    parse_client_id,
    verify_client_secret,
)
from oauth_sessions.storage.models import OAuthClient


def test_secret_is_high_entropy_and_stored_only_as_sha256(engine: Engine) -> None:
    store = ClientStore(engine, cache_seconds=0)
    _, secret = store.create(name="A", redirect_uris=[REDIRECT_URI])
    assert secret is not None and len(secret) >= 43
    with engine.connect() as conn:
        stored = conn.execute(select(OAuthClient.__table__.c.client_secret_hash)).scalar_one()
    # Supabase Auth's form: unpadded base64url of SHA-256(secret), computed here independently.
    expected = base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()).rstrip(b"=")
    assert stored == hash_client_secret(secret) == expected.decode()
    assert secret not in stored
    assert verify_client_secret(secret, stored)
    assert not verify_client_secret(secret[:-1], stored)
    assert not verify_client_secret(secret, None)
    assert not verify_client_secret("\udcff", stored)  # unencodable: refused, no exception


def test_secret_check_costs_microseconds_not_a_password_hash(engine: Engine) -> None:
    _, secret = ClientStore(engine).create(name="A", redirect_uris=[REDIRECT_URI])
    assert secret is not None
    stored = hash_client_secret(secret)
    start = time.perf_counter()
    for _ in range(1000):
        verify_client_secret(secret, stored)
    per_call = (time.perf_counter() - start) / 1000
    assert per_call < 0.0005  # bcrypt/argon2 would be 30 ms or more


def test_public_client_has_no_secret_and_authenticates_with_none(engine: Engine) -> None:
    info, secret = ClientStore(engine).create(name="SPA", redirect_uris=[REDIRECT_URI], public=True)
    assert secret is None and info.secret_hash is None
    assert info.type == "public" and info.token_endpoint_auth_method == "none"
    with pytest.raises(ValueError, match="introspect"):
        ClientStore(engine).create(name="x", redirect_uris=[REDIRECT_URI], public=True,
                                   can_introspect=True)
    with pytest.raises(ValueError):
        ClientStore(engine).create(name="x", redirect_uris=[REDIRECT_URI],
                                   token_endpoint_auth_method="none")


@pytest.mark.parametrize("uri", ["", "not a uri", "https://a.example/cb#frag",
                                 "javascript:alert(1)", "https://a.example/é", "relative/path"])
def test_bad_redirect_uris_are_refused_at_registration(engine: Engine, uri: str) -> None:
    with pytest.raises(ValueError):
        ClientStore(engine).create(name="x", redirect_uris=[uri])


def test_redirect_uri_matches_exactly(engine: Engine) -> None:
    info, _ = ClientStore(engine).create(name="A", redirect_uris=["https://a.example/cb"])
    wrapper = OAuthClientWrapper(info)
    assert wrapper.check_redirect_uri("https://a.example/cb")
    for near in ("https://a.example/cb/", "https://a.example/cb?x=1", "https://A.example/cb",
                 "https://a.example/c", "http://a.example/cb"):
        assert not wrapper.check_redirect_uri(near)


def test_rotate_secret_invalidates_the_old_one_at_once_on_this_worker(engine: Engine) -> None:
    app = make_app(engine)
    info, old = create_client(app)
    assert old is not None
    store = get_state(app).services.clients
    assert store.get(info.id) is not None  # cached now
    new = store.rotate_secret(info.id)
    assert new is not None and new != old
    fresh = store.get(info.id)
    assert verify_client_secret(new, fresh.secret_hash)
    assert not verify_client_secret(old, fresh.secret_hash)
    assert store.rotate_secret(uuid.uuid4()) is None


def test_client_records_are_cached_for_the_configured_seconds(engine: Engine) -> None:
    store = ClientStore(engine, cache_seconds=5)
    info, _ = store.create(name="A", redirect_uris=[REDIRECT_URI])
    assert store.get(info.id) is not None
    with engine.begin() as conn:  # another worker deletes it
        conn.execute(OAuthClient.__table__.delete())
    assert store.get(info.id) is not None  # stale for up to cache_seconds: harmless
    assert store.get(info.id, fresh=True) is None
    uncached = ClientStore(engine, cache_seconds=0)
    assert uncached.get(info.id) is None


def test_client_id_is_the_canonical_uuid_text() -> None:
    value = uuid.UUID("a3bb189e-8bf9-3888-9912-ace4e6543002")
    assert parse_client_id(str(value)) == value
    assert parse_client_id(str(value).upper()) is None
    assert parse_client_id("{" + str(value) + "}") is None
    assert parse_client_id("not-a-uuid") is None
    assert parse_client_id(None) is None


def test_client_must_use_its_registered_auth_method(engine: Engine) -> None:
    app = make_app(engine)
    info, secret = create_client(app, token_endpoint_auth_method="client_secret_post")
    assert secret is not None
    http = app.test_client()
    response = http.post("/oauth/token", data={"grant_type": "authorization_code", "code": "x",
                                               "redirect_uri": REDIRECT_URI},
                         headers={"Authorization": basic_auth(info.client_id, secret)})
    assert response.status_code == 401 and response.json["error"] == "invalid_client"
    response = http.post("/oauth/token", data={"grant_type": "authorization_code", "code": "x",
                                               "redirect_uri": REDIRECT_URI,
                                               "client_id": info.client_id,
                                               "client_secret": secret})
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"


def test_list_returns_every_client_without_secrets(engine: Engine) -> None:
    store = ClientStore(engine)
    a, _ = store.create(name="A", redirect_uris=[REDIRECT_URI])
    b, _ = store.create(name="B", redirect_uris=[REDIRECT_URI], public=True)
    listed = store.list()
    assert {c.id for c in listed} == {a.id, b.id}
    assert all("client_secret" not in c.as_metadata() for c in listed)


# ------------------------------------------------------------------ private_key_jwt (OIDC Core 9)


def _key_pair(kid: str = "c1") -> tuple[Any, dict[str, Any]]:
    from joserfc import jwk

    key = jwk.generate_key("EC", "P-256", parameters={"kid": kid})
    return key, {"keys": [key.as_dict(private=False)]}


def _assertion(key: Any, client_id: str, **claims: Any) -> str:
    from joserfc import jwt

    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": "http://127.0.0.1:5000/oauth/token",
            "exp": now + 60, "iat": now, "jti": uuid.uuid4().hex}
    body.update(claims)
    return jwt.encode({"alg": "ES256", "kid": key.kid}, {k: v for k, v in body.items() if v is not None},
                      key)


def _code_request(engine: Engine) -> tuple[Any, Any, Any, dict[str, str]]:
    from factories import create_user, obtain_code, pkce_pair

    key, jwks = _key_pair()
    app = make_app(engine)
    info, secret = create_client(app, token_endpoint_auth_method="private_key_jwt", jwks=jwks)
    assert secret is None and info.jwks
    http = app.test_client()
    verifier, challenge = pkce_pair()
    code = obtain_code(http, info, create_user(engine), challenge)["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    return key, info, http, form


def test_private_key_jwt_client_authenticates_with_a_signed_assertion(engine: Engine) -> None:
    key, info, http, form = _code_request(engine)
    response = http.post("/oauth/token", data=form | {"client_assertion": _assertion(key, info.client_id)})
    assert response.status_code == 200, response.json
    assert response.json["access_token"]


def test_private_key_jwt_assertion_is_one_time(engine: Engine) -> None:
    key, info, http, form = _code_request(engine)
    assertion = _assertion(key, info.client_id)
    bad_code = http.post("/oauth/token", data=form | {"client_assertion": assertion, "code": "x"})
    assert bad_code.status_code == 400 and bad_code.json["error"] == "invalid_grant"
    replay = http.post("/oauth/token", data=form | {"client_assertion": assertion})
    assert replay.status_code == 401 and replay.json["error"] == "invalid_client"
    assert replay.json["error_description"] == "client_assertion was already used"


@pytest.mark.parametrize(("claims", "description"), [
    ({"aud": "https://other.example/token"}, "client_assertion aud does not name this server"),
    ({"exp": int(time.time()) - 60}, "client_assertion has expired"),
    ({"exp": int(time.time()) + 7200}, "client_assertion lives too long"),
    ({"iss": "someone-else"}, "client_assertion iss and sub must be the client_id"),
    ({"jti": None}, "client_assertion needs a jti"),
    ({"iat": int(time.time()) + 3600}, "client_assertion iat is in the future"),
])
def test_private_key_jwt_claims_are_checked(engine: Engine, claims: dict[str, Any],
                                            description: str) -> None:
    from factories import snapshot

    key, info, http, form = _code_request(engine)
    before = snapshot(engine)
    response = http.post("/oauth/token", data=form | {
        "client_assertion": _assertion(key, info.client_id, **claims)})
    assert response.status_code == 401 and response.json["error"] == "invalid_client"
    assert response.json["error_description"] == description
    assert snapshot(engine) == before


#: A lone surrogate, as JSON may escape it (``"\\udc00"``): it parses to a Python str that no
#: UTF-8 encoder accepts, so it must be refused before anything hashes or stores it.
LONE_SURROGATE = "\udc00"


def _raw_assertion(key: Any, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """An assertion signed exactly as given (``json.dumps`` escapes the surrogate as ASCII)."""
    from joserfc import jws

    return jws.serialize_compact(header, json.dumps(claims).encode("ascii"), key)


@pytest.mark.parametrize("where", ["jti", "iss", "sub", "aud", "aud in a list", "kid"])
def test_a_lone_surrogate_in_a_client_assertion_is_invalid_client_and_writes_nothing(
        engine: Engine, where: str) -> None:
    """RFC 7523 section 3 / RFC 6749 section 5.2: an assertion whose ``jti`` (or another string
    claim, or ``kid``) is no Unicode text is 401 ``invalid_client``, not a 500 from hashing it
    for the replay ledger; the ledger and everything else stay as they were."""
    from factories import snapshot

    key, info, http, form = _code_request(engine)
    now = int(time.time())
    claims: dict[str, Any] = {"iss": info.client_id, "sub": info.client_id,
                              "aud": "http://127.0.0.1:5000/oauth/token", "exp": now + 60,
                              "iat": now, "jti": uuid.uuid4().hex}
    header = {"alg": "ES256", "kid": key.kid}
    if where == "kid":
        header["kid"] = LONE_SURROGATE
    elif where == "aud in a list":
        claims["aud"] = [claims["aud"], LONE_SURROGATE]
    else:
        claims[where] = LONE_SURROGATE
    before = snapshot(engine, ledgers=True)
    response = http.post("/oauth/token", data=form | {
        "client_assertion": _raw_assertion(key, header, claims)})
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.json["error"] == "invalid_client"
    assert snapshot(engine, ledgers=True) == before


@pytest.mark.parametrize("how", ["client_id", "client_secret", "basic id", "basic secret"])
def test_a_lone_surrogate_in_client_credentials_is_refused_and_writes_nothing(
        engine: Engine, how: str) -> None:
    """The same value as UTF-8 bytes of a surrogate (``%ED%B3%80``, which is no UTF-8) in the
    form's ``client_id`` / ``client_secret`` or in HTTP Basic: a clean 400/401, nothing written."""
    from factories import snapshot

    app = make_app(engine)
    info, secret = create_client(app)
    assert secret is not None
    bad = "%ED%B3%80"
    body = "grant_type=refresh_token&refresh_token=osr1_x"
    headers: dict[str, str] = {}
    if how == "client_id":
        body += f"&client_id={bad}&client_secret={secret}"
    elif how == "client_secret":
        body += f"&client_id={info.client_id}&client_secret={bad}"
    else:
        user, password = (b"\xed\xb3\x80", secret.encode()) if how == "basic id" \
            else (info.client_id.encode(), b"\xed\xb3\x80")
        headers["Authorization"] = "Basic " + base64.b64encode(user + b":" + password).decode()
    before = snapshot(engine, ledgers=True)
    response = app.test_client().post("/oauth/token", data=body, headers=headers,
                                      content_type="application/x-www-form-urlencoded")
    assert response.status_code in (400, 401), response.get_data(as_text=True)
    assert response.json["error"] in {"invalid_request", "invalid_client"}
    assert snapshot(engine, ledgers=True) == before


def test_private_key_jwt_signed_by_another_key_or_unsigned_is_refused(engine: Engine) -> None:
    key, info, http, form = _code_request(engine)
    other, _ = _key_pair("c1")
    forged = http.post("/oauth/token", data=form | {"client_assertion": _assertion(other, info.client_id)})
    assert forged.status_code == 401 and forged.json["error"] == "invalid_client"
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    payload = _assertion(key, info.client_id).split(".")[1]
    unsigned = http.post("/oauth/token", data=form | {"client_assertion": f"{header}.{payload}."})
    assert unsigned.status_code == 401
    junk = http.post("/oauth/token", data=form | {"client_assertion": "not-a-jwt"})
    assert junk.status_code == 401


def test_private_key_jwt_client_cannot_fall_back_to_a_secret_or_none(engine: Engine) -> None:
    _, info, http, form = _code_request(engine)
    del form["client_assertion_type"]
    response = http.post("/oauth/token", data=form | {"client_id": info.client_id})
    assert response.status_code == 401 and response.json["error"] == "invalid_client"


def test_jwks_must_hold_public_keys_only(engine: Engine) -> None:
    key, _ = _key_pair()
    store = ClientStore(engine)
    with pytest.raises(ValueError, match="public keys only"):
        store.create(name="x", redirect_uris=[REDIRECT_URI], token_endpoint_auth_method="private_key_jwt",
                     jwks={"keys": [key.as_dict(private=True)]})
    with pytest.raises(ValueError, match="jwks"):
        store.create(name="x", redirect_uris=[REDIRECT_URI], token_endpoint_auth_method="private_key_jwt")
    with pytest.raises(ValueError, match="jwks"):
        store.create(name="x", redirect_uris=[REDIRECT_URI], jwks={"keys": [key.as_dict(private=False)]})


@pytest.mark.parametrize("uri", ["http://127.0.0.1:9/bc", "https://10.1.2.3/bc",
                                 "http://rp.example/bc", "https://u:p@rp.example/bc"])
def test_client_store_applies_the_backchannel_rules_too(engine: Engine, uri: str) -> None:
    store = ClientStore(engine, cache_seconds=0)  # no loopback issuer known: production rules
    with pytest.raises(ValueError, match=r"backchannel_logout_uri|userinfo"):
        store.create(name="A", redirect_uris=[REDIRECT_URI], backchannel_logout_uri=uri)
    info, _ = store.create(name="A", redirect_uris=[REDIRECT_URI],
                           backchannel_logout_uri="https://rp.example/bc")
    with pytest.raises(ValueError):
        store.update_metadata(info.id, backchannel_logout_uri=uri)
    assert store.get(info.id, fresh=True).backchannel_logout_uri == "https://rp.example/bc"


def test_client_store_allows_loopback_http_only_when_told_or_for_a_loopback_issuer(
        engine: Engine) -> None:
    dev = ClientStore(engine, cache_seconds=0, allow_loopback_http=True)
    info, _ = dev.create(name="A", redirect_uris=[REDIRECT_URI],
                         backchannel_logout_uri="http://127.0.0.1:9/bc")
    assert info.backchannel_logout_uri == "http://127.0.0.1:9/bc"
    app_store = get_state(make_app(engine)).services.clients  # issuer http://127.0.0.1:5000
    production = get_state(make_app(engine, issuer="https://issuer.example")).services.clients
    assert app_store.allow_loopback_http is True and production.allow_loopback_http is False


def test_update_metadata_refuses_a_redirect_uri_with_userinfo(engine: Engine) -> None:
    store = ClientStore(engine, cache_seconds=0)
    info, _ = store.create(name="A", redirect_uris=[REDIRECT_URI])
    with pytest.raises(ValueError, match="userinfo"):
        store.update_metadata(info.id, redirect_uris="https://rp.example@evil.example/cb")
    assert store.get(info.id, fresh=True).redirect_uris == (REDIRECT_URI,)
