"""Signing keys persisted in ``oauth_signing_keys`` (the library's schema) and the app's :class:`KeySet`.

Workers are stateless: the keys live in the database, each worker parses them once into a
:class:`~oauth_sessions.jose.keys.KeySet` and re-reads the table every ``reload_seconds``
(``OAUTH_SESSIONS_SIGNING_KEY_RELOAD_SECONDS``, ``RELOAD_SECONDS`` by default), at once after a
rotation it made itself, and when asked about a ``kid`` it does not know. A rotation retires
the active key but keeps it published for ``publish_grace`` = the longest token lifetime plus
two reload periods, so every token signed by the old key, even by a worker that has not yet
seen the rotation, verifies until it expires.

One active key per algorithm in use: ``alg`` (``OAUTH_SESSIONS_SIGNING_ALG``) signs access
tokens and the other JWTs, ``id_token_alg`` (``OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG``, RS256 by
default as OpenID Connect Discovery 1.0 section 3 requires) signs ID tokens. Each alg is created,
rotated, retired and published on its own; the ``alg`` column of the table says which is which,
so no schema change was needed.

An RS256 key is always among them, whatever the two settings say: OpenID Connect Core 1.0
section 15.1 makes RS256 the one ID token alg every provider supports, and a client that
registered no ``id_token_signed_response_alg`` expects it (Dynamic Client Registration 1.0
section 2), so the JWKS must hold the key that verifies such ID tokens. ``id_token_algs`` lists
every alg an ID token can be signed with here (RS256 first): the algs that have a key.

Private JWKs go through the app's :class:`~oauth_sessions.storage.key_encryption.SecretBox`, so they are
AES-GCM encrypted at rest whenever ``OAUTH_SESSIONS_ENCRYPTION_KEYS`` is configured.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, cast

from sqlalchemy import Engine, Table, select, update

from ..jose.keys import KeySet, SigningKey, current_active, generate_signing_key, rotate
from .key_encryption import PlainKeys, SecretBox
from .models import OAuthSigningKey

if TYPE_CHECKING:
    pass

__all__ = ["RELOAD_SECONDS", "KeyStore"]

_O_AUTH_SIGNING_KEY = cast(Table, OAuthSigningKey.__table__)

#: How long a worker trusts its parsed key set before reading the table again, by default.
RELOAD_SECONDS: Final = 60
#: Unknown-kid reloads are rate limited so a stream of junk tokens cannot hammer the database.
_MIN_FORCED_RELOAD_SECONDS: Final = 1.0


def _context(kid: str) -> bytes:
    return b"oauth_signing_keys:" + kid.encode("utf-8")


class KeyStore:
    """Reads, creates and rotates the signing keys; caches the parsed :class:`KeySet`."""

    def __init__(self, engine: Engine, *, alg: str, publish_grace: timedelta,
                 box: SecretBox | None = None, id_token_alg: str | None = None,
                 reload_seconds: float = RELOAD_SECONDS) -> None:
        self._engine = engine
        self.reload_seconds = reload_seconds
        self.alg = alg
        #: Alg of ID tokens; the same as ``alg`` unless configured otherwise.
        self.id_token_alg = id_token_alg or alg
        #: Every alg that needs an active key, the access-token one first; RS256 always.
        self.algs: tuple[str, ...] = tuple(dict.fromkeys((alg, self.id_token_alg, "RS256")))
        #: The algs an ID token can be signed with (each has an active key), RS256 first: what
        #: discovery advertises and what a client may register as ``id_token_signed_response_alg``.
        self.id_token_algs: tuple[str, ...] = tuple(dict.fromkeys(
            ("RS256", self.id_token_alg, *self.algs)))
        self.publish_grace = publish_grace
        self._box: SecretBox = box or PlainKeys()
        self._lock = threading.Lock()
        self._keyset: KeySet | None = None
        self._loaded_at = 0.0
        self._forced_at = 0.0

    # ------------------------------------------------------------------ storage

    def load(self) -> list[SigningKey]:
        table = _O_AUTH_SIGNING_KEY
        with self._engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.created_at)).all()
        return [
            SigningKey(
                kid=r.kid,
                alg=r.alg,
                private_jwk=self._box.decrypt(r.private_jwk, context=_context(r.kid)),
                created_at=r.created_at,
                activated_at=r.activated_at,
                retired_at=r.retired_at,
            )
            for r in rows
        ]

    def _save(self, before: list[SigningKey], after: list[SigningKey]) -> None:
        """Insert new rows and record retirements, in one transaction."""
        table = _O_AUTH_SIGNING_KEY
        old = {k.kid: k for k in before}
        with self._engine.begin() as conn:
            for key in after:
                previous = old.get(key.kid)
                if previous is None:
                    conn.execute(table.insert().values(
                        kid=key.kid, alg=key.alg,
                        private_jwk=self._box.encrypt(key.private_jwk, context=_context(key.kid)),
                        created_at=key.created_at, activated_at=key.activated_at,
                        retired_at=key.retired_at,
                    ))
                elif previous.retired_at != key.retired_at:
                    conn.execute(update(table).where(table.c.kid == key.kid)
                                 .values(retired_at=key.retired_at))

    def rotate(self, alg: str | None = None, *, now: datetime | None = None) -> SigningKey:
        """Make a new active ``alg`` key (default: the access-token alg) and retire the current
        key of that alg (kept published through the grace). Other algs are left alone."""
        return self.rotate_all(algs=(alg or self.alg,), now=now)[0]

    def rotate_all(self, *, algs: tuple[str, ...] | None = None,
                   now: datetime | None = None) -> list[SigningKey]:
        """Rotate every alg in use (or ``algs``) in one transaction; return the new keys."""
        now = now or datetime.now(UTC)
        before = self.load()
        after = before
        for alg in algs or self.algs:
            after = rotate(after, alg, now)
        self._save(before, after)
        self.invalidate()
        return after[len(before):]

    def _missing_algs(self, keys: list[SigningKey], now: datetime) -> list[str]:
        return [alg for alg in self.algs if current_active(keys, now, alg) is None]

    def ensure_active(self, *, now: datetime | None = None) -> None:
        """Create the first key of each alg in use that has none active (first start of a
        deployment, or an alg newly configured).

        Two workers starting at once may both create one; both stay published and the newer
        signs, which is harmless.
        """
        now = now or datetime.now(UTC)
        keys = self.load()
        missing = self._missing_algs(keys, now)
        if missing:
            new = [generate_signing_key(alg, now=now, activated_at=now) for alg in missing]
            self._save(keys, [*keys, *new])
            self.invalidate()

    # ------------------------------------------------------------------ cache

    def invalidate(self) -> None:
        with self._lock:
            self._keyset = None

    def keyset(self, *, unknown_kid: str | None = None) -> KeySet:
        """The parsed key set, re-read when older than ``reload_seconds``.

        ``unknown_kid``: a token named a kid we lack; re-read now (rate limited) in case
        another worker rotated since our last read.
        """
        current = self._keyset
        age = time.monotonic() - self._loaded_at
        if current is not None and age < self.reload_seconds:
            if unknown_kid is None or current.find(unknown_kid) is not None:
                return current
            if time.monotonic() - self._forced_at < _MIN_FORCED_RELOAD_SECONDS:
                return current
            self._forced_at = time.monotonic()
        keys = self.load()
        if self._missing_algs(keys, datetime.now(UTC)):
            self.ensure_active()
            keys = self.load()
        keyset = KeySet(keys, publish_grace=self.publish_grace, signing_alg=self.alg)
        with self._lock:
            self._keyset = keyset
            self._loaded_at = time.monotonic()
        return keyset
