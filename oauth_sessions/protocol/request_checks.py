"""Request hygiene: what no endpoint can use is refused before the endpoint's own steps run.

:func:`check_request` answers ``invalid_request`` before anything is read or written: a
parameter given twice (RFC 6749 section 3.1/3.2, "MUST NOT be included more than once";
``resource`` excepted, RFC 8707 section 2), over-long values, values outside printable ASCII
(every OAuth parameter is ``VSCHAR``, RFC 6749 Appendix A), percent-encoded bytes that are
not UTF-8, and malformed HTTP Basic credentials.
It is the first step of every handler, so both ways in (the blueprint and the WSGI app) refuse
the same requests with the same answers.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote_to_bytes

from ..core.bearer import MalformedCredentials
from .http import FORM, MAX_BODY, Answer, HttpRequest, error_answer

__all__ = ["BASIC_CHALLENGE", "MAX_BODY", "MAX_VALUE", "PRINTABLE_ASCII", "REPEATABLE",
           "check_request"]

MAX_VALUE: Final = 4096
#: VSCHAR (RFC 6749 Appendix A). A regex, not a per-character loop: on a 1 KB access token at
#: /introspect the loop cost more CPU than verifying the token's signature.
PRINTABLE_ASCII: Final = re.compile(r"[ -~]*")
#: Parameters that may be given more than once: ``resource`` (RFC 8707 section 2, "may use
#: this parameter multiple times"). Their values pass the same length and charset checks.
REPEATABLE: Final = frozenset({"resource"})
#: The challenge sent with every 401 ``invalid_client`` (RFC 6749 section 5.2).
BASIC_CHALLENGE: Final = {"WWW-Authenticate": 'Basic realm="oauth_sessions"'}


def check_request(request: HttpRequest, *, form_only: bool = False) -> Answer | None:
    """The refusal for ``request``, or None when it may go on to the endpoint's steps.

    ``form_only`` (token and revocation endpoints): a POST body must be a form and the query
    string empty (RFC 6749 section 3.2: a code or token in the URL ends up in access logs).
    """
    if request.content_length is not None and request.content_length > MAX_BODY:
        return error_answer("invalid_request", "request body is too large")
    if form_only and request.method == "POST":
        if request.mimetype != FORM:
            return error_answer("invalid_request", "the body must be application/x-www-form-urlencoded")
        if request.query:
            return error_answer("invalid_request", "parameters must be sent in the request body")
    try:
        request.basic_credentials()
    except MalformedCredentials:
        return error_answer("invalid_client", "the Authorization header is malformed", 401,
                            BASIC_CHALLENGE)
    if not _utf8(request.raw_query) or (
            request.mimetype == FORM and request.content_length is not None
            and not _utf8(request.body)):
        return error_answer("invalid_request", "parameters must be UTF-8 (RFC 6749 Appendix B)")
    if request.form_error:
        return error_answer("invalid_request", "the request body could not be parsed")
    seen: set[str] = set()
    for source in (request.query, request.form):
        names = [name for name, _ in source]
        for name, value in source:
            if name not in REPEATABLE and (name in seen or names.count(name) > 1):
                return error_answer("invalid_request", "a parameter was given more than once")
            for text in (name, value):
                if len(text) > MAX_VALUE:
                    return error_answer("invalid_request", "a parameter value is too long")
                if not PRINTABLE_ASCII.fullmatch(text):
                    return error_answer("invalid_request",
                                        "parameters must be printable ASCII (RFC 6749 Appendix A)")
        seen.update(names)
    return None


def _utf8(raw: bytes) -> bool:
    """Whether every percent-decoded name and value of a urlencoded string is valid UTF-8.

    Werkzeug keeps undecodable sequences as literal ``%FF`` text, which would otherwise pass
    as ASCII; this looks at the bytes themselves. ASCII without a ``%`` decodes to itself (the
    usual body: a JWT or refresh token is base64url), so it is answered without splitting.
    """
    if raw.isascii() and b"%" not in raw:
        return True
    try:
        for part in raw.split(b"&"):
            unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
