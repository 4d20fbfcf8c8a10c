"""RFC 8707 resource indicators at the authorization and token endpoints, over the registry.

The rules are :mod:`oauth_sessions.core.resource_indicators`; this module adds what needs the
registered resource servers (:class:`~oauth_sessions.storage.resource_servers.ResourceServerStore`):

* at authorize (:meth:`ResourceIndicators.for_authorization`): every ``resource`` is a
  registered resource server or this provider's own identifier (the issuer, the default
  audience: naming it gives a token ``/userinfo`` accepts); each one's minimum aal joins the
  aal the request needs (:func:`~oauth_sessions.core.policy.required_aal`, the rule the
  grants and every token check apply too); a resource server that accepts only some scopes
  must accept one of the requested ones. Errors: ``invalid_target`` (RFC 8707 section 2), ``invalid_scope``;
* at the token endpoint, code and refresh alike (:meth:`ResourceIndicators.audience`): the one
  audience of the access token (a granted resource, section 2.2), and the scopes it carries
  (those the resource server accepts). Checked before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..core.errors import UnknownResource
from ..core.resource_indicators import choose_audience, parse_resources, scopes_for_resource
from ..core.types import Aal
from ..storage.resource_servers import ResourceServerInfo, ResourceServerStore

__all__ = ["ResourceIndicators"]


class ResourceIndicators:
    """The resource rules of one app: its registry and its own identifier."""

    def __init__(self, servers: ResourceServerStore, issuer: str) -> None:
        self.servers = servers
        self.issuer = issuer

    def _server(self, resource: str) -> ResourceServerInfo | None:
        """The registered server of ``resource``; ``None`` for the issuer; else ``invalid_target``."""
        if resource == self.issuer:
            return None
        server = self.servers.by_resource(resource)
        if server is None:
            raise UnknownResource()
        return server

    def for_authorization(self, values: Iterable[str], scopes: Sequence[str]
                          ) -> tuple[tuple[str, ...], dict[str, Aal]]:
        """The resources an authorization request names, checked, and the minimum aal of each
        one's resource server that sets one, read here once for the request's
        :func:`~oauth_sessions.core.policy.required_aal`."""
        resources = parse_resources(values)
        registered: dict[str, Aal] = {}
        for resource in resources:
            server = self._server(resource)
            if server is None:
                continue
            scopes_for_resource(scopes, server.scopes)
            if server.min_aal is not None:
                registered[resource] = server.min_aal
        return resources, registered

    def audience(self, requested: tuple[str, ...], granted: tuple[str, ...],
                 scopes: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
        """The access token's audience (``None``: the default) and scopes; a refusal raises a
        domain error (``invalid_target``, ``invalid_scope``). An
        :class:`~oauth_sessions.storage.rotation.AudienceRule`."""
        audience = choose_audience(parse_resources(requested), granted)
        if audience is None:
            return None, scopes
        server = self._server(audience)
        if server is None:
            return audience, scopes
        return audience, scopes_for_resource(scopes, server.scopes)
