"""A provider in under 30 lines of glue: ``flask --app quickstart run``.

Sign-in here is a stand-in (any e-mail, no password) so the example stays short;
your app plugs in its real sign-in where ``/login`` is.
"""

import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

from flask import Flask, redirect, render_template_string, request, session

from oauth_sessions import Aal, OAuthSessions, ensure_user
from oauth_sessions.core.uris import same_site_path
from oauth_sessions.flask.host import AmrEntry, Authentication, HostAdapter

CONSENT = """<p>{{ r.client.name }} asks for: {{ r.scopes|join(', ') }}</p>
<form method=post action="{{ r.action }}">{% for k, v in r.form_fields %}
<input type=hidden name="{{ k }}" value="{{ v }}">{% endfor %}
<button name=decision value=approve>Allow</button>
<button name=decision value=deny>Deny</button></form>"""


class Host(HostAdapter):
    def current_authentication(self) -> Authentication | None:
        if "uid" not in session:
            return None
        at = datetime.fromtimestamp(session["at"], UTC)
        return Authentication(user_id=uuid.UUID(session["uid"]), aal=Aal.AAL1,
                              amr=[AmrEntry("pwd", at)], auth_time=at)

    def login(self, next_url, prompt):
        return redirect("/login?" + urlencode({"next": next_url}))  # next_url has its own query

    def step_up(self, next_url, required_aal):
        return "This example has no second factor.", 403

    def render_consent(self, request_info):
        return render_template_string(CONSENT, r=request_info)

    def logout(self, user_id):  # RP-initiated logout ends this sign-in too
        session.clear()


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env()  # FLASK_SECRET_KEY, FLASK_OAUTH_SESSIONS_ISSUER, ...
    OAuthSessions(app, host=Host())

    @app.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "GET":
            return '<form method=post><input name=email type=email required><button>Sign in</button></form>'
        uid = uuid.uuid5(uuid.NAMESPACE_URL, "mailto:" + request.form["email"])
        ensure_user(uid, email=request.form["email"])
        session.update(uid=str(uid), at=int(datetime.now(UTC).timestamp()))
        return redirect(same_site_path(request.args.get("next")))  # never another site

    return app
