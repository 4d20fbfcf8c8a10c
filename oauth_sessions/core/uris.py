"""The rules for URIs a client registers: one place, used by ``ClientStore`` and RFC 7591.

Two kinds of URI, two threat models:

* Redirect and post-logout redirect URIs are only ever followed by the user's *browser*. They
  must be absolute and have no fragment (RFC 6749 section 3.1.2, OIDC RP-Initiated Logout 1.0
  section 3) and no userinfo: ``https://bank.example@evil.example/`` reads like the bank and
  goes to the attacker (RFC 3986 section 7.6; OAuth 2.1 section 7.12 on open redirectors).
  Custom schemes and ``http`` stay allowed for native apps (RFC 8252 sections 7.1 and 7.3).
* The back-channel logout URI is fetched by *this server* (OIDC Back-Channel Logout 1.0
  section 2.2). Anyone who may register a client chooses where that POST goes, so without a
  rule it is a server-side request forgery into the provider's network (the cloud metadata
  address, a database on 127.0.0.1). It must therefore be ``https`` to a host that is not an
  internal IP literal; plain ``http`` is accepted only for a loopback host, and only on a
  development deployment (one whose own issuer is a loopback ``http`` URL, the same exception
  :mod:`oauth_sessions.core.settings` makes for ``ISSUER``). A DNS name that *resolves* to an
  internal address cannot be judged at registration time (the answer can change); the sender
  has to guard that at delivery.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "LOOPBACK_HOSTS",
    "MAX_URI_LENGTH",
    "embedded_ipv4",
    "host_of",
    "is_loopback_http",
    "is_public_address",
    "redirect_uri_matches",
    "same_site_path",
    "validate_backchannel_logout_uri",
    "validate_redirect_uri",
]

MAX_URI_LENGTH: Final = 2048
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_FORBIDDEN_SCHEMES: Final = frozenset({"javascript", "data", "file", "vbscript"})
#: RFC 8252 section 7.3: a loopback *IP literal* with an optional port, then path and query.
#: ``localhost`` is left out on purpose (section 8.3: it may resolve elsewhere).
_LOOPBACK_REDIRECT: Final = re.compile(
    r"http://(?P<host>127\.0\.0\.1|\[::1\])(?::(?P<port>[0-9]{1,5}))?(?P<rest>[/?].*)?",
    re.DOTALL)


def redirect_uri_matches(registered: str, given: str, *, any_loopback_port: bool) -> bool:
    """Whether ``given`` is the ``registered`` redirect URI.

    Exact string comparison (RFC 6749 section 3.1.2.3, RFC 9700 section 4.1.3), with one
    exception when ``any_loopback_port`` is on (native apps, RFC 8252 section 7.3): for a
    registered ``http://127.0.0.1`` or ``http://[::1]`` URI the port of ``given`` may differ,
    since the app listens on whatever port the system gave it; scheme, host, path and query
    must still be identical.
    """
    if given == registered:
        return True
    if not any_loopback_port:
        return False
    ours, theirs = _LOOPBACK_REDIRECT.fullmatch(registered), _LOOPBACK_REDIRECT.fullmatch(given)
    if ours is None or theirs is None:
        return False
    port = theirs.group("port")
    if port is not None and not 0 < int(port) < 65536:
        return False
    return (ours.group("host") == theirs.group("host")
            and (ours.group("rest") or "") == (theirs.group("rest") or ""))


def validate_redirect_uri(uri: str) -> str:
    """A URI the browser will be sent to: absolute, printable ASCII, no fragment, no userinfo.

    Returns it unchanged (redirect URIs are compared exactly, RFC 6749 section 3.1.2.3);
    raises ``ValueError`` with a reason that never repeats the URI.
    """
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_LENGTH:
        raise ValueError(f"URI must be a non-empty string of at most {MAX_URI_LENGTH} characters")
    if any(not ("!" <= c <= "~") for c in uri):
        raise ValueError("URI must be printable ASCII without spaces")
    if "#" in uri:
        raise ValueError("URI must not contain a fragment (RFC 6749 section 3.1.2)")
    scheme, sep, rest = uri.partition(":")
    if not sep or not scheme[:1].isalpha() or not rest:
        raise ValueError("URI must be absolute (scheme:...)")
    if scheme.lower() in _FORBIDDEN_SCHEMES:
        raise ValueError(f"URI scheme {scheme.lower()!r} is not allowed")
    if rest.startswith("//") and "@" in rest[2:].split("/", 1)[0].split("?", 1)[0]:
        raise ValueError("URI must not contain userinfo (RFC 3986 section 7.6)")
    return uri


def same_site_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site, otherwise ``default``: for a ``next`` parameter.

    A sign-in page that redirects to whatever ``next`` says is an open redirector (RFC 9700
    section 4.11). Only an absolute path is followed. Refused: anything with a scheme or host,
    ``//host`` and its backslash twin ``/\\host`` (some browsers read both as another site),
    and any control character or whitespace: browsers drop tabs and newlines from a URL, so
    ``/<TAB>/evil.example`` would arrive as ``//evil.example``, and a newline cannot go into a
    ``Location`` header at all. Call it in the host's sign-in view before redirecting::

        return redirect(same_site_path(request.args.get("next")))
    """
    if not isinstance(target, str) or not target.startswith("/") or len(target) > MAX_URI_LENGTH:
        return default
    if target.startswith("//") or "\\" in target or any(c == " " or not c.isprintable() for c in target):
        return default
    try:
        parts = urlsplit(target)
    except ValueError:
        return default
    return default if parts.scheme or parts.netloc else target


def host_of(uri: str) -> str:
    """The host (and port) a URI points at, for a person to read; the scheme for one without
    (a native app's ``com.example.app:/cb``)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return ""
    return parts.netloc.rpartition("@")[2] or f"{parts.scheme}:"


def is_loopback_http(url: str) -> bool:
    """True for ``http://`` URLs to 127.0.0.1, localhost or [::1]: a development deployment."""
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() == "http" and (parts.hostname or "") in LOOPBACK_HOSTS
    except ValueError:
        return False


def validate_backchannel_logout_uri(uri: str, *, allow_loopback_http: bool) -> str:
    """A URI this server will POST logout tokens to (see the module docstring for why).

    ``allow_loopback_http`` is for development deployments only: pass
    ``is_loopback_http(issuer)``.
    """
    validate_redirect_uri(uri)
    try:
        parts = urlsplit(uri)
        host = (parts.hostname or "").rstrip(".")
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        raise ValueError("backchannel_logout_uri is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in {"https", "http"} or not host:
        raise ValueError("backchannel_logout_uri must be an https URL with a host")
    if host in LOOPBACK_HOSTS or host.endswith(".localhost"):
        if allow_loopback_http:
            return uri
        raise ValueError("backchannel_logout_uri must not point at this machine")
    if scheme != "https":
        raise ValueError("backchannel_logout_uri must use https "
                         "(http only for a loopback host in development)")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if _legacy_ipv4(host):  # 2130706433, 0x7f.1, 127.1: resolvers read these as addresses
            raise ValueError("backchannel_logout_uri must not use a numeric host in that form") from None
        return uri  # a DNS name: see the module docstring
    if not is_public_address(address):
        raise ValueError("backchannel_logout_uri must not point at an internal address")
    return uri


#: IPv6 prefixes whose last 32 bits are an IPv4 address a gateway or the kernel will reach:
#: NAT64 (RFC 6052 well-known and RFC 8215 local-use) and IPv4-compatible (RFC 4291 2.5.5.1).
_IPV4_IN_LAST_32_BITS: Final = (ipaddress.IPv6Network("64:ff9b::/96"),
                                ipaddress.IPv6Network("64:ff9b:1::/48"),
                                ipaddress.IPv6Network("::/96"))


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: mapped, NAT64, IPv4-compatible, 6to4
    (RFC 3056) and Teredo (RFC 4380, server and client)."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in network for network in _IPV4_IN_LAST_32_BITS):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global, and so is every IPv4 address inside it (``[64:ff9b::a9fe:a9fe]`` is the cloud
    metadata address through NAT64, ``[2002:7f00:1::]`` loopback through 6to4, although Python
    calls both global)."""
    if not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return all(inner.is_global for inner in embedded_ipv4(address))
    return True


def _legacy_ipv4(host: str) -> bool:
    """Whether ``inet_aton`` (which getaddrinfo uses) takes this name for an IPv4 address."""
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True
