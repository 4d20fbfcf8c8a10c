"""OAuth clients: ``auth.oauth_clients`` rows plus the library's settings, secret hashing, and
the Authlib wrapper.

One client is two rows: Supabase Auth's ``auth.oauth_clients`` row, written in Supabase's own
encodings so that Supabase Auth can read every client the library registers (comma-separated
``redirect_uris`` and ``grant_types``, Supabase's enums, its CHECK limits checked first with a
clear ``ValueError``), and an ``oauth_client_settings`` row in the library's schema for what
Supabase has no column for (allowed scope, min aal, max session length, introspection right,
verified, JWKS, logout URIs, registration access token hash). Both are read in one SELECT (a
LEFT JOIN): a client Supabase Auth registered has no settings row and gets
:data:`SUPABASE_CLIENT_SCOPES` and the other defaults.

``private_key_jwt`` cannot be written in Supabase's ``token_endpoint_auth_method`` (its CHECK
allows ``client_secret_basic``, ``client_secret_post`` and ``none``). Such a client is stored
in ``auth`` as a *confidential* ``client_secret_basic`` client whose ``client_secret_hash`` no
secret can match (:data:`UNUSABLE_SECRET_PREFIX` + 256 random bits, not base64url), so Supabase
Auth never treats it as public and never accepts a secret for it; the real method is in the
settings row, and this library authenticates it only by its signed assertions.

Client secrets are generated here (``secrets.token_urlsafe(32)``: 256 random bits), so they
need no slow password hash: a SHA-256 digest is preimage-resistant far beyond any guessing
budget, and it keeps client authentication at microseconds instead of the 30-100 ms of
argon2/bcrypt on the two hottest endpoints (token and introspection). The stored form is
Supabase Auth's: unpadded base64url of SHA-256(secret); comparison is constant-time
(``hmac.compare_digest``). The library's earlier form ``sha256$<hex>`` still verifies (revision
0007 re-encodes every stored one, since both hold the same digest, so none should remain).

Client records may be cached per worker for ``CLIENT_CACHE_SECONDS`` (default 5): a stale
client record is harmless for that long: deleting a client (a soft delete, ``deleted_at``, as
Supabase Auth does) ends its sessions in the same transaction, and every session read (never
cached) ignores the sessions of a soft-deleted client, even when Supabase Auth did the delete.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin
from sqlalchemy import Connection, Engine, Table, delete, exists, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..core import signals
from ..core.client_rules import (
    check_client_name,
    check_client_scope,
    check_redirect_uris,
    check_uri_length,
    name_is_taken,
)
from ..core.policy import is_valid_scope_token, join_scope, parse_scope
from ..core.types import Aal
from ..core.uris import (
    is_loopback_http,
    redirect_uri_matches,
    validate_backchannel_logout_uri,
)
from ..core.uris import validate_redirect_uri as validate_redirect_uri
from ..jose.client_jwks import parse_client_jwks
from ..jose.keys import SUPPORTED_ALGS
from .models import OAuthClient, OAuthClientSettings, Session

if TYPE_CHECKING:
    from .sessions import SessionStore

__all__ = [
    "AUTH_METHODS",
    "ClientInfo",
    "ClientStore",
    "OAuthClientWrapper",
    "check_id_token_alg",
    "generate_client_secret",
    "hash_client_secret",
    "parse_client_id",
    "sector_of",
    "verify_client_secret",
]

_O_AUTH_CLIENT = cast(Table, OAuthClient.__table__)
_SETTINGS = cast(Table, OAuthClientSettings.__table__)
_S = cast(Table, Session.__table__)

#: The library's earlier stored form of a secret hash (still verified).
SECRET_PREFIX: Final = "sha256$"
#: Starts the ``client_secret_hash`` of a ``private_key_jwt`` client: never base64url, so no
#: secret's hash equals it, in this library or in Supabase Auth.
UNUSABLE_SECRET_PREFIX: Final = "!private_key_jwt:"
#: What a client registered by Supabase Auth (no settings row) may ask for.
SUPABASE_CLIENT_SCOPES: Final = ("openid", "email", "profile", "phone", "offline_access")
#: Methods Supabase's ``token_endpoint_auth_method`` CHECK accepts.
SUPABASE_AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post", "none")
#: Settings columns, as :meth:`ClientStore.update_metadata` keys.
SETTINGS_COLUMNS: Final = frozenset(
    c.name for c in _SETTINGS.columns if c.name not in ("client_id", "token_endpoint_auth_method"))
#: RFC 7591 section 2 names; ``none`` is for public clients (RFC 6749 section 2.1) and
#: ``private_key_jwt`` (OIDC Core section 9) for clients that registered public keys.
AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
SECRET_METHODS: Final = ("client_secret_basic", "client_secret_post")
GRANT_TYPES: Final = ("authorization_code", "refresh_token")


def generate_client_secret() -> str:
    """A new client secret: 43 URL-safe characters, 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def hash_client_secret(secret: str) -> str:
    """The stored form of a generated secret, as Supabase Auth writes it: unpadded base64url of
    SHA-256(secret) (fast on purpose, see the module docstring)."""
    digest = hashlib.sha256(secret.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def unusable_secret_hash() -> str:
    """A ``client_secret_hash`` that no secret matches (for ``private_key_jwt`` clients)."""
    return UNUSABLE_SECRET_PREFIX + secrets.token_urlsafe(32)


def verify_client_secret(secret: str, stored: str | None) -> bool:
    """Constant-time check of ``secret`` against a stored hash.

    Two stored forms verify: Supabase Auth's unpadded base64url of SHA-256(secret) (what the
    library writes), and the library's earlier ``sha256$<hex>``. A hash of a
    ``private_key_jwt`` client (:data:`UNUSABLE_SECRET_PREFIX`) never does.
    """
    if not stored or not isinstance(stored, str) or not isinstance(secret, str):
        return False
    try:
        digest = hashlib.sha256(secret.encode("utf-8")).digest()
    except UnicodeEncodeError:
        return False
    if stored.startswith(SECRET_PREFIX):
        candidate = SECRET_PREFIX + digest.hex()
    else:
        candidate = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return hmac.compare_digest(candidate.encode("utf-8"), stored.encode("utf-8"))


def parse_client_id(value: object) -> uuid.UUID | None:
    """A client id is the canonical text of the row's UUID; anything else names no client."""
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value else None


def _split(text: str | None, sep: str = " ") -> tuple[str, ...]:
    return tuple(v for v in (text or "").split(sep) if v)


def _list(text: str | None) -> tuple[str, ...]:
    """A stored list: comma-separated as Supabase Auth writes it (spaces and line breaks, the
    library's earlier separators, read too)."""
    return _split((text or "").replace("\n", ",").replace(" ", ","), ",")


def _encode_list(values: Iterable[str]) -> str:
    """Supabase Auth's encoding of a list (``redirect_uris``, ``grant_types``)."""
    return ",".join(values)


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """An immutable snapshot of one ``auth.oauth_clients`` row."""

    id: uuid.UUID
    name: str | None
    type: str  # "public" | "confidential"
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    token_endpoint_auth_method: str
    min_aal: Aal | None = None
    max_session_seconds: int | None = None
    can_introspect: bool = False
    backchannel_logout_uri: str | None = None
    post_logout_redirect_uris: tuple[str, ...] = ()
    #: OIDC Back-Channel Logout 1.0 section 2.2; logout tokens always carry ``sid`` anyway.
    backchannel_logout_session_required: bool = True
    registration_type: str = "manual"
    client_uri: str | None = None
    logo_uri: str | None = None
    created_at: datetime | None = None
    secret_hash: str | None = field(default=None, repr=False)
    registration_access_token_hash: str | None = field(default=None, repr=False)
    #: Public JWK Set (JSON text) of a ``private_key_jwt`` client.
    jwks: str | None = field(default=None, repr=False)
    #: An operator vetted this client (revision 0005): only then are errors redirected to it.
    verified: bool = False
    #: OIDC Dynamic Client Registration 1.0 section 2 (revision 0007). ``None``: the provider's
    #: ``OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG`` (operator-made clients and rows made before 0007).
    id_token_signed_response_alg: str | None = None
    #: OIDC Core section 8 (revision 0008): the sector of a pairwise client (the host of its
    #: redirect URIs); ``None`` for a public-subject client.
    sector_identifier: str | None = None
    #: RFC 9449 section 5.2 (revision 0010): every token request of the client carries DPoP.
    dpop_bound_access_tokens: bool = False
    #: RFC 9126 section 6 (revision 0011): the authorization endpoint accepts only pushed
    #: requests (a ``request_uri``) from this client.
    require_pushed_authorization_requests: bool = False
    #: OIDC Dynamic Client Registration 1.0 section 2 (revision 0013): UserInfo answers this
    #: client with a JWT signed with this alg; ``None``: plain JSON.
    userinfo_signed_response_alg: str | None = None

    @property
    def subject_type(self) -> str:
        return "public" if self.sector_identifier is None else "pairwise"

    @property
    def client_id(self) -> str:
        return str(self.id)

    @property
    def is_public(self) -> bool:
        return self.type == "public"

    def may_refresh(self) -> bool:
        return "refresh_token" in self.grant_types

    def accepts_redirect_uri(self, uri: str) -> bool:
        """Exact match with a registered redirect URI; for a public (native) client, a loopback
        IP redirect URI matches on any port (RFC 8252 section 7.3)."""
        return any(redirect_uri_matches(registered, uri, any_loopback_port=self.is_public)
                   for registered in self.redirect_uris)

    def as_metadata(self) -> dict[str, Any]:
        """RFC 7591 section 2 client metadata (no secrets)."""
        meta: dict[str, Any] = {
            "client_id": self.client_id,
            "client_name": self.name,
            "redirect_uris": list(self.redirect_uris),
            "grant_types": list(self.grant_types),
            "response_types": ["code"],
            "scope": " ".join(self.scopes),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }
        if self.created_at is not None:
            meta["client_id_issued_at"] = int(self.created_at.timestamp())
        for key, value in (("client_uri", self.client_uri), ("logo_uri", self.logo_uri)):
            if value:
                meta[key] = value
        if self.post_logout_redirect_uris:
            meta["post_logout_redirect_uris"] = list(self.post_logout_redirect_uris)
        if self.backchannel_logout_uri:
            meta["backchannel_logout_uri"] = self.backchannel_logout_uri
            meta["backchannel_logout_session_required"] = self.backchannel_logout_session_required
        if self.jwks:
            meta["jwks"] = json.loads(self.jwks)
        if self.id_token_signed_response_alg:
            meta["id_token_signed_response_alg"] = self.id_token_signed_response_alg
        if self.sector_identifier is not None:
            meta["subject_type"] = "pairwise"
        if self.dpop_bound_access_tokens:
            meta["dpop_bound_access_tokens"] = True
        if self.require_pushed_authorization_requests:
            meta["require_pushed_authorization_requests"] = True
        if self.userinfo_signed_response_alg:
            meta["userinfo_signed_response_alg"] = self.userinfo_signed_response_alg
        return {k: v for k, v in meta.items() if v is not None}


def _info(row: Any) -> ClientInfo:
    """A client from one row of :data:`_CLIENT_READ` (settings columns prefixed ``s_``; all
    ``None`` for a client without settings, one Supabase Auth registered)."""
    has_settings = row.s_client_id is not None
    method = row.s_token_endpoint_auth_method or row.token_endpoint_auth_method
    return ClientInfo(
        id=row.id,
        name=row.client_name,
        type=row.client_type,
        redirect_uris=_list(row.redirect_uris),
        grant_types=_list(row.grant_types),
        scopes=_split(row.s_scope) if has_settings else SUPABASE_CLIENT_SCOPES,
        token_endpoint_auth_method=method,
        min_aal=Aal(row.s_min_aal) if row.s_min_aal else None,
        max_session_seconds=row.s_max_session_seconds,
        can_introspect=bool(row.s_can_introspect),
        backchannel_logout_uri=row.s_backchannel_logout_uri,
        post_logout_redirect_uris=_list(row.s_post_logout_redirect_uris),
        backchannel_logout_session_required=(bool(row.s_backchannel_logout_session_required)
                                             if has_settings else True),
        registration_type=row.registration_type,
        client_uri=row.client_uri,
        logo_uri=row.logo_uri,
        created_at=row.created_at,
        secret_hash=row.client_secret_hash if method in SECRET_METHODS else None,
        registration_access_token_hash=row.s_registration_access_token_hash,
        jwks=row.s_jwks,
        verified=bool(row.s_verified),
        id_token_signed_response_alg=row.s_id_token_signed_response_alg,
        sector_identifier=row.s_sector_identifier,
        dpop_bound_access_tokens=bool(row.s_dpop_bound_access_tokens),
        require_pushed_authorization_requests=bool(row.s_require_pushed_authorization_requests),
        userinfo_signed_response_alg=row.s_userinfo_signed_response_alg,
    )


#: Every client read: Supabase's row and the library's settings, in one statement.
_CLIENT_READ = select(
    _O_AUTH_CLIENT, *(c.label(f"s_{c.name}") for c in _SETTINGS.columns)
).select_from(_O_AUTH_CLIENT.outerjoin(_SETTINGS, _SETTINGS.c.client_id == _O_AUTH_CLIENT.c.id))


def _settings_values(values: dict[str, Any]) -> dict[str, Any]:
    """Pop the settings keys out of ``values`` (the rest are ``auth.oauth_clients`` columns)."""
    return {k: values.pop(k) for k in list(values) if k in SETTINGS_COLUMNS}


def _write_settings(conn: Connection, client_id: uuid.UUID, values: dict[str, Any]) -> None:
    """Update the client's settings row, creating it first for a client Supabase Auth made
    (with its defaults made explicit: :data:`SUPABASE_CLIENT_SCOPES`)."""
    if not values:
        return
    done = conn.execute(update(_SETTINGS).where(_SETTINGS.c.client_id == client_id)
                        .values(**values)).rowcount
    if not done:
        conn.execute(insert(_SETTINGS).values(
            **{"client_id": client_id, "scope": join_scope(SUPABASE_CLIENT_SCOPES), **values}))


def _auth_method_values(method: str) -> dict[str, Any]:
    """What a client's ``token_endpoint_auth_method`` becomes in the two tables."""
    if method in SUPABASE_AUTH_METHODS:
        return {"token_endpoint_auth_method": method}
    return {"token_endpoint_auth_method": "client_secret_basic",
            "client_secret_hash": unusable_secret_hash()}


def sector_of(redirect_uris: Sequence[str]) -> str:
    """The sector identifier of a pairwise client: the one host of all its redirect URIs
    (OIDC Core section 8.1). ``ValueError`` when they span several hosts: a
    ``sector_identifier_uri`` would be needed, and this server fetches none."""
    hosts = {(urlsplit(uri).hostname or "").lower() for uri in redirect_uris}
    if len(hosts) != 1 or "" in hosts:
        raise ValueError("a pairwise client's redirect URIs must all be on one host (its sector "
                         "identifier); sector_identifier_uri is not supported")
    return hosts.pop()


def check_id_token_alg(alg: str | None) -> str | None:
    """``alg`` if it is a JWS alg this library can sign ID tokens with, ``ValueError`` if not.

    Whether the provider holds a key of that alg is the caller's check (registration and the
    CLI ask the key store), since the store does not know the app's signing settings.
    """
    if alg is not None and alg not in SUPPORTED_ALGS:
        raise ValueError(f"id_token_signed_response_alg must be one of {', '.join(SUPPORTED_ALGS)}")
    return alg


class ClientStore:
    """Create, read, list, rotate and delete clients. Owns its transactions."""

    def __init__(self, engine: Engine, *, cache_seconds: int = 5, sender: object | None = None,
                 sessions: SessionStore | None = None,
                 allow_loopback_http: bool | None = None) -> None:
        """``allow_loopback_http``: accept ``http://127.0.0.1``-style back-channel logout URIs
        (development only, see :mod:`oauth_sessions.core.uris`). By default it follows the issuer
        of ``sessions``: on only when that issuer is itself a loopback http URL."""
        if allow_loopback_http is None:
            allow_loopback_http = sessions is not None and is_loopback_http(sessions.settings.issuer)
        self.allow_loopback_http = allow_loopback_http
        self._engine = engine
        self._sender = sender
        self._sessions = sessions
        # Single-statement reads need no BEGIN/ROLLBACK round trips around them.
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._cache_seconds = cache_seconds
        self._cache: dict[uuid.UUID, tuple[float, ClientInfo | None]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writes

    def create(
        self,
        *,
        name: str,
        redirect_uris: Sequence[str],
        scopes: str | Iterable[str] = "openid",
        public: bool = False,
        grant_types: Sequence[str] | None = None,
        token_endpoint_auth_method: str | None = None,
        can_introspect: bool = False,
        min_aal: Aal | str | None = None,
        max_session_seconds: int | None = None,
        registration_type: str = "manual",
        client_uri: str | None = None,
        logo_uri: str | None = None,
        post_logout_redirect_uris: Sequence[str] = (),
        backchannel_logout_uri: str | None = None,
        backchannel_logout_session_required: bool = True,
        registration_access_token: str | None = None,
        jwks: Any = None,
        verified: bool = False,
        id_token_signed_response_alg: str | None = None,
        pairwise: bool = False,
        dpop_bound_access_tokens: bool = False,
        require_pushed_authorization_requests: bool = False,
        userinfo_signed_response_alg: str | None = None,
        now: datetime | None = None,
    ) -> tuple[ClientInfo, str | None]:
        """Register a client; returns its record and the secret (``None`` for public clients).

        The secret is shown once: only its hash is stored. ``verified`` says an operator vetted
        it (the CLI and seed code); anything a stranger can register must leave it ``False``.
        Every rule of :mod:`oauth_sessions.core.client_rules` applies (``ValueError`` otherwise).
        """
        if not redirect_uris:
            raise ValueError("a client needs at least one redirect URI")
        name = check_client_name(name)
        if not verified and self.name_is_reserved(name):
            raise ValueError("that name belongs to a verified app; choose another")
        uris = check_redirect_uris(list(redirect_uris))
        scope_list = parse_scope(scopes)
        if not all(is_valid_scope_token(s) for s in scope_list):
            raise ValueError("scopes must be RFC 6749 section 3.3 scope tokens")
        check_client_scope(join_scope(scope_list))
        grants = tuple(grant_types) if grant_types else GRANT_TYPES
        if not set(grants) <= set(GRANT_TYPES):
            raise ValueError(f"grant types must be among {', '.join(GRANT_TYPES)}")
        method = token_endpoint_auth_method or ("none" if public else "client_secret_basic")
        if method not in AUTH_METHODS:
            raise ValueError(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
        if public != (method == "none"):
            raise ValueError("public clients authenticate with 'none', confidential ones never do")
        if public and can_introspect:
            raise ValueError("a public client cannot be allowed to introspect (it has no secret)")
        if (method == "private_key_jwt") != (jwks is not None):
            raise ValueError("private_key_jwt clients register a jwks, and only they do")
        jwks_text = None
        if jwks is not None:
            jwks_text = parse_client_jwks(jwks)
        if max_session_seconds is not None and max_session_seconds <= 0:
            raise ValueError("max_session_seconds must be positive")
        check_id_token_alg(id_token_signed_response_alg)
        check_id_token_alg(userinfo_signed_response_alg)
        sector = sector_of(uris) if pairwise else None
        post_logout_redirect_uris = check_redirect_uris(list(post_logout_redirect_uris),
                                                        kind="post-logout redirect URI")
        if backchannel_logout_uri is not None:  # fetched by this server: the SSRF rules apply
            validate_backchannel_logout_uri(backchannel_logout_uri,
                                            allow_loopback_http=self.allow_loopback_http)
        check_uri_length(client_uri, what="client_uri")
        check_uri_length(logo_uri, what="logo_uri")
        if backchannel_logout_uri is not None:
            check_uri_length(backchannel_logout_uri, what="backchannel_logout_uri")
        now = now or datetime.now(UTC)
        secret = generate_client_secret() if method in SECRET_METHODS else None
        client_id = uuid.uuid4()
        client_values: dict[str, Any] = {
            "id": client_id,
            "client_secret_hash": hash_client_secret(secret) if secret else None,
            "registration_type": registration_type,
            "redirect_uris": _encode_list(uris),
            "grant_types": _encode_list(grants),
            "client_name": name,
            "client_uri": client_uri,
            "logo_uri": logo_uri,
            "created_at": now,
            "updated_at": now,
            "client_type": "public" if public else "confidential",
            **_auth_method_values(method),
        }
        settings_values: dict[str, Any] = {
            "client_id": client_id,
            "scope": join_scope(scope_list),
            "min_aal": Aal(min_aal) if min_aal else None,
            "max_session_seconds": max_session_seconds,
            "can_introspect": can_introspect,
            "verified": verified,
            "token_endpoint_auth_method": None if method in SUPABASE_AUTH_METHODS else method,
            "jwks": jwks_text,
            "post_logout_redirect_uris": _encode_list(post_logout_redirect_uris) or None,
            "backchannel_logout_uri": backchannel_logout_uri,
            "backchannel_logout_session_required": backchannel_logout_session_required,
            "registration_access_token_hash": (
                hash_client_secret(registration_access_token) if registration_access_token
                else None),
            "id_token_signed_response_alg": id_token_signed_response_alg,
            "sector_identifier": sector,
            "dpop_bound_access_tokens": bool(dpop_bound_access_tokens),
            "require_pushed_authorization_requests": require_pushed_authorization_requests,
            "userinfo_signed_response_alg": userinfo_signed_response_alg,
        }
        with self._engine.begin() as conn:
            conn.execute(insert(_O_AUTH_CLIENT).values(**client_values))
            conn.execute(insert(_SETTINGS).values(**settings_values))
        info = self.get(client_id, fresh=True)
        assert info is not None
        return info, secret

    def rotate_secret(self, client_id: uuid.UUID, *, now: datetime | None = None) -> str | None:
        """Replace a client's secret; the old one stops working at once here (other workers
        within ``CLIENT_CACHE_SECONDS``). ``None``: no client that authenticates with a secret."""
        secret = generate_client_secret()
        table = _O_AUTH_CLIENT
        with self._engine.begin() as conn:
            result = conn.execute(
                update(table)
                .where(table.c.id == client_id, table.c.deleted_at.is_(None),
                       table.c.token_endpoint_auth_method.in_(SECRET_METHODS),
                       ~exists().where(_SETTINGS.c.client_id == table.c.id,
                                       _SETTINGS.c.token_endpoint_auth_method.is_not(None)))
                .values(client_secret_hash=hash_client_secret(secret),
                        updated_at=now or datetime.now(UTC))
            )
        self._forget(client_id)
        return secret if result.rowcount else None

    def update_metadata(self, client_id: uuid.UUID, **values: Any) -> bool:
        """Change a client (RFC 7592 updates). Keys are column names of ``auth.oauth_clients``
        or of the settings row (:data:`SETTINGS_COLUMNS`); list values (``redirect_uris``,
        ``post_logout_redirect_uris``, ``grant_types``) may be sequences or text separated by
        line breaks, spaces or commas, and are stored comma-separated.

        URI columns pass the same checks as in :meth:`create` (``ValueError`` otherwise), so an
        update cannot smuggle in what registration would refuse. Both rows change in one
        transaction.
        """
        for key in ("redirect_uris", "post_logout_redirect_uris", "grant_types"):
            if key in values and values[key] is not None:
                items = values[key]
                values[key] = _encode_list(_list(items) if isinstance(items, str) else items)
        check_redirect_uris(_list(values.get("redirect_uris")))
        check_redirect_uris(_list(values.get("post_logout_redirect_uris")),
                            kind="post-logout redirect URI")
        if values.get("post_logout_redirect_uris") == "":
            values["post_logout_redirect_uris"] = None
        for key in ("client_uri", "logo_uri", "backchannel_logout_uri"):
            check_uri_length(values.get(key), what=key)
        if "client_name" in values:
            values["client_name"] = check_client_name(values["client_name"])
            current = self.get(client_id, fresh=True)
            if (current is not None and not current.verified
                    and self.name_is_reserved(values["client_name"], except_id=client_id)):
                raise ValueError("that name belongs to a verified app; choose another")
        if "scope" in values:
            check_client_scope(values["scope"])
        check_id_token_alg(values.get("id_token_signed_response_alg"))
        check_id_token_alg(values.get("userinfo_signed_response_alg"))
        if "redirect_uris" in values:
            self._keep_sector(client_id, _split(values["redirect_uris"], "\n"))
        if values.get("backchannel_logout_uri") is not None:
            validate_backchannel_logout_uri(values["backchannel_logout_uri"],
                                            allow_loopback_http=self.allow_loopback_http)
        settings = _settings_values(values)
        if "token_endpoint_auth_method" in values:
            method = values.pop("token_endpoint_auth_method")
            if method not in AUTH_METHODS:
                raise ValueError(
                    f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
            settings["token_endpoint_auth_method"] = (None if method in SUPABASE_AUTH_METHODS
                                                      else method)
            values.update(_auth_method_values(method))
            if method in SUPABASE_AUTH_METHODS:
                values.pop("client_secret_hash", None)
        table = _O_AUTH_CLIENT
        values.setdefault("updated_at", datetime.now(UTC))
        with self._engine.begin() as conn:
            result = conn.execute(update(table).where(table.c.id == client_id,
                                                      table.c.deleted_at.is_(None)).values(**values))
            if result.rowcount:
                _write_settings(conn, client_id, settings)
        self._forget(client_id)
        return bool(result.rowcount)

    def _keep_sector(self, client_id: uuid.UUID, redirect_uris: Sequence[str]) -> None:
        """A pairwise client's new redirect URIs stay in its sector: a new host would change
        every one of its users' ``sub`` (``ValueError``)."""
        current = self.get(client_id, fresh=True)
        if current is None or current.sector_identifier is None:
            return
        try:
            same = sector_of(redirect_uris) == current.sector_identifier
        except ValueError:
            same = False
        if not same:
            raise ValueError("a pairwise client's redirect URIs must stay on "
                             f"{current.sector_identifier}, its sector identifier")

    def replace_registration_token(self, client_id: uuid.UUID, old_hash: str | None,
                                   token: str) -> bool:
        """Store the hash of a new RFC 7592 registration access token in place of ``old_hash``
        (compare-and-swap: ``False`` if the stored hash is no longer ``old_hash``)."""
        if old_hash is None:
            return False
        settings = _SETTINGS
        live = exists().where(_O_AUTH_CLIENT.c.id == settings.c.client_id,
                              _O_AUTH_CLIENT.c.deleted_at.is_(None))
        with self._engine.begin() as conn:
            result = conn.execute(
                update(settings)
                .where(settings.c.client_id == client_id, live,
                       settings.c.registration_access_token_hash == old_hash)
                .values(registration_access_token_hash=hash_client_secret(token)))
        self._forget(client_id)
        return bool(result.rowcount)

    def set_verified(self, client_id: uuid.UUID, verified: bool = True) -> bool:
        """Record that an operator vetted (or no longer vouches for) a client."""
        return self.update_metadata(client_id, verified=verified)

    def name_is_reserved(self, name: str, *, except_id: uuid.UUID | None = None) -> bool:
        """Whether ``name`` reads like a verified client's name (:func:`name_is_taken`)."""
        table = _O_AUTH_CLIENT
        with self._reads.connect() as conn:
            names = conn.execute(
                select(table.c.client_name)
                .select_from(table.join(_SETTINGS, _SETTINGS.c.client_id == table.c.id))
                .where(_SETTINGS.c.verified.is_(True), table.c.deleted_at.is_(None),
                       table.c.id != (except_id or uuid.UUID(int=0)))
            ).scalars().all()
        return name_is_taken(name, (n for n in names if n))

    def delete(self, client_id: uuid.UUID, *, now: datetime | None = None) -> bool:
        """Delete a client as Supabase Auth does: set ``deleted_at``; its sessions end with it.

        One transaction: the row is soft-deleted (it stays, so Supabase Auth's own records
        that name it keep their meaning) and every session of the client is deleted (one
        ``session_revoked`` signal each, ``reason="client_deleted"``, sent after the commit).
        From then on the client is unknown to every endpoint (:meth:`get`), and a session a
        racing request might still create is refused at its first use: every session read
        ignores sessions of soft-deleted clients. ``False`` when there was no live client.
        """
        table = _O_AUTH_CLIENT
        now = now or datetime.now(UTC)
        with self._engine.begin() as conn:
            result = conn.execute(update(table)
                                  .where(table.c.id == client_id, table.c.deleted_at.is_(None))
                                  .values(deleted_at=now, updated_at=now))
            if result.rowcount and self._sessions is not None:
                self._sessions.revoke_client(client_id, reason="client_deleted", conn=conn)
            elif result.rowcount:
                conn.execute(delete(_S).where(_S.c.oauth_client_id == client_id))
        self._forget(client_id)
        if result.rowcount:
            signals.client_deleted.send(self._sender, client_id=client_id)
        return bool(result.rowcount)

    # ------------------------------------------------------------------ reads

    def get(self, client_id: uuid.UUID | str, *, fresh: bool = False) -> ClientInfo | None:
        """The client, or ``None``; a string that is not a canonical UUID names no client."""
        key = client_id if isinstance(client_id, uuid.UUID) else parse_client_id(client_id)
        if key is None:
            return None
        if not fresh and self._cache_seconds:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
        table = _O_AUTH_CLIENT
        with self._reads.connect() as conn:
            row = conn.execute(_CLIENT_READ.where(table.c.id == key,
                                                  table.c.deleted_at.is_(None))).first()
        info = _info(row) if row is not None else None
        if self._cache_seconds:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key] = (time.monotonic() + self._cache_seconds, info)
        return info

    def list(self) -> list[ClientInfo]:
        """Every live client (soft-deleted ones, ``deleted_at`` set, are left out)."""
        table = _O_AUTH_CLIENT
        with self._reads.connect() as conn:
            rows = conn.execute(_CLIENT_READ.where(table.c.deleted_at.is_(None))
                                .order_by(table.c.created_at, table.c.id)).all()
        return [_info(r) for r in rows]

    def has_pairwise_clients(self) -> bool:
        """Whether a live client has pairwise subjects (a start-up check: their ``sub`` needs
        the salt). ``False`` when the table is not migrated yet (``db upgrade`` comes later)."""
        try:
            with self._reads.connect() as conn:
                found = conn.execute(_CLIENT_READ.where(
                    _SETTINGS.c.sector_identifier.is_not(None),
                    _O_AUTH_CLIENT.c.deleted_at.is_(None)).limit(1)).first()
        except SQLAlchemyError:
            return False
        return found is not None

    def _forget(self, client_id: uuid.UUID) -> None:
        with self._lock:
            self._cache.pop(client_id, None)


class OAuthClientWrapper(ClientMixin):  # type: ignore[misc]
    """Authlib's view of a :class:`ClientInfo` (RFC 6749 section 2 checks)."""

    def __init__(self, info: ClientInfo) -> None:
        self.info = info

    def get_client_id(self) -> str:
        return self.info.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.info.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return join_scope(self.info.scopes)
        allowed = set(self.info.scopes)
        return join_scope(s for s in parse_scope(scope) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string match (RFC 9700 section 4.1.3), loopback ports aside (RFC 8252 7.3)."""
        return self.info.accepts_redirect_uri(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_client_secret(client_secret, self.info.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """The registered method and only it, at every endpoint (RFC 7591 section 2)."""
        return method == self.info.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.info.grant_types
