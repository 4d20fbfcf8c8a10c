"""Optional encryption at rest of per-row secrets (``refresh_token_hmac_key``, signing JWKs).

A database dump or a read-only SQL injection should not hand out the keys that mint refresh
tokens. When the host configures application keys, each secret is stored as::

    "enc1:<key_id>:" + base64url_nopad(nonce (12) || AES-256-GCM ciphertext and tag)

The associated data binds the value to the format version, the key id and a caller-given
``context`` (the store passes the session id bytes), so a ciphertext copied to another row, or
re-labelled with another key id, fails authentication instead of decrypting.

Both classes here have one interface, :class:`SecretBox`, so the store never branches on
whether encryption is configured: :class:`PlainKeys` when it is not, :class:`KeyEncryptor`
when it is. Values without the ``enc1:`` prefix are older plaintext rows and keep working;
:meth:`needs_rewrap` lets a background job find them (and values under retired key ids) and
re-encrypt them under the current key.

Nonces are 96 random bits, so one key should encrypt well under 2**32 values (NIST SP 800-38D
section 8.3) before it is rotated: one encryption per session created, i.e. billions of
sessions, after which adding a new current key id resets the count.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "ENCRYPTED_PREFIX",
    "KeyConfigurationError",
    "KeyDecryptionError",
    "KeyEncryptor",
    "PlainKeys",
    "SecretBox",
    "is_supabase_encrypted",
]

ENCRYPTED_PREFIX: Final = "enc1:"
_KEY_LENGTH: Final = 32
_NONCE_LENGTH: Final = 12
_GCM_TAG_LENGTH: Final = 16
_KEY_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
_BASE64URL_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]*={0,2}")


class KeyConfigurationError(ValueError):
    """The application keys given to :class:`KeyEncryptor` are unusable; says what is allowed."""


class KeyDecryptionError(ValueError):
    """A stored value cannot be decrypted: unknown key id, damaged, or moved to another row.

    The message names the key id (so an operator knows which key is missing) but never the
    key material nor the stored value.
    """


class SecretBox(Protocol):
    """What the store needs from a key wrapper, encrypted or not."""

    def encrypt(self, plaintext: str, *, context: bytes) -> str: ...

    def decrypt(self, stored: str, *, context: bytes) -> str: ...

    def needs_rewrap(self, stored: str) -> bool: ...


def is_supabase_encrypted(stored: str) -> bool:
    """Whether ``stored`` is in Supabase Auth's encrypted form: a JSON object such as
    ``{"key_id": ..., "alg": "aes-gcm-hkdf", "data": ..., "nonce": ...}``.

    A plain key is base64url and this library's form starts with ``enc1:``, so a leading
    ``{`` is unambiguous.
    """
    return stored.lstrip().startswith("{")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict base64url decode (padding optional); raises ``ValueError`` on anything else."""
    if not _BASE64URL_PATTERN.fullmatch(text):
        raise ValueError("not base64url")
    unpadded = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def _associated_data(key_id: str, context: bytes) -> bytes:
    # Key ids cannot contain ":" so the concatenation is unambiguous.
    return f"{ENCRYPTED_PREFIX}{key_id}:".encode("ascii") + context


def _check_context(context: bytes) -> None:
    if not isinstance(context, bytes):
        raise TypeError("context must be bytes (the store passes the session id bytes)")


class KeyEncryptor:
    """AES-256-GCM wrapper over a set of application keys, one of them current.

    Keys are parsed and their cipher objects built once, here, so encrypting or decrypting a
    value costs one AES-GCM call and no key handling per request.
    """

    __slots__ = ("_ciphers", "_current_id")

    def __init__(self, keys: Mapping[str, bytes | str], current_key_id: str) -> None:
        if not keys:
            raise KeyConfigurationError("at least one encryption key is required")
        ciphers: dict[str, AESGCM] = {}
        for key_id, key in keys.items():
            _check_key_id(key_id)
            ciphers[key_id] = AESGCM(_parse_key(key_id, key))
        if current_key_id not in ciphers:
            raise KeyConfigurationError(
                f"current key id {current_key_id!r} is not among the configured key ids "
                f"{sorted(ciphers)}"
            )
        self._ciphers: Final = ciphers
        self._current_id: Final = current_key_id

    def __repr__(self) -> str:
        return f"KeyEncryptor(key_ids={sorted(self._ciphers)}, current={self._current_id!r})"

    @staticmethod
    def generate_key() -> str:
        """A new application key as unpadded base64url text, ready for configuration."""
        return _b64encode(secrets.token_bytes(_KEY_LENGTH))

    @property
    def current_key_id(self) -> str:
        return self._current_id

    def encrypt(self, plaintext: str, *, context: bytes) -> str:
        """Encrypt under the current key, bound to ``context``."""
        _check_context(context)
        nonce = secrets.token_bytes(_NONCE_LENGTH)
        sealed = self._ciphers[self._current_id].encrypt(
            nonce, plaintext.encode("utf-8"), _associated_data(self._current_id, context)
        )
        return f"{ENCRYPTED_PREFIX}{self._current_id}:{_b64encode(nonce + sealed)}"

    def decrypt(self, stored: str, *, context: bytes) -> str:
        """Return the plaintext of ``stored``; plaintext values of older rows pass unchanged."""
        _check_context(context)
        if not stored.startswith(ENCRYPTED_PREFIX):
            if stored.startswith("{"):
                # Supabase Auth's own "aes-gcm-hkdf" JSON format: passing it through as a
                # plain key would only fail later, further from the cause.
                raise KeyDecryptionError(
                    "value is encrypted in Supabase Auth's format, which this library does "
                    "not read; store it decrypted or re-encrypt it with enc1"
                )
            return stored
        key_id, sep, body = stored[len(ENCRYPTED_PREFIX) :].partition(":")
        if not sep or not _KEY_ID_PATTERN.fullmatch(key_id):
            raise KeyDecryptionError("encrypted value is damaged (no valid key id)")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise KeyDecryptionError(
                f"encrypted value names key id {key_id!r}, which is not configured"
            )
        try:
            raw = _b64decode(body)
        except ValueError:
            raise KeyDecryptionError(
                f"encrypted value under key id {key_id!r} is damaged (not base64url)"
            ) from None
        if len(raw) < _NONCE_LENGTH + _GCM_TAG_LENGTH:
            raise KeyDecryptionError(f"encrypted value under key id {key_id!r} is truncated")
        try:
            plaintext = cipher.decrypt(
                raw[:_NONCE_LENGTH], raw[_NONCE_LENGTH:], _associated_data(key_id, context)
            )
        except InvalidTag:
            raise KeyDecryptionError(
                f"encrypted value under key id {key_id!r} failed authentication: it was "
                "altered, belongs to another row, or the key with this id has changed"
            ) from None
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:  # authenticated, so only reachable with a foreign writer
            raise KeyDecryptionError(
                f"encrypted value under key id {key_id!r} is not UTF-8 text"
            ) from None

    def needs_rewrap(self, stored: str) -> bool:
        """True for plaintext values and values under a key id other than the current one.

        False for a value in Supabase Auth's encrypted form (a JSON object, ``aes-gcm-hkdf``):
        Supabase Auth reads that session, and it cannot read ``enc1:``.
        """
        if is_supabase_encrypted(stored):
            return False
        if not stored.startswith(ENCRYPTED_PREFIX):
            return True
        key_id = stored[len(ENCRYPTED_PREFIX) :].partition(":")[0]
        return key_id != self._current_id


class PlainKeys:
    """The no-encryption :class:`SecretBox`: values are stored as they are.

    Used when no application key is configured so callers never branch. Refuses encrypted
    values rather than returning ciphertext as if it were a key.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "PlainKeys()"

    def encrypt(self, plaintext: str, *, context: bytes) -> str:
        _check_context(context)
        return plaintext

    def decrypt(self, stored: str, *, context: bytes) -> str:
        _check_context(context)
        if stored.startswith(ENCRYPTED_PREFIX):
            key_id = stored[len(ENCRYPTED_PREFIX) :].partition(":")[0]
            raise KeyDecryptionError(
                f"value is encrypted under key id {key_id!r} but no encryption keys are configured"
            )
        return stored

    def needs_rewrap(self, stored: str) -> bool:
        """Always False: with no key configured there is nothing to rewrap to."""
        return False


def _check_key_id(key_id: object) -> None:
    if not isinstance(key_id, str) or not _KEY_ID_PATTERN.fullmatch(key_id):
        raise KeyConfigurationError(
            f"encryption key id {key_id!r} is invalid: use 1 to 32 characters of "
            "A-Z, a-z, 0-9, '_' and '-'"
        )


def _parse_key(key_id: str, key: object) -> bytes:
    if isinstance(key, str):
        try:
            raw = _b64decode(key)
        except ValueError:
            raise KeyConfigurationError(
                f"encryption key {key_id!r} is not base64url text; give 32 bytes as bytes or "
                "as base64url (KeyEncryptor.generate_key() makes one)"
            ) from None
    elif isinstance(key, bytes):
        raw = key
    else:
        raise KeyConfigurationError(
            f"encryption key {key_id!r} must be bytes or base64url text, not {type(key).__name__}"
        )
    if len(raw) != _KEY_LENGTH:
        raise KeyConfigurationError(
            f"encryption key {key_id!r} is {len(raw)} bytes; AES-256 needs exactly "
            f"{_KEY_LENGTH} (KeyEncryptor.generate_key() makes one)"
        )
    return raw
