"""``/jwks`` (RFC 7517 section 5): the provider's published signing keys.

The keys of the app's current key set, retired ones through their grace period, so a token
signed just before a rotation still verifies. Cacheable for five minutes: the grace period is
longer than that.
"""

from __future__ import annotations

import json
from typing import Final

from ..storage.signing_keys import KeyStore
from .http import Answer, HttpRequest
from .request_checks import check_request

__all__ = ["JwksEndpoint"]

_HEADERS: Final = (("Cache-Control", "public, max-age=300"), ("Content-Type", "application/json"))


class JwksEndpoint:
    """The handler: request hygiene, then the key set as JSON."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    def __call__(self, request: HttpRequest) -> Answer:
        refused = check_request(request)
        if refused is not None:
            return refused
        return Answer(200, _HEADERS, json.dumps(self._keys.keyset().jwks()).encode())
