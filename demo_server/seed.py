"""First-start data: the demo user and two clients, created only when absent.

Only a hash of a client secret is stored, so the seeded confidential client's secret is kept
in ``instance/demo-clients.json`` (mode 0600, git-ignored) to be printed again on the next
start. If that file is lost, the secret is rotated once and written again; the client id,
and therefore everything registered against it, stays the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from oauth_sessions.storage.clients import ClientInfo, ClientStore, verify_client_secret

from . import ports
from .users import AccountError, Passwords, create_account, find_account

#: The sample third-party app's one name: its own pages and the provider's consent, sessions
#: and connected-apps pages all say it (issue 19 item 3).
THIRD_PARTY_APP_NAME = "PhotoPrint"

DEMO_EMAIL = "alice@example.com"
DEMO_PASSWORD = "alice-demo-password"  # published on purpose: it is the demo's sample account


@dataclass(frozen=True, slots=True)
class SeededClient:
    key: str
    info: ClientInfo
    secret: str | None
    # True when this start made the secret (first seeding, or a rotation after the file was
    # lost): only then does the banner print it; later starts point at the file instead.
    new_secret: bool = False


def seed_user(engine: Engine, passwords: Passwords) -> None:
    if find_account(engine, DEMO_EMAIL) is None:
        with contextlib.suppress(AccountError):  # another worker created it first
            create_account(engine, passwords, DEMO_EMAIL, DEMO_PASSWORD)


@dataclass(frozen=True, slots=True)
class ClientSpec:
    key: str
    name: str
    public: bool
    can_introspect: bool
    redirect_uris: tuple[str, ...]
    scopes: str


def client_specs(client_app_url: str) -> list[ClientSpec]:
    base = client_app_url.rstrip("/")
    return [
        ClientSpec("confidential", THIRD_PARTY_APP_NAME, public=False, can_introspect=True,
                   redirect_uris=(f"{base}/callback",),
                   scopes="openid profile email offline_access payments"),
        ClientSpec("public", "Demo public client (PKCE)", public=True, can_introspect=False,
                   # A loopback redirect for a native app or a command-line tool (RFC 8252 7.3).
                   redirect_uris=("http://127.0.0.1:8765/callback",),
                   scopes="openid profile email offline_access"),
    ]


def seed_clients(store: ClientStore, client_app_url: str, credentials_file: Path) -> list[SeededClient]:
    saved = _read(credentials_file)
    seeded: list[SeededClient] = []
    for spec in client_specs(client_app_url):
        record = saved.get(spec.key, {})
        info = store.get(record["client_id"], fresh=True) if record.get("client_id") else None
        if info is None:
            info = next((c for c in store.list() if c.name == spec.name and c.verified), None)
        secret: str | None = record.get("client_secret")
        new_secret = False
        if info is None:
            new_secret = True
            info, secret = store.create(name=spec.name, redirect_uris=spec.redirect_uris,
                                        scopes=spec.scopes, public=spec.public,
                                        can_introspect=spec.can_introspect, verified=True)
        else:
            if not info.verified:  # seeded before revision 0005: the operator's own client
                store.set_verified(info.id)
                info = store.get(info.id, fresh=True) or info
            if info.redirect_uris != spec.redirect_uris:
                store.update_metadata(info.id, redirect_uris="\n".join(spec.redirect_uris))
                info = store.get(info.id, fresh=True) or info
            if not info.is_public and not (secret and verify_client_secret(secret, info.secret_hash)):
                secret, new_secret = store.rotate_secret(info.id), True
        seeded.append(SeededClient(spec.key, info, None if info.is_public else secret,
                                   new_secret=new_secret and not info.is_public))
    # The redirect URIs too: the sample app checks at start that its own callback is among them.
    _write(credentials_file, {s.key: {"client_id": str(s.info.id), "client_secret": s.secret,
                                      "redirect_uris": list(s.info.redirect_uris)}
                              for s in seeded})
    return seeded


def _read(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


def banner(issuer: str, seeded: list[SeededClient], client_app_url: str,
           credentials_file: Path | None = None) -> str:
    """What ``make demo`` prints. A client secret appears only on the start that made it:
    terminal scrollback and process logs are kept longer, and read by more people, than a
    0600 file (issue 15, "Also")."""
    lines = [
        f"oauth_sessions demo provider: {issuer}/",
        f"  demo account      {DEMO_EMAIL} / {DEMO_PASSWORD}",
        f"  discovery         {issuer}/.well-known/openid-configuration",
    ]
    for s in seeded:
        lines.append(f"  {s.info.name}  ({'public' if s.info.is_public else 'confidential'})")
        lines.append(f"    client_id       {s.info.id}")
        if s.secret and s.new_secret:
            lines.append(f"    client_secret   {s.secret}  (printed once; kept in "
                         f"{credentials_file or 'the credentials file'}, mode 0600)")
        elif s.secret:
            lines.append(f"    client_secret   in {credentials_file or 'the credentials file'}")
        lines.append(f"    redirect_uris   {' '.join(s.info.redirect_uris)}")
        lines.append(f"    scopes          {' '.join(s.info.scopes)}")
    lines.append(f"  third-party app   {ports.client_command(issuer, client_app_url)}  "
                 f"(in a second terminal), then open {client_app_url}/")
    return "\n".join(lines)
