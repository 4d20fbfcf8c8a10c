"""Optional per-client rate limits on ``/token``, ``/introspect`` and ``/par`` (Flask-Limiter).
Off by default.

Install the extra (``pip install oauth_sessions[ratelimit]``) and call, after
``OAuthSessions(app)``::

    from oauth_sessions.flask.ratelimit import enable_rate_limits
    enable_rate_limits(app, token="60/minute", introspection="600/minute", par="30/minute",
                       storage_uri="redis://127.0.0.1:6379")   # shared by every worker

Limits use Flask-Limiter's notation (``"10/second;300/minute"``). Each client has its own
bucket, keyed by the client id it presents (HTTP Basic user, or ``client_id`` in the body).
A request is only *counted* against a client when it was not refused with 401: otherwise anyone
could empty a victim client's bucket by sending requests in its name with a wrong secret, and
rate limiting would become the denial of service it is meant to prevent. Unauthenticated
floods are bounded by the optional ``per_address`` limit, keyed by the remote address.

When a limit is reached the answer is ``429`` (RFC 6585 section 4) with ``Retry-After`` and the
JSON error shape of RFC 6749 section 5.2 (``temporarily_unavailable``), never cached.

With several workers the default ``memory://`` storage counts per process; give a shared
``storage_uri`` (Redis, Memcached) for one budget across the deployment.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any, Final

from flask import Flask, Response, request

from ..core.bearer import MalformedCredentials, basic_credentials
from .state import get_state

if TYPE_CHECKING:
    from flask_limiter import Limiter

__all__ = ["enable_rate_limits", "limited_client_id"]

_ENDPOINTS: Final = {"token": "oauth_sessions.token", "introspection": "oauth_sessions.introspect",
                     "par": "oauth_sessions.pushed_authorization_request"}


def limited_client_id() -> str:
    """The bucket of this request: the client id it claims, else its remote address."""
    try:
        basic = basic_credentials(request.headers.get("Authorization"))
    except MalformedCredentials:  # refused with 401 by the endpoint; bucketed by address
        basic = None
    client_id = basic[0] if basic is not None else ""
    if not client_id and request.mimetype == "application/x-www-form-urlencoded":
        client_id = request.form.get("client_id", "")
    if client_id:
        return "client:" + client_id[:64]
    return "address:" + (request.remote_addr or "unknown")


def _address() -> str:
    return "address:" + (request.remote_addr or "unknown")


def _counted(response: Response) -> bool:
    """Failed client authentication is not charged to the client it named (module docstring)."""
    return response.status_code != 401


def _too_many(limit: Any) -> Response:
    body = {"error": "temporarily_unavailable",
            "error_description": "too many requests for this client, retry later"}
    retry = max(1, math.ceil(limit.window.reset_time - time.time()))
    return Response(json.dumps(body), 429, {"Cache-Control": "no-store", "Pragma": "no-cache",
                                            "Retry-After": str(retry)}, mimetype="application/json")


def enable_rate_limits(app: Flask, *, token: str | None = None, introspection: str | None = None,
                       par: str | None = None, per_address: str | None = None,
                       storage_uri: str = "memory://", limiter: Limiter | None = None) -> Limiter:
    """Limit the provider's hot endpoints on ``app`` (already set up with ``OAuthSessions``).

    ``token``, ``introspection`` and ``par`` (pushed authorization requests, RFC 9126) are
    per-client limits; ``per_address`` applies to each of the three endpoints per remote
    address whatever the client. ``None`` leaves that limit out. Pass your own ``limiter`` to
    share one with the host app's other limits.
    """
    try:
        from flask_limiter import Limiter
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise RuntimeError("rate limiting needs Flask-Limiter: pip install 'oauth_sessions[ratelimit]'"
                           ) from exc
    get_state(app)  # raises a clear error when the provider is not initialised on this app
    if limiter is None:
        limiter = Limiter(limited_client_id, app=app, storage_uri=storage_uri, headers_enabled=True,
                          key_prefix="oauth_sessions", default_limits=[])
    for name, limit in (("token", token), ("introspection", introspection), ("par", par)):
        endpoint = _ENDPOINTS[name]
        view: Any = app.view_functions.get(endpoint)
        if view is None:
            raise RuntimeError(f"{endpoint} is not mounted on this app; cannot rate limit it")
        if limit is not None:
            view = limiter.limit(limit, key_func=limited_client_id, deduct_when=_counted,
                                 on_breach=_too_many, scope=f"{name}-client")(view)
        if per_address is not None:
            view = limiter.limit(per_address, key_func=_address, on_breach=_too_many,
                                 scope=f"{name}-address")(view)
        app.view_functions[endpoint] = view
    return limiter
