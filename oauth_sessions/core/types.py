"""Value types of the rules: the authenticator assurance level and a canonical IP address.

The SQL column types that store them are in :mod:`oauth_sessions.storage.column_types`.
"""

from __future__ import annotations

import enum
import functools
import ipaddress


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
