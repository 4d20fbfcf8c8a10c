"""The ``claims`` request parameter (OpenID Connect Core 1.0 section 5.5), parsed and bounded.

A JSON object whose ``userinfo`` and ``id_token`` members name individual claims, each
``null`` or an object with ``essential`` (a boolean), ``value`` or ``values`` (section 5.5.1).
Other members are ignored, as the section allows. Anything else is refused with one reason
(:class:`ClaimsRequestError`, ``invalid_request`` on the wire) before a byte is stored: not
JSON, not an object, nested deeper than a claims request can be, a string that is no Unicode
text (a lone surrogate escaped as ``"\\udc00"``), too many claims or values, a value that is
not a string, number or boolean.

What this provider releases for a request (the privacy rule, see
``docs/guides/openid-connect.md``): only claims the host supplies for the scopes the user
granted. Section 5.5 lets a provider release a claim requested this way without its scope;
this one does not, because the consent page asks for scopes, and a claim outside them is one
the person was never asked about. The parameter decides where granted claims go: those named
under ``id_token`` are put in the ID token of the code exchange (they are otherwise only at
UserInfo), and ``acr`` with ``values`` raises the assurance level like ``acr_values``. Claims
named under ``userinfo`` are answered by UserInfo when their scope was granted, which it does
for every claim of a granted scope anyway, so nothing needs to be remembered per session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from ..jose.jws import is_text, json_depth_within

__all__ = ["MAX_CLAIMS", "RESERVED_ID_TOKEN_CLAIMS", "ClaimRequest", "ClaimsRequest",
           "ClaimsRequestError", "parse_claims_request"]

#: Claims a request may name per member, and values per claim.
MAX_CLAIMS: Final = 64
MAX_VALUES: Final = 16
#: ``{member: {claim: {"values": [...]}}}`` is four levels; nothing valid nests deeper.
MAX_DEPTH: Final = 4
MEMBERS: Final = ("userinfo", "id_token")
#: Claims every ID token sets itself (OIDC Core section 2); a request cannot replace them.
RESERVED_ID_TOKEN_CLAIMS: Final = frozenset({
    "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp",
    "at_hash", "c_hash"})


class ClaimsRequestError(ValueError):
    """The ``claims`` parameter cannot be used; the message is public."""


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One requested claim: ``essential``, and the acceptable values (empty: any)."""

    name: str
    essential: bool = False
    values: tuple[str | int | float | bool, ...] = ()

    def as_json(self) -> Any:
        if not self.essential and not self.values:
            return None
        body: dict[str, Any] = {}
        if self.essential:
            body["essential"] = True
        if len(self.values) == 1:
            body["value"] = self.values[0]
        elif self.values:
            body["values"] = list(self.values)
        return body


@dataclass(frozen=True, slots=True)
class ClaimsRequest:
    """The two members of section 5.5 that this provider acts on."""

    userinfo: tuple[ClaimRequest, ...] = ()
    id_token: tuple[ClaimRequest, ...] = ()

    def to_json(self) -> str:
        """The request as stored with the authorization (what was parsed, not what was sent)."""
        return json.dumps({
            member: {c.name: c.as_json() for c in getattr(self, member)} for member in MEMBERS
            if getattr(self, member)}, separators=(",", ":"))

    def id_token_claims(self) -> tuple[str, ...]:
        """The claims to put in the ID token beside the ones it always has."""
        return tuple(c.name for c in self.id_token if c.name not in RESERVED_ID_TOKEN_CLAIMS)

    def requested(self, member: str, name: str) -> ClaimRequest | None:
        return next((c for c in getattr(self, member) if c.name == name), None)


def _value(value: Any, where: str) -> str | int | float | bool:
    if isinstance(value, str | bool | int | float):
        return value
    raise ClaimsRequestError(f"claims: {where} must be a string, number or boolean")


def _claim(name: str, spec: Any, member: str) -> ClaimRequest:
    where = f"{member}.{name}"
    if spec is None:
        return ClaimRequest(name)
    if not isinstance(spec, dict):
        raise ClaimsRequestError(f"claims: {where} must be null or an object")
    essential = spec.get("essential", False)
    if not isinstance(essential, bool):
        raise ClaimsRequestError(f"claims: {where}.essential must be a boolean")
    if "value" in spec and "values" in spec:
        raise ClaimsRequestError(f"claims: {where} has both value and values")
    values: tuple[str | int | float | bool, ...] = ()
    if "value" in spec:
        values = (_value(spec["value"], f"{where}.value"),)
    elif "values" in spec:
        listed = spec["values"]
        if not isinstance(listed, list) or not 0 < len(listed) <= MAX_VALUES:
            raise ClaimsRequestError(
                f"claims: {where}.values must be a list of 1 to {MAX_VALUES} values")
        values = tuple(_value(v, f"{where}.values") for v in listed)
    return ClaimRequest(name, essential, values)


def _member(body: dict[str, Any], member: str) -> tuple[ClaimRequest, ...]:
    requested = body.get(member)
    if requested is None:
        return ()
    if not isinstance(requested, dict):
        raise ClaimsRequestError(f"claims: {member} must be an object")
    if len(requested) > MAX_CLAIMS:
        raise ClaimsRequestError(f"claims: {member} names more than {MAX_CLAIMS} claims")
    return tuple(_claim(name, spec, member) for name, spec in requested.items())


def parse_claims_request(text: str | None) -> ClaimsRequest | None:
    """The request in ``text`` (the parameter's value), ``None`` without one.

    Raises :class:`ClaimsRequestError`. The length is bounded before this runs (every
    parameter is, by ``protocol/request_checks.py``); the nesting is judged before parsing.
    """
    if text is None or text == "":
        return None
    if not json_depth_within(text, MAX_DEPTH):
        raise ClaimsRequestError(f"claims nests deeper than {MAX_DEPTH} levels")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise ClaimsRequestError("claims must be a JSON object") from None
    if not isinstance(body, dict):
        raise ClaimsRequestError("claims must be a JSON object")
    if not is_text(body):
        raise ClaimsRequestError("claims must hold Unicode text only")
    return ClaimsRequest(userinfo=_member(body, "userinfo"), id_token=_member(body, "id_token"))
