"""The host-app protocol: who is signed in, at which aal, and the pages the library asks for.

The library never handles passwords or second factors. The host application signs people in
however it likes and tells the library the result through :class:`HostAdapter`:

* :meth:`HostAdapter.current_authentication`: who is signed in on this browser, at which
  aal/amr and since when (``auth_time``, OIDC Core section 2), or ``None``;
* :meth:`HostAdapter.login`: send the browser to sign in, then back to ``next_url``;
* :meth:`HostAdapter.step_up`: raise the current sign-in to ``required_aal`` (e.g. TOTP), then
  back to ``next_url``;
* :meth:`HostAdapter.render_consent`: show the consent page for a :class:`ConsentRequest`;
  the page posts its ``form_fields`` plus ``decision=approve`` (or ``deny``) to ``action``;
* :meth:`HostAdapter.userinfo`: the OIDC claims of a user for the granted scopes;
* :meth:`HostAdapter.logout`, :meth:`HostAdapter.confirm_logout`,
  :meth:`HostAdapter.logged_out`: RP-initiated logout (:mod:`oauth_sessions.protocol.logout`): sign the
  user out of the provider, ask before logging out without a valid ``id_token_hint``, and the
  page shown when there is nowhere to redirect to. Their defaults are safe: nothing, a bare form,
  a bare page.

Install it with ``OAuthSessions(app, host=MyHost())``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..core.types import Aal

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue

    from ..storage.clients import ClientInfo

__all__ = ["AmrEntry", "Authentication", "ConsentRequest", "HostAdapter", "LogoutConfirmation"]

try:  # the sessions engineer's record type; a local twin keeps this module importable alone
    from ..storage.sessions import AmrEntry
except ImportError:  # pragma: no cover - only before store.py exists
    @dataclass(frozen=True, slots=True)
    class AmrEntry:  # type: ignore[no-redef]
        method: str
        timestamp: datetime


@dataclass(frozen=True, slots=True)
class Authentication:
    """The host's answer to "who is signed in here?".

    ``auth_time`` is when the user last actively authenticated (OIDC ``auth_time``);
    ``not_after`` lets the host cap the OAuth session it starts (e.g. a "remember me" limit).
    """

    user_id: uuid.UUID
    aal: Aal
    amr: Sequence[AmrEntry]
    auth_time: datetime
    factor_id: uuid.UUID | None = None
    not_after: datetime | None = None
    username: str | None = None

    def __post_init__(self) -> None:
        for name in ("auth_time", "not_after"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"Authentication.{name} must be timezone-aware (UTC), got {value!r}")
        if not isinstance(self.aal, Aal):
            object.__setattr__(self, "aal", Aal(self.aal))


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    """What the consent page needs: who asks, for what, and how to answer."""

    client: ClientInfo
    user_id: uuid.UUID
    scopes: tuple[str, ...]
    #: Scopes the user already granted this client (shown as such, not asked again).
    granted_scopes: tuple[str, ...]
    #: Where the page posts its answer.
    action: str
    #: Hidden fields the form must post back unchanged (the request and a CSRF ticket).
    form_fields: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class LogoutConfirmation:
    """What the "sign out?" page needs: the client asking (if known) and how to answer.

    The page posts ``form_fields`` plus ``decision=logout`` to ``action``; cancelling is a link
    back to the host's own pages, never a post.
    """

    client: ClientInfo | None
    action: str
    form_fields: tuple[tuple[str, str], ...] = field(default=())


class HostAdapter:
    """Subclass and override; every method says what it must do when left out."""

    def current_authentication(self) -> Authentication | None:
        """Who is signed in on this browser, at which aal and since when; ``None`` if nobody.

        Called on every ``/authorize`` request. ``auth_time`` must move only when the person
        actively authenticates again: ``max_age`` and ``prompt=login`` are judged by it
        (OIDC Core section 3.1.2.1). Required: the default raises.
        """
        raise NotImplementedError(
            "HostAdapter.current_authentication() must return the signed-in user's "
            "Authentication (or None); pass OAuthSessions(app, host=YourHost())"
        )

    def login(self, next_url: str, prompt: str | None) -> ResponseReturnValue:
        """A response that signs the person in, then sends the browser to ``next_url``.

        Called when nobody is signed in, when ``prompt=login`` asks for a new sign-in, or when
        ``max_age`` says the last one is too old; ``prompt`` is the request's ``prompt`` values
        (space separated) or ``None``. ``next_url`` is this authorization request again with
        ``prompt=login`` and ``max_age`` removed, so the round trip cannot loop. Required: the
        default raises.
        """
        raise NotImplementedError("HostAdapter.login(next_url, prompt) must return a response "
                                  "that signs the user in and then redirects to next_url")

    def step_up(self, next_url: str, required_aal: Aal) -> ResponseReturnValue:
        """A response that raises the current sign-in to ``required_aal`` (e.g. asks for a TOTP
        code), then sends the browser to ``next_url``.

        Called when the scopes (``SCOPE_MIN_AAL``), the client's ``min_aal`` or the request's
        ``acr_values`` need a higher aal than :meth:`current_authentication` reports: the
        provider's half of an RFC 9470 step-up. Required as soon as any of them asks for aal2:
        the default raises.
        """
        raise NotImplementedError("HostAdapter.step_up(next_url, required_aal) must return a "
                                  "response that raises the sign-in to required_aal")

    def render_consent(self, request_info: ConsentRequest) -> ResponseReturnValue:
        """The consent page: name the client and each scope, and post ``form_fields`` plus
        ``decision=approve`` or ``decision=deny`` to ``action``.

        The fields include a CSRF ticket bound to the signed-in user and this exact request;
        an answer without it is refused. Called only when no remembered grant covers the scopes
        (or ``prompt=consent``). Required: the default raises.
        """
        raise NotImplementedError("HostAdapter.render_consent(request_info) must return the "
                                  "consent page")

    def userinfo(self, user_id: uuid.UUID, scopes: Sequence[str]) -> dict[str, Any]:
        """OIDC standard claims for ``scopes`` (``sub`` is added by the library). Default: none."""
        return {}

    def logout(self, user_id: uuid.UUID) -> None:
        """Sign ``user_id`` out of the provider in this browser (e.g. clear the host's login
        cookie), called during RP-initiated logout when that user is the one signed in here.
        Default: nothing, so the provider's own login outlives the client's session."""
        return None

    def confirm_logout(self, confirmation: LogoutConfirmation) -> ResponseReturnValue:
        """Ask whether to sign out (RP-Initiated Logout 1.0 section 2: the OP should ask when
        the request has no valid ``id_token_hint``). Default: a minimal HTML form."""
        from markupsafe import escape

        fields = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                         for k, v in confirmation.form_fields)
        client = confirmation.client
        who = f" of {escape(client.name)}" if client is not None and client.name else ""
        action = escape(confirmation.action)
        return (f"<!doctype html><title>Sign out</title><form method=post action=\"{action}\">"
                f"<p>Sign out{who}?</p>{fields}<button name=decision value=logout>Sign out</button></form>",
                200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})

    def logged_out(self) -> ResponseReturnValue:
        """The page after a logout that has no registered place to return to."""
        return ("<!doctype html><title>Signed out</title><p>You are signed out.</p>", 200,
                {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})
