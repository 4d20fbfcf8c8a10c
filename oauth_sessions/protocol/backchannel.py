"""OpenID Connect Back-Channel Logout 1.0: logout tokens and their delivery to clients.

Whenever a session ends (logout, revocation, refresh-token reuse, consent revoked, the client's
sessions revoked, the user ended), the store sends
:data:`~oauth_sessions.core.signals.session_revoked` after its transaction committed. The receiver
here looks up the session's client and, when the client registered a ``backchannel_logout_uri``
(section 2.2), hands a :class:`Delivery` to the app's :class:`BackchannelSender`. It never
raises and never waits: the request that ended the session is not slowed or failed by a client
(section 2.8 leaves the OP free to send "asynchronously"). Before the first POST a worker checks
that the session row is gone for every connection, so a token is only ever sent for an end that
was committed (a store call inside a caller's transaction signals before that commit).

Delivery is *best effort, in process*. A bounded pool of worker threads per process POSTs the
token (section 2.5) with short timeouts and a few retries with exponential backoff on network
errors, timeouts, 5xx, 408 and 429; any other 4xx is the RP refusing the token and is final.
Pending deliveries live in memory: a crash or a restart loses them, and a full queue drops new
ones (logged). A durable outbox would take a table written in the same transaction as the
session delete (``session_id, client_id, due_at, attempts``), workers claiming rows with
``FOR UPDATE SKIP LOCKED``, and deletion of the row on success: exactly-once per commit, at the
price of one more write on every revocation.
"""

from __future__ import annotations

import atexit
import heapq
import http.client
import ipaddress
import itertools
import logging
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core import signals
from ..core.subjects import subject_for
from ..core.uris import LOOPBACK_HOSTS, is_public_address
from ..jose.logout_tokens import build_logout_token_claims, sign_logout_token

__all__ = ["BackchannelSender", "Delivery", "connect_signals"]

log = logging.getLogger(__name__)

#: A poster sends ``logout_token`` to ``uri`` and returns the HTTP status (raises on failure).
Poster = Callable[[str, str, float], int]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, never to a second resolution of the name."""

    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address; SNI and the certificate check still use the host name."""

    def __init__(self, host: str, port: int | None, address: str, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


class BlockedAddress(ValueError):
    """The receiver's host name resolves to an address this server must not call."""


def check_resolved_host(host: str) -> str:
    """Resolve ``host`` once and return the address to connect to; refuse internal ones.

    Registration (:mod:`oauth_sessions.core.uris`) already refuses internal IP literals and
    admits loopback only on a development deployment; a DNS name can only be judged when it is
    resolved, so that happens here, just before the POST, and the POST then connects to the
    very address judged here (no second resolution, so DNS rebinding cannot slip in between).
    Every address of the answer must be public, not only the one used.
    """
    if host in LOOPBACK_HOSTS:
        return host  # a literal loopback host passed registration only in development
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)  # OSError: retried
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses or not all(is_public_address(a) for a in addresses):
        raise BlockedAddress(f"{host} resolves to a non-public address")
    return str(addresses[0])


def post_form(uri: str, token: str, timeout: float) -> int:
    """Section 2.5: ``application/x-www-form-urlencoded`` POST to the checked address.

    Redirects are not followed (``http.client`` follows none), so a client cannot bounce the
    provider's request to an address it did not register; the ``Host`` header, TLS SNI and the
    certificate check use the registered name. The standard library's client is enough here
    and keeps ``requests`` an optional extra.
    """
    parts = urllib.parse.urlsplit(uri)
    host = (parts.hostname or "").rstrip(".")
    address = check_resolved_host(host)
    kind = _PinnedHTTPSConnection if parts.scheme.lower() == "https" else _PinnedHTTPConnection
    connection = kind(host, parts.port, address, timeout)
    body = urllib.parse.urlencode({"logout_token": token}).encode("ascii")
    try:
        connection.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                           body=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                               "Cache-Control": "no-store"})
        response = connection.getresponse()
        response.read()
        return int(response.status)
    finally:
        connection.close()


@dataclass(eq=False)
class Delivery:
    """One logout token owed to one client for one ended session."""

    uri: str
    client_id: str
    session_id: uuid.UUID
    make_token: Callable[[], str] = field(repr=False)
    #: Whether the end is visible to other connections yet (see :meth:`BackchannelSender._attempt`).
    ended: Callable[[], bool] | None = field(default=None, repr=False)
    attempts: int = 0
    checks: int = 0
    token: str | None = field(default=None, repr=False)


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


class BackchannelSender:
    """A bounded, in-memory retry queue served by ``workers`` daemon threads (started lazily).

    ``submit`` never blocks: it returns ``False`` when the sender is closed or ``max_pending``
    deliveries are already waiting. Each delivery is tried ``attempts`` times at most, waiting
    ``backoff * 2**(n-1)`` seconds before retry ``n``; the token is signed once, on the first
    try, so a receiver that got a token whose answer was lost can recognise the retry by ``jti``.
    """

    def __init__(self, *, timeout: float = 5.0, attempts: int = 3, backoff: float = 1.0,
                 workers: int = 2, max_pending: int = 1000, post: Poster | None = None) -> None:
        if timeout <= 0 or attempts < 1 or backoff < 0 or workers < 1 or max_pending < 1:
            raise ValueError("timeout > 0, attempts >= 1, backoff >= 0, workers >= 1, "
                             "max_pending >= 1 are required")
        self.timeout, self.attempts, self.backoff = timeout, attempts, backoff
        self._workers, self._max_pending = workers, max_pending
        self._post: Poster = post or post_form
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._busy = 0
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.delivered = 0
        self.failed = 0

    @property
    def pending(self) -> int:
        """Deliveries queued or being tried now."""
        with self._cond:
            return len(self._heap) + self._busy

    def submit(self, delivery: Delivery) -> bool:
        """Queue ``delivery`` without blocking; ``False`` when closed or ``max_pending`` are waiting."""
        with self._cond:
            if self._closed:
                return False
            if len(self._heap) + self._busy >= self._max_pending:
                log.warning("back-channel logout queue full: dropped client=%s sid=%s",
                            delivery.client_id, delivery.session_id)
                return False
            heapq.heappush(self._heap, (time.monotonic(), next(self._seq), delivery))
            if not self._threads:
                self._start()
            self._cond.notify()
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is pending (for shutdown and tests); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop: tries in flight finish (each bounded by ``timeout``), queued ones are dropped."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            dropped = len(self._heap)
            self._heap.clear()
            self._cond.notify_all()
        if dropped:
            log.warning("back-channel logout sender closed: %d pending deliveries dropped", dropped)
        for thread in self._threads:
            thread.join(timeout)

    def _start(self) -> None:
        for n in range(self._workers):
            thread = threading.Thread(target=self._run, name=f"oauth-sessions-backchannel-{n}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        atexit.register(self.close, 1.0)

    def _next(self) -> Delivery | None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    self._busy += 1
                    return heapq.heappop(self._heap)[2]
                self._cond.wait(self._heap[0][0] - now if self._heap else None)
            return None

    def _run(self) -> None:
        while (delivery := self._next()) is not None:
            retry_at: float | None = None
            try:
                retry_at = self._attempt(delivery)
            except Exception:  # never let one delivery kill the worker
                log.exception("back-channel logout failed: client=%s sid=%s",
                              delivery.client_id, delivery.session_id)
            with self._cond:
                self._busy -= 1
                if retry_at is not None and not self._closed:
                    heapq.heappush(self._heap, (retry_at, next(self._seq), delivery))
                self._cond.notify_all()

    def _attempt(self, delivery: Delivery) -> float | None:
        """One try; returns when to try again, or ``None`` when done (delivered or given up).

        A store method given a caller's ``conn`` signals before the caller commits, so before
        the first POST the session must be gone for everyone else too: while it is still
        visible the check is repeated with the same backoff, and if it outlives ``attempts``
        checks the ending transaction rolled back and nothing is sent.
        """
        if delivery.token is None and delivery.ended is not None and not delivery.ended():
            delivery.checks += 1
            if delivery.checks < self.attempts:
                wait: float = self.backoff * 2.0 ** (delivery.checks - 1)
                return time.monotonic() + wait
            log.info("back-channel logout not sent: session still exists (rolled back?) "
                     "client=%s sid=%s", delivery.client_id, delivery.session_id)
            return None
        if delivery.token is None:
            delivery.token = delivery.make_token()
        delivery.attempts += 1
        where = f"client={delivery.client_id} sid={delivery.session_id} attempt={delivery.attempts}"
        try:
            status = self._post(delivery.uri, delivery.token, self.timeout)
        except BlockedAddress:
            self.failed += 1
            log.warning("back-channel logout refused: %s receiver resolves to a non-public "
                        "address", where)
            return None
        except Exception as exc:  # connection refused, timeout, TLS, DNS ...
            status, detail = 0, type(exc).__name__
        else:
            detail = f"status={status}"
        if 200 <= status < 300:
            self.delivered += 1
            log.info("back-channel logout delivered: %s", where)
            return None
        if (status == 0 or _retryable(status)) and delivery.attempts < self.attempts:
            log.info("back-channel logout will be retried: %s %s", where, detail)
            delay: float = self.backoff * 2.0 ** (delivery.attempts - 1)
            return time.monotonic() + delay
        self.failed += 1
        log.warning("back-channel logout given up: %s %s", where, detail)
        return None


# --------------------------------------------------------------------------- signal receiver


def _on_session_revoked(sender: object, **kwargs: Any) -> None:
    """Queue a logout token for the ended session's client; never raises, never waits."""
    session = kwargs.get("session")
    try:
        extensions = getattr(sender, "extensions", None)
        state = extensions.get("oauth_sessions") if isinstance(extensions, dict) else None
        if state is None or session is None or session.client_id is None:
            return
        backchannel = state.services.backchannel
        client = state.services.clients.get(session.client_id)
        if client is None or not client.backchannel_logout_uri:
            return
        keys, issuer = state.services.keys, state.settings.issuer
        sessions = state.services.sessions
        # Section 2.4: sub as in the client's ID tokens (pairwise for a pairwise client).
        subject = subject_for(session.user_id, client.sector_identifier,
                              state.settings.pairwise_salt)
        client_id, sid = client.client_id, str(session.id)

        def make_token() -> str:
            claims = build_logout_token_claims(issuer=issuer, client_id=client_id,
                                               subject=subject, session_id=sid)
            return sign_logout_token(keys.keyset(), claims)

        session_id = session.id
        backchannel.submit(Delivery(client.backchannel_logout_uri, client_id, session_id,
                                    make_token, ended=lambda: sessions.get(session_id) is None))
    except Exception:
        log.exception("back-channel logout could not be queued: sid=%s",
                      getattr(session, "id", None))


def connect_signals() -> None:
    """Subscribe the back-channel to ``session_revoked`` (idempotent; every app's sessions)."""
    signals.session_revoked.connect(_on_session_revoked)
