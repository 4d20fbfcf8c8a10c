"""The authorization code grant with PKCE (RFC 6749 section 4.1, RFC 7636, OAuth 2.1).

Two halves:

* :func:`parse_authorization_request` checks an authorization request (section 4.1.1) in the
  order RFC 6749 section 4.1.2.1 needs: first what makes redirecting safe (client, exact
  redirect URI), and only then everything whose errors go back to the client by redirect.
* :class:`AuthorizationCodeGrant` is the token-endpoint half (section 4.1.3): the code is looked
  up by its SHA-256, every check runs on a read-only snapshot (a wrong verifier burns nothing),
  and then ONE transaction marks the code used and creates the session.

PKCE is required for every client with ``S256`` only: ``plain`` (and a missing method, which
RFC 7636 section 4.3 defines as ``plain``) is refused, so a downgrade cannot be negotiated.
"""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from ..core.claims_request import ClaimsRequest, ClaimsRequestError, parse_claims_request
from ..core.errors import OAuthSessionsError, UnknownResource
from ..core.policy import is_valid_scope_token, parse_scope, required_aal
from ..core.types import Aal
from ..storage.authorizations import AuthorizationRecord, AuthorizationStore
from ..storage.clients import ClientInfo, ClientStore
from ..storage.resource_servers import record_session_resources
from ..storage.session_rows import AmrEntry
from .dpop import token_headers, token_request_proof
from .oauth_errors import to_oauth2_error
from .resource_indicators import ResourceIndicators
from .tokens import build_token_response

if TYPE_CHECKING:
    from ..core.settings import Settings

__all__ = [
    "AuthorizationCodeGrant",
    "AuthorizationRequest",
    "AuthorizeError",
    "allowed_subset",
    "language_tags",
    "parse_authorization_request",
]

PKCE_PATTERN: Final = re.compile(r"[A-Za-z0-9._~-]{43,128}")
PROMPTS: Final = frozenset({"none", "login", "consent", "select_account"})
MAX_NONCE: Final = 512
MAX_STATE: Final = 1024
MAX_LOGIN_HINT: Final = 512
MAX_UI_LOCALES: Final = 16
#: RFC 5646 language tag shape: a primary subtag of letters, then hyphenated subtags.
LANGUAGE_TAG: Final = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")


class AuthorizeError(Exception):
    """An authorization-endpoint error. ``redirect_uri`` None: show it, never redirect."""

    def __init__(self, error: str, description: str, *, redirect_uri: str | None = None,
                 state: str | None = None, status: int = 400,
                 client: ClientInfo | None = None) -> None:
        super().__init__(f"{error}: {description}")
        #: The client the error would be redirected to, if known (its ``verified`` flag decides
        #: whether the redirect happens without the user's click).
        self.client = client
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state
        self.status = status


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: ClientInfo
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: frozenset[str]
    max_age: int | None
    acr_values: tuple[str, ...]
    required_aal: Aal
    #: OIDC Core 3.1.2.1: the identifier the user may sign in with, for the host's sign-in page.
    login_hint: str | None = None
    #: OIDC Core 3.1.2.1: preferred languages of the pages, BCP 47 tags, most preferred first.
    ui_locales: tuple[str, ...] = ()
    #: RFC 8707: the resources the tokens of this authorization may be meant for.
    resources: tuple[str, ...] = ()
    #: OIDC Core 5.5: the individual claims asked for (:mod:`oauth_sessions.core.claims_request`).
    claims: ClaimsRequest | None = None


def language_tags(value: str | None) -> tuple[str, ...]:
    """The well-formed BCP 47 language tags of ``ui_locales`` (OIDC Core 3.1.2.1), in order.

    The section says an unsupported locale SHOULD NOT cause an error, so a malformed tag is
    dropped rather than refused; what remains is safe to put in a page or a header as it is
    (letters, digits and hyphens only), and at most :data:`MAX_UI_LOCALES` are kept.
    """
    tags = (t for t in parse_scope(value) if LANGUAGE_TAG.fullmatch(t))
    return tuple(tags)[:MAX_UI_LOCALES]


def allowed_subset(requested: tuple[str, ...], client: ClientInfo) -> tuple[str, ...]:
    """The requested scopes the client is registered for, in the order asked.

    RFC 6749 section 3.3 lets the server issue less than was requested ("MAY fully or partially
    ignore the scope requested by the client") provided the token response names the scope
    issued, which :func:`oauth_sessions.protocol.tokens.build_token_response` always does. So a
    client that asks for more than it may have (a relying-party library asking for
    ``openid profile email`` by habit) gets what it may have, and only a request of which
    nothing remains is refused (``invalid_scope``). The refresh grant stays strict: RFC 6749
    section 6 forbids asking there for anything not granted.
    """
    registered = set(client.scopes)
    return tuple(s for s in requested if s in registered)


def parse_authorization_request(params: Mapping[str, str], clients: ClientStore,
                                settings: Settings, *, pushed: bool = False,
                                resource_indicators: ResourceIndicators | None = None,
                                ) -> AuthorizationRequest:
    """Validate the request parameters (already checked for duplicates, size and charset).

    The one validation of an authorization request, whichever way it comes: to the
    authorization endpoint in the query, or pushed (``pushed=True``: the parameters a client
    POSTed to the RFC 9126 endpoint, checked there when pushed and again when used).
    A client that must push (RFC 9126 section 6, or the provider's
    ``REQUIRE_PUSHED_AUTHORIZATION_REQUESTS``) is refused when the request was not pushed.

    ``params["resource"]`` holds the request's ``resource`` values in one
    (:func:`oauth_sessions.core.resource_indicators.resource_parameter`, as both the
    authorization endpoint and the pushed-request endpoint read them); without
    ``resource_indicators`` a request naming any is refused with ``invalid_target``.
    """
    if not params.get("client_id"):
        raise AuthorizeError("invalid_request", "client_id is missing")
    client = clients.get(params["client_id"])
    if client is None:
        raise AuthorizeError("invalid_request", "unknown client_id")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        raise AuthorizeError("invalid_request", "redirect_uri is required")
    if not client.accepts_redirect_uri(redirect_uri):
        raise AuthorizeError("invalid_request", "redirect_uri is not registered for this client")
    state = params.get("state") or None

    def fail(error: str, description: str) -> AuthorizeError:
        return AuthorizeError(error, description, redirect_uri=redirect_uri, state=state,
                              client=client)

    if state is not None and len(state) > MAX_STATE:
        raise fail("invalid_request", "state is too long")
    if not pushed and (settings.require_pushed_authorization_requests
                       or client.require_pushed_authorization_requests):
        raise fail("invalid_request", "this client must push its authorization requests "
                   "(RFC 9126): POST them to the pushed_authorization_request_endpoint and "
                   "send only client_id and the request_uri it answers")
    if "request" in params:
        raise fail("request_not_supported", "request objects are not supported")
    if "request_uri" in params and pushed:
        raise fail("invalid_request", "request_uri cannot be part of a pushed request "
                   "(RFC 9126 section 2.1)")
    if "request_uri" in params:
        # A reference to a pushed request is taken by the authorization endpoint before this
        # runs; any other request_uri would be a request object to fetch (OIDC Core 6.2).
        raise fail("request_uri_not_supported", "request_uri is supported only as the "
                   "reference a pushed authorization request answered (RFC 9126)")
    response_type = params.get("response_type")
    if not response_type:
        raise fail("invalid_request", "response_type is required")
    if response_type != "code":
        raise fail("unsupported_response_type", "only response_type=code is supported")
    if params.get("response_mode", "query") != "query":
        raise fail("invalid_request", "only response_mode=query is supported")
    if "authorization_code" not in client.grant_types:
        raise fail("unauthorized_client", "the client may not use the authorization code grant")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if not challenge:
        raise fail("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
    if method != "S256":
        raise fail("invalid_request", "code_challenge_method must be S256")
    if not PKCE_PATTERN.fullmatch(challenge):
        raise fail("invalid_request", "code_challenge is malformed")
    scopes = parse_scope(params["scope"]) if params.get("scope") else client.scopes
    if not scopes or not all(is_valid_scope_token(s) for s in scopes):
        raise fail("invalid_scope", "scope is empty or malformed")
    scopes = allowed_subset(scopes, client)
    if not scopes:
        raise fail("invalid_scope", "none of the requested scopes is registered for this client "
                   f"(it may ask for: {' '.join(client.scopes)})")
    prompt = frozenset(parse_scope(params.get("prompt")))
    if not prompt <= PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise fail("invalid_request", "prompt has an unknown value or combines none with others")
    max_age: int | None = None
    if "max_age" in params:
        raw = params["max_age"]
        if not raw.isdigit() or len(raw) > 10:
            raise fail("invalid_request", "max_age must be a non-negative integer")
        max_age = int(raw)
    nonce = params.get("nonce") or None
    if nonce is not None and len(nonce) > MAX_NONCE:
        raise fail("invalid_request", "nonce is too long")
    login_hint = params.get("login_hint") or None
    if login_hint is not None and len(login_hint) > MAX_LOGIN_HINT:
        raise fail("invalid_request", f"login_hint is longer than {MAX_LOGIN_HINT} characters")
    resources: tuple[str, ...] = ()
    registered: dict[str, Aal] = {}
    if "resource" in params:
        try:
            if resource_indicators is None:
                raise UnknownResource()
            resources, registered = resource_indicators.for_authorization(
                params["resource"].split(" "), scopes)
        except OAuthSessionsError as exc:
            raise fail(exc.error, exc.description) from None
    try:
        claims = parse_claims_request(params.get("claims"))
    except ClaimsRequestError as exc:
        raise fail("invalid_request", str(exc)) from None
    acr_values = parse_scope(params.get("acr_values"))
    needed = required_aal(scopes, scope_min_aal=settings.scope_min_aal,
                          audience_min_aal=settings.audience_min_aal, audiences=resources,
                          client_min_aal=client.min_aal, resource_min_aal=registered.get,
                          default_audience=settings.issuer)
    acr_claim = claims.requested("id_token", "acr") if claims is not None else None
    # OIDC Core 5.5.1.1: an acr requested as a claim with values works as acr_values does.
    levels = (*acr_values, *(str(v) for v in (acr_claim.values if acr_claim else ())))
    asked = [Aal(v) for v in levels if v in {"aal1", "aal2", "aal3"}]
    if asked:
        # acr_values lists acceptable levels in order of preference (OIDC Core 3.1.2.1); the
        # least of them is what satisfies the client.
        needed = max(needed, min(asked))
    return AuthorizationRequest(
        client=client, redirect_uri=redirect_uri, scopes=scopes, state=state, nonce=nonce,
        code_challenge=challenge, prompt=prompt, max_age=max_age, acr_values=acr_values,
        required_aal=needed, login_hint=login_hint,
        ui_locales=language_tags(params.get("ui_locales")),
        resources=resources,
        claims=claims,
    )


# --------------------------------------------------------------------------- token endpoint


class AuthorizationCodeGrant(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    """``grant_type=authorization_code`` at the token endpoint (RFC 6749 section 4.1.3)."""

    GRANT_TYPE = "authorization_code"
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_token_request(self) -> None:
        """The checks, in order; none of them writes anything except the replay rule.

        client → code known and the client's → redirect_uri → PKCE → not used (else revoke
        what it produced, RFC 6749 section 4.1.2) → not expired → the token's audience
        (RFC 8707) → the aal that scopes, client and audience need (``required_aal``).
        """
        wrapper = self.authenticate_token_endpoint_client()
        self.request.client = wrapper
        client: ClientInfo = wrapper.info
        if "authorization_code" not in client.grant_types:
            raise UnauthorizedClientError("the client may not use the authorization code grant")
        server = self.server
        self.request.dpop = token_request_proof(
            server.dpop, self.request.http, client, token_endpoint=server.token_endpoint_url,
            required_for_public=server.settings.dpop_required_for_public_clients)
        form = self.request.form
        code = form.get("code")
        if not code:
            raise InvalidRequestError("code is required")
        authorizations: AuthorizationStore = self.server.authorizations
        record = authorizations.find(code)
        if record is None or record.client_id != client.id:
            raise InvalidGrantError("authorization code is invalid")
        _require_redirect_uri(form.get("redirect_uri"), record)
        _require_pkce(form.get("code_verifier"), record)
        if record.used_at is not None:
            # Only after redirect_uri and PKCE: a leaked used code (from a log, a Referer) is
            # not enough to end the victim's session; the replay that revokes must come from
            # whoever holds the verifier, i.e. the client itself or the thief of the first use.
            self._revoke_replayed(record)
            raise InvalidGrantError("authorization code was already used")
        if datetime.now(UTC) >= record.expires_at:
            raise InvalidGrantError("authorization code has expired")
        self.request.audience, self.request.access_scopes = None, record.scopes
        indicators: ResourceIndicators = self.server.resource_indicators
        requested = self.request.http.param_values("resource")
        if requested or record.resources:
            # RFC 8707 section 2.2, before the code is spent: a refusal burns nothing.
            try:
                self.request.audience, self.request.access_scopes = (
                    indicators.audience(tuple(requested), record.resources, record.scopes))
            except OAuthSessionsError as exc:
                raise to_oauth2_error(exc) from None
        settings: Settings = self.server.settings
        audience = self.request.audience
        needed = required_aal(record.scopes, scope_min_aal=settings.scope_min_aal,
                              audience_min_aal=settings.audience_min_aal,
                              audiences=(audience,) if audience is not None else (),
                              client_min_aal=client.min_aal,
                              resource_min_aal=indicators.servers.min_aal,
                              default_audience=settings.issuer)
        if record.aal < needed:
            raise InvalidGrantError("the authentication level is below what the token requires")
        self.request.authorization_code = record

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client: ClientInfo = self.request.client.info
        record: AuthorizationRecord = self.request.authorization_code
        server = self.server
        sessions = server.sessions
        settings: Settings = server.settings
        amr = [_amr_entry(method, ts) for method, ts in record.amr]
        proof = self.request.dpop
        # RFC 9449 section 5: a public client's refresh tokens are bound to its DPoP key; a
        # confidential client's are already sender-constrained by its authentication.
        bind = proof.jkt if proof is not None and client.is_public else None

        def produce(conn: Any) -> tuple[uuid.UUID, Any]:
            issued = sessions.create_session(
                user_id=record.user_id, client_id=client.id, scopes=record.scopes,
                aal=record.aal, amr=amr, factor_id=record.factor_id,
                # the user's device at the authorization endpoint, not the client's server
                user_agent=record.user_agent, ip=record.ip,
                host_not_after=record.not_after, client_max_seconds=client.max_session_seconds,
                # the session this authorization replaces ends in this same transaction
                replaces=record.replaces_session_id, conn=conn, dpop_jkt=bind,
            )
            record_session_resources(conn, issued.session.id, record.resources)
            return issued.session.id, issued

        authorizations: AuthorizationStore = server.authorizations
        issued = authorizations.redeem(record, produce)
        if issued is None:
            self._revoke_replayed(record)
            raise InvalidGrantError("authorization code was already used")
        offline = "offline_access" in record.scopes or settings.always_issue_refresh_token

        body = build_token_response(
            settings=settings, keyset=server.keys.keyset(), session=issued.session, client=client,
            scopes=self.request.access_scopes, audience=self.request.audience,
            refresh_token=issued.refresh_token if offline and client.may_refresh() else None,
            amr=[method for method, _ in record.amr],
            auth_time=int(record.auth_time.timestamp()), nonce=record.nonce,
            include_id_token="openid" in record.scopes,
            id_token_extra=self._requested_id_token_claims(record),
            dpop_jkt=proof.jkt if proof is not None else None,
        )
        return 200, body, token_headers(self.TOKEN_RESPONSE_HEADER, server.dpop)

    def _requested_id_token_claims(self, record: AuthorizationRecord) -> dict[str, Any]:
        """OIDC Core 5.5: the claims the request put under ``id_token``, of those the host
        supplies for the granted scopes (never more: see :mod:`oauth_sessions.core.claims_request`)."""
        request = parse_claims_request(record.claims) if record.claims else None
        names = request.id_token_claims() if request is not None else ()
        if not names or self.server.host_claims is None or "openid" not in record.scopes:
            return {}
        granted = self.server.host_claims(record.user_id, record.scopes)
        return {name: granted[name] for name in names if name in granted}

    def _revoke_replayed(self, record: AuthorizationRecord) -> None:
        """RFC 6749 section 4.1.2: a code used twice revokes what it produced."""
        server = self.server
        session_id = server.authorizations.produced_session(record.id)
        if session_id is not None:
            server.sessions.revoke(session_id, reason="authorization_code_replayed")


def _require_redirect_uri(redirect_uri: str | None, record: AuthorizationRecord) -> None:
    """RFC 6749 section 4.1.3: the same ``redirect_uri`` as in the authorization request."""
    if not redirect_uri:
        raise InvalidRequestError("redirect_uri is required")
    if redirect_uri != record.redirect_uri:
        raise InvalidGrantError("redirect_uri does not match the authorization request")


def _require_pkce(verifier: str | None, record: AuthorizationRecord) -> None:
    """RFC 7636 section 4.6, S256 only, compared in constant time."""
    if not verifier:
        raise InvalidRequestError("code_verifier is required (PKCE)")
    if not PKCE_PATTERN.fullmatch(verifier):
        raise InvalidRequestError("code_verifier is malformed")
    expected = record.code_challenge or ""
    if not hmac.compare_digest(create_s256_code_challenge(verifier), expected):
        raise InvalidGrantError("code_verifier does not match the code_challenge")


def _amr_entry(method: str, timestamp: int) -> Any:

    return AmrEntry(method=method, timestamp=datetime.fromtimestamp(timestamp, UTC))
