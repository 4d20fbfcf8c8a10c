"""``python -m demo_server`` (``make demo``): run the demo provider on 127.0.0.1 (PORT, default 5000)."""

from __future__ import annotations

import os
from pathlib import Path

from .app import create_app, seeded_clients
from .seed import banner


def main() -> None:
    app = create_app()
    port = int(os.environ.get("PORT", "5000"))
    print(banner(app.config["OAUTH_SESSIONS_ISSUER"], seeded_clients(app),
                 app.config["DEMO_CLIENT_APP_URL"], Path(app.config["DEMO_CREDENTIALS_FILE"])),
          flush=True)
    app.run(host="127.0.0.1", port=port, debug=False, use_reloader=False, threaded=True)


if __name__ == "__main__":
    main()
