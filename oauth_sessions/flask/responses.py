"""The provider's JSON answers: one place for ``no-store`` headers and RFC 6749 error bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from flask import Response, request
from flask.typing import ResponseReturnValue

from .host import ErrorPage, HostAdapter
from .state import get_state

__all__ = ["NO_STORE", "error_page", "error_response", "json_response", "request_params", "wants_html"]

#: RFC 6749 section 5.1: answers that carry tokens or errors about them are not cached.
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_response(body: Mapping[str, Any], status: int = 200,
                   headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, {**NO_STORE, **(headers or {})},
                    mimetype="application/json")


def error_response(error: str, description: str, status: int = 400,
           headers: Mapping[str, str] | None = None) -> Response:
    return json_response({"error": error, "error_description": description}, status, headers)


def request_params() -> dict[str, str]:
    values: dict[str, str] = dict(request.args.items())
    if request.method == "POST":
        values.update(request.form.items())
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
