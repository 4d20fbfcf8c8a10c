"""What a resource server knows about a bearer token, and how it refuses one.

:class:`TokenInfo` is an active token as a view sees it (from an RFC 7662 answer, local or
remote); :class:`Challenge` is a refusal rendered as a ``WWW-Authenticate: Bearer`` challenge
(RFC 6750 section 3, RFC 9470 section 3 for the aal step-up); :class:`TokenValidator` is the one
question both validation modes answer.

:func:`bearer_token`, :func:`access_token_credentials` and :func:`basic_credentials` are the
one parser of the ``Authorization`` header (RFC 6750 section 2.1, RFC 9449 section 7.1's
``DPoP`` scheme, RFC 7617 section 2 with RFC 6749 section 2.3.1's form-encoding), used by every
endpoint, the resource helper and client authentication alike. :func:`dpop_challenge` is the
``WWW-Authenticate: DPoP`` challenge of RFC 9449 section 7.1.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote_plus

from . import policy
from .types import Aal

__all__ = [
    "Challenge",
    "MalformedCredentials",
    "TokenInfo",
    "TokenValidator",
    "aal_challenge",
    "access_token_credentials",
    "basic_credentials",
    "bearer_token",
    "check_grant",
    "dpop_challenge",
    "www_authenticate",
]

_PRINTABLE: Final = re.compile(r"[ -~]*")


class MalformedCredentials(ValueError):
    """The ``Authorization`` header names the scheme but its credentials cannot be read."""


def _split(header: str | None) -> tuple[str, str]:
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower(), value.strip(" ")


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (RFC 6750 section 2.1).

    None when there is no header or it names another scheme; :class:`MalformedCredentials`
    when it says Bearer but carries no token, or more than one word.
    """
    found = access_token_credentials(header)
    return found[1] if found is not None and found[0] == "bearer" else None


def access_token_credentials(header: str | None) -> tuple[str, str] | None:
    """``(scheme, token)`` of ``Authorization: Bearer <token>`` or ``DPoP <token>`` (RFC 9449
    section 7.1), the scheme lower-case; None for no header or another scheme.

    :class:`MalformedCredentials` when it names one of the two but carries no token, or more
    than one word.
    """
    scheme, value = _split(header)
    if scheme not in ("bearer", "dpop"):
        return None
    if not value or " " in value:
        name = "Bearer" if scheme == "bearer" else "DPoP"
        raise MalformedCredentials(f"the Authorization header must be '{name} <token>'")
    return scheme, value


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(client_id, secret)`` of ``Authorization: Basic`` (RFC 7617 section 2), or None.

    Both halves are form-decoded (RFC 6749 section 2.3.1). :class:`MalformedCredentials` when
    the value is not base64 of printable ``id:secret``.
    """
    scheme, value = _split(header)
    if scheme != "basic":
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        raise MalformedCredentials("the Authorization header is malformed") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not _PRINTABLE.fullmatch(decoded):
        raise MalformedCredentials("the Authorization header is malformed")
    return unquote_plus(client_id), unquote_plus(secret)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An active token as a view sees it, from an RFC 7662 answer (local or remote)."""

    sub: str
    client_id: str
    scopes: tuple[str, ...]
    aal: Aal
    session_id: str | None
    amr: tuple[str, ...]
    auth_time: int | None
    exp: int | None
    username: str | None
    raw: Mapping[str, Any] = field(repr=False)
    #: RFC 9449 section 6: the thumbprint of the DPoP key the token is bound to (``cnf.jkt``).
    jkt: str | None = None

    @classmethod
    def from_introspection(cls, body: Mapping[str, Any]) -> TokenInfo:
        """Build from an active RFC 7662 response; ``ValueError`` when it lacks what we need."""
        sub, client_id = body.get("sub"), body.get("client_id")
        if not isinstance(sub, str) or not isinstance(client_id, str):
            raise ValueError("introspection answer lacks sub or client_id")
        scope = body.get("scope", "")
        amr = body.get("amr", [])
        cnf = body.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        return cls(
            sub=sub,
            client_id=client_id,
            scopes=policy.parse_scope(scope if isinstance(scope, str) else ""),
            aal=Aal(body.get("aal", "aal1")),
            session_id=body.get("sid") if isinstance(body.get("sid"), str) else None,
            amr=tuple(a for a in amr if isinstance(a, str)) if isinstance(amr, list) else (),
            auth_time=_int(body.get("auth_time")),
            exp=_int(body.get("exp")),
            username=body.get("username") if isinstance(body.get("username"), str) else None,
            raw=dict(body),
            jkt=jkt if isinstance(jkt, str) else None,
        )


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(eq=False)
class Challenge(Exception):
    """A refusal to render as ``WWW-Authenticate`` + JSON (RFC 6750 section 3, RFC 9470 section 3)."""

    status: int
    error: str | None = None
    description: str | None = None
    scope: str | None = None
    acr_values: str | None = None
    max_age: int | None = None
    #: The refusal is about DPoP (RFC 9449 section 7.1): its error goes in the ``DPoP``
    #: challenge, with ``nonce`` in a ``DPoP-Nonce`` header for ``use_dpop_nonce``.
    dpop: bool = False
    nonce: str | None = None


def _quote(value: str) -> str:
    """RFC 9110 section 5.6.4 quoted-string; our values are ASCII already, escape the two specials."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(challenge: Challenge, *, realm: str, resource_metadata: str | None) -> str:
    """The ``Bearer`` challenge: parameters in RFC 6750 section 3 order, then RFC 9470/9728 ones."""
    params: list[tuple[str, str]] = [("realm", realm)]
    bearer_error = not challenge.dpop  # a DPoP refusal's error is the DPoP challenge's
    if challenge.error and bearer_error:
        params.append(("error", challenge.error))
    if challenge.description and bearer_error:
        params.append(("error_description", challenge.description))
    if challenge.scope:
        params.append(("scope", challenge.scope))
    if challenge.acr_values:
        params.append(("acr_values", challenge.acr_values))
    if challenge.max_age is not None:
        params.append(("max_age", str(challenge.max_age)))
    if resource_metadata:
        params.append(("resource_metadata", resource_metadata))
    return "Bearer " + ", ".join(f"{k}={_quote(v)}" for k, v in params)


def dpop_challenge(challenge: Challenge, *, algs: tuple[str, ...]) -> str:
    """The ``DPoP`` challenge (RFC 9449 section 7.1): ``algs`` always, and the error of a
    refusal that is about DPoP (``invalid_dpop_proof``, ``use_dpop_nonce``, a bound token
    sent the wrong way)."""
    params: list[tuple[str, str]] = []
    if challenge.dpop and challenge.error:
        params.append(("error", challenge.error))
        if challenge.description:
            params.append(("error_description", challenge.description))
    params.append(("algs", " ".join(algs)))
    return "DPoP " + ", ".join(f"{k}={_quote(v)}" for k, v in params)


def aal_challenge(required: Aal) -> Challenge:
    return Challenge(
        401,
        "insufficient_user_authentication",
        f"authentication at {required.value} or higher is required",
        acr_values=required.value,
    )


class TokenValidator:
    """Answers "which token is this, if active now?"; raises :class:`Challenge` otherwise."""

    def validate(self, token: str) -> TokenInfo:
        """The active token, or raise :class:`Challenge` (``invalid_token``, an aal challenge, or 503)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (remote mode); the validator is not used afterwards."""


def check_grant(info: TokenInfo, scopes: tuple[str, ...], aal: Aal | None, max_age: int | None) -> None:
    """What a protected resource requires of an active token, as a :class:`Challenge` when unmet.

    Scope first (a step-up cannot add a scope, RFC 6750 section 3.1 ``insufficient_scope``),
    then assurance (RFC 9470), then authentication age (``max_age``, RFC 9470 section 3).
    """
    missing = [s for s in scopes if s not in info.scopes]
    if missing:
        raise Challenge(403, "insufficient_scope", "the access token lacks a required scope",
                        scope=" ".join(scopes))
    if aal is not None and info.aal < aal:
        raise aal_challenge(aal)
    if max_age is not None and (info.auth_time is None or time.time() - info.auth_time > max_age):
        raise Challenge(401, "insufficient_user_authentication",
                        "a more recent authentication is required", max_age=max_age)
