"""Request hygiene of the OAuth blueprint: what no endpoint can use is refused before it runs.

:func:`check_parameters` answers ``invalid_request`` before anything is read or written: a
parameter given twice (RFC 6749 section 3.1/3.2, "MUST NOT be included more than once"),
over-long values, values outside printable ASCII (every OAuth parameter is ``VSCHAR``, RFC 6749
Appendix A), percent-encoded bytes that are not UTF-8, and malformed HTTP Basic credentials.
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Final
from urllib.parse import unquote_to_bytes

from flask import Response, request

from .responses import error_response

log = logging.getLogger(__name__)

__all__ = ["MAX_BODY", "MAX_VALUE", "PRINTABLE_ASCII", "check_parameters"]

MAX_BODY: Final = 64 * 1024
MAX_VALUE: Final = 4096
#: VSCHAR (RFC 6749 Appendix A). A regex, not a per-character loop: on a 1 KB access token at
#: /introspect the loop cost more CPU than verifying the token's signature.
PRINTABLE_ASCII: Final = re.compile(r"[ -~]*")


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
                    if not PRINTABLE_ASCII.fullmatch(value):
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
