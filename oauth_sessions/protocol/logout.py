"""OpenID Connect RP-Initiated Logout 1.0: ``GET``/``POST {prefix}/logout`` (``end_session_endpoint``).

The handler is :class:`LogoutEndpoint`; the steps, in order, each a small function below:

0. :func:`~oauth_sessions.protocol.request_checks.check_request`: request hygiene.
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
   confirmation page (:meth:`LogoutHost.confirm_logout`) whose form posts back a ticket,
   signed with ``SECRET_KEY``, that binds the request and the signed-in user for ten minutes:
   a third-party page cannot sign a user out by making their browser post here.
5. Redirect to the registered URI with ``state`` echoed (section 3), but only on its own when
   the client is verified and, with a hint, the hint was issued within ``LOGOUT_HINT_MAX_AGE``
   (:func:`may_redirect`): a self-registered client's URI is whatever its registrant typed, and
   an ID token never expires for logout, so either would make this endpoint an open
   redirector (RFC 9700 section 4.11.2). Otherwise, and when there is no URI, the host's
   :meth:`LogoutHost.logged_out` page says what ended (:class:`LogoutOutcome`) and may link
   to the target, naming its host.

The host's sign-in ends only through :meth:`LogoutHost.logout`; a host that does not implement
it gets a page saying the user is still signed in to the provider, never "you are signed out".

The handler knows no Flask: what it needs of the host is :class:`LogoutHost`, which the Flask
host adapter (:class:`oauth_sessions.flask.host.HostAdapter`) implements. The host's pages are
whatever the host renders (``Page``); the handler hands them back untouched, beside its own
:class:`~oauth_sessions.protocol.http.Answer` for redirects and errors, so the blueprint's view
(:mod:`oauth_sessions.flask.blueprints`) returns them to Flask as the host made them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Protocol, TypeVar

from authlib.common.urls import add_params_to_uri
from itsdangerous import BadData, URLSafeTimedSerializer

from ..core.settings import Settings
from ..core.subjects import subject_for
from ..core.uris import host_of
from ..jose.id_tokens import InvalidIdTokenHint, verify_id_token_hint
from ..jose.jws import REASON_UNKNOWN_KID, kid_of
from ..storage.clients import ClientInfo, ClientStore, parse_client_id
from ..storage.sessions import SessionStore
from ..storage.signing_keys import KeyStore
from .http import NO_STORE, Answer, HttpRequest, error_answer
from .request_checks import check_request

__all__ = ["Hint", "LogoutConfirmation", "LogoutEndpoint", "LogoutError", "LogoutHost",
           "LogoutOutcome", "checked_redirect", "may_redirect", "requesting_client",
           "verified_hint"]

_TICKET_MAX_AGE: Final = 600
_TICKET_SALT: Final = "oauth-sessions-logout"
_BOUND: Final = ("client_id", "post_logout_redirect_uri", "state")

#: What the host renders its pages as (for the Flask host adapter, a Flask response value).
Page = TypeVar("Page", covariant=True)


@dataclass(frozen=True, slots=True)
class LogoutConfirmation:
    """What the "sign out?" page needs: the client asking (if known) and how to answer.

    The page posts ``form_fields`` plus ``decision=logout`` to ``action``; cancelling is a link
    back to the host's own pages, never a post.
    """

    client: ClientInfo | None
    action: str
    form_fields: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class LogoutOutcome:
    """What RP-initiated logout actually ended, for :meth:`LogoutHost.logged_out`.

    ``provider_signed_out``: the host's own sign-in in this browser ended (its
    :meth:`LogoutHost.logout` ran). False when nobody, or someone else, was signed in here, or
    when the host does not implement ``logout``. ``client``: the client whose session ended.
    """

    provider_signed_out: bool
    client: ClientInfo | None = None
    #: The session of ``client`` named by the ``id_token_hint`` was ended.
    client_session_ended: bool = False
    continue_url: str | None = None
    continue_host: str | None = None


class SignedIn(Protocol):
    """Who is signed in on this browser, as far as logout cares."""

    @property
    def user_id(self) -> uuid.UUID: ...


class LogoutHost(Protocol[Page]):
    """What the logout handler needs of the host app; ``HostAdapter`` implements it.

    ``current_authentication`` and ``logout`` may raise ``NotImplementedError`` (nobody known
    to be signed in; the host's sign-in cannot be ended), which the handler reports honestly.
    """

    def current_authentication(self) -> SignedIn | None: ...

    def logout(self, user_id: uuid.UUID) -> None: ...

    def confirm_logout(self, confirmation: LogoutConfirmation) -> Page: ...

    def logged_out(self, outcome: LogoutOutcome) -> Page: ...


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


class LogoutEndpoint(Generic[Page]):
    """The handler: :meth:`__call__` runs the steps of the module docstring.

    ``secret_key`` returns the key that signs the confirmation form's ticket (Flask's
    ``SECRET_KEY``), read when a ticket is made or checked.
    """

    def __init__(self, *, settings: Settings, keys: KeyStore, clients: ClientStore,
                 sessions: SessionStore, host: LogoutHost[Page],
                 secret_key: Callable[[], str | bytes | None]) -> None:
        self._settings = settings
        self._keys = keys
        self._clients = clients
        self._sessions = sessions
        self._host = host
        self._secret_key = secret_key

    def __call__(self, request: HttpRequest, *, form_action: str) -> Answer | Page:
        """``form_action``: this endpoint's URL, where the confirmation form posts back."""
        refused = check_request(request)
        if refused is not None:
            return refused
        params = request_params(request)
        try:
            hint = verified_hint(self._keys, self._settings.issuer, params.get("id_token_hint"))
            client = requesting_client(self._clients, params, hint)
            redirect_uri = checked_redirect(params, client)
        except LogoutError as exc:
            return error_answer(exc.error, exc.description)
        redirect = may_redirect(self._settings, client, hint)
        if hint is not None:
            outcome = self.end_hinted_session(hint, client)
            return self._finish(redirect_uri, params, outcome, redirect=redirect)
        user = self._signed_in_user()
        if self._confirmed(request.method, params, user):
            signed_out = user is not None and self._host_logout(user)
            return self._finish(redirect_uri, params,
                                LogoutOutcome(provider_signed_out=signed_out, client=client),
                                redirect=redirect)
        fields = tuple((k, params[k]) for k in _BOUND if k in params)
        ticket = self._serializer().dumps(_ticket_payload(params, user))
        return self._host.confirm_logout(LogoutConfirmation(
            client=client, action=form_action, form_fields=(*fields, ("logout_ticket", ticket))))

    def end_hinted_session(self, hint: Hint, client: ClientInfo | None) -> LogoutOutcome:
        """Step 4 with a hint: end its session and sign its user out of the provider here."""
        ended = False

        def is_hinted(user_id: uuid.UUID) -> bool:
            """The hint's ``sub`` is the client's subject of ``user_id`` (pairwise or public)."""
            sector = client.sector_identifier if client is not None else None
            return subject_for(user_id, sector, self._settings.pairwise_salt) == hint.subject

        if hint.session_id is not None and client is not None:
            info = self._sessions.get(hint.session_id)
            if info is not None and is_hinted(info.user_id) and info.client_id == client.id:
                ended = bool(self._sessions.revoke(info.id, reason="rp_initiated_logout"))
        signed_in = self._signed_in_user()
        provider = signed_in is not None and is_hinted(signed_in) and self._host_logout(signed_in)
        return LogoutOutcome(provider_signed_out=provider, client=client, client_session_ended=ended)

    def _host_logout(self, user: uuid.UUID) -> bool:
        """Whether the host ended its own sign-in (it may not implement ``logout``)."""
        try:
            self._host.logout(user)
        except NotImplementedError:
            return False
        return True

    def _signed_in_user(self) -> uuid.UUID | None:
        try:
            auth = self._host.current_authentication()
        except NotImplementedError:
            return None
        return auth.user_id if auth is not None else None

    def _serializer(self) -> URLSafeTimedSerializer:
        secret = self._secret_key()
        if not secret:
            raise RuntimeError("RP-initiated logout without id_token_hint needs the app's "
                               "SECRET_KEY (it signs the confirmation form)")
        return URLSafeTimedSerializer(secret, salt=_TICKET_SALT)

    def _confirmed(self, method: str, params: Mapping[str, str], user: uuid.UUID | None) -> bool:
        if method != "POST" or params.get("decision") != "logout":
            return False
        try:
            payload = self._serializer().loads(params.get("logout_ticket", ""),
                                               max_age=_TICKET_MAX_AGE)
        except BadData:
            return False
        return bool(payload == _ticket_payload(params, user))

    def _finish(self, redirect_uri: str | None, params: Mapping[str, str],
                outcome: LogoutOutcome, *, redirect: bool) -> Answer | Page:
        """Step 5: back to the client with ``state``, or the host's page saying what ended."""
        if redirect_uri is None:
            return self._host.logged_out(outcome)
        query = [("state", params["state"])] if params.get("state") else []
        location = add_params_to_uri(redirect_uri, query)
        if not redirect:
            return self._host.logged_out(LogoutOutcome(
                provider_signed_out=outcome.provider_signed_out, client=outcome.client,
                client_session_ended=outcome.client_session_ended, continue_url=location,
                continue_host=host_of(redirect_uri)))
        return Answer(302, (("Location", location), *NO_STORE.items()))


def request_params(request: HttpRequest) -> dict[str, str]:
    """The query parameters, and for a POST the form's over them (the first value of each)."""
    values = dict(reversed(request.query))
    if request.method == "POST":
        values.update(request.params)
    return values


def verified_hint(keys: KeyStore, issuer: str, token: str | None) -> Hint | None:
    """Step 1. ``None`` without a hint; :class:`LogoutError` for one we did not issue."""
    if not token:
        return None
    claims: dict[str, Any] | None = None
    for reload in (False, True):
        try:
            keyset = keys.keyset(unknown_kid=_kid(token)) if reload else keys.keyset()
            claims = verify_id_token_hint(keyset, token, issuer=issuer)
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


def requesting_client(clients: ClientStore, params: Mapping[str, str],
                      hint: Hint | None) -> ClientInfo | None:
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
    client: ClientInfo | None = clients.get(client_id)
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


def may_redirect(settings: Settings, client: ClientInfo | None, hint: Hint | None) -> bool:
    """Step 5: whether to redirect without asking (see the module docstring)."""
    if client is None or not client.verified:
        return False
    return hint is None or time.time() - hint.issued_at <= settings.logout_hint_max_age


def _ticket_payload(params: Mapping[str, str], user: uuid.UUID | None) -> list[str]:
    return [params.get(k, "") for k in _BOUND] + [str(user or "")]
