"""The refresh-token codec: opaque, versioned, self-authenticating, never stored.

A refresh token names a session and the number of the one token of it that is current::

    "osr1_" + base64url_nopad(session_id (16) || counter (8, big-endian) || tag (32))

80 characters in all. The tag is HMAC-SHA256 under the session's ``refresh_token_hmac_key``
over ``b"osr1_" || session_id || counter``. Because the key and the counter live on the
``auth.sessions`` row, nothing about the token is stored: the store parses it, loads the
session's key by id, checks the tag in constant time and only then touches state (the
compare-and-swap on ``refresh_token_counter``).

A session bound to a DPoP key (RFC 9449 section 5) gets tokens of the same layout with the
prefix ``osb1_``, which is also their MAC label. The server learns that a session is bound from
the token itself, so refreshes of unbound sessions never look for a binding; and the mark cannot
be taken off: ``osr1_`` with the same body is another MAC input, whose tag does not verify.

Why this shape:

* The visible ``osr1_`` prefix lets secret scanners and log scrubbers recognise leaked tokens,
  and lets a later format be told apart without trial decoding.
* The MAC input starts with the same label, so a tag made for another message under the same
  row key can never verify here. Supabase Auth MACs its own refresh tokens under this very
  column with a message that starts with a ``0x00`` version byte; ours starts with ``o``.
* Every field has a fixed width, so the MAC input is unambiguous without length prefixes and
  parsing is one regular expression plus one base64 decode.
* The full 32-byte tag is kept: truncation to 16 bytes would still be safe (Supabase does it)
  but saves only 21 characters, and the token already fits the 100-character budget.

Supabase Auth's own refresh tokens ("version 0") are accepted as well, so that grants made by
Supabase Auth's OAuth server keep working after a move to this library (issue 17)::

    base64url_nopad(0x00 || session_id (16) || counter (uvarint) || tag (16) || checksum (4))

where the tag is the first 16 bytes of HMAC-SHA256 under the same session key over everything
before it and the checksum the first 4 bytes of SHA-256 over everything before it. The
checksum is checked during parsing, so garbage is shed before any lookup. Rotation always
answers in the ``osr1_`` format: the counter is the same column, so both formats follow the
same rules, and only the library's own format is ever issued.

Parsing is strict on purpose: there is exactly one spelling of each token. A lenient decoder
(padding, ``+``/``/``, non-zero trailing bits, whitespace) would give an attacker many strings
for one token, which breaks any later rate limit, log correlation or deny-list keyed on the
string, and hides fuzzing behind "valid" inputs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
import uuid
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "BOUND_PREFIX",
    "HMAC_KEY_LENGTH",
    "MAX_COUNTER",
    "MAX_TOKEN_LENGTH",
    "TOKEN_LENGTH",
    "TOKEN_PREFIX",
    "InvalidHmacKey",
    "MalformedRefreshToken",
    "ParsedRefreshToken",
    "encode_refresh_token",
    "generate_hmac_key",
    "key_bytes",
    "looks_like_refresh_token",
    "parse_refresh_token",
    "verify_tag",
]

TOKEN_PREFIX: Final = "osr1_"
"""Version prefix of the current format; also the domain label of the MAC input."""

HMAC_KEY_LENGTH: Final = 32
"""Bytes in a session's HMAC key (HMAC-SHA256 block-sized security, as Supabase generates)."""

MAX_COUNTER: Final = 2**63 - 1
"""``refresh_token_counter`` is a PostgreSQL ``bigint``; the token may never outgrow it."""

MAX_TOKEN_LENGTH: Final = 128
"""Upper bound for any version of the format: inputs longer than this are refused unread."""

BOUND_PREFIX: Final = "osb1_"
"""Prefix and MAC label of the tokens of a DPoP-bound session (same length as ``osr1_``)."""

_TAG_LENGTH: Final = 32
_LAYOUT: Final = struct.Struct(">16sQ32s")
_PAYLOAD_LENGTH: Final = _LAYOUT.size  # 56
_BODY_LENGTH: Final = -(-_PAYLOAD_LENGTH * 4 // 3)  # 75: unpadded base64 of 56 bytes
TOKEN_LENGTH: Final = len(TOKEN_PREFIX) + _BODY_LENGTH
"""Length of every ``osr1_`` token (80)."""

_MAC_LABEL: Final = TOKEN_PREFIX.encode("ascii")
_BOUND_LABEL: Final = BOUND_PREFIX.encode("ascii")
_COUNTER: Final = struct.Struct(">Q")
_URLSAFE_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _canonical_base64url(n_bytes: int) -> re.Pattern[str]:
    """Pattern for exactly the strings ``urlsafe_b64encode`` (unpadded) can produce.

    The last character of an unpadded encoding carries 2 or 4 unused low bits; an encoder
    always sets them to zero, so only some characters may end the string. Encoding that in the
    pattern rejects alternative spellings of the same bytes in the same pass that checks the
    alphabet and the length.
    """
    full, rest = divmod(n_bytes, 3)
    if rest == 0:
        return re.compile(f"[A-Za-z0-9_-]{{{full * 4}}}")
    unused_bits = 4 if rest == 1 else 2
    last = "".join(c for i, c in enumerate(_URLSAFE_ALPHABET) if i % (1 << unused_bits) == 0)
    return re.compile(f"[A-Za-z0-9_-]{{{full * 4 + rest}}}[{re.escape(last)}]")


_BODY_PATTERN: Final = _canonical_base64url(_PAYLOAD_LENGTH)
_KEY_PATTERN: Final = _canonical_base64url(HMAC_KEY_LENGTH)


class MalformedRefreshToken(ValueError):
    """The presented string is not a refresh token of a known format.

    The message says what was wrong but never repeats the input, which may be someone's
    secret pasted into the wrong field.
    """


class InvalidHmacKey(ValueError):
    """A stored ``refresh_token_hmac_key`` (or a key passed in) cannot be used.

    Raised rather than tolerated because a short or empty HMAC key would make every token of
    the session forgeable. The message never contains the value.
    """


@dataclass(frozen=True, slots=True)
class ParsedRefreshToken:
    """A syntactically valid token. Its claims mean nothing until :func:`verify_tag` passes.

    ``supabase_mac_input`` is set for a token in Supabase Auth's version 0 format: the bytes
    its 16-byte tag covers. ``None`` for the library's own ``osr1_`` tokens.
    """

    session_id: uuid.UUID
    counter: int
    tag: bytes = field(repr=False)
    supabase_mac_input: bytes | None = field(default=None, repr=False)
    #: An ``osb1_`` token: its session is bound to a DPoP key (meaningful once the tag verifies).
    dpop_bound: bool = False

    @property
    def is_supabase_format(self) -> bool:
        return self.supabase_mac_input is not None


_SUPABASE_VERSION: Final = 0
_SUPABASE_TAG_LENGTH: Final = 16
_SUPABASE_CHECKSUM_LENGTH: Final = 4
_MAX_UVARINT_LENGTH: Final = 10
#: 1 version byte + 16 session bytes + 1..10 counter bytes + 16 tag bytes + 4 checksum bytes.
_SUPABASE_MIN_BYTES: Final = 1 + 16 + 1 + _SUPABASE_TAG_LENGTH + _SUPABASE_CHECKSUM_LENGTH
_SUPABASE_MAX_BYTES: Final = _SUPABASE_MIN_BYTES - 1 + _MAX_UVARINT_LENGTH
_SUPABASE_BODY: Final = re.compile("[A-Za-z0-9_-]+")


def looks_like_refresh_token(token: str) -> bool:
    """Whether ``token`` has the outward shape of a refresh token of either format.

    Cheap and without cryptography; for telling refresh tokens from access tokens (JWTs
    always contain a ``.``, base64url never does). Parse before trusting anything.
    """
    return token.startswith((TOKEN_PREFIX, BOUND_PREFIX)) or (
        len(token) <= MAX_TOKEN_LENGTH and _SUPABASE_BODY.fullmatch(token) is not None)


def _read_uvarint(data: bytes, start: int) -> tuple[int, int]:
    """An unsigned LEB128 varint (Go's ``binary.Uvarint``) at ``start``: (value, end).

    Only the minimal encoding is accepted (one spelling per value).
    """
    value = shift = 0
    for index in range(start, min(len(data), start + _MAX_UVARINT_LENGTH)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and index > start:
                raise MalformedRefreshToken("refresh token counter is not minimally encoded")
            return value, index + 1
        shift += 7
    raise MalformedRefreshToken("refresh token counter is not a varint")


def _parse_supabase(token: str) -> ParsedRefreshToken:
    if not _SUPABASE_BODY.fullmatch(token):
        raise MalformedRefreshToken("refresh token has an unknown format or version")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedRefreshToken("refresh token is not base64url") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise MalformedRefreshToken("refresh token is not canonical base64url")
    if not _SUPABASE_MIN_BYTES <= len(raw) <= _SUPABASE_MAX_BYTES or raw[0] != _SUPABASE_VERSION:
        raise MalformedRefreshToken("refresh token has an unknown format or version")
    body, checksum = raw[:-_SUPABASE_CHECKSUM_LENGTH], raw[-_SUPABASE_CHECKSUM_LENGTH:]
    if not hmac.compare_digest(hashlib.sha256(body).digest()[:_SUPABASE_CHECKSUM_LENGTH],
                               checksum):
        raise MalformedRefreshToken("refresh token checksum does not match")
    counter, end = _read_uvarint(body, 17)
    if len(body) - end != _SUPABASE_TAG_LENGTH:
        raise MalformedRefreshToken("refresh token has the wrong length")
    if counter > MAX_COUNTER:
        raise MalformedRefreshToken("refresh token counter is out of range")
    return ParsedRefreshToken(uuid.UUID(bytes=body[1:17]), counter, body[end:],
                              supabase_mac_input=body[:end])


def generate_hmac_key() -> str:
    """Return a new session key as unpadded base64url text (43 characters).

    Text because the column is ``text``; unpadded base64url because that is how Supabase Auth
    writes the same column, so rows made by either side are read by both.
    """
    return base64.urlsafe_b64encode(secrets.token_bytes(HMAC_KEY_LENGTH)).rstrip(b"=").decode()


def key_bytes(stored_key: str) -> bytes:
    """Decode a plaintext ``refresh_token_hmac_key`` value into the 32 key bytes.

    Decrypt the column first when keys are encrypted at rest (``key_encryption``).
    """
    if not isinstance(stored_key, str) or not _KEY_PATTERN.fullmatch(stored_key):
        hint = ""
        if isinstance(stored_key, str) and stored_key.startswith(("enc1:", "{")):
            hint = "; it is still encrypted, decrypt it before use"
        raise InvalidHmacKey(
            "refresh_token_hmac_key is not 43 characters of unpadded base64url "
            f"encoding {HMAC_KEY_LENGTH} bytes{hint}"
        )
    return base64.urlsafe_b64decode(stored_key + "=")


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != HMAC_KEY_LENGTH:
        raise InvalidHmacKey(
            f"a refresh-token HMAC key must be {HMAC_KEY_LENGTH} bytes (see key_bytes())"
        )


def _tag(key: bytes, session_bytes: bytes, counter: int, label: bytes = _MAC_LABEL) -> bytes:
    # hmac.digest is the one-shot C path: no HMAC object, about a microsecond.
    return hmac.digest(key, label + session_bytes + _COUNTER.pack(counter), "sha256")


def encode_refresh_token(session_id: uuid.UUID, counter: int, key: bytes, *,
                         dpop_bound: bool = False) -> str:
    """Return the token for ``counter`` of session ``session_id`` (``osb1_`` when the session
    is bound to a DPoP key).

    Deterministic: the same inputs give the same string, which is what lets the store hand
    the current token out again within the reuse interval without having stored it.
    """
    if not isinstance(session_id, uuid.UUID):
        raise TypeError("session_id must be a uuid.UUID")
    if not isinstance(counter, int) or isinstance(counter, bool):
        raise TypeError("counter must be an int")
    if not 0 <= counter <= MAX_COUNTER:
        raise ValueError(f"counter must be between 0 and {MAX_COUNTER} (a PostgreSQL bigint)")
    _check_key(key)
    session_bytes = session_id.bytes
    label, prefix = (_BOUND_LABEL, BOUND_PREFIX) if dpop_bound else (_MAC_LABEL, TOKEN_PREFIX)
    payload = _LAYOUT.pack(session_bytes, counter, _tag(key, session_bytes, counter, label))
    return prefix + base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def parse_refresh_token(token: str) -> ParsedRefreshToken:
    """Split a token into its fields, refusing every string that is not exactly canonical.

    Does no cryptography and touches no state, so it is safe to run on any input from the
    network; it raises :class:`MalformedRefreshToken` and nothing else. The result is
    unauthenticated until :func:`verify_tag` has passed under the session's key.
    """
    if not isinstance(token, str):
        raise MalformedRefreshToken("refresh token must be a string")
    if len(token) > MAX_TOKEN_LENGTH:
        raise MalformedRefreshToken("refresh token is too long")
    bound = token.startswith(BOUND_PREFIX)
    if not bound and not token.startswith(TOKEN_PREFIX):
        return _parse_supabase(token)
    if len(token) != TOKEN_LENGTH:
        raise MalformedRefreshToken("refresh token has the wrong length")
    body = token[len(TOKEN_PREFIX) :]
    # The pattern admits only canonical unpadded base64url of 56 bytes: no padding, no
    # standard-alphabet characters, no whitespace or NUL, nothing outside ASCII, and no
    # set trailing bits. Decoding afterwards therefore cannot fail nor have two preimages.
    if not _BODY_PATTERN.fullmatch(body):
        raise MalformedRefreshToken("refresh token is not canonical base64url")
    try:
        payload = base64.urlsafe_b64decode(body + "=")
    except (binascii.Error, ValueError) as exc:  # unreachable after the pattern; kept total
        raise MalformedRefreshToken("refresh token is not canonical base64url") from exc
    session_bytes, counter, tag = _LAYOUT.unpack(payload)
    if counter > MAX_COUNTER:
        # Encoders never write it; accepting it would overflow the bigint comparison later.
        raise MalformedRefreshToken("refresh token counter is out of range")
    return ParsedRefreshToken(uuid.UUID(bytes=session_bytes), counter, tag, dpop_bound=bound)


def verify_tag(parsed: ParsedRefreshToken, key: bytes) -> bool:
    """Whether ``parsed`` was made under ``key`` for exactly its session id and counter.

    The comparison is constant-time so response timing says nothing about how many bytes of
    a guessed tag were right.
    """
    _check_key(key)
    if parsed.supabase_mac_input is not None:
        supabase = hmac.digest(key, parsed.supabase_mac_input, "sha256")[:_SUPABASE_TAG_LENGTH]
        return hmac.compare_digest(supabase, parsed.tag)
    expected = _tag(key, parsed.session_id.bytes, parsed.counter,
                    _BOUND_LABEL if parsed.dpop_bound else _MAC_LABEL)
    return hmac.compare_digest(expected, parsed.tag)
