"""Small helpers shared by the pages: safe redirects after sign-in, and "sign in first"."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

P = ParamSpec("P")
R = TypeVar("R")


def safe_next(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site, else ``default``.

    A ``next`` parameter that may name another host is an open redirect (RFC 9700
    section 4.11): only absolute paths are followed, never ``//host`` or a
    backslash variant that some browsers read as one.
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def login_required(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Send a visitor who is not signed in to the sign-in page, then back here."""
    from .login import current_login

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        if current_login() is None:
            return redirect(url_for("accounts.signin", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper
