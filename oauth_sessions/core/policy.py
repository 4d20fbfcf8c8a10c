"""Policy rules shared by every endpoint: scopes, assurance levels, lifetimes.

Pure functions, no I/O: the store, the grants, introspection and the resource
helper all ask the same questions here, so one rule has one answer.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from .types import Aal

MAX_SCOPE_LENGTH = 4096  # sessions_scopes_length
#: OIDC Core section 5.4 scopes plus offline_access (section 11): what every deployment offers.
STANDARD_SCOPES = ("openid", "profile", "email", "address", "phone", "offline_access")

#: The minimum aal of the resource server registered (RFC 8707) for an audience, or ``None``
#: when none is registered for it or it sets none. The storage layer answers it
#: (:meth:`~oauth_sessions.storage.resource_servers.ResourceServerStore.min_aal`).
ResourceMinAal = Callable[[str], Aal | None]


def parse_scope(scope: str | Iterable[str] | None) -> tuple[str, ...]:
    """Split a space-delimited scope (RFC 6749 section 3.3) into unique tokens, order kept."""
    if scope is None:
        return ()
    items = scope.split(" ") if isinstance(scope, str) else list(scope)
    seen: dict[str, None] = {}
    for item in items:
        if item:
            seen.setdefault(item, None)
    return tuple(seen)


def join_scope(scopes: Iterable[str]) -> str:
    return " ".join(parse_scope(list(scopes)))


def is_valid_scope_token(token: str) -> bool:
    """RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )."""
    return bool(token) and all(c == "!" or "#" <= c <= "[" or "]" <= c <= "~" for c in token)


def scope_within(requested: Iterable[str], granted: Iterable[str]) -> bool:
    return set(requested) <= set(granted)


def narrow_scope(requested: str | None, granted: Iterable[str]) -> tuple[str, ...] | None:
    """Scopes for a refresh that asks for ``requested`` (RFC 6749 section 6).

    No ``scope`` means the scopes granted; a subset narrows; anything outside the
    grant returns ``None`` (the caller answers ``invalid_scope``).
    """
    granted_t = parse_scope(list(granted))
    if requested is None or requested == "":
        return granted_t
    asked = parse_scope(requested)
    if not asked or not scope_within(asked, granted_t):
        return None
    return asked


def effective_aal(token_aal: Aal, session_aal: Aal | None) -> Aal:
    """The lower of the aal a token was issued with and the session's aal now.

    A session downgraded after issuance (a factor removed) lowers its live tokens;
    a session stepped up later does not raise tokens issued before.
    """
    if session_aal is None:
        return Aal.AAL1
    return min(token_aal, session_aal)


def required_aal(
    scopes: Iterable[str],
    *,
    scope_min_aal: Mapping[str, Aal],
    audience_min_aal: Mapping[str, Aal] | None = None,
    audiences: Iterable[str] = (),
    client_min_aal: Aal | None = None,
    resource_min_aal: ResourceMinAal | None = None,
    default_audience: str | None = None,
) -> Aal:
    """The aal a token with ``scopes`` for ``audiences`` needs: the highest of every minimum.

    That is the scopes' (``SCOPE_MIN_AAL``), the client's ``min_aal``, and for each audience X
    both ``AUDIENCE_MIN_AAL[X]`` and the ``min_aal`` of the resource server registered for X
    (``resource_min_aal``). One rule for every place that issues or accepts a token (authorize,
    the code and refresh grants, introspection, the resource helper, ``/userinfo``), so that
    no way round one of them is left open.

    ``default_audience`` (the issuer) names no registered resource server and is never looked
    up: a token without a resource audience costs no lookup.
    """
    auds = tuple(dict.fromkeys(audiences))
    resources = ([a for a in auds if a != default_audience]
                 if resource_min_aal is not None else [])
    if not scope_min_aal and not audience_min_aal and client_min_aal is None and not resources:
        return Aal.AAL1  # no policy configured: the common case, without the loops
    needed = Aal.AAL1
    for scope in scopes:
        needed = max(needed, scope_min_aal.get(scope, Aal.AAL1))
    for audience in auds:
        needed = max(needed, (audience_min_aal or {}).get(audience, Aal.AAL1))
    if resource_min_aal is not None:
        for resource in resources:
            needed = max(needed, resource_min_aal(resource) or Aal.AAL1)
    if client_min_aal is not None:
        needed = max(needed, client_min_aal)
    return needed


def compute_not_after(
    now: datetime,
    *,
    timebox_seconds: int | None,
    client_max_seconds: int | None = None,
    host_not_after: datetime | None = None,
) -> datetime | None:
    """The hard end of a new session: the earliest of every limit that applies."""
    candidates: list[datetime] = []
    if timebox_seconds is not None:
        candidates.append(now + timedelta(seconds=timebox_seconds))
    if client_max_seconds is not None:
        candidates.append(now + timedelta(seconds=client_max_seconds))
    if host_not_after is not None:
        candidates.append(host_not_after)
    return min(candidates) if candidates else None


def session_expired(not_after: datetime | None, now: datetime) -> bool:
    """A session is expired *at* ``not_after`` ("after which ... regarded as expired")."""
    return not_after is not None and now >= not_after


def session_inactive(
    last_activity: datetime | None, now: datetime, inactivity_seconds: int | None
) -> bool:
    """True when the last refresh (or creation) is at least the inactivity limit ago."""
    if inactivity_seconds is None or last_activity is None:
        return False
    return now - last_activity >= timedelta(seconds=inactivity_seconds)


def clean_user_agent(value: str | None, limit: int) -> str | None:
    """A ``User-Agent`` header fit to store: control characters (NUL included) and lone
    surrogates removed, then cut to ``limit`` characters; ``None`` when nothing is left.

    The header is attacker-chosen text bound for a ``text`` column, and PostgreSQL refuses
    NUL in text (issue 15 item 11), so it is cleaned where it is read, never refused: a
    browser with an odd header still signs in.
    """
    if not value:
        return None
    kept = "".join(c for c in value if unicodedata.category(c) not in {"Cc", "Cs"})[:limit]
    return kept or None

