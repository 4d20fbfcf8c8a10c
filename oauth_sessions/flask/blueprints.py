"""The Flask blueprints: every HTTP endpoint of the provider, each a short pipeline.

Under ``OAUTH_SESSIONS_URL_PREFIX`` (default ``/oauth``): ``/authorize``, ``/token``,
``/revoke``, ``/userinfo``, ``/jwks``, ``/logout`` (and ``/introspect``, ``/register`` from their modules).
At the app root: ``/.well-known/openid-configuration`` and
``/.well-known/oauth-authorization-server`` (RFC 8414 section 3: the well-known suffix is
inserted after the host, so an issuer with a path needs the host to route it too).

Before any endpoint runs, :func:`check_parameters` refuses what no endpoint can use, with
``invalid_request`` and before anything is read or written: a parameter given twice (RFC 6749
section 3.1/3.2, "MUST NOT be included more than once"), over-long values, and values outside
printable ASCII (every OAuth parameter is ``VSCHAR``, RFC 6749 Appendix A), and percent-encoded
bytes that are not UTF-8 (checked on the raw query string and body).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, Flask, Response, request
from flask.typing import ResponseReturnValue

from ..jose.jwt_tokens import InvalidAccessToken, verify_access_token
from ..storage.clients import GRANT_TYPES
from ..storage.sessions import SessionStore
from .extension import AppState, get_state
from .host import ErrorPage, HostAdapter

log = logging.getLogger(__name__)

__all__ = ["NO_STORE", "check_parameters", "error_page", "error_response", "register_blueprints",
           "request_params", "wants_html"]

MAX_BODY: Final = 64 * 1024
MAX_VALUE: Final = 4096
#: VSCHAR (RFC 6749 Appendix A). A regex, not a per-character loop: on a 1 KB access token at
#: /introspect the loop cost more CPU than verifying the token's signature.
_PRINTABLE_ASCII: Final = re.compile(r"[ -~]*")
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_CONSENT_MAX_AGE: Final = 600


def _json_response(body: Mapping[str, Any], status: int = 200,
                   headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, {**NO_STORE, **(headers or {})},
                    mimetype="application/json")


def error_response(error: str, description: str, status: int = 400,
           headers: Mapping[str, str] | None = None) -> Response:
    return _json_response({"error": error, "error_description": description}, status, headers)


def wants_html() -> bool:
    """Whether the caller is a browser: its ``Accept`` names ``text/html`` explicitly (a bare
    ``*/*`` or no header is an API caller, which gets RFC 6749 JSON)."""
    return any(mimetype == "text/html" and quality > 0
               for mimetype, quality in request.accept_mimetypes)


def error_page(page: ErrorPage) -> ResponseReturnValue:
    """An error that is not redirected: the host's page for a browser, JSON for an API caller
    (RFC 6749 section 4.1.2.1: the user is informed, the client is not redirected to)."""
    if wants_html():
        host: HostAdapter = _state().components["host"]
        return host.render_error(page)
    return error_response(page.error, page.description, page.status)


def _state() -> AppState:
    return get_state()


# --------------------------------------------------------------------------- request hygiene


def check_parameters() -> Response | None:
    """``before_request`` of the OAuth blueprint: the checks of the module docstring."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return error_response("invalid_request", "request body is too large")
    if request.method == "POST" and request.endpoint in _FORM_ONLY:
        if request.mimetype != "application/x-www-form-urlencoded":
            return error_response("invalid_request",
                          "the body must be application/x-www-form-urlencoded")
        if request.args:
            # RFC 6749 section 3.2: parameters of the token endpoint go in the body; a code or
            # token in the query string would end up in access logs.
            return error_response("invalid_request", "parameters must be sent in the request body")
    if not _basic_header_ok():
        return error_response("invalid_client", "the Authorization header is malformed", 401,
                      {"WWW-Authenticate": 'Basic realm="oauth_sessions"'})
    if not _utf8(request.query_string) or (
            request.mimetype == "application/x-www-form-urlencoded"
            and request.content_length is not None
            and not _utf8(request.get_data(cache=True))):
        return error_response("invalid_request", "parameters must be UTF-8 (RFC 6749 Appendix B)")
    seen: set[str] = set()
    try:
        sources = (request.args, request.form)
        for source in sources:
            for name, values in source.lists():
                if name in seen or len(values) > 1:
                    return error_response("invalid_request", "a parameter was given more than once")
                seen.add(name)
                for value in (name, *values):
                    if len(value) > MAX_VALUE:
                        return error_response("invalid_request", "a parameter value is too long")
                    if not _PRINTABLE_ASCII.fullmatch(value):
                        return error_response("invalid_request",
                                      "parameters must be printable ASCII (RFC 6749 Appendix A)")
    except Exception:  # malformed body that Werkzeug cannot parse
        log.debug("unparseable request body", exc_info=True)
        return error_response("invalid_request", "the request body could not be parsed")
    return None


def _utf8(raw: bytes) -> bool:
    """Whether every percent-decoded name and value of a urlencoded string is valid UTF-8.

    Werkzeug keeps undecodable sequences as literal ``%FF`` text, which would otherwise pass
    as ASCII; this looks at the bytes themselves.
    """
    try:
        for part in raw.split(b"&"):
            unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _basic_header_ok() -> bool:
    """HTTP Basic credentials must be base64 of UTF-8 ``id:secret`` (RFC 7617 section 2)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return True
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeError):
        return False
    return ":" in decoded and all(" " <= c <= "~" for c in decoded)


_FORM_ONLY: Final = frozenset({"oauth_sessions.token", "oauth_sessions.revoke"})


def request_params() -> dict[str, str]:
    values: dict[str, str] = dict(request.args.items())
    if request.method == "POST":
        values.update(request.form.items())
    return values


# --------------------------------------------------------------------------- token, revocation


def token() -> ResponseReturnValue:
    """``/token`` (RFC 6749 section 3.2): Authlib dispatches on ``grant_type`` to our grants."""
    grant_type = request.form.get("grant_type")
    if not grant_type:
        return error_response("invalid_request", "grant_type is required")
    if grant_type not in GRANT_TYPES:
        # Authlib would answer without a description; implicit, password and client
        # credentials grants do not exist here (OAuth 2.1).
        return error_response("unsupported_grant_type",
                      "only authorization_code and refresh_token are supported")
    response: Response = _state().components["server"].create_token_response()
    return response


def revoke() -> ResponseReturnValue:
    """``/revoke`` (RFC 7009). Revoking a refresh token *or* an access token ends its session.

    An access token is a JWT that cannot be recalled on its own; ending its session is the only
    way to make it fail everywhere the session is checked (introspection, UserInfo, the
    resource helper), and it matches what a user expects from "sign this app out". Unknown,
    invalid or foreign tokens get 200 as well (section 2.2), and a client can only end sessions
    issued to itself.
    """
    state = _state()
    server = state.components["server"]
    try:
        client = server.authenticate_endpoint_client(endpoint="revocation").info
    except OAuth2Error as exc:
        response: Response = server.handle_error_response(None, exc)
        return response
    value = request.form.get("token")
    if not value:
        return error_response("invalid_request", "token is required")
    session_id = _session_of(state, value)
    sessions = state.components["sessions"]
    if session_id is not None:
        info = sessions.get(session_id)
        if info is not None and info.client_id == client.id:
            sessions.revoke(session_id, reason="token_revoked")
    return Response(status=200, headers=NO_STORE)


def _session_of(state: AppState, value: str) -> uuid.UUID | None:
    """The session behind a token this server issued, or None (never raises)."""
    sessions: SessionStore = state.components["sessions"]
    found = sessions.find_refresh_session(value)  # read-only, the tag verified in constant time
    if found is not None and found.is_current:  # a superseded token revokes nothing, as before
        return found.session.id
    claims = _verify_bearer(state, value)
    return uuid.UUID(claims["sid"]) if claims is not None else None


def _verify_bearer(state: AppState, value: str) -> dict[str, Any] | None:
    keys = state.components["keys"]
    for attempt in range(2):
        try:
            return verify_access_token(keys.keyset() if attempt == 0 else
                                       keys.keyset(unknown_kid=_kid_of(value) or ""), value,
                                       issuer=state.settings.issuer, audience=state.settings.issuer)
        except InvalidAccessToken as exc:
            if exc.reason != "unknown or retired kid":
                return None
        except ValueError:
            return None
    return None


def _kid_of(value: str) -> str | None:
    """The ``kid`` of a compact JWS header, to reload keys another worker may have added."""
    try:
        segment = value.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _bearer_token() -> str | None:
    """RFC 6750 section 2.1 (header) or 2.2 (form body); one method only."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        return request.form.get("access_token") or None
    return None


def _bearer_error(status: int, error: str | None, description: str | None = None) -> Response:
    """RFC 6750 section 3: a ``WWW-Authenticate: Bearer`` challenge."""
    parts = [f'realm="{_state().settings.issuer}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    body = {"error": error, "error_description": description} if error else {}
    return _json_response(body, status, {"WWW-Authenticate": "Bearer " + ", ".join(parts)})


def userinfo() -> ResponseReturnValue:
    """``/userinfo`` (OIDC Core section 5.3): the token, its live session, then the claims."""
    state = _state()
    value = _bearer_token()
    if value is None:
        return _bearer_error(401, None)
    claims = _verify_bearer(state, value)
    if claims is None:
        return _bearer_error(401, "invalid_token", "the access token is invalid or expired")
    sessions = state.components["sessions"]
    try:
        info = sessions.get(uuid.UUID(claims["sid"]))
        if info is None:
            raise LookupError
        sessions.check_active(info)
    except Exception:  # unknown, revoked, expired or inactive session: the token is dead
        return _bearer_error(401, "invalid_token", "the session of this token has ended")
    if str(info.user_id) != claims["sub"] or str(info.client_id) != claims["client_id"]:
        return _bearer_error(401, "invalid_token", "the token does not match its session")
    scopes = tuple(str(claims.get("scope", "")).split())
    if "openid" not in scopes:
        return _bearer_error(403, "insufficient_scope", "the openid scope is required")
    body = dict(state.components["host"].userinfo(info.user_id, scopes))
    body["sub"] = claims["sub"]
    return _json_response(body)


def jwks() -> ResponseReturnValue:
    """``/jwks`` (RFC 7517 section 5): published keys, retired ones through their grace."""
    body = _state().components["keys"].keyset().jwks()
    return Response(json.dumps(body), 200, {"Cache-Control": "public, max-age=300"},
                    mimetype="application/json")


# --------------------------------------------------------------------------- registration


def register_blueprints(app: Flask, state: AppState) -> None:
    """Mount the endpoints (called once by ``OAuthSessions.init_app``)."""
    bp = Blueprint("oauth_sessions", __name__, url_prefix=state.settings.url_prefix)
    bp.before_request(check_parameters)
    from ..protocol.discovery import openid_configuration
    from .authorize import authorize

    bp.add_url_rule("/authorize", "authorize", authorize, methods=["GET", "POST"])
    bp.add_url_rule("/token", "token", token, methods=["POST"])
    bp.add_url_rule("/revoke", "revoke", revoke, methods=["POST"])
    bp.add_url_rule("/userinfo", "userinfo", userinfo, methods=["GET", "POST"])
    bp.add_url_rule("/jwks", "jwks", jwks, methods=["GET"])
    from ..protocol.logout import end_session

    bp.add_url_rule("/logout", "end_session", end_session, methods=["GET", "POST"])
    from .openapi import openapi_document

    bp.add_url_rule("/openapi.yaml", "openapi", openapi_document, methods=["GET"])
    try:
        from ..protocol.introspection_endpoint import introspection_endpoint
    except ImportError:  # pragma: no cover - introspection.py is another engineer's module
        pass
    else:
        bp.add_url_rule("/introspect", "introspect", introspection_endpoint, methods=["POST"])
    if state.settings.dynamic_registration:
        from ..protocol.registration import manage, register

        bp.add_url_rule("/register", "register", register, methods=["POST"])
        bp.add_url_rule("/register/<client_id>", "manage_client", manage,
                        methods=["GET", "PUT", "DELETE"])
    from .outage import install_outage_handlers

    install_outage_handlers(bp)  # database down: 503 temporarily_unavailable, no trace
    from .security_headers import protect

    bp.after_request(protect)  # anti-framing (consent page), nosniff, no-store on /authorize
    app.register_blueprint(bp)
    wk = Blueprint("oauth_sessions_discovery", __name__)
    wk.add_url_rule("/.well-known/openid-configuration", "openid_configuration",
                    openid_configuration, methods=["GET"])
    wk.add_url_rule("/.well-known/oauth-authorization-server", "oauth_authorization_server",
                    openid_configuration, methods=["GET"])
    install_outage_handlers(wk)
    app.register_blueprint(wk)
