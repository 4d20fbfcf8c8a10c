"""Per-app state: the settings, the engine and the typed services, found from the Flask app.

:class:`Services` holds the objects one app uses (stores, the Authlib server, the host adapter,
the introspection checks, the back-channel sender, the protocol handlers); they are built in one place,
:func:`oauth_sessions.flask.extension.build_services`, and read as attributes, so mypy checks
every use. The state lives in ``app.extensions["oauth_sessions"]``, never on the extension
object, so one extension instance can serve several apps (app factories, tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app
from sqlalchemy import Engine

from ..core.settings import Settings

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue

    from ..core.introspection import TokenChecks
    from ..jose.keys import KeySet
    from ..protocol.backchannel import BackchannelSender
    from ..protocol.discovery import DiscoveryEndpoint
    from ..protocol.dpop import DpopChecker
    from ..protocol.introspection_endpoint import IntrospectionEndpoint
    from ..protocol.jwks import JwksEndpoint
    from ..protocol.logout import LogoutEndpoint
    from ..protocol.pushed_requests import PushedAuthorizationEndpoint
    from ..protocol.registration import RegistrationEndpoint
    from ..protocol.resource_indicators import ResourceIndicators
    from ..protocol.revocation import RevocationEndpoint
    from ..protocol.server import OAuthServer
    from ..protocol.token_endpoint import TokenEndpoint
    from ..protocol.userinfo import UserinfoEndpoint
    from ..storage.authorizations import AuthorizationStore, ConsentStore
    from ..storage.clients import ClientStore
    from ..storage.pushed_requests import PushedRequestStore
    from ..storage.resource_servers import ResourceServerStore
    from ..storage.sessions import SessionStore
    from ..storage.signing_keys import KeyStore
    from .host import HostAdapter

__all__ = ["EXTENSION_KEY", "AppState", "Services", "get_keyset", "get_services", "get_state"]

EXTENSION_KEY = "oauth_sessions"


@dataclass(frozen=True, slots=True)
class Services:
    """The objects of one app, each under its own typed name."""

    sessions: SessionStore
    clients: ClientStore
    keys: KeyStore
    authorizations: AuthorizationStore
    consents: ConsentStore
    #: Pushed authorization requests (RFC 9126) waiting for the authorization endpoint.
    pushed_requests: PushedRequestStore
    server: OAuthServer
    host: HostAdapter
    backchannel: BackchannelSender
    introspection: TokenChecks
    #: Registered resource servers (RFC 8707) and the resource rules over them.
    resource_servers: ResourceServerStore
    resource_indicators: ResourceIndicators
    #: DPoP proof checks (RFC 9449) of the token endpoint and the provider's resources.
    dpop: DpopChecker
    #: The protocol handlers, shared by the blueprint and the WSGI app (``oauth_sessions.wsgi``).
    token_endpoint: TokenEndpoint
    introspection_endpoint: IntrospectionEndpoint
    revocation_endpoint: RevocationEndpoint
    userinfo_endpoint: UserinfoEndpoint
    jwks_endpoint: JwksEndpoint
    discovery_endpoint: DiscoveryEndpoint
    pushed_authorization_endpoint: PushedAuthorizationEndpoint
    registration_endpoint: RegistrationEndpoint
    #: RP-initiated logout, with the host's pages as Flask response values.
    logout_endpoint: LogoutEndpoint[ResponseReturnValue]


@dataclass(frozen=True, slots=True)
class AppState:
    """Everything the library keeps for one Flask app."""

    settings: Settings
    engine: Engine
    services: Services


def get_state(app: Flask | None = None) -> AppState:
    """The library's state for ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    try:
        state: AppState = target.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "oauth_sessions is not initialised on this app: call OAuthSessions(app) or "
            "OAuthSessions().init_app(app) first"
        ) from None
    return state


def get_services(app: Flask | None = None) -> Services:
    """The typed services of ``app`` (default: the current app)."""
    return get_state(app).services


def get_keyset(app: Flask | None = None) -> KeySet:
    """The current :class:`~oauth_sessions.jose.keys.KeySet` of ``app`` (default: the current app)."""
    return get_state(app).services.keys.keyset()
