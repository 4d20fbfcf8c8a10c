"""The Flask extension: ``OAuthSessions(app)`` or ``OAuthSessions().init_app(app)``.

``init_app`` validates the settings, builds the app's :class:`~oauth_sessions.flask.state.Services`
in one place (:func:`build_services`), stores them in ``app.extensions["oauth_sessions"]``
(see :mod:`oauth_sessions.flask.state`), and mounts the blueprints and the CLI.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click
from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from ..core.dpop_nonces import NonceIssuer, derive_nonce_key
from ..core.events import connect_logging
from ..core.introspection import TokenChecks
from ..core.settings import ConfigurationError, Settings, load_settings
from ..core.subjects import subject_for
from ..protocol.backchannel import BackchannelSender, connect_signals
from ..protocol.client_auth import ClientAuthenticator, PrivateKeyJwt
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
from ..storage.database import create_auth_engine, watch_pooler, with_library_schema
from ..storage.database_errors import UnsupportedDatabaseURL, explain_connect_error
from ..storage.introspection_store import StoreSessions
from ..storage.key_encryption import SecretBox, secret_box
from ..storage.migrate import check_privileges
from ..storage.pushed_requests import PushedRequestStore
from ..storage.replay_ledger import ClientAssertionLedger, DpopReplayLedger
from ..storage.resource_servers import ResourceServerStore
from ..storage.sessions import SessionStore
from ..storage.signing_keys import KeyStore
from ..storage.users import ensure_user as ensure_user_row
from .blueprints import register_blueprints
from .cli import cli
from .host import HostAdapter
from .state import EXTENSION_KEY, AppState, Services, get_state

__all__ = ["AppState", "OAuthSessions", "Services", "build_services", "ensure_user", "get_state",
           "revoke_consent"]

log = logging.getLogger(__name__)


class OAuthSessions:
    """Plug a session-backed OAuth 2.1 / OpenID Connect provider into a Flask app.

    Options given here use the settings' short names (``issuer=...``) and win over
    ``app.config["OAUTH_SESSIONS_..."]``. An ``engine`` may be passed to share the
    host's SQLAlchemy engine; otherwise one is made from the settings. ``backchannel``
    configures the delivery of logout tokens (timeouts, retries; see
    :class:`~oauth_sessions.protocol.backchannel.BackchannelSender`).
    """

    def __init__(self, app: Flask | None = None, *, engine: Engine | None = None,
                 host: HostAdapter | None = None, backchannel: BackchannelSender | None = None,
                 **options: Any) -> None:
        self._options = options
        self._engine = engine
        self._host = host
        self._backchannel = backchannel
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, host: HostAdapter | None = None) -> None:
        """Validate the settings, build the stores, mount the endpoints and the CLI on ``app``.

        Raises :class:`~oauth_sessions.core.settings.ConfigurationError` naming the key when a setting is
        bad, the database URL has a scheme no engine here serves, or Flask's ``SECRET_KEY`` is
        not set (the consent page needs it), and
        :class:`~oauth_sessions.storage.migrate.PrivilegeError` naming the grant and the role
        when the database role lacks a privilege on a table it uses, so a misconfigured
        deployment fails at start-up. ``host`` overrides the one given to the constructor (app
        factories). Once per app: a second call raises.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "oauth_sessions is already initialised on this app; call init_app once per app"
            )
        settings = load_settings(app.config, self._options)
        engine = self._engine
        if engine is None:
            if not settings.database_url:
                raise ConfigurationError(
                    "OAUTH_SESSIONS_DATABASE_URL (or SQLALCHEMY_DATABASE_URI) is required: "
                    "the SQLAlchemy URL of the database holding the auth schema"
                )
            try:
                engine = create_auth_engine(settings.database_url, pooler=settings.database_pooler,
                                            schema=settings.database_schema)
            except UnsupportedDatabaseURL as exc:
                raise ConfigurationError(f"OAUTH_SESSIONS_DATABASE_URL: {exc}") from None
        else:
            watch_pooler(engine, settings.database_pooler)  # no-op if made by create_auth_engine
            engine = with_library_schema(engine, settings.database_schema)
        if not app.secret_key:
            # The consent page and RP-initiated logout sign their CSRF tickets with it: without
            # it the app would serve, then fail at the consent step of every authorization.
            raise ConfigurationError(
                "SECRET_KEY is not set: the consent page signs its CSRF ticket with it; set "
                "app.config['SECRET_KEY'] before OAuthSessions(app) to a random value kept "
                "secret, e.g. the output of: "
                "python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        try:
            check_privileges(engine)  # PrivilegeError names the grant and the role
        except DBAPIError as exc:  # unreachable now: requests answer 503 until it is back
            # Under a CLI command (flask oauth-sessions ...) the command reports the database
            # itself, in one line with the fix; a second line here would only repeat it.
            level = logging.INFO if click.get_current_context(silent=True) else logging.WARNING
            log.log(level, "start-up privilege check skipped: %s",
                    explain_connect_error(exc, engine.url) or type(exc).__name__)
        services = build_services(app, settings, engine, host or self._host or HostAdapter(),
                                  self._backchannel or BackchannelSender())
        if settings.pairwise_salt is None and services.clients.has_pairwise_clients():
            raise ConfigurationError(
                "clients with pairwise subject identifiers exist, but "
                "OAUTH_SESSIONS_PAIRWISE_SALT is not set: set it to the value they were "
                "registered with (a new one would change every pairwise sub)")
        state = AppState(settings=settings, engine=engine, services=services)
        # Back-channel logout (OIDC Back-Channel Logout 1.0) and the event log lines: both
        # listen to the session signals of every app and find this app's parts by the sender.
        connect_signals()
        connect_logging()
        app.extensions[EXTENSION_KEY] = state
        register_blueprints(app, state)

        if "oauth-sessions" not in app.cli.commands:
            app.cli.add_command(cli)


def build_services(app: Flask, settings: Settings, engine: Engine, host: HostAdapter,
                   backchannel: BackchannelSender) -> Services:
    """The per-app objects, built once by ``init_app``."""
    box: SecretBox = secret_box(settings)
    sessions = SessionStore(engine, settings, box, sender=app)
    clients = ClientStore(engine, cache_seconds=settings.client_cache_seconds, sender=app,
                          sessions=sessions)
    # Old keys stay published for the longest token life plus two reload periods, so a token
    # signed by a worker that has not yet seen a rotation still verifies everywhere.
    grace = timedelta(seconds=max(settings.access_token_lifetime, settings.id_token_lifetime)
                      + 2 * settings.signing_key_reload_seconds)
    keys = KeyStore(engine, alg=settings.signing_alg, publish_grace=grace, box=box,
                    id_token_alg=settings.id_token_signing_alg,
                    reload_seconds=settings.signing_key_reload_seconds)
    # ``username`` in active introspection answers comes from the host adapter's optional
    # ``username_for(user_id) -> str | None`` method (it costs the host a lookup: opt-in).
    username = getattr(host, "username_for", None)
    resource_servers = ResourceServerStore(engine, cache_seconds=settings.client_cache_seconds)
    introspection = TokenChecks(
        keyset=keys.keyset,
        reload_keyset=lambda kid: keys.keyset(unknown_kid=kid),
        sessions=StoreSessions(sessions),
        settings=settings,
        audience=settings.issuer,
        username=username if callable(username) else None,
        resource_min_aal=resource_servers.min_aal,
    )
    # One client authentication for every endpoint; a private_key_jwt assertion may name the
    # issuer or the endpoint it is sent to.
    base = settings.endpoint_url("")
    resource_indicators = ResourceIndicators(resource_servers, settings.issuer)
    authenticator = ClientAuthenticator(clients, PrivateKeyJwt(ClientAssertionLedger(engine), lambda: (
        settings.issuer, base + "/token", base + "/revoke", base + "/introspect", base + "/par")),
        resource_servers=resource_servers)
    authorizations = AuthorizationStore(engine, code_lifetime=settings.authorization_code_lifetime)
    pushed_requests = PushedRequestStore(engine, lifetime=settings.pushed_request_lifetime)
    dpop = _dpop_checker(app, settings, engine)
    server = OAuthServer(clients=clients, authenticator=authenticator, sessions=sessions,
                         authorizations=authorizations, keys=keys, settings=settings, dpop=dpop,
                         resource_indicators=resource_indicators, host_claims=host.userinfo)
    return Services(
        sessions=sessions,
        clients=clients,
        keys=keys,
        authorizations=authorizations,
        consents=ConsentStore(engine),
        pushed_requests=pushed_requests,
        server=server,
        host=host,
        backchannel=backchannel,
        introspection=introspection,
        resource_servers=resource_servers,
        resource_indicators=resource_indicators,
        dpop=dpop,
        token_endpoint=TokenEndpoint(server),
        introspection_endpoint=IntrospectionEndpoint(authenticator, introspection, settings.issuer),
        revocation_endpoint=RevocationEndpoint(authenticator, introspection, sessions),
        userinfo_endpoint=UserinfoEndpoint(introspection, host.userinfo, settings.issuer,
                                           subject=_client_subject(clients, settings),
                                           signing_alg=_userinfo_alg(clients, keys),
                                           dpop=dpop, url=base + "/userinfo"),
        jwks_endpoint=JwksEndpoint(keys),
        discovery_endpoint=DiscoveryEndpoint(settings, keys, host.claims_supported),
        pushed_authorization_endpoint=PushedAuthorizationEndpoint(
            authenticator, clients, pushed_requests, settings, resource_indicators, dpop),
        registration_endpoint=RegistrationEndpoint(settings, clients, keys),
        logout_endpoint=LogoutEndpoint(settings=settings, keys=keys, clients=clients,
                                       sessions=sessions, host=host,
                                       secret_key=lambda: app.secret_key),
    )


def _dpop_checker(app: Flask, settings: Settings, engine: Engine) -> DpopChecker:
    """DPoP proof checks (RFC 9449) with nonces keyed from ``DPOP_NONCE_SECRET`` or, unset, the
    app's ``SECRET_KEY`` (checked above): the same key on every worker, nothing stored."""
    secret = settings.dpop_nonce_secret or app.secret_key
    nonces = NonceIssuer(derive_nonce_key(secret), settings.dpop_nonce_lifetime) if secret else None
    return DpopChecker(DpopReplayLedger(engine), iat_window=settings.dpop_iat_window,
                       nonces=nonces, nonce_required=settings.dpop_nonce_required)


def _client_subject(clients: ClientStore, settings: Settings) -> Callable[[uuid.UUID, str], str]:
    """The ``sub`` a client sees for a user: pairwise for a pairwise client (OIDC Core 8)."""
    def subject(user_id: uuid.UUID, client_id: str) -> str:
        client = clients.get(client_id)
        sector = client.sector_identifier if client is not None else None
        return subject_for(user_id, sector, settings.pairwise_salt)
    return subject


def _userinfo_alg(clients: ClientStore, keys: KeyStore) -> Callable[[str], str | None]:
    """The alg of a client's signed UserInfo answers (OIDC Core 5.3.2), ``None`` for JSON.

    A registered alg the provider no longer holds a key of falls back to plain JSON with a
    warning (the answer must not fail for a setting the operator changed later)."""
    def alg(client_id: str) -> str | None:
        client = clients.get(client_id)
        chosen = client.userinfo_signed_response_alg if client is not None else None
        if chosen is None or chosen in keys.id_token_algs:
            return chosen
        log.warning("client %s registered userinfo_signed_response_alg=%s but the provider "
                    "holds no %s key; its UserInfo answers are plain JSON", client_id, chosen,
                    chosen)
        return None
    return alg


def revoke_consent(user_id: uuid.UUID, client_id: uuid.UUID, app: Flask | None = None) -> int:
    """Forget what ``user_id`` granted ``client_id`` and end their sessions with it.

    Returns the number of sessions ended. The next authorization asks for consent again.
    """
    services = get_state(app).services
    services.consents.revoke(user_id, client_id)
    ended: int = services.sessions.revoke_user_client(user_id, client_id, reason="consent_revoked")
    return ended


def ensure_user(user_id: uuid.UUID, *, email: str | None = None, app: Flask | None = None) -> bool:
    """Make sure ``auth.users`` has ``user_id``, so sessions can reference it; True when a row
    was created. Call it when a person signs in: it is idempotent, and two workers signing the
    same person in at once both succeed (:func:`oauth_sessions.storage.users.ensure_user` on the
    engine of ``app``, default the current app)."""
    return ensure_user_row(get_state(app).engine, user_id, email=email)
