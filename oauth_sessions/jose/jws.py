"""The JWS codec of the provider's JWTs: compact serialization (RFC 7515 section 7.1) signed
and verified with a :class:`~oauth_sessions.jose.keys.KeySet`, and the RFC 7519 claim checks
every token profile shares.

Signatures are joserfc's JWA algorithm models (RFC 7518, RFC 8037). The token profiles build on
this module: access tokens (:mod:`oauth_sessions.jose.access_tokens`), ID tokens
(:mod:`oauth_sessions.jose.id_tokens`), logout tokens (:mod:`oauth_sessions.jose.logout_tokens`);
introspection answers (RFC 9701) use :func:`sign_jwt` directly. Pure code: no Flask, no database.

Why the compact serialization is assembled here rather than by ``joserfc.jws``: the hot path
(``verify_access_token``, called by every introspection) must not re-guess keys, rebuild a
registry or re-check headers per call, and joserfc flags the ``EdDSA`` name as deprecated
(RFC 9864) through a ``SecurityWarning`` on every use. Signing input and base64url are three
lines; everything cryptographic stays in joserfc and ``cryptography``.

"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from .keys import KeySet, LoadedKey

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_TOKEN_LENGTH",
    "REASON_UNKNOWN_KID",
    "Claims",
    "InvalidToken",
    "audiences",
    "b64encode",
    "check_claims",
    "is_low_s_signature",
    "is_text",
    "json_depth_within",
    "kid_of",
    "low_s_form",
    "sign",
    "sign_jwt",
    "verify_jws",
]

#: Longest token string accepted for verification. Our access tokens are under 1.5 KiB even with
#: RS256 and a long scope string; the cap bounds the work an unauthenticated caller can cause.
MAX_TOKEN_LENGTH: Final = 8192
#: ``InvalidToken.reason`` when the kid is not (or no longer) in the set: a worker may reload its
#: keys on this one reason, because another worker may have rotated.
REASON_UNKNOWN_KID: Final = "unknown or retired kid"

Claims = dict[str, Any]


class InvalidToken(Exception):
    """A token that must not be trusted. ``reason`` is for logs, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- signing


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_segment(value: Mapping[str, Any]) -> str:
    return b64encode(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())


def sign(key: LoadedKey, typ: str, claims: Mapping[str, Any]) -> str:
    header = {"alg": key.record.alg, "kid": key.record.kid, "typ": typ}
    signing_input = f"{_json_segment(header)}.{_json_segment(claims)}"
    signature = low_s_form(key.record.alg,
                           key.algorithm.sign(signing_input.encode("ascii"), key.private))
    return f"{signing_input}.{b64encode(signature)}"


def sign_jwt(
    keyset: KeySet, claims: Mapping[str, Any], *, typ: str, now: datetime | None = None,
    alg: str | None = None,
) -> str:
    """Sign any other JWT of the provider with the active key (of ``alg``, default the set's
    ``signing_alg``) and an explicit ``typ`` (e.g. ``token-introspection+jwt`` of RFC 9701), so
    each kind of token keeps its own type."""
    return sign(keyset.signing_key(now, alg), typ, claims)


#: Three non-empty base64url segments, nothing else: rejects non-ASCII, NUL, padding, spaces,
#: JWE (five segments) and unsecured JWS (empty signature) before any decoding.
_COMPACT: Final = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_MAX_HEADER_SEGMENT: Final = 1024
_HEADER_CACHE_SIZE: Final = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


#: A decoder built once (``json.loads`` with options builds one per call). It refuses NaN and
#: Infinity, which would otherwise make ``exp`` never pass.
_JSON: Final = json.JSONDecoder(parse_constant=_reject_constant)


_FROM_URLSAFE: Final = bytes.maketrans(b"-_", b"+/")


def _b64decode(segment: str) -> bytes:
    """base64url without padding; the caller has already checked the alphabet (``_COMPACT``).

    Straight to ``binascii`` because ``base64.urlsafe_b64decode`` costs twice as much per call.
    """
    padded = (segment + "=" * (-len(segment) % 4)).encode("ascii")
    return binascii.a2b_base64(padded.translate(_FROM_URLSAFE))


def _decode_object(segment: str) -> dict[str, Any]:
    value = _JSON.decode(_b64decode(segment).decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: Group orders of the ECDSA curves of RFC 7518 section 3.4 (SEC 2 / FIPS 186-4 D.1.2).
_EC_ORDERS: Final[Mapping[str, int]] = {
    "ES256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "ES384": int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
                 "581A0DB248B0A77AECEC196ACCC52973", 16),
    "ES512": int("01FF" + "FFFFFFFF" * 7 + "FFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8"
                 "899C47AEBB6FB71E91386409", 16),
}


def is_low_s_signature(alg: str, signature: bytes) -> bool:
    """False for an ECDSA JWS signature ``r || s`` whose ``s`` is above half the group order.

    ECDSA accepts ``(r, s)`` and ``(r, n - s)`` alike, so every signed token would have a second
    accepted string; token strings are used as keys (caches, replay ledgers), so only the low
    form (``s <= n/2``, what BIP 62 and libsecp256k1 call canonical) is accepted. Non-ECDSA
    algorithms are not malleable this way and always pass.
    """
    order = _EC_ORDERS.get(alg)
    half = len(signature) // 2
    if order is None or half != (order.bit_length() + 7) // 8 or len(signature) % 2:
        return True  # not ECDSA, or the wrong length, which the verifier itself refuses
    return 0 < int.from_bytes(signature[half:], "big") <= order // 2


def low_s_form(alg: str, signature: bytes) -> bytes:
    """The accepted form of an ECDSA signature: OpenSSL signs with either ``s``, so half of
    what it makes is turned into ``(r, n - s)`` (equally valid) before it leaves the provider."""
    order = _EC_ORDERS.get(alg)
    if order is None or is_low_s_signature(alg, signature):
        return signature
    half = len(signature) // 2
    high = int.from_bytes(signature[half:], "big")
    return signature[:half] + (order - high).to_bytes(half, "big")


#: Deepest nesting of arrays and objects accepted in a JOSE header or JWT payload from outside.
#: Ours nest two levels; RFC 7519 claims rarely more than four.
MAX_JSON_DEPTH: Final = 32
#: What the depth scan looks at: an escape (two characters, so ``\\"`` ends no string), a quote, a bracket.
_JSON_STRUCTURE: Final = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


def json_depth_within(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether no array or object in ``text`` nests deeper than ``limit``, judged without parsing.

    Python's JSON decoder recurses once per level, so a document of a thousand ``[`` raises
    ``RecursionError`` (which is no ``ValueError``) before any other check could refuse it. One
    linear pass over quotes and brackets answers first; the text need not be valid JSON (the
    parser that runs next still judges that).
    """
    depth, in_string = 0, False
    for match in _JSON_STRUCTURE.finditer(text):
        char = match.group()
        if char == '"':
            in_string = not in_string
        elif in_string or len(char) == 2:
            continue
        elif char in "[{":
            depth += 1
            if depth > limit:
                return False
        else:
            depth -= 1
    return True


def is_text(value: object) -> bool:
    """Whether every string in ``value`` (a str, or a parsed JSON array or object, keys
    included) is Unicode text.

    JSON lets a string escape a lone surrogate (``"\\udc00"``): it parses to a Python str that
    no UTF-8 encoder accepts, so a replay ledger's hash, a database driver or a JSON answer
    would fail on it with a 500. Whatever comes from outside as a JOSE header or claim is
    judged here before it is used. Numbers, booleans and null pass. Iterative, so no nesting
    can make it recurse.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def verify_jws(
    keyset: KeySet,
    token: Any,
    error: type[InvalidToken],
    types: frozenset[str],
    now_ts: float,
) -> dict[str, Any]:
    """Checks shared by every token: syntax, header, key by kid, alg pinned to the key, signature.

    Order matters: nothing from the payload is parsed before the signature is known to be ours,
    and the key is chosen only by ``kid`` among our keys (``jku``, ``jwk``, ``x5u`` are never
    followed), with ``alg`` required to equal the key's own alg, so ``none``, HMAC keyed with a
    public key and other alg confusions cannot even reach a verifier.
    """
    if not isinstance(token, str):
        raise error("token is not a string")
    if len(token) > MAX_TOKEN_LENGTH:
        raise error("token too long")
    match = _COMPACT.fullmatch(token)
    if match is None:
        raise error("malformed token: not three base64url segments")
    header_b64, payload_b64, signature_b64 = match.groups()
    if len(header_b64) > _MAX_HEADER_SEGMENT:
        raise error("malformed token: header too long")
    header = keyset.header_cache.get(header_b64)
    if header is None:
        try:
            header = _decode_object(header_b64)
        except (ValueError, RecursionError) as exc:  # binascii.Error, UnicodeError: ValueErrors
            raise error("malformed token: header is not base64url JSON object") from exc
        kid = header.get("kid")
        if (
            isinstance(kid, str)
            and keyset.has_kid(kid)
            and (len(keyset.header_cache) < _HEADER_CACHE_SIZE)
        ):
            # Every token of one key has the same header segment: decode it once. Only headers
            # naming one of our kids are kept, and the cache is bounded, so junk cannot grow it.
            keyset.header_cache[header_b64] = header

    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in types:
        raise error(f"wrong token type {typ!r}")
    if "crit" in header:
        # RFC 7515 4.1.11: we understand no extension, so a critical one must fail.
        raise error("unsupported critical header parameters")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise error("missing kid")
    key = keyset.accepted(kid, now_ts)
    if key is None:
        raise error(REASON_UNKNOWN_KID)
    if header.get("alg") != key.record.alg:
        raise error("alg does not match the key's alg")

    try:
        signature = _b64decode(signature_b64)
    except ValueError as exc:
        raise error("malformed token: signature is not base64url") from exc
    if b64encode(signature) != signature_b64:
        # Non-zero padding bits: another spelling of the same signature. Refused so that one
        # signed token has exactly one accepted string (token strings may be used as keys).
        raise error("malformed token: non-canonical signature encoding")
    signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
    if not is_low_s_signature(key.record.alg, signature):
        raise error("malformed token: high-S ECDSA signature")
    if not key.algorithm.verify(signing_input, signature, key.public):
        raise error("bad signature")

    try:
        return _decode_object(payload_b64)
    except (ValueError, RecursionError) as exc:
        raise error("malformed token: payload is not base64url JSON object") from exc


def check_claims(
    claims: Mapping[str, Any],
    error: type[InvalidToken],
    *,
    required: Iterable[str],
    issuer: str,
) -> None:
    missing = [c for c in required if c not in claims]
    if missing:
        raise error(f"missing claims {missing}")
    for name in ("iss", "sub", "jti", "client_id", "sid"):
        if name in claims and not isinstance(claims[name], str):
            raise error(f"claim {name} is not a string")
    for name in ("exp", "iat", "nbf", "auth_time"):
        if name in claims and not _number(claims[name]):
            raise error(f"claim {name} is not a number")
    if claims["iss"] != issuer:
        raise error("wrong issuer")


def audiences(claims: Mapping[str, Any], error: type[InvalidToken]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    raise error("claim aud is not a string or list of strings")


def kid_of(value: str) -> str | None:
    """The ``kid`` of a compact JWS header, to reload keys another worker may have added."""
    try:
        segment = value.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


