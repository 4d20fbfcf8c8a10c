"""Signals for changes made in a caller's transaction wait for that transaction's COMMIT.

Store methods that accept ``conn`` run in the caller's transaction and must not announce a
change before it is committed, nor at all if it is rolled back: a receiver acts on a signal
(a back-channel logout, an audit row). :func:`when_committed` holds the announcement until then.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable

from sqlalchemy import Connection, event

__all__ = ["when_committed"]

log = logging.getLogger(__name__)


def when_committed(conn: Connection | None, send: Callable[[], None]) -> None:
    """Run ``send`` when the change it announces is committed, never for a rolled-back one.

    A receiver acts on a signal (a back-channel logout, an audit row), so announcing a session
    that a caller's rollback then undoes would tell the world something false. Without ``conn``
    the store already committed: send now. With a caller's connection in ``AUTOCOMMIT`` each
    statement was committed as it ran: send now. Otherwise the send waits in a per-connection
    list: SQLAlchemy's ``commit`` event on that Connection sends the list, its ``rollback``
    event (explicit, or the implicit one when a connection closes mid-transaction) drops it.
    The two listeners are attached once per Connection and never removed while dispatching.

    Limits: the ``commit`` event fires as the COMMIT is issued, after every statement has
    succeeded; a COMMIT that itself fails (a lost connection) has then already been announced.
    A rollback to a SAVEPOINT that contained the change does not drop it.
    """
    if conn is None or conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        send()
        return
    with _PENDING_LOCK:
        pending = _PENDING.get(conn)
        if pending is None:
            pending = _PENDING[conn] = []
            if conn not in _HOOKED:
                _HOOKED.add(conn)
                event.listen(conn, "commit", _send_pending)
                event.listen(conn, "rollback", _drop_pending)
        pending.append(send)


def _send_pending(conn: Connection) -> None:
    with _PENDING_LOCK:
        sends = _PENDING.pop(conn, [])
    for send in sends:
        try:
            send()
        except Exception:  # a receiver's failure must not stop the caller's COMMIT behind it
            log.exception("a session signal receiver failed while the caller committed")


def _drop_pending(conn: Connection) -> None:
    with _PENDING_LOCK:
        _PENDING.pop(conn, None)


_PENDING: weakref.WeakKeyDictionary[Connection, list[Callable[[], None]]] = weakref.WeakKeyDictionary()
_HOOKED: weakref.WeakSet[Connection] = weakref.WeakSet()
_PENDING_LOCK = threading.Lock()
