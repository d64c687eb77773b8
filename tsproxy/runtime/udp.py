"""UDP services and routers: IngressRouteUDP routes to one router per UDP entrypoint.

A UDP service is the servers of one Kubernetes Service (round robin) or, for a route with
several services, those split by weight (earliest deadline first). No rules, no health, no
sticky: a session picks once. Pure: building and picking, no sockets.
"""

from __future__ import annotations

import ipaddress
from typing import Dict, List, Mapping, Sequence, Tuple, Union

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.resources import IngressRouteUDP, ServiceRef, UDPRoute
from tsproxy.config.static import StaticConfig
from tsproxy.runtime.endpoints import BuildError, ServiceDirectory, unroutable
from tsproxy.runtime.failures import UDP, FailedRouter, RouterWarning
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
    "UDPBuild",
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
    listed: Tuple[str, ...] = ()
    problems: Tuple[str, ...] = ()


@attrs.frozen
class UDPBuild:
    """The UDP part of a build: routers, nodes by definition, errors and warnings, and for
    the API the routes that failed (or serve no entrypoint) and the routers with warnings."""

    routers: List[UDPRouter]
    nodes: Dict[UDPDefinition, UDPNode]
    errors: List[ConfigError]
    warnings: List[ConfigError]
    failed: List[FailedRouter]
    router_warnings: List[RouterWarning]


class _UDPBuilder:
    def __init__(self, static: StaticConfig, directory: ServiceDirectory) -> None:
        self.static = static
        self.directory = directory
        self.errors: List[ConfigError] = []
        self.warnings: List[ConfigError] = []
        # Per route that lost an entrypoint to another UDP router, why.
        self.lost: Dict[_Candidate, List[str]] = {}

    def entrypoints(self, ingress: IngressRouteUDP) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        """The listed entrypoints that exist and are UDP, or every UDP one if none is listed;
        and the problems with the listed ones."""
        wrong = "entrypoint {name} is not a UDP entrypoint (its address needs /udp)"
        kept, problems = self.static.select(ingress.entry_points, "udp", wrong)
        self.errors.extend(ingress.meta.location.error(problem) for problem in problems)
        return kept, problems

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
        self,
        ingress: IngressRouteUDP,
        index: int,
        route: UDPRoute,
        entrypoints: Tuple[str, ...],
        problems: Tuple[str, ...],
    ) -> Union[_Candidate, FailedRouter]:
        """The route built, or (its error recorded) what the API shows of it."""
        source = ingress.meta.location.at(route.line)
        # Traefik's UDP keys are not normalized: "default-test.route-0".
        key = f"{ingress.meta.namespace}-{ingress.meta.name}-{index}"
        listed = ingress.entry_points or entrypoints

        def failed(error: ConfigError) -> FailedRouter:
            self.errors.append(error)
            service = key if route.services else ""
            messages = problems + (error.message,)
            return FailedRouter(UDP, key, listed, entrypoints, "", 0, service, messages, source)

        problem = unroutable(route.path, entrypoints, route.services)
        if problem is not None:
            return failed(source.error(problem))
        children = []
        for ref in route.services:
            try:
                servers = self.servers(ref)
            except BuildError as exc:
                return failed(source.at(ref.line).error(f"{exc}, route dropped"))
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
        return _Candidate(key, entrypoints, definition, source, route.path, listed, problems)

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
                self.lost.setdefault(loser, []).append(message)
        return {candidate: tuple(names) for candidate, names in served.items()}


#: A UDP route before the choice; other providers (tsproxy/providers/file_l4.py) make them too.
UDPCandidate = _Candidate


def build_udp_routers(
    ingresses: Sequence[IngressRouteUDP],
    static: StaticConfig,
    directory: ServiceDirectory,
    previous: Mapping[UDPDefinition, UDPNode],
    others: Sequence[_Candidate] = (),
) -> UDPBuild:
    """The UDP routers of ``ingresses``.

    A route whose service cannot be resolved is dropped with a located error (and kept, as a
    FailedRouter, for the API, as is one that lost every entrypoint to another router); nodes
    of ``previous`` with an unchanged definition are kept, with their balancer position.
    """
    builder = _UDPBuilder(static, directory)
    candidates = []
    failed = []
    for ingress in ingresses:
        entrypoints, problems = builder.entrypoints(ingress)
        for index, route in enumerate(ingress.routes):
            candidate = builder.candidate(ingress, index, route, entrypoints, problems)
            if isinstance(candidate, FailedRouter):
                failed.append(candidate)
            else:
                candidates.append(candidate)
    candidates.extend(others)
    made: Dict[UDPDefinition, UDPNode] = {}
    routers = []
    warnings = []
    served = builder.choose(candidates)
    for candidate in candidates:
        names = served.get(candidate)
        messages = candidate.problems + tuple(builder.lost.get(candidate, ()))
        if names:
            node = instantiate(candidate.definition, previous, made)
            routers.append(UDPRouter(candidate.name, names, node, candidate.source))
            if messages:
                warnings.append(RouterWarning(UDP, candidate.name, candidate.listed, messages))
        else:
            failed.append(
                FailedRouter(
                    protocol=UDP,
                    name=candidate.name,
                    entrypoints=candidate.listed,
                    using=candidate.entrypoints,
                    rule="",
                    priority=0,
                    service=candidate.definition.name,
                    errors=messages,
                    source=candidate.source,
                )
            )
    return UDPBuild(routers, made, builder.errors, builder.warnings, failed, warnings)
