"""Token introspection (RFC 7662) that answers from the session row, as it is *now*.

The whole pipeline of ``POST /oauth/introspect``, in order (each step a small function; the
first two are the HTTP side, :mod:`oauth_sessions.protocol.introspection_endpoint`)::

    authenticate the caller           RFC 7662 section 2.1 (client_secret_basic / _post)
    caller may introspect             the client's ``can_introspect`` flag
    verify the token                  access JWT (RFC 9068 section 4) or ``osr1_`` refresh token
    refresh token's own client        others get inactive for a refresh token (section 4)
    audience                          a resource server: tokens for it only (RFC 8707, RFC 9700
                                      section 2.3); a client: default-audience tokens, and
                                      tokens for a resource server only if issued to it
    load the session by ``sid``       ONE primary-key SELECT, never cached
    session exists                    revoked = row deleted
    not_after not reached             "after which the session should be regarded as expired"
    inactivity limit met              OAUTH_SESSIONS_INACTIVITY_TIMEOUT
    client binding                    session.oauth_client_id == token client_id
    scopes still granted              token scopes within session.scopes
    effective aal meets the policy    min(token aal, session aal now) >= required (scopes,
                                      caller, AUDIENCE_MIN_AAL and the registered resource
                                      server's min_aal for each audience)
    -> active answer (RFC 7662 section 2.2)

Any failed step answers exactly ``{"active": false}`` (section 2.2: nothing may say *why*,
which would help an attacker probe tokens). The reason is kept for the server's debug log.

Why the client binding needs no client query: deleting a client deletes its sessions (FK
``sessions_oauth_client_id_fkey ON DELETE CASCADE``), so a session row that still names the
client proves the client exists.

Refresh tokens (``token_type_hint=refresh_token`` is a hint only, section 2.1: a token is
recognised by its own shape, so a wrong hint changes nothing): active only while their counter
is the session's current one. The previous token within the reuse interval is *not* reported
active: all it can still do is fetch the current token again, and saying "active" for it would
tell a resource server that a superseded credential is good.

The token checks (verify → session → aal) are pure functions over small interfaces
(:class:`SessionSource`, a :class:`~oauth_sessions.jose.keys.KeySet`, the settings, a clock) so
the resource helper (:mod:`oauth_sessions.flask.resource`) runs exactly the same pipeline in-process.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from ..jose.access_tokens import InvalidAccessToken, verify_access_token
from ..jose.keys import KeySet
from . import policy
from .refresh_tokens import looks_like_refresh_token
from .resource_indicators import accepts_audience
from .session_reads import RefreshSession, SessionRow, SessionSource
from .settings import Settings
from .types import Aal

__all__ = [
    "INACTIVE",
    "AalTooLow",
    "ActiveToken",
    "Inactive",
    "RefreshSession",
    "SessionRow",
    "SessionSource",
    "TokenChecks",
    "check_token",
]

log = logging.getLogger(__name__)

INACTIVE: Final[Mapping[str, bool]] = {"active": False}
"""The one answer for every token that is not good now (RFC 7662 section 2.2)."""

ACCESS_TOKEN: Final = "access_token"
REFRESH_TOKEN: Final = "refresh_token"


class Inactive(Exception):
    """The token is not active. ``reason`` is for the debug log only, never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AalTooLow(Inactive):
    """Active in every respect except assurance: the resource helper turns this into RFC 9470."""

    def __init__(self, effective: Aal, required: Aal) -> None:
        super().__init__(f"effective aal {effective} below required {required}")
        self.effective = effective
        self.required = required


@dataclass(frozen=True, slots=True)
class TokenChecks:
    """Everything the token checks depend on, built once per app (keys parsed once)."""

    keyset: Callable[[], KeySet]
    sessions: SessionSource
    settings: Settings
    #: The default audience: ``tokens.py`` mints ``aud`` = the issuer when no RFC 8707 resource
    #: was named, and ``build_services`` sets the issuer here. Validators without a resource of
    #: their own (``/userinfo``, the resource helper without ``resource``) require it.
    audience: str | None = None
    #: Re-read the keys when a token names a kid this worker lacks (another worker rotated).
    reload_keyset: Callable[[str], KeySet] | None = None
    username: Callable[[uuid.UUID], str | None] | None = None
    leeway: int = 0
    #: The registered resource servers' minimum aal (RFC 8707), looked up for every audience
    #: of a token other than the default one; ``build_services`` sets the registry's lookup.
    resource_min_aal: policy.ResourceMinAal | None = None


@dataclass(frozen=True, slots=True)
class ActiveToken:
    """A token that is good now, with what a resource server needs to decide (section 2.2)."""

    token_type: str
    sub: str
    client_id: str
    scopes: tuple[str, ...]
    session_id: uuid.UUID
    aal: Aal
    amr: list[str]
    auth_time: int | None
    exp: int | None
    iat: int | None
    iss: str
    aud: list[str]
    jti: str | None
    username: str | None = None
    #: RFC 9449 section 6: the thumbprint of the DPoP key the access token is bound to.
    jkt: str | None = None

    def response(self) -> dict[str, Any]:
        """The RFC 7662 section 2.2 JSON object, members absent rather than null.

        ``token_type`` is "the type of the token as defined in Section 5.1 of OAuth 2.0", which
        is an access token type of RFC 6749 section 7.1 (``Bearer`` here). A refresh token has
        no such type, so its answer leaves ``token_type`` out (``"refresh_token"`` was no
        RFC 6749 token type, issue 20 item 6) and says what it is in the extension member
        ``token_use`` (section 2.2 allows service-specific members), which the resource
        helper's remote mode refuses as a bearer credential.

        A DPoP-bound access token says ``token_type: DPoP`` and ``cnf.jkt`` (RFC 9449
        section 6.2), so a resource server that introspects can check the proof's key.
        """
        body: dict[str, Any] = {
            "active": True,
            "scope": " ".join(self.scopes),
            "client_id": self.client_id,
            "sub": self.sub,
            "exp": self.exp,
            "iat": self.iat,
            "iss": self.iss,
            "aud": self.aud[0] if len(self.aud) == 1 else list(self.aud),
            "token_type": (("DPoP" if self.jkt else "Bearer")
                           if self.token_type == ACCESS_TOKEN else None),
            "token_use": REFRESH_TOKEN if self.token_type == REFRESH_TOKEN else None,
            "jti": self.jti,
            "sid": str(self.session_id),
            "aal": self.aal.value,
            "acr": self.aal.value,
            "amr": list(self.amr),
            "auth_time": self.auth_time,
            "username": self.username,
            "cnf": {"jkt": self.jkt} if self.jkt else None,
        }
        return {k: v for k, v in body.items() if v is not None}


@dataclass(frozen=True, slots=True)
class _Presented:
    """What a verified token claims, the same shape for both kinds."""

    token_type: str
    session_id: uuid.UUID
    client_id: str
    scopes: tuple[str, ...]
    aal: Aal
    claims: Mapping[str, Any]
    amr: list[str] = field(default_factory=list)
    auth_time: int | None = None


# --------------------------------------------------------------------------- the pipeline


def check_token(
    token: str,
    checks: TokenChecks,
    *,
    hint: str | None = None,
    audiences: Collection[str] = (),
    caller_min_aal: Aal | None = None,
    caller_client_id: str | None = None,
    resource: str | None = None,
    accept_default_audience: bool = False,
    now: datetime | None = None,
) -> ActiveToken:
    """Run the token steps of the pipeline; return the active token or raise :class:`Inactive`.

    ``audiences`` are the names of the resource server asking (its client id, its resource
    URI): each one's minimum aal in ``AUDIENCE_MIN_AAL`` applies, as does ``caller_min_aal``.
    ``resource`` is the identifier of the resource server asking, whose tokens alone are
    active for it (:func:`require_audience`); ``caller_client_id`` the client asking at
    ``/introspect``.
    """
    now = now or datetime.now(UTC)
    presented, session = verify_presented_token(token, hint, checks, now)
    require_refresh_token_owner(presented, caller_client_id)
    require_audience(presented, checks.audience, resource=resource,
                     caller_client_id=caller_client_id, accept_default=accept_default_audience)
    session = require_session(session, checks.sessions, presented.session_id)
    require_not_expired(session, now)
    require_recent_activity(session, now, checks.settings.inactivity_timeout)
    require_client_binding(presented, session)
    require_scopes_granted(presented, session)
    aal = require_aal(presented, session, checks, audiences, caller_min_aal)
    return active_token(presented, session, aal, checks)


def verify_presented_token(
    token: str, hint: str | None, checks: TokenChecks, now: datetime
) -> tuple[_Presented, SessionRow | None]:
    """Recognise the token by its shape, never by the hint (RFC 7662 section 2.1).

    A refresh token is verified against its session row (the tag key lives there), so that row
    comes back with it and is not read twice.
    """
    del hint  # honoured only as an order of tries; both shapes are disjoint, so one try suffices
    if not isinstance(token, str) or not token:
        raise Inactive("no token")
    if looks_like_refresh_token(token):
        found = checks.sessions.current_refresh_session(token)
        if found is None:
            raise Inactive("refresh token unknown, forged or superseded")
        return _presented_refresh(found), found.session
    return _verify_access_token(token, checks, now), None


def _verify_access_token(token: str, checks: TokenChecks, now: datetime) -> _Presented:
    try:
        try:
            claims = _verify_jwt(checks.keyset(), token, checks, now)
        except InvalidAccessToken as exc:
            kid = _unknown_kid(exc, token)
            if kid is None or checks.reload_keyset is None:
                raise
            claims = _verify_jwt(checks.reload_keyset(kid), token, checks, now)
        session_id = uuid.UUID(claims["sid"])
        aal = Aal(claims["aal"])
    except InvalidAccessToken as exc:
        raise Inactive(f"access token: {exc.reason}") from None
    except (KeyError, ValueError, TypeError, AttributeError):
        raise Inactive("access token: sid or aal missing or malformed") from None
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise Inactive("access token: scope is not a string")
    return _Presented(ACCESS_TOKEN, session_id, claims["client_id"], policy.parse_scope(scope), aal, claims)


def _verify_jwt(keyset: KeySet, token: str, checks: TokenChecks, now: datetime) -> dict[str, Any]:
    # The audience is the pipeline's own step (require_audience): who may see which audience
    # depends on the caller, not only on the token.
    return verify_access_token(keyset, token, issuer=checks.settings.issuer,
                               leeway=checks.leeway, now=now)


def _unknown_kid(exc: InvalidAccessToken, token: str) -> str | None:
    """The kid of a token refused only because this worker does not know its key yet."""
    if exc.reason != "unknown or retired kid":
        return None
    try:
        header = json.loads(base64.urlsafe_b64decode(token.split(".", 1)[0] + "=="))
    except ValueError:
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) and len(kid) <= 128 else None


def _presented_refresh(found: RefreshSession) -> _Presented:
    session = found.session
    client = str(session.client_id) if session.client_id is not None else ""
    return _Presented(REFRESH_TOKEN, session.id, client, tuple(session.scopes), session.aal, {},
                      found.amr, found.auth_time)


def require_refresh_token_owner(presented: _Presented, caller_client_id: str | None) -> None:
    """A refresh token is reported active only to its own client (RFC 7662 section 4 leaves the
    choice to the server). A resource server has no use for a refresh token: no bearer may
    present one, so "active" could only help someone who holds a stolen one check it, and would
    tell another party the session, scopes and subject behind a credential it was never given.
    ``caller_client_id`` None (the in-process resource helper) skips this step; that helper
    refuses refresh tokens outright.
    """
    if (presented.token_type == REFRESH_TOKEN and caller_client_id is not None
            and caller_client_id != presented.client_id):
        raise Inactive("refresh token introspected by a client other than its own")


def require_audience(presented: _Presented, default_audience: str | None, *,
                     resource: str | None, caller_client_id: str | None,
                     accept_default: bool) -> None:
    """Whether the caller may see this access token, by its ``aud`` (RFC 7662 section 4:
    the server decides what each caller may learn; RFC 9700 section 2.3: audience-restricted
    tokens).

    * a resource server (``resource`` set): only tokens whose ``aud`` names it; with
      ``accept_default`` (the in-process resource helper's option) also tokens of the default
      audience only (:func:`~oauth_sessions.core.resource_indicators.accepts_audience`);
    * a client at ``/introspect`` (``caller_client_id``, no ``resource``): tokens of the
      default audience, as before resource indicators; a token meant for a resource server
      only when it was issued to that very client, so no client learns another one's
      resource-bound tokens;
    * neither (``/userinfo``, the resource helper without ``resource``): the default audience.

    Refresh tokens have no audience; :func:`require_refresh_token_owner` decides for them.
    """
    if presented.token_type != ACCESS_TOKEN:
        return
    aud = _token_audiences(presented)
    if resource is None and default_audience is None:
        return
    if resource is None and caller_client_id is not None:
        if default_audience in aud or presented.client_id == caller_client_id:
            return
        raise Inactive("token for a resource server introspected by another client")
    if not accepts_audience(aud, resource=resource, default_audience=default_audience or "",
                            accept_default=accept_default):
        raise Inactive("audience mismatch")


def require_session(
    session: SessionRow | None, sessions: SessionSource, session_id: uuid.UUID
) -> SessionRow:
    """One primary-key read; a missing row is a revoked (or purged) session."""
    row = session if session is not None else sessions.get(session_id)
    if row is None:
        raise Inactive("session not found")
    return row


def require_not_expired(session: SessionRow, now: datetime) -> None:
    """Inactive *at* ``not_after`` (the column: "after which ... regarded as expired")."""
    if policy.session_expired(session.not_after, now):
        raise Inactive("session past not_after")


def require_recent_activity(session: SessionRow, now: datetime, limit: int | None) -> None:
    """The inactivity timeout counts from the last refresh, or from sign-in if none."""
    if policy.session_inactive(session.refreshed_at or session.created_at, now, limit):
        raise Inactive("session inactive too long")


def require_client_binding(presented: _Presented, session: SessionRow) -> None:
    """The session must be the one authorized for the token's client (and so the client exists)."""
    if session.client_id is None or str(session.client_id) != presented.client_id:
        raise Inactive("token client does not match the session's client")


def require_scopes_granted(presented: _Presented, session: SessionRow) -> None:
    """A token may not carry a scope the session no longer grants (e.g. narrowed consent)."""
    if not policy.scope_within(presented.scopes, session.scopes):
        raise Inactive("token scopes exceed the session's scopes")


def require_aal(
    presented: _Presented,
    session: SessionRow,
    checks: TokenChecks,
    audiences: Collection[str],
    caller_min_aal: Aal | None,
) -> Aal:
    """Effective aal = min(token's, session's now) must meet every minimum that applies
    (:func:`~oauth_sessions.core.policy.required_aal`): the scopes', the caller's, and for the
    token's audiences and the caller's names, ``AUDIENCE_MIN_AAL`` and the registered
    resource server's ``min_aal``, whoever asks: the resource server itself, a client with
    ``can_introspect``, or the resource helper in-process.

    A downgraded session (factor removed) lowers its live tokens at once; a step-up does not
    raise tokens minted before it.
    """
    effective = policy.effective_aal(presented.aal, session.aal)
    settings = checks.settings
    needed = policy.required_aal(
        presented.scopes,
        scope_min_aal=settings.scope_min_aal,
        audience_min_aal=settings.audience_min_aal,
        audiences=[*_token_audiences(presented), *audiences],
        client_min_aal=caller_min_aal,
        resource_min_aal=checks.resource_min_aal,
        default_audience=checks.audience,
    )
    if effective < needed:
        raise AalTooLow(effective, needed)
    return effective


def _token_audiences(presented: _Presented) -> Sequence[str]:
    aud = presented.claims.get("aud", ())
    return [aud] if isinstance(aud, str) else list(aud)


def active_token(
    presented: _Presented, session: SessionRow, aal: Aal, checks: TokenChecks
) -> ActiveToken:
    username = checks.username(session.user_id) if checks.username is not None else None
    if presented.token_type == ACCESS_TOKEN:
        claims = presented.claims
        amr = claims.get("amr")
        return ActiveToken(
            token_type=ACCESS_TOKEN,
            sub=claims["sub"],
            client_id=presented.client_id,
            scopes=presented.scopes,
            session_id=session.id,
            aal=aal,
            amr=list(amr) if isinstance(amr, list) else [],
            auth_time=_int_or_none(claims.get("auth_time")),
            exp=_int_or_none(claims.get("exp")),
            iat=_int_or_none(claims.get("iat")),
            iss=claims["iss"],
            aud=list(_token_audiences(presented)),
            jti=claims.get("jti"),
            username=username,
            jkt=_bound_key(claims),
        )
    issued = session.refreshed_at or session.created_at
    return ActiveToken(
        token_type=REFRESH_TOKEN,
        sub=str(session.user_id),
        client_id=presented.client_id,
        scopes=presented.scopes,
        session_id=session.id,
        aal=aal,
        amr=list(presented.amr),
        auth_time=presented.auth_time,
        exp=int(session.not_after.timestamp()) if session.not_after else None,
        iat=int(issued.timestamp()) if issued else None,
        iss=checks.settings.issuer,
        aud=[presented.client_id],
        jti=None,
        username=username,
    )


def _bound_key(claims: Mapping[str, Any]) -> str | None:
    """``cnf.jkt`` of an access token (RFC 9449 section 6.1), when it is bound."""
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return jkt if isinstance(jkt, str) else None


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
