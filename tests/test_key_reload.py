"""How soon a worker uses signing keys rotated by another worker or host.

Each worker keeps its parsed key set for ``OAUTH_SESSIONS_SIGNING_KEY_RELOAD_SECONDS`` (60 by
default) and then reads ``oauth_signing_keys`` again; the worker that rotated knows at once. Old
keys stay published for the longest token lifetime plus two reload periods, so a token signed
by a worker that has not yet seen a rotation still verifies everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from factories import make_app
from freezegun import freeze_time
from sqlalchemy import Engine

from oauth_sessions import get_state
from oauth_sessions.core.settings import ConfigurationError, load_settings
from oauth_sessions.storage.signing_keys import RELOAD_SECONDS, KeyStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=10)


def test_another_worker_uses_a_rotated_key_exactly_when_its_reload_period_ends(engine: Engine) -> None:
    with freeze_time(T0) as clock:
        rotating = KeyStore(engine, alg="ES256", publish_grace=GRACE, reload_seconds=5)
        other = KeyStore(engine, alg="ES256", publish_grace=GRACE, reload_seconds=5)
        old = other.keyset().active
        assert rotating.keyset().active == old
        new = rotating.rotate()
        assert rotating.keyset().active == new  # the rotating worker: at once
        clock.tick(timedelta(seconds=4.999))
        assert other.keyset().active == old
        clock.tick(timedelta(milliseconds=1))
        assert other.keyset().active == new
        assert other.keyset().find(old.kid) is not None  # still published for its tokens


def test_the_default_reload_period_is_sixty_seconds(engine: Engine) -> None:
    with freeze_time(T0) as clock:
        rotating = KeyStore(engine, alg="ES256", publish_grace=GRACE)
        other = KeyStore(engine, alg="ES256", publish_grace=GRACE)
        old = other.keyset().active
        new = rotating.rotate()
        clock.tick(timedelta(seconds=RELOAD_SECONDS - 1))
        assert other.keyset().active == old
        clock.tick(timedelta(seconds=1))
        assert other.keyset().active == new
    assert RELOAD_SECONDS == 60


def test_the_setting_reaches_the_key_store_and_widens_the_publish_grace(engine: Engine) -> None:
    app = make_app(engine, signing_key_reload_seconds=7, access_token_lifetime=120,
                   id_token_lifetime=90)
    keys = get_state(app).services.keys
    assert keys.reload_seconds == 7
    assert keys.publish_grace == timedelta(seconds=120 + 2 * 7)


@pytest.mark.parametrize("value", [0, 3601, "soon", 1.5])
def test_a_reload_period_out_of_range_is_refused_naming_the_key(value: object) -> None:
    with pytest.raises(ConfigurationError, match="OAUTH_SESSIONS_SIGNING_KEY_RELOAD_SECONDS"):
        load_settings({"OAUTH_SESSIONS_ISSUER": "https://id.example",
                       "OAUTH_SESSIONS_SIGNING_KEY_RELOAD_SECONDS": value})
