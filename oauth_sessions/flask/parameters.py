"""Request hygiene for the blueprint's views that are not protocol handlers (authorize, the
OpenAPI document).

The rules are :func:`oauth_sessions.protocol.request_checks.check_request`; the handlers
(token, introspection, revocation, userinfo, JWKS, registration, logout) run it as their own
first step, so it is skipped for them here and applies the same way in the WSGI app.
"""

from __future__ import annotations

from typing import Final

from flask import Response, request
from flask.globals import request_ctx

from ..protocol.http import from_werkzeug
from ..protocol.request_checks import MAX_BODY, MAX_VALUE, PRINTABLE_ASCII, check_request
from .responses import to_response

__all__ = ["HANDLED", "MAX_BODY", "MAX_VALUE", "PRINTABLE_ASCII", "check_parameters"]

#: Endpoints whose handler checks the request itself.
HANDLED: Final = frozenset({"oauth_sessions.token", "oauth_sessions.revoke",
                            "oauth_sessions.introspect", "oauth_sessions.userinfo",
                            "oauth_sessions.jwks", "oauth_sessions.register",
                            "oauth_sessions.manage_client", "oauth_sessions.end_session",
                            "oauth_sessions.pushed_authorization_request"})


def check_parameters() -> Response | None:
    """``before_request`` of the OAuth blueprint: :func:`check_request` for the other views."""
    if request.endpoint in HANDLED:
        return None
    refused = check_request(from_werkzeug(request_ctx.request))
    return to_response(refused) if refused is not None else None
