"""Typed, validated settings read from ``app.config`` under the ``OAUTH_SESSIONS_`` prefix.

Every setting is declared once in :data:`SETTINGS` with its type, default, limits
and a one-line meaning; :func:`load_settings` reads them at start-up and raises
:class:`ConfigurationError` naming the exact key and what it accepts, so a bad
deployment fails before it serves a request instead of on the first token.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .policy import STANDARD_SCOPES, is_valid_scope_token, join_scope, parse_scope
from .subjects import MIN_SALT_LENGTH
from .types import Aal

PREFIX = "OAUTH_SESSIONS_"


class ConfigurationError(RuntimeError):
    """A setting is missing or has a value the library cannot use."""


def _int_range(lo: int, hi: int) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(str(value).strip())
            except ValueError:
                raise ConfigurationError(
                    f"{key} must be a whole number of seconds from {lo} to {hi}, got {value!r}"
                ) from None
        if not lo <= value <= hi:
            raise ConfigurationError(f"{key} must be from {lo} to {hi}, got {value}")
        return int(value)

    return check


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    def optional(key: str, value: Any) -> Any:
        if value is None or value == "":
            return None
        return check(key, value)

    return optional


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{key} must be true or false, got {value!r}")


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _issuer(key: str, value: Any) -> str:
    value = _string(key, value)
    # RFC 8414 section 2: https URL with no query or fragment. http is let through
    # for loopback hosts so the demo and tests can run without TLS.
    if not re.fullmatch(r"https://[^\s?#]+|http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/[^\s?#]*)?",
                        value):
        raise ConfigurationError(
            f"{key} must be an https URL without query or fragment "
            f"(http is allowed only for 127.0.0.1/localhost), got {value!r}"
        )
    return str(value).rstrip("/")


def _aal(key: str, value: Any) -> Aal:
    try:
        return Aal(str(value))
    except ValueError:
        raise ConfigurationError(f"{key} must be one of aal1, aal2, aal3, got {value!r}") from None


def _aal_map(key: str, value: Any) -> dict[str, Aal]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{key} must be a mapping of name to aal (e.g. {{'payments': 'aal2'}}), got {value!r}"
        )
    return {str(k): _aal(f"{key}[{k!r}]", v) for k, v in value.items()}


def _choice(*allowed: str) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if value not in allowed:
            raise ConfigurationError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    return check


def _schema_name(key: str, value: Any) -> str:
    value = _string(key, value)
    if (not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value) or value in ("auth", "public")
            or value.startswith("pg_")):
        raise ConfigurationError(
            f"{key} must be a lower-case SQL identifier (letters, digits, _) other than auth, "
            f"public and pg_*, got {value!r}")
    return str(value)


def _url_prefix(key: str, value: Any) -> str:
    value = _string(key, value)
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
        raise ConfigurationError(f"{key} must look like '/oauth' (no trailing slash), got {value!r}")
    return str(value)


def _scope(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be a space-separated scope string, got {value!r}")
    scopes = parse_scope(value)
    if not scopes or not all(is_valid_scope_token(s) for s in scopes):
        raise ConfigurationError(f"{key} must list RFC 6749 scope tokens separated by spaces, "
                                 f"got {value!r}")
    return join_scope(scopes)


def _salt(key: str, value: Any) -> str:
    value = _string(key, value)
    if len(value) < MIN_SALT_LENGTH:
        raise ConfigurationError(
            f"{key} must be a secret of at least {MIN_SALT_LENGTH} characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return str(value)


def _key_map(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{key} must be a mapping of key id to a base64url 32-byte key, got {type(value).__name__}"
        )
    return {str(k): str(v) for k, v in value.items()}


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    check: Callable[[str, Any], Any]
    doc: str
    required: bool = False


DAY = 86400

SETTINGS: tuple[Setting, ...] = (
    Setting("ISSUER", None, _issuer, "Issuer identifier (RFC 8414): the base URL of the provider.",
            required=True),
    Setting("DATABASE_URL", None, _optional(_string),
            "SQLAlchemy URL of the database holding the auth schema; defaults to "
            "SQLALCHEMY_DATABASE_URI."),
    Setting("DATABASE_POOLER", "auto", _choice("auto", "none", "session", "transaction"),
            "What stands between the app and PostgreSQL: auto (detect; a pooler found counts as "
            "transaction), none, session, or transaction (no server-side prepared statement "
            "outlives its transaction). Applies to the engine the library makes."),
    Setting("DATABASE_SCHEMA", "oauth_sessions", _schema_name,
            "PostgreSQL schema of the library's own tables (client settings, authorization "
            "codes, signing keys, assertion replay records, migration version); auth keeps "
            "Supabase Auth's tables only. Ignored on SQLite."),
    Setting("URL_PREFIX", "/oauth", _url_prefix, "Where the OAuth endpoints are mounted."),
    Setting("ACCESS_TOKEN_LIFETIME", 300, _int_range(30, DAY), "Seconds an access token lives."),
    Setting("ID_TOKEN_LIFETIME", 300, _int_range(30, DAY), "Seconds an ID token lives."),
    Setting("AUTHORIZATION_CODE_LIFETIME", 60, _int_range(10, 600),
            "Seconds an authorization code can be exchanged."),
    Setting("PUSHED_REQUEST_LIFETIME", 60, _int_range(10, 600),
            "Seconds a pushed authorization request (RFC 9126) waits for the authorization "
            "endpoint: its request_uri's expires_in."),
    Setting("REQUIRE_PUSHED_AUTHORIZATION_REQUESTS", False, _bool,
            "Every client must push its authorization requests (RFC 9126 section 5): the "
            "authorization endpoint then accepts only a request_uri. A client can also be "
            "required to on its own (require_pushed_authorization_requests)."),
    Setting("REFRESH_TOKEN_REUSE_INTERVAL", 10, _int_range(0, 300),
            "Seconds after a refresh during which the previous refresh token gets the same "
            "answer again instead of counting as reuse."),
    Setting("LOGOUT_HINT_MAX_AGE", DAY, _int_range(60, 30 * DAY),
            "Seconds after its issue an id_token_hint may still send the browser straight to a "
            "post_logout_redirect_uri; an older hint ends the session but the user is shown a "
            "page naming the target instead of being redirected."),
    Setting("SESSION_TIMEBOX", 30 * DAY, _optional(_int_range(60, 3650 * DAY)),
            "Hard limit of a session's life in seconds (sets not_after); None for no limit."),
    Setting("INACTIVITY_TIMEOUT", None, _optional(_int_range(60, 3650 * DAY)),
            "A session whose last refresh (or creation) is older than this many seconds ends."),
    Setting("ALWAYS_ISSUE_REFRESH_TOKEN", False, _bool,
            "Issue refresh tokens without the offline_access scope."),
    Setting("SINGLE_SESSION_PER_CLIENT", False, _bool,
            "A new authorization ends the user's earlier sessions with the same client."),
    Setting("SCOPE_MIN_AAL", {}, _aal_map,
            "Minimum aal per scope, e.g. {'payments': 'aal2'}."),
    Setting("AUDIENCE_MIN_AAL", {}, _aal_map,
            "Minimum aal per resource server (audience or introspecting client id); a "
            "registered resource server's own --min-aal applies as well (RFC 8707, "
            "docs/resource-indicators.md)."),
    Setting("SIGNING_ALG", "ES256", _choice("ES256", "EdDSA", "RS256"),
            "Algorithm of the key that signs access tokens, logout tokens and signed "
            "introspection answers."),
    Setting("ID_TOKEN_ON_REFRESH", True, _bool,
            "Return a fresh ID token from refresh_token grants when openid was granted (OIDC Core "
            "12.2 makes it optional; off saves one ID-token signature per refresh)."),
    Setting("ID_TOKEN_SIGNING_ALG", "RS256", _choice("ES256", "EdDSA", "RS256"),
            "Algorithm of the ID tokens of clients that chose none (clients made with the CLI or "
            "host code without --id-token-alg, and rows older than revision 0007). A client's own "
            "id_token_signed_response_alg wins; dynamic registration stores RS256 when the client "
            "names none. An RS256 key is kept whatever this says (OIDC Core 15.1)."),
    Setting("ENCRYPTION_KEYS", {}, _key_map,
            "Application keys {key_id: base64url 32 bytes} that encrypt session HMAC keys at rest."),
    Setting("ENCRYPTION_KEY_ID", None, _optional(_string),
            "Which of ENCRYPTION_KEYS encrypts new values."),
    Setting("SUPABASE_ENCRYPTION_KEYS", {}, _key_map,
            "Supabase Auth's database-encryption root keys {key_id: base64url 32 bytes} (its "
            "DB_ENCRYPTION_DECRYPTION_KEYS), to read session keys it stored in its aes-gcm-hkdf "
            "JSON form."),
    Setting("SUPABASE_ENCRYPTION_KEY_ID", None, _optional(_string),
            "Which of SUPABASE_ENCRYPTION_KEYS rewrap_keys() writes Supabase's form under (its "
            "DB_ENCRYPTION_ENCRYPTION_KEY_ID); None: that form is read, never rewritten."),
    Setting("DYNAMIC_REGISTRATION", False, _bool,
            "Enable RFC 7591 dynamic client registration."),
    Setting("REGISTRATION_INITIAL_ACCESS_TOKEN", None, _optional(_string),
            "If set, dynamic registration requires this bearer token."),
    Setting("SIGNING_KEY_RELOAD_SECONDS", 60, _int_range(1, 3600),
            "How long a worker trusts the signing keys it read before reading them again: a "
            "rotation made by another worker or host is published and used by this one within "
            "this time (old keys stay published for the longest token lifetime plus twice this)."),
    Setting("REGISTRATION_DEFAULT_SCOPE", "openid profile email address phone", _scope,
            "Scopes of a dynamically registered client that registers no scope (OpenID "
            "registration has no such member, so common relying parties send none). Standard "
            "scopes (openid profile email address phone offline_access) or ones named in "
            "SCOPE_MIN_AAL."),
    Setting("PAIRWISE_SALT", None, _optional(_salt),
            "Secret (32+ characters) that pairwise subject identifiers are computed with (OIDC "
            "Core section 8.1); set, clients may register subject_type=pairwise. Never change "
            "or remove it once a pairwise client exists: every pairwise sub would change."),
    Setting("CLIENT_CACHE_SECONDS", 5, _int_range(0, 300),
            "How long a worker may reuse a client or resource-server record it read (not session "
            "rows: never cached)."),
    Setting("DPOP_IAT_WINDOW", 60, _int_range(5, 600),
            "Seconds a DPoP proof's iat may lie before or after the server's clock (RFC 9449 "
            "section 4.3 step 11); a proof's jti is remembered for as long as it is accepted."),
    Setting("DPOP_NONCE_REQUIRED", False, _bool,
            "Require a server-provided nonce in every DPoP proof (RFC 9449 section 8), at the "
            "token endpoint and at the provider's resources; a proof without a good one gets "
            "use_dpop_nonce and a DPoP-Nonce header."),
    Setting("DPOP_NONCE_LIFETIME", 300, _int_range(30, 3600),
            "Length in seconds of a DPoP nonce's time window; a nonce is accepted in its own "
            "window and the next one."),
    Setting("DPOP_NONCE_SECRET", None, _optional(_salt),
            "Secret (32+ characters) that DPoP nonces are computed with, the same on every "
            "worker; unset: derived from the Flask app's SECRET_KEY."),
    Setting("DPOP_REQUIRED_FOR_PUBLIC_CLIENTS", False, _bool,
            "Public clients must send a DPoP proof with every token request (their tokens and "
            "sessions are then always key-bound); off, a public client may still use DPoP, "
            "and its refresh tokens are rotated either way (OAuth 2.1)."),
)

#: Settings that no longer exist, with what replaces them (named at start-up, not just "unknown").
REMOVED: Final = {
    "HOT_PATH": "every request goes through the Flask views now; for the machine-to-machine "
                "endpoints without Flask's request cycle mount oauth_sessions.wsgi.make_wsgi_app(app) "
                "(see the production guide)",
}


@dataclass(frozen=True)
class Settings:
    """The validated settings of one app. Field names are the keys without the prefix, lowercased."""

    issuer: str
    database_url: str | None = None
    database_pooler: str = "auto"
    database_schema: str = "oauth_sessions"
    url_prefix: str = "/oauth"
    access_token_lifetime: int = 300
    id_token_lifetime: int = 300
    authorization_code_lifetime: int = 60
    pushed_request_lifetime: int = 60
    require_pushed_authorization_requests: bool = False
    refresh_token_reuse_interval: int = 10
    logout_hint_max_age: int = 86400
    session_timebox: int | None = 30 * DAY
    inactivity_timeout: int | None = None
    always_issue_refresh_token: bool = False
    single_session_per_client: bool = False
    scope_min_aal: dict[str, Aal] = field(default_factory=dict)
    audience_min_aal: dict[str, Aal] = field(default_factory=dict)
    signing_alg: str = "ES256"
    id_token_signing_alg: str = "RS256"
    id_token_on_refresh: bool = True
    encryption_keys: dict[str, str] = field(default_factory=dict)
    encryption_key_id: str | None = None
    supabase_encryption_keys: dict[str, str] = field(default_factory=dict)
    supabase_encryption_key_id: str | None = None
    dynamic_registration: bool = False
    registration_initial_access_token: str | None = None
    signing_key_reload_seconds: int = 60
    registration_default_scope: str = "openid profile email address phone"
    pairwise_salt: str | None = field(default=None, repr=False)
    client_cache_seconds: int = 5
    dpop_iat_window: int = 60
    dpop_nonce_required: bool = False
    dpop_nonce_lifetime: int = 300
    dpop_nonce_secret: str | None = field(default=None, repr=False)
    dpop_required_for_public_clients: bool = False

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def endpoint_url(self, path: str) -> str:
        """The public URL of the library's endpoint at ``path`` (``"/token"``), as discovery
        publishes it, whatever Host header a proxy passed on: what a DPoP proof's ``htu``
        and a client assertion's ``aud`` are checked against."""
        return self.issuer + self.url_prefix + path


def load_settings(config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read and validate every ``OAUTH_SESSIONS_*`` key.

    ``overrides`` are keyword options given to the extension's constructor; they
    use the short lowercase names (``issuer=...``) and win over ``config``.
    """
    overrides = dict(overrides or {})
    known = {s.name for s in SETTINGS}
    for name in (*(k[len(PREFIX):] for k in config if k.startswith(PREFIX)),
                 *(n.upper() for n in overrides)):
        if name in REMOVED:
            raise ConfigurationError(f"{PREFIX}{name} was removed: {REMOVED[name]}")
    for key in config:
        if key.startswith(PREFIX) and key[len(PREFIX):] not in known:
            guess = difflib.get_close_matches(key[len(PREFIX):], known, n=1)
            raise ConfigurationError(
                f"{key} is not a setting of oauth_sessions; "
                + (f"did you mean {guess[0]}?" if guess else
                   "known settings: " + ", ".join(PREFIX + n for n in sorted(known)))
            )
    for name in overrides:
        if name.upper() not in known:
            guess = difflib.get_close_matches(name.upper(), known, n=1)
            hint = f"; did you mean {guess[0].lower()}=?" if guess else ""
            raise ConfigurationError(f"unknown option {name!r} for OAuthSessions(){hint}")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        key = PREFIX + setting.name
        if setting.name.lower() in overrides:
            raw = overrides[setting.name.lower()]
        else:
            raw = config.get(key, setting.default)
        if raw is None and setting.required:
            raise ConfigurationError(f"{key} is required: {setting.doc}")
        values[setting.name.lower()] = setting.check(key, raw) if raw is not None else None
    if values["database_url"] is None:
        values["database_url"] = config.get("SQLALCHEMY_DATABASE_URI")
    keys, key_id = values["encryption_keys"], values["encryption_key_id"]
    if keys and key_id not in keys:
        raise ConfigurationError(
            f"{PREFIX}ENCRYPTION_KEY_ID must name one of {PREFIX}ENCRYPTION_KEYS "
            f"({', '.join(sorted(keys))}), got {key_id!r}"
        )
    unknown = [s for s in parse_scope(values["registration_default_scope"])
               if s not in STANDARD_SCOPES and s not in values["scope_min_aal"]]
    if unknown:
        raise ConfigurationError(
            f"{PREFIX}REGISTRATION_DEFAULT_SCOPE names {' '.join(unknown)}, which a dynamically "
            f"registered client may not have: use the standard scopes "
            f"({' '.join(STANDARD_SCOPES)}) or name the scope in {PREFIX}SCOPE_MIN_AAL")
    if key_id and not keys:
        raise ConfigurationError(f"{PREFIX}ENCRYPTION_KEY_ID is set but {PREFIX}ENCRYPTION_KEYS is empty")
    roots, root_id = values["supabase_encryption_keys"], values["supabase_encryption_key_id"]
    if root_id is not None and root_id not in roots:
        raise ConfigurationError(
            f"{PREFIX}SUPABASE_ENCRYPTION_KEY_ID must name one of {PREFIX}SUPABASE_ENCRYPTION_KEYS "
            f"({', '.join(sorted(roots)) or 'none configured'}), got {root_id!r}"
        )
    return Settings(**values)
