"""The host-app protocol: who is signed in, at which aal, and the pages the library asks for.

The library never handles passwords or second factors. The host application signs people in
however it likes and tells the library the result through :class:`HostAdapter`:

* :meth:`HostAdapter.current_authentication`: who is signed in on this browser, at which
  aal/amr and since when (``auth_time``, OIDC Core section 2), or ``None``;
* :meth:`HostAdapter.login`: send the browser to sign in, then back to ``next_url``
  (:meth:`HostAdapter.sign_in` is the same with the request's ``login_hint`` and
  ``ui_locales`` in a :class:`SignInRequest`; override either);
* :meth:`HostAdapter.step_up`: raise the current sign-in to ``required_aal`` (e.g. TOTP), then
  back to ``next_url``;
* :meth:`HostAdapter.render_consent`: show the consent page for a :class:`ConsentRequest`;
  the page posts its ``form_fields`` plus ``decision=approve`` (or ``deny``) to ``action``;
* :meth:`HostAdapter.userinfo`: the OIDC claims of a user for the granted scopes;
* :meth:`HostAdapter.logout`, :meth:`HostAdapter.confirm_logout`,
  :meth:`HostAdapter.logged_out`: RP-initiated logout (:mod:`oauth_sessions.protocol.logout`): sign the
  user out of the provider, ask before logging out without a valid ``id_token_hint``, and the
  page shown when there is nowhere to redirect to;
* :meth:`HostAdapter.render_error`: the page a person sees when an authorization or logout
  request cannot go back to the client on its own (unknown client, unregistered redirect URI,
  missing PKCE, or any error for a client no operator verified: then the page names where the
  error would have gone and offers a link, RFC 9700 section 4.11.2).

The logout methods are the :class:`~oauth_sessions.protocol.logout.LogoutHost` interface the
logout handler needs (:class:`LogoutConfirmation` and :class:`LogoutOutcome` are defined there).
:meth:`HostAdapter.logout` must be implemented by a host that keeps its own sign-in: the
default says so, and RP-initiated logout then tells the user honestly that they are still
signed in to the provider instead of claiming a sign-out that did not happen.

Install it with ``OAuthSessions(app, host=MyHost())``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from markupsafe import escape

from ..core.types import Aal
from ..protocol.logout import LogoutConfirmation, LogoutOutcome
from ..storage.session_rows import AmrEntry

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue

    from ..storage.clients import ClientInfo

__all__ = ["AmrEntry", "Authentication", "ConsentRequest", "ErrorPage", "HostAdapter",
           "LogoutConfirmation", "LogoutOutcome", "SignInRequest"]

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
class SignInRequest:
    """What a sign-in page may use beyond where to go next (OIDC Core 3.1.2.1).

    ``login_hint``: the identifier the relying party thinks the user will sign in with (an
    email address, say): prefill it, never trust it (anyone can send any hint; it is at most
    512 printable ASCII characters). ``ui_locales``: BCP 47 tags the page should be shown in,
    most preferred first; only well-formed tags are passed, so they are safe to print as they
    are, and a locale the host lacks is simply not used.
    """

    next_url: str
    prompt: str | None
    client: ClientInfo
    login_hint: str | None = None
    ui_locales: tuple[str, ...] = ()


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
    #: Where the browser goes after approval; the page should show its host
    #: (:func:`oauth_sessions.core.uris.host_of`) beside whether ``client.verified`` (issue 15 item 8).
    redirect_uri: str = ""
    #: The request's ``ui_locales`` (well-formed BCP 47 tags, most preferred first).
    ui_locales: tuple[str, ...] = ()
    #: RFC 8707: the resource servers (URIs) the client's tokens will be meant for, if any.
    resources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ErrorPage:
    """An error shown to the person instead of being redirected to the client.

    ``continue_url``, when set, is where the error would have been redirected (the client's own
    redirect URI with ``error``, ``state`` and ``iss``, or a post-logout redirect URI): the page
    may offer it as a link, naming ``continue_host``, but must never follow it on its own,
    because the client is not verified (or the logout hint is old) and the target is whatever
    its registrant chose.
    """

    error: str
    description: str
    status: int = 400
    client: ClientInfo | None = None
    continue_url: str | None = None
    continue_host: str | None = None


def _html(body: str, title: str, status: int = 200) -> ResponseReturnValue:
    return (f"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport "
            f"content=\"width=device-width, initial-scale=1\"><title>{title}</title>"
            "<body style=\"font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;"
            f"padding:0 1rem;line-height:1.5\">{body}</body></html>", status,
            {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})


class HostAdapter:
    """Subclass and override; every method says what it must do when left out."""

    #: The claims :meth:`userinfo` can return (``name``, ``email`` ...), added to discovery's
    #: ``claims_supported`` beside the ID token's own claims. Default: none.
    claims_supported: tuple[str, ...] = ()

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
        ``prompt=login`` and ``max_age`` removed, so the round trip cannot loop (for a pushed
        request, RFC 9126: its ``client_id``, ``request_uri`` and a signed ``par_ticket``
        recording the sign-in, the parameters staying on the server). Required: the default
        raises.
        """
        raise NotImplementedError("HostAdapter.login(next_url, prompt) must return a response "
                                  "that signs the user in and then redirects to next_url")

    def sign_in(self, sign_in: SignInRequest) -> ResponseReturnValue:
        """:meth:`login` with the request's ``login_hint`` and ``ui_locales``.

        The authorization endpoint calls this one. Override it to prefill the sign-in form or
        pick its language; the default calls ``login(next_url, prompt)``, so a host that
        implements only :meth:`login` works as before.
        """
        return self.login(sign_in.next_url, sign_in.prompt)

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

        Implement it: afterwards ``prompt=none`` must need a new sign-in. The default raises
        ``NotImplementedError``, which the logout endpoint reports to the user as "you are
        still signed in to the provider" (:class:`LogoutOutcome`), never as a full sign-out."""
        raise NotImplementedError("HostAdapter.logout(user_id) must end the provider sign-in")

    def confirm_logout(self, confirmation: LogoutConfirmation) -> ResponseReturnValue:
        """Ask whether to sign out (RP-Initiated Logout 1.0 section 2: the OP should ask when
        the request has no valid ``id_token_hint``). Default: a minimal HTML form."""
        fields = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                         for k, v in confirmation.form_fields)
        client = confirmation.client
        who = f" of {escape(client.name)}" if client is not None and client.name else ""
        action = escape(confirmation.action)
        return (f"<!doctype html><title>Sign out</title><form method=post action=\"{action}\">"
                f"<p>Sign out{who}?</p>{fields}<button name=decision value=logout>Sign out</button></form>",
                200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})

    def logged_out(self, outcome: LogoutOutcome) -> ResponseReturnValue:
        """The page after a logout that does not redirect: say what ended, and only that.

        ``outcome.continue_url`` (an unverified client's, or an old hint's, return address) may
        be offered as a link naming ``continue_host``, never followed automatically."""
        client = outcome.client
        app = escape(client.name) if client is not None and client.name else "the app"
        if outcome.provider_signed_out:
            text = "<p>You are signed out.</p>"
        elif client is not None and outcome.client_session_ended:
            text = (f"<p>You have signed out of {app}. You are still signed in to this "
                    "provider.</p>")
        else:
            text = "<p>No sign-in ended. You are still signed in to this provider.</p>"
        if outcome.continue_url:
            text += (f"<p><a href=\"{escape(outcome.continue_url)}\">Continue to "
                     f"{escape(outcome.continue_host or '')}</a> (a site this provider has "
                     "not verified)</p>")
        return _html(text, "Signed out")

    def render_error(self, page: ErrorPage) -> ResponseReturnValue:
        """The page for an authorization or logout error that is not redirected to the client.

        Shown to browsers only (requests that accept ``text/html``); API callers get the RFC
        6749 JSON error. Default: a plain page with the error, its description and, for an
        unverified client, a link to ``continue_url`` that names ``continue_host``."""
        text = (f"<h1>This request cannot continue</h1><p>{escape(page.description)}</p>"
                f"<p><small>Error code: {escape(page.error)}</small></p>")
        if page.continue_url:
            who = escape(page.client.name) if page.client is not None and page.client.name else ""
            text += (f"<p>{who} asked to send you back to <strong>"
                     f"{escape(page.continue_host or '')}</strong>. This provider has not "
                     f"verified that app. <a href=\"{escape(page.continue_url)}\">Continue to "
                     f"{escape(page.continue_host or '')}</a></p>")
        return _html(text, "Error", page.status)
