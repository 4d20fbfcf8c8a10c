"""``examples/sessions_page.py``, the page docs/guides/sessions-page.md builds: people copy it,
so it must list a user's sessions, end only that user's, and refuse a form without its token."""

from __future__ import annotations

import importlib.util
import re
import uuid
from pathlib import Path
from types import ModuleType

from factories import create_client, create_user, make_app
from flask import request
from sqlalchemy import Engine

from oauth_sessions import Aal, get_state

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sessions_page.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sessions_page_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _user() -> uuid.UUID | None:
    value = request.headers.get("X-User")
    return uuid.UUID(value) if value else None


def test_the_example_page_lists_and_ends_only_the_users_own_sessions(engine: Engine) -> None:
    app = make_app(engine)
    app.register_blueprint(_example().sessions_page(_user), url_prefix="/account")
    store = get_state(app).services.sessions
    photos, _ = create_client(app, name="PhotoPrint", scopes="openid profile")
    alice, bob = create_user(engine), create_user(engine)

    def start(user: uuid.UUID) -> uuid.UUID:
        issued = store.create_session(user_id=user, client_id=photos.id, scopes="openid",
                                      aal=Aal.AAL1, amr=["password"], user_agent="Firefox")
        return issued.session.id  # type: ignore[no-any-return]

    mine, theirs = start(alice), start(bob)
    http = app.test_client()
    as_alice = {"X-User": str(alice)}
    assert http.get("/account/sessions").status_code == 401
    page = http.get("/account/sessions", headers=as_alice).get_data(as_text=True)
    assert "PhotoPrint" in page and "signed in with password" in page and "Firefox" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None

    assert http.post(f"/account/sessions/{mine}/sign-out", headers=as_alice).status_code == 400
    assert store.get(mine) is not None
    other = http.post(f"/account/sessions/{theirs}/sign-out", data={"csrf": csrf.group(1)},
                      headers=as_alice)
    assert other.status_code == 404 and store.get(theirs) is not None
    done = http.post(f"/account/sessions/{mine}/sign-out", data={"csrf": csrf.group(1)},
                     headers=as_alice)
    assert done.status_code == 303 and store.get(mine) is None
    assert "No sessions." in http.get("/account/sessions", headers=as_alice).get_data(as_text=True)


def test_sign_out_elsewhere_keeps_this_browser(engine: Engine) -> None:
    app = make_app(engine)
    store = get_state(app).services.sessions
    alice = create_user(engine)
    photos, _ = create_client(app, name="PhotoPrint", scopes="openid")
    here = store.create_session(user_id=alice, client_id=None, scopes="openid", aal=Aal.AAL1,
                                amr=["password"]).session.id
    app_session = store.create_session(user_id=alice, client_id=photos.id, scopes="openid",
                                       aal=Aal.AAL1, amr=["password"]).session.id
    app.register_blueprint(_example().sessions_page(_user, lambda: here), url_prefix="/account")
    http = app.test_client()
    headers = {"X-User": str(alice)}
    page = http.get("/account/sessions", headers=headers).get_data(as_text=True)
    assert "This site</strong> (this browser)" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    response = http.post("/account/sessions/sign-out-elsewhere", data={"csrf": csrf.group(1)},
                         headers=headers)
    assert response.status_code == 303
    assert store.get(here) is not None and store.get(app_session) is None
