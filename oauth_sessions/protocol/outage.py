"""What a client sees while the database is unreachable: a clean ``503 temporarily_unavailable``.

The provider is a single point of failure for every app behind it, so an outage must look like
an outage, not like a bug: a JSON error (RFC 6749 section 5.2 shape; ``temporarily_unavailable``
is the code RFC 6749 section 4.1.2.1 gives for "temporarily overloaded or under maintenance")
with ``Retry-After``, answered as soon as the driver gives up, and no stack trace.

Recovery needs no restart: the engine is created with ``pool_pre_ping``
(:func:`oauth_sessions.storage.database.create_auth_engine`), so the first checkout after the database
comes back replaces every dead pooled connection.

SQLAlchemy's errors and the driver's own (the refresh path uses psycopg directly) are both
handled; which is which is storage's knowledge (:mod:`oauth_sessions.storage.database_errors`),
so this module knows no SQL library. The log line names the error class and the SQLSTATE
only. ``str()`` of a SQLAlchemy error includes the statement's bound parameters, which on the
token path are code hashes, session ids and refresh-token material: they must never reach a
log.
"""

from __future__ import annotations

import logging
from typing import Final

from ..storage.database_errors import error_origin, is_unavailable
from .http import NO_STORE, Answer, json_answer

__all__ = ["RETRY_AFTER", "SERVER_ERROR", "database_error_answer", "server_error_answer"]

log = logging.getLogger(__name__)

#: Seconds a client is asked to wait (RFC 9110 section 10.2.3).
RETRY_AFTER: Final = 2
#: The answer to a defect: RFC 6749 section 5.2 shape, no detail.
SERVER_ERROR: Final = {"error": "server_error",
                       "error_description": "the request could not be completed"}
_HEADERS: Final = {**NO_STORE, "Retry-After": str(RETRY_AFTER)}


def database_error_answer(exc: Exception) -> Answer:
    """The answer to a SQLAlchemy or driver error raised by an endpoint, on either way in.

    Connection loss and pool exhaustion are ``503 temporarily_unavailable``; any other database
    error is a defect and answers ``500 server_error``, still as JSON without detail.
    """
    if is_unavailable(exc):
        log.warning("database unavailable: %s (%s, sqlstate %s)", *error_origin(exc))
        body = {"error": "temporarily_unavailable",
                "error_description": "the service is temporarily unavailable, retry later"}
        return json_answer(body, 503, _HEADERS)
    log.error("database error: %s (%s, sqlstate %s)", *error_origin(exc))
    return server_error_answer()


def server_error_answer() -> Answer:
    """The answer to a defect: 500 ``server_error``, no detail."""
    return json_answer(SERVER_ERROR, 500)
