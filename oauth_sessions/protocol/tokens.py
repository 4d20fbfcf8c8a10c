"""The one place that mints the token response (RFC 6749 section 5.1) from a session.

Both grants (authorization code and refresh) end here, so the claims of every access and ID
token come from the session row and nowhere else.

Access tokens (RFC 9068): ``aud`` is one audience. Without RFC 8707 resource indicators it is
the issuer identifier (the default audience, which the provider's own UserInfo and resource
servers configured without an identifier accept); with them it is the one resource the
token request chose (:mod:`oauth_sessions.protocol.resource_indicators`).

ID tokens (OIDC Core section 2): ``aud`` = ``azp`` = the client, ``sid`` the session,
``acr`` the aal, ``amr``, ``auth_time``, ``nonce`` (when the request had one) and
``at_hash`` over the access token returned alongside. Signed with the client's registered
``id_token_signed_response_alg`` (OpenID Connect Dynamic Client Registration 1.0 section 2;
dynamic registration stores RS256 when the client named none), or, for a client without one
(made by an operator), with ``OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG`` (RS256 by default), while
access tokens use ``OAUTH_SESSIONS_SIGNING_ALG``, which is cheaper to sign on every refresh.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..core.policy import join_scope
from ..core.subjects import subject_for
from ..jose.access_tokens import build_access_token_claims, sign_access_token
from ..jose.id_tokens import sign_id_token
from ..jose.keys import KeySet

if TYPE_CHECKING:
    from ..core.settings import Settings
    from ..storage.clients import ClientInfo
    from ..storage.session_rows import SessionInfo

__all__ = ["build_token_response", "id_token_alg"]

log = logging.getLogger(__name__)


def id_token_alg(client: ClientInfo, default: str, keyset: KeySet,
                 now: datetime | None = None) -> str:
    """The alg of ``client``'s ID tokens: its registered one, else ``default`` (the setting).

    A registered alg that has no active key any more (the operator changed the signing
    settings after the client registered) falls back to ``default`` with a warning naming the
    fix, rather than failing a token request whose code was already spent.
    """
    chosen = client.id_token_signed_response_alg
    if chosen is None or chosen == default:
        return default
    if keyset.active_for(chosen, now=now) is not None:
        return chosen
    log.warning("client %s registered id_token_signed_response_alg=%s but the provider holds "
                "no %s key; its ID token is signed with %s. Set OAUTH_SESSIONS_SIGNING_ALG or "
                "OAUTH_SESSIONS_ID_TOKEN_SIGNING_ALG to %s again, or update the client.",
                client.client_id, chosen, chosen, default, chosen)
    return default


def build_token_response(
    *,
    settings: Settings,
    keyset: KeySet,
    session: SessionInfo,
    client: ClientInfo,
    scopes: tuple[str, ...],
    refresh_token: str | None,
    amr: list[str],
    auth_time: int,
    nonce: str | None = None,
    include_id_token: bool,
    audience: str | None = None,
    id_token_extra: Mapping[str, Any] | None = None,
    dpop_jkt: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The JSON body of a successful token response.

    ``dpop_jkt`` (the request's verified DPoP proof's key): the access token carries
    ``cnf.jkt`` and the response says ``token_type: DPoP`` (RFC 9449 section 5).

    ``session.aal`` is the assurance now; a refresh after a downgrade therefore mints tokens at
    the lower level at once (design: effective aal is the lower of issued and current).
    ``keyset`` is the app's current one (``KeyStore.keyset()``). ``audience`` is the RFC 8707
    resource the access token is for (its one ``aud``); ``None``: the issuer, the default.
    ``scopes`` are the access token's (and the response's ``scope``, RFC 6749 section 5.1).
    ``keyset`` is the app's current one (``KeyStore.keyset()``). ``id_token_extra``: claims a
    ``claims`` request (OIDC Core 5.5) put in the ID token; they never replace its own
    (``ClaimsRequest.id_token_claims`` leaves those out already).
    """
    now = now or datetime.now(UTC)
    aal = session.aal.value if session.aal is not None else "aal1"
    scope = join_scope(scopes)
    claims = build_access_token_claims(
        issuer=settings.issuer,
        subject=str(session.user_id),
        audience=audience or settings.issuer,
        client_id=client.client_id,
        scope=scope,
        session_id=str(session.id),
        aal=aal,
        amr=list(amr),
        auth_time=auth_time,
        lifetime=settings.access_token_lifetime,
        now=now,
        dpop_jkt=dpop_jkt,
    )
    access_token = sign_access_token(keyset, claims, now=now)
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "DPoP" if dpop_jkt is not None else "Bearer",
        "expires_in": settings.access_token_lifetime,
        "scope": scope,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    if include_id_token:
        iat = int(now.timestamp())
        id_claims: dict[str, Any] = {
            "iss": settings.issuer,
            # OIDC Core section 8: the client's own subject (pairwise per sector, or public).
            "sub": subject_for(session.user_id, client.sector_identifier, settings.pairwise_salt),
            "aud": client.client_id,
            "azp": client.client_id,
            "exp": iat + settings.id_token_lifetime,
            "iat": iat,
            "auth_time": int(auth_time),
            "sid": str(session.id),
            "acr": aal,
            "amr": list(amr),
        }
        if nonce:
            id_claims["nonce"] = nonce
        # Added first, so the ID token's own claims always win over them.
        id_claims = {**(id_token_extra or {}), **id_claims}
        body["id_token"] = sign_id_token(keyset, id_claims, access_token=access_token,
                                         alg=id_token_alg(client, settings.id_token_signing_alg,
                                                          keyset, now),
                                         now=now)
    return body
