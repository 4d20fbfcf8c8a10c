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

from werkzeug.wrappers import Request as WerkzeugRequest

__all__ = [
    "FORM",
    "MAX_BODY",
    "NO_STORE",
    "SECURITY_HEADERS",
    "Answer",
    "HttpRequest",
    "error_answer",
    "from_werkzeug",
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


def from_werkzeug(request: WerkzeugRequest) -> HttpRequest:
    """The request value of a Werkzeug (or Flask) request; reads the body only up to :data:`MAX_BODY`.

    ``client_address`` is ``remote_addr``, so a ``ProxyFix`` in front of either way in decides it.
    """
    length = request.content_length
    small = length is None or length <= MAX_BODY
    form: tuple[tuple[str, str], ...] = ()
    form_error = False
    body = b""
    if small and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        body = request.get_data(cache=True)
        if request.mimetype == FORM:
            try:
                form = tuple(request.form.items(multi=True))
            except Exception:  # a malformed body Werkzeug cannot parse: refused by the checks
                form_error = True
    return HttpRequest(
        method=request.method,
        headers={k.lower(): v for k, v in reversed(list(request.headers.items()))},  # first wins
        query=tuple(request.args.items(multi=True)),
        form=form,
        mimetype=request.mimetype,
        content_length=length,
        body=body,
        raw_query=request.query_string,
        client_address=request.remote_addr,
        form_error=form_error,
    )
