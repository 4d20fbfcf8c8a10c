"""Client authentication, one for every endpoint (RFC 6749 section 2.3, RFC 7523, OIDC Core section 9).

:class:`ClientAuthenticator` is used by the token endpoint (under Authlib's grants), revocation
and introspection alike. Its steps, in order, each failing with :class:`ClientAuthFailed`
(401 ``invalid_client``, rendered by :func:`client_auth_error`):

1. one method per request: HTTP Basic, ``client_secret`` in the body, or a ``client_assertion``
   ("MUST NOT use more than one authentication method in each request");
2. the credentials of that method: ``private_key_jwt`` below; ``client_secret_basic`` parsed by
   :func:`oauth_sessions.core.bearer.basic_credentials`; ``client_secret_post``; ``none`` (only
   where the endpoint admits public clients, with a ``client_id`` and no secret);
3. the client exists and its secret verifies, in constant time (hashed secrets);
4. the method used is the one the client registered (``token_endpoint_auth_method``).

What a failure says (issue 20 item 6): an unknown client, a wrong secret and an assertion that
does not verify all read "client authentication failed", so the answer cannot tell a guessed
secret from a wrong one. When the client exists and what it presented is otherwise good (its
secret verified, or it presented no credential at all) but it used another method than the
one it registered, the answer names the registered method ("client is registered for
client_secret_basic"), so the fix is in the error. This gives nothing away: the method is
public metadata (RFC 7591 section 2), a client id is not a secret and the authorization
endpoint already answers "unknown client_id" for one that does not exist, and the method is
never named after a wrong credential. An assertion for a client that did not register
``private_key_jwt`` cannot be verified (no keys), so it keeps the generic text.

``private_key_jwt``: the client proves itself with a JWT it signed with a key whose public half it registered
(``jwks`` metadata). The checks, in order, each failing with 401 ``invalid_client``:

1. ``client_assertion_type`` is the JWT bearer type and ``client_assertion`` is there;
2. header and payload are bounded JSON whose every string is Unicode text (no lone
   surrogate, which no UTF-8 hash or database accepts), and the unverified ``sub`` names a
   client registered for ``private_key_jwt`` with keys;
3. the signature verifies under one of those keys, with an asymmetric algorithm only (so
   ``none`` and HMAC-with-a-public-key confusions cannot pass);
4. ``iss`` = ``sub`` = the client id; ``aud`` names this server (issuer, token or revocation
   endpoint); ``exp`` is in the future but at most an hour away; ``iat``/``nbf`` not in
   the future; ``jti`` present;
5. the ``jti`` has not been seen before: the replay ledger
   (:class:`~oauth_sessions.storage.replay_ledger.ClientAssertionLedger`, behind
   :class:`~oauth_sessions.storage.replay_ledger.JtiLedger`) records it, hashed, until the
   assertion expires, which makes the assertion one-time across every worker ("MUST only be
   used once", OIDC Core section 9).

Only step 5 writes, and only for an assertion that passed every other check.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..core.bearer import MalformedCredentials
from ..jose.jws import MAX_TOKEN_LENGTH, is_text, json_depth_within
from ..storage.clients import ClientInfo, ClientStore, verify_client_secret
from ..storage.replay_ledger import JtiLedger
from ..storage.resource_servers import ResourceServerInfo, ResourceServerStore
from .http import Answer, HttpRequest, error_answer
from .request_checks import BASIC_CHALLENGE

__all__ = [
    "ASSERTION_TYPE",
    "SIGNING_ALGS",
    "ClientAuthFailed",
    "ClientAuthenticator",
    "PrivateKeyJwt",
    "client_auth_error",
    "wrong_method",
]

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SIGNING_ALGS: Final = ["ES256", "ES384", "EdDSA", "RS256", "PS256"]
MAX_LIFETIME: Final = 3600  # Authlib's own clients sign for one hour
LEEWAY: Final = 30

class ClientAuthFailed(Exception):
    """401 ``invalid_client`` (RFC 6749 section 5.2); the description is public."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def client_auth_error(exc: ClientAuthFailed) -> Answer:
    """The answer to a failed client authentication, the same at every endpoint."""
    return error_answer("invalid_client", exc.description, 401, BASIC_CHALLENGE)


def _fail(description: str) -> ClientAuthFailed:
    return ClientAuthFailed(description)


class ClientAuthenticator:
    """The steps of the module docstring, over the client store (and, for introspection, the
    registered resource servers)."""

    def __init__(self, clients: ClientStore, private_key_jwt: PrivateKeyJwt,
                 resource_servers: ResourceServerStore | None = None) -> None:
        self._clients = clients
        self._private_key_jwt = private_key_jwt
        self._resource_servers = resource_servers

    def authenticate(self, request: HttpRequest, *, allow_public: bool) -> ClientInfo:
        """The authenticated client of ``request``, or raise :class:`ClientAuthFailed`."""
        found = self._credentials(request, allow_public=allow_public)
        if isinstance(found, ClientInfo):
            return found
        client_id, secret, method = found
        return self._client(secret, method, self._clients.get(client_id))

    @staticmethod
    def _client(secret: str | None, method: str, client: ClientInfo | None) -> ClientInfo:
        """Steps 3-4 for the client the credentials name (``None``: no such client)."""
        if secret is not None:
            # Verified even for an unknown client, so the answer takes as long either way.
            verified = verify_client_secret(secret, client.secret_hash if client is not None else None)
            if not verified:
                raise _fail("client authentication failed")
        if client is None:
            raise _fail("client authentication failed")
        if client.token_endpoint_auth_method != method:
            raise wrong_method(client)
        return client

    def authenticate_introspector(self, request: HttpRequest) -> ClientInfo | ResourceServerInfo:
        """The caller of ``/introspect``: a client, or a registered resource server (RFC 8707).

        A resource server authenticates as itself with the same two methods as a confidential
        client, ``client_secret_basic`` or ``client_secret_post``: its ``id`` as the username
        (or ``client_id``) and its own secret, verified in constant time like a client's. A
        name that is a client's is a client's (the common case, answered from the client
        cache); only an id no client has is looked up among the resource servers.
        """
        found = self._credentials(request, allow_public=False)
        if isinstance(found, ClientInfo):
            return found
        client_id, secret, method = found
        client = self._clients.get(client_id)
        if client is not None or self._resource_servers is None or secret is None:
            return self._client(secret, method, client)
        server = self._resource_servers.get(client_id)
        if not verify_client_secret(secret, server.secret_hash if server is not None else None):
            raise _fail("client authentication failed")
        assert server is not None
        return server

    def _credentials(self, request: HttpRequest, *, allow_public: bool
                     ) -> ClientInfo | tuple[str, str | None, str]:
        """Steps 1-2: the ``private_key_jwt`` client, or (client id, secret, method) to check."""
        form = request.params
        try:
            basic = request.basic_credentials()
        except MalformedCredentials as exc:
            raise _fail(str(exc)) from None
        if (basic is not None) + ("client_secret" in form) + (
                "client_assertion" in form or "client_assertion_type" in form) > 1:
            raise _fail("use one client authentication method, not two")
        secret: str | None
        if "client_assertion" in form or "client_assertion_type" in form:
            return self._private_key_jwt.authenticate(form, self._clients.get)
        if basic is not None:
            (client_id, secret), method = basic, "client_secret_basic"
        elif "client_secret" in form:
            client_id, secret, method = form.get("client_id", ""), form["client_secret"], "client_secret_post"
        elif allow_public and form.get("client_id"):
            client_id, secret, method = form["client_id"], None, "none"
        else:
            raise _fail("client authentication is required")
        return client_id, secret, method


def wrong_method(client: ClientInfo) -> ClientAuthFailed:
    """A known client that presented good credentials of another method than its registered
    one: the answer names the method to use (see the module docstring for why that is safe)."""
    return _fail(f"client is registered for {client.token_endpoint_auth_method}")


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _unverified_subject(assertion: str) -> str:
    """``sub`` read before verification, only to find which client's keys to verify with.

    Header and payload are bounded in size and nesting before either is parsed (here or by
    joserfc), so no assertion can make a JSON decoder recurse out of the stack (issue 15 item 9),
    and every string in them must be Unicode text (:func:`~oauth_sessions.jose.jws.is_text`),
    so a lone surrogate in ``jti`` never reaches the replay ledger's hash.

    Both ECDSA forms ``(r, s)`` and ``(r, n - s)`` are accepted here, unlike for the provider's
    own tokens: clients sign with common libraries that emit either, and the one-time ``jti``
    already makes the second form of an assertion worthless.
    """
    parts = assertion.split(".")
    if len(assertion) > MAX_TOKEN_LENGTH or len(parts) != 3:
        raise _fail("client_assertion is not a JWT")
    try:
        header, payload = _b64(parts[0]).decode("utf-8"), _b64(parts[1]).decode("utf-8")
    except (ValueError, UnicodeError):
        raise _fail("client_assertion is not a JWT") from None
    if not (json_depth_within(header) and json_depth_within(payload)):
        raise _fail("client_assertion nests too deeply")
    try:
        claims, headers = json.loads(payload), json.loads(header)
    except (ValueError, RecursionError):
        raise _fail("client_assertion is not a JWT") from None
    if not (is_text(headers) and is_text(claims)):
        # A lone surrogate in jti, kid, aud ...: refused before any lookup, hash or write.
        raise _fail("client_assertion holds a string that is not Unicode text")
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(sub, str):
        raise _fail("client_assertion has no sub")
    return sub


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class PrivateKeyJwt:
    """``private_key_jwt``: the checks of the module docstring, over the form and a client lookup."""

    def __init__(self, ledger: JtiLedger[uuid.UUID], audiences: Callable[[], Sequence[str]]) -> None:
        self._ledger = ledger
        self._audiences = audiences

    def authenticate(self, form: Mapping[str, str],
                     query_client: Callable[[str], ClientInfo | None]) -> ClientInfo:
        """The client the assertion in ``form`` proves, or raise :class:`ClientAuthFailed`."""
        assertion = form.get("client_assertion")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
            raise _fail("client_assertion_type must be the JWT bearer type, with client_assertion")
        client = query_client(_unverified_subject(assertion))
        if client is None or client.token_endpoint_auth_method != "private_key_jwt" \
                or not client.jwks:
            raise _fail("client authentication failed")
        try:
            keys = KeySet.import_key_set(json.loads(client.jwks))
            claims = jwt.decode(assertion, keys, algorithms=SIGNING_ALGS).claims
        except (JoseError, ValueError, TypeError, KeyError, RecursionError):
            raise _fail("client_assertion signature is invalid") from None
        self._check_claims(client.client_id, claims)
        expires = datetime.fromtimestamp(float(claims["exp"]) + LEEWAY, UTC)
        if not self._ledger.consume(client.id, str(claims["jti"]), expires):
            raise _fail("client_assertion was already used")
        return client

    def _check_claims(self, client_id: str, claims: dict[str, Any]) -> None:
        now = time.time()
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise _fail("client_assertion iss and sub must be the client_id")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not set(self._audiences()) & {a for a in audiences if isinstance(a, str)}:
            raise _fail("client_assertion aud does not name this server")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or now >= exp + LEEWAY:
            raise _fail("client_assertion has expired")
        if exp > now + MAX_LIFETIME + LEEWAY:
            raise _fail("client_assertion lives too long")
        for name in ("iat", "nbf"):
            value = claims.get(name)
            if value is not None and (not _number(value) or value > now + LEEWAY):
                raise _fail(f"client_assertion {name} is in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise _fail("client_assertion needs a jti")
