"""The demo starts on an empty SQLite file, migrates and seeds itself, and serves its first page."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo_server.app import create_app, seeded_clients
from demo_server.seed import DEMO_EMAIL, DEMO_PASSWORD, banner
from oauth_sessions import get_state
from oauth_sessions.storage.clients import verify_client_secret
from oauth_sessions.storage.migrate import current_revision


def test_demo_serves_first_page_on_fresh_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    app = create_app()
    response = app.test_client().get("/")
    assert response.status_code == 200
    assert b"Create an account" in response.data
    assert b'href="/static/demo.css"' in response.data
    assert (tmp_path / "demo.db").exists()
    assert current_revision(get_state(app).engine) is not None
    # a second start on the same file is idempotent, and signs nobody out (same secret key)
    again = create_app()
    assert again.test_client().get("/").status_code == 200
    assert again.secret_key == app.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_first_start_seeds_and_prints_stable_credentials(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    first = create_app()
    seeded = {s.key: s for s in seeded_clients(first)}
    assert set(seeded) == {"confidential", "public"}
    confidential, public = seeded["confidential"], seeded["public"]
    assert confidential.secret and verify_client_secret(confidential.secret, confidential.info.secret_hash)
    assert public.secret is None and public.info.is_public
    text = banner("http://127.0.0.1:5000", seeded_clients(first), "http://127.0.0.1:5001")
    for expected in (DEMO_EMAIL, DEMO_PASSWORD, str(confidential.info.id), confidential.secret,
                     str(public.info.id), "http://127.0.0.1:5001/callback"):
        assert expected in text
    assert (tmp_path / "demo-clients.json").stat().st_mode & 0o077 == 0

    second = {s.key: s for s in seeded_clients(create_app())}
    assert second["confidential"].info.id == confidential.info.id
    assert second["confidential"].secret == confidential.secret
    assert second["public"].info.id == public.info.id
    assert len(get_state(first).components["clients"].list()) == 2

    # without the saved secret the client keeps its id and gets a new secret, printed again
    (tmp_path / "demo-clients.json").unlink()
    third = {s.key: s for s in seeded_clients(create_app())}
    assert third["confidential"].info.id == confidential.info.id
    assert third["confidential"].secret not in (None, confidential.secret)
    clients = get_state(first).components["clients"]
    stored = clients.get(confidential.info.id, fresh=True)
    assert not verify_client_secret(confidential.secret, stored.secret_hash)


def test_flask_cli_of_the_demo_runs_the_library_commands(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app()
    result = app.test_cli_runner().invoke(args=["oauth-sessions", "list-clients"])
    assert result.exit_code == 0, result.output
    assert "PhotoPrint" in result.output
    for command in (["oauth-sessions", "purge"], ["oauth-sessions", "rotate-keys"]):
        result = app.test_cli_runner().invoke(args=command)
        assert result.exit_code == 0, result.output
