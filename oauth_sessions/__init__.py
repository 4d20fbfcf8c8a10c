"""Session-backed OAuth 2.1 / OpenID Connect provider for Flask, on Supabase's ``auth.sessions``."""

from .extension import OAuthSessions as OAuthSessions
from .extension import get_state as get_state
from .settings import ConfigurationError as ConfigurationError
from .settings import Settings as Settings
from .types import Aal as Aal

__version__ = "0.1.0"

