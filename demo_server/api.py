"""The demo's protected API, guarded by the library's resource-server helper.

``/api/me`` needs the ``profile`` scope; ``/api/payments`` needs the ``payments`` scope *and*
a token from a session at aal2. The scope is checked first (RFC 6750 section 3.1: 403
``insufficient_scope``; a step-up cannot add a scope), then the assurance: an aal1 token gets
RFC 9470's ``insufficient_user_authentication`` challenge with ``acr_values="aal2"`` and the
client sends the person back through a TOTP step-up. The e-mail address is released only to a
token that holds the ``email`` scope (the person consented to exactly that).
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint

from oauth_sessions import get_state
from oauth_sessions.flask.resource import ResourceProtector, current_token

from .users import get_account

bp = Blueprint("api", __name__, url_prefix="/api")
# Local mode: the same pipeline as /oauth/introspect, run in-process on the app's database,
# so a revoked session's tokens are refused on the very next call.
protector = ResourceProtector.local(realm="demo api")


def _account_claims() -> dict[str, Any]:
    token = current_token()
    account = get_account(get_state().engine, uuid.UUID(token.sub))
    email = account.email if account is not None and "email" in token.scopes else None
    return {"sub": token.sub, "email": email,
            "client_id": token.client_id, "scope": " ".join(token.scopes),
            "aal": token.aal.value, "amr": list(token.amr), "sid": token.session_id}


@bp.get("/me")
@protector.require(scope="profile")
def me() -> dict[str, Any]:
    return _account_claims()


@bp.get("/payments")
@protector.require(scope="payments", aal="aal2")
def payments() -> dict[str, Any]:
    claims = _account_claims()
    return {"account": claims["sub"], "aal": claims["aal"], "amr": claims["amr"],
            "payments": [
                {"id": "pay_1001", "to": "Acme Hosting", "amount": "12.00", "currency": "EUR"},
                {"id": "pay_1002", "to": "Book Shop", "amount": "31.50", "currency": "EUR"},
            ]}
