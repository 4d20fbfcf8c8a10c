"""Where the two demo processes listen: one pair of variables, read the same way by both.

``PROVIDER_PORT`` is the provider's port and ``CLIENT_PORT`` the sample app's, whichever of
the two commands reads them: the provider needs the app's port for the redirect URI it
seeds, the app needs the provider's to find it. Full URLs override them (``ISSUER`` for the
provider, ``PROVIDER_URL`` for the app to reach it, ``CLIENT_APP_URL`` for the redirect URI).
``PORT`` was the provider's port before, and still is for the provider alone; the sample app
ignores it, since to that command it would read as its own port (issue 19 item 2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

DEFAULT_PROVIDER_PORT = 5000
DEFAULT_CLIENT_PORT = 5001
LOOPBACK = "127.0.0.1"


def _port(env: Mapping[str, str], *names: str, default: int) -> int:
    for name in names:
        raw = env.get(name, "").strip()
        if not raw:
            continue
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise SystemExit(f"{name}={raw!r} is not a port: give a number from 1 to 65535, "
                             f"e.g. {name}={default}.")
        return int(raw)
    return default


def provider_port(env: Mapping[str, str] = os.environ) -> int:
    """The provider's own port: ``PROVIDER_PORT``, else the older ``PORT``, else 5000."""
    return _port(env, "PROVIDER_PORT", "PORT", default=DEFAULT_PROVIDER_PORT)


def client_port(env: Mapping[str, str] = os.environ) -> int:
    """The sample app's own port: ``CLIENT_PORT``, else 5001."""
    return _port(env, "CLIENT_PORT", default=DEFAULT_CLIENT_PORT)


def issuer(env: Mapping[str, str] = os.environ) -> str:
    """The provider's issuer URL: ``ISSUER``, else http://127.0.0.1:<provider port>."""
    return env.get("ISSUER") or f"http://{LOOPBACK}:{provider_port(env)}"


def provider_url(env: Mapping[str, str] = os.environ) -> str:
    """Where the sample app finds the provider: ``PROVIDER_URL``, else http://127.0.0.1:<PROVIDER_PORT>.

    ``PORT`` is not read here: ``make demo-client PORT=5402`` means the app's own port to
    whoever types it.
    """
    if env.get("PROVIDER_URL"):
        return env["PROVIDER_URL"].rstrip("/")
    return f"http://{LOOPBACK}:{_port(env, 'PROVIDER_PORT', default=DEFAULT_PROVIDER_PORT)}"


def client_app_url(env: Mapping[str, str] = os.environ) -> str:
    """The sample app's base URL as the provider registers it: ``CLIENT_APP_URL``, else
    http://127.0.0.1:<CLIENT_PORT>."""
    return (env.get("CLIENT_APP_URL") or f"http://{LOOPBACK}:{client_port(env)}").rstrip("/")


def client_command(issuer_url: str, app_url: str) -> str:
    """The exact command that starts the sample app against this provider, e.g.
    ``make demo-client PROVIDER_PORT=5400 CLIENT_PORT=5401`` (defaults left out)."""
    return _make_command("demo-client", issuer_url, "PROVIDER_URL", app_url)


def provider_command(url: str, app_url: str) -> str:
    """The command that starts a provider at ``url`` for the sample app at ``app_url``,
    e.g. ``make demo PROVIDER_PORT=5400 CLIENT_PORT=5401`` (defaults left out)."""
    return _make_command("demo", url, "ISSUER", app_url)


def _make_command(target: str, provider_url: str, url_variable: str, app_url: str) -> str:
    """``make <target>`` with the settings that differ from the defaults: the provider as
    ``PROVIDER_PORT`` when it is plain http on the loopback address, else as ``url_variable``
    (the full URL), and the sample app's ``CLIENT_PORT``."""
    settings: list[str] = []
    parts = urlsplit(provider_url)
    if parts.hostname == LOOPBACK and parts.scheme == "http" and parts.port \
            and parts.path in ("", "/"):
        if parts.port != DEFAULT_PROVIDER_PORT:
            settings.append(f"PROVIDER_PORT={parts.port}")
    else:
        settings.append(f"{url_variable}={provider_url.rstrip('/')}")
    app_port = urlsplit(app_url).port
    if app_port and app_port != DEFAULT_CLIENT_PORT:
        settings.append(f"CLIENT_PORT={app_port}")
    return " ".join([f"make {target}", *settings])
