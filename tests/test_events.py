"""Every session event is a signal the host can subscribe to and one structured log line
that names ids and reasons, never a token, key or secret."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from factories import create_client, create_user, make_app
from sqlalchemy import Engine, select

from oauth_sessions import Aal, get_state
from oauth_sessions.core.errors import RefreshTokenReused
from oauth_sessions.core.events import EVENTS, event_fields
from oauth_sessions.storage.models import Session


def test_event_fields_are_an_allow_list() -> None:
    class Leaky:
        id, user_id, client_id, aal, counter = uuid.uuid4(), uuid.uuid4(), None, Aal.AAL2, 3
        refresh_token_hmac_key = "SECRET-KEY"
        refresh_token = "osr1_SECRET"

    fields = event_fields("session_revoked", session=Leaky(), reason="logout")
    assert set(fields) == {"event", "session_id", "user_id", "client_id", "aal", "counter", "reason"}
    assert "SECRET" not in repr(fields) and fields["aal"] == "aal2"


def test_each_lifecycle_event_is_signalled_and_logged_once_without_secrets(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(engine)
    client, client_secret = create_client(app)
    store = get_state(app).components["sessions"]
    user = create_user(engine)
    received: list[tuple[str, dict[str, Any]]] = []
    receivers = {}
    for name, signal in EVENTS.items():
        def receive(sender: object, _name: str = name, **kwargs: Any) -> None:
            assert sender is app
            received.append((_name, kwargs))
        receivers[name] = receive
        signal.connect(receive)
    secrets_seen: list[str] = [client_secret or ""]
    try:
        with caplog.at_level(logging.INFO, logger="oauth_sessions.events"):
            issued = store.create_session(user_id=user, client_id=client.id, scopes="openid",
                                          aal=Aal.AAL1, amr=["password"])
            sid = issued.session.id
            rotated = store.rotate(issued.refresh_token, client_id=client.id)
            stepped = store.step_up(sid, aal=Aal.AAL2, factor_id=uuid.uuid4(), method="totp")
            store.set_aal(sid, Aal.AAL1)
            with pytest.raises(RefreshTokenReused):
                store.rotate(issued.refresh_token, client_id=client.id)
            second = store.create_session(user_id=user, client_id=client.id, scopes="openid",
                                          aal=Aal.AAL1, amr=["password"])
            store.revoke(second.session.id, reason="logout")
            get_state(app).components["clients"].delete(client.id)
            with engine.connect() as conn:
                keys = [r[0] for r in conn.execute(select(Session.__table__.c.refresh_token_hmac_key))]
            secrets_seen += [issued.refresh_token, rotated.refresh_token, stepped.refresh_token,
                             second.refresh_token, *[k for k in keys if k]]
    finally:
        for name, signal in EVENTS.items():
            signal.disconnect(receivers[name])

    names = [n for n, _ in received]
    assert names == ["session_created", "session_refreshed", "session_stepped_up",
                     "session_downgraded", "refresh_token_reused", "session_revoked",
                     "session_created", "session_revoked", "client_deleted"]
    reasons = [kw["reason"] for n, kw in received if n == "session_revoked"]
    assert reasons == ["refresh_token_reused", "logout"]

    records = [r for r in caplog.records if r.name == "oauth_sessions.events"]
    assert [r.event for r in records] == names  # type: ignore[attr-defined]
    reuse = next(r for r in records if r.event == "refresh_token_reused")  # type: ignore[attr-defined]
    assert reuse.levelno == logging.WARNING
    revoked = [r for r in records if r.event == "session_revoked"]  # type: ignore[attr-defined]
    assert revoked[1].fields == {  # type: ignore[attr-defined]
        "event": "session_revoked", "session_id": str(second.session.id), "user_id": str(user),
        "client_id": str(client.id), "aal": "aal1", "counter": "0", "reason": "logout"}
    assert f"session_id={second.session.id}" in revoked[1].getMessage()
    assert records[-1].fields == {"event": "client_deleted",  # type: ignore[attr-defined]
                                  "client_id": str(client.id)}
    logged = caplog.text + repr([r.__dict__ for r in records])
    for secret in secrets_seen:
        assert secret and secret not in logged
