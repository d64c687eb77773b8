"""The file provider's configuration to routing-table parts: its services as the same
definitions the CRD provider's become (load balancers, weighted, mirroring, failover,
highest random weight), its routers as
the same HTTP routers, every name ending in ``@file``.

Pure. References to other providers (``x@kubernetescrd``, ``noop@internal``) go through the
``other`` callable the merge gives; a problem is a located error that disables the router or
service it sank, and leaves every other route alone.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

import attrs

from tsproxy.balance.sticky import cookie_name
from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.fileformat_values import FileConfiguration, FileRouter, FileService
from tsproxy.config.resources import MiddlewareRef, TransportSettings
from tsproxy.config.static import StaticConfig
from tsproxy.providers import FILE, reference
from tsproxy.rules import HTTPRule, RuleError, compile_http_rule
from tsproxy.runtime.endpoints import BuildError
from tsproxy.runtime.failures import HTTP, FailedRouter, FailedService, RouterWarning
from tsproxy.runtime.internal import InternalServiceDef
from tsproxy.runtime.services import (
    Definition,
    FailoverDef,
    HighestRandomWeightDef,
    LoadBalancerDef,
    MirroringDef,
    Node,
    Server,
    WeightedChild,
    WeightedDef,
    reports_status,
)
from tsproxy.runtime.table import HTTPRouter

__all__ = ["FileBuilder", "FileRoute", "parse_server_url"]

AnyDefinition = Union[Definition, InternalServiceDef]
_DEFAULT_PORTS = {"http": 80, "https": 443, "h2c": 80}


def parse_server_url(url: str, transport: TransportSettings, preserve_path: bool = False) -> Server:
    """A server from ``scheme://host[:port][/path]`` (the path as written); BuildError says
    what is wrong."""
    scheme, _, rest = url.partition("://")
    slash = rest.find("/")
    hostport, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    host, port_text = hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise BuildError(f"server URL {url}: unclosed [ in the host")
        host, port_text = hostport[1:end], hostport[end + 1 :].lstrip(":")
    elif ":" in hostport:
        host, _, port_text = hostport.rpartition(":")
    if not host:
        raise BuildError(f"server URL {url}: no host")
    if port_text and (not port_text.isdigit() or not 0 < int(port_text) < 65536):
        raise BuildError(f"server URL {url}: invalid port {port_text!r}")
    port = int(port_text) if port_text else _DEFAULT_PORTS[scheme]
    return Server.at(scheme, host, port, transport, path, preserve_path)


@attrs.frozen
class FileRoute:
    """A file router that built, waiting for its service node."""

    spec: FileRouter
    name: str
    entrypoints: Tuple[str, ...]
    priority: int
    matcher: HTTPRule
    definition: AnyDefinition
    problems: Tuple[str, ...] = ()
    #: The middlewares as the API lists them (entrypoint ones first) and their steps.
    middlewares: Tuple[str, ...] = ()
    steps: Tuple[Any, ...] = ()

    def warning(self) -> Optional[RouterWarning]:
        if not self.problems:
            return None
        return RouterWarning(HTTP, self.name, self.spec.entry_points, self.problems)

    def router(self, service: Node) -> HTTPRouter:
        spec = self.spec
        return HTTPRouter(
            name=self.name,
            entrypoints=self.entrypoints,
            rule=spec.rule,
            priority=self.priority,
            service=service,
            source=spec.location,
            matcher=self.matcher,
            syntax=spec.syntax or "v3",
            tls=spec.tls,
            middlewares=self.middlewares,
            chain=self.steps,
        )


def _ref(written: str, path: str, line: int, provider: str = FILE) -> MiddlewareRef:
    """A router's middleware reference: a bare name is its own provider's."""
    return MiddlewareRef(written if "@" in written else f"{written}@{provider}", "", line, path)


class FileBuilder:
    """One build of the file provider's part. ``other(name, top)`` resolves a qualified
    reference to another provider (``top``: it is a router's own service)."""

    def __init__(
        self,
        config: FileConfiguration,
        static: StaticConfig,
        other: Callable[[str, bool], AnyDefinition],
        transport_of: Callable[[str], TransportSettings],
        provider: str = FILE,
        middlewares: Any = None,
    ) -> None:
        self.provider = provider
        #: The build's MiddlewareSet (tsproxy.runtime.middlewares), file ones included.
        self.middlewares = middlewares
        self.config = config
        self.static = static
        self.other = other
        self.transport_of = transport_of
        self.services: Dict[str, FileService] = {s.name: s for s in config.services}
        self.transports = {t.name: t.settings for t in config.transports}
        self.built: Dict[str, Union[Definition, Location]] = {}
        self.building: Set[str] = set()
        self.errors: List[ConfigError] = []
        self.warnings: List[ConfigError] = []
        self.failed_services: List[FailedService] = []

    def ref(self, written: str, top: bool = False) -> AnyDefinition:
        """The definition a service name written in this provider refers to."""
        name, provider = reference(written, self.provider)
        if provider != self.provider:
            return self.other(f"{name}@{provider}", top)
        return self.service(name)

    def service(self, name: str) -> Definition:
        done = self.built.get(name)
        if isinstance(done, Location):
            raise BuildError(f"service {name}@{self.provider} has errors (see {done})")
        if done is not None:
            return done
        spec = self.services.get(name)
        if spec is None:
            raise BuildError(f"service {name}@{self.provider} does not exist")
        if name in self.building:
            raise BuildError(f"reference cycle through service {name}@{self.provider}")
        self.building.add(name)
        try:
            definition = self._build(spec)
        except BuildError as exc:
            self.errors.append(spec.location.error(str(exc)))
            self.built[name] = spec.location
            self.failed_services.append(_failed_service(spec, str(exc), self.provider))
            raise BuildError(
                f"service {name}@{self.provider} has errors (see {spec.location})"
            ) from None
        finally:
            self.building.discard(name)
        self.built[name] = definition
        return definition

    def transport(self, written: str) -> TransportSettings:
        if written in ("", "default@internal"):
            return self.static.servers_transport
        name, provider = reference(written, self.provider)
        if provider != self.provider:
            return self.transport_of(f"{name}@{provider}")
        settings = self.transports.get(name)
        if settings is None:
            raise BuildError(f"serversTransport {name}@{self.provider} does not exist")
        return settings

    def child(
        self, written: str, follow: bool = False, why: str = "the parent has healthCheck: {}"
    ) -> Definition:
        """A child service; ``follow``: its parent follows its status (``why``: its
        ``healthCheck: {}``, or a failover's main service), so it must report one
        (Traefik's all or nothing)."""
        definition = self.ref(written)
        if isinstance(definition, InternalServiceDef):
            raise BuildError(f"{written}: an internal service can only be a router's service")
        if follow and not reports_status(definition):
            raise BuildError(
                f"service {written} reports no status ({why}):"
                " it needs a healthCheck (or healthCheck: {} on a weighted one)"
            )
        return definition

    def _weighted_children(
        self, spec: FileService, services: Sequence[Any], follow: bool
    ) -> Tuple[WeightedChild, ...]:
        """A weighted or highestRandomWeight service's children, with the warning Traefik
        logs when none weighs above 0."""
        children = tuple(
            WeightedChild(c.name, c.amount, self.child(c.name, follow)) for c in services
        )
        if not any(child.weight for child in children):
            message = "no service with a weight above 0: requests get 503"
            self.warnings.append(spec.location.error(message))
        return children

    def _build(self, spec: FileService) -> Definition:
        qualified = f"{spec.name}@{self.provider}"
        if spec.load_balancer is not None:
            balancer = spec.load_balancer
            transport = self.transport(balancer.servers_transport)
            servers = tuple(
                parse_server_url(s.url, transport, s.preserve_path) for s in balancer.servers
            )
            sticky = balancer.sticky
            if sticky is not None:
                sticky = attrs.evolve(sticky, name=cookie_name(sticky.name, qualified))
            return LoadBalancerDef(
                qualified,
                servers,
                balancer.pass_host_header,
                sticky,
                balancer.health_check,
                balancer.passive,
                balancer.strategy,
                tuple(s.weight for s in balancer.servers)
                if any(s.weight is not None for s in balancer.servers)
                else (),
            )
        if spec.weighted is not None:
            follow = spec.weighted.health_check
            children = self._weighted_children(spec, spec.weighted.services, follow)
            sticky = spec.weighted.sticky
            if sticky is not None:
                sticky = attrs.evolve(sticky, name=cookie_name(sticky.name, qualified))
            return WeightedDef(qualified, children, sticky, follow)
        if spec.highest_random_weight is not None:
            follow = spec.highest_random_weight.health_check
            children = self._weighted_children(spec, spec.highest_random_weight.services, follow)
            return HighestRandomWeightDef(qualified, children, follow)
        if spec.failover is not None:
            failover = spec.failover
            main = self.child(failover.service, True, "the failover follows it")
            why = "the failover has healthCheck: {}"
            fallback = self.child(failover.fallback, failover.health_check, why)
            return FailoverDef(
                qualified,
                main,
                failover.service,
                fallback,
                failover.fallback,
                failover.health_check,
            )
        mirroring = spec.mirroring
        assert mirroring is not None
        main = self.child(mirroring.service, mirroring.health_check)
        mirrors = tuple((self.child(m.name), m.amount) for m in mirroring.mirrors)
        return MirroringDef(
            qualified, main, mirrors, mirroring.max_body_size, mirroring.mirror_body
        )

    def routes(self) -> Tuple[List[FileRoute], List[FailedRouter]]:
        routes: List[FileRoute] = []
        failed: List[FailedRouter] = []
        for spec in self.config.routers:
            built = self.route(spec)
            if isinstance(built, FailedRouter):
                failed.append(built)
                continue
            for variant in self.with_middlewares(built):
                (routes if isinstance(variant, FileRoute) else failed).append(variant)  # type: ignore[arg-type]
        return routes, failed

    def with_middlewares(self, route: FileRoute) -> List[Union[FileRoute, FailedRouter]]:
        """``route`` with its steps: its entrypoints' ``http.middlewares`` first, one router
        per such entrypoint (``<entrypoint>-<router>``) when it has several, as Traefik's
        applyModel; a router whose middlewares cannot all be built is disabled."""
        spec = route.spec
        line = spec.location.line
        own = tuple(
            _ref(name, f"http.routers.{spec.name}.middlewares[{i}]", line, self.provider)
            for i, name in enumerate(spec.middlewares)
        )
        plain: List[str] = []
        variants: List[Tuple[str, Tuple[str, ...], Tuple[MiddlewareRef, ...]]] = []
        for entrypoint in route.entrypoints:
            names = self.static.entrypoint(entrypoint).middlewares
            if self.static.entrypoint(entrypoint).has_model:
                path = f"entryPoints.{entrypoint}.http.middlewares"
                refs = tuple(MiddlewareRef(n, "", 0, f"{path}[{i}]") for i, n in enumerate(names))
                name = route.name
                if len(route.entrypoints) > 1:
                    name = f"{entrypoint}-{route.name}"
                variants.append((name, (entrypoint,), refs + own))
            else:
                plain.append(entrypoint)
        if plain:
            variants.insert(0, (route.name, tuple(plain), own))
        made: List[Union[FileRoute, FailedRouter]] = []
        for name, entrypoints, refs in variants:
            listed = tuple(r.name for r in refs)
            variant = attrs.evolve(route, name=name, entrypoints=entrypoints, middlewares=listed)
            if not refs:
                made.append(variant)
                continue
            if self.middlewares is None:
                message = "middlewares: no middleware set in this build"
                made.append(self._failed_variant(variant, message))
                continue
            self.middlewares.mark_used(refs, name)
            steps: List[Any] = []
            try:
                for ref in refs:
                    steps.extend(self.middlewares.steps((ref,), name))
            except BuildError as exc:
                made.append(self._failed_variant(variant, f"{ref.path}: {exc}"))
                continue
            made.append(attrs.evolve(variant, steps=tuple(steps)))
        return made

    def _failed_variant(self, route: FileRoute, message: str) -> FailedRouter:
        spec = route.spec
        self.errors.append(spec.location.error(message))
        service_name, provider = reference(spec.service, self.provider)
        return FailedRouter(
            protocol=HTTP,
            name=route.name,
            entrypoints=route.entrypoints,
            using=route.entrypoints,
            rule=spec.rule,
            priority=spec.priority,
            service=f"{service_name}@{provider}",
            errors=route.problems + (message,),
            source=spec.location,
            syntax=spec.syntax,
            tls=spec.tls,
            middlewares=route.middlewares,
        )

    def route(self, spec: FileRouter) -> Union[FileRoute, FailedRouter]:
        name = f"{spec.name}@{self.provider}"
        wrong = "entrypoint {name} is a UDP entrypoint, HTTP routes cannot use it"
        entrypoints, problems = self.static.select(spec.entry_points, "tcp", wrong)
        self.errors.extend(spec.location.error(problem) for problem in problems)

        def failed(message: str) -> FailedRouter:
            self.errors.append(spec.location.error(message))
            service_name, provider = reference(spec.service, self.provider)
            return FailedRouter(
                protocol=HTTP,
                name=name,
                entrypoints=spec.entry_points or entrypoints,
                using=entrypoints,
                rule=spec.rule,
                priority=spec.priority,
                service=f"{service_name}@{provider}",
                errors=problems + (message,),
                source=spec.location,
                syntax=spec.syntax,
                tls=spec.tls,
            )

        if not entrypoints:
            return failed("no usable entrypoint, router disabled")
        syntax = spec.syntax or "v3"
        try:
            matcher = compile_http_rule(spec.rule, syntax=syntax)
        except RuleError as exc:
            return failed(f"rule: {exc}")
        try:
            definition = self.ref(spec.service, top=True)
        except BuildError as exc:
            return failed(str(exc))
        priority = spec.priority or matcher.default_priority
        return FileRoute(spec, name, entrypoints, priority, matcher, definition, problems)


def _failed_service(spec: FileService, message: str, provider: str = FILE) -> FailedService:
    name = f"{spec.name}@{provider}"
    if spec.weighted is not None:
        children = tuple((c.name, c.amount) for c in spec.weighted.services)
        return FailedService(name, "weighted", children, (message,), spec.location)
    if spec.highest_random_weight is not None:
        children = tuple((c.name, c.amount) for c in spec.highest_random_weight.services)
        return FailedService(name, "highestrandomweight", children, (message,), spec.location)
    if spec.failover is not None:
        failover = spec.failover
        fallback = ((failover.fallback, 0),)
        return FailedService(
            name, "failover", fallback, (message,), spec.location, main=failover.service
        )
    if spec.mirroring is not None:
        mirroring = spec.mirroring
        return FailedService(
            name,
            "mirroring",
            tuple((m.name, m.amount) for m in mirroring.mirrors),
            (message,),
            spec.location,
            main=mirroring.service,
            max_body_size=mirroring.max_body_size,
            mirror_body=mirroring.mirror_body,
        )
    return FailedService(name, "loadbalancer", (), (message,), spec.location)
