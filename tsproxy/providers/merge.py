"""Merging the providers' configurations into one routing table, as Traefik's aggregator
does: each provider's names are qualified by the provider, a reference ``name@provider``
reaches into another provider, and one provider's errors disable only what they touch.

The Kubernetes CRD part is built by tsproxy.runtime.build; this module resolves the
qualified references between it, the file provider and Traefik's internal services.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.fileformat_values import FileConfiguration
from tsproxy.config.providers import CRDProviderConfig
from tsproxy.config.resources import TransportSettings
from tsproxy.config.static import StaticConfig
from tsproxy.providers import CRD, FILE, INTERNAL, split
from tsproxy.providers.file import FileBuilder, FileRoute
from tsproxy.providers.file_l4 import FileL4Build, build_file_tcp, file_udp_candidates
from tsproxy.runtime.endpoints import BuildError
from tsproxy.runtime.failures import FailedRouter, FailedService
from tsproxy.runtime.internal import InternalService, InternalServiceDef, internal_problem
from tsproxy.runtime.services import Definition, MirroringDef, Node, WeightedDef
from tsproxy.runtime.udp import UDPCandidate

__all__ = ["Merge", "build_file_tls", "crd_options", "node_of"]

AnyDefinition = Union[Definition, InternalServiceDef]


def crd_options(static: StaticConfig) -> CRDProviderConfig:
    """The Kubernetes CRD provider's options (its defaults when it is not configured)."""
    return static.providers.crd or CRDProviderConfig()


class Merge:
    """Qualified references across providers for one build. ``crd`` is the CRD builder
    (tsproxy.runtime.build._Builder): its TraefikServices, route services and transports."""

    def __init__(
        self,
        crd: Any,
        file: Optional[FileConfiguration],
        static: StaticConfig,
        kv: Sequence[Tuple[str, FileConfiguration]] = (),
    ) -> None:
        self.crd = crd
        self.static = static
        self.crd_routes: Dict[str, Definition] = {}
        #: The providers of Traefik's dynamic format: file, and the key-value stores
        #: (etcd, redis) whose trees read as the same format.
        self.builders: Dict[str, FileBuilder] = {}
        if file is not None:
            self.builders[FILE] = FileBuilder(
                file,
                static,
                self.resolve,
                self.transport,
                FILE,
                getattr(crd, "middlewares", None),
            )
        for provider, config in kv:
            self.builders[provider] = FileBuilder(
                config,
                static,
                self.resolve,
                self.transport,
                provider,
                getattr(crd, "middlewares", None),
            )
        self.file: Optional[FileBuilder] = self.builders.get(FILE)
        crd.other = self.resolve
        crd.other_transport = self.transport

    def resolve(self, qualified: str, top: bool = False) -> AnyDefinition:
        """The definition ``name@provider`` names; BuildError when there is none."""
        name, provider = split(qualified)
        if provider == INTERNAL:
            problem = internal_problem(qualified, self.static)
            if problem is not None:
                raise BuildError(problem)
            if not top:
                raise BuildError(f"{qualified}: an internal service can only be a router's service")
            return InternalServiceDef(qualified)
        if provider in self.builders:
            return self.builders[provider].service(name)
        if provider == FILE:
            raise BuildError(f"service {qualified} does not exist: no file provider")
        if provider == CRD:
            for key in self.crd.traefik_services:
                if self.crd.normalized(key) == name:
                    return self.crd.traefik_service(key)  # type: ignore[no-any-return]
            found = self.crd_routes.get(name) or self._crd_child(name)
            if found is not None:
                return found
            raise BuildError(f"service {qualified} does not exist")
        raise BuildError(f"service {qualified} does not exist: provider {provider} is not enabled")

    def _crd_child(self, name: str) -> Optional[Definition]:
        """A service the CRD provider made inside a weighted or mirroring one (Traefik's
        ``<ns>-<service>-<port>``), if some TraefikService or route made it."""
        built = [d for d in self.crd.built.values() if not isinstance(d, Location)]
        pending = built + list(self.crd_routes.values())
        seen = set()
        while pending:
            definition = pending.pop()
            if id(definition) in seen:
                continue
            seen.add(id(definition))
            if isinstance(definition, WeightedDef):
                for child in definition.children:
                    if child.name == name and "@" not in name:
                        return child.definition
                    pending.append(child.definition)
            elif isinstance(definition, MirroringDef):
                pending.append(definition.main)
                pending.extend(mirror for mirror, _ in definition.mirrors)
        return None

    def file_routes(self) -> Tuple[List[FileRoute], List[FailedRouter]]:
        """The file provider's routers (every one of its services is built too, so the API
        lists those no router uses, as Traefik does)."""
        routes: List[FileRoute] = []
        failed: List[FailedRouter] = []
        for builder in self.builders.values():
            for name in builder.services:
                try:
                    builder.service(name)
                except BuildError:
                    pass  # recorded at the service
            built, broken = builder.routes()
            routes += built
            failed += broken
        return routes, failed

    def definitions(self) -> List[Definition]:
        """Every service definition built (CRD TraefikServices, file services)."""
        found = [d for d in self.crd.built.values() if not isinstance(d, Location)]
        for builder in self.builders.values():
            found.extend(d for d in builder.built.values() if not isinstance(d, Location))
        return found

    def failed_services(self) -> List[FailedService]:
        return [f for builder in self.builders.values() for f in builder.failed_services]

    def errors(self) -> Tuple[ConfigError, ...]:
        return tuple(e for builder in self.builders.values() for e in builder.errors)

    def warnings(self) -> Tuple[ConfigError, ...]:
        return tuple(w for builder in self.builders.values() for w in builder.warnings)

    def layer4(self, previous: Any, middlewares: Any = None) -> FileLayer4:
        """The file provider's tcp and udp sections (``previous``: the table being
        replaced, for its TCP nodes; ``middlewares``: the build's TCP MiddlewareSet)."""
        tcp = FileL4Build()
        candidates: List[UDPCandidate] = []
        failed: List[FailedRouter] = []
        errors: List[ConfigError] = []
        for provider, builder in self.builders.items():
            config = builder.config
            built = build_file_tcp(
                config, self.static, previous.tcp_nodes if previous else {}, provider, middlewares
            )
            tcp.routers += built.routers
            tcp.nodes.update(built.nodes)
            tcp.failed += built.failed
            tcp.errors += built.errors
            tcp.router_warnings += built.router_warnings
            found, broken, wrong = file_udp_candidates(config, self.static, provider)
            candidates += found
            failed += broken
            errors += wrong
        return FileLayer4(
            tcp, tuple(candidates), tuple(tcp.failed + failed), tuple(tcp.errors + errors)
        )

    def transport(self, qualified: str) -> TransportSettings:
        name, provider = split(qualified)
        if provider in self.builders:
            return self.builders[provider].transport(name)
        if provider == CRD:
            return self.crd.transport_named(name)  # type: ignore[no-any-return]
        raise BuildError(f"serversTransport {qualified} does not exist")


@attrs.frozen
class FileLayer4:
    """The file provider's TCP build and UDP candidates (empty without the provider)."""

    tcp: FileL4Build = attrs.field(factory=FileL4Build)
    udp_candidates: Tuple[UDPCandidate, ...] = ()
    failed: Tuple[FailedRouter, ...] = ()
    errors: Tuple[ConfigError, ...] = ()


def build_file_tls(loaded: Any, build_tls: Any) -> Any:
    """The TLS build of the CRD resources plus the certificates, options and default store
    of the file provider and the key-value providers (the first default store found, file
    first, serves)."""
    configs = [] if loaded.file is None else [loaded.file]
    configs += [config for _, config in loaded.kv]
    if not configs:
        return build_tls(loaded.resources)
    resources = loaded.resources
    certificates: Tuple[Any, ...] = ()
    default = None
    for config in configs:
        resources += config.tls.resources
        certificates += config.tls.certificates
        default = default or config.tls.default_certificate
    return build_tls(resources, certificates=certificates, default_certificate=default)


def node_of(definition: AnyDefinition, instantiate: Any) -> Node:
    """The node of a router's definition: internal services have their own node."""
    if isinstance(definition, InternalServiceDef):
        return InternalService(definition)  # type: ignore[return-value]
    return instantiate(definition)  # type: ignore[no-any-return]
