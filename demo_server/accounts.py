"""Sign-up, sign-in and sign-out pages.

Sign-up answers alike whether or not the address has an account (a neutral message and the
sign-in page), and sign-in answers alike for a wrong password and an unknown address, so
neither page tells anyone which addresses are registered.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from oauth_sessions import get_state

from .login import current_login, sign_in, sign_out
from .nav import safe_next
from .users import (
    MIN_PASSWORD_LENGTH,
    AccountError,
    AddressTaken,
    SignInLocked,
    authenticate,
    create_account,
    passwords,
)

bp = Blueprint("accounts", __name__)
SIGNED_UP_MESSAGE = ("Thank you. If this address did not have an account, it has one now: sign "
                     "in with it and your password. An account that already existed is never "
                     "changed by signing up.")


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> str | Response | tuple[str, int]:
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("signup.html", next_url=next_url, email="",
                               min_length=MIN_PASSWORD_LENGTH)
    email = request.form.get("email", "")
    password = request.form.get("password", "")
    error = None
    if password != request.form.get("password_confirm", ""):
        error = "The two passwords are not the same."
    else:
        try:
            create_account(get_state().engine, passwords(), email, password)
        except AddressTaken:
            pass  # the same answer as a new account, and the existing one is left as it was
        except AccountError as exc:
            error = str(exc)
    if error is not None:
        return render_template("signup.html", next_url=next_url, email=email, error=error,
                               min_length=MIN_PASSWORD_LENGTH), 400
    # Not signed in straight away: that would tell a new address from a registered one
    # (issue 15 item 15). A real provider would e-mail the address either way.
    flash(SIGNED_UP_MESSAGE, "success")
    return redirect(url_for("accounts.signin", next=next_url))


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> str | Response | tuple[str, int]:
    next_url = safe_next(request.values.get("next"))
    reauth = request.values.get("prompt") == "login"
    if request.method == "GET":
        if current_login() is not None and not reauth:
            return redirect(next_url)
        return render_template("signin.html", next_url=next_url, email="", reauth=reauth)
    email = request.form.get("email", "")
    try:
        account = authenticate(get_state().engine, passwords(), email, request.form.get("password", ""))
    except SignInLocked as exc:
        return render_template("signin.html", next_url=next_url, email=email, reauth=reauth,
                               error=str(exc)), 429
    if account is None:
        return render_template("signin.html", next_url=next_url, email=email, reauth=reauth,
                               error="That e-mail address and password do not match an account."), 401
    previous = current_login()
    if previous is not None:
        sign_out()
    sign_in(account)
    return redirect(next_url)


@bp.post("/signout")
def signout() -> Response:
    sign_out()
    flash("You are signed out.", "success")
    return redirect(url_for("pages.index"))
