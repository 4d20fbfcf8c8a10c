"""The demo starts on an empty SQLite file, migrates itself and serves its first page."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo_server.app import create_app


def test_demo_serves_first_page_on_fresh_sqlite(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app()
    response = app.test_client().get("/")
    assert response.status_code == 200
    assert b"revision" in response.data
    assert (tmp_path / "demo.db").exists()
    # a second start on the same file is idempotent
    assert create_app().test_client().get("/").status_code == 200
