"""The developer page: register, list, rotate and delete your own OAuth clients.

Registration goes through the library's ``ClientStore.create``, which stores only a hash of
the secret and applies every client rule (``oauth_sessions.core.client_rules``). Clients made
here are *unverified*: anyone with an account can type any redirect URI, so the provider never
redirects errors to them on its own and their consent page says "self-registered"
(issue 15 items 7 and 8). The page therefore needs a sign-in verified with the authenticator
app (aal2), and says plainly that the app will be unverified.

Post/redirect/get (issue 19 item 10): a registration or a secret rotation answers with a
redirect to a page that shows the new secret once. The secret rides in the signed session
cookie for that one redirect and is removed when shown, so reloading shows nothing again and
never registers a second app.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import (
    Blueprint,
    abort,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import delete, insert, select
from werkzeug.wrappers import Response

from oauth_sessions import Aal, get_state
from oauth_sessions.core.policy import is_valid_scope_token, parse_scope
from oauth_sessions.storage.clients import ClientInfo, parse_client_id

from .db import client_owners, utcnow
from .login import current_login
from .nav import login_required
from .pages import client_store
from .scopes import SCOPE_TEXTS

bp = Blueprint("developers", __name__)

MAX_NAME = 100
DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access")
_SHOWN_ONCE = "developers_new_secret"
P = ParamSpec("P")
R = TypeVar("R")


def _form_defaults() -> dict[str, object]:
    return {"name": "", "redirect_uris": "", "scopes": DEFAULT_SCOPES, "extra_scopes": "",
            "client_type": "confidential"}


def _account_id() -> uuid.UUID:
    login = current_login()
    assert login is not None  # login_required ran first
    return login.account.id


def aal2_required(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Signed in and verified with the authenticator app: registering redirect targets is
    powerful, so a password alone is not enough. Others go to sign-in or step-up first."""

    @login_required
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        login = current_login()
        if login is not None and login.aal < Aal.AAL2:
            return redirect(url_for("mfa.step_up", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper


def _my_clients() -> list[ClientInfo]:
    with get_state().engine.connect() as conn:
        ids = conn.execute(select(client_owners.c.client_id)
                           .where(client_owners.c.user_id == _account_id())
                           .order_by(client_owners.c.created_at)).scalars().all()
    store = client_store()
    return [c for c in (store.get(i, fresh=True) for i in ids) if c is not None]


def _my_client(client_id: str) -> ClientInfo:
    parsed = parse_client_id(client_id)
    mine = {c.id: c for c in _my_clients()}
    if parsed is None or parsed not in mine:
        abort(404)
    return mine[parsed]


def _page(form: Mapping[str, object], error: str | None = None,
          status: int = 200) -> tuple[str, int]:
    return render_template("developers.html", form=form, known_scopes=SCOPE_TEXTS, error=error,
                           apps=_my_clients()), status


@bp.get("/developers")
@aal2_required
def index() -> tuple[str, int]:
    return _page(_form_defaults())


@bp.post("/developers")
@aal2_required
def register() -> Response | tuple[str, int]:
    name = request.form.get("name", "").strip()
    uris = [u.strip() for u in request.form.get("redirect_uris", "").splitlines()]
    chosen = [s for s in request.form.getlist("scopes") if s in SCOPE_TEXTS]
    extra = list(parse_scope(request.form.get("extra_scopes", "").replace(",", " ")))
    client_type = request.form.get("client_type", "confidential")
    form = {"name": name, "redirect_uris": "\n".join(uris).strip(), "scopes": tuple(chosen),
            "extra_scopes": " ".join(extra), "client_type": client_type}
    error = _check(name, uris, chosen + extra, client_type)
    if error is None:
        try:
            client, secret = client_store().create(
                name=name, redirect_uris=[u for u in uris if u], scopes=[*chosen, *extra],
                public=client_type == "public", verified=False)
        except ValueError as exc:
            error = f"The app could not be registered: {_by_line(str(exc), uris)}."
        else:
            with get_state().engine.begin() as conn:
                conn.execute(insert(client_owners).values(
                    client_id=client.id, user_id=_account_id(), created_at=utcnow()))
            return _show_once(client, secret)
    return _page(form, error, 400)


def _by_line(message: str, uris: list[str]) -> str:
    """The store counts non-empty URIs; the person counts the lines of the text box."""
    prefix = "redirect URI "
    if not message.startswith(prefix):
        return message
    number, _, reason = message[len(prefix):].partition(": ")
    if not number.isdigit():
        return message
    lines = [i for i, u in enumerate(uris, start=1) if u]
    line = lines[int(number) - 1] if 0 < int(number) <= len(lines) else int(number)
    return f"redirect URI on line {line}: {reason}"


def _show_once(client: ClientInfo, secret: str | None) -> Response:
    session[_SHOWN_ONCE] = {"client_id": client.client_id, "secret": secret}
    return redirect(url_for("developers.created", client_id=client.client_id), 303)


@bp.get("/developers/apps/<client_id>")
@login_required
def created(client_id: str) -> Response | tuple[str, int]:
    client = _my_client(client_id)
    shown = session.pop(_SHOWN_ONCE, None)
    secret = (shown.get("secret") if isinstance(shown, dict)
              and shown.get("client_id") == client.client_id else None)
    response = make_response(render_template("client_created.html", client=client, secret=secret))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/developers/apps/<client_id>/rotate")
@aal2_required
def rotate(client_id: str) -> Response:
    client = _my_client(client_id)
    secret = client_store().rotate_secret(client.id)
    if secret is None:
        abort(400)
    return _show_once(client, secret)


@bp.post("/developers/apps/<client_id>/delete")
@aal2_required
def remove(client_id: str) -> Response:
    client = _my_client(client_id)
    client_store().delete(client.id)  # its sessions end with it
    with get_state().engine.begin() as conn:  # the FK cascade does it too, where enforced
        conn.execute(delete(client_owners).where(client_owners.c.client_id == client.id))
    return redirect(url_for("developers.index"), 303)


def _check(name: str, uris: list[str], scopes: list[str], client_type: str) -> str | None:
    if not name:
        return "Give the app a name; people see it on the consent page."
    if len(name) > MAX_NAME:
        return f"An app name has at most {MAX_NAME} characters."
    if not any(uris):
        return "Add at least one redirect URI, one per line."
    if not scopes:
        return "Choose at least one scope."
    bad = [s for s in scopes if not is_valid_scope_token(s)]
    if bad:
        return f"\u201c{bad[0]}\u201d is not a valid scope name (no spaces, quotes or backslashes)."
    if client_type not in ("public", "confidential"):
        return "Choose whether the app can keep a secret (confidential) or not (public)."
    return None
