"""Remote mode of the resource helper: RFC 7662 introspection over HTTP, with an optional cache.

One :class:`requests.Session` per validator keeps HTTP/1.1 connections alive through an
``HTTPAdapter`` pool (``pool_size`` connections), every call has a connect and a read timeout,
and nothing is retried: an unreachable or failing endpoint answers 503 ``temporarily_unavailable``
(the token may well be good, so it is never called ``invalid_token``).

The cache is **off by default**. With ``cache_ttl=N`` an active answer is reused for up to N
seconds (never past the token's ``exp``), so a revoked session's tokens may still be accepted
for N seconds: the TTL *is* the revocation delay. It is bounded (least recently used entries
go first) and keyed by a SHA-256 of the token, which itself is never kept.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

import requests
from requests.adapters import HTTPAdapter

from ..core.bearer import Challenge, TokenInfo, TokenValidator
from ..core.resource_indicators import accepts_audience

__all__ = ["RemoteValidator"]

log = logging.getLogger(__name__)


class _TtlCache:
    """A bounded LRU of active answers with per-entry expiry. Off unless ``ttl > 0``."""

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl, self.size = ttl, size
        self._items: OrderedDict[bytes, tuple[float, TokenInfo]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes, now: float) -> TokenInfo | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if now >= item[0]:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: bytes, info: TokenInfo, now: float) -> None:
        until = now + self.ttl
        if info.exp is not None:
            until = min(until, float(info.exp))
        with self._lock:
            self._items[key] = (until, info)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


#: ``token_type`` values of an active access token: RFC 6750's "Bearer" (RFC 7662 section 2.2
#: uses the RFC 6749 section 7.1 types), RFC 9449's "DPoP" (section 6.2: its ``cnf.jkt`` is
#: then checked against the request's proof) and "access_token", which some servers send.
_ACCESS_TOKEN_TYPES = frozenset({"bearer", "dpop", "access_token"})


#: This provider names a refresh token's answer ``token_use: "refresh_token"`` and gives it no
#: ``token_type`` (RFC 7662 section 2.2 uses the RFC 6749 access token types only).
ACCESS: Final = "access_token"


def _is_access_token(token_type: Any) -> bool:
    """Absent is accepted (the member is optional); anything else must name an access token."""
    return token_type is None or (isinstance(token_type, str)
                                  and token_type.lower() in _ACCESS_TOKEN_TYPES)


class RemoteValidator(TokenValidator):
    """Calls an RFC 7662 endpoint as an authenticated client (client_secret_basic)."""

    def __init__(
        self,
        url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: tuple[float, float] = (2.0, 5.0),
        pool_size: int = 10,
        cache_ttl: float = 0,
        cache_size: int = 10_000,
        session: requests.Session | None = None,
        resource: str | None = None,
        accept_issuer_audience: bool = True,
    ) -> None:
        if cache_ttl < 0 or cache_size < 1:
            raise ValueError("cache_ttl must be >= 0 seconds and cache_size >= 1")
        self.url = url
        self.timeout = timeout
        self._auth = (client_id, client_secret)
        self.http = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self.cache = _TtlCache(cache_ttl, cache_size) if cache_ttl > 0 else None
        self.resource = resource
        self.accept_issuer_audience = accept_issuer_audience

    def validate(self, token: str) -> TokenInfo:
        """Ask the introspection endpoint (or the cache, when on) about ``token``."""
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = time.time()
        if self.cache is not None and (hit := self.cache.get(key, now)) is not None:
            return hit
        body = self._introspect(token)
        if body.get("active") is not True:
            raise Challenge(401, "invalid_token", "the access token is not active")
        if not _is_access_token(body.get("token_type")) or body.get("token_use", ACCESS) != ACCESS:
            # Local mode refuses a refresh token too: an "active" answer for one is no
            # permission to use it as a bearer credential (issue 15 item 3).
            raise Challenge(401, "invalid_token", "the token is not an access token")
        if not self._audience_accepted(body):
            raise Challenge(401, "invalid_token", "the access token is not meant for this resource")
        try:
            info = TokenInfo.from_introspection(body)
        except ValueError:
            log.warning("introspection endpoint answered active without sub/client_id")
            raise Challenge(503, "temporarily_unavailable", "token validation failed") from None
        if self.cache is not None:
            self.cache.put(key, info, now)
        return info

    def _audience_accepted(self, body: Mapping[str, Any]) -> bool:
        """The local mode's audience rule on the answer's ``aud`` (RFC 8707): this resource,
        or the default audience (the answer's ``iss``) where that is accepted.

        Without a ``resource`` configured, an answer with no ``aud`` at all (the member is
        optional in RFC 7662 section 2.2; this provider always sends it) is accepted as before.
        """
        aud = body.get("aud")
        if aud is None and self.resource is None:
            return True
        named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        issuer = body.get("iss")
        return accepts_audience([a for a in named if isinstance(a, str)], resource=self.resource,
                                default_audience=issuer if isinstance(issuer, str) else "",
                                accept_default=self.accept_issuer_audience)

    def close(self) -> None:
        """Close the keep-alive connections."""
        self.http.close()

    def _introspect(self, token: str) -> Mapping[str, Any]:
        try:
            response = self.http.post(
                self.url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
                headers={"Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            # The token may well be good: say "try later", never "invalid_token".
            log.warning("introspection endpoint unreachable: %s", type(exc).__name__)
            raise Challenge(503, "temporarily_unavailable", "token validation unavailable") from None
        if response.status_code != 200:
            log.warning("introspection endpoint answered HTTP %s", response.status_code)
            raise Challenge(503, "temporarily_unavailable", "token validation unavailable")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Challenge(503, "temporarily_unavailable", "token validation unavailable")
        return body
