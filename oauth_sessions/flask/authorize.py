"""The authorization endpoint's Flask view (RFC 6749 section 4.1.1, OIDC Core 3.1.2).

Its pipeline, in order: the request (:func:`~oauth_sessions.protocol.code_grant.parse_authorization_request`:
client, exact redirect URI, then everything whose errors may be redirected) → who is signed in
(the host; ``prompt=login`` and ``max_age`` force a new sign-in) → assurance level (``acr_values``,
scopes, client minimum: step-up through the host) → consent (remembered grants cover the same
or fewer scopes; ``prompt=consent`` always asks) → a one-time code, sent back with ``state`` and
RFC 9207 ``iss``. ``prompt=none`` turns every interaction into its OIDC error instead.

A client that authorizes again while it holds a session (a step-up, more scopes) names that
session with ``id_token_hint``: when the hint is an ID token this provider issued to the same
client for the user signed in now, and its ``sid`` is still live, the code records it and
redeeming the code ends it in the transaction that creates the new session (reason
``superseded``, so back-channel logout and the event log see it). Any other hint (another
user's, another client's, a forged or unknown one) replaces nothing and is otherwise ignored,
so a token cannot be used to end someone else's session.

The consent page posts back with a CSRF ticket signed with the app's ``SECRET_KEY``: it binds
the answer to the signed-in user and to the exact request, for ten minutes.

A pushed request (RFC 9126: ``client_id`` and a ``request_uri`` of this server) is taken once,
at the first visit (:func:`~oauth_sessions.protocol.pushed_requests.pushed_parameters`); its
parameters stay on the server. The URLs this view sends the browser on with (to sign-in,
step-up, the consent form) carry ``client_id``, ``request_uri`` and a ``par_ticket`` signed
with ``SECRET_KEY`` that names the request, so only that browser comes back to it, for ten
minutes; the ticket also records a sign-in done for ``prompt=login``/``max_age``, which for a
plain request is recorded by dropping them from the URL. The code is issued once per pushed
request (a second completion is ``invalid_request_uri``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from flask import Response, current_app, request, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..core.policy import clean_user_agent
from ..core.subjects import subject_for
from ..core.types import normalize_ip
from ..core.uris import host_of
from ..protocol.code_grant import AuthorizationRequest, AuthorizeError, parse_authorization_request
from ..protocol.logout import LogoutError, verified_hint
from ..protocol.pushed_requests import is_pushed_reference, pushed_parameters
from ..storage.pushed_requests import hash_reference
from .host import Authentication, ConsentRequest, ErrorPage, HostAdapter, SignInRequest
from .responses import NO_STORE, error_page, error_response, request_params
from .state import AppState, get_state

__all__ = ["authorize"]

_CONSENT_MAX_AGE: Final = 600
#: The parameters a consent ticket binds (RFC 6749 4.1.1, RFC 7636 4.3, OIDC Core 3.1.2.1).
#: Fields a host adds to its own form (its CSRF token, say) are left out on purpose.
_BOUND_PARAMETERS: Final = frozenset({
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
    "code_challenge_method", "prompt", "max_age", "acr_values", "response_mode", "login_hint",
    "ui_locales", "claims_locales", "display", "id_token_hint", "claims", "resource",
})

def _redirect_error(exc: AuthorizeError, issuer: str) -> ResponseReturnValue:
    """Errors go back to the client by redirect only when that is safe and vetted.

    Without a checked redirect URI the user sees the error (RFC 6749 section 4.1.2.1). For a
    client no operator verified, the redirect URI is whatever its registrant typed, so an
    automatic error redirect would make this server an open redirector (RFC 9700 section
    4.11.2): the user sees the error page, which names the target and links to it.
    """
    if exc.redirect_uri is None:
        return error_page(ErrorPage(exc.error, exc.description, exc.status, exc.client))
    params = [("error", exc.error), ("error_description", exc.description)]
    if exc.state:
        params.append(("state", exc.state))
    params.append(("iss", issuer))  # RFC 9207 section 2: in error responses too
    location = add_params_to_uri(exc.redirect_uri, params)
    if exc.client is None or not exc.client.verified:
        return error_page(ErrorPage(exc.error, exc.description, exc.status, exc.client,
                                    continue_url=location,
                                    continue_host=host_of(exc.redirect_uri)))
    return Response(status=302, headers={"Location": location, **NO_STORE})


def _without_login(params: Mapping[str, str]) -> dict[str, str]:
    """``params`` without what the sign-in we send the user to satisfies.

    prompt=login and max_age are satisfied by that sign-in; keeping them would loop (a fresh
    sign-in is already a second or two old when the browser comes back, so max_age=0 could
    never pass). The relying party still checks the ID token's auth_time against its max_age
    (OIDC Core 3.1.3.7 step 13).
    """
    query = dict(params)
    query.pop("max_age", None)
    if "prompt" in query:
        rest = [p for p in query["prompt"].split(" ") if p and p != "login"]
        if rest:
            query["prompt"] = " ".join(rest)
        else:
            del query["prompt"]
    return query


def _authorize_url(params: Mapping[str, str], *, drop_login: bool) -> str:
    """This request as a GET URL, for the host to come back to after login or step-up."""
    query = dict(params)
    for key in ("decision", "consent_ticket"):
        query.pop(key, None)
    if "par_ticket" in query:  # a pushed request: the login done goes into the ticket
        query["par_ticket"] = _par_ticket(query["request_uri"], login_done=drop_login
                                          or _par_login_done(query["par_ticket"]))
    elif drop_login:
        query = _without_login(query)
    return url_for("oauth_sessions.authorize") + "?" + urlencode(_repeated(query))


def _repeated(params: Mapping[str, str]) -> list[tuple[str, str]]:
    """``params`` as pairs, ``resource`` repeated again as the client sent it (RFC 8707
    section 2; :func:`~oauth_sessions.flask.responses.request_params` joined its values)."""
    pairs = [(k, v) for k, v in params.items() if k != "resource"]
    if "resource" in params:
        pairs.extend(("resource", r) for r in params["resource"].split(" "))
    return pairs


def _par_ticket(request_uri: str, *, login_done: bool) -> str:
    """The continuation of a pushed request taken by this browser (module docstring)."""
    return str(_serializer("oauth-sessions-par").dumps(
        {"r": hash_reference(request_uri), "l": login_done}))


def _par_ticket_data(ticket: str) -> dict[str, object] | None:
    try:
        data = _serializer("oauth-sessions-par").loads(ticket, max_age=_CONSENT_MAX_AGE)
    except BadSignature:
        return None
    return data if isinstance(data, dict) else None


def _par_login_done(ticket: str) -> bool:
    data = _par_ticket_data(ticket)
    return bool(data is not None and data.get("l") is True)


def _pushed_request(state: AppState, query: Mapping[str, str]
                    ) -> tuple[dict[str, str], dict[str, str]]:
    """(the pushed parameters, what URLs of this flow carry) for ``client_id`` + ``request_uri``.

    RFC 9126 section 4: every other query parameter is ignored. Without a ``par_ticket`` this
    is the first visit, which takes the request (once); with one, the same browser is back.
    """
    carry = {k: query[k] for k in ("client_id", "request_uri") if k in query}
    ticket = query.get("par_ticket")
    if ticket is None:
        params = pushed_parameters(query, state.services.clients, state.services.pushed_requests,
                                   resume=False)
        carry["par_ticket"] = _par_ticket(query["request_uri"], login_done=False)
        return params, carry
    data = _par_ticket_data(ticket)
    if data is None or data.get("r") != hash_reference(query["request_uri"]):
        raise AuthorizeError("invalid_request_uri", "the pushed request's continuation is "
                             "invalid or has expired; the client must push the request again")
    params = pushed_parameters(query, state.services.clients, state.services.pushed_requests,
                               resume=True)
    carry["par_ticket"] = ticket
    return (_without_login(params) if data.get("l") is True else params), carry


def _needs_login(req: AuthorizationRequest, auth: Authentication | None, posted: bool) -> bool:
    if auth is None:
        return True
    if "login" in req.prompt and not posted:
        return True
    if req.max_age is not None:
        age = (datetime.now(UTC) - auth.auth_time).total_seconds()
        if age > req.max_age:
            return True
    return False


def authorize() -> ResponseReturnValue:
    """``/authorize``: request → sign-in → assurance level → consent → code (RFC 6749 4.1)."""
    state = get_state()
    issuer = state.settings.issuer
    query = request_params()
    pushed = is_pushed_reference(query)
    try:
        # ``params``: the request; ``carry``: what the URLs of this flow carry (the same, or
        # for a pushed request its reference and continuation ticket).
        params, carry = _pushed_request(state, query) if pushed else (query, query)
        req = parse_authorization_request(params, state.services.clients, state.settings,
                                          pushed=pushed,
                                          resource_indicators=state.services.resource_indicators)
    except AuthorizeError as exc:
        return _redirect_error(exc, issuer)

    def fail(error: str, description: str) -> ResponseReturnValue:
        return _redirect_error(AuthorizeError(error, description, redirect_uri=req.redirect_uri,
                                              state=req.state, client=req.client), issuer)

    host: HostAdapter = state.services.host
    posted = request.method == "POST" and "decision" in request.form
    auth = host.current_authentication()
    if _needs_login(req, auth, posted):
        if "none" in req.prompt:
            return fail("login_required", "the user is not signed in")
        return host.sign_in(SignInRequest(
            next_url=_authorize_url(carry, drop_login=True),
            prompt=" ".join(sorted(req.prompt)) or None, client=req.client,
            login_hint=req.login_hint, ui_locales=req.ui_locales))
    assert auth is not None
    if not _is_requested_subject(state, req, auth):
        return fail("login_required", "the signed-in user is not the sub the claims request "
                    "names (OIDC Core 5.5.1)")
    if auth.aal < req.required_aal:
        if "none" in req.prompt:
            return fail("interaction_required", "a higher authentication level is required")
        return host.step_up(_authorize_url(carry, drop_login=False), req.required_aal)
    consents = state.services.consents
    granted = consents.granted(auth.user_id, req.client.id)
    if posted:
        if not _check_ticket(request.form.get("consent_ticket", ""), auth, params):
            return error_response("invalid_request", "the consent form is invalid or has expired")
        if request.form.get("decision") != "approve":
            return fail("access_denied", "the user denied the request")
        consents.grant(auth.user_id, req.client.id, req.scopes)
    elif "consent" in req.prompt or not set(req.scopes) <= set(granted):
        if "none" in req.prompt:
            return fail("consent_required", "the user has not approved this client")
        fields = tuple((k, v) for k, v in _repeated(carry)
                       if k not in {"decision", "consent_ticket"})
        info = ConsentRequest(
            client=req.client, user_id=auth.user_id, scopes=req.scopes, granted_scopes=granted,
            action=url_for("oauth_sessions.authorize"),
            form_fields=(*fields, ("consent_ticket", _make_ticket(auth, params))),
            redirect_uri=req.redirect_uri, ui_locales=req.ui_locales, resources=req.resources,
        )
        return host.render_consent(info)
    if pushed and not state.services.pushed_requests.complete(query["request_uri"]):
        return _redirect_error(AuthorizeError(
            "invalid_request_uri", "a code was already issued for this pushed request",
            client=req.client), issuer)
    return _issue_code(state, req, auth, _replaced_session(state, req, auth, params))


def _is_requested_subject(state: AppState, req: AuthorizationRequest,
                          auth: Authentication) -> bool:
    """OIDC Core 5.5.1: an ID token ``sub`` requested with a value answers only for that user."""
    wanted = req.claims.requested("id_token", "sub") if req.claims is not None else None
    if wanted is None or not wanted.values:
        return True
    subject = subject_for(auth.user_id, req.client.sector_identifier, state.settings.pairwise_salt)
    return subject in wanted.values


def _replaced_session(state: AppState, req: AuthorizationRequest, auth: Authentication,
                      params: Mapping[str, str]) -> uuid.UUID | None:
    """The live session of this client and user that ``id_token_hint`` names, if any."""
    try:
        hint = verified_hint(state.services.keys, state.settings.issuer,
                             params.get("id_token_hint"))
    except LogoutError:
        return None  # not an ID token of ours: nothing to replace
    subject = subject_for(auth.user_id, req.client.sector_identifier, state.settings.pairwise_salt)
    if (hint is None or hint.session_id is None or hint.subject != subject
            or str(req.client.id) not in hint.audiences):
        return None
    info = state.services.sessions.get(hint.session_id)
    if info is None or info.user_id != auth.user_id or info.client_id != req.client.id:
        return None
    return info.id


def _issue_code(state: AppState, req: AuthorizationRequest, auth: Authentication,
                replaces: uuid.UUID | None = None) -> Response:
    latest: dict[str, int] = {}
    for entry in auth.amr:
        latest[entry.method] = max(latest.get(entry.method, 0), int(entry.timestamp.timestamp()))
    code = state.services.authorizations.issue(
        client_id=req.client.id, user_id=auth.user_id, redirect_uri=req.redirect_uri,
        scopes=req.scopes, state=req.state, nonce=req.nonce, code_challenge=req.code_challenge,
        code_challenge_method="S256", aal=auth.aal, amr=sorted(latest.items()),
        factor_id=auth.factor_id, auth_time=auth.auth_time, not_after=auth.not_after,
        user_agent=_user_agent(), ip=_ip(), replaces_session_id=replaces,
        claims=req.claims.to_json() if req.claims is not None else None,
        resources=req.resources, dpop_jkt=req.dpop_jkt,
    )
    params = [("code", code)]
    if req.state:
        params.append(("state", req.state))
    params.append(("iss", state.settings.issuer))  # RFC 9207: mix-up defence
    return Response(status=302, headers={"Location": add_params_to_uri(req.redirect_uri, params),
                                         **NO_STORE})


def _serializer(salt: str = "oauth-sessions-consent") -> URLSafeTimedSerializer:
    secret = current_app.secret_key
    if not secret:
        raise RuntimeError("the consent page needs app.secret_key (Flask's SECRET_KEY) to sign "
                           "its CSRF ticket; set SECRET_KEY in the app config")
    return URLSafeTimedSerializer(secret, salt=salt)


def _request_digest(params: Mapping[str, str]) -> str:
    items = sorted((k, v) for k, v in params.items() if k in _BOUND_PARAMETERS)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def _make_ticket(auth: Authentication, params: Mapping[str, str]) -> str:
    """A CSRF ticket binding the consent answer to this user and this exact request."""
    return str(_serializer().dumps({"u": str(auth.user_id), "r": _request_digest(params)}))


def _check_ticket(ticket: str, auth: Authentication, params: Mapping[str, str]) -> bool:
    try:
        data = _serializer().loads(ticket, max_age=_CONSENT_MAX_AGE)
    except BadSignature:
        return False
    return (isinstance(data, dict) and data.get("u") == str(auth.user_id)
            and data.get("r") == _request_digest(params))


def _user_agent() -> str | None:
    return clean_user_agent(request.headers.get("User-Agent"), 512)


def _ip() -> str | None:
    """The browser's address as the WSGI server saw it (a proxy-aware host sets
    ``remote_addr`` with Werkzeug's ``ProxyFix``). Anything unparseable is dropped."""
    value = request.remote_addr
    if not value:
        return None
    try:
        return normalize_ip(value)
    except ValueError:
        return None

