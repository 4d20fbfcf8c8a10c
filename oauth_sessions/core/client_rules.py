"""What a client record must satisfy, whoever registers it (CLI, a host's pages, RFC 7591).

:class:`~oauth_sessions.storage.clients.ClientStore` applies these rules on every write, so each way in
gets the same clear ``ValueError`` instead of a database constraint failing later, when a user
authorizes the client (issue 15 item 17):

* every column limit of the schema: ``client_name`` at most 1,024 characters
  (``oauth_clients_client_name_length``); every URI at most 2,048 (``client_uri`` and
  ``logo_uri`` have that CHECK in Supabase's table) and, since Supabase Auth stores redirect
  URIs comma-separated, no comma in a redirect URI; the scopes at most 2,048 characters, the limit of
  ``oauth_consents_scopes_length``, which is tighter than ``sessions_scopes_length`` (4,096) and
  is written when the user consents; at most 20 redirect URIs of each kind;
* text a person reads (the name) has no control characters, lone surrogates or NUL: they break
  PostgreSQL's text type and let a name hide or reorder what the consent page shows;
* plain ``http`` redirect URIs only to loopback hosts (RFC 9700 section 2.1, OAuth 2.1
  section 1.5): anything else sends the code in clear over the network;
* a name that reads like the name of a verified client, after Unicode compatibility
  normalisation (NFKC), case folding, and with white space, punctuation and invisible
  characters removed, is refused for an unverified client (issue 15 item 8), so "Demo Client
  App" or "Demo client app" in full-width letters cannot borrow a vetted app's consent page.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import urlsplit

from .uris import validate_redirect_uri

__all__ = [
    "MAX_CLIENT_NAME",
    "MAX_CLIENT_SCOPE",
    "MAX_CLIENT_URI",
    "MAX_REDIRECT_URIS",
    "check_client_name",
    "check_client_scope",
    "check_redirect_uris",
    "check_uri_length",
    "has_forbidden_characters",
    "name_key",
]

MAX_CLIENT_NAME: Final = 1024
MAX_CLIENT_SCOPE: Final = 2048
MAX_REDIRECT_URIS: Final = 20
#: Supabase Auth's limit on ``client_uri`` / ``logo_uri`` (``oauth_clients_*_uri_length``),
#: applied to every URI of a client.
MAX_CLIENT_URI: Final = 2048
_LOOPBACK_HTTP_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})
# Characters that render as nothing or look alike once the rest is folded.
_CONFUSABLE_MAP: Final = str.maketrans({
    "0": "o", "1": "l", "|": "l",
    # Cyrillic and Greek letters drawn like Latin ones (a small, common subset).
    "\u0456": "i", "\u043e": "o", "\u0430": "a", "\u0435": "e", "\u0441": "c",
    "\u0440": "p", "\u0445": "x", "\u0443": "y", "\u0501": "d", "\u0578": "n",
    "\u03bd": "v", "\u03bf": "o",
})


def has_forbidden_characters(text: str) -> bool:
    """Whether ``text`` holds a control character (NUL included) or a lone surrogate.

    Control characters are Unicode category ``Cc`` (C0, DEL and C1); lone surrogates (``Cs``)
    cannot be encoded as UTF-8 at all, so PostgreSQL and every JSON encoder downstream refuse
    them.
    """
    return any(unicodedata.category(c) in {"Cc", "Cs"} for c in text)


def check_client_name(name: str) -> str:
    """The display name, trimmed; ``ValueError`` if empty, too long or with hidden characters."""
    if not isinstance(name, str):
        raise ValueError("the client name must be text")
    if has_forbidden_characters(name):
        raise ValueError("the client name must not contain control characters")
    trimmed = name.strip()
    if not trimmed:
        raise ValueError("the client name must not be empty")
    if len(trimmed) > MAX_CLIENT_NAME:
        raise ValueError(f"the client name has at most {MAX_CLIENT_NAME} characters")
    return trimmed


def check_client_scope(joined: str) -> str:
    """The space-joined scope list must fit the consent column (see the module docstring)."""
    if len(joined) > MAX_CLIENT_SCOPE:
        raise ValueError(f"the scopes take at most {MAX_CLIENT_SCOPE} characters in all "
                         f"(these take {len(joined)})")
    return joined


def check_redirect_uris(uris: Sequence[str], *, kind: str = "redirect URI") -> list[str]:
    """Each URI valid for a browser redirect; ``http`` only to loopback; at most 20.

    The ``ValueError`` names the position of the first bad URI (1-based), so a form can say
    which line is wrong without echoing the URI itself.
    """
    if len(uris) > MAX_REDIRECT_URIS:
        raise ValueError(f"a client has at most {MAX_REDIRECT_URIS} of each kind of {kind}")
    checked: list[str] = []
    for number, uri in enumerate(uris, start=1):
        try:
            validate_redirect_uri(uri)
            _refuse_plain_http(uri)
            check_uri_length(uri)
            if "," in uri:  # Supabase Auth stores the list comma-separated
                raise ValueError("URI must not contain a comma (percent-encode it as %2C)")
        except ValueError as exc:
            raise ValueError(f"{kind} {number}: {exc}") from None
        checked.append(uri)
    return checked


def check_uri_length(uri: str | None, *, what: str = "URI") -> str | None:
    """``uri`` if at most :data:`MAX_CLIENT_URI` characters (Supabase Auth's CHECK limit)."""
    if uri is not None and len(uri) > MAX_CLIENT_URI:
        raise ValueError(f"{what} is longer than {MAX_CLIENT_URI} characters")
    return uri


def _refuse_plain_http(uri: str) -> None:
    if uri[:5].lower() != "http:":
        return
    try:
        host = (urlsplit(uri).hostname or "").rstrip(".")
    except ValueError:
        raise ValueError("URI is not a valid URL") from None
    if host not in _LOOPBACK_HTTP_HOSTS:
        raise ValueError("plain http is allowed only to a loopback host (127.0.0.1, [::1]); "
                         "use https (RFC 9700 section 2.1)")


def name_key(name: str) -> str:
    """The form under which two client names count as the same (see the module docstring)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    folded = unicodedata.normalize("NFKD", folded)
    kept = "".join(c for c in folded
                   if unicodedata.category(c)[0] in {"L", "N"} or c in "|")
    return kept.translate(_CONFUSABLE_MAP)


def name_is_taken(name: str, reserved: Iterable[str]) -> bool:
    """Whether ``name`` reads like one of the ``reserved`` names (verified clients')."""
    key = name_key(name)
    return bool(key) and any(name_key(other) == key for other in reserved)
