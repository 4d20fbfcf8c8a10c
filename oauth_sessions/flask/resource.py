"""The resource-server side: protect Flask views with bearer tokens of this provider.

::

    protector = ResourceProtector.local(resource="https://api.example.com")      # same app + db
    protector = ResourceProtector.remote("https://id.example.com/oauth/introspect",
                                         client_id, client_secret)             # any Flask app

    @app.get("/payments")
    @protector.require(scope="payments", aal="aal2")
    def payments():
        return {"user": current_token().sub}

Failures answer as the RFCs say, with the same error in a JSON body:

* no token: 401, ``WWW-Authenticate: Bearer realm="…"`` without an error (RFC 6750 section 3.1);
* a DPoP-bound token (RFC 9449): only as ``Authorization: DPoP <token>`` with a ``DPoP`` proof
  of its key for this request (``htm``, ``htu`` = the request URL without query, ``iat``,
  ``ath``, one-time ``jti``); otherwise 401 with ``WWW-Authenticate: DPoP error="…", algs="…"``
  (section 7.1). Every challenge of a protector that accepts DPoP names ``DPoP algs`` beside
  ``Bearer``;
* a token that is not active now: 401 ``error="invalid_token"``;
* a scope missing: 403 ``error="insufficient_scope", scope="…"`` (the scope needed);
* assurance too low or authentication too old: 401
  ``error="insufficient_user_authentication", acr_values="aal2"`` or ``max_age="…"`` (RFC 9470
  section 3): the client sends the user back to ``/authorize`` with those values and retries with
  the new token.

Every challenge carries ``resource_metadata`` (RFC 9728 section 5.1) when a resource identifier
is configured, and :meth:`ResourceProtector.init_app` publishes that metadata document.

Local mode runs the very pipeline of the introspection endpoint in-process (one primary-key
read per request). Remote mode calls the introspection endpoint over a keep-alive connection
pool with connect/read timeouts. Its optional cache is **off by default**: with
``cache_ttl=N`` a revoked session's tokens may still be accepted for up to N seconds, i.e. the
TTL *is* the revocation delay. Only active answers are cached, never past the token's ``exp``,
keyed by a SHA-256 of the token (the token itself is never kept).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Response, current_app, g, jsonify, request
from sqlalchemy import Engine

from ..core import policy
from ..core.bearer import (
    Challenge,
    TokenInfo,
    TokenValidator,
    check_grant,
    www_authenticate,
)
from ..core.types import Aal
from ..protocol.access_tokens import (
    challenge_answer,
    credentials_of,
    require_sender,
    validate_access_token,
)
from ..protocol.dpop import DPOP_ALGS, DpopChecker
from ..protocol.http import HttpRequest, header_map
from ..storage.replay_ledger import DpopReplayLedger
from .responses import to_response
from .state import get_state

__all__ = [
    "Challenge",
    "ResourceProtector",
    "TokenInfo",
    "challenge_response",
    "check_grant",
    "current_token",
    "metadata_url",
    "www_authenticate",
]

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
_G_KEY = "oauth_sessions_token"
WELL_KNOWN = "/.well-known/oauth-protected-resource"


# --------------------------------------------------------------------------- the token a view sees


def current_token() -> TokenInfo:
    """The token of the current request, inside a view protected by ``require``."""
    token: TokenInfo | None = g.get(_G_KEY)
    if token is None:
        raise RuntimeError("current_token() is only available inside a view decorated with require()")
    return token


# --------------------------------------------------------------------------- challenges


def metadata_url(resource: str) -> str:
    """RFC 9728 section 3.1: the well-known segment goes between the host and the path."""
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, parts.query, ""))


def _request() -> HttpRequest:
    """The current request as the protocol checks see it: method and headers, no body read.

    The token comes from ``Authorization: Bearer`` or ``DPoP`` (RFC 6750 section 2.1, RFC 9449
    section 7.1), by the one header parser; tokens in the query string end up in logs and
    Referer headers, so they are not read.
    """
    return HttpRequest(method=request.method, headers=header_map(request))


def challenge_response(challenge: Challenge, *, realm: str,
                       resource_metadata: str | None = None,
                       dpop_algs: tuple[str, ...] = ()) -> Response:
    """The HTTP answer to a refusal (:func:`oauth_sessions.protocol.access_tokens.challenge_answer`),
    the same for the resource helper and ``/userinfo``."""
    return to_response(challenge_answer(challenge, realm=realm, resource_metadata=resource_metadata,
                                        dpop_algs=dpop_algs))


# --------------------------------------------------------------------------- validators


class LocalValidator(TokenValidator):
    """Runs the one access-token validation (the introspection pipeline) in-process against the
    app's own database (:func:`oauth_sessions.protocol.access_tokens.validate_access_token`); an
    unreachable database is a 503 challenge, since the host's routes have no outage handler of ours."""

    def __init__(self, resource: str | None, *, accept_issuer_audience: bool = True) -> None:
        self.resource = resource
        self.accept_issuer_audience = accept_issuer_audience

    def validate(self, token: str) -> TokenInfo:
        audiences = [self.resource] if self.resource else []
        return validate_access_token(token, get_state(current_app).services.introspection,
                                     audiences=audiences, resource=self.resource or None,
                                     accept_default_audience=self.accept_issuer_audience)


# --------------------------------------------------------------------------- the protector


class ResourceProtector:
    """Guards views with ``require(scope=..., aal=..., max_age=...)``.

    ``resource`` is this resource server's identifier (an https URL, RFC 9728 section 1.2): the
    audience a token must name (RFC 8707; ``aud`` checked in both modes), the audience whose
    ``OAUTH_SESSIONS_AUDIENCE_MIN_AAL`` and registered ``min_aal`` apply in local mode (in
    remote mode the introspection endpoint applies them to the token's ``aud``, whichever
    credentials it is called with), and the base of the metadata URL named in every challenge.
    Without it a token must be of the default audience (the issuer).
    ``accept_issuer_audience`` (default True) also accepts tokens of the default audience only,
    those minted without any ``resource``, so that existing clients keep working; set it to
    False once every client names this resource, and no token meant for another resource
    server or for no one in particular passes here.

    ``dpop`` checks the proofs of DPoP-bound tokens (RFC 9449 section 7). Local mode uses the
    app's own (its settings, nonces and replay table); remote mode has one only when given a
    ``dpop_engine`` holding the library's ``oauth_dpop_proofs`` table, and refuses bound
    tokens otherwise.
    """

    def __init__(
        self,
        validator: TokenValidator,
        *,
        resource: str | None = None,
        realm: str = "oauth_sessions",
        authorization_servers: Iterable[str] = (),
        dpop: DpopChecker | None = None,
    ) -> None:
        self.validator = validator
        self.dpop = dpop
        self.resource = resource
        self.realm = realm
        self.authorization_servers = list(authorization_servers)

    @classmethod
    def local(cls, app: Flask | None = None, *, resource: str | None = None,
              realm: str = "oauth_sessions",
              accept_issuer_audience: bool = True) -> ResourceProtector:
        """Validate against this app's own ``OAuthSessions`` (same database, no HTTP)."""
        protector = cls(LocalValidator(resource, accept_issuer_audience=accept_issuer_audience),
                        resource=resource, realm=realm)
        if app is not None:
            protector.authorization_servers = [get_state(app).settings.issuer]
        return protector

    @classmethod
    def remote(cls, introspection_url: str, client_id: str, client_secret: str, *,
               cache_ttl: float = 0, cache_size: int = 10_000, timeout: tuple[float, float] = (2.0, 5.0),
               pool_size: int = 10, resource: str | None = None, realm: str = "oauth_sessions",
               authorization_servers: Iterable[str] = (), dpop_engine: Engine | None = None,
               dpop_iat_window: int = 60,
               accept_issuer_audience: bool = True) -> ResourceProtector:
        """Validate through a remote introspection endpoint; ``cache_ttl`` is the revocation delay.

        ``client_id`` and ``client_secret`` are the credentials of a registered resource server
        (its id and introspection secret: the endpoint then answers only for tokens meant for
        it) or of a client with ``can_introspect``. Either way the answer's ``aud`` is checked
        here too, by the same rule as in local mode.

        ``dpop_engine``: a database with the library's migrations, whose ``oauth_dpop_proofs``
        table makes DPoP proofs one-time across every worker of this resource server; without
        it DPoP-bound tokens are refused (no challenge offers DPoP).
        """
        try:  # an optional dependency (requests), imported only by remote mode
            from .resource_remote import RemoteValidator
        except ImportError as exc:
            raise RuntimeError("remote mode needs requests: pip install 'oauth_sessions[resource]'"
                               ) from exc
        validator = RemoteValidator(introspection_url, client_id, client_secret, timeout=timeout,
                                    pool_size=pool_size, cache_ttl=cache_ttl, cache_size=cache_size,
                                    resource=resource,
                                    accept_issuer_audience=accept_issuer_audience)
        dpop = None
        if dpop_engine is not None:
            dpop = DpopChecker(DpopReplayLedger(dpop_engine), iat_window=dpop_iat_window,
                               nonces=None, nonce_required=False)
        return cls(validator, resource=resource, realm=realm,
                   authorization_servers=authorization_servers, dpop=dpop)

    def require(self, scope: str | Iterable[str] | None = None, aal: Aal | str | None = None,
                max_age: int | None = None) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
        """Decorate a view: a bearer token active now, holding ``scope``, at ``aal`` or higher,
        and (``max_age``) from an authentication at most that many seconds old."""
        needed_scopes = policy.parse_scope(scope)
        needed_aal = Aal(aal) if aal is not None else None

        def decorator(view: Callable[P, R]) -> Callable[P, R | Response]:
            @functools.wraps(view)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
                try:
                    http = _request()
                    scheme, token = credentials_of(http)
                    info = self.validator.validate(token)
                    require_sender(info, scheme, token, http, self.dpop_checker(),
                                   uri=request.base_url)
                    check_grant(info, needed_scopes, needed_aal, max_age)
                except Challenge as challenge:
                    return self.challenge_response(challenge)
                setattr(g, _G_KEY, info)
                return view(*args, **kwargs)

            return wrapper

        return decorator

    def dpop_checker(self) -> DpopChecker | None:
        """The DPoP checks of this protector: its own, or in local mode the app's."""
        if self.dpop is not None:
            return self.dpop
        if isinstance(self.validator, LocalValidator):
            return get_state(current_app).services.dpop
        return None

    def close(self) -> None:
        """Close the remote mode's connection pool (e.g. at shutdown or the end of a test)."""
        self.validator.close()

    def challenge_response(self, challenge: Challenge) -> Response:
        """The HTTP answer to a refusal of this protector (see :func:`challenge_response`)."""
        return challenge_response(
            challenge, realm=self.realm,
            resource_metadata=metadata_url(self.resource) if self.resource else None,
            dpop_algs=DPOP_ALGS if self.dpop_checker() is not None else ())

    # ----------------------------------------------------------------------- RFC 9728

    def metadata(self, *, scopes_supported: Iterable[str] = (), resource_name: str | None = None,
                 **extra: Any) -> dict[str, Any]:
        """The protected-resource metadata document (RFC 9728 section 2)."""
        if not self.resource:
            raise RuntimeError("set resource='https://…' on the ResourceProtector to publish metadata")
        servers = self.authorization_servers
        if not servers and isinstance(self.validator, LocalValidator):
            servers = [get_state().settings.issuer]
        document: dict[str, Any] = {
            "resource": self.resource,
            "authorization_servers": list(servers),
            "bearer_methods_supported": ["header"],
        }
        if self.dpop_checker() is not None:  # RFC 9728 section 2: what proofs are verified with
            document["dpop_signing_alg_values_supported"] = list(DPOP_ALGS)
        scopes = list(scopes_supported)
        if scopes:
            document["scopes_supported"] = scopes
        if resource_name:
            document["resource_name"] = resource_name
        document.update(extra)
        return document

    def init_app(self, app: Flask, **metadata: Any) -> None:
        """Serve the metadata at the RFC 9728 well-known URL of ``resource`` (path inserted)."""
        if not self.resource:
            raise RuntimeError("set resource='https://…' on the ResourceProtector to publish metadata")
        path = urlsplit(metadata_url(self.resource)).path

        def protected_resource_metadata() -> Response:
            response = jsonify(self.metadata(**metadata))
            response.headers["Cache-Control"] = "public, max-age=3600"
            return response

        app.add_url_rule(path, endpoint=f"oauth_sessions_prm_{id(self)}",
                         view_func=protected_resource_metadata, methods=["GET"])

