"""DPoP at this server's endpoints (RFC 9449): one check of the ``DPoP`` header for the token
endpoint and the resources alike.

:meth:`DpopChecker.check` runs, in order:

1. at most one ``DPoP`` header (section 4.3 step 1; two headers joined by a proxy show as a
   comma, which no compact JWS contains);
2. the proof itself (:func:`oauth_sessions.jose.dpop.verify_dpop_proof`: typ, alg, public
   jwk, signature, htm, htu, iat window, ``ath`` at a resource);
3. with ``OAUTH_SESSIONS_DPOP_NONCE_REQUIRED``, a nonce of this server that is still good
   (section 8) and, at the authorization server, was given to this client
   (:mod:`oauth_sessions.core.dpop_nonces`), else ``use_dpop_nonce`` with a fresh one in
   ``DPoP-Nonce``;
4. the ``jti`` not seen before, by any worker (:class:`~oauth_sessions.storage.replay_ledger.JtiLedger`).

Only step 4 writes, and only for a proof that passed every other step. A failure is a
:class:`DpopRefused` with the RFC's error code; the token endpoint sends it as a 400 JSON
error, a resource as a 401 ``WWW-Authenticate: DPoP`` challenge (section 7.1).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from ..core.dpop_nonces import NonceIssuer
from ..jose.dpop import DPOP_ALGS, DpopProof, InvalidDpopProof, verify_dpop_proof
from ..storage.clients import ClientInfo
from ..storage.replay_ledger import JtiLedger
from .http import HttpRequest
from .oauth_errors import InvalidDpopProofError, UseDpopNonceError

__all__ = ["DPOP_ALGS", "INVALID_DPOP_PROOF", "USE_DPOP_NONCE", "DpopChecker", "DpopRefused",
           "token_headers", "token_request_proof"]

INVALID_DPOP_PROOF: Final = "invalid_dpop_proof"
USE_DPOP_NONCE: Final = "use_dpop_nonce"


@dataclass(eq=False)
class DpopRefused(Exception):
    """A proof refused: ``error`` is ``invalid_dpop_proof`` or ``use_dpop_nonce``; ``nonce``
    the one to send in ``DPoP-Nonce`` (section 8), when nonces are in use."""

    error: str
    description: str
    nonce: str | None = None


class DpopChecker:
    """The steps of the module docstring over one app's settings, nonces and replay ledger."""

    def __init__(self, ledger: JtiLedger[str], *, iat_window: int,
                 nonces: NonceIssuer | None, nonce_required: bool) -> None:
        self._ledger = ledger
        self._iat_window = iat_window
        self.nonces = nonces
        self._nonce_required = nonce_required and nonces is not None

    def fresh_nonce(self, now: float | None = None, *,
                    client_id: str | None = None) -> str | None:
        """The nonce to hand out now (section 8.2) to ``client_id``, when nonces are required."""
        if not self._nonce_required or self.nonces is None:
            return None
        return self.nonces.issue(now, client_id=client_id)

    def check(self, request: HttpRequest, *, uri: str, access_token: str | None = None,
              now: float | None = None, client_id: str | None = None) -> DpopProof | None:
        """The verified proof of ``request``, None when it has no ``DPoP`` header, or raise
        :class:`DpopRefused`. ``uri`` is this endpoint's URL as the server publishes it;
        ``client_id`` the authenticated client at the authorization server, whose nonce the
        proof must carry (None at a resource server)."""
        header = request.header("DPoP")
        if header is None:
            return None
        now = time.time() if now is None else now
        if "," in header:
            raise DpopRefused(INVALID_DPOP_PROOF, "send one DPoP header, not several",
                              self.fresh_nonce(now, client_id=client_id))
        try:
            proof = verify_dpop_proof(header.strip(), method=request.method, uri=uri, now=now,
                                      iat_window=self._iat_window, access_token=access_token)
        except InvalidDpopProof as exc:
            raise DpopRefused(INVALID_DPOP_PROOF, exc.reason,
                              self.fresh_nonce(now, client_id=client_id)) from None
        if self._nonce_required and self.nonces is not None and (
                proof.nonce is None
                or not self.nonces.is_valid(proof.nonce, now, client_id=client_id)):
            raise DpopRefused(USE_DPOP_NONCE, "the DPoP proof must carry a nonce this server "
                              "gave this client", self.nonces.issue(now, client_id=client_id))
        # Remembered until no clock inside the window can accept the proof any more.
        expires = datetime.fromtimestamp(proof.iat + self._iat_window + 1, UTC)
        if not self._ledger.consume(proof.jkt, proof.jti, expires):
            raise DpopRefused(INVALID_DPOP_PROOF, "the DPoP proof was already used",
                              self.fresh_nonce(now, client_id=client_id))
        return proof


def token_request_proof(checker: DpopChecker, request: HttpRequest, client: ClientInfo, *,
                        token_endpoint: str, required_for_public: bool) -> DpopProof | None:
    """The proof of a token request of the authenticated ``client``, as an Authlib error when
    refused (section 5: 400 ``invalid_dpop_proof``, section 8: ``use_dpop_nonce``).

    A client registered with ``dpop_bound_access_tokens`` (section 5.2), or any public client
    under ``OAUTH_SESSIONS_DPOP_REQUIRED_FOR_PUBLIC_CLIENTS``, must send one.
    """
    try:
        proof = checker.check(request, uri=token_endpoint, client_id=client.client_id)
    except DpopRefused as exc:
        if exc.error == USE_DPOP_NONCE and exc.nonce is not None:
            raise UseDpopNonceError(exc.description, exc.nonce) from None
        raise InvalidDpopProofError(description=exc.description) from None
    if proof is None and (client.dpop_bound_access_tokens
                          or (client.is_public and required_for_public)):
        raise InvalidDpopProofError(description="this client must send a DPoP proof with "
                                                "every token request")
    return proof


def token_headers(base: Iterable[tuple[str, str]], checker: DpopChecker,
                  client: ClientInfo) -> list[tuple[str, str]]:
    """A token response's headers: with nonces in use, the client's next nonce (section 8.2)."""
    headers = list(base)
    nonce = checker.fresh_nonce(client_id=client.client_id)
    if nonce is not None:
        headers.append(("DPoP-Nonce", nonce))
    return headers
