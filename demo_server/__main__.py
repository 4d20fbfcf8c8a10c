"""``python -m demo_server`` (``make demo``): the demo provider on 127.0.0.1 (``PROVIDER_PORT``, 5000).

``CLIENT_PORT`` (default 5001) is the sample app's port, for the redirect URI seeded for it;
see :mod:`demo_server.ports`.
"""

from __future__ import annotations

from pathlib import Path

from . import ports
from .app import create_app, seeded_clients
from .seed import banner


def main() -> None:
    app = create_app()
    port = ports.provider_port()
    print(banner(app.config["OAUTH_SESSIONS_ISSUER"], seeded_clients(app),
                 app.config["DEMO_CLIENT_APP_URL"], Path(app.config["DEMO_CREDENTIALS_FILE"])),
          flush=True)
    app.run(host="127.0.0.1", port=port, debug=False, use_reloader=False, threaded=True)


if __name__ == "__main__":
    main()
