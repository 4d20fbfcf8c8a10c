"""The OpenAPI 3.1 description of the provider's endpoints, shipped as package data.

``openapi.yaml`` beside this module is the contract the fuzz suite (``tests/test_fuzz_openapi.py``)
checks the live app against: every status, content type, schema and required header
(``Cache-Control: no-store`` on token responses) it declares. Served at
``<URL_PREFIX>/openapi.yaml`` so a host or its gateway can read what is mounted.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from flask import Response

__all__ = ["openapi_document", "openapi_text"]


@cache
def openapi_text() -> str:
    """The document as shipped (read once per process)."""
    return files("oauth_sessions").joinpath("openapi.yaml").read_text("utf-8")


def openapi_document() -> Response:
    """``GET <URL_PREFIX>/openapi.yaml``."""
    return Response(openapi_text(), 200, {"Cache-Control": "public, max-age=3600"},
                    mimetype="application/yaml")
