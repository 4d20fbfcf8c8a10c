"""Pushed authorization requests (RFC 9126): the endpoint, and what the authorization endpoint
does with a ``request_uri``.

:class:`PushedAuthorizationEndpoint` (``POST {prefix}/par``), its steps in order::

    check_request             request hygiene, a form body, nothing in the query string
    authenticate the client   the one client authentication (protocol/client_auth.py); a
                              public client identifies itself with client_id (section 2.1)
    no request object         ``request`` → 400 request_not_supported
    client_id                 if sent, the authenticated client's, else 400 invalid_request
    the request               parse_authorization_request(pushed=True): the authorization
                              endpoint's own checks (redirect_uri, response_type, PKCE,
                              scope, every ``resource`` against the registered resource
                              servers, dpop_jkt, ...), answered as 400 JSON errors instead
                              of redirects
    DPoP (RFC 9449 10.1)      a ``DPoP`` header is checked as at the token endpoint (htu the
                              par URL, the nonce rule, jti one-time); its key binds the
                              request (stored as ``dpop_jkt``); a ``dpop_jkt`` naming
                              another key is 400 invalid_dpop_proof
    store                     201 {"request_uri": "urn:ietf:params:oauth:request_uri:...",
                              "expires_in": PUSHED_REQUEST_LIFETIME} (section 2.2)

The parameters are read as the authorization endpoint reads its query: the first value of each
name, except ``resource``, which may repeat (RFC 8707 section 2) and is kept whole, every value,
in the one form both endpoints check (:func:`~oauth_sessions.core.resource_indicators.resource_parameter`);
the request is stored in that form.

At the authorization endpoint (:func:`pushed_parameters`): ``client_id`` and a ``request_uri``
of this server's form name the pushed request; every other query parameter is ignored
(section 4). The request is taken once, for the client that pushed it, before it expires
(:class:`~oauth_sessions.storage.pushed_requests.PushedRequestStore`); anything else is
``invalid_request_uri``, shown to the user, never redirected (the redirect URI is in the
request that could not be found). The parameters are checked again by the same
``parse_authorization_request``, since the client's registration may have changed since.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ..core.resource_indicators import resource_parameter
from ..core.settings import Settings
from ..storage.clients import ClientStore
from ..storage.pushed_requests import REQUEST_URI_PREFIX, PushedRequestStore
from .client_auth import ClientAuthenticator, ClientAuthFailed, client_auth_error
from .code_grant import AuthorizeError, parse_authorization_request
from .dpop import INVALID_DPOP_PROOF, DpopChecker, DpopRefused
from .http import Answer, HttpRequest, error_answer, json_answer
from .request_checks import check_request
from .resource_indicators import ResourceIndicators

__all__ = ["CLIENT_AUTH_PARAMETERS", "PushedAuthorizationEndpoint", "is_pushed_reference",
           "pushed_parameters"]

#: Parameters of client authentication, not of the authorization request: never stored.
CLIENT_AUTH_PARAMETERS: Final = frozenset({"client_secret", "client_assertion",
                                           "client_assertion_type"})


class PushedAuthorizationEndpoint:
    """The handler: :meth:`__call__` runs the steps of the module docstring."""

    def __init__(self, authenticator: ClientAuthenticator, clients: ClientStore,
                 store: PushedRequestStore, settings: Settings,
                 resource_indicators: ResourceIndicators,
                 dpop: DpopChecker | None = None) -> None:
        self._authenticator = authenticator
        self._clients = clients
        self._store = store
        self._settings = settings
        self._resource_indicators = resource_indicators
        self._dpop = dpop
        self._url = settings.endpoint_url("/par")

    def __call__(self, request: HttpRequest) -> Answer:
        refused = check_request(request, form_only=True)
        if refused is not None:
            return refused
        try:
            client = self._authenticator.authenticate(request, allow_public=True)
        except ClientAuthFailed as exc:
            return client_auth_error(exc)
        params = {k: v for k, v in request.params.items() if k not in CLIENT_AUTH_PARAMETERS}
        resources = request.param_values("resource")
        if resources:
            params["resource"] = resource_parameter(resources)
        if "request" in params:
            return error_answer("request_not_supported", "request objects are not supported")
        if params.setdefault("client_id", client.client_id) != client.client_id:
            return error_answer("invalid_request",
                                "client_id is not the client that authenticated")
        try:
            parse_authorization_request(params, self._clients, self._settings, pushed=True,
                                        resource_indicators=self._resource_indicators)
        except AuthorizeError as exc:
            return error_answer(exc.error, exc.description, exc.status)
        refused = self._bind_to_proof(request, params, client.client_id)
        if refused is not None:
            return refused
        request_uri = self._store.push(client.id, params)
        nonce = (self._dpop.fresh_nonce(client_id=client.client_id) if self._dpop is not None
                 else None)
        return json_answer({"request_uri": request_uri, "expires_in": self._store.lifetime}, 201,
                           {"DPoP-Nonce": nonce} if nonce is not None else None)

    def _bind_to_proof(self, request: HttpRequest, params: dict[str, str],
                       client_id: str) -> Answer | None:
        """RFC 9449 section 10.1: a proof sent with the push binds the request to its key, as
        ``dpop_jkt`` would; both sent must name the same key. The refusal, if any."""
        if self._dpop is None:
            return None
        try:
            proof = self._dpop.check(request, uri=self._url, client_id=client_id)
        except DpopRefused as exc:
            return error_answer(exc.error, exc.description, 400,
                                {"DPoP-Nonce": exc.nonce} if exc.nonce is not None else None)
        if proof is None:
            return None
        if params.get("dpop_jkt") and params["dpop_jkt"] != proof.jkt:
            return error_answer(INVALID_DPOP_PROOF, "dpop_jkt is not the thumbprint of the DPoP "
                                "proof's key (RFC 9449 section 10.1)")
        params["dpop_jkt"] = proof.jkt
        return None


def is_pushed_reference(params: Mapping[str, str]) -> bool:
    """Whether the authorization request names a pushed request (a ``request_uri`` of ours)."""
    return params.get("request_uri", "").startswith(REQUEST_URI_PREFIX)


def pushed_parameters(params: Mapping[str, str], clients: ClientStore,
                      store: PushedRequestStore, *, resume: bool) -> dict[str, str]:
    """The pushed parameters that ``client_id`` and ``request_uri`` of ``params`` name.

    ``resume``: the browser that already took the request comes back (from sign-in, step-up
    or consent; the caller has checked that it is that browser), so the request is read, not
    taken. Raises :class:`AuthorizeError` (never redirected) when there is nothing to use.
    """
    client_id = params.get("client_id")
    if not client_id:
        raise AuthorizeError("invalid_request", "client_id is missing")
    client = clients.get(client_id)
    if client is None:
        raise AuthorizeError("invalid_request", "unknown client_id")
    request_uri = params["request_uri"]
    pushed = store.resume(request_uri, client.id) if resume else store.use(request_uri, client.id)
    if pushed is None:
        raise AuthorizeError("invalid_request_uri", "request_uri is unknown, expired, already "
                             "used or was pushed by another client", client=client)
    return pushed
