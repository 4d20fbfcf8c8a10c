"""Small helpers shared by the pages: safe redirects after sign-in, and "sign in first"."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from oauth_sessions.core.uris import same_site_path

P = ParamSpec("P")
R = TypeVar("R")


def safe_next(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site, else ``default`` (the library's rule)."""
    return same_site_path(target, default)


def login_required(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Send a visitor who is not signed in to the sign-in page, then back here."""
    from .login import current_login

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        if current_login() is None:
            return redirect(url_for("accounts.signin", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper
