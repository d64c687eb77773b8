"""UDP services and routers: IngressRouteUDP routes to one router per UDP entrypoint.

A UDP service is the servers of one Kubernetes Service (round robin) or, for a route with
several services, those split by weight (earliest deadline first). No rules, no health, no
sticky: a session picks once. Pure: building and picking, no sockets.
"""

from __future__ import annotations

import ipaddress
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.resources import IngressRouteUDP, ServiceRef, UDPRoute
from tsproxy.config.static import StaticConfig
from tsproxy.runtime.endpoints import BuildError, ServiceDirectory, unroutable
from tsproxy.runtime.l4 import (
    L4Definition,
    L4LoadBalancer,
    L4LoadBalancerDef,
    L4Node,
    L4Weighted,
    L4WeightedChild,
    L4WeightedDef,
    host_port,
    instantiate,
)

__all__ = [
    "UDPDefinition",
    "UDPLoadBalancer",
    "UDPLoadBalancerDef",
    "UDPNode",
    "UDPRouter",
    "UDPServer",
    "UDPWeighted",
    "UDPWeightedChild",
    "UDPWeightedDef",
    "build_udp_routers",
]


@attrs.frozen(cache_hash=True)
class UDPServer:
    """One backend address: an IP address (v4 or v6) and a port."""

    host: str
    port: int

    @property
    def address(self) -> str:
        return host_port(self.host, self.port)


# UDP services are the shared layer-4 ones (tsproxy/runtime/l4.py) over UDPServer values.
UDPLoadBalancerDef = L4LoadBalancerDef
UDPWeightedChild = L4WeightedChild
UDPWeightedDef = L4WeightedDef
UDPDefinition = L4Definition
UDPLoadBalancer = L4LoadBalancer
UDPWeighted = L4Weighted
UDPNode = L4Node


@attrs.frozen(eq=False)
class UDPRouter:
    """The route serving ``entrypoints`` (each UDP entrypoint has at most one router).

    ``name`` is Traefik's key, ``<namespace>-<ingress name>-<route index>``; ``source``
    locates the route.
    """

    name: str
    entrypoints: Tuple[str, ...]
    service: UDPNode
    source: Location


@attrs.frozen(eq=False)
class _Candidate:
    """A route that built, before the one-router-per-entrypoint choice."""

    name: str
    entrypoints: Tuple[str, ...]
    definition: UDPDefinition
    source: Location
    path: str


class _UDPBuilder:
    def __init__(self, static: StaticConfig, directory: ServiceDirectory) -> None:
        self.static = static
        self.directory = directory
        self.errors: List[ConfigError] = []
        self.warnings: List[ConfigError] = []

    def entrypoints(self, ingress: IngressRouteUDP) -> Tuple[str, ...]:
        """The listed entrypoints that exist and are UDP, or every UDP one if none is listed."""
        wrong = "entrypoint {name} is not a UDP entrypoint (its address needs /udp)"
        kept, problems = self.static.select(ingress.entry_points, "udp", wrong)
        self.errors.extend(ingress.meta.location.error(problem) for problem in problems)
        return kept

    def servers(self, ref: ServiceRef) -> Tuple[UDPServer, ...]:
        _, pairs = self.directory.addresses(ref)
        for host, _port in pairs:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise BuildError(
                    f"service {ref.namespace}/{ref.name}: UDP servers need an IP address,"
                    f" {host!r} is a name (ExternalName hosts are not resolved for UDP)"
                ) from None
        return tuple(UDPServer(host, port) for host, port in pairs)

    def candidate(
        self, ingress: IngressRouteUDP, index: int, route: UDPRoute, entrypoints: Tuple[str, ...]
    ) -> Optional[_Candidate]:
        source = ingress.meta.location.at(route.line)
        problem = unroutable(route.path, entrypoints, route.services)
        if problem is not None:
            self.errors.append(source.error(problem))
            return None
        # Traefik's UDP keys are not normalized: "default-test.route-0".
        key = f"{ingress.meta.namespace}-{ingress.meta.name}-{index}"
        children = []
        for ref in route.services:
            try:
                servers = self.servers(ref)
            except BuildError as exc:
                self.errors.append(source.at(ref.line).error(f"{exc}, route dropped"))
                return None
            child_name = f"{key}-{ref.name}-{ref.port}"
            children.append(
                UDPWeightedChild(child_name, ref.weight, UDPLoadBalancerDef(child_name, servers))
            )
        definition: UDPDefinition
        if len(children) == 1:
            definition = attrs.evolve(children[0].definition, name=key)
        else:
            definition = UDPWeightedDef(key, tuple(children))
            if not any(child.weight for child in children):
                message = f"{route.path}: no service with a weight above 0: datagrams are dropped"
                self.warnings.append(source.error(message))
        return _Candidate(key, entrypoints, definition, source, route.path)

    def choose(self, candidates: Sequence[_Candidate]) -> Dict[_Candidate, Tuple[str, ...]]:
        """Per UDP entrypoint, the one router that serves it: as in Traefik, the first in
        descending name order. Each other router listing it is reported, naming the winner."""
        served: Dict[_Candidate, List[str]] = {}
        ordered = sorted(candidates, key=lambda c: c.name, reverse=True)
        for entrypoint in self.static.entrypoints:
            attached = [c for c in ordered if entrypoint.name in c.entrypoints]
            if not attached:
                continue
            winner = attached[0]
            served.setdefault(winner, []).append(entrypoint.name)
            for loser in attached[1:]:
                message = (
                    f"{loser.path}: entrypoint {entrypoint.name} already has the UDP router"
                    f" {winner.name} ({winner.source}); one UDP router per entrypoint, as in"
                    f" Traefik: {loser.name} is not used there"
                )
                self.errors.append(loser.source.error(message))
        return {candidate: tuple(names) for candidate, names in served.items()}


def build_udp_routers(
    ingresses: Sequence[IngressRouteUDP],
    static: StaticConfig,
    directory: ServiceDirectory,
    previous: Mapping[UDPDefinition, UDPNode],
) -> Tuple[List[UDPRouter], Dict[UDPDefinition, UDPNode], List[ConfigError], List[ConfigError]]:
    """The UDP routers of ``ingresses``: (routers, nodes by definition, errors, warnings).

    A route whose service cannot be resolved is dropped with a located error; nodes of
    ``previous`` with an unchanged definition are kept, with their balancer position.
    """
    builder = _UDPBuilder(static, directory)
    candidates = []
    for ingress in ingresses:
        entrypoints = builder.entrypoints(ingress)
        for index, route in enumerate(ingress.routes):
            candidate = builder.candidate(ingress, index, route, entrypoints)
            if candidate is not None:
                candidates.append(candidate)
    made: Dict[UDPDefinition, UDPNode] = {}
    routers = []
    served = builder.choose(candidates)
    for candidate in candidates:
        names = served.get(candidate)
        if names:
            node = instantiate(candidate.definition, previous, made)
            routers.append(UDPRouter(candidate.name, names, node, candidate.source))
    return routers, made, builder.errors, builder.warnings
