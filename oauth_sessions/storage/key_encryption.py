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

Supabase Auth's own encrypted form (its "database encryption"), a JSON object::

    {"key_id": "<root key id>", "alg": "aes-gcm-hkdf", "data": "<std base64>", "nonce": "<std base64>"}

is read through :class:`SupabaseKeys`, given Supabase Auth's root keys: AES-256-GCM with no
associated data, under a key derived by HKDF-SHA256 (no salt) from the named root key with the
row's id, as canonical UUID text, for info. The plaintext is the base64url HMAC key. Which form
:meth:`SecretBox.rewrap` writes follows who else reads the row (see
``docs/guides/supabase.md``): a value in Supabase's form is never turned into ``enc1:``.

Nonces are 96 random bits, so one key should encrypt well under 2**32 values (NIST SP 800-38D
section 8.3) before it is rotated: one encryption per session created, i.e. billions of
sessions, after which adding a new current key id resets the count.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import uuid
from collections.abc import Mapping
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..core.settings import Settings

__all__ = [
    "ENCRYPTED_PREFIX",
    "SUPABASE_ALG",
    "KeyConfigurationError",
    "KeyDecryptionError",
    "KeyEncryptor",
    "PlainKeys",
    "SecretBox",
    "SupabaseKeys",
    "is_supabase_encrypted",
    "secret_box",
]

ENCRYPTED_PREFIX: Final = "enc1:"
_KEY_LENGTH: Final = 32
_NONCE_LENGTH: Final = 12
_GCM_TAG_LENGTH: Final = 16
_KEY_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
_BASE64URL_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]*={0,2}")
SUPABASE_ALG: Final = "aes-gcm-hkdf"
_SUPABASE_FIELDS: Final = frozenset({"key_id", "alg", "data", "nonce"})
_SUPABASE_KEY_ID_PATTERN: Final = re.compile(r"[\x21-\x7e]{1,64}")


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

    def rewrap(self, stored: str, *, context: bytes, first_party: bool = False,
               managed: bool = False) -> str | None:
        """The value to store in place of ``stored``, or ``None`` to leave the row as it is.

        ``first_party``: the row is a first-party session (``oauth_client_id`` NULL), which
        whoever signed the user in reads too; ``managed``: Supabase Auth manages the database.
        """
        ...


def is_supabase_encrypted(stored: str) -> bool:
    """Whether ``stored`` is in Supabase Auth's encrypted form: a JSON object such as
    ``{"key_id": ..., "alg": "aes-gcm-hkdf", "data": ..., "nonce": ...}``.

    A plain key is base64url and this library's form starts with ``enc1:``; other JSON (a
    signing key's JWK, whose ``alg`` is a JOSE name) is not this form, so the ``alg`` decides.
    """
    if not stored.startswith("{"):
        return False
    try:
        value = json.loads(stored)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("alg") == SUPABASE_ALG


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

    __slots__ = ("_ciphers", "_current_id", "_supabase")

    def __init__(self, keys: Mapping[str, bytes | str], current_key_id: str, *,
                 supabase: SupabaseKeys | None = None) -> None:
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
        self._supabase: Final = supabase

    def __repr__(self) -> str:
        return (f"KeyEncryptor(key_ids={sorted(self._ciphers)}, current={self._current_id!r}, "
                f"supabase={self._supabase!r})")

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
            if is_supabase_encrypted(stored):
                return _supabase_decrypt(self._supabase, stored, context)
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
        if stored.startswith("{"):
            return False
        if not stored.startswith(ENCRYPTED_PREFIX):
            return True
        key_id = stored[len(ENCRYPTED_PREFIX) :].partition(":")[0]
        return key_id != self._current_id

    def rewrap(self, stored: str, *, context: bytes, first_party: bool = False,
               managed: bool = False) -> str | None:
        """The form follows who reads the row (``docs/guides/supabase.md``, key formats):

        * Supabase's JSON form stays in it: re-encrypted under Supabase's current root key
          when one is configured and the value is under another, else left alone; never
          ``enc1:``, which Supabase Auth cannot read;
        * ``enc1:`` only this library wrote and reads: re-encrypted under the current key id
          when it is under another;
        * a plain key of an OAuth client's session: ``enc1:``;
        * a plain key of a first-party session (Supabase Auth's, or the host's): Supabase's
          form when a current Supabase root key is configured; left plain on a database
          Supabase Auth manages without one; ``enc1:`` only on a database nobody else reads.
        """
        _check_context(context)
        if is_supabase_encrypted(stored):
            return _supabase_rewrap(self._supabase, stored, context)
        if stored.startswith("{"):  # JSON of some other writer: not ours to rewrite
            return None
        if stored.startswith(ENCRYPTED_PREFIX):
            if not self.needs_rewrap(stored):
                return None
            return self.encrypt(self.decrypt(stored, context=context), context=context)
        if first_party:
            if self._supabase is not None and self._supabase.current_key_id is not None:
                return self._supabase.encrypt(stored, row_id=_row_id(context))
            if managed:
                return None
        return self.encrypt(stored, context=context)


class PlainKeys:
    """The no-encryption :class:`SecretBox`: values are stored as they are.

    Used when no application key is configured so callers never branch. Refuses encrypted
    values rather than returning ciphertext as if it were a key.
    """

    __slots__ = ("_supabase",)

    def __init__(self, *, supabase: SupabaseKeys | None = None) -> None:
        self._supabase: Final = supabase

    def __repr__(self) -> str:
        return f"PlainKeys(supabase={self._supabase!r})"

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
        if is_supabase_encrypted(stored):
            return _supabase_decrypt(self._supabase, stored, context)
        return stored

    def needs_rewrap(self, stored: str) -> bool:
        """Always False: with no key configured there is nothing to rewrap to."""
        return False

    def rewrap(self, stored: str, *, context: bytes, first_party: bool = False,
               managed: bool = False) -> str | None:
        """Only Supabase's form moves (to Supabase's current root key); nothing becomes ``enc1:``."""
        _check_context(context)
        if is_supabase_encrypted(stored):
            return _supabase_rewrap(self._supabase, stored, context)
        return None


class SupabaseKeys:
    """Supabase Auth's database-encryption root keys, to read (and write) its JSON form.

    ``keys`` maps each root key id to the key as Supabase Auth is configured with it (32 bytes,
    base64url; its ``DB_ENCRYPTION_DECRYPTION_KEYS``); ``current_key_id`` (its
    ``DB_ENCRYPTION_ENCRYPTION_KEY_ID``) is the one new values are written under, or ``None``
    to only read. Each value's key is derived per row, so nothing per-row is cached here.
    """

    __slots__ = ("_current_id", "_roots")

    def __init__(self, keys: Mapping[str, bytes | str], current_key_id: str | None = None) -> None:
        if not keys:
            raise KeyConfigurationError("at least one Supabase root key is required")
        roots: dict[str, bytes] = {}
        for key_id, key in keys.items():
            if not isinstance(key_id, str) or not _SUPABASE_KEY_ID_PATTERN.fullmatch(key_id):
                raise KeyConfigurationError(
                    f"Supabase root key id {key_id!r} is invalid: use 1 to 64 printable ASCII "
                    "characters without spaces, as configured in Supabase Auth"
                )
            roots[key_id] = _parse_key(key_id, key)
        if current_key_id is not None and current_key_id not in roots:
            raise KeyConfigurationError(
                f"current Supabase root key id {current_key_id!r} is not among the configured "
                f"ids {sorted(roots)}"
            )
        self._roots: Final = roots
        self._current_id: Final = current_key_id

    def __repr__(self) -> str:
        return f"SupabaseKeys(key_ids={sorted(self._roots)}, current={self._current_id!r})"

    @property
    def current_key_id(self) -> str | None:
        return self._current_id

    def _cipher(self, key_id: str, row_id: uuid.UUID) -> AESGCM:
        derived = HKDF(algorithm=SHA256(), length=_KEY_LENGTH, salt=None,
                       info=str(row_id).encode("ascii")).derive(self._roots[key_id])
        return AESGCM(derived)

    def encrypt(self, plaintext: str, *, row_id: uuid.UUID) -> str:
        """Supabase's JSON form of ``plaintext`` for the row ``row_id``, under the current root key."""
        if self._current_id is None:
            raise KeyConfigurationError("no current Supabase root key id is configured")
        nonce = secrets.token_bytes(_NONCE_LENGTH)
        sealed = self._cipher(self._current_id, row_id).encrypt(nonce, plaintext.encode("utf-8"), None)
        return json.dumps({"key_id": self._current_id, "alg": SUPABASE_ALG,
                           "data": base64.b64encode(sealed).decode("ascii"),
                           "nonce": base64.b64encode(nonce).decode("ascii")},
                          separators=(",", ":"))

    def key_id_of(self, stored: str) -> str:
        """The root key id a value in Supabase's form names (after checking its shape)."""
        return _parse_supabase(stored)[0]

    def decrypt(self, stored: str, *, row_id: uuid.UUID) -> str:
        key_id, sealed, nonce = _parse_supabase(stored)
        if key_id not in self._roots:
            raise KeyDecryptionError(
                f"value in Supabase Auth's form names root key id {key_id!r}, which is not "
                "configured (OAUTH_SESSIONS_SUPABASE_ENCRYPTION_KEYS)"
            )
        try:
            plaintext = self._cipher(key_id, row_id).decrypt(nonce, sealed, None)
        except InvalidTag:
            raise KeyDecryptionError(
                f"value in Supabase Auth's form under root key id {key_id!r} failed "
                "authentication: it was altered, belongs to another row, or the root key differs"
            ) from None
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyDecryptionError(
                f"value in Supabase Auth's form under root key id {key_id!r} is not UTF-8 text"
            ) from None


def _parse_supabase(stored: str) -> tuple[str, bytes, bytes]:
    """(key id, ciphertext with tag, nonce) of a value in Supabase's JSON form, or a clear error."""
    try:
        value = json.loads(stored)
    except ValueError:
        raise KeyDecryptionError("value in Supabase Auth's form is damaged (not JSON)") from None
    if not isinstance(value, dict) or not set(value) <= _SUPABASE_FIELDS or any(
        not isinstance(value.get(name), str) for name in ("key_id", "alg", "data", "nonce")
    ):
        raise KeyDecryptionError(
            "value in Supabase Auth's form is damaged (needs key_id, alg, data and nonce as strings)"
        )
    if value["alg"] != SUPABASE_ALG:
        raise KeyDecryptionError(
            f"value in Supabase Auth's form uses alg {value['alg'][:32]!r}; only "
            f"{SUPABASE_ALG!r} is known"
        )
    key_id = value["key_id"]
    if not key_id:
        raise KeyDecryptionError("value in Supabase Auth's form is damaged (empty key_id)")
    try:
        sealed = base64.b64decode(value["data"], validate=True)
        nonce = base64.b64decode(value["nonce"], validate=True)
    except binascii.Error:
        raise KeyDecryptionError(
            f"value in Supabase Auth's form under root key id {key_id[:64]!r} is damaged "
            "(data or nonce not base64)"
        ) from None
    if len(nonce) != _NONCE_LENGTH or len(sealed) <= _GCM_TAG_LENGTH:
        raise KeyDecryptionError(
            f"value in Supabase Auth's form under root key id {key_id[:64]!r} is damaged "
            "(nonce not 12 bytes, or data shorter than a tag)"
        )
    return key_id, sealed, nonce


def _row_id(context: bytes) -> uuid.UUID:
    if len(context) != 16:
        raise KeyDecryptionError(
            "Supabase Auth's form is bound to a row id; this value's context is not a UUID"
        )
    return uuid.UUID(bytes=context)


def _supabase_decrypt(supabase: SupabaseKeys | None, stored: str, context: bytes) -> str:
    if supabase is None:
        raise KeyDecryptionError(
            "value is encrypted in Supabase Auth's form (aes-gcm-hkdf) and no Supabase root "
            "keys are configured: set OAUTH_SESSIONS_SUPABASE_ENCRYPTION_KEYS"
        )
    return supabase.decrypt(stored, row_id=_row_id(context))


def _supabase_rewrap(supabase: SupabaseKeys | None, stored: str, context: bytes) -> str | None:
    """Supabase's form under Supabase's current root key, or ``None`` (left as it is)."""
    if supabase is None or supabase.current_key_id is None:
        return None
    if supabase.key_id_of(stored) == supabase.current_key_id:
        return None
    row_id = _row_id(context)
    return supabase.encrypt(supabase.decrypt(stored, row_id=row_id), row_id=row_id)


def secret_box(settings: Settings) -> SecretBox:
    """The box the settings describe: the library's keys (or none) plus Supabase's root keys."""
    supabase = (SupabaseKeys(settings.supabase_encryption_keys, settings.supabase_encryption_key_id)
                if settings.supabase_encryption_keys else None)
    if settings.encryption_keys:
        return KeyEncryptor(settings.encryption_keys, settings.encryption_key_id or "",
                            supabase=supabase)
    return PlainKeys(supabase=supabase)


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
