"""Session-backed OAuth 2.1 / OpenID Connect provider for Flask, on Supabase's ``auth.sessions``."""

from importlib.metadata import PackageNotFoundError, version

from .core.settings import ConfigurationError as ConfigurationError
from .core.settings import Settings as Settings
from .core.types import Aal as Aal
from .flask.extension import OAuthSessions as OAuthSessions
from .flask.extension import ensure_user as ensure_user
from .flask.state import get_state as get_state

try:
    # The version is declared once, in pyproject.toml; the installed metadata carries it.
    __version__ = version("oauth_sessions")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0+unknown"
