"""Discovery metadata: RFC 8414 and OpenID Connect Discovery 1.0, one document for both.

It lists exactly what this server does: one response type (``code``), two grants, PKCE with
``S256`` only, the client authentication methods, the ID token signing algorithms (RS256
first, then every other alg the key store holds an active key of, so each listed alg can really
be signed and a client may register any of them as ``id_token_signed_response_alg``), the
RFC 9207 ``iss`` parameter, and no request objects.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response
from flask.typing import ResponseReturnValue

from ..core.policy import STANDARD_SCOPES
from ..flask.state import AppState, get_state
from ..storage.clients import AUTH_METHODS
from .client_auth import SIGNING_ALGS
from .code_grant import PROMPTS

__all__ = ["STANDARD_SCOPES", "discovery_document", "openid_configuration"]




def discovery_document(app: Flask | None = None) -> dict[str, Any]:
    """RFC 8414 / OpenID Connect Discovery 1.0 metadata: exactly what this server does."""
    state = get_state(app)
    settings = state.settings
    base = settings.issuer + settings.url_prefix
    keys = state.services.keys
    doc: dict[str, Any] = {
        "issuer": settings.issuer,
        "authorization_endpoint": base + "/authorize",
        "token_endpoint": base + "/token",
        "userinfo_endpoint": base + "/userinfo",
        "jwks_uri": base + "/jwks",
        "revocation_endpoint": base + "/revoke",
        "introspection_endpoint": base + "/introspect",
        "scopes_supported": _scopes_supported(state),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        # OIDC Core section 8: pairwise only where a salt to compute it with is configured.
        "subject_types_supported": ["public", "pairwise"] if settings.pairwise_salt else ["public"],
        "id_token_signing_alg_values_supported": list(keys.id_token_algs),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGS),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": _claims_supported(state),
        "acr_values_supported": ["aal1", "aal2", "aal3"],
        "prompt_values_supported": sorted(PROMPTS),
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "authorization_response_iss_parameter_supported": True,
        "frontchannel_logout_supported": False,
        # OIDC RP-Initiated Logout 1.0 section 2.1, Back-Channel Logout 1.0 section 2.1.
        "end_session_endpoint": base + "/logout",
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }
    if settings.dynamic_registration:
        doc["registration_endpoint"] = base + "/register"
    return doc


#: What every ID token (OIDC Core section 2) of this provider may carry; ``c_hash`` is not
#: there because no ID token is returned from the authorization endpoint.
ID_TOKEN_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
                   "azp", "at_hash")


def _claims_supported(state: AppState) -> list[str]:
    """The ID token's claims, then the ones the host says its ``userinfo()`` returns
    (``HostAdapter.claims_supported``): what a relying party can actually receive."""
    return list(dict.fromkeys((*ID_TOKEN_CLAIMS, *state.services.host.claims_supported)))


def _scopes_supported(state: AppState) -> list[str]:
    scopes = {*STANDARD_SCOPES, *state.settings.scope_min_aal}
    return sorted(scopes)


def openid_configuration() -> ResponseReturnValue:
    return Response(json.dumps(discovery_document()), 200,
                    {"Cache-Control": "public, max-age=300"}, mimetype="application/json")
