"""Column types that keep PostgreSQL's shape and still work on SQLite.

PostgreSQL is the reference database; SQLite is the embedded default for the
demo and quick tests, so every type here maps to the native PostgreSQL type and
to a portable one elsewhere.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, String
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator, TypeEngine


class Aal(enum.StrEnum):
    """Authenticator assurance level (NIST SP 800-63B), as Supabase's ``auth.aal_level``.

    Ordered: ``Aal.AAL1 < Aal.AAL2 < Aal.AAL3``. The values are one digit apart in the same
    place, so their text order is their rank order; comparing the strings is what every
    introspection does several times, and it skips the enum's attribute machinery.
    """

    AAL1 = "aal1"
    AAL2 = "aal2"
    AAL3 = "aal3"

    @property
    def rank(self) -> int:
        return int(self.value[-1])

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Aal):
            return NotImplemented
        return str.__lt__(self, other)

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Aal):
            return NotImplemented
        return str.__le__(self, other)

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Aal):
            return NotImplemented
        return str.__gt__(self, other)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Aal):
            return NotImplemented
        return str.__ge__(self, other)


class UTCDateTime(TypeDecorator[datetime]):
    """``timestamptz`` on PostgreSQL; on SQLite a UTC string read back as aware UTC.

    Naive datetimes are refused on the way in: a naive value in a security
    timestamp is a bug waiting for a server in another time zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a timestamptz column; pass an aware UTC value")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class NaiveUTCDateTime(TypeDecorator[datetime]):
    """``timestamp without time zone`` holding UTC, as Supabase stores ``refreshed_at``.

    Aware values are converted to UTC and stripped; naive values are taken as UTC.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)


class Inet(TypeDecorator[str]):
    """``inet`` on PostgreSQL, text elsewhere; values are validated and normalised on the way in."""

    impl = String(45)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.INET())
        return dialect.type_descriptor(String(45))

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return normalize_ip(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return str(value)


def normalize_ip(value: str) -> str:
    """Return the canonical text of an IP address, or raise ``ValueError``.

    An IPv6 zone (``fe80::1%eth0``, RFC 4007 section 11) is refused: PostgreSQL's ``inet``
    cannot store one, and the insert would fail the whole request. Answers are remembered for
    the last few thousand addresses (every refresh records the caller's address).
    """
    return _normalize_ip(str(value))


@functools.lru_cache(maxsize=4096)
def _normalize_ip(value: str) -> str:
    address = ipaddress.ip_address(value.strip())
    if getattr(address, "scope_id", None):
        raise ValueError("an IPv6 address with a zone index cannot be stored in inet")
    return str(address)
