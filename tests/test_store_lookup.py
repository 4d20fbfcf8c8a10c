"""SessionStore.find_refresh_session: the one read-only answer to "which session, which counter".

Introspection (RFC 7662 section 2.2) and revocation (RFC 7009 section 2.1) must learn what a
refresh token names without rotating it, and must do so through the store's public method,
not through its private statements, key box or engines.
"""

from __future__ import annotations

import ast
import pathlib
import uuid

import pytest
from sqlalchemy import Engine, select
from test_store_support import T0, add_client, add_user, make_store, new_session

import oauth_sessions
from oauth_sessions.core.refresh_tokens import encode_refresh_token
from oauth_sessions.storage.introspection_store import StoreSessions
from oauth_sessions.storage.models import Session
from oauth_sessions.storage.sessions import RefreshTokenLookup

PACKAGE = pathlib.Path(oauth_sessions.__file__).parent


def _row(engine: Engine, session_id: uuid.UUID) -> tuple[object, ...]:
    table = Session.__table__
    with engine.connect() as conn:
        return tuple(conn.execute(select(table.c.refresh_token_counter, table.c.refreshed_at,
                                         table.c.updated_at).where(table.c.id == session_id)).one())


def test_the_current_token_names_its_session_and_counter(engine: Engine) -> None:
    store = make_store(engine)
    issued = new_session(store, add_user(engine), add_client(engine), now=T0)
    found = store.find_refresh_session(issued.refresh_token)
    assert isinstance(found, RefreshTokenLookup)
    assert found.session == issued.session and found.counter == 0 and found.is_current
    assert [a.method for a in found.amr] == ["pwd"]


def test_a_superseded_token_is_named_but_not_current_and_nothing_is_written(engine: Engine) -> None:
    store = make_store(engine)
    user, client = add_user(engine), add_client(engine)
    issued = new_session(store, user, client, now=T0)
    rotated = store.rotate(issued.refresh_token, client_id=client, now=T0)
    before = _row(engine, issued.session.id)
    old = store.find_refresh_session(issued.refresh_token)
    assert old is not None and (old.counter, old.session.counter) == (0, 1) and not old.is_current
    assert _row(engine, issued.session.id) == before  # no reuse detection, no write
    new = store.find_refresh_session(rotated.refresh_token)
    assert new is not None and new.counter == 1 and new.is_current
    assert StoreSessions(store).current_refresh_session(issued.refresh_token) is None
    current = StoreSessions(store).current_refresh_session(rotated.refresh_token)
    assert current is not None and current.session.id == issued.session.id


def test_forged_malformed_and_unknown_tokens_name_nothing(engine: Engine) -> None:
    store = make_store(engine)
    issued = new_session(store, add_user(engine), add_client(engine), now=T0)
    assert store.find_refresh_session(encode_refresh_token(issued.session.id, 0, bytes(32))) is None
    assert store.find_refresh_session(encode_refresh_token(uuid.uuid4(), 0, bytes(32))) is None
    assert store.find_refresh_session("osr1_" + "A" * 75) is None
    assert store.find_refresh_session("") is None


def _private_reaches(module: str) -> list[str]:
    """Private names of *other* modules this module imports or reads as attributes.

    A leading underscore is this codebase's "not part of the contract" mark; a private name is
    fine inside the module that assigns it (``self._x = ...`` or a module-level ``_x``).
    """
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    own = {t.attr for n in ast.walk(tree) if isinstance(n, ast.Assign | ast.AnnAssign)
           for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
           if isinstance(t, ast.Attribute)}
    own |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    own |= {t.id for n in tree.body if isinstance(n, ast.Assign | ast.AnnAssign)
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(
                "oauth_sessions")):
            found += [f"import {a.name}" for a in node.names if a.name.startswith("_")]
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")
              and not node.attr.startswith("__") and node.attr not in own):
            found.append(ast.unparse(node))
    return found


@pytest.mark.parametrize("module", ["storage/introspection_store", "core/introspection",
                                    "protocol/introspection_endpoint", "flask/blueprints"])
def test_readers_of_sessions_use_only_public_names_of_other_modules(module: str) -> None:
    assert _private_reaches(module) == []


def test_store_no_longer_re_exports_rotation_internals() -> None:
    from oauth_sessions.storage import sessions as store

    assert [n for n in ("_READ", "_amr") if hasattr(store, n)] == []
