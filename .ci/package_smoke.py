"""Smoke flow against the *installed wheel*: run from a directory outside the repo.

Usage: python package_smoke.py CLIENT_JSON  (the output of `create-client --json`)
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.util
import json
import re
import secrets
import sys
from importlib import metadata
from urllib.parse import parse_qs, urlencode, urlsplit

import quickstart
from protected_api import add_api

import oauth_sessions

assert "site-packages" in oauth_sessions.__file__, oauth_sessions.__file__
assert importlib.util.find_spec("demo_server") is None, "the wheel must ship the library alone"
assert oauth_sessions.__version__ == metadata.version("oauth_sessions") != "0.0.0+unknown"
client = json.loads(sys.argv[1])
redirect_uri = client["redirect_uris"][0] if "redirect_uris" in client else "http://127.0.0.1:9/cb"
basic = "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()

app = quickstart.create_app()
add_api(app)  # the quickstart's protected-API step (docs/snippets/protected_api.py)
http = app.test_client()
assert http.get("/.well-known/openid-configuration").status_code == 200
assert http.get("/oauth/jwks").json["keys"], "no signing key published"
verifier = secrets.token_urlsafe(48)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
params = {"response_type": "code", "client_id": client["client_id"], "redirect_uri": redirect_uri,
          "scope": "openid offline_access", "state": "s1", "code_challenge": challenge,
          "code_challenge_method": "S256", "nonce": "n1"}


def follow(url: str) -> tuple[str, str]:
    """GET ``url`` and follow same-site redirects as a browser does: (final URL, page)."""
    for _ in range(10):
        page = http.get(url)
        if page.status_code != 302:
            assert page.status_code == 200, (url, page.status_code, page.get_data(as_text=True))
            return url, page.get_data(as_text=True)
        url = page.headers["Location"]
    raise AssertionError("redirect loop from " + url)


# As a browser: the first /oauth/authorize sends us to sign in, and signing in brings us back.
start = "/oauth/authorize?" + urlencode(params)
login_url, text = follow(start)
assert urlsplit(login_url).path == "/login", login_url
signed_in = http.post(login_url, data={"email": "smoke@example.com"})  # the form posts to itself
assert signed_in.status_code == 302, signed_in.status_code
assert signed_in.headers["Location"] == start, signed_in.headers["Location"]
_, text = follow(signed_in.headers["Location"])
action = html.unescape(re.search(r'action="([^"]+)"', text).group(1))
fields = {html.unescape(k): html.unescape(v)
          for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', text)}
answer = http.post(action, data={**fields, "decision": "approve"})
assert answer.status_code == 302, answer.get_data(as_text=True)
query = parse_qs(urlsplit(answer.headers["Location"]).query)
assert query["state"] == ["s1"] and query["iss"] == [app.config["OAUTH_SESSIONS_ISSUER"]]

tokens = http.post("/oauth/token", headers={"Authorization": basic}, data={
    "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": redirect_uri,
    "code_verifier": verifier}).json
assert {"access_token", "refresh_token", "id_token"} <= tokens.keys(), tokens
refreshed = http.post("/oauth/token", headers={"Authorization": basic}, data={
    "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json
assert refreshed["refresh_token"] != tokens["refresh_token"], refreshed
info = http.post("/oauth/introspect", headers={"Authorization": basic},
                 data={"token": refreshed["access_token"]}).json
assert info["active"] is True and info["sid"], info
bearer = {"Authorization": "Bearer " + refreshed["access_token"]}
me = http.get("/api/me", headers=bearer)
assert me.status_code == 200 and me.json["client"] == client["client_id"], me.get_data(as_text=True)
assert http.get("/api/me").status_code == 401
assert http.post("/oauth/revoke", headers={"Authorization": basic},
                 data={"token": refreshed["refresh_token"]}).status_code == 200
info = http.post("/oauth/introspect", headers={"Authorization": basic},
                 data={"token": refreshed["access_token"]}).json
assert info == {"active": False}, info
denied = http.get("/api/me", headers=bearer)
assert denied.status_code == 401 and "invalid_token" in denied.headers["WWW-Authenticate"], denied
print("package smoke: wheel", oauth_sessions.__version__, "sign-in round trip, code flow, refresh, "
      "introspection, protected API, revocation OK")
