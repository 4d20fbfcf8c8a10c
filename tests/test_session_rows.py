"""The row model of ``auth.sessions`` is in one place and read by name everywhere (issue 16).

``oauth_sessions.storage.session_rows`` lists every attribute of ``SessionInfo`` beside its
column; the SQLAlchemy column list, the libpq select list and both decoders come from that
list. These tests check the list against the table, check that each way of reading a row gives
the same ``SessionInfo``, and scan the package so no statement result is read by position again.
"""

from __future__ import annotations

import ast
import dataclasses
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from test_store_support import T0, add_client, add_user, make_store, new_session, recording

import oauth_sessions
from oauth_sessions.core import signals
from oauth_sessions.core.errors import RefreshTokenReused
from oauth_sessions.core.types import Aal
from oauth_sessions.storage import session_rows
from oauth_sessions.storage.models import Session

PACKAGE = Path(oauth_sessions.__file__).resolve().parent


def test_every_attribute_has_a_column_of_auth_sessions() -> None:
    names = [f.name for f in dataclasses.fields(session_rows.SessionInfo)]
    assert [f.name for f in session_rows.FIELDS] == names
    columns = {c.name for c in Session.__table__.columns}
    assert {f.column for f in session_rows.FIELDS} <= columns
    assert "refresh_token_hmac_key" not in {f.column for f in session_rows.FIELDS}  # never leaves


def test_the_sqlalchemy_and_libpq_column_lists_name_the_same_columns_in_the_same_order() -> None:
    assert [c.name for c in session_rows.SESSION_COLUMNS] == [f.name for f in session_rows.FIELDS]
    libpq = session_rows.SESSION_COLUMNS_SQL.decode().split(", ")
    assert [item.rsplit(" AS ", 1)[1] for item in libpq] == [f.name for f in session_rows.FIELDS]
    assert [item.rsplit(" AS ", 1)[0].removeprefix("extract(epoch FROM ").rstrip(")")
            for item in libpq] == [f"s.{f.column}" for f in session_rows.FIELDS]


def _positional_reads(tree: ast.AST) -> list[int]:
    """Lines that index a row by a number (``row[2]``, ``rows[0][14]``) or ask libpq for a
    column by a literal number (``get_value(0, 3)``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and type(node.slice.value) is int:
            base = node.value
            if isinstance(base, ast.Subscript):  # rows[i][n]: a column of a line of a result
                while isinstance(base, ast.Subscript):
                    base = base.value
                if isinstance(base, ast.Name) and "row" in base.id.lower():
                    found.append(node.lineno)
            elif isinstance(base, ast.Name) and (base.id in {"r", "row"} or base.id.endswith("_row")):
                found.append(node.lineno)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get_value" \
                and len(node.args) == 2 and isinstance(node.args[1], ast.Constant):
            found.append(node.lineno)
    return found


def test_the_scan_finds_what_it_looks_for() -> None:
    sample = "a = row[2]\nb = rows[0][14]\nc = result.get_value(0, 3)\nd = rows[-1].id\n"
    assert _positional_reads(ast.parse(sample)) == [1, 2, 3]


def test_no_module_reads_a_row_by_position() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := _positional_reads(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert offenders == {}


@pytest.mark.postgres
def test_the_reuse_delete_reports_the_row_as_sqlalchemy_reads_it(pg_engine: Engine) -> None:
    """On PostgreSQL the reuse answer's ``DELETE ... RETURNING`` runs through psycopg itself;
    the revoked session it reports must be the one ``SessionStore.get`` read just before."""
    store = make_store(pg_engine, refresh_token_reuse_interval=0)
    issued = new_session(store, add_user(pg_engine), add_client(pg_engine), scopes="openid email",
                         aal=Aal.AAL2, factor_id=uuid.uuid4(), user_agent="agent/2",
                         ip="192.0.2.7", tag="phone", amr=["pwd"], now=T0)
    client_id = issued.session.client_id
    store.rotate(issued.refresh_token, client_id=client_id, now=T0 + timedelta(seconds=1))
    before = store.get(issued.session.id)
    with recording(signals.session_revoked) as events, pytest.raises(RefreshTokenReused):
        store.rotate(issued.refresh_token, client_id=client_id, now=T0 + timedelta(seconds=2))
    assert before is not None and [e["session"] for _, e in events] == [before]
    assert store.get(issued.session.id) is None
