"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).

Off unless ``OAUTH_SESSIONS_DYNAMIC_REGISTRATION`` is true. With
``OAUTH_SESSIONS_REGISTRATION_INITIAL_ACCESS_TOKEN`` set, registering needs that bearer token
(RFC 7591 section 3: "open" registration otherwise).

What a dynamically registered client may ask for is a subset of what an administrator can
give: the code grant (and refresh), the three authentication methods, the standard scopes and
the ones named in ``SCOPE_MIN_AAL``. A client that registers no ``scope`` (OpenID Connect
registration has no such member) gets ``OAUTH_SESSIONS_REGISTRATION_DEFAULT_SCOPE``, the
standard OpenID scopes by default. It can never get introspection rights or a lower aal.
Unknown metadata is ignored (RFC 7591 section 2). Each client gets a registration access token
(stored as a hash, like secrets) for ``GET``/``PUT``/``DELETE`` on its configuration URI
(RFC 7592 section 2); deleting a client ends all its sessions. Every ``GET`` and ``PUT`` answer
carries a fresh registration access token (section 3): only hashes are stored, so the old one
is retired in the same compare-and-swap that stores the new one.

Bodies are bounded before anything is read from them (issue 15 item 10): nesting at most
:data:`MAX_DEPTH` levels, and no string anywhere (names, values, unknown fields) may hold a
control character, NUL or lone surrogate. Such a body is ``invalid_client_metadata`` and
nothing is written. A client registered here is never verified
(:mod:`oauth_sessions.core.client_rules`): an operator vouches for it with ``verify-client``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..core.bearer import MalformedCredentials, bearer_token
from ..core.client_rules import (
    MAX_CLIENT_NAME,
    MAX_REDIRECT_URIS,
    check_redirect_uris,
    has_forbidden_characters,
)
from ..core.policy import STANDARD_SCOPES, is_valid_scope_token, join_scope, parse_scope
from ..core.settings import Settings
from ..core.uris import validate_backchannel_logout_uri, validate_redirect_uri
from ..jose.client_jwks import parse_client_jwks
from ..storage.clients import (
    AUTH_METHODS,
    GRANT_TYPES,
    ClientInfo,
    ClientStore,
    sector_of,
    verify_client_secret,
)
from ..storage.signing_keys import KeyStore
from .http import Answer, HttpRequest, error_answer, json_answer
from .request_checks import check_request

__all__ = ["ClientMetadataError", "RegistrationEndpoint", "parse_client_metadata"]

#: The deepest metadata is a private_key_jwt client's ``jwks`` (object → keys → key → x5c).
MAX_DEPTH: Final = 8


class ClientMetadataError(ValueError):
    """RFC 7591 section 3.2.2: ``invalid_redirect_uri`` or ``invalid_client_metadata``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _uri_list(body: Mapping[str, Any], key: str, *, required: bool) -> list[str]:
    value = body.get(key)
    if value is None and not required:
        return []
    error = "invalid_redirect_uri" if key == "redirect_uris" else "invalid_client_metadata"
    if not isinstance(value, list) or not value or len(value) > MAX_REDIRECT_URIS:
        raise ClientMetadataError(error, f"{key} must be a list of 1 to {MAX_REDIRECT_URIS} URIs")
    if not all(isinstance(v, str) for v in value):
        raise ClientMetadataError(error, f"{key} must hold strings")
    try:
        return check_redirect_uris(value, kind=f"{key} entry")
    except ValueError as exc:
        raise ClientMetadataError(error, str(exc)) from None


def _web_uri(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ClientMetadataError("invalid_client_metadata", f"{key} must be an http(s) URL")
    try:
        return validate_redirect_uri(value)
    except ValueError:
        raise ClientMetadataError("invalid_client_metadata", f"{key} is not a valid URL") from None


def _backchannel_uri(body: Mapping[str, Any], *, allow_loopback_http: bool) -> str | None:
    """OIDC Back-Channel Logout 1.0 section 2.2; this server POSTs there, so SSRF rules apply."""
    value = body.get("backchannel_logout_uri")
    if value is None:
        return None
    try:
        return validate_backchannel_logout_uri(value, allow_loopback_http=allow_loopback_http)
    except (ValueError, TypeError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "backchannel_logout_uri must be a string"
        raise ClientMetadataError("invalid_client_metadata", reason) from None


#: Metadata that would change what the client receives on the wire (OpenID Connect Dynamic
#: Client Registration 1.0 section 2) and that this server does not do: ignoring them, as
#: unknown metadata is ignored, would hand the client something else than it registered for
#: (public subjects to a client that asked for pairwise ones, plain ID tokens to one that
#: expects them encrypted), so registering any of them is refused with what to do instead.
UNSUPPORTED_METADATA: Final = {
    "sector_identifier_uri": "sector_identifier_uri is not supported: this server fetches no "
                             "client documents; a pairwise client's sector is the one host of "
                             "its redirect URIs",
    "id_token_encrypted_response_alg": "encrypted ID tokens are not supported: leave out "
                                       "id_token_encrypted_response_alg",
    "id_token_encrypted_response_enc": "encrypted ID tokens are not supported: leave out "
                                       "id_token_encrypted_response_enc",
    "userinfo_encrypted_response_alg": "encrypted UserInfo answers are not supported: leave out "
                                       "userinfo_encrypted_response_alg",
    "userinfo_encrypted_response_enc": "encrypted UserInfo answers are not supported: leave out "
                                       "userinfo_encrypted_response_enc",
}


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    """Refuse metadata this server cannot honour (:data:`UNSUPPORTED_METADATA`)."""
    for key, reason in UNSUPPORTED_METADATA.items():
        if body.get(key) is not None:
            raise ClientMetadataError("invalid_client_metadata", reason)


def _pairwise(body: Mapping[str, Any], redirect_uris: Sequence[str], available: bool) -> bool:
    """OIDC Dynamic Client Registration 1.0 section 2 ``subject_type`` (default ``public``);
    ``pairwise`` only where the provider has ``PAIRWISE_SALT`` (discovery's
    ``subject_types_supported`` says which), with every redirect URI on the sector's one host."""
    subject_type = body.get("subject_type", "public")
    if subject_type == "public":
        return False
    if subject_type != "pairwise" or not available:
        supported = "public or pairwise" if available else "public"
        raise ClientMetadataError("invalid_client_metadata",
                                  f"subject_type must be {supported}")
    try:
        sector_of(redirect_uris)
    except ValueError as exc:
        raise ClientMetadataError("invalid_client_metadata", str(exc)) from None
    return True


def _id_token_alg(body: Mapping[str, Any], id_token_algs: Sequence[str]) -> str:
    """OpenID Connect Dynamic Client Registration 1.0 section 2: ``id_token_signed_response_alg``
    defaults to RS256, and is stored as such, so the client's ID tokens stay RS256 whatever the
    provider's ``ID_TOKEN_SIGNING_ALG`` is. Only algs the provider holds a key of are accepted
    (``none`` never: this server issues ID tokens from the token endpoint only, always signed)."""
    value = body.get("id_token_signed_response_alg", "RS256")
    if value not in id_token_algs:
        raise ClientMetadataError("invalid_client_metadata",
                                  "id_token_signed_response_alg must be one of "
                                  + ", ".join(id_token_algs))
    return str(value)


def _userinfo_alg(body: Mapping[str, Any], algs: Sequence[str]) -> str | None:
    """OIDC Dynamic Client Registration 1.0 section 2: ``userinfo_signed_response_alg``; none
    means plain JSON (the section's default). Only algs the provider holds a key of."""
    value = body.get("userinfo_signed_response_alg")
    if value is None:
        return None
    if value not in algs:
        raise ClientMetadataError("invalid_client_metadata",
                                  "userinfo_signed_response_alg must be one of " + ", ".join(algs))
    return str(value)


def _scopes(body: Mapping[str, Any], allowed_scopes: set[str], default_scope: str,
            grants: Any) -> tuple[str, ...]:
    """The client's scopes: as registered, or ``default_scope`` when it names none (OpenID
    Connect Dynamic Client Registration has no ``scope`` member, so relying parties built on it
    send none, then ask for ``openid profile email``). A client that registers the refresh
    grant without a scope also gets ``offline_access``, or it could never obtain a refresh
    token. A named scope the server does not offer is refused with the list it does offer."""
    scope = body.get("scope")
    if scope is None:
        defaults = parse_scope(default_scope)
        if isinstance(grants, list) and "refresh_token" in grants:
            defaults = (*defaults, "offline_access")
        return parse_scope(s for s in defaults if s in allowed_scopes)
    scopes = parse_scope(scope) if isinstance(scope, str) else ()
    if not scopes or not all(is_valid_scope_token(s) and s in allowed_scopes for s in scopes):
        raise ClientMetadataError("invalid_client_metadata",
                                  "scope must list supported scopes only: "
                                  + " ".join(sorted(allowed_scopes)))
    return scopes


def parse_client_metadata(body: Any, allowed_scopes: set[str], *,
                          allow_loopback_http: bool = False,
                          id_token_algs: Sequence[str] = ("RS256",),
                          default_scope: str = "openid",
                          pairwise_available: bool = False) -> dict[str, Any]:
    """RFC 7591 section 2 metadata → keyword arguments of :meth:`ClientStore.create`.

    ``allow_loopback_http`` (development deployments only) lets the back-channel logout URI be
    a loopback ``http`` URL; pass the client store's own ``allow_loopback_http``.
    ``id_token_algs``: the algs the provider can sign ID tokens with (the key store's).
    ``default_scope``: the scope of a client that registers none
    (``OAUTH_SESSIONS_REGISTRATION_DEFAULT_SCOPE``). ``pairwise_available``: the provider
    has ``PAIRWISE_SALT``, so ``subject_type=pairwise`` may be registered.
    """
    if not isinstance(body, dict):
        raise ClientMetadataError("invalid_client_metadata", "the body must be a JSON object")
    redirect_uris = _uri_list(body, "redirect_uris", required=True)
    _refuse_unsupported(body)
    method = body.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise ClientMetadataError("invalid_client_metadata",
                                  "token_endpoint_auth_method must be one of " + ", ".join(AUTH_METHODS))
    grants = body.get("grant_types", ["authorization_code"])
    if (not isinstance(grants, list) or not grants or not set(grants) <= set(GRANT_TYPES)
            or "authorization_code" not in grants):
        raise ClientMetadataError("invalid_client_metadata",
                                  "grant_types must be authorization_code, optionally refresh_token")
    if body.get("response_types", ["code"]) != ["code"]:
        raise ClientMetadataError("invalid_client_metadata", "response_types must be [\"code\"]")
    scopes = _scopes(body, allowed_scopes, default_scope, grants)
    name = body.get("client_name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_CLIENT_NAME):
        raise ClientMetadataError("invalid_client_metadata", "client_name must be a short string")
    backchannel = _backchannel_uri(body, allow_loopback_http=allow_loopback_http)
    session_required = body.get("backchannel_logout_session_required", True)
    if not isinstance(session_required, bool):
        raise ClientMetadataError("invalid_client_metadata",
                                  "backchannel_logout_session_required must be a boolean")
    require_par = body.get("require_pushed_authorization_requests", False)
    if not isinstance(require_par, bool):
        raise ClientMetadataError("invalid_client_metadata",
                                  "require_pushed_authorization_requests must be a boolean")
    dpop_bound = body.get("dpop_bound_access_tokens", False)
    if not isinstance(dpop_bound, bool):  # RFC 9449 section 5.2: a boolean, default false
        raise ClientMetadataError("invalid_client_metadata",
                                  "dpop_bound_access_tokens must be a boolean")
    jwks = None
    if method == "private_key_jwt":
        try:
            jwks = parse_client_jwks(body.get("jwks"))
        except (ValueError, TypeError):
            raise ClientMetadataError("invalid_client_metadata",
                                      "private_key_jwt needs a jwks of public keys "
                                      "(jwks_uri is not supported)") from None
    return {
        "name": name or "Unnamed client",
        "redirect_uris": redirect_uris,
        "scopes": join_scope(scopes),
        "public": method == "none",
        "grant_types": [g for g in GRANT_TYPES if g in grants],
        "token_endpoint_auth_method": method,
        "client_uri": _web_uri(body, "client_uri"),
        "logo_uri": _web_uri(body, "logo_uri"),
        "post_logout_redirect_uris": _uri_list(body, "post_logout_redirect_uris", required=False),
        "backchannel_logout_uri": backchannel,
        # OIDC Back-Channel Logout 1.0 section 2.2 (logout tokens carry sid either way).
        "backchannel_logout_session_required": session_required,
        "jwks": jwks,
        "id_token_signed_response_alg": _id_token_alg(body, id_token_algs),
        "pairwise": _pairwise(body, redirect_uris, pairwise_available),
        # RFC 9126 section 6 (default false).
        "require_pushed_authorization_requests": require_par,
        "userinfo_signed_response_alg": _userinfo_alg(body, id_token_algs),
        "dpop_bound_access_tokens": dpop_bound,
    }


_NO_CONTENT: Final = Answer(204, (("Cache-Control", "no-store"),
                                  ("Content-Type", "text/html; charset=utf-8")))
_BEARER_FAILURE: Final = error_answer("invalid_token", "a valid bearer token is required", 401,
                                      {"WWW-Authenticate": 'Bearer error="invalid_token"'})


class RegistrationEndpoint:
    """The handlers of ``POST {prefix}/register`` (:meth:`register`) and of
    ``GET``/``PUT``/``DELETE {prefix}/register/<client_id>`` (:meth:`manage`).

    The steps of :meth:`register`, in order::

        check_request           request hygiene (protocol/request_checks.py)
        require_initial_token   with REGISTRATION_INITIAL_ACCESS_TOKEN set, that bearer token
                                (constant-time), else 401 invalid_token
        json_body               the JSON body, bounded in depth and characters
        parse_client_metadata   RFC 7591 section 2 metadata, else 400 (nothing written)
        create                  the client, with a registration access token stored as a hash
        answer                  201: the configuration, the secret, the token (section 3.2.1)

    The steps of :meth:`manage`, in order::

        check_request           request hygiene
        registered_client       the client exists, registered itself, and the bearer token is
                                its registration access token; else 401 (RFC 7592 section 2:
                                an unknown client and a wrong token look the same)
        GET                     the configuration with a new token (section 2.1)
        DELETE                  the client and all its sessions are gone: 204 (section 2.3)
        PUT                     json_body, the same client_id, parse_client_metadata, no change
                                between public and confidential or of subject_type, update,
                                then the configuration with a new token (section 2.2)
    """

    def __init__(self, settings: Settings, clients: ClientStore, keys: KeyStore) -> None:
        self._settings = settings
        self._clients = clients
        self._keys = keys
        self._allowed_scopes = {*STANDARD_SCOPES, *settings.scope_min_aal}

    def register(self, request: HttpRequest) -> Answer:
        refused = check_request(request)
        if refused is not None:
            return refused
        if not self.has_initial_token(request):
            return _BEARER_FAILURE
        try:
            options = self.client_options(json_body(request))
        except ClientMetadataError as exc:
            return _failure(exc)
        token = secrets.token_urlsafe(32)
        try:
            info, secret = self._clients.create(registration_type="dynamic",
                                                registration_access_token=token,
                                                verified=False, **options)
        except ValueError as exc:  # the store's own rules (a reserved name, say)
            return _failure(ClientMetadataError("invalid_client_metadata", str(exc)))
        return json_answer(self.configuration(info, secret=secret, registration_token=token), 201)

    def manage(self, request: HttpRequest, client_id: str) -> Answer:
        refused = check_request(request)
        if refused is not None:
            return refused
        info = self.registered_client(request, client_id)
        if info is None:
            return _BEARER_FAILURE
        if request.method == "GET":
            return self._answer_with_new_token(info)
        if request.method == "DELETE":
            self._clients.delete(info.id)
            return _NO_CONTENT
        # PUT (and Flask's automatic HEAD, whose empty body is refused here like any body that
        # is not JSON, so a HEAD never replaces the token)
        try:
            self._update(info, json_body(request))
        except ClientMetadataError as exc:
            return _failure(exc)
        except ValueError as exc:  # the store's own rules (a reserved name, say): nothing written
            return _failure(ClientMetadataError("invalid_client_metadata", str(exc)))
        updated = self._clients.get(info.id, fresh=True)
        assert updated is not None
        return self._answer_with_new_token(updated)

    def has_initial_token(self, request: HttpRequest) -> bool:
        """RFC 7591 section 3: registration is open unless an initial access token is set."""
        expected = self._settings.registration_initial_access_token
        if expected is None:
            return True
        given = _bearer(request) or ""
        return hmac.compare_digest(given.encode(), expected.encode())

    def registered_client(self, request: HttpRequest, client_id: str) -> ClientInfo | None:
        """The dynamically registered client whose registration access token is the bearer."""
        info = self._clients.get(client_id, fresh=True)
        token = _bearer(request)
        if (info is None or token is None or info.registration_type != "dynamic"
                or not verify_client_secret(token, info.registration_access_token_hash)):
            return None
        return info

    def client_options(self, body: Any) -> dict[str, Any]:
        """:func:`parse_client_metadata` with this provider's scopes, algs and settings."""
        return parse_client_metadata(body, self._allowed_scopes,
                                     allow_loopback_http=self._clients.allow_loopback_http,
                                     id_token_algs=self._keys.id_token_algs,
                                     default_scope=self._settings.registration_default_scope,
                                     pairwise_available=self._settings.pairwise_salt is not None)

    def configuration(self, info: ClientInfo, *, secret: str | None = None,
                      registration_token: str | None = None) -> dict[str, Any]:
        """RFC 7591 section 3.2.1 / RFC 7592 section 3: the client's metadata and where to manage it."""
        body = info.as_metadata()
        body["registration_client_uri"] = (f"{self._settings.issuer}{self._settings.url_prefix}"
                                           f"/register/{info.client_id}")
        if secret is not None:
            body["client_secret"] = secret
            body["client_secret_expires_at"] = 0  # RFC 7591 section 3.2.1: does not expire
        if registration_token is not None:
            body["registration_access_token"] = registration_token
        return body

    def _answer_with_new_token(self, info: ClientInfo) -> Answer:
        """RFC 7592 section 3: the configuration with a registration access token. Only the old
        token's hash is known, so a new one replaces it; a request that lost the race to another
        one using the same token gets 401, as if the token were wrong."""
        token = secrets.token_urlsafe(32)
        if not self._clients.replace_registration_token(info.id, info.registration_access_token_hash,
                                                        token):
            return _BEARER_FAILURE
        return json_answer(self.configuration(info, registration_token=token))

    def _update(self, info: ClientInfo, body: Any) -> None:
        """RFC 7592 section 2.2: the whole new metadata, for the same client, of the same kind."""
        if not isinstance(body, dict) or body.get("client_id") != info.client_id:
            raise ClientMetadataError("invalid_client_metadata",
                                      "the body must be a JSON object with this client_id")
        options = self.client_options(body)
        if options["public"] != info.is_public:
            raise ClientMetadataError("invalid_client_metadata",
                                      "a client cannot change between public and confidential")
        if options["pairwise"] != (info.subject_type == "pairwise"):
            raise ClientMetadataError("invalid_client_metadata",
                                      f"a client cannot change its subject_type "
                                      f"({info.subject_type}): every sub it knows would change")
        self._clients.update_metadata(
            info.id, client_name=options["name"], redirect_uris="\n".join(options["redirect_uris"]),
            scope=options["scopes"], grant_types=" ".join(options["grant_types"]),
            token_endpoint_auth_method=options["token_endpoint_auth_method"],
            client_uri=options["client_uri"], logo_uri=options["logo_uri"],
            post_logout_redirect_uris="\n".join(options["post_logout_redirect_uris"]) or None,
            backchannel_logout_uri=options["backchannel_logout_uri"], jwks=options["jwks"],
            backchannel_logout_session_required=options["backchannel_logout_session_required"],
            id_token_signed_response_alg=options["id_token_signed_response_alg"],
            require_pushed_authorization_requests=options["require_pushed_authorization_requests"],
            userinfo_signed_response_alg=options["userinfo_signed_response_alg"],
            dpop_bound_access_tokens=options["dpop_bound_access_tokens"])


def _bearer(request: HttpRequest) -> str | None:
    """The registration (or initial) access token: the one header parser, nothing if malformed."""
    try:
        return bearer_token(request.header("Authorization"))
    except MalformedCredentials:
        return None


def json_body(request: HttpRequest) -> Any:
    """The JSON body, or ``None`` when it is not JSON; :class:`ClientMetadataError` when it is
    nested too deep or holds characters no registration string may hold."""
    if request.mimetype != "application/json":
        return None
    try:
        body = json.loads(request.body.decode("utf-8"))
    except RecursionError:
        raise ClientMetadataError("invalid_client_metadata",
                                  f"the body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # not UTF-8 or not JSON
        return None
    _check_strings(body, 0)
    return body


def _check_strings(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ClientMetadataError("invalid_client_metadata",
                                  f"the body nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if has_forbidden_characters(value):
            raise ClientMetadataError("invalid_client_metadata",
                                      "strings must not contain control characters, NUL or "
                                      "lone surrogates")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, depth + 1)
            _check_strings(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, depth + 1)


def _failure(exc: ClientMetadataError) -> Answer:
    return error_answer(exc.error, exc.description)
