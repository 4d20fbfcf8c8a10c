"""Discovery metadata: RFC 8414 and OpenID Connect Discovery 1.0, one document for both.

It lists exactly what this server does: one response type (``code``), two grants, PKCE with
``S256`` only, the three client authentication methods, the ID token signing algorithms (RS256 first), the
RFC 9207 ``iss`` parameter, and no request objects. :class:`DiscoveryEndpoint` is the handler
of both well-known URLs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from ..core.policy import STANDARD_SCOPES
from ..core.settings import Settings
from ..storage.clients import AUTH_METHODS
from ..storage.signing_keys import KeyStore
from .client_auth import SIGNING_ALGS
from .code_grant import PROMPTS
from .dpop import DPOP_ALGS
from .http import Answer, HttpRequest

__all__ = ["STANDARD_SCOPES", "DiscoveryEndpoint", "discovery_document"]

_HEADERS: Final = (("Cache-Control", "public, max-age=300"), ("Content-Type", "application/json"))

#: OIDC Core section 5.4 scopes plus offline_access (section 11).



def discovery_document(settings: Settings, *, id_token_algs: Sequence[str],
                       host_claims: Sequence[str] = ()) -> dict[str, Any]:
    """RFC 8414 / OpenID Connect Discovery 1.0 metadata: exactly what this server does.

    ``id_token_algs`` are the key store's (``KeyStore.id_token_algs``: every alg with a key,
    RS256 first); ``host_claims`` the host's ``HostAdapter.claims_supported``.
    """
    base = settings.endpoint_url("")
    doc: dict[str, Any] = {
        "issuer": settings.issuer,
        "authorization_endpoint": base + "/authorize",
        "token_endpoint": base + "/token",
        "userinfo_endpoint": base + "/userinfo",
        "jwks_uri": base + "/jwks",
        "revocation_endpoint": base + "/revoke",
        "introspection_endpoint": base + "/introspect",
        "scopes_supported": _scopes_supported(settings),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        # OIDC Core section 8: pairwise only where a salt to compute it with is configured.
        "subject_types_supported": ["public", "pairwise"] if settings.pairwise_salt else ["public"],
        "id_token_signing_alg_values_supported": list(id_token_algs),
        # OIDC Core 5.3.2: signed UserInfo for clients that register an alg (the same keys).
        "userinfo_signing_alg_values_supported": list(id_token_algs),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": list(dict.fromkeys((*ID_TOKEN_CLAIMS, *host_claims))),
        "acr_values_supported": ["aal1", "aal2", "aal3"],
        "prompt_values_supported": sorted(PROMPTS),
        # OIDC Core 5.5: released within the granted scopes (core/claims_request.py).
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        # OIDC request_uri (a request object to fetch) is not supported; a request_uri that
        # a pushed request answered is (RFC 9126 section 5).
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "pushed_authorization_request_endpoint": base + "/par",
        "require_pushed_authorization_requests": settings.require_pushed_authorization_requests,
        "authorization_response_iss_parameter_supported": True,
        "frontchannel_logout_supported": False,
        # OIDC RP-Initiated Logout 1.0 section 2.1, Back-Channel Logout 1.0 section 2.1.
        "end_session_endpoint": base + "/logout",
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        # RFC 9449 section 5.1: exactly the algorithms a proof is verified with.
        "dpop_signing_alg_values_supported": list(DPOP_ALGS),
    }
    if settings.dynamic_registration:
        doc["registration_endpoint"] = base + "/register"
    return doc


#: What every ID token (OIDC Core section 2) of this provider may carry; ``c_hash`` is not
#: there because no ID token is returned from the authorization endpoint.
ID_TOKEN_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
                   "azp", "at_hash")


def _scopes_supported(settings: Settings) -> list[str]:
    scopes = {*STANDARD_SCOPES, *settings.scope_min_aal}
    return sorted(scopes)


class DiscoveryEndpoint:
    """The handler of both well-known metadata URLs (RFC 8414 section 3, OIDC Discovery section 4)."""

    def __init__(self, settings: Settings, keys: KeyStore,
                 host_claims: Sequence[str] = ()) -> None:
        self._settings = settings
        self._keys = keys
        self._host_claims = tuple(host_claims)

    def __call__(self, request: HttpRequest) -> Answer:
        del request
        document = discovery_document(self._settings, id_token_algs=self._keys.id_token_algs,
                                      host_claims=self._host_claims)
        return Answer(200, _HEADERS, json.dumps(document).encode())
