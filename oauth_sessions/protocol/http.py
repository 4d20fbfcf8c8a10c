"""The request and answer values the protocol handlers work on, and the headers every answer shares.

A handler (``protocol/token_endpoint.py``, ``introspection_endpoint.py``, ``revocation.py``, ...)
takes an :class:`HttpRequest` and returns an :class:`Answer`; it does no I/O of its own beyond
the stores it is given and knows nothing of Flask. The two ways in,
:mod:`oauth_sessions.flask.blueprints` and :mod:`oauth_sessions.wsgi`, build the request with
:func:`from_werkzeug` (Flask's request is a Werkzeug request) and send the answer back, the
blueprint as a Flask ``Response`` (so the host's hooks see it), the WSGI app directly.

This module is also the one place for the ``no-store`` headers (RFC 6749 section 5.1), the
security headers of every provider answer (:data:`SECURITY_HEADERS`) and the RFC 6749 section
5.2 error body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

import werkzeug.urls  # noqa: F401  registers the "werkzeug.url_quote" codec error handler
from werkzeug.wrappers import Request as WerkzeugRequest

from ..core.bearer import MalformedCredentials, basic_credentials

__all__ = [
    "FORM",
    "MAX_BODY",
    "NO_STORE",
    "SECURITY_HEADERS",
    "Answer",
    "HttpRequest",
    "error_answer",
    "from_werkzeug",
    "header_map",
    "json_answer",
    "with_security_headers",
]

FORM: Final = "application/x-www-form-urlencoded"
#: The largest request body any endpoint reads (64 KiB); larger ones are refused unread.
MAX_BODY: Final = 64 * 1024
#: RFC 6749 section 5.1: answers that carry tokens or errors about them are not cached.
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: Sent on every answer of the provider, whatever the host does for its own pages: anti-framing
#: (RFC 6749 section 10.13, RFC 9700 section 4.16) and ``nosniff``, so a JSON error echoing a
#: parameter is never sniffed into HTML.
SECURITY_HEADERS: Final = (("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                           ("Content-Security-Policy", "frame-ancestors 'none'"))


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request as a handler sees it: nothing read lazily, nothing global.

    ``headers`` are keyed by lower-case name. ``query`` and ``form`` keep every pair in order
    (a repeated parameter is refused by :mod:`oauth_sessions.protocol.request_checks`, so it must
    stay visible). ``form_error`` is True when the body was announced as a form but could not
    be parsed; ``body`` is the raw body when it is small enough to have been read.
    """

    method: str
    headers: Mapping[str, str]
    query: tuple[tuple[str, str], ...] = ()
    form: tuple[tuple[str, str], ...] = ()
    mimetype: str = ""
    content_length: int | None = None
    body: bytes = b""
    raw_query: bytes = b""
    client_address: str | None = None
    form_error: bool = False
    _form: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)
    _basic: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, value in reversed(self.form):  # the first value of each name, like Werkzeug
            self._form[name] = value

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def params(self) -> Mapping[str, str]:
        """The form parameters, the first value of each name."""
        return self._form

    def param(self, name: str) -> str | None:
        return self._form.get(name)

    def param_values(self, name: str) -> tuple[str, ...]:
        """Every form value of ``name``, in order (for a parameter that may repeat)."""
        return tuple(value for key, value in self.form if key == name)
    def basic_credentials(self) -> tuple[str, str] | None:
        """:func:`oauth_sessions.core.bearer.basic_credentials` of the ``Authorization`` header.

        Parsed once per request (the request checks and the client authentication both ask);
        raises :class:`~oauth_sessions.core.bearer.MalformedCredentials` each time it is asked
        when the header cannot be read.
        """
        parsed = self._basic
        if parsed is None:
            try:
                parsed = (basic_credentials(self.header("Authorization")),)
            except MalformedCredentials as exc:
                parsed = exc
            object.__setattr__(self, "_basic", parsed)
        if isinstance(parsed, MalformedCredentials):
            raise MalformedCredentials(str(parsed))
        credentials: tuple[str, str] | None = parsed[0]
        return credentials


@dataclass(frozen=True, slots=True)
class Answer:
    """What a handler answers: the status, the headers in order, the body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


def json_answer(body: Mapping[str, Any], status: int = 200,
                headers: Mapping[str, str] | None = None) -> Answer:
    """A JSON answer that is not cached (the provider's answers carry tokens or errors about them)."""
    return Answer(status, (*{**NO_STORE, **(headers or {})}.items(), ("Content-Type", "application/json")),
                  json.dumps(body).encode())


def error_answer(error: str, description: str, status: int = 400,
                 headers: Mapping[str, str] | None = None) -> Answer:
    """RFC 6749 section 5.2: ``error`` and a public ``error_description``."""
    return json_answer({"error": error, "error_description": description}, status, headers)


def with_security_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` plus each of :data:`SECURITY_HEADERS` it does not set itself."""
    out = list(headers)
    present = {k.lower() for k, _ in out}
    out.extend((k, v) for k, v in SECURITY_HEADERS if k.lower() not in present)
    return out


def header_map(request: WerkzeugRequest) -> dict[str, str]:
    """The request's headers by lower-case name, read from the WSGI environ as Werkzeug's
    ``EnvironHeaders`` lists them (cheaper than that view).

    A header sent several times is one environ entry, joined with commas by the server (WSGI,
    as CGI), so a second ``DPoP`` header is seen and refused (RFC 9449 section 4.3 step 1).
    """
    headers: dict[str, str] = {}
    for key, value in request.environ.items():
        if key.startswith("HTTP_"):
            if key != "HTTP_CONTENT_TYPE" and key != "HTTP_CONTENT_LENGTH":
                headers[key[5:].replace("_", "-").lower()] = value
        elif key in _ENVIRON_CONTENT and value:
            headers[_ENVIRON_CONTENT[key]] = value
    return headers


def from_werkzeug(request: WerkzeugRequest) -> HttpRequest:
    """The request value of a Werkzeug (or Flask) request; reads the body only up to :data:`MAX_BODY`.

    ``client_address`` is ``remote_addr``, so a ``ProxyFix`` in front of either way in decides it.

    Built from the WSGI environ with the parser Werkzeug itself uses for urlencoded bodies and
    query strings (:func:`parse_qsl` keeping blank values, bytes that are not UTF-8 left
    percent-encoded), without Werkzeug's per-request form parser objects and header views,
    which cost more than the endpoint's own checks. A form the host already parsed (a
    ``before_request`` that read ``request.form`` consumed the body) is taken as parsed.
    Pass the request object itself, not Flask's ``request`` proxy: each attribute read through
    the proxy costs a context lookup.
    """
    method = request.method
    length = request.content_length
    mimetype = request.mimetype
    form: tuple[tuple[str, str], ...] = ()
    form_error = False
    body = b""
    if (length is None or length <= MAX_BODY) and method in _BODY_METHODS:
        parsed = request.__dict__.get("form")  # Werkzeug caches request.form on the instance
        body = request.get_data(cache=True)
        if mimetype == FORM:
            if parsed is not None:
                form = tuple(parsed.items(multi=True))
            else:
                try:
                    form = _pairs(body.decode())
                except UnicodeDecodeError:  # not text at all: refused by the checks
                    form_error = True
    query = request.query_string
    return HttpRequest(
        method=method,
        headers=header_map(request),
        query=_pairs(query.decode()) if query else (),
        form=form,
        mimetype=mimetype,
        content_length=length,
        body=body,
        raw_query=query,
        client_address=request.remote_addr,
        form_error=form_error,
    )


_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Werkzeug's ``EnvironHeaders`` yields these two from ``CONTENT_*`` and never from ``HTTP_*``.
_ENVIRON_CONTENT: Final = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """Werkzeug's own parse of a query string or urlencoded body (``Request.args``, the form)."""
    return tuple(parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"))
