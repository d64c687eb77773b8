"""TCP services and routers: IngressRouteTCP routes to routers with a rule, a priority, TLS
settings and a service, and per entrypoint the three router sets Traefik's TCP router keeps.

A TCP service is the servers of one Kubernetes Service (round robin) or, for a route with
several services, those split by weight (earliest deadline first, as the issue asks; Traefik
itself interleaves by gcd). A connection picks once. Pure: building and picking, no sockets.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.resources import (
    IngressRouteTCP,
    RouteTLS,
    ServiceRef,
    TCPRoute,
    TCPServiceRef,
)
from tsproxy.config.static import StaticConfig
from tsproxy.rules import RuleError, TCPConnectionInfo, TCPRouterSet, TCPRule, compile_tcp_rule
from tsproxy.rules.http import parse_domains
from tsproxy.runtime.endpoints import BuildError, ServiceDirectory, unroutable
from tsproxy.runtime.failures import TCP as TCP_PROTOCOL
from tsproxy.runtime.failures import FailedRouter, RouterWarning, failed_route
from tsproxy.runtime.l4 import (
    L4Definition,
    L4LoadBalancer,
    L4LoadBalancerDef,
    L4Node,
    L4Weighted,
    L4WeightedChild,
    L4WeightedDef,
    instantiate,
)
from tsproxy.runtime.middlewares import api_name

# How servers are dialled (TCPServer, the transport chosen) lives in tcp_dial; re-exported.
from tsproxy.runtime.tcp_dial import (
    NamedTCPTransports,
    TCPServer,
    TCPTransports,
    chosen_transport,
    named_default,
    tcp_servers,
)

__all__ = [
    "CLOSE",
    "HTTP",
    "HTTPS",
    "TCP",
    "TCP_TLS",
    "EntryPointTCP",
    "HTTPSName",
    "NamedTCPTransports",
    "TCPBuild",
    "TCPDefinition",
    "TCPLoadBalancer",
    "TCPLoadBalancerDef",
    "TCPNode",
    "TCPRouter",
    "TCPServer",
    "TCPWeighted",
    "TCPWeightedDef",
    "build_tcp_routers",
    "named_default",
    "tcp_router_key",
    "tcp_servers",
]


# TCP services are the shared layer-4 ones (tsproxy/runtime/l4.py) over TCPServer values.
TCPLoadBalancerDef = L4LoadBalancerDef
TCPWeightedChild = L4WeightedChild
TCPWeightedDef = L4WeightedDef
TCPDefinition = L4Definition
TCPLoadBalancer = L4LoadBalancer
TCPWeighted = L4Weighted
TCPNode = L4Node


@attrs.frozen(eq=False)
class TCPRouter:
    """One IngressRouteTCP route. ``tls`` None: plain TCP; with ``tls.passthrough`` the raw
    TLS stream is relayed; otherwise TLS is terminated here and plaintext relayed."""

    name: str
    entrypoints: Tuple[str, ...]
    rule: str
    priority: int
    service: TCPNode
    source: Location
    matcher: TCPRule
    syntax: str = "v3"
    tls: Optional[RouteTLS] = None
    #: The MiddlewareTCPs the route names (qualified, for the API) and their steps, in order.
    middlewares: Tuple[str, ...] = ()
    chain: Tuple[Tuple[str, Any], ...] = ()

    @property
    def terminates(self) -> bool:
        return self.tls is not None and not self.tls.passthrough


def tcp_router_key(namespace: str, ingress: str, match: str) -> str:
    """Traefik's TCP router (and service) key: not normalized, dots are kept."""
    digest = hashlib.sha256(match.encode()).hexdigest()[:20]
    return f"{namespace}-{ingress}-{digest}"


# Where a connection goes: TLS ones (Traefik's pkg/server/router/tcp/router.go) to the HTTPS
# server or a TLS TCP router; others to the HTTP server, a plain TCP router, or nowhere.
HTTPS, TCP_TLS = "https", "tcp-tls"
HTTP, TCP, CLOSE = "http", "tcp", "close"


@attrs.frozen(eq=False)
class HTTPSName:
    """A HostSNI route of Traefik's HTTPS muxer: sends matching TLS connections to the HTTPS
    routers; ``options`` is the TLS option of the HTTPS routers for that host (None: the
    default options, also when those routers disagree)."""

    name: str
    options: Optional[object]


class EntryPointTCP:
    """What one TCP entrypoint routes at the connection level.

    ``plain``: non-TLS TCP routers; ``tls``: TLS TCP routers (passthrough or terminating);
    ``https``: one route per host of the entrypoint's HTTPS routers (plus a catch-all when
    one of them has no Host matcher), which only selects the HTTPS server and its TLS
    options. ``option_conflicts``: hosts whose HTTPS routers name different TLS options
    (Traefik then uses the default options for the host), with those routers.
    """

    def __init__(
        self,
        plain: Sequence[TCPRouter],
        tls: Sequence[TCPRouter],
        https_routers: Sequence[object],
        http_routers: int,
    ) -> None:
        self.plain = _router_set(plain)
        self.tls = _router_set(tls)
        self.has_http = http_routers > 0
        options: Dict[str, List[object]] = {}
        routers: Dict[str, List[object]] = {}
        catch_all = False
        for router in https_routers:
            domains = parse_domains(router.rule)  # type: ignore[attr-defined]
            if not domains:
                catch_all = True
            section = router.tls  # type: ignore[attr-defined]
            option = section.options if section is not None else None
            for domain in domains:
                routers.setdefault(domain, []).append(router)
                if option not in options.setdefault(domain, []):
                    options[domain].append(option)
        entries = []
        self.option_conflicts: Dict[str, Tuple[object, ...]] = {}
        for domain, found in options.items():
            if len(found) > 1:
                self.option_conflicts[domain] = tuple(routers[domain])
            rule = compile_tcp_rule("HostSNI(`%s`)" % domain.replace("`", ""))
            value = HTTPSName(domain, found[0] if len(found) == 1 else None)
            entries.append((domain, rule, rule.default_priority, value))
        self.https = TCPRouterSet(entries)
        self.https_catch_all = catch_all
        self.has_https = bool(https_routers)

    @property
    def mode(self) -> str:
        """``http``: no connection-level routing, every connection is HTTP; ``fast``: plain
        TCP routers only, routed at accept without reading; ``peek``: read first."""
        if not len(self.plain) and not len(self.tls) and not self.has_https:
            return "http"
        if len(self.plain) and not len(self.tls) and not self.has_https and not self.has_http:
            return "fast"
        return "peek"

    def route_plain(self, conn: TCPConnectionInfo) -> Optional[TCPRouter]:
        """The first plain TCP router whose rule takes ``conn``, if any."""
        return self.plain.match(conn)  # type: ignore[return-value]

    def route_at_accept(self, client_ip: str) -> Optional[TCPRouter]:
        """In ``fast`` mode, the plain TCP router that takes a new connection before it sends
        anything (so the server may speak first); None: read the first bytes instead."""
        if self.mode != "fast":
            return None
        return self.route_plain(TCPConnectionInfo("", (), client_ip))

    def route_cleartext(self, client_ip: str) -> Tuple[str, Optional[TCPRouter]]:
        """Where a connection whose first bytes are not TLS goes: (HTTP, None) when the
        entrypoint has HTTP routers or no plain TCP router, else (TCP, router), or (CLOSE,
        None) when no plain TCP router takes it.

        Traefik tries the plain TCP routers first, so a HostSNI(`*`) TCP router takes the
        HTTP traffic too; tsproxy gives non-TLS bytes to the HTTP routers when there are any.
        """
        if self.has_http or not len(self.plain):
            return HTTP, None
        router = self.route_plain(TCPConnectionInfo("", (), client_ip))
        return (CLOSE, None) if router is None else (TCP, router)

    def route_tls(self, conn: TCPConnectionInfo) -> Tuple[str, object]:
        """Where a TLS connection goes: (HTTPS, HTTPSName or None for the default options)
        or (TCP_TLS, TCPRouter), in Traefik's order: an HTTPS host; the first TLS router
        that matches, unless its rule is the catch-all HostSNI(`*`); the HTTPS catch-all;
        that catch-all TLS router; else HTTPS with the default options.

        As in Traefik, only the first matching TLS router counts: a catch-all with a higher
        priority than a specific router for the same name hides it.
        """
        named = self.https.match(conn)
        if named is not None:
            return HTTPS, named
        router: Optional[TCPRouter] = self.tls.match(conn)  # type: ignore[assignment]
        if router is not None and not router.matcher.is_catch_all:
            return TCP_TLS, router
        if self.https_catch_all:
            return HTTPS, None
        if router is not None:
            return TCP_TLS, router
        return HTTPS, None


def _router_set(routers: Iterable[TCPRouter]) -> TCPRouterSet:
    return TCPRouterSet([(r.name, r.matcher, r.priority, r) for r in routers])


@attrs.frozen
class TCPBuild:
    """The TCP part of a build: routers, nodes by definition, errors and warnings, and for
    the API the routes that failed and the routers with warnings."""

    routers: List[TCPRouter]
    nodes: Dict[TCPDefinition, TCPNode]
    errors: List[ConfigError]
    warnings: List[ConfigError]
    failed: List[FailedRouter]
    router_warnings: List[RouterWarning]


@attrs.frozen
class _Built:
    """A route that built, waiting for its node."""

    name: str
    matcher: TCPRule
    source: Location
    definition: TCPDefinition
    ingress: IngressRouteTCP
    route: TCPRoute
    entrypoints: Tuple[str, ...]
    problems: Tuple[str, ...]


class _TCPBuilder:
    def __init__(
        self,
        static: StaticConfig,
        directory: ServiceDirectory,
        transports: Optional[TCPTransports] = None,
    ) -> None:
        self.static = static
        self.directory = directory
        #: The named TCP transports (None: every service names none, or gets an error).
        self.transports = transports
        self.errors: List[ConfigError] = []
        self.warnings: List[ConfigError] = []
        self.middlewares: Any = None

    def entrypoints(self, ingress: IngressRouteTCP) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        wrong = "entrypoint {name} is a UDP entrypoint, TCP routes cannot use it"
        kept, problems = self.static.select(ingress.entry_points, "tcp", wrong)
        self.errors.extend(ingress.meta.location.error(problem) for problem in problems)
        return kept, problems

    def servers(self, ref: TCPServiceRef, parent_namespace: str) -> Tuple[TCPServer, ...]:
        lookup = ServiceRef(
            ref.name,
            ref.namespace,
            ref.line,
            ref.path,
            port=ref.port,
            native_lb=ref.native_lb,
            node_port_lb=ref.node_port_lb,
            cross_namespace=ref.cross_namespace,
        )
        _, pairs = self.directory.addresses(lookup)
        delay = ref.termination_delay / 1000.0
        written, default = ref.servers_transport, self.static.tcp_servers_transport
        transport = chosen_transport(written, parent_namespace, default, self.transports)
        name = written if written != "default@internal" else ""
        return tcp_servers(pairs, ref.proxy_protocol, delay, ref.tls, transport, name)

    def definition(
        self, key: str, route: TCPRoute, source: Location, namespace: str = ""
    ) -> Union[TCPDefinition, ConfigError]:
        """The service of a route (of an IngressRouteTCP in ``namespace``), or the error that
        keeps it from being built."""
        children = []
        for ref in route.services:
            try:
                servers = self.servers(ref, namespace)
            except BuildError as exc:
                text = str(exc)
                where = f"{ref.path}." if text.startswith(("tls:", "serversTransport:")) else ""
                return source.at(ref.line).error(f"{where}{exc}, route dropped")
            child_name = f"{key}-{ref.name}-{ref.port}"
            children.append(
                TCPWeightedChild(child_name, ref.weight, TCPLoadBalancerDef(child_name, servers))
            )
        if len(children) == 1:
            return attrs.evolve(children[0].definition, name=key)
        if not any(child.weight for child in children):
            message = f"{route.path}: no service with a weight above 0: connections are closed"
            self.warnings.append(source.error(message))
        return TCPWeightedDef(key, tuple(children))

    def route(
        self,
        ingress: IngressRouteTCP,
        route: TCPRoute,
        entrypoints: Tuple[str, ...],
        problems: Tuple[str, ...],
    ) -> Union[_Built, FailedRouter]:
        """The route built, or (its error recorded) what the API shows of it."""
        source = ingress.meta.location.at(route.line)
        key = tcp_router_key(ingress.meta.namespace, ingress.meta.name, route.match)

        def failed(error: ConfigError) -> FailedRouter:
            self.errors.append(error)
            service = key if route.services else ""
            made = failed_route(
                TCP_PROTOCOL, ingress, route, key, entrypoints, service, problems + (error.message,)
            )
            if self.middlewares is not None:
                self.middlewares.mark_used(route.middlewares, key)
            return attrs.evolve(made, middlewares=tuple(map(api_name, route.middlewares)))

        problem = unroutable(route.path, entrypoints, route.services)
        if problem is not None:
            return failed(source.error(problem))
        try:
            rule = compile_tcp_rule(route.match, syntax=route.syntax or "v3")
        except RuleError as exc:
            return failed(source.error(f"match: {exc}"))
        if rule.uses_sni and ingress.tls is None:
            message = (
                f"{route.path}.match: HostSNI or HostSNIRegexp other than HostSNI(`*`) needs"
                " TLS (spec.tls): without it there is no SNI to match, route dropped"
            )
            return failed(source.error(message))
        problem = self.directory.tls_options_problem(ingress.tls, ingress.meta.namespace)
        if problem is not None:
            return failed(source.error(problem))
        definition = self.definition(key, route, source, ingress.meta.namespace)
        if isinstance(definition, ConfigError):
            return failed(definition)
        return _Built(key, rule, source, definition, ingress, route, entrypoints, problems)


def build_tcp_routers(
    ingresses: Sequence[IngressRouteTCP],
    static: StaticConfig,
    directory: ServiceDirectory,
    previous: Mapping[TCPDefinition, TCPNode],
    middlewares: Any = None,
    transports: Optional[TCPTransports] = None,
) -> TCPBuild:
    """The TCP routers of ``ingresses``.

    A route with a problem is dropped with a located error (and kept, as a FailedRouter, for
    the API); a later route with the same key (same namespace, name and match) replaces an
    earlier one with a warning. Nodes of ``previous`` with an unchanged definition are kept,
    with their balancer position.
    """
    builder = _TCPBuilder(static, directory, transports)
    builder.middlewares = middlewares
    made_routes: Dict[str, Union[_Built, FailedRouter]] = {}
    for ingress in ingresses:
        entrypoints, problems = builder.entrypoints(ingress)
        for route in ingress.routes:
            built = builder.route(ingress, route, entrypoints, problems)
            earlier = made_routes.pop(built.name, None)
            if earlier is not None:
                message = f"{route.path}: same match as the route at {earlier.source}, replaces it"
                builder.warnings.append(built.source.error(message))
            made_routes[built.name] = built
    made: Dict[TCPDefinition, TCPNode] = {}
    routers = []
    failed = []
    warnings = []
    for built in made_routes.values():
        if isinstance(built, FailedRouter):
            failed.append(built)
            continue
        route = built.route
        names = tuple(api_name(ref) for ref in route.middlewares)
        steps: Tuple[Tuple[str, Any], ...] = ()
        if middlewares is not None:
            middlewares.mark_used(route.middlewares, built.name)
            try:
                steps = middlewares.steps(route.middlewares, built.name)
            except BuildError as exc:
                error = built.source.error(f"{route.path}.middlewares: {exc}")
                builder.errors.append(error)
                made_failed = failed_route(
                    TCP_PROTOCOL,
                    built.ingress,
                    route,
                    built.name,
                    built.entrypoints,
                    built.name if route.services else "",
                    built.problems + (error.message,),
                )
                failed.append(attrs.evolve(made_failed, middlewares=names))
                continue
        routers.append(
            TCPRouter(
                name=built.name,
                entrypoints=built.entrypoints,
                rule=route.match,
                priority=route.priority or built.matcher.default_priority,
                service=instantiate(built.definition, previous, made),
                source=built.source,
                matcher=built.matcher,
                syntax=built.matcher.syntax,
                tls=built.ingress.tls,
                middlewares=names,
                chain=steps,
            )
        )
        if built.problems:
            listed = built.ingress.entry_points or built.entrypoints
            warnings.append(RouterWarning(TCP_PROTOCOL, built.name, listed, built.problems))
    return TCPBuild(routers, made, builder.errors, builder.warnings, failed, warnings)
