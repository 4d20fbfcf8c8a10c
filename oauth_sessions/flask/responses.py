"""Flask responses from the handlers' answers (:mod:`oauth_sessions.protocol.http`, the one place
for ``no-store`` headers and RFC 6749 error bodies), and the few request helpers of the
browser-facing views."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Response, request
from flask.typing import ResponseReturnValue

from ..core.resource_indicators import resource_parameter
from ..protocol.http import NO_STORE, Answer, error_answer
from .host import ErrorPage, HostAdapter
from .state import get_state

__all__ = ["NO_STORE", "error_page", "error_response", "request_params",
           "to_response", "wants_html"]


def to_response(answer: Answer) -> Response:
    """The Flask response of a handler's answer (the blueprint's security headers are added by
    its ``after_request``, after the host's own hooks)."""
    return Response(answer.body, answer.status, list(answer.headers))


def error_response(error: str, description: str, status: int = 400,
                   headers: Mapping[str, str] | None = None) -> Response:
    return to_response(error_answer(error, description, status, headers))


def request_params() -> dict[str, str]:
    """The query and (for a POST) form parameters, the first value of each name.

    ``resource`` may repeat (RFC 8707 section 2): its values become one, by
    :func:`~oauth_sessions.core.resource_indicators.resource_parameter`.
    """
    values: dict[str, str] = dict(request.args.items())
    if request.method == "POST":
        values.update(request.form.items())
    resources = [*request.args.getlist("resource"),
                 *(request.form.getlist("resource") if request.method == "POST" else [])]
    if resources:
        values["resource"] = resource_parameter(resources)
    return values


def wants_html() -> bool:
    """Whether the caller is a browser: its ``Accept`` names ``text/html`` explicitly (a bare
    ``*/*`` or no header is an API caller, which gets RFC 6749 JSON)."""
    return any(mimetype == "text/html" and quality > 0
               for mimetype, quality in request.accept_mimetypes)


def error_page(page: ErrorPage) -> ResponseReturnValue:
    """An error that is not redirected: the host's page for a browser, JSON for an API caller
    (RFC 6749 section 4.1.2.1: the user is informed, the client is not redirected to)."""
    if wants_html():
        host: HostAdapter = get_state().services.host
        answer: ResponseReturnValue = host.render_error(page)
        return answer
    return error_response(page.error, page.description, page.status)
