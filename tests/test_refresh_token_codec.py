"""The refresh-token codec: one canonical spelling per token, and only the key's holder mints."""

from __future__ import annotations

import base64
import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oauth_sessions.core.refresh_tokens import (
    HMAC_KEY_LENGTH,
    MAX_COUNTER,
    MAX_TOKEN_LENGTH,
    TOKEN_LENGTH,
    TOKEN_PREFIX,
    InvalidHmacKey,
    MalformedRefreshToken,
    ParsedRefreshToken,
    encode_refresh_token,
    generate_hmac_key,
    key_bytes,
    parse_refresh_token,
    verify_tag,
)

SESSION = uuid.UUID("7f0c6a3e-2b1d-4c5e-9f8a-0123456789ab")
OTHER_SESSION = uuid.UUID("00000000-0000-4000-8000-000000000001")
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _payload(token: str) -> bytes:
    return base64.urlsafe_b64decode(token[len(TOKEN_PREFIX) :] + "=")


def _accepted(token: str, key: bytes = KEY) -> bool:
    """Whether the store would act on ``token``: it parses and its tag verifies."""
    try:
        parsed = parse_refresh_token(token)
    except MalformedRefreshToken:
        return False
    return verify_tag(parsed, key)


@pytest.fixture
def token() -> str:
    return encode_refresh_token(SESSION, 41, KEY)


def test_round_trip(token: str) -> None:
    parsed = parse_refresh_token(token)
    assert parsed == ParsedRefreshToken(SESSION, 41, parsed.tag)
    assert len(parsed.tag) == 32
    assert verify_tag(parsed, KEY)


def test_encoding_is_deterministic_so_the_current_token_can_be_reissued(token: str) -> None:
    assert encode_refresh_token(SESSION, 41, KEY) == token
    assert encode_refresh_token(SESSION, 42, KEY) != token


def test_format_is_prefixed_url_safe_and_fixed_length(token: str) -> None:
    assert token.startswith("osr1_")
    assert len(token) == TOKEN_LENGTH == 80
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize("counter", [0, 1, 2**32, MAX_COUNTER])
def test_every_counter_in_bigint_range_round_trips_under_100_chars(counter: int) -> None:
    token = encode_refresh_token(SESSION, counter, KEY)
    assert len(token) < 100
    parsed = parse_refresh_token(token)
    assert parsed.counter == counter
    assert verify_tag(parsed, KEY)


@pytest.mark.parametrize("counter", [-1, MAX_COUNTER + 1, 2**64])
def test_counter_outside_bigint_range_is_refused(counter: int) -> None:
    with pytest.raises(ValueError, match="counter"):
        encode_refresh_token(SESSION, counter, KEY)


def test_counter_above_bigint_range_in_a_token_is_malformed() -> None:
    payload = SESSION.bytes + struct.pack(">Q", 2**63) + bytes(32)
    with pytest.raises(MalformedRefreshToken):
        parse_refresh_token(TOKEN_PREFIX + _b64(payload))


def test_repr_does_not_show_the_tag(token: str) -> None:
    parsed = parse_refresh_token(token)
    assert "tag" not in repr(parsed)
    assert parsed.tag.hex() not in repr(parsed)
    assert str(SESSION) in repr(parsed)


def test_every_single_character_change_is_rejected(token: str) -> None:
    replacements = "AB_-09zZgw=+/ .\x00é"
    for position in range(len(token)):
        for replacement in replacements:
            if replacement == token[position]:
                continue
            mutated = token[:position] + replacement + token[position + 1 :]
            assert not _accepted(mutated), (position, replacement)


def test_every_single_bit_flip_of_the_payload_fails_verification(token: str) -> None:
    payload = _payload(token)
    for position in range(len(payload)):
        for bit in range(8):
            mutated = bytearray(payload)
            mutated[position] ^= 1 << bit
            assert not _accepted(TOKEN_PREFIX + _b64(bytes(mutated))), (position, bit)


def test_every_truncation_and_extension_is_rejected(token: str) -> None:
    for end in range(len(token)):
        with pytest.raises(MalformedRefreshToken):
            parse_refresh_token(token[:end])
    for suffix in ("A", "AA", "=", "\n", " "):
        with pytest.raises(MalformedRefreshToken):
            parse_refresh_token(token + suffix)


def test_wrong_key_fails(token: str) -> None:
    assert not verify_tag(parse_refresh_token(token), OTHER_KEY)


@pytest.mark.parametrize(
    ("session_id", "counter"), [(OTHER_SESSION, 41), (SESSION, 40), (SESSION, 42), (SESSION, 0)]
)
def test_tag_relabelled_with_another_session_or_counter_fails(
    token: str, session_id: uuid.UUID, counter: int
) -> None:
    tag = parse_refresh_token(token).tag
    relabelled = TOKEN_PREFIX + _b64(session_id.bytes + struct.pack(">Q", counter) + tag)
    parsed = parse_refresh_token(relabelled)
    assert (parsed.session_id, parsed.counter) == (session_id, counter)
    assert not verify_tag(parsed, KEY)


@pytest.mark.parametrize("prefix", ["osr0_", "osr2_", "OSR1_", "osr1-", "osr1", "", "rt1_"])
def test_wrong_version_prefix_is_malformed(token: str, prefix: str) -> None:
    with pytest.raises(MalformedRefreshToken):
        parse_refresh_token(prefix + token[len(TOKEN_PREFIX) :])


def test_padded_and_standard_alphabet_encodings_are_rejected() -> None:
    # Find a token whose body uses both '-' and '_' so the standard re-encoding differs.
    for counter in range(1000):
        token = encode_refresh_token(SESSION, counter, KEY)
        if "-" in token[5:] and "_" in token[5:]:
            break
    payload = _payload(token)
    padded = TOKEN_PREFIX + base64.urlsafe_b64encode(payload).decode()
    standard = TOKEN_PREFIX + base64.b64encode(payload).decode().rstrip("=")
    assert padded.endswith("=") and standard != token
    for spelling in (padded, standard, standard + "="):
        with pytest.raises(MalformedRefreshToken):
            parse_refresh_token(spelling)


def test_non_canonical_trailing_bits_are_rejected(token: str) -> None:
    """56 bytes leave 2 unused bits in the last character; only the all-zero spelling counts."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(token[-1])
    assert index % 4 == 0
    for unused in (1, 2, 3):
        alias = token[:-1] + alphabet[index + unused]
        assert _payload(alias) == _payload(token)  # a lenient decoder sees the same bytes
        with pytest.raises(MalformedRefreshToken):
            parse_refresh_token(alias)


@pytest.mark.parametrize(
    "junk", ["", " ", "osr1_", "\x00" * 80, "osr1_" + "A" * 74 + "\x00", "osr1_" + "é" * 75]
)
def test_junk_is_malformed(junk: str) -> None:
    with pytest.raises(MalformedRefreshToken):
        parse_refresh_token(junk)


@pytest.mark.parametrize("value", [None, 1, b"osr1_", ["osr1_"], object()])
def test_non_strings_are_malformed(value: object) -> None:
    with pytest.raises(MalformedRefreshToken):
        parse_refresh_token(value)  # type: ignore[arg-type]


def test_oversize_input_is_refused_before_decoding() -> None:
    with pytest.raises(MalformedRefreshToken, match="too long"):
        parse_refresh_token(TOKEN_PREFIX + "A" * 10_000_000)
    with pytest.raises(MalformedRefreshToken, match="too long"):
        parse_refresh_token("x" * (MAX_TOKEN_LENGTH + 1))


def test_error_message_does_not_echo_the_input(token: str) -> None:
    with pytest.raises(MalformedRefreshToken) as excinfo:
        parse_refresh_token(token[:-1] + "B")
    assert token[5:20] not in str(excinfo.value)


@given(st.text(max_size=200))
def test_arbitrary_text_only_ever_raises_malformed(text: str) -> None:
    assert not _accepted(text)


@given(st.binary(max_size=120))
def test_arbitrary_bytes_derived_strings_only_ever_raise_malformed(data: bytes) -> None:
    for candidate in (
        TOKEN_PREFIX + _b64(data),
        TOKEN_PREFIX + base64.urlsafe_b64encode(data).decode(),
        TOKEN_PREFIX + base64.b64encode(data).decode(),
        data.decode("latin-1"),
    ):
        assert not _accepted(candidate)


@given(st.binary(min_size=56, max_size=56))
def test_any_well_formed_56_bytes_parse_but_do_not_verify(data: bytes) -> None:
    token = TOKEN_PREFIX + _b64(data)
    try:
        parsed = parse_refresh_token(token)
    except MalformedRefreshToken:
        assert data[16] >= 0x80  # only a counter above the bigint range is refused
        return
    assert not verify_tag(parsed, KEY)


def test_generated_keys_are_43_char_base64url_of_32_random_bytes() -> None:
    first, second = generate_hmac_key(), generate_hmac_key()
    assert first != second
    assert len(first) == 43
    assert len(key_bytes(first)) == HMAC_KEY_LENGTH
    token = encode_refresh_token(SESSION, 0, key_bytes(first))
    assert verify_tag(parse_refresh_token(token), key_bytes(first))


def test_key_bytes_round_trips() -> None:
    assert key_bytes(_b64(KEY)) == KEY


@pytest.mark.parametrize(
    "stored",
    [
        "",
        _b64(KEY) + "=",
        base64.b64encode(b"\xfb" * 32).decode().rstrip("="),
        _b64(KEY)[:-1],
        _b64(bytes(16)),
        _b64(KEY)[:-1] + "B",  # non-canonical trailing bits
        " " + _b64(KEY),
        "enc1:k1:AAAA",
        '{"key_id":"k","alg":"aes-gcm-hkdf"}',
    ],
)
def test_key_bytes_refuses_corrupt_values_without_echoing_them(stored: str) -> None:
    with pytest.raises(InvalidHmacKey, match="refresh_token_hmac_key") as excinfo:
        key_bytes(stored)
    if stored:
        assert stored not in str(excinfo.value)


def test_still_encrypted_key_gets_a_hint() -> None:
    with pytest.raises(InvalidHmacKey, match="encrypted"):
        key_bytes("enc1:k1:AAAA")


@pytest.mark.parametrize("bad_key", [b"", bytes(16), bytes(33)])
def test_short_or_long_keys_are_refused_because_they_would_be_forgeable(bad_key: bytes) -> None:
    with pytest.raises(InvalidHmacKey):
        encode_refresh_token(SESSION, 0, bad_key)
    with pytest.raises(InvalidHmacKey):
        verify_tag(parse_refresh_token(encode_refresh_token(SESSION, 0, KEY)), bad_key)
