"""Response headers every provider endpoint sends, whatever the host app does for its own pages.

* Anti-framing on everything the blueprint answers, the consent page above all: a page that
  can be framed can be clickjacked into "Approve" (RFC 6749 section 10.13, RFC 9700 section
  4.16). ``X-Frame-Options: DENY`` for old browsers, CSP ``frame-ancestors 'none'`` for the
  others. A host that sets its own CSP keeps it; ``frame-ancestors 'none'`` is appended when
  its policy does not say anything about framing.
* ``X-Content-Type-Options: nosniff``, so a JSON error echoing a parameter is never sniffed
  into HTML.
* ``Cache-Control: no-store`` and ``Pragma: no-cache`` on every answer of the authorization
  endpoint (its redirects carry codes; its pages carry CSRF tickets). Token, introspection and
  UserInfo responses set them where they are built (RFC 6749 section 5.1).

The headers themselves are :data:`oauth_sessions.protocol.http.SECURITY_HEADERS`, which the
WSGI app (:mod:`oauth_sessions.wsgi`) sends too.
"""

from __future__ import annotations

from typing import Final

from flask import Response, request

from ..protocol.http import NO_STORE, SECURITY_HEADERS

__all__ = ["protect"]

_FRAME: Final = dict(SECURITY_HEADERS)["Content-Security-Policy"]


def protect(response: Response) -> Response:
    """``after_request`` of the provider's blueprints.

    Runs on every answer of the blueprints, so the header names are read once (each Werkzeug
    ``Headers`` lookup is a scan of the whole list).
    """
    headers = response.headers
    present = {name.lower() for name, _ in headers.items()}
    for name, value in SECURITY_HEADERS[:2]:  # X-Frame-Options, X-Content-Type-Options
        if name.lower() not in present:
            headers.add(name, value)
    if "content-security-policy" not in present:
        headers.add("Content-Security-Policy", _FRAME)
    else:
        policy = headers.get("Content-Security-Policy")
        if not policy:
            headers["Content-Security-Policy"] = _FRAME
        elif "frame-ancestors" not in policy:
            headers["Content-Security-Policy"] = policy.rstrip("; ") + "; " + _FRAME
    if request.endpoint == "oauth_sessions.authorize":
        for name, value in NO_STORE.items():
            if name.lower() not in present:
                headers.add(name, value)
    return response
