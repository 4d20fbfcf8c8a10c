"""Issue 17: session keys in Supabase Auth's ``aes-gcm-hkdf`` JSON form, read and rewrapped.

The vectors are built here, with ``cryptography``'s primitives, from the layout in
``shared/supabase.md`` (and the salt / associated-data details recorded in
``docs/guides/supabase.md``): ``{"key_id", "alg": "aes-gcm-hkdf", "data", "nonce"}``, data and
nonce in standard base64, AES-256-GCM with no associated data under HKDF-SHA256 (no salt) of
the named root key with the session id (canonical UUID text) as info; the plaintext is the
base64url HMAC key.

``rewrap_keys`` never writes a form the session's other reader cannot read: Supabase's form
stays Supabase's form, ``enc1:`` is written only for sessions only this library reads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, select, text, update
from test_store_support import T0, add_client, add_user, make_settings, new_session

from oauth_sessions.core.errors import InvalidRefreshToken
from oauth_sessions.core.refresh_tokens import generate_hmac_key, key_bytes
from oauth_sessions.core.settings import ConfigurationError, load_settings
from oauth_sessions.storage.key_encryption import (
    KeyDecryptionError,
    KeyEncryptor,
    PlainKeys,
    SecretBox,
    SupabaseKeys,
    secret_box,
)
from oauth_sessions.storage.models import Session
from oauth_sessions.storage.sessions import SessionStore

SESSIONS = Session.__table__
ROOT_A = bytes(range(32))
ROOT_B = bytes(range(200, 232))
SID = uuid.UUID("0b5e3a52-7c1d-4f6e-9a80-3d2c1b0a9f8e")
NONCE = bytes(range(12))
HMAC_KEY = generate_hmac_key()
LIB = {"k1": bytes(32), "k2": bytes(range(1, 33))}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def supabase_form(plaintext: str, *, row_id: uuid.UUID, root: bytes, key_id: str,
                  nonce: bytes = NONCE) -> str:
    """What Supabase Auth stores for ``plaintext`` on row ``row_id``, from the layout."""
    derived = HKDF(algorithm=SHA256(), length=32, salt=None,
                   info=str(row_id).encode("ascii")).derive(root)
    sealed = AESGCM(derived).encrypt(nonce, plaintext.encode("ascii"), None)
    return json.dumps({"key_id": key_id, "alg": "aes-gcm-hkdf",
                       "data": base64.b64encode(sealed).decode(),
                       "nonce": base64.b64encode(nonce).decode()})


def open_supabase_form(stored: str, *, row_id: uuid.UUID, roots: dict[str, bytes]) -> str:
    """The independent reader: what Supabase Auth would decrypt ``stored`` to."""
    value = json.loads(stored)
    assert set(value) == {"key_id", "alg", "data", "nonce"} and value["alg"] == "aes-gcm-hkdf"
    derived = HKDF(algorithm=SHA256(), length=32, salt=None,
                   info=str(row_id).encode("ascii")).derive(roots[value["key_id"]])
    return AESGCM(derived).decrypt(base64.b64decode(value["nonce"]),
                                   base64.b64decode(value["data"]), None).decode("ascii")


def _row(engine: Engine, session_id: uuid.UUID) -> tuple[Any, ...] | None:
    with engine.connect() as conn:
        row = conn.execute(select(SESSIONS).where(SESSIONS.c.id == session_id)).first()
    return None if row is None else tuple(row)


def _key(engine: Engine, session_id: uuid.UUID) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(SESSIONS.c.refresh_token_hmac_key)
                                .where(SESSIONS.c.id == session_id)).scalar_one())


def _set_key(engine: Engine, session_id: uuid.UUID, stored: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(SESSIONS).where(SESSIONS.c.id == session_id)
                     .values(refresh_token_hmac_key=stored))


# -- the form itself -------------------------------------------------------------------------


def test_known_answer_vector_from_the_layout() -> None:
    stored = supabase_form(HMAC_KEY, row_id=SID, root=ROOT_A, key_id="root-a")
    keys = SupabaseKeys({"root-a": _b64url(ROOT_A)})
    assert keys.decrypt(stored, row_id=SID) == HMAC_KEY
    # The Go encoder writes the same fields without spaces and in struct order; both read.
    compact = json.dumps(json.loads(stored), separators=(",", ":"))
    assert keys.decrypt(compact, row_id=SID) == HMAC_KEY
    assert key_bytes(keys.decrypt(stored, row_id=SID)) == key_bytes(HMAC_KEY)


def test_written_form_is_what_supabase_reads_and_fresh_each_time() -> None:
    keys = SupabaseKeys({"root-a": ROOT_A, "root-b": ROOT_B}, "root-b")
    first, second = (keys.encrypt(HMAC_KEY, row_id=SID) for _ in range(2))
    assert first != second  # a fresh nonce each time
    for stored in (first, second):
        value = json.loads(stored)
        assert value["key_id"] == "root-b" and value["alg"] == "aes-gcm-hkdf"
        assert len(base64.b64decode(value["nonce"], validate=True)) == 12
        assert HMAC_KEY not in stored
        assert open_supabase_form(stored, row_id=SID,
                                  roots={"root-a": ROOT_A, "root-b": ROOT_B}) == HMAC_KEY


def _altered(field: str, change: Any) -> str:
    value = json.loads(supabase_form(HMAC_KEY, row_id=SID, root=ROOT_A, key_id="root-a"))
    if change is None:
        del value[field]
    else:
        value[field] = change(value[field])
    return json.dumps(value)


def _flip_first_byte(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(("stored", "reason"), [
    (_altered("data", _flip_first_byte), "failed authentication"),
    (_altered("nonce", _flip_first_byte), "failed authentication"),
    (_altered("data", lambda d: base64.b64encode(base64.b64decode(d)[:16]).decode()), "damaged"),
    (_altered("nonce", lambda n: base64.b64encode(base64.b64decode(n) + b"\x00").decode()), "damaged"),
    (_altered("data", lambda d: d.replace("=", "") + "!"), "not base64"),
    (_altered("alg", lambda _: "aes-gcm"), "only 'aes-gcm-hkdf'"),
    (_altered("key_id", lambda _: "root-z"), "'root-z', which is not configured"),
    (_altered("key_id", lambda _: ""), "empty key_id"),
    (_altered("nonce", None), "needs key_id, alg, data and nonce"),
    (_altered("data", lambda _: 5), "needs key_id, alg, data and nonce"),
    ('{"key_id": "root-a", "alg": "aes-gcm-hkdf", "data": "AAAA"', "not JSON"),
    ("[1, 2]", "needs key_id"),
])
def test_damaged_values_are_refused_clearly_without_echoing(stored: str, reason: str) -> None:
    keys = SupabaseKeys({"root-a": ROOT_A})
    with pytest.raises(KeyDecryptionError, match=reason) as excinfo:
        keys.decrypt(stored, row_id=SID)
    assert _b64url(ROOT_A) not in str(excinfo.value) and HMAC_KEY not in str(excinfo.value)


def test_the_value_is_bound_to_its_row() -> None:
    stored = supabase_form(HMAC_KEY, row_id=SID, root=ROOT_A, key_id="root-a")
    keys = SupabaseKeys({"root-a": ROOT_A})
    with pytest.raises(KeyDecryptionError, match="belongs to another row"):
        keys.decrypt(stored, row_id=uuid.uuid4())
    with pytest.raises(KeyDecryptionError, match="failed authentication"):
        SupabaseKeys({"root-a": ROOT_B}).decrypt(stored, row_id=SID)


@pytest.mark.parametrize("box", [PlainKeys(supabase=SupabaseKeys({"root-a": ROOT_A})),
                                 KeyEncryptor({"k1": bytes(32)}, "k1",
                                              supabase=SupabaseKeys({"root-a": ROOT_A}))])
def test_both_boxes_read_supabase_form_given_the_root_keys(box: SecretBox) -> None:
    stored = supabase_form(HMAC_KEY, row_id=SID, root=ROOT_A, key_id="root-a")
    assert box.decrypt(stored, context=SID.bytes) == HMAC_KEY
    with pytest.raises(KeyDecryptionError, match="not a UUID"):
        box.decrypt(stored, context=b"signing-key-kid")


@pytest.mark.parametrize("box", [PlainKeys(), KeyEncryptor({"k1": bytes(32)}, "k1")])
def test_without_root_keys_the_error_names_the_setting(box: SecretBox) -> None:
    stored = supabase_form(HMAC_KEY, row_id=SID, root=ROOT_A, key_id="root-a")
    with pytest.raises(KeyDecryptionError, match="OAUTH_SESSIONS_SUPABASE_ENCRYPTION_KEYS"):
        box.decrypt(stored, context=SID.bytes)


def test_other_json_is_not_taken_for_supabase_form() -> None:
    """A signing key's JWK is JSON with a JOSE ``alg``: it passes through as it always did."""
    jwk = json.dumps({"alg": "ES256", "kty": "EC", "crv": "P-256", "d": "x", "x": "y", "y": "z"})
    roots = SupabaseKeys({"root-a": ROOT_A}, "root-a")
    for box in (PlainKeys(), PlainKeys(supabase=roots), KeyEncryptor(LIB, "k1", supabase=roots)):
        assert box.decrypt(jwk, context=b"oauth_signing_keys:kid") == jwk
        assert box.rewrap(jwk, context=SID.bytes, first_party=True) is None


def test_settings_build_the_box_and_refuse_a_current_id_that_is_not_configured() -> None:
    base = {"OAUTH_SESSIONS_ISSUER": "https://issuer.example",
            "OAUTH_SESSIONS_SUPABASE_ENCRYPTION_KEYS": {"root-a": _b64url(ROOT_A)}}
    box = secret_box(load_settings(base))
    stored = supabase_form(HMAC_KEY, row_id=SID, root=ROOT_A, key_id="root-a")
    assert box.decrypt(stored, context=SID.bytes) == HMAC_KEY
    with pytest.raises(ConfigurationError, match="SUPABASE_ENCRYPTION_KEY_ID must name one of"):
        load_settings({**base, "OAUTH_SESSIONS_SUPABASE_ENCRYPTION_KEY_ID": "root-b"})
    with pytest.raises(ConfigurationError, match="SUPABASE_ENCRYPTION_KEY_ID must name one of"):
        load_settings({"OAUTH_SESSIONS_ISSUER": "https://issuer.example",
                       "OAUTH_SESSIONS_SUPABASE_ENCRYPTION_KEY_ID": "root-a"})


# -- the rewrap rule, value by value --------------------------------------------------------
OLD_JSON = supabase_form(HMAC_KEY, row_id=SID, root=ROOT_A, key_id="root-a")


def _box(*, current: str = "k2", supabase_current: str | None = None,
         supabase: bool = True) -> KeyEncryptor:
    roots = SupabaseKeys({"root-a": ROOT_A, "root-b": ROOT_B}, supabase_current) if supabase else None
    return KeyEncryptor(LIB, current, supabase=roots)


def _form(stored: str | None) -> str:
    if stored is None:
        return "untouched"
    if stored.startswith("enc1:"):
        return stored.split(":")[0] + ":" + stored.split(":")[1]
    if stored.startswith("{"):
        return "supabase:" + json.loads(stored)["key_id"]
    return "plain"


@pytest.mark.parametrize(("stored", "first_party", "managed", "supabase_current", "expected"), [
    # Supabase's form never becomes enc1; it moves only to Supabase's current root key.
    (OLD_JSON, False, False, None, "untouched"),
    (OLD_JSON, True, True, None, "untouched"),
    (OLD_JSON, True, False, "root-a", "untouched"),
    (OLD_JSON, True, True, "root-b", "supabase:root-b"),
    (OLD_JSON, False, False, "root-b", "supabase:root-b"),
    # enc1 only this library wrote: it stays enc1, under the current library key.
    ("enc1", False, False, None, "enc1:k2"),
    ("enc1", True, True, "root-b", "enc1:k2"),
    # A plain key of an OAuth client's session: only this library reads it.
    (HMAC_KEY, False, True, "root-b", "enc1:k2"),
    (HMAC_KEY, False, False, None, "enc1:k2"),
    # A plain first-party key: whoever signed the user in reads it too.
    (HMAC_KEY, True, True, "root-b", "supabase:root-b"),
    (HMAC_KEY, True, False, "root-b", "supabase:root-b"),
    (HMAC_KEY, True, True, None, "untouched"),
    (HMAC_KEY, True, False, None, "enc1:k2"),
])
def test_rewrap_writes_only_what_the_other_reader_reads(
    stored: str, first_party: bool, managed: bool, supabase_current: str | None, expected: str,
) -> None:
    box = _box(supabase_current=supabase_current)
    if stored == "enc1":
        stored = KeyEncryptor(LIB, "k1").encrypt(HMAC_KEY, context=SID.bytes)
    new = box.rewrap(stored, context=SID.bytes, first_party=first_party, managed=managed)
    assert _form(new) == expected
    if new is not None:
        assert box.decrypt(new, context=SID.bytes) == HMAC_KEY
        if new.startswith("{"):
            assert open_supabase_form(new, row_id=SID,
                                      roots={"root-a": ROOT_A, "root-b": ROOT_B}) == HMAC_KEY
        assert box.rewrap(new, context=SID.bytes, first_party=first_party, managed=managed) is None


def test_plain_keys_box_moves_only_supabase_form() -> None:
    box = PlainKeys(supabase=SupabaseKeys({"root-a": ROOT_A, "root-b": ROOT_B}, "root-b"))
    assert box.rewrap(HMAC_KEY, context=SID.bytes, first_party=True) is None
    assert box.rewrap(HMAC_KEY, context=SID.bytes) is None
    assert _form(box.rewrap(OLD_JSON, context=SID.bytes)) == "supabase:root-b"
    assert PlainKeys().rewrap(OLD_JSON, context=SID.bytes) is None


# -- the store, on SQLite and PostgreSQL ------------------------------------------------------


def _supabase_v0_token(session_id: uuid.UUID, counter: int, key: bytes) -> str:
    body = b"\x00" + session_id.bytes + bytes([counter])  # counters below 128: one varint byte
    body += hmac.new(key, body, hashlib.sha256).digest()[:16]
    return _b64url(body + hashlib.sha256(body).digest()[:4])


def test_a_session_keyed_in_supabase_form_refreshes_and_keeps_its_form(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A grant Supabase Auth's OAuth server made under database encryption keeps working."""
    roots = {"root-a": _b64url(ROOT_A)}
    store = SessionStore(engine, make_settings(supabase_encryption_keys=roots))
    user, client = add_user(engine), add_client(engine)
    session = new_session(store, user, client, now=T0).session
    _set_key(engine, session.id, supabase_form(HMAC_KEY, row_id=session.id, root=ROOT_A,
                                               key_id="root-a"))
    stored = _key(engine, session.id)
    token = _supabase_v0_token(session.id, 0, key_bytes(HMAC_KEY))
    lookup = store.find_refresh_session(token)
    assert lookup is not None and lookup.session.id == session.id
    rotated = store.rotate(token, client_id=client, now=T0)
    assert rotated.session.counter == 1
    assert store.rotate(rotated.refresh_token, client_id=client, now=T0).session.counter == 2
    assert _key(engine, session.id) == stored  # refresh never rewrites the key
    # Without the root keys the same row cannot be used, and nothing is written.
    before = _row(engine, session.id)
    blind = SessionStore(engine, make_settings())
    with caplog.at_level("ERROR"):  # introspection's read-only lookup says why, as rotation does
        assert blind.find_refresh_session(token) is None
    assert "SUPABASE_ENCRYPTION_KEYS" in caplog.text and HMAC_KEY not in caplog.text
    caplog.clear()
    with caplog.at_level("ERROR"), pytest.raises(InvalidRefreshToken):
        blind.rotate(_supabase_v0_token(session.id, 2, key_bytes(HMAC_KEY)), client_id=client,
                     now=T0)
    assert "SUPABASE_ENCRYPTION_KEYS" in caplog.text and HMAC_KEY not in caplog.text
    assert _row(engine, session.id) == before


def test_rewrap_keys_keeps_each_session_readable_by_its_other_reader(engine: Engine) -> None:
    user, client = add_user(engine), add_client(engine)
    plain = SessionStore(engine, make_settings())
    fp_plain = new_session(plain, user, None, now=T0).session
    fp_json = new_session(plain, user, None, now=T0).session
    oauth_json = new_session(plain, user, client, now=T0).session
    oauth_plain = new_session(plain, user, client, now=T0).session
    keys = {}
    for s in (fp_plain, fp_json, oauth_json, oauth_plain):
        keys[s.id] = _key(engine, s.id)
    for s in (fp_json, oauth_json):
        _set_key(engine, s.id, supabase_form(keys[s.id], row_id=s.id, root=ROOT_A, key_id="root-a"))
    rows = {s.id: _row(engine, s.id) for s in (fp_plain, fp_json, oauth_json)}
    roots = {"root-a": _b64url(ROOT_A), "root-b": _b64url(ROOT_B)}
    lib = {"k1": _b64url(bytes(32))}

    # Library keys only: only the OAuth session's plain key moves, to enc1.
    store = SessionStore(engine, make_settings(encryption_keys=lib, encryption_key_id="k1",
                                               supabase_encryption_keys=roots))
    assert store.rewrap_keys(batch_size=1) == 1
    assert _key(engine, oauth_plain.id).startswith("enc1:k1:")
    assert {sid: _row(engine, sid) for sid in rows} == rows
    # Even told to include first-party sessions, Supabase's form never becomes enc1.
    assert store.rewrap_keys(first_party=True) == 1  # the plain first-party key (standalone)
    assert _key(engine, fp_plain.id).startswith("enc1:k1:")
    assert _row(engine, fp_json.id) == rows[fp_json.id]
    assert _row(engine, oauth_json.id) == rows[oauth_json.id]

    # Supabase's root key rotated: its form moves to the new root key, still its form.
    rotated = SessionStore(engine, make_settings(
        encryption_keys=lib, encryption_key_id="k1", supabase_encryption_keys=roots,
        supabase_encryption_key_id="root-b"))
    assert rotated.rewrap_keys() == 1  # the OAuth session's; first-party ones left by default
    assert _row(engine, fp_json.id) == rows[fp_json.id]
    assert json.loads(_key(engine, oauth_json.id))["key_id"] == "root-b"
    assert rotated.rewrap_keys(first_party=True) == 1
    for s in (fp_json, oauth_json):
        assert open_supabase_form(_key(engine, s.id), row_id=s.id,
                                  roots={"root-a": ROOT_A, "root-b": ROOT_B}) == keys[s.id]
    assert rotated.rewrap_keys(first_party=True) == 0


def test_on_a_supabase_managed_database_a_plain_first_party_key_stays_plain(
    pg_engine: Engine,
) -> None:
    user, client = add_user(pg_engine), add_client(pg_engine)
    plain = SessionStore(pg_engine, make_settings())
    first_party = new_session(plain, user, None, now=T0).session
    oauth = new_session(plain, user, client, now=T0).session
    before = _row(pg_engine, first_party.id)
    lib = {"k1": _b64url(bytes(32))}
    with pg_engine.begin() as conn:
        conn.execute(text("CREATE TABLE auth.schema_migrations (version varchar(14) PRIMARY KEY)"))
    try:
        store = SessionStore(pg_engine, make_settings(encryption_keys=lib, encryption_key_id="k1"))
        assert store.rewrap_keys(first_party=True) == 1
        assert _row(pg_engine, first_party.id) == before
        assert _key(pg_engine, oauth.id).startswith("enc1:k1:")
        # Given Supabase's current root key, the first-party key is written in its form.
        roots = {"root-b": _b64url(ROOT_B)}
        with_root = SessionStore(pg_engine, make_settings(
            encryption_keys=lib, encryption_key_id="k1", supabase_encryption_keys=roots,
            supabase_encryption_key_id="root-b"))
        assert with_root.rewrap_keys(first_party=True) == 1
        plain_key = str(before[SESSIONS.c.keys().index("refresh_token_hmac_key")])
        assert open_supabase_form(_key(pg_engine, first_party.id), row_id=first_party.id,
                                  roots={"root-b": ROOT_B}) == plain_key
    finally:
        with pg_engine.begin() as conn:
            conn.execute(text("DROP TABLE auth.schema_migrations"))


def test_eight_threads_refreshing_a_supabase_keyed_session_advance_once(pg_engine: Engine) -> None:
    """Decrypting Supabase's form per refresh changes nothing in the compare-and-swap."""
    roots = {"root-a": _b64url(ROOT_A)}
    store = SessionStore(pg_engine, make_settings(supabase_encryption_keys=roots,
                                                  refresh_token_reuse_interval=60))
    user, client = add_user(pg_engine), add_client(pg_engine)
    session = new_session(store, user, client, now=T0).session
    _set_key(pg_engine, session.id, supabase_form(HMAC_KEY, row_id=session.id, root=ROOT_A,
                                                  key_id="root-a"))
    token = _supabase_v0_token(session.id, 0, key_bytes(HMAC_KEY))
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
    assert errors == [] and len(results) == 8 and len(set(results)) == 1
    with pg_engine.connect() as conn:
        assert conn.execute(select(SESSIONS.c.refresh_token_counter)
                            .where(SESSIONS.c.id == session.id)).scalar_one() == 1
