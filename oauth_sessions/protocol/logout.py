"""OpenID Connect RP-Initiated Logout 1.0: ``GET``/``POST {prefix}/logout`` (``end_session_endpoint``).

The pipeline, in order, each step a small function below:

1. :func:`verified_hint`: an ``id_token_hint`` must be an ID token this provider signed
   (signature with our keys, ``typ``, ``iss``); expiry is not required (section 2: users log
   out long after signing in). An invalid hint is refused, never half-trusted.
2. :func:`requesting_client`: ``client_id``, which must be an audience of the hint when both are
   given (section 2), else the hint's audience.
3. :func:`checked_redirect`: ``post_logout_redirect_uri`` is honoured only if it is, string for
   string, one the client registered (section 3). A bad one is an error page, not a redirect.
4. With a valid hint, :func:`end_hinted_session` ends the session named by its ``sid`` (if it
   still belongs to the hint's user and client; the store then announces it, and every client
   with a ``backchannel_logout_uri`` gets a logout token) and asks the host to sign that user
   out of the provider when they are the one signed in here. Without one, the host shows a
   confirmation page (:meth:`HostAdapter.confirm_logout`) whose form posts back a ticket,
   signed with ``SECRET_KEY``, that binds the request and the signed-in user for ten minutes:
   a third-party page cannot sign a user out by making their browser post here.
5. Redirect to the registered URI with ``state`` echoed (section 3), but only on its own when
   the client is verified and, with a hint, the hint was issued within ``LOGOUT_HINT_MAX_AGE``
   (:func:`may_redirect`): a self-registered client's URI is whatever its registrant typed, and
   an ID token never expires for logout, so either would make this endpoint an open
   redirector (RFC 9700 section 4.11.2). Otherwise, and when there is no URI, the host's
   :meth:`HostAdapter.logged_out` page says what ended (:class:`LogoutOutcome`) and may link
   to the target, naming its host.

The host's sign-in ends only through :meth:`HostAdapter.logout`; a host that does not implement
it gets a page saying the user is still signed in to the provider, never "you are signed out".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from authlib.common.urls import add_params_to_uri
from flask import Response, current_app, request, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadData, URLSafeTimedSerializer

from ..core.subjects import subject_for
from ..core.uris import host_of
from ..flask.host import HostAdapter, LogoutConfirmation, LogoutOutcome
from ..flask.responses import NO_STORE, error_response, request_params
from ..flask.state import AppState, get_state
from ..jose.id_tokens import InvalidIdTokenHint, verify_id_token_hint
from ..jose.jws import REASON_UNKNOWN_KID, kid_of
from ..storage.clients import ClientInfo, parse_client_id

__all__ = ["LogoutError", "checked_redirect", "end_session", "may_redirect", "requesting_client",
           "verified_hint"]

_TICKET_MAX_AGE: Final = 600
_TICKET_SALT: Final = "oauth-sessions-logout"
_BOUND: Final = ("client_id", "post_logout_redirect_uri", "state")


class LogoutError(Exception):
    """A logout request that cannot be honoured: ``invalid_request`` with a public reason."""

    def __init__(self, description: str, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.error, self.description = error, description


@dataclass(frozen=True, slots=True)
class Hint:
    subject: str
    audiences: tuple[str, ...]
    session_id: uuid.UUID | None
    #: ``iat`` of the ID token (0 when it has none: then it is never fresh).
    issued_at: float = 0.0


def verified_hint(state: AppState, token: str | None) -> Hint | None:
    """Step 1. ``None`` without a hint; :class:`LogoutError` for one we did not issue."""
    if not token:
        return None
    keys = state.services.keys
    claims: dict[str, Any] | None = None
    for reload in (False, True):
        try:
            keyset = keys.keyset(unknown_kid=_kid(token)) if reload else keys.keyset()
            claims = verify_id_token_hint(keyset, token, issuer=state.settings.issuer)
            break
        except InvalidIdTokenHint as exc:  # another worker may have rotated: reload once
            if reload or exc.reason != REASON_UNKNOWN_KID:
                raise LogoutError("id_token_hint is not a valid ID token of this provider") from None
    assert claims is not None
    aud = claims["aud"]
    audiences = (aud,) if isinstance(aud, str) else tuple(str(a) for a in aud)
    try:
        sid = uuid.UUID(str(claims["sid"])) if "sid" in claims else None
    except ValueError:
        sid = None
    iat = claims.get("iat")
    issued_at = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else 0.0
    return Hint(str(claims["sub"]), audiences, sid, issued_at)


def _kid(token: str) -> str:
    return kid_of(token) or ""


def requesting_client(state: AppState, params: Mapping[str, str], hint: Hint | None) -> ClientInfo | None:
    """Step 2. The client the request is from, if it can be known."""
    given = params.get("client_id")
    if given is not None:
        if parse_client_id(given) is None:
            raise LogoutError("client_id is not a registered client")
        if hint is not None and given not in hint.audiences:
            raise LogoutError("client_id is not an audience of id_token_hint")
        client_id = given
    elif hint is not None and len(hint.audiences) == 1:
        client_id = hint.audiences[0]
    else:
        return None
    client: ClientInfo | None = state.services.clients.get(client_id)
    if client is None and given is not None:
        raise LogoutError("client_id is not a registered client")
    return client


def checked_redirect(params: Mapping[str, str], client: ClientInfo | None) -> str | None:
    """Step 3. The redirect target, exactly as registered, or ``None`` when none was asked."""
    uri = params.get("post_logout_redirect_uri")
    if uri is None:
        return None
    if client is None:
        raise LogoutError("post_logout_redirect_uri needs id_token_hint or client_id")
    if uri not in client.post_logout_redirect_uris:
        raise LogoutError("post_logout_redirect_uri is not registered for this client")
    return uri


def end_hinted_session(state: AppState, hint: Hint, client: ClientInfo | None,
                       host: HostAdapter) -> LogoutOutcome:
    """Step 4 with a hint: end its session and sign its user out of the provider here."""
    sessions = state.services.sessions
    ended = False

    def is_hinted(user_id: uuid.UUID) -> bool:
        """The hint's ``sub`` is the client's subject of ``user_id`` (pairwise or public)."""
        sector = client.sector_identifier if client is not None else None
        return subject_for(user_id, sector, state.settings.pairwise_salt) == hint.subject

    if hint.session_id is not None and client is not None:
        info = sessions.get(hint.session_id)
        if info is not None and is_hinted(info.user_id) and info.client_id == client.id:
            ended = bool(sessions.revoke(info.id, reason="rp_initiated_logout"))
    signed_in = _signed_in_user(host)
    provider = signed_in is not None and is_hinted(signed_in) and _host_logout(host, signed_in)
    return LogoutOutcome(provider_signed_out=provider, client=client, client_session_ended=ended)


def _host_logout(host: HostAdapter, user: uuid.UUID) -> bool:
    """Whether the host ended its own sign-in (it may not implement ``logout``)."""
    try:
        host.logout(user)
    except NotImplementedError:
        return False
    return True


def may_redirect(state: AppState, client: ClientInfo | None, hint: Hint | None) -> bool:
    """Step 5: whether to redirect without asking (see the module docstring)."""
    if client is None or not client.verified:
        return False
    return hint is None or time.time() - hint.issued_at <= state.settings.logout_hint_max_age


def _signed_in_user(host: HostAdapter) -> uuid.UUID | None:
    try:
        auth = host.current_authentication()
    except NotImplementedError:
        return None
    return auth.user_id if auth is not None else None


def _serializer() -> URLSafeTimedSerializer:
    if not current_app.secret_key:
        raise RuntimeError("RP-initiated logout without id_token_hint needs the app's SECRET_KEY "
                           "(it signs the confirmation form)")
    return URLSafeTimedSerializer(current_app.secret_key, salt=_TICKET_SALT)


def _ticket_payload(params: Mapping[str, str], user: uuid.UUID | None) -> list[str]:
    return [params.get(k, "") for k in _BOUND] + [str(user or "")]


def _confirmed(params: Mapping[str, str], user: uuid.UUID | None) -> bool:
    if request.method != "POST" or params.get("decision") != "logout":
        return False
    try:
        payload = _serializer().loads(params.get("logout_ticket", ""), max_age=_TICKET_MAX_AGE)
    except BadData:
        return False
    return bool(payload == _ticket_payload(params, user))


def _finish(host: HostAdapter, redirect_uri: str | None, params: Mapping[str, str],
            outcome: LogoutOutcome, *, redirect: bool) -> ResponseReturnValue:
    """Step 5: back to the client with ``state``, or the host's page saying what ended."""
    if redirect_uri is None:
        return host.logged_out(outcome)
    query = [("state", params["state"])] if params.get("state") else []
    location = add_params_to_uri(redirect_uri, query)
    if not redirect:
        return host.logged_out(LogoutOutcome(
            provider_signed_out=outcome.provider_signed_out, client=outcome.client,
            client_session_ended=outcome.client_session_ended, continue_url=location,
            continue_host=host_of(redirect_uri)))
    return Response(status=302, headers={"Location": location, **NO_STORE})


def end_session() -> ResponseReturnValue:
    """``/logout``: hint → client → redirect target → end session (or confirm) → redirect."""
    state = get_state()
    host: HostAdapter = state.services.host
    params = request_params()
    try:
        hint = verified_hint(state, params.get("id_token_hint"))
        client = requesting_client(state, params, hint)
        redirect_uri = checked_redirect(params, client)
    except LogoutError as exc:
        return error_response(exc.error, exc.description)
    redirect = may_redirect(state, client, hint)
    if hint is not None:
        outcome = end_hinted_session(state, hint, client, host)
        return _finish(host, redirect_uri, params, outcome, redirect=redirect)
    user = _signed_in_user(host)
    if _confirmed(params, user):
        signed_out = user is not None and _host_logout(host, user)
        return _finish(host, redirect_uri, params,
                       LogoutOutcome(provider_signed_out=signed_out, client=client),
                       redirect=redirect)
    fields = tuple((k, params[k]) for k in _BOUND if k in params)
    ticket = _serializer().dumps(_ticket_payload(params, user))
    return host.confirm_logout(LogoutConfirmation(
        client=client, action=url_for("oauth_sessions.end_session"),
        form_fields=(*fields, ("logout_ticket", ticket))))
