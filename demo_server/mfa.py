"""Pages for the second factor: enrol an authenticator app, step up to aal2, remove it.

A step-up verifies a TOTP code and then asks the library to raise this browser's
session to aal2 (``SessionStore.step_up``): the row records the factor, gets the
``totp`` amr claim, and its refresh-token counter jumps so that nothing issued
before the step-up can be turned into aal2 tokens.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response

from oauth_sessions import Aal, get_state

from . import totp
from .login import Login, current_login, refresh_login, session_store
from .nav import login_required, safe_next

bp = Blueprint("mfa", __name__)
LOCKED_MESSAGE = (f"Too many wrong codes. For your safety, codes are not accepted for "
                  f"{totp.LOCK_SECONDS // 60} minutes; try again after that.")


def _login() -> Login:
    login = current_login()
    assert login is not None  # guarded by @login_required
    return login


@bp.get("/account/security")
@login_required
def security() -> str:
    login = _login()
    engine = get_state().engine
    return render_template("security.html", login=login,
                           factor=totp.factor_for(engine, login.account.id, status="verified"))


@bp.route("/account/totp", methods=["GET", "POST"])
@login_required
def enroll() -> str | Response | tuple[str, int]:
    login = _login()
    engine = get_state().engine
    next_url = safe_next(request.values.get("next"), url_for("mfa.security"))
    if totp.factor_for(engine, login.account.id, status="verified") is not None:
        flash("An authenticator app is already set up for this account.", "info")
        return redirect(next_url)
    error = None
    if request.method == "POST" and request.form.get("action") == "verify":
        factor = totp.factor_for(engine, login.account.id, status="unverified")
        code = request.form.get("code", "")
        verdict = (totp.verify_code(engine, factor, code, mark_verified=True) if factor is not None
                   else totp.Verdict.REJECTED)
        if verdict == totp.Verdict.ACCEPTED:
            flash("Your authenticator app is set up. Apps that need a stronger sign-in "
                  "will now ask you for a code from it.", "success")
            return redirect(next_url)
        error = LOCKED_MESSAGE if verdict == totp.Verdict.LOCKED else (
            "That code is not right. Check that your device's clock is correct and "
            "enter the 6-digit code it shows now.")
    factor = totp.factor_for(engine, login.account.id, status="unverified")
    if factor is None or request.form.get("action") == "restart":
        factor = totp.start_enrollment(engine, login.account.id)
    uri = totp.provisioning_uri(factor, login.account.email)
    body = render_template("totp_enroll.html", qr=Markup(totp.qr_svg(uri)),  # noqa: S704 (segno's own SVG)
                           secret=factor.secret, uri=uri, next_url=next_url, error=error)
    return (body, 400) if error else body


@bp.route("/account/step-up", methods=["GET", "POST"])
@login_required
def step_up() -> str | Response | tuple[str, int]:
    login = _login()
    engine = get_state().engine
    next_url = safe_next(request.values.get("next"))
    factor = totp.factor_for(engine, login.account.id, status="verified")
    if factor is None:
        return render_template("step_up_no_factor.html", next_url=next_url)
    if request.method == "GET":
        return render_template("step_up.html", next_url=next_url, already=login.aal >= Aal.AAL2)
    verdict = totp.verify_code(engine, factor, request.form.get("code", ""))
    if verdict != totp.Verdict.ACCEPTED:
        error = LOCKED_MESSAGE if verdict == totp.Verdict.LOCKED else (
            "That code is not right, or it was already used. Enter the code your "
            "authenticator app shows now.")
        return render_template("step_up.html", next_url=next_url, already=False, error=error), 400
    issued = session_store().step_up(login.session.id, aal=Aal.AAL2, factor_id=factor.id,
                                     method="totp")
    refresh_login(issued.session)
    if not next_url.startswith(get_state().settings.url_prefix + "/"):
        # On the way back to an OAuth request the message would wait for a later page.
        flash("Verified: you are signed in with two factors.", "success")
    return redirect(next_url)


@bp.post("/account/totp/remove")
@login_required
def remove() -> Response:
    """Remove the factor and bring every session it raised back down to aal1."""
    login = _login()
    engine = get_state().engine
    factor = totp.factor_for(engine, login.account.id, status="verified")
    if factor is not None and totp.remove_factor(engine, login.account.id, factor.id):
        store = session_store()
        for info in store.list_for_user(login.account.id):
            if info.factor_id == factor.id:
                store.set_aal(info.id, Aal.AAL1)
        flash("The authenticator app was removed; sessions it had raised are back at aal1.",
              "success")
    return redirect(url_for("mfa.security"))
