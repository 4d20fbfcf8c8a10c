"""Pages for the second factor: enrol an authenticator app, step up to aal2, remove it.

A step-up verifies a TOTP code and then asks the library to raise this browser's
session to aal2 (``SessionStore.step_up``): the row records the factor, gets the
``totp`` amr claim, and its refresh-token counter jumps so that nothing issued
before the step-up can be turned into aal2 tokens.

Removing the factor (the only way to replace it) needs a fresh proof of *that* factor:
this browser's session must be at aal2 through it, with a ``totp`` amr claim at most
``FACTOR_CHANGE_MAX_AGE`` seconds old. Otherwise a password alone could swap the victim's
authenticator for the attacker's and reach aal2 (issue 15 item 1). Enrolling a first factor
stays possible at aal1. Any change of factor ends the person's other sessions (browser and
OAuth) and is logged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response

from oauth_sessions import Aal, get_state
from oauth_sessions.storage.sessions import AmrEntry, SessionInfo

from . import totp
from .login import Login, current_login, refresh_login, session_store
from .nav import login_required, safe_next

bp = Blueprint("mfa", __name__)
log = logging.getLogger(__name__)
FACTOR_CHANGE_MAX_AGE = 300  # seconds since the TOTP proof that allows a factor change
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
            assert factor is not None  # an accepted code has a factor
            _factor_changed(login, "enrolled", factor.id)
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


def has_fresh_proof(session: SessionInfo, amr: Sequence[AmrEntry], factor: totp.Factor,
                    now: datetime, max_age: int = FACTOR_CHANGE_MAX_AGE) -> bool:
    """Whether ``session`` proved ``factor`` at most ``max_age`` seconds before ``now``.

    aal2 alone is not enough: it must come from this very factor (``factor_id``), and the
    ``totp`` claim's time must be recent, so that a session raised hours ago, or through
    another factor, cannot change it. The boundary is inclusive: ``max_age`` seconds old passes.
    """
    if session.aal < Aal.AAL2 or session.factor_id != factor.id:
        return False
    proved = [entry.timestamp for entry in amr if entry.method == "totp"]
    return bool(proved) and now - max(proved) <= timedelta(seconds=max_age)


def _factor_changed(login: Login, event: str, factor_id: uuid.UUID) -> int:
    """End the person's other sessions after a factor change, and log it (ids only)."""
    ended = session_store().revoke_user(login.account.id, except_session=login.session.id,
                                        reason=f"second factor {event}", first_party=True)
    log.warning("second factor %s: user=%s factor=%s session=%s other_sessions_ended=%d",
                event, login.account.id, factor_id, login.session.id, ended)
    return ended


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
        # "reconfirm": a fresh code is wanted even at aal2 (before changing the factor).
        already = login.aal >= Aal.AAL2 and not request.args.get("reconfirm")
        return render_template("step_up.html", next_url=next_url, already=already)
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
    """Remove the factor after a fresh proof of it; end every other session of the person."""
    login = _login()
    engine = get_state().engine
    factor = totp.factor_for(engine, login.account.id, status="verified")
    if factor is None:
        return redirect(url_for("mfa.security"))
    store = session_store()
    if not has_fresh_proof(login.session, store.get_amr(login.session.id), factor,
                           datetime.now(UTC)):
        log.warning("second factor removal refused without a fresh proof: user=%s session=%s",
                    login.account.id, login.session.id)
        flash(f"To remove your authenticator app, first enter a code from it (a confirmation "
              f"is good for {FACTOR_CHANGE_MAX_AGE // 60} minutes).", "info")
        return redirect(url_for("mfa.step_up", next=url_for("mfa.security"), reconfirm=1))
    if totp.remove_factor(engine, login.account.id, factor.id):
        store.set_aal(login.session.id, Aal.AAL1)
        _factor_changed(login, "removed", factor.id)
        flash("The authenticator app was removed. This browser is back at aal1 and your "
              "other sessions were signed out.", "success")
    return redirect(url_for("mfa.security"))
