"""Resource indicators (RFC 8707): which resource an access token is meant for.

The rules, pure functions over plain values (the stores and endpoints call them):

* a ``resource`` value is an absolute URI (RFC 3986 section 4.3: a scheme, then the rest)
  without a fragment (RFC 8707 section 2), printable ASCII without spaces, at most
  :data:`MAX_RESOURCE_LENGTH` characters; anything else is ``invalid_target``
  (:func:`check_resource`);
* the parameter may repeat (section 2); at most :data:`MAX_RESOURCES` distinct values are read
  (:func:`parse_resources`);
* each access token has exactly one audience (:func:`choose_audience`). RFC 8707 section 2
  lets the server issue one token per resource, and a token with one audience cannot be
  replayed by one resource server against another. The token request names one of the granted
  resources (section 2.2), or none when the grant has exactly one;
* a refresh may name another of the granted resources, never one outside the grant;
* without any ``resource`` at authorize the audience is the default one (the issuer), as
  before: :func:`accepts_audience` keeps that behaviour for callers configured without one.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from typing import Final

from .errors import (
    InvalidTarget,
    ResourceAmbiguous,
    ResourceNotAllowedScope,
    ResourceNotGranted,
    TooManyResources,
)

__all__ = [
    "MAX_RESOURCES",
    "MAX_RESOURCE_LENGTH",
    "accepts_audience",
    "check_resource",
    "choose_audience",
    "join_resources",
    "parse_resources",
    "resource_parameter",
    "scopes_for_resource",
    "split_resources",
]

MAX_RESOURCE_LENGTH: Final = 2048
#: Distinct ``resource`` values one authorization request may name.
MAX_RESOURCES: Final = 10
#: RFC 3986 section 3.1 scheme, then ``:`` and at least one more character; VCHAR only (no
#: space, no control character: a NUL or a line break can never be part of the value).
_ABSOLUTE_URI: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!-~]+")


def check_resource(value: str) -> str:
    """``value`` if it is a usable resource indicator, else raise :class:`InvalidTarget`.

    RFC 8707 section 2: "MUST be an absolute URI", "MUST NOT include a fragment component".
    """
    if (not isinstance(value, str) or not value or len(value) > MAX_RESOURCE_LENGTH
            or "#" in value or not _ABSOLUTE_URI.fullmatch(value)):
        raise InvalidTarget()
    return value


def parse_resources(values: Iterable[str]) -> tuple[str, ...]:
    """The distinct resource indicators of a request, in order, each checked."""
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(check_resource(value), None)
        if len(seen) > MAX_RESOURCES:
            raise InvalidTarget(f"more than {MAX_RESOURCES} resources")
    return tuple(seen)


def resource_parameter(values: Sequence[str]) -> str:
    """The ``resource`` values of one authorization request as the one parameter value it is
    checked from (``/authorize`` reads the query, ``/par`` the form; the pushed request is
    stored in this form): joined by spaces, a resource indicator never holding one.

    A value that is empty or holds a space (never an absolute URI) becomes ``#``, which
    :func:`check_resource` never accepts, so it is refused as one bad value rather than read
    as none or as two.
    """
    return " ".join("#" if not value or " " in value else value for value in values)


def join_resources(resources: Iterable[str]) -> str:
    """The stored form: space-separated (a resource indicator never holds a space)."""
    return " ".join(resources)


def split_resources(stored: str | None) -> tuple[str, ...]:
    return tuple(r for r in (stored or "").split(" ") if r)


def choose_audience(requested: Sequence[str], granted: Sequence[str]) -> str | None:
    """The one audience of the access token a token request gets, or ``None``: the default.

    ``granted`` are the resources of the authorization (empty: none was named, the default
    audience); ``requested`` those the token request names (section 2.2: "the client may
    indicate ... a subset" of them).
    """
    if len(requested) > 1:
        raise TooManyResources()
    if requested:
        if requested[0] not in granted:
            raise ResourceNotGranted()
        return requested[0]
    if not granted:
        return None
    if len(granted) > 1:
        raise ResourceAmbiguous()
    return granted[0]


def scopes_for_resource(scopes: Sequence[str], allowed: Collection[str] | None) -> tuple[str, ...]:
    """The scopes of a token for a resource server that accepts only ``allowed`` (None: any).

    RFC 6749 section 3.3 lets the server issue less scope than asked (the response's ``scope``
    says what was issued); a token left with no scope at all is refused (``invalid_scope``).
    """
    if allowed is None:
        return tuple(scopes)
    kept = tuple(s for s in scopes if s in allowed)
    if not kept:
        raise ResourceNotAllowedScope()
    return kept


def accepts_audience(aud: Sequence[str], *, resource: str | None, default_audience: str,
                     accept_default: bool) -> bool:
    """Whether a validator for ``resource`` accepts a token whose ``aud`` is ``aud``.

    ``resource`` None (``/userinfo``, a resource helper configured without one): the token
    must name the default audience, the issuer (the behaviour before resource indicators).
    Otherwise the token must name ``resource``, or, with ``accept_default``, be a token of
    the default audience only (tokens minted without any ``resource``, so that a helper that
    just learnt its identifier keeps accepting the tokens it accepted before).
    """
    if resource is None:
        return default_audience in aud
    if resource in aud:
        return True
    return accept_default and list(aud) == [default_audience]
