"""The outage handlers of the library's blueprints: a database error is a clean 503 (or 500) JSON answer.

The answer itself is :func:`oauth_sessions.protocol.outage.database_error_answer`, shared with
the WSGI app (:mod:`oauth_sessions.wsgi`); this module registers it as a Flask error handler, on
the library's blueprints only (not on the host's routes).
"""

from __future__ import annotations

from flask import Blueprint, Response

from ..protocol.outage import database_error_answer
from ..storage.database_errors import DATABASE_ERRORS
from .responses import to_response

__all__ = ["database_error", "install_outage_handlers"]


def database_error(exc: Exception) -> Response:
    """Error handler for SQLAlchemy and driver errors raised by an endpoint."""
    return to_response(database_error_answer(exc))


def install_outage_handlers(*blueprints: Blueprint) -> None:
    """Register :func:`database_error` on the library's blueprints (not on the host's routes)."""
    for bp in blueprints:
        for error in DATABASE_ERRORS:
            bp.register_error_handler(error, database_error)
