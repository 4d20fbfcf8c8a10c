"""Optional per-client rate limits on /token, /introspect and /par (``oauth_sessions.flask.ratelimit``)."""

from __future__ import annotations

from base64 import b64decode
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import REDIRECT_URI, basic_auth, create_client, make_app
from flask import Flask
from freezegun import freeze_time
from sqlalchemy import Engine

from oauth_sessions.flask.ratelimit import enable_rate_limits

BAD_REFRESH = {"grant_type": "refresh_token", "refresh_token": "osr1_not-a-token"}


def _clients(app: Flask) -> tuple[dict[str, str], dict[str, str]]:
    (a, secret_a), (b, secret_b) = create_client(app, can_introspect=True), create_client(app)
    assert secret_a is not None and secret_b is not None
    return ({"Authorization": basic_auth(a.client_id, secret_a)},
            {"Authorization": basic_auth(b.client_id, secret_b)})


def _statuses(app: Flask, n: int, headers: dict[str, str], path: str = "/oauth/token",
              data: dict[str, str] | None = None) -> list[int]:
    http = app.test_client()
    return [http.post(path, data=data or BAD_REFRESH, headers=headers).status_code for _ in range(n)]


def test_rate_limiting_is_off_by_default(engine: Engine) -> None:
    app = make_app(engine)
    first, _ = _clients(app)
    assert _statuses(app, 40, first) == [400] * 40


def test_a_client_over_its_token_limit_gets_429_and_others_are_untouched(engine: Engine) -> None:
    app = make_app(engine)
    first, second = _clients(app)
    enable_rate_limits(app, token="3/minute")
    assert _statuses(app, 3, first) == [400, 400, 400]
    limited: Any = app.test_client().post("/oauth/token", data=BAD_REFRESH, headers=first)
    assert limited.status_code == 429
    assert limited.json == {"error": "temporarily_unavailable",
                            "error_description": "too many requests for this client, retry later"}
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["Cache-Control"] == "no-store"
    assert _statuses(app, 3, second) == [400, 400, 400]


def test_the_limit_resets_after_its_window(engine: Engine) -> None:
    app = make_app(engine)
    first, _ = _clients(app)
    enable_rate_limits(app, token="2/minute")
    # The clock is frozen at the real present, not at a fixed date: the limits library's memory
    # storage expires keys from a timer thread, which freezegun leaves on the real clock. Frozen
    # at a past date, that thread saw every window as long over and could reset the count
    # between two requests of a slow run (a flaky 400 where 429 is due).
    start = datetime.now(UTC).replace(microsecond=0)
    with freeze_time(start) as clock:
        assert _statuses(app, 3, first) == [400, 400, 429]
        clock.move_to(start + timedelta(seconds=59))
        assert _statuses(app, 1, first) == [429]
        clock.move_to(start + timedelta(seconds=61))
        assert _statuses(app, 1, first) == [400]


def test_requests_with_a_wrong_secret_do_not_spend_the_named_clients_budget(engine: Engine) -> None:
    """Otherwise anyone could lock a client out by sending requests in its name."""
    app = make_app(engine)
    first, _ = _clients(app)
    enable_rate_limits(app, token="3/minute")
    name = b64decode(first["Authorization"].split()[1]).decode().split(":")[0]
    forged = {"Authorization": basic_auth(name, "wrong-secret")}
    assert _statuses(app, 10, forged) == [401] * 10
    assert _statuses(app, 3, first) == [400, 400, 400]


def test_a_per_address_limit_bounds_unauthenticated_floods(engine: Engine) -> None:
    app = make_app(engine)
    _clients(app)
    enable_rate_limits(app, token="100/minute", per_address="5/minute")
    forged = {"Authorization": basic_auth("00000000-0000-0000-0000-000000000000", "x")}
    assert _statuses(app, 6, forged) == [401] * 5 + [429]


def test_introspection_has_its_own_per_client_limit(engine: Engine) -> None:
    app = make_app(engine)
    first, _ = _clients(app)
    enable_rate_limits(app, introspection="2/minute")
    statuses = _statuses(app, 3, first, "/oauth/introspect", {"token": "x"})
    assert statuses == [200, 200, 429]
    assert _statuses(app, 3, first) == [400, 400, 400]  # /token is not limited here


@pytest.mark.parametrize("allowed", [1, 3])
def test_pushed_requests_have_their_own_per_client_limit_at_the_exact_boundary(
        engine: Engine, allowed: int) -> None:
    """N pushes within the window are answered (201), the N+1st is 429 with Retry-After;
    another client, /token and pushes refused for a wrong secret are not charged."""
    app = make_app(engine)
    first, second = _clients(app)
    enable_rate_limits(app, par=f"{allowed}/minute")
    name = b64decode(first["Authorization"].split()[1]).decode().split(":")[0]
    forged = {"Authorization": basic_auth(name, "wrong-secret")}
    assert _statuses(app, allowed + 2, forged, "/oauth/par", {"response_type": "code"}) == [
        401] * (allowed + 2)
    push = {"response_type": "code", "redirect_uri": REDIRECT_URI,
            "scope": "openid", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256"}
    assert _statuses(app, allowed, first, "/oauth/par", push) == [201] * allowed
    limited: Any = app.test_client().post("/oauth/par", data=push, headers=first)
    assert limited.status_code == 429
    assert limited.json["error"] == "temporarily_unavailable"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["Cache-Control"] == "no-store"
    assert _statuses(app, allowed, second, "/oauth/par", push) == [201] * allowed
    assert _statuses(app, allowed + 1, first) == [400] * (allowed + 1)  # /token: unlimited


def test_the_per_address_limit_covers_pushed_requests_too(engine: Engine) -> None:
    app = make_app(engine)
    _clients(app)
    enable_rate_limits(app, per_address="4/minute")
    forged = {"Authorization": basic_auth("00000000-0000-0000-0000-000000000000", "x")}
    assert _statuses(app, 5, forged, "/oauth/par", {"response_type": "code"}) == [401] * 4 + [429]


def test_enabling_limits_before_the_provider_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not initialised"):
        enable_rate_limits(Flask("x"), token="1/second")
