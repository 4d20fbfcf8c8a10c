"""Every endpoint, every way a value arrives, three values that break text: never a 5xx.

A lone surrogate (percent-encoded as the UTF-8 bytes ``%ED%B3%80`` in a form or query, which
are no UTF-8; escaped as ``"\\udc00"`` in a JSON body or in a JWT's header and payload, where it
parses to a Python str no UTF-8 encoder accepts), a NUL (PostgreSQL's text type refuses it) and
an overlong value are sent to token (each grant), introspection, revocation, userinfo,
registration and its management protocol, pushed authorization requests, authorize, logout,
JWKS, discovery and the JSON management API: in form fields, query parameters, JSON bodies,
path segments, bearer tokens, DPoP proofs, client assertions, ``id_token_hint`` and
``logout_token``. The answer is below 500; an error is a standard body (``error``, a JSON
object); nothing is written, the one-time ledgers included. On SQLite and PostgreSQL.

The JWTs are signed by the key they claim where that key is the sender's own (a DPoP proof by
its ``jwk``, a client assertion by the registered client key), so their claims reach the checks
after the signature, where the 500s were.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from dpop_support import DpopKey, b64
from factories import (
    REDIRECT_URI,
    basic_auth,
    create_client,
    create_user,
    make_app,
    pkce_pair,
    snapshot,
    user_headers,
)
from flask import Flask, request
from flask.testing import FlaskClient
from joserfc import jwk, jws
from sqlalchemy import Engine

from oauth_sessions import Aal, get_state
from oauth_sessions.flask.management import management_blueprint

ISSUER = "http://127.0.0.1:5000"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
KINDS = ["surrogate", "nul", "overlong"]
INITIAL_TOKEN = "initial-access-token-for-the-probes"
#: As a form or query value (already percent-encoded).
FORM = {"surrogate": "%ED%B3%80", "nul": "a%00b", "overlong": "a" * 5000}
#: As a JSON string (``json.dumps`` escapes both as ASCII).
TEXT = {"surrogate": "\udc00", "nul": "a\x00b", "overlong": "a" * 5000}
#: In an HTTP header, as latin-1 characters (the surrogate's UTF-8 bytes ``ED B3 80``).
HEADER = {"surrogate": "\xed\xb3\x80", "nul": "a\x00b", "overlong": "a" * 9000}
#: JSON inside a form or query value (the ``claims`` parameter): the escapes stay ASCII.
CLAIMS = {kind: quote(json.dumps({"id_token": {value: None}, "userinfo": {"email": {
    "value": value}}}), safe="") for kind, value in TEXT.items()}


class Provider:
    """A provider with every endpoint on: registration, the management API, a confidential
    client, a ``private_key_jwt`` client and a public one, a signed-in user with a session."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.app: Flask = make_app(engine, dynamic_registration=True,
                                   registration_initial_access_token=INITIAL_TOKEN)
        self.app.register_blueprint(management_blueprint(
            authenticate=lambda: uuid.UUID(request.headers["X-Test-User"]),
            is_admin=lambda user: True), url_prefix="/account")
        self.http: FlaskClient = self.app.test_client()
        self.client, secret = create_client(self.app, can_introspect=True)
        assert secret is not None
        self.basic = basic_auth(self.client.client_id, secret)
        self.client_key = jwk.ECKey.generate_key("P-256", parameters={"kid": "k1"})
        self.jwt_client, _ = create_client(
            self.app, token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [self.client_key.as_dict(private=False)]})
        self.public, _ = create_client(self.app, public=True)
        self.user = create_user(engine)
        services = get_state(self.app).services
        self.session_id = services.sessions.create_session(
            user_id=self.user, client_id=self.client.id, scopes="openid profile", aal=Aal.AAL1,
            amr=["password"]).session.id
        registered = self.http.post("/oauth/register", json={
            "redirect_uris": [REDIRECT_URI], "client_name": "Registered"},
            headers={"Authorization": f"Bearer {INITIAL_TOKEN}"})
        assert registered.status_code == 201, registered.get_data(as_text=True)
        self.registered = registered.json
        services.keys.keyset()  # the first signing key exists before any snapshot

    def assertion(self, value: str, *, overlong: bool = False) -> str:
        """A client assertion the ``private_key_jwt`` client signed, ``value`` in every
        string it may hold."""
        now = int(time.time())
        cid = self.jwt_client.client_id
        claims: dict[str, Any] = {"iss": cid, "sub": cid, "aud": [f"{ISSUER}/oauth/token", value],
                                  "exp": now + 60, "iat": now, "jti": value + uuid.uuid4().hex,
                                  "x": value}
        header = {"alg": "ES256", "kid": "k1", "cty": value}
        if overlong:
            claims["x"] = "a" * 9000
        return jws.serialize_compact(header, json.dumps(claims).encode("ascii"), self.client_key)

    @staticmethod
    def dpop(method: str, url: str, value: str, *, overlong: bool = False) -> str:
        key = DpopKey()
        return key.proof(method, url, header={"kid": value},
                         jti="a" * 5000 if overlong else value + uuid.uuid4().hex, nonce=value,
                         x=value)


def junk_jwt(value: str, *, overlong: bool = False) -> str:
    """A JWT-shaped string nobody here signed, ``value`` in header and payload strings."""
    header = {"alg": "ES256", "kid": value, "typ": value}
    claims = {"iss": value, "sub": value, "aud": value, "jti": value, "sid": value,
              "client_id": value, "exp": int(time.time()) + 60}
    token = ".".join(b64(json.dumps(part).encode("ascii")) for part in (header, claims)) + ".c2ln"
    return token + "A" * 9000 if overlong else token


@dataclass(frozen=True)
class Probe:
    name: str
    send: Callable[[Provider, str], Any]
    #: Value kinds that are good text where this probe puts them (a NUL inside a signed JWT's
    #: claims, or a claims request): the request may pass and rightly write (a one-time jti
    #: used up, a code issued), so only "no 5xx, a standard error" is judged for them.
    may_write: frozenset[str] = frozenset()


NUL_IS_TEXT = frozenset({"nul"})


def _form(p: Provider, path: str, fields: dict[str, str], *, basic: bool = True,
          headers: dict[str, str] | None = None) -> Any:
    body = "&".join(f"{k}={v}" for k, v in fields.items())
    auth = {"Authorization": p.basic} if basic else {}
    return p.http.post(path, data=body, content_type="application/x-www-form-urlencoded",
                       headers={**auth, **(headers or {})})


def _enc(value: str) -> str:
    """A JWT or other ASCII value as a form value."""
    return quote(value, safe="")


def _every_field(path: str, base: dict[str, str]) -> list[Probe]:
    """One probe per form field of ``base``: that field's value replaced by the bad one."""
    return [Probe(f"{path} {name}", lambda p, kind, n=name: _form(
        p, path, {**base, n: FORM[kind]})) for name in base]


CODE = {"grant_type": "authorization_code", "code": "c", "redirect_uri": REDIRECT_URI,
        "code_verifier": "v" * 43, "resource": "https://api.example/"}
REFRESH = {"grant_type": "refresh_token", "refresh_token": "osr1_x", "scope": "openid"}
_, CHALLENGE = pkce_pair()
AUTHORIZE = {"response_type": "code", "client_id": "CLIENT", "redirect_uri": REDIRECT_URI,
             "scope": "openid", "state": "s", "nonce": "n", "code_challenge": CHALLENGE,
             "code_challenge_method": "S256", "prompt": "consent", "max_age": "60",
             "acr_values": "aal1", "claims": "{}", "request_uri": "urn:x"}
LOGOUT = {"client_id": "CLIENT", "post_logout_redirect_uri": REDIRECT_URI, "state": "s",
          "ui_locales": "en", "logout_hint": "x", "logout_token": "x.y.z"}


def _authorize(p: Provider, kind: str, name: str, method: str) -> Any:
    params = {**AUTHORIZE, "client_id": p.client.client_id, name: FORM[kind]}
    query = "&".join(f"{k}={v}" for k, v in params.items())
    headers = user_headers(p.user)
    if method == "GET":
        return p.http.get("/oauth/authorize?" + query, headers=headers)
    return p.http.post("/oauth/authorize", data=query, headers=headers,
                       content_type="application/x-www-form-urlencoded")


def _claims(p: Provider, kind: str, where: str) -> Any:
    """The ``claims`` request (OIDC Core 5.5): JSON whose escapes pass as ASCII in the query."""
    params = {**AUTHORIZE, "client_id": p.client.client_id, "claims": CLAIMS[kind]}
    del params["request_uri"]
    if where == "par":
        return _form(p, "/oauth/par", params)
    query = "&".join(f"{k}={v}" for k, v in params.items())
    page = p.http.get("/oauth/authorize?" + query, headers=user_headers(p.user))
    if where == "authorize" or page.status_code != 200 or not page.is_json:
        return page
    # The consent page's form posted back, as a browser would: the code would be written here,
    # so the bad claims request must have been refused before.
    return p.http.post(page.json["action"],
                       data=dict(page.json["form_fields"]) | {"decision": "approve"},
                       headers=user_headers(p.user))


def _logout(p: Provider, kind: str, name: str, method: str) -> Any:
    params = {**LOGOUT, "client_id": p.client.client_id, name: FORM[kind]}
    query = "&".join(f"{k}={v}" for k, v in params.items())
    if method == "GET":
        return p.http.get("/oauth/logout?" + query, headers=user_headers(p.user))
    return p.http.post("/oauth/logout", data=query, headers=user_headers(p.user),
                       content_type="application/x-www-form-urlencoded")


def _hint(p: Provider, kind: str, name: str) -> Any:
    token = junk_jwt(TEXT[kind], overlong=kind == "overlong")
    return p.http.get("/oauth/logout", query_string={name: token, "client_id": p.client.client_id},
                      headers=user_headers(p.user))


def _bearer(p: Provider, kind: str, scheme: str, method: str) -> Any:
    token = junk_jwt(TEXT[kind], overlong=kind == "overlong")
    headers = {"Authorization": f"{scheme} {token}"}
    if scheme == "DPoP":
        headers["DPoP"] = p.dpop(method, f"{ISSUER}/oauth/userinfo", TEXT[kind],
                                 overlong=kind == "overlong")
    if method == "GET":
        return p.http.get("/oauth/userinfo", headers=headers)
    return p.http.post("/oauth/userinfo", headers=headers)


def _raw_header(p: Provider, kind: str, path: str) -> Any:
    """The bad value straight in the Authorization header, or base64 inside Basic."""
    value = HEADER[kind]
    if path == "/oauth/userinfo":
        return p.http.get(path, headers={"Authorization": "Bearer " + value})
    return _form(p, path, {"token": "t", **REFRESH}, basic=False,
                 headers={"Authorization": "Basic " + base64.b64encode(
                     value.encode("latin-1") + b":x").decode()})


def _assertion(p: Provider, kind: str, path: str) -> Any:
    fields = {"client_assertion_type": ASSERTION_TYPE,
              "client_assertion": _enc(p.assertion(TEXT[kind], overlong=kind == "overlong")),
              "token": "t"}
    if path == "/oauth/token":
        fields |= REFRESH
    if path == "/oauth/par":
        fields |= {k: v for k, v in AUTHORIZE.items() if k not in ("request_uri", "client_id")}
    return _form(p, path, fields, basic=False)


def _token_dpop(p: Provider, kind: str, grant: str) -> Any:
    fields = REFRESH if grant == "refresh_token" else CODE
    proof = p.dpop("POST", f"{ISSUER}/oauth/token", TEXT[kind], overlong=kind == "overlong")
    return _form(p, "/oauth/token", fields, headers={"DPoP": proof})


def _register(p: Provider, kind: str, member: str) -> Any:
    body: dict[str, Any] = {"redirect_uris": [REDIRECT_URI], "client_name": "x"}
    body[member] = [TEXT[kind]] if member in ("redirect_uris", "grant_types") else TEXT[kind]
    if member == "whole body":
        body = {"client_name": TEXT[kind] + "a" * 70000, "redirect_uris": [REDIRECT_URI]}
    return p.http.post("/oauth/register", json=body,
                       headers={"Authorization": f"Bearer {INITIAL_TOKEN}"})


def _manage(p: Provider, kind: str, method: str, where: str) -> Any:
    client_id = p.registered["client_id"]
    token = p.registered["registration_access_token"]
    if where == "path":
        client_id = FORM[kind]
    elif where == "token":
        token = HEADER[kind]
    path = f"/oauth/register/{client_id}"
    headers = {"Authorization": f"Bearer {token}"}
    if method == "PUT":
        body = {**p.registered, "client_name": TEXT[kind] if where == "body" else "x"}
        return p.http.put(path, json=body, headers=headers)
    return p.http.open(path, method=method, headers=headers)


def _management(p: Provider, kind: str, what: str) -> Any:
    headers = {"X-Test-User": str(p.user)}
    if what == "tag":
        return p.http.patch(f"/account/sessions/{p.session_id}", json={"tag": TEXT[kind]},
                            headers=headers)
    if what == "huge tag":
        return p.http.patch(f"/account/sessions/{p.session_id}",
                            json={"tag": TEXT[kind] + "a" * 70000}, headers=headers)
    if what == "session path":
        return p.http.delete(f"/account/sessions/{FORM[kind]}", headers=headers,
                             content_type="application/json")
    if what == "client path":
        return p.http.post(f"/account/clients/{FORM[kind]}/revoke-sessions", json={},
                           headers=headers)
    return p.http.get(f"/account/sessions?x={FORM[kind]}", headers=headers)


PROBES: list[Probe] = [
    *_every_field("/oauth/token", CODE),
    *_every_field("/oauth/token", REFRESH),
    *_every_field("/oauth/introspect", {"token": "t", "token_type_hint": "access_token"}),
    *_every_field("/oauth/revoke", {"token": "t", "token_type_hint": "refresh_token"}),
    *_every_field("/oauth/par", {k: v for k, v in AUTHORIZE.items() if k != "request_uri"}),
    *[Probe(f"/oauth/token client_id+secret {n}", lambda p, kind, n=n: _form(
        p, "/oauth/token", {**REFRESH, "client_id": p.client.client_id, "client_secret": "s",
                            n: FORM[kind]}, basic=False)) for n in ("client_id", "client_secret")],
    Probe("/oauth/token unknown grant", lambda p, kind: _form(
        p, "/oauth/token", {"grant_type": FORM[kind]})),
    *[Probe(f"authorize {m} {n}", lambda p, kind, n=n, m=m: _authorize(p, kind, n, m))
      for n in AUTHORIZE for m in ("GET", "POST")],
    *[Probe(f"claims JSON at {w}", lambda p, kind, w=w: _claims(p, kind, w), NUL_IS_TEXT)
      for w in ("authorize", "par", "consent")],
    *[Probe(f"logout {m} {n}", lambda p, kind, n=n, m=m: _logout(p, kind, n, m))
      for n in LOGOUT for m in ("GET", "POST")],
    *[Probe(f"logout JWT {n}", lambda p, kind, n=n: _hint(p, kind, n))
      for n in ("id_token_hint", "logout_token")],
    *[Probe(f"userinfo {s} {m}", lambda p, kind, s=s, m=m: _bearer(p, kind, s, m))
      for s in ("Bearer", "DPoP") for m in ("GET", "POST")],
    *[Probe(f"raw Authorization at {path}", lambda p, kind, path=path: _raw_header(p, kind, path))
      for path in ("/oauth/userinfo", "/oauth/token", "/oauth/introspect", "/oauth/revoke")],
    *[Probe(f"client assertion at {path}", lambda p, kind, path=path: _assertion(p, kind, path),
            NUL_IS_TEXT)
      for path in ("/oauth/token", "/oauth/introspect", "/oauth/revoke", "/oauth/par")],
    *[Probe(f"token DPoP proof, {g}", lambda p, kind, g=g: _token_dpop(p, kind, g), NUL_IS_TEXT)
      for g in ("authorization_code", "refresh_token")],
    *[Probe(f"introspect/revoke JWT at {path}", lambda p, kind, path=path: _form(
        p, path, {"token": _enc(junk_jwt(TEXT[kind], overlong=kind == "overlong"))}))
      for path in ("/oauth/introspect", "/oauth/revoke")],
    *[Probe(f"register {m}", lambda p, kind, m=m: _register(p, kind, m))
      for m in ("client_name", "redirect_uris", "grant_types", "scope", "client_uri",
                "token_endpoint_auth_method", "whole body")],
    Probe("register initial token", lambda p, kind: p.http.post(
        "/oauth/register", json={"redirect_uris": [REDIRECT_URI]},
        headers={"Authorization": "Bearer " + junk_jwt(TEXT[kind])})),
    *[Probe(f"register/<id> {m} {w}", lambda p, kind, m=m, w=w: _manage(p, kind, m, w))
      for m in ("GET", "PUT", "DELETE") for w in ("path", "token")],
    Probe("register/<id> PUT body", lambda p, kind: _manage(p, kind, "PUT", "body")),
    *[Probe(f"management {w}", lambda p, kind, w=w: _management(p, kind, w))
      for w in ("tag", "huge tag", "session path", "client path", "query")],
    *[Probe(f"GET {path}", lambda p, kind, path=path: p.http.get(f"{path}?x={FORM[kind]}"))
      for path in ("/oauth/jwks", "/.well-known/openid-configuration",
                   "/.well-known/oauth-authorization-server", "/oauth/openapi.yaml")],
]


@pytest.fixture
def provider(engine: Engine) -> Provider:
    return Provider(engine)


@pytest.mark.parametrize("kind", KINDS)
def test_no_endpoint_answers_5xx_to_a_surrogate_a_nul_or_an_overlong_value(
        provider: Provider, kind: str) -> None:
    """Every probe, one value kind: below 500, a standard error body, nothing written."""
    failures: list[str] = []
    for probe in PROBES:
        before = snapshot(provider.engine, ledgers=True)
        try:
            response = probe.send(provider, kind)
        except Exception as exc:  # TESTING propagates what would be a 500
            failures.append(f"{probe.name}: raised {type(exc).__name__}: {exc}"[:300])
            continue
        text = response.get_data(as_text=True)
        after = snapshot(provider.engine, ledgers=True)
        if response.status_code >= 500:
            failures.append(f"{probe.name}: {response.status_code} {text[:200]}")
        elif response.status_code >= 400 and response.status_code != 404 and not (
                response.mimetype == "application/json"
                and isinstance((response.get_json(silent=True) or {}).get("error"), str)):
            failures.append(f"{probe.name}: {response.status_code} without an error body: "
                            f"{text[:200]}")
        elif after != before and kind not in probe.may_write:
            failures.append(f"{probe.name}: {response.status_code} wrote "
                            + ", ".join(t for t in after if after[t] != before[t]))
        if any(leak in text for leak in ("Traceback", "codec", "psycopg", "sqlalchemy")):
            failures.append(f"{probe.name}: internal detail in the answer: {text[:200]}")
    assert not failures, "\n".join(failures)
