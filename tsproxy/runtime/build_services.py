"""The service side of a routing-table build: Service references to servers and transports,
TraefikService trees (weighted, highest random weight, failover, mirroring) with cycle checks
and what the API shows of one that failed. The base of build.py's _Builder.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union

import attrs
from cryptography.hazmat.primitives.serialization import Encoding

from tsproxy.balance.sticky import StickyCookie, cookie_name
from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.kinds_core import ConfigMap
from tsproxy.config.resources import (
    CookieSpec,
    HTTPRoute,
    IngressRoute,
    Secret,
    ServersTransport,
    ServiceRef,
    TraefikService,
)
from tsproxy.runtime.endpoints import BuildError, ServiceDirectory
from tsproxy.runtime.failures import FailedService
from tsproxy.runtime.middlewares import MiddlewareSet, Step
from tsproxy.runtime.services import (
    Definition,
    FailoverDef,
    HighestRandomWeightDef,
    LoadBalancerDef,
    MirroringDef,
    TransportSettings,
    WeightedChild,
    WeightedDef,
    reports_status,
)
from tsproxy.tls.certs import (
    CertificateError,
    ca_bundle_from_secret,
    certificate_from_secret,
    load_ca_bundle,
)

Key = Tuple[str, str]
_T = TypeVar("_T")


_SEPARATORS = re.compile(r"[\W_]+")


_PROVIDER_SUFFIX = "@kubernetescrd"


def normalize(name: str) -> str:
    """Traefik's object id: runs of characters other than letters and digits become ``-``."""
    return "-".join(part for part in _SEPARATORS.split(name) if part)


class _CycleError(Exception):
    """A TraefikService reference cycle, unwinding through the services that form it.

    ``ref`` is the reference the cycle went through in the service being unwound.
    """

    def __init__(self, cycle: Tuple[Key, ...]) -> None:
        super().__init__(cycle)
        self.cycle = cycle
        self.ref: Optional[ServiceRef] = None

    @property
    def message(self) -> str:
        return "reference cycle: " + " -> ".join(f"{ns}/{name}" for ns, name in self.cycle)


def _label(key: Key) -> str:
    return f"{key[0]}/{key[1]}"


class _RefError(Exception):
    """A BuildError tied to the reference it happened at."""

    def __init__(self, ref: ServiceRef, message: str) -> None:
        super().__init__(ref, message)
        self.ref = ref
        self.message = message


def _located(ref: ServiceRef, build: Callable[[ServiceRef], _T]) -> _T:
    """Run ``build(ref)``, tying a BuildError (or a cycle going through it) to ``ref``."""
    try:
        return build(ref)
    except BuildError as exc:
        raise _RefError(ref, str(exc)) from None
    except _CycleError as cycle:
        cycle.ref = ref
        raise


def _child_name(ref: ServiceRef) -> str:
    """The name Traefik gives a child of a weighted or mirroring service."""
    if "@" in ref.name:
        return ref.name
    if ref.kind == "TraefikService":
        return normalize(f"{ref.namespace}-{ref.name}")
    return normalize(f"{ref.namespace}-{ref.name}-{ref.port}")


def _failed_service(service: TraefikService, message: str) -> FailedService:
    """What the API shows of a TraefikService that did not build: its configuration as
    written and the error."""
    name = normalize(f"{service.meta.namespace}-{service.meta.name}")
    location = service.meta.location
    if service.weighted is not None:
        children = tuple((_child_name(ref), ref.weight) for ref in service.weighted.services)
        return FailedService(name, "weighted", children, (message,), location)
    if service.highest_random_weight is not None:
        refs = service.highest_random_weight.services
        children = tuple((_child_name(ref), ref.weight) for ref in refs)
        return FailedService(name, "highestrandomweight", children, (message,), location)
    if service.failover is not None:
        failover = service.failover
        return FailedService(
            name,
            "failover",
            ((_child_name(failover.fallback), 0),),
            (message,),
            location,
            main=_child_name(failover.service),
        )
    assert service.mirroring is not None
    mirroring = service.mirroring
    mirrors = tuple((_child_name(m.service), m.percent) for m in mirroring.mirrors)
    return FailedService(
        name,
        "mirroring",
        mirrors,
        (message,),
        location,
        main=_child_name(mirroring.service),
        max_body_size=mirroring.max_body_size,
        mirror_body=mirroring.mirror_body,
    )


def _sticky(spec: Optional[CookieSpec], service: str) -> Optional[StickyCookie]:
    if spec is None:
        return None
    return attrs.evolve(spec, name=cookie_name(spec.name, service))


def _route_service_name(refs: Tuple[ServiceRef, ...], key: str) -> str:
    """The service an IngressRoute route's router names: a lone TraefikService by its own
    name, anything else under the router key ("" without services)."""
    if len(refs) == 1 and refs[0].kind == "TraefikService":
        return _child_name(refs[0])
    return key if refs else ""


def _secret(secrets: Dict[Key, Secret], namespace: str, name: str) -> Secret:
    secret = secrets.get((namespace, name))
    if secret is None:
        raise CertificateError(f"secret {namespace}/{name} not found")
    return secret


def _config_map_ca(found: Optional[ConfigMap], namespace: str, name: str) -> Tuple[Any, ...]:
    """The CA certificates of a ConfigMap: ``tls.ca``, else ``ca.crt``, else its only entry
    (as Traefik's loadCAConfigMap)."""
    where = f"configMap {namespace}/{name}"
    if found is None:
        raise CertificateError(f"{where} not found")
    data = found.get("tls.ca")
    data = found.get("ca.crt") if data is None else data
    if data is None and len(found.data) == 1:
        data = found.data[0][1]
    if data is None:
        raise CertificateError(f"{where} contains neither tls.ca nor ca.crt")
    try:
        return load_ca_bundle(data)
    except CertificateError as exc:
        raise CertificateError(f"invalid certificate(s) in {where}: {exc}") from None


def _no_other(name: str, top: bool = False) -> Any:
    raise BuildError(f"{name} does not exist")


class _ServiceBuilder:
    """Service references and TraefikServices of one build (_Builder sets the indexes)."""

    directory: ServiceDirectory
    middlewares: MiddlewareSet
    traefik_services: Dict[Key, TraefikService]
    transports: Dict[Key, ServersTransport]
    config_maps: Dict[Key, ConfigMap]
    errors: List[ConfigError]
    warnings: List[ConfigError]
    built: Dict[Key, Union[Definition, Location]]
    failed_services: List[FailedService]
    other: Callable[[str, bool], Definition]
    other_transport: Callable[[str], TransportSettings]
    #: Traefik's ``default@internal``: the static configuration's serversTransport.
    default_transport: TransportSettings

    def child_steps(self, ref: ServiceRef) -> Tuple[Step, ...]:
        """The steps in front of a weighted child, run once it is picked."""
        if not ref.middlewares:
            return ()
        try:
            return self.middlewares.steps(ref.middlewares, None)
        except BuildError as exc:
            raise BuildError(f"middlewares: {exc}") from None

    def normalized(self, key: Key) -> str:
        return normalize(f"{key[0]}-{key[1]}")

    def transport_named(self, wanted: str) -> TransportSettings:
        """The ServersTransport ``<ns>-<name>`` (how other providers name it)."""
        found = [t for k, t in self.transports.items() if self.normalized(k) == wanted]
        if not found:
            raise BuildError(f"serversTransport {wanted}{_PROVIDER_SUFFIX} not found")
        return self._usable(wanted + _PROVIDER_SUFFIX, found[0])

    def _usable(self, name: str, transport: ServersTransport) -> TransportSettings:
        """``transport``'s settings with the PEM of the Secrets it names (in its namespace).
        A field tsproxy cannot honour, a missing Secret or bad PEM is an error (the service
        is disabled), never the system's CAs or no client certificate instead."""
        if transport.unsupported:
            fields = ", ".join(transport.unsupported)
            raise BuildError(
                f"serversTransport {name}: {fields} not supported yet (backend TLS would be"
                " weaker than configured)"
            )
        t = transport
        if not (t.root_ca_secrets or t.certificate_secrets or t.root_ca_config_maps):
            return transport.settings
        namespace = transport.meta.namespace
        secrets = self.middlewares.secrets
        roots, certificates = [], []
        try:
            for secret_name in transport.root_ca_secrets:
                bundle = ca_bundle_from_secret(_secret(secrets, namespace, secret_name))
                roots.append(b"".join(c.public_bytes(Encoding.PEM) for c in bundle))
            for map_name in transport.root_ca_config_maps:
                bundle = _config_map_ca(
                    self.config_maps.get((namespace, map_name)), namespace, map_name
                )
                roots.append(b"".join(c.public_bytes(Encoding.PEM) for c in bundle))
            for secret_name in transport.certificate_secrets:
                secret = _secret(secrets, namespace, secret_name)
                certificate_from_secret(secret)  # the key pair must load
                certificates.append((secret.get("tls.crt") or b"", secret.get("tls.key") or b""))
        except CertificateError as exc:
            raise BuildError(
                f"serversTransport {name} (at {transport.meta.location}): {exc}"
            ) from None
        return attrs.evolve(
            transport.settings, root_cas=tuple(roots), certificates=tuple(certificates)
        )

    # Service references

    def transport(self, ref: ServiceRef, parent_namespace: str) -> TransportSettings:
        """The ServersTransport ``ref`` names: ``<name>`` in the parent's namespace, or
        ``<ns>-<name>@kubernetescrd``; none (or ``default@internal``) is the default one."""
        name = ref.servers_transport
        if name in ("", "default@internal"):
            return self.default_transport
        if name.endswith(_PROVIDER_SUFFIX):
            self._qualified_allowed("serversTransport", name)
            wanted = name[: -len(_PROVIDER_SUFFIX)]
            found = [t for k, t in self.transports.items() if normalize(f"{k[0]}-{k[1]}") == wanted]
        elif "@" in name:
            return self.other_transport(name)
        else:
            transport = self.transports.get((parent_namespace, name))
            found = [] if transport is None else [transport]
        if not found:
            raise BuildError(f"serversTransport {name} not found in namespace {parent_namespace}")
        return self._usable(name, found[0])

    def _qualified_allowed(self, what: str, name: str) -> None:
        """``<ns>-<name>@kubernetescrd`` may name any namespace: refused unless cross-namespace
        references are allowed, as Traefik refuses it."""
        if not self.directory.options.allow_cross_namespace:
            raise BuildError(
                f"{what} {name}: the namespace-name@kubernetescrd form is not allowed when"
                " cross-namespace references are not (providers.kubernetesCRD.allowCrossNamespace)"
            )

    def load_balancer(self, ref: ServiceRef, name: str, parent_namespace: str) -> LoadBalancerDef:
        servers = self.directory.servers(ref, self.transport(ref, parent_namespace))
        return LoadBalancerDef(
            name,
            servers,
            ref.pass_host_header,
            _sticky(ref.sticky, name),
            ref.health_check,
            ref.passive_health_check,
            ref.strategy,
        )

    def child(
        self,
        ref: ServiceRef,
        parent_namespace: str,
        trail: Tuple[Key, ...],
        weighted: bool = False,
    ) -> Tuple[str, Definition]:
        """A child of a weighted or mirroring service, with the name Traefik gives it."""
        if ref.middlewares and not weighted:
            raise BuildError(
                "middlewares on a service of a mirroring service are not supported yet"
            )
        name = _child_name(ref)
        if ref.kind == "TraefikService":
            return name, self.traefik_service_ref(ref, trail)
        return name, self.load_balancer(ref, name, parent_namespace)

    # TraefikServices

    def traefik_service_ref(
        self, ref: ServiceRef, trail: Tuple[Key, ...], top: bool = False
    ) -> Definition:
        """What a TraefikService reference names: one of this provider (its namespace
        allowed), or ``name@provider`` of another provider (``other``; ``top``: the route's
        own service, which may be an internal one)."""
        if "@" in ref.name:
            if ref.name.endswith(_PROVIDER_SUFFIX):
                self._qualified_allowed("TraefikService", ref.name)
            return self.other(ref.name, top)
        self.directory.check_namespace(ref)
        return self.traefik_service(ref.key, trail)

    def traefik_service(self, key: Key, trail: Tuple[Key, ...] = ()) -> Definition:
        """The definition of a TraefikService; BuildError if it (or anything below) is broken."""
        if key in trail:
            raise _CycleError(trail[trail.index(key) :] + (key,))
        done = self.built.get(key)
        if isinstance(done, Location):
            raise BuildError(f"TraefikService {_label(key)} has errors (see {done})")
        if done is not None:
            return done
        service = self.traefik_services.get(key)
        if service is None:
            raise BuildError(f"TraefikService {_label(key)} not found")
        location = service.meta.location
        try:
            definition = self._traefik_service(service, trail + (key,))
        except _CycleError as cycle:
            assert cycle.ref is not None
            location = location.at(cycle.ref.line)
            self._sink(key, location, cycle.message)
            if cycle.cycle[0] != key:
                raise
        except _RefError as failed:
            location = location.at(failed.ref.line)
            self._sink(key, location, failed.message)
        else:
            self.built[key] = definition
            return definition
        raise BuildError(f"TraefikService {_label(key)} has errors (see {location})")

    def _sink(self, key: Key, location: Location, message: str) -> None:
        self.errors.append(location.error(message))
        self.built[key] = location
        self.failed_services.append(_failed_service(self.traefik_services[key], message))

    def status_child(
        self,
        ref: ServiceRef,
        parent_namespace: str,
        trail: Tuple[Key, ...],
        why: str,
        weighted: bool = False,
    ) -> Tuple[str, Definition]:
        """A child whose status its parent follows (``why``): one that reports none is an
        error, as Traefik's "all or nothing" propagation makes it."""
        name, definition = self.child(ref, parent_namespace, trail, weighted)
        if not reports_status(definition):
            what = "healthCheck: {}" if ref.kind == "TraefikService" else "a healthCheck"
            raise BuildError(f"service {name} reports no status ({why}): it needs {what}")
        return name, definition

    def _children(
        self,
        refs: Tuple[ServiceRef, ...],
        namespace: str,
        trail: Tuple[Key, ...],
        follow: bool,
        weighted: bool = False,
    ) -> Tuple[WeightedChild, ...]:
        """The children of a weighted (``weighted``: with their own middlewares) or HRW
        service; ``follow``: the parent follows their status (``healthCheck: {}``)."""
        children = []
        why = "the parent has healthCheck: {}"
        for ref in refs:
            if follow:
                build = lambda r: self.status_child(  # noqa: E731
                    r, namespace, trail, why, weighted
                )
            else:
                build = lambda r: self.child(r, namespace, trail, weighted)  # noqa: E731
            child_name, definition = _located(ref, build)
            steps = _located(ref, self.child_steps) if weighted else ()
            children.append(WeightedChild(child_name, ref.weight, definition, steps))
        return tuple(children)

    def _traefik_service(self, service: TraefikService, trail: Tuple[Key, ...]) -> Definition:
        namespace = service.meta.namespace
        name = normalize(f"{namespace}-{service.meta.name}")
        if service.weighted is not None:
            weighted = service.weighted
            children = self._children(
                weighted.services, namespace, trail, weighted.health_check, weighted=True
            )
            if not any(child.weight for child in children):
                message = "no service with a weight above 0: requests get 503"
                self.warnings.append(service.meta.location.error(message))
            sticky = _sticky(weighted.sticky, name)
            return WeightedDef(name, children, sticky, weighted.health_check)
        if service.highest_random_weight is not None:
            hrw = service.highest_random_weight
            children = self._children(hrw.services, namespace, trail, hrw.health_check)
            if not any(child.weight for child in children):
                message = "no service with a weight above 0: requests get 503"
                self.warnings.append(service.meta.location.error(message))
            return HighestRandomWeightDef(name, children, hrw.health_check)
        if service.failover is not None:
            failover = service.failover
            main_name, main = _located(
                failover.service,
                lambda r: self.status_child(r, namespace, trail, "failover follows it"),
            )
            if failover.health_check:
                why = "the failover has healthCheck: {}"
                build = lambda r: self.status_child(r, namespace, trail, why)  # noqa: E731
            else:
                build = lambda r: self.child(r, namespace, trail)  # noqa: E731
            fallback_name, fallback = _located(failover.fallback, build)
            return FailoverDef(
                name, main, main_name, fallback, fallback_name, failover.health_check
            )
        assert service.mirroring is not None
        mirroring = service.mirroring
        _, main = _located(mirroring.service, lambda r: self.child(r, namespace, trail))
        mirrors = []
        for mirror in mirroring.mirrors:
            _, definition = _located(mirror.service, lambda r: self.child(r, namespace, trail))
            mirrors.append((definition, mirror.percent))
        return MirroringDef(
            name, main, tuple(mirrors), mirroring.max_body_size, mirroring.mirror_body
        )

    def _page_servers(self, ref: Any) -> Tuple[Any, ...]:
        """The servers of the errors middleware's page Service (none when it is missing or
        a TraefikService: those pages are not supported yet)."""
        if ref.port is None:
            return ()
        wanted = ServiceRef(ref.name, ref.namespace, 0, "service", port=ref.port)
        try:
            return self.directory.servers(wanted, self.transport(wanted, ref.namespace))
        except BuildError:
            return ()

    # IngressRoutes

    def route_service(self, ingress: IngressRoute, route: HTTPRoute, key: str) -> Definition:
        """One Service: its servers under the router key. One TraefikService: that service.
        Several: an implicit weighted service under the router key (no sticky of its own)."""
        namespace = ingress.meta.namespace
        refs = route.services
        if len(refs) == 1:
            if refs[0].kind == "TraefikService":
                return _located(refs[0], lambda r: self.traefik_service_ref(r, (), True))
            return _located(refs[0], lambda r: self.load_balancer(r, key, namespace))
        children = []
        for ref in refs:
            name, definition = _located(ref, lambda r: self.child(r, namespace, (), True))
            steps = _located(ref, self.child_steps)
            children.append(WeightedChild(name, ref.weight, definition, steps))
        return WeightedDef(key, tuple(children))
