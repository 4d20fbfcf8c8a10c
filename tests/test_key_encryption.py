"""Encryption at rest of per-session keys: bound to the row, rotatable, never leaking keys."""

from __future__ import annotations

import base64
import uuid

import pytest

from oauth_sessions.core.refresh_tokens import generate_hmac_key
from oauth_sessions.storage.key_encryption import (
    KeyConfigurationError,
    KeyDecryptionError,
    KeyEncryptor,
    PlainKeys,
    SecretBox,
)

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
K1_TEXT = base64.urlsafe_b64encode(K1).rstrip(b"=").decode()
ROW = uuid.UUID("7f0c6a3e-2b1d-4c5e-9f8a-0123456789ab").bytes
OTHER_ROW = uuid.UUID("00000000-0000-4000-8000-000000000001").bytes
SECRET = generate_hmac_key()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_round_trip() -> None:
    box = KeyEncryptor({"k1": K1}, "k1")
    stored = box.encrypt(SECRET, context=ROW)
    assert stored.startswith("enc1:k1:")
    assert SECRET not in stored
    assert box.decrypt(stored, context=ROW) == SECRET


def test_each_encryption_uses_a_fresh_nonce() -> None:
    box = KeyEncryptor({"k1": K1}, "k1")
    assert box.encrypt(SECRET, context=ROW) != box.encrypt(SECRET, context=ROW)


def test_key_given_as_base64url_text_is_the_same_key() -> None:
    stored = KeyEncryptor({"k1": K1}, "k1").encrypt(SECRET, context=ROW)
    assert KeyEncryptor({"k1": K1_TEXT}, "k1").decrypt(stored, context=ROW) == SECRET
    assert KeyEncryptor({"k1": K1_TEXT + "="}, "k1").decrypt(stored, context=ROW) == SECRET


def test_value_moved_to_another_row_fails() -> None:
    box = KeyEncryptor({"k1": K1}, "k1")
    stored = box.encrypt(SECRET, context=ROW)
    with pytest.raises(KeyDecryptionError, match="k1"):
        box.decrypt(stored, context=OTHER_ROW)


def test_tampering_fails_for_every_byte() -> None:
    box = KeyEncryptor({"k1": K1}, "k1")
    stored = box.encrypt(SECRET, context=ROW)
    head, body = stored.rsplit(":", 1)
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    for position in range(len(raw)):
        mutated = bytearray(raw)
        mutated[position] ^= 0x01
        with pytest.raises(KeyDecryptionError):
            box.decrypt(f"{head}:{_b64(bytes(mutated))}", context=ROW)
    for end in range(len(stored)):
        truncated = stored[:end]
        if not truncated.startswith("enc1:"):
            continue  # shorter prefixes are plain values by definition
        with pytest.raises(KeyDecryptionError):
            box.decrypt(truncated, context=ROW)


def test_relabelling_with_another_configured_key_id_fails() -> None:
    box = KeyEncryptor({"k1": K1, "k2": K1}, "k1")  # same material, two ids
    stored = box.encrypt(SECRET, context=ROW)
    with pytest.raises(KeyDecryptionError, match="k2"):
        box.decrypt(stored.replace("enc1:k1:", "enc1:k2:"), context=ROW)


def test_unknown_key_id_names_the_id_and_no_key_material() -> None:
    stored = KeyEncryptor({"old-key": K1}, "old-key").encrypt(SECRET, context=ROW)
    box = KeyEncryptor({"k2": K2}, "k2")
    with pytest.raises(KeyDecryptionError) as excinfo:
        box.decrypt(stored, context=ROW)
    message = str(excinfo.value)
    assert "old-key" in message
    for material in (K1.hex(), K2.hex(), _b64(K1), _b64(K2), SECRET, stored.rsplit(":", 1)[1]):
        assert material not in message
    assert _b64(K2) not in repr(box) and K2.hex() not in repr(box)


@pytest.mark.parametrize(
    "damaged", ["enc1:", "enc1:k1", "enc1::abc", "enc1:bad id:AAAA", "enc1:k1:!!"]
)
def test_damaged_values_raise_decryption_error(damaged: str) -> None:
    with pytest.raises(KeyDecryptionError):
        KeyEncryptor({"k1": K1}, "k1").decrypt(damaged, context=ROW)


def test_plain_values_of_older_rows_pass_through() -> None:
    box = KeyEncryptor({"k1": K1}, "k1")
    assert box.decrypt(SECRET, context=ROW) == SECRET
    assert box.needs_rewrap(SECRET)


def test_supabase_encrypted_values_are_refused_not_passed_through() -> None:
    gotrue = '{"key_id":"k1","alg":"aes-gcm-hkdf","data":"AAAA","nonce":"AAAAAAAAAAAAAAAA"}'
    with pytest.raises(KeyDecryptionError, match="Supabase"):
        KeyEncryptor({"k1": K1}, "k1").decrypt(gotrue, context=ROW)


def test_rotation() -> None:
    under_k1 = KeyEncryptor({"k1": K1}, "k1").encrypt(SECRET, context=ROW)
    rotated = KeyEncryptor({"k1": K1, "k2": K2}, "k2")
    under_k2 = rotated.encrypt(SECRET, context=ROW)
    assert under_k2.startswith("enc1:k2:")
    assert rotated.decrypt(under_k1, context=ROW) == SECRET
    assert rotated.decrypt(under_k2, context=ROW) == SECRET
    assert rotated.needs_rewrap(under_k1)
    assert not rotated.needs_rewrap(under_k2)
    rewrapped = rotated.encrypt(rotated.decrypt(under_k1, context=ROW), context=ROW)
    assert not rotated.needs_rewrap(rewrapped)
    assert KeyEncryptor({"k2": K2}, "k2").decrypt(rewrapped, context=ROW) == SECRET


def test_plain_keys_has_the_same_interface_and_stores_plaintext() -> None:
    boxes: list[SecretBox] = [PlainKeys(), KeyEncryptor({"k1": K1}, "k1")]
    for box in boxes:
        assert box.decrypt(box.encrypt(SECRET, context=ROW), context=ROW) == SECRET
    plain = PlainKeys()
    assert plain.encrypt(SECRET, context=ROW) == SECRET
    assert not plain.needs_rewrap(SECRET)


def test_plain_keys_refuses_encrypted_values_naming_the_key_id() -> None:
    stored = KeyEncryptor({"k1": K1}, "k1").encrypt(SECRET, context=ROW)
    with pytest.raises(KeyDecryptionError, match="k1"):
        PlainKeys().decrypt(stored, context=ROW)


def test_generated_application_key_is_accepted() -> None:
    key = KeyEncryptor.generate_key()
    box = KeyEncryptor({"new": key}, "new")
    assert box.decrypt(box.encrypt(SECRET, context=ROW), context=ROW) == SECRET


@pytest.mark.parametrize(
    ("keys", "current", "message"),
    [
        ({}, "k1", "at least one"),
        ({"k1": K1}, "k2", "current key id 'k2' is not among"),
        ({"": K1}, "", "1 to 32 characters"),
        ({"a" * 33: K1}, "a" * 33, "1 to 32 characters"),
        ({"k:1": K1}, "k:1", "1 to 32 characters"),
        ({"k 1": K1}, "k 1", "1 to 32 characters"),
        ({"k1": bytes(16)}, "k1", "is 16 bytes; AES-256 needs exactly 32"),
        ({"k1": K1 + b"\x00"}, "k1", "is 33 bytes"),
        ({"k1": K1.hex()}, "k1", "is 48 bytes"),
        ({"k1": "not base64!"}, "k1", "not base64url"),
        ({"k1": base64.b64encode(b"\xfb" * 32).decode()}, "k1", "not base64url"),
        ({"k1": 12345}, "k1", "must be bytes or base64url text"),
    ],
)
def test_bad_configuration_says_what_is_allowed(
    keys: dict[str, object], current: str, message: str
) -> None:
    with pytest.raises(KeyConfigurationError, match=message) as excinfo:
        KeyEncryptor(keys, current)  # type: ignore[arg-type]
    assert K1.hex() not in str(excinfo.value)


def test_context_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        KeyEncryptor({"k1": K1}, "k1").encrypt(SECRET, context="row")  # type: ignore[arg-type]
