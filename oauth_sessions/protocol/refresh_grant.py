"""``grant_type=refresh_token`` at the token endpoint (RFC 6749 section 6), over the session store.

The whole pipeline, in order (each step either passes or answers with an RFC 6749 error and
writes nothing; only step 5 writes, and only as :meth:`SessionStore.rotate` decides):

1. authenticate the client as registered (``client_secret_basic``, ``client_secret_post``, or
   ``none`` for public clients; RFC 6749 section 2.3) -> ``invalid_client``;
2. the client is registered for the refresh grant -> ``unauthorized_client``;
3. a ``refresh_token`` parameter -> ``invalid_request`` (a repeated parameter, RFC 6749
   section 3.2, never gets here: the blueprint's ``check_parameters`` refuses it for every
   endpoint); a ``scope`` made of valid scope tokens (section 3.3) -> ``invalid_scope``;
   ``resource`` values that are absolute URIs without fragments (RFC 8707 section 2, the one
   parameter that may repeat) -> ``invalid_target``;
4. -- everything else is the store's, on the session row: token syntax and tag, session
   exists, token bound to *this* client (section 6: "the refresh token is bound to the client
   to which it was issued"), not expired, not inactive, aal policy, scope narrowing, and the
   access token's one audience among the session's granted resources (RFC 8707 section 2.2:
   a refresh may pick another granted resource, never one outside the grant; read with the
   row, no statement more);
5. rotation (compare-and-swap; replay inside the reuse interval; reuse revokes);
6. the token response from :func:`oauth_sessions.protocol.tokens.build_token_response`, with the new
   refresh token, an ID token when ``openid`` is among the scopes (OIDC Core section 12.2).

Aal policy (:func:`~oauth_sessions.core.policy.required_aal`, the rule of every token): a
session whose aal is now below the client's ``min_aal``, or below what the access token's
audience needs (``AUDIENCE_MIN_AAL`` for it, the registered resource server's ``min_aal``),
is refused with ``invalid_grant``. The refusal does not revoke the session and leaves the
counter where it was: the client may still refresh for another granted resource the
session's aal allows, or send the user to step up. A scope whose ``SCOPE_MIN_AAL`` the
session no longer meets is left out of the new tokens when the client asked for the default
scope (the response's ``scope`` shows the narrower set, RFC 6749 section 5.1), and refused
with ``invalid_scope`` when the client named it in ``scope``. Either way no token is minted
above the session's current aal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError, InvalidScopeError, UnauthorizedClientError

from ..core.errors import OAuthSessionsError
from ..core.policy import clean_user_agent, is_valid_scope_token, parse_scope
from ..core.resource_indicators import parse_resources
from .dpop import token_headers, token_request_proof
from .http import Answer, HttpRequest
from .oauth_errors import TOKEN_HEADERS, oauth2_answer, oauth2_error_answer, to_oauth2_error
from .tokens import build_token_response

if TYPE_CHECKING:
    from ..core.policy import ResourceMinAal
    from ..core.settings import Settings
    from ..jose.keys import KeySet
    from ..storage.clients import ClientInfo
    from ..storage.rotation import AudienceRule
    from ..storage.sessions import RotationResult, SessionStore
    from ..storage.signing_keys import KeyStore
    from .client_auth import ClientAuthenticator
    from .dpop import DpopChecker
    from .resource_indicators import ResourceIndicators

__all__ = ["RefreshGrant", "refresh", "scope_is_well_formed"]

_MAX_USER_AGENT: Final = 1024


class RefreshGrant:
    """The refresh grant's handler: the token endpoint calls it for ``grant_type=refresh_token``.

    Not an Authlib grant: Authlib's dispatch would add, per refresh, its own request object, a
    grant object and a lookup of the grant class, and nothing this grant uses (client
    authentication is the library's own, the answer is built here). Errors are still Authlib's
    ``OAuth2Error`` classes, rendered by :func:`~oauth_sessions.protocol.oauth_errors.oauth2_error_answer`
    exactly as Authlib renders the code grant's; a client that fails authentication raises
    :class:`~oauth_sessions.protocol.client_auth.ClientAuthFailed`, which the token endpoint
    answers like every other endpoint.
    """

    def __init__(self, *, authenticator: ClientAuthenticator, sessions: SessionStore,
                 settings: Settings, keys: KeyStore, dpop: DpopChecker,
                 resource_indicators: ResourceIndicators, token_endpoint_url: str) -> None:
        self._authenticator = authenticator
        self._sessions = sessions
        self._settings = settings
        self._keys = keys
        self._dpop = dpop
        self._resource_indicators = resource_indicators
        self._token_endpoint_url = token_endpoint_url

    def __call__(self, request: HttpRequest) -> Answer:
        try:
            body = self._token_response(request)
        except OAuth2Error as error:
            return oauth2_error_answer(error)
        return oauth2_answer(200, body, token_headers(TOKEN_HEADERS, self._dpop))

    def _token_response(self, request: HttpRequest) -> dict[str, Any]:
        # Steps 1-3 of the module docstring: nothing here reads or writes a session.
        client = self._authenticator.authenticate(request, allow_public=True)
        if not client.may_refresh():
            raise UnauthorizedClientError("the client may not use the refresh token grant")
        settings = self._settings
        proof = token_request_proof(
            self._dpop, request, client, token_endpoint=self._token_endpoint_url,
            required_for_public=settings.dpop_required_for_public_clients)
        refresh_token = request.param("refresh_token")
        if not refresh_token:
            raise InvalidRequestError("refresh_token is required")
        scope = request.param("scope")
        if not scope_is_well_formed(scope):
            raise InvalidScopeError("scope contains characters RFC 6749 section 3.3 does not allow")
        try:
            resources = parse_resources(request.param_values("resource"))
        except OAuthSessionsError as exc:
            raise to_oauth2_error(exc) from None
        # Steps 4-6: rotate, then build the response from the row the rotation returned.
        indicators = self._resource_indicators
        return refresh(client, refresh_token, scope=scope, resources=resources,
                       audience=indicators.audience, resource_min_aal=indicators.servers.min_aal,
                       user_agent=request.header("User-Agent"), ip=request.client_address,
                       sessions=self._sessions, settings=settings, keyset=self._keys.keyset(),
                       dpop_jkt=proof.jkt if proof is not None else None)


def scope_is_well_formed(scope: str | None) -> bool:
    """Step 3's scope rule: absent, or made of RFC 6749 section 3.3 scope tokens only."""
    return scope is None or all(is_valid_scope_token(s) for s in parse_scope(scope))


def refresh(client: ClientInfo, refresh_token: str, *, scope: str | None, user_agent: str | None,
            ip: str | None, sessions: SessionStore, settings: Settings,
            keyset: KeySet, dpop_jkt: str | None = None, resources: tuple[str, ...] = (),
            audience: AudienceRule | None = None,
            resource_min_aal: ResourceMinAal | None = None) -> dict[str, Any]:
    """Steps 4-6 for an authenticated client: the token response body, or an ``OAuth2Error``.

    An empty ``scope`` means the granted one; the user agent is cleaned of control characters
    and kept to its first 1024. The refreshed session (with this request's user agent and
    address) is what ``session_refreshed`` receivers get as their ``session`` argument.
    ``dpop_jkt``: the key of the request's DPoP proof, which a bound session's token needs
    (RFC 9449 section 5) and the new access token is bound to. ``resources`` (RFC 8707) may
    name one of the session's granted resources; ``audience`` decides (before the rotation
    writes anything), and ``resource_min_aal`` (the registry's) joins the aal it needs.
    """
    scope = scope or None
    user_agent = clean_user_agent(user_agent, _MAX_USER_AGENT)
    try:
        result = sessions.rotate(refresh_token, client_id=client.id, scope=scope,
                                 user_agent=user_agent, ip=ip, client_min_aal=client.min_aal,
                                 dpop_jkt=dpop_jkt, resources=resources, audience=audience,
                                 resource_min_aal=resource_min_aal)
    except OAuthSessionsError as exc:
        raise to_oauth2_error(exc) from None
    return _token_body(result, client, settings, keyset, dpop_jkt)


def _token_body(result: RotationResult, client: ClientInfo, settings: Settings,
                keyset: KeySet, dpop_jkt: str | None) -> dict[str, Any]:
    with_id_token = settings.id_token_on_refresh and "openid" in result.scopes
    return build_token_response(
        settings=settings, keyset=keyset, session=result.session, client=client, scopes=result.scopes,
        refresh_token=result.refresh_token, amr=[a.method for a in result.amr],
        auth_time=int(result.auth_time.timestamp()), include_id_token=with_id_token,
        audience=result.audience,
        dpop_jkt=dpop_jkt,
    )
