"""Loaded resources to a RoutingTable: Service references to servers, TraefikService trees with
cycle checks, IngressRoute routes to routers. Every problem is a located error, and a route with
a problem is dropped (as Traefik does) while the others keep working; what was dropped is kept
on the table as plain values (tsproxy/runtime/failures.py) for the API to show as disabled.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar, Union

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.kinds_core import ConfigMap
from tsproxy.config.load import LoadedConfig
from tsproxy.config.resources import (
    HTTPRoute,
    IngressRoute,
    IngressRouteTCP,
    IngressRouteUDP,
    MiddlewareRef,
    ServersTransport,
    TraefikService,
)
from tsproxy.config.static import StaticConfig
from tsproxy.middlewares.redirection import SchemeRedirect
from tsproxy.providers.merge import Merge, build_file_tls, crd_options, node_of
from tsproxy.rules import HTTPRule, RuleError, compile_http_rule
from tsproxy.runtime.build_services import (
    Key,
    _no_other,
    _RefError,
    _route_service_name,
    _ServiceBuilder,
    normalize,
)
from tsproxy.runtime.endpoints import BuildError, ServiceDirectory, unroutable
from tsproxy.runtime.failures import (
    HTTP,
    FailedRouter,
    FailedService,
    RouterWarning,
    failed_route,
)
from tsproxy.runtime.middlewares import (
    MiddlewareInfo,
    MiddlewareSet,
    Step,
    api_name,
    qualified_key,
)
from tsproxy.runtime.services import (
    Definition,
    LoadBalancer,
    LoadBalancerDef,
    Node,
    TransportSettings,
    WeightedDef,
    instantiate,
)
from tsproxy.runtime.table import HTTPRouter, RoutingTable
from tsproxy.runtime.tcp import NamedTCPTransports, build_tcp_routers
from tsproxy.runtime.udp import build_udp_routers
from tsproxy.tls import build_tls

__all__ = ["BuildResult", "build_table", "normalize", "router_key"]

_T = TypeVar("_T")


def router_key(namespace: str, ingress: str, match: str) -> str:
    """The router (and single-service) name of an IngressRoute route."""
    digest = hashlib.sha256(match.encode()).hexdigest()[:20]
    return normalize(f"{namespace}-{ingress}-{digest}")


@attrs.frozen
class BuildResult:
    """The table and the problems met building it (the loader's own errors are not repeated).

    ``table`` is None only when ``loaded.static`` is None: without entrypoints there is nothing
    to route.
    """

    table: Optional[RoutingTable]
    errors: Tuple[ConfigError, ...]
    warnings: Tuple[ConfigError, ...]


class _Builder(_ServiceBuilder):
    """One build: resource indexes, TraefikService results, collected problems."""

    def __init__(
        self,
        loaded: LoadedConfig,
        static: StaticConfig,
        reactor: Any = None,
        reuse: Optional[Mapping[Any, Any]] = None,
    ) -> None:
        self.static = static
        self.default_transport = static.servers_transport
        resources = loaded.resources
        options = crd_options(static)
        self.middlewares = MiddlewareSet(
            resources,
            False,
            reactor,
            dict(reuse or {}),
            options.allow_cross_namespace,
            loaded.file.middlewares if loaded.file is not None else (),
            tuple((provider, config.middlewares) for provider, config in loaded.kv),
        )
        self.directory = ServiceDirectory(resources, options)
        self.middlewares.servers_of = self._page_servers
        self.traefik_services: Dict[Key, TraefikService] = {}
        self.transports: Dict[Key, ServersTransport] = {}
        self.config_maps: Dict[Key, ConfigMap] = {}
        self.ingress_routes: List[IngressRoute] = []
        self.udp_ingresses: List[IngressRouteUDP] = []
        self.tcp_ingresses: List[IngressRouteTCP] = []
        for resource in resources:
            key = (resource.meta.namespace, resource.meta.name)
            if isinstance(resource, TraefikService):
                self.traefik_services[key] = resource
            elif isinstance(resource, ServersTransport):
                self.transports[key] = resource
            elif isinstance(resource, ConfigMap):
                self.config_maps[key] = resource
            elif isinstance(resource, IngressRoute):
                self.ingress_routes.append(resource)
            elif isinstance(resource, IngressRouteUDP):
                self.udp_ingresses.append(resource)
            elif isinstance(resource, IngressRouteTCP):
                self.tcp_ingresses.append(resource)
        self.errors: List[ConfigError] = []
        self.warnings: List[ConfigError] = []
        # A TraefikService's definition, or the location of the error that sank it.
        self.built: Dict[Key, Union[Definition, Location]] = {}
        self.failed_services: List[FailedService] = []
        # Qualified references to other providers (set by tsproxy.providers.merge).
        self.other: Callable[[str, bool], Definition] = _no_other
        self.other_transport: Callable[[str], TransportSettings] = _no_other

    def entrypoints(self, ingress: IngressRoute) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        """The entrypoints of an IngressRoute: the listed ones that exist and speak TCP, or
        every TCP entrypoint when none is listed; and the problems with the listed ones."""
        wrong = "entrypoint {name} is a UDP entrypoint, HTTP routes cannot use it"
        kept, problems = self.static.select(ingress.entry_points, "tcp", wrong)
        self.errors.extend(ingress.meta.location.error(problem) for problem in problems)
        return kept, problems

    def routes(self) -> Tuple[List[_Route], List[FailedRouter]]:
        """Every usable route and every failed one, in resource order; a later route with the
        same key (usable or not) replaces an earlier one, as a later key does in Traefik."""
        made: Dict[str, Union[_Route, FailedRouter]] = {}
        for ingress in self.ingress_routes:
            entrypoints, problems = self.entrypoints(ingress)
            for route in ingress.routes:
                built = self.route(ingress, route, entrypoints, problems)
                earlier = made.pop(built.name, None)
                if earlier is not None:
                    message = (
                        f"{route.path}: same match as the route at {earlier.source}, replaces it"
                    )
                    self.warnings.append(built.source.error(message))
                made[built.name] = built
        routes = [built for built in made.values() if isinstance(built, _Route)]
        failed = [built for built in made.values() if isinstance(built, FailedRouter)]
        return routes, failed

    def route(
        self,
        ingress: IngressRoute,
        route: HTTPRoute,
        entrypoints: Tuple[str, ...],
        problems: Tuple[str, ...],
    ) -> Union[_Route, FailedRouter]:
        """The route built, or (its error recorded) what the API shows of it."""
        source = ingress.meta.location.at(route.line)
        key = router_key(ingress.meta.namespace, ingress.meta.name, route.match)

        refs = _route_refs(route)

        def failed(error: ConfigError) -> FailedRouter:
            self.errors.append(error)
            service = _route_service_name(route.services, key)
            self.middlewares.mark_used(refs, key)
            made = failed_route(
                HTTP, ingress, route, key, entrypoints, service, problems + (error.message,)
            )
            return attrs.evolve(made, middlewares=tuple(map(api_name, refs)))

        problem = unroutable(route.path, entrypoints, route.services)
        if problem is not None:
            return failed(source.error(problem))
        syntax = route.syntax or "v3"
        try:
            rule = compile_http_rule(route.match, syntax=syntax)
        except RuleError as exc:
            return failed(source.error(f"match: {exc}"))
        problem = self.directory.tls_options_problem(ingress.tls, ingress.meta.namespace)
        if problem is not None:
            return failed(source.error(problem))
        try:
            definition = self.route_service(ingress, route, key)
        except _RefError as error:
            return failed(source.at(error.ref.line).error(error.message))
        if isinstance(definition, WeightedDef) and not any(c.weight for c in definition.children):
            message = f"{route.path}: no service with a weight above 0: requests get 503"
            self.warnings.append(source.error(message))
        priority = route.priority or rule.default_priority
        return _Route(
            key,
            entrypoints,
            route.match,
            priority,
            source,
            rule,
            syntax,
            ingress,
            definition,
            problems,
            route,
            refs,
        )

    # Middlewares

    def entrypoint_refs(self, entrypoint: str) -> Tuple[MiddlewareRef, ...]:
        """The entrypoint's ``http.middlewares``, as references (``name@provider``)."""
        names = self.static.entrypoint(entrypoint).middlewares
        path = f"entryPoints.{entrypoint}.http.middlewares"
        return tuple(MiddlewareRef(name, "", 0, f"{path}[{i}]") for i, name in enumerate(names))

    def with_middlewares(self, routes: List[_Route]) -> Tuple[List[_Route], List[FailedRouter]]:
        """Each route with its steps; a route on an entrypoint with ``http.middlewares`` gets
        those first, and a route on several such entrypoints is split into one router per
        entrypoint named ``<entrypoint>-<router>``, as Traefik's applyModel does. A router
        whose middlewares cannot all be built is disabled (fail closed)."""
        done: List[_Route] = []
        failed: List[FailedRouter] = []
        for route in routes:
            plain = []
            variants: List[Tuple[str, Tuple[str, ...], Tuple[MiddlewareRef, ...]]] = []
            for entrypoint in route.entrypoints:
                if self.static.entrypoint(entrypoint).has_model:
                    name = (
                        f"{entrypoint}-{route.name}" if len(route.entrypoints) > 1 else route.name
                    )
                    refs = self.entrypoint_refs(entrypoint) + route.refs
                    variants.append((name, (entrypoint,), refs))
                else:
                    plain.append(entrypoint)
            if plain:
                variants.insert(0, (route.name, tuple(plain), route.refs))
            for name, entrypoints, refs in variants:
                variant = attrs.evolve(route, name=name, entrypoints=entrypoints, refs=refs)
                built = self.route_steps(variant, len(variants) > 1)
                (done if isinstance(built, _Route) else failed).append(built)  # type: ignore[arg-type]
        return done, failed

    def route_steps(self, route: _Route, split: bool = False) -> Union[_Route, FailedRouter]:
        """``route`` with its chain, or the FailedRouter its first broken reference makes."""
        self.middlewares.mark_used(route.refs, route.name)
        steps: List[Step] = []
        for ref in route.refs:
            try:
                steps.extend(self.middlewares.steps((ref,), route.name))
            except BuildError as exc:
                where = route.source.at(ref.line) if ref.line else route.source
                error = where.error(f"{ref.path}: {exc}")
                self.errors.append(error)
                made = failed_route(
                    HTTP,
                    route.ingress,
                    route.route,
                    route.name,
                    route.entrypoints,
                    _route_service_name(route.route.services, route.name),
                    route.problems + (error.message,),
                )
                return attrs.evolve(
                    made,
                    middlewares=tuple(map(api_name, route.refs)),
                    entrypoints=route.entrypoints if split else made.entrypoints,
                )
        return attrs.evolve(route, steps=tuple(steps))

    def redirections(self) -> List[HTTPRouter]:
        """Traefik's ``<entrypoint>-to-<target>`` internal routers of every entrypoint with
        ``http.redirections.entryPoint`` (their steps: the entrypoint's middlewares, then the
        redirect); a router whose entrypoint middlewares cannot be built is left out."""
        routers = []
        for entrypoint in self.static.entrypoints:
            redirection = entrypoint.redirection
            if redirection is None:
                continue
            target = redirection.to
            port = target[1:] if target.startswith(":") else ""
            if not port:
                port = str(self.static.entrypoint(target).port)
            name = normalize(f"{entrypoint.name}-to-{target}")
            step_name = f"redirect-{name}@internal"
            step = SchemeRedirect(step_name, redirection.scheme, port, redirection.permanent)
            refs = self.entrypoint_refs(entrypoint.name)
            location = entrypoint.location
            try:
                steps = self.middlewares.steps(refs, f"{name}@internal")
            except BuildError as exc:
                self.errors.append(location.error(f"http.middlewares: {exc}"))
                continue
            rule = "HostRegexp(`^.+$`)"
            routers.append(
                HTTPRouter(
                    name=f"{name}@internal",
                    entrypoints=(entrypoint.name,),
                    rule=rule,
                    priority=redirection.priority,
                    service=LoadBalancer.build(LoadBalancerDef("noop@internal", ())),
                    source=location,
                    matcher=compile_http_rule(rule),
                    middlewares=tuple(map(api_name, refs)) + (step_name,),
                    chain=steps + ((step_name, step),),
                )
            )
        return routers


@attrs.frozen
class _Route:
    """A route that built, waiting for its service node."""

    name: str
    entrypoints: Tuple[str, ...]
    rule: str
    priority: int
    source: Location
    matcher: HTTPRule
    syntax: str
    ingress: IngressRoute
    definition: Definition
    problems: Tuple[str, ...] = ()
    route: Any = None
    #: The route's middleware references (entrypoint ones first once split), its steps.
    refs: Tuple[MiddlewareRef, ...] = ()
    steps: Tuple[Step, ...] = ()

    def warning(self) -> Optional[RouterWarning]:
        """Traefik's "warning" status: some listed entrypoints could not be used."""
        if not self.problems:
            return None
        listed = self.ingress.entry_points or self.entrypoints
        return RouterWarning(HTTP, self.name, listed, self.problems)

    def router(self, service: Node) -> HTTPRouter:
        return HTTPRouter(
            name=self.name,
            entrypoints=self.entrypoints,
            rule=self.rule,
            priority=self.priority,
            service=service,
            source=self.source,
            matcher=self.matcher,
            syntax=self.syntax,
            tls=self.ingress.tls,
            middlewares=tuple(map(api_name, self.refs)),
            chain=self.steps,
        )


def _route_refs(route: HTTPRoute) -> Tuple[MiddlewareRef, ...]:
    """The route's middlewares, then those of its service when it has exactly one (Traefik
    runs a service's middlewares in front of it, after the router's)."""
    if len(route.services) == 1:
        return route.middlewares + route.services[0].middlewares
    return route.middlewares


def _redirection_infos(routers: List[HTTPRouter]) -> List[MiddlewareInfo]:
    """The redirectScheme middlewares Traefik lists for entrypoint redirections."""
    infos = []
    for router in routers:
        for name, step in router.chain:
            if isinstance(step, SchemeRedirect):
                config = {"scheme": step.scheme, "port": step.port, "permanent": step.permanent}
                infos.append(MiddlewareInfo(name, "redirectScheme", config, (), (router.name,)))
    return infos


def build_table(
    loaded: LoadedConfig, previous: Optional[RoutingTable] = None, reactor: Any = None
) -> BuildResult:
    """Build the routing table of ``loaded``.

    Nodes of ``previous`` whose definition is unchanged are kept, with their balancer state
    (WRR position, round robin position, mirror counters), so a reload does not reset them.
    """
    static = loaded.static
    if static is None:
        return BuildResult(None, (), ())
    steps_reuse: Mapping[Any, Any] = previous.middleware_reuse if previous is not None else {}
    builder = _Builder(loaded, static, reactor, steps_reuse.get("http"))
    merge = Merge(builder, loaded.file, static, loaded.kv)
    for key in builder.traefik_services:
        try:
            builder.traefik_service(key)
        except BuildError:
            pass  # recorded at the TraefikService; routes using it report their own error
    routes, failed_routers = builder.routes()
    routes, failed_steps = builder.with_middlewares(routes)
    failed_routers += failed_steps
    merge.crd_routes.update((r.name, r.definition) for r in routes)
    file_routes, file_failed = merge.file_routes()
    made: Dict[Definition, Node] = {}
    reuse: Mapping[Definition, Node] = previous.nodes if previous is not None else {}
    for built in merge.definitions():
        instantiate(built, reuse, made)
    every_route: List[Any] = [*routes, *file_routes]
    routers = [
        route.router(node_of(route.definition, lambda d: instantiate(d, reuse, made)))
        for route in every_route
    ]
    routers += builder.redirections()
    builder.middlewares.build_all()
    services: Dict[str, Node] = {}
    for node in [*made.values(), *(r.service for r in routers)]:
        services.setdefault(node.name, node)
    tcp_middlewares = MiddlewareSet(
        loaded.resources,
        True,
        reactor,
        steps_reuse.get("tcp"),
        crd_options(static).allow_cross_namespace,
        loaded.file.tcp_middlewares if loaded.file is not None else (),
        tuple((provider, config.tcp_middlewares) for provider, config in loaded.kv),
    )
    file_l4 = merge.layer4(previous, tcp_middlewares)
    udp = build_udp_routers(
        builder.udp_ingresses,
        static,
        builder.directory,
        previous.udp_nodes if previous is not None else {},
        file_l4.udp_candidates,
    )
    tcp = build_tcp_routers(
        builder.tcp_ingresses,
        static,
        builder.directory,
        previous.tcp_nodes if previous is not None else {},
        tcp_middlewares,
        NamedTCPTransports(loaded.resources, builder),
    )
    tcp_middlewares.build_all()
    tls = build_file_tls(loaded, build_tls)
    routers = merge.entrypoint_tls(routers, tls.manager, failed_routers)
    router_warnings = [w for w in (r.warning() for r in every_route) if w is not None]
    router_warnings += file_l4.tcp.router_warnings
    table = RoutingTable(
        static,
        routers,
        services,
        made,
        udp.routers,
        udp.nodes,
        tcp.routers + file_l4.tcp.routers,
        {**tcp.nodes, **file_l4.tcp.nodes},
        tls=tls.manager,
        failed_routers=failed_routers + file_failed + tcp.failed + udp.failed + [*file_l4.failed],
        failed_services=builder.failed_services + merge.failed_services(),
        router_warnings=router_warnings + tcp.router_warnings + udp.router_warnings,
        middlewares=builder.middlewares.infos(qualified_key)
        + tcp_middlewares.infos(qualified_key)
        + tuple(_redirection_infos(routers)),
        middleware_reuse={"http": builder.middlewares.reuse, "tcp": tcp_middlewares.reuse},
    )
    errors = (
        tuple(builder.errors)
        + tuple(builder.middlewares.errors)
        + tuple(tcp_middlewares.errors)
        + tuple(udp.errors)
        + tuple(tcp.errors)
        + tls.errors
        + merge.errors()
        + file_l4.errors
    )
    table.providers = static.providers.names
    warnings = tuple(builder.warnings) + tuple(udp.warnings) + tuple(tcp.warnings) + tls.warnings
    warnings += merge.warnings()
    return BuildResult(table, errors, warnings)
