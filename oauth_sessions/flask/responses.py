"""The provider's JSON answers: one place for ``no-store`` headers and RFC 6749 error bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from flask import Response, request

__all__ = ["NO_STORE", "error_response", "json_response", "request_params"]

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
