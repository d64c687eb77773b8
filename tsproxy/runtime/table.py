"""The routing table: per entrypoint the HTTP routers in evaluation order, plus the service graph.

Immutable once built; a request reads one table from start to end. Balancer state lives in the
service nodes, which a rebuild may carry over (see ``nodes``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import attrs

from tsproxy.config.errors import Location
from tsproxy.config.resources import RouteTLS
from tsproxy.config.static import StaticConfig
from tsproxy.rules import HTTPRequestInfo, HTTPRule, RouterSet
from tsproxy.runtime.failures import FailedRouter, FailedService, RouterWarning
from tsproxy.runtime.services import Definition, Node
from tsproxy.runtime.tcp import EntryPointTCP, TCPDefinition, TCPNode, TCPRouter
from tsproxy.runtime.udp import UDPDefinition, UDPNode, UDPRouter

__all__ = ["HTTPRouter", "RoutingTable", "TCPRouter", "UDPRouter"]


@attrs.frozen(eq=False)
class HTTPRouter:
    """One IngressRoute route: its rule, priority, entrypoints and service node.

    ``source`` locates the route (file, line, resource); ``tls`` is the IngressRoute's TLS
    section: such routers (HTTPS routers) only take TLS traffic, as in Traefik.
    """

    name: str
    entrypoints: Tuple[str, ...]
    rule: str
    priority: int
    service: Node
    source: Location
    matcher: HTTPRule
    syntax: str = "v3"
    tls: Optional[RouteTLS] = None
    #: The middlewares the router names, qualified, entrypoint ones first (for the API).
    middlewares: Tuple[str, ...] = ()
    #: The steps a request runs through, in order: (qualified name, step) pairs.
    chain: Tuple[Tuple[str, Any], ...] = ()
    #: ``tls`` came from the entrypoint's ``http.tls``: its ``options`` as written there.
    model_options: Optional[str] = None


class RoutingTable:
    """What a built configuration routes: ``static``, ``services`` by name, routers per
    entrypoint, and ``nodes`` (every service node by definition, for the next rebuild).

    UDP has its own routers (at most one per UDP entrypoint) and nodes: ``udp_routers`` and
    ``udp_nodes``; so has TCP: ``tcp_routers``, ``tcp_services`` by name and ``tcp_nodes``,
    with the connection-level routing of each TCP entrypoint in ``entrypoint_tcp(name)``.
    ``tls`` is the TLS manager (certificates and options) of this configuration, if any.

    For the API only (routing never reads them): ``failed_routers`` (HTTP, TCP and UDP routes
    left out because of an error), ``failed_services`` (TraefikServices that did not build)
    and ``router_warnings`` (routers built without some of what they asked for).
    """

    def __init__(
        self,
        static: StaticConfig,
        routers: Sequence[HTTPRouter],
        services: Mapping[str, Node],
        nodes: Mapping[Definition, Node],
        udp_routers: Sequence[UDPRouter] = (),
        udp_nodes: Optional[Mapping[UDPDefinition, UDPNode]] = None,
        tcp_routers: Sequence[TCPRouter] = (),
        tcp_nodes: Optional[Mapping[TCPDefinition, TCPNode]] = None,
        tls: object = None,
        failed_routers: Sequence[FailedRouter] = (),
        failed_services: Sequence[FailedService] = (),
        router_warnings: Sequence[RouterWarning] = (),
        middlewares: Sequence[Any] = (),
        middleware_reuse: Optional[Mapping[Any, Any]] = None,
    ) -> None:
        self.static = static
        #: For the API: every HTTP and TCP middleware (MiddlewareInfo values).
        self.middlewares = tuple(middlewares)
        #: The built middleware steps, for the next rebuild to keep (HTTP, TCP).
        self.middleware_reuse: Mapping[Any, Any] = middleware_reuse or {}
        #: The active providers as /api/overview lists them (set by the build).
        self.providers: Tuple[str, ...] = ()
        self.tls = tls
        self.failed_routers = tuple(failed_routers)
        self.failed_services = tuple(failed_services)
        self.router_warnings = tuple(router_warnings)
        self.tcp_routers = tuple(tcp_routers)
        self.tcp_nodes: Mapping[TCPDefinition, TCPNode] = tcp_nodes or {}
        self.tcp_services: Dict[str, TCPNode] = {}
        for node in self.tcp_nodes.values():
            self.tcp_services.setdefault(node.name, node)
        self.services = services
        self.nodes = nodes
        self.routers = tuple(routers)
        self.udp_routers = tuple(udp_routers)
        self.udp_nodes: Mapping[UDPDefinition, UDPNode] = udp_nodes or {}
        self._udp = {name: router for router in self.udp_routers for name in router.entrypoints}
        plain: Dict[str, List[HTTPRouter]] = {e.name: [] for e in static.entrypoints}
        secure: Dict[str, List[HTTPRouter]] = {e.name: [] for e in static.entrypoints}
        for router in self.routers:
            for name in router.entrypoints:
                (plain if router.tls is None else secure).setdefault(name, []).append(router)
        self._http: Dict[Tuple[str, bool], RouterSet] = {}
        for tls, by_entrypoint in ((False, plain), (True, secure)):
            for name, routers in by_entrypoint.items():
                self._http[name, tls] = RouterSet(
                    [(r.name, r.matcher, r.priority, r) for r in routers]
                )
        self._ordered: Dict[Tuple[str, bool], Tuple[HTTPRouter, ...]] = {
            key: tuple(entry[3] for entry in router_set.ordered())  # type: ignore[misc]
            for key, router_set in self._http.items()
        }
        self._tcp: Dict[str, EntryPointTCP] = {}
        for entrypoint in static.entrypoints:
            if entrypoint.protocol != "tcp":
                continue
            name = entrypoint.name
            mine = [r for r in self.tcp_routers if name in r.entrypoints]
            self._tcp[name] = EntryPointTCP(
                plain=[r for r in mine if r.tls is None],
                tls=[r for r in mine if r.tls is not None],
                https_routers=secure.get(name, ()),
                http_routers=len(plain.get(name, ())),
            )

    def entrypoint_tcp(self, entrypoint: str) -> Optional[EntryPointTCP]:
        """The connection-level routing of a TCP entrypoint (None for an unknown one)."""
        return self._tcp.get(entrypoint)

    def http_route(
        self, entrypoint: str, req: HTTPRequestInfo, tls: bool = False
    ) -> Optional[HTTPRouter]:
        """The router that takes ``req`` on ``entrypoint``, or None (404). ``tls``: the
        request came over TLS, so the HTTPS routers (IngressRoute with ``tls``) take it."""
        router_set = self._http.get((entrypoint, tls))
        if router_set is None:
            return None
        return router_set.match(req)  # type: ignore[return-value]

    def http_routers(self, entrypoint: str, tls: bool = False) -> Tuple[HTTPRouter, ...]:
        """The HTTP routers (HTTPS ones with ``tls``) of ``entrypoint`` in evaluation order."""
        return self._ordered.get((entrypoint, tls), ())

    def udp_router(self, entrypoint: str) -> Optional[UDPRouter]:
        """The router serving the UDP entrypoint ``entrypoint``, if any."""
        return self._udp.get(entrypoint)

    def udp_service(self, entrypoint: str) -> Optional[UDPNode]:
        """The service new sessions on ``entrypoint`` pick their server from, if any."""
        router = self._udp.get(entrypoint)
        return None if router is None else router.service
