"""What a resource server knows about a bearer token, and how it refuses one.

:class:`TokenInfo` is an active token as a view sees it (from an RFC 7662 answer, local or
remote); :class:`Challenge` is a refusal rendered as a ``WWW-Authenticate: Bearer`` challenge
(RFC 6750 section 3, RFC 9470 section 3 for the aal step-up); :class:`TokenValidator` is the one
question both validation modes answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import policy
from .types import Aal

__all__ = ["Challenge", "TokenInfo", "TokenValidator", "aal_challenge", "www_authenticate"]


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

    @classmethod
    def from_introspection(cls, body: Mapping[str, Any]) -> TokenInfo:
        """Build from an active RFC 7662 response; ``ValueError`` when it lacks what we need."""
        sub, client_id = body.get("sub"), body.get("client_id")
        if not isinstance(sub, str) or not isinstance(client_id, str):
            raise ValueError("introspection answer lacks sub or client_id")
        scope = body.get("scope", "")
        amr = body.get("amr", [])
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


def _quote(value: str) -> str:
    """RFC 9110 section 5.6.4 quoted-string; our values are ASCII already, escape the two specials."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(challenge: Challenge, *, realm: str, resource_metadata: str | None) -> str:
    """The ``Bearer`` challenge: parameters in RFC 6750 section 3 order, then RFC 9470/9728 ones."""
    params: list[tuple[str, str]] = [("realm", realm)]
    if challenge.error:
        params.append(("error", challenge.error))
    if challenge.description:
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
