"""The developer page: register an OAuth client and see its secret exactly once.

Registration goes through the library's ``ClientStore.create``, which stores only a hash of
the secret; the page that shows the secret is the POST's own answer, marked ``no-store`` so
that neither the browser's cache nor the back button brings it back.
"""

from __future__ import annotations

from flask import Blueprint, make_response, render_template, request
from werkzeug.wrappers import Response

from oauth_sessions.core.policy import is_valid_scope_token, parse_scope

from .nav import login_required
from .pages import client_store
from .scopes import SCOPE_TEXTS

bp = Blueprint("developers", __name__)

MAX_NAME = 100
DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access")


def _form_defaults() -> dict[str, object]:
    return {"name": "", "redirect_uris": "", "scopes": DEFAULT_SCOPES, "extra_scopes": "",
            "client_type": "confidential"}


@bp.get("/developers")
@login_required
def index() -> str:
    return render_template("developers.html", form=_form_defaults(), known_scopes=SCOPE_TEXTS)


@bp.post("/developers")
@login_required
def register() -> Response | tuple[str, int]:
    name = request.form.get("name", "").strip()
    uris = [u.strip() for u in request.form.get("redirect_uris", "").splitlines() if u.strip()]
    chosen = [s for s in request.form.getlist("scopes") if s in SCOPE_TEXTS]
    extra = list(parse_scope(request.form.get("extra_scopes", "").replace(",", " ")))
    client_type = request.form.get("client_type", "confidential")
    form = {"name": name, "redirect_uris": "\n".join(uris), "scopes": tuple(chosen),
            "extra_scopes": " ".join(extra), "client_type": client_type}
    error = _check(name, uris, chosen + extra, client_type)
    if error is None:
        try:
            client, secret = client_store().create(
                name=name, redirect_uris=uris, scopes=[*chosen, *extra],
                public=client_type == "public")
        except ValueError as exc:
            error = f"The app could not be registered: {exc}."
        else:
            response = make_response(render_template("client_created.html", client=client,
                                                     secret=secret))
            response.headers["Cache-Control"] = "no-store"
            return response
    return render_template("developers.html", form=form, known_scopes=SCOPE_TEXTS,
                           error=error), 400


def _check(name: str, uris: list[str], scopes: list[str], client_type: str) -> str | None:
    if not name:
        return "Give the app a name; people see it on the consent page."
    if len(name) > MAX_NAME:
        return f"An app name has at most {MAX_NAME} characters."
    if not uris:
        return "Add at least one redirect URI, one per line."
    if not scopes:
        return "Choose at least one scope."
    bad = [s for s in scopes if not is_valid_scope_token(s)]
    if bad:
        return f"\u201c{bad[0]}\u201d is not a valid scope name (no spaces, quotes or backslashes)."
    if client_type not in ("public", "confidential"):
        return "Choose whether the app can keep a secret (confidential) or not (public)."
    return None
