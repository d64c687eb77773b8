"""From a reference to a Kubernetes Service to server URLs, as Traefik's CRD provider does it.

The Service port is found by number or name; endpoint ports are matched by port name and the
URL uses the endpoint (target) port. Pure lookups over loaded resources.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

from tsproxy.config.providers import CRDProviderConfig
from tsproxy.config.resources import (
    EndpointPort,
    Endpoints,
    EndpointSlice,
    Node,
    Resource,
    RouteTLS,
    Service,
    ServicePort,
    ServiceRef,
)
from tsproxy.runtime.services import Server, TransportSettings

__all__ = [
    "BuildError",
    "ServiceDirectory",
    "get_service_port",
    "parse_service_protocol",
    "unroutable",
]

PortRef = Union[int, str]


def unroutable(path: str, entrypoints: Sequence[str], services: Sequence[object]) -> Optional[str]:
    """Why a route (HTTP or UDP) cannot be built before its services are looked at, if so."""
    if not entrypoints:
        return f"{path}: no usable entrypoint, route dropped"
    if not services:
        return f"{path}.services: no service, route dropped"
    return None


class BuildError(Exception):
    """A reference that cannot be turned into servers; the message is user-facing."""


def parse_service_protocol(scheme: str, port_name: str, port: int) -> str:
    """The server scheme: an explicit http/https/h2c, else https for Service port 443 or a
    port name starting with "https", else http."""
    if scheme:
        if scheme not in ("http", "https", "h2c"):
            raise BuildError(f"invalid scheme {scheme!r}")
        return scheme
    if port == 443 or port_name.startswith("https"):
        return "https"
    return "http"


def get_service_port(service: Service, port: Optional[PortRef]) -> ServicePort:
    """The ServicePort ``port`` refers to, by number or by name.

    An ExternalName Service also accepts a number it does not declare (there is nothing to
    check it against).
    """
    label = f"{service.meta.namespace}/{service.meta.name}"
    if port is None or port == 0 or port == "":
        raise BuildError(f"no port given for service {label}")
    for candidate in service.ports:
        if candidate.port == port if isinstance(port, int) else candidate.name == port:
            return candidate
    if service.type == "ExternalName" and isinstance(port, int):
        return ServicePort(port)
    raise BuildError(f"port {port} not found in service {label}")


class ServiceDirectory:
    """Kubernetes Services with their Endpoints and EndpointSlices, by namespace and name.

    When a Service has both, its EndpointSlices win: they are what current Kubernetes (and
    Traefik v3.1+) read, and Endpoints are deprecated; the two are not merged.

    ``options`` are the Kubernetes CRD provider's: cross-namespace references, ExternalName
    Services and Services without endpoints are refused unless they allow them; nativeLB
    (the ClusterIP) and nodePortLB (the Nodes' InternalIP addresses) as Traefik reads them.
    """

    def __init__(
        self, resources: Sequence[Resource], options: CRDProviderConfig = CRDProviderConfig()
    ) -> None:
        self.options = options
        self.nodes: List[str] = []
        self.services: Dict[Tuple[str, str], Service] = {}
        self.endpoints: Dict[Tuple[str, str], Endpoints] = {}
        self.slices: Dict[Tuple[str, str], List[EndpointSlice]] = {}
        for resource in resources:
            key = (resource.meta.namespace, resource.meta.name)
            if isinstance(resource, Service):
                self.services[key] = resource
            elif isinstance(resource, Endpoints):
                self.endpoints[key] = resource
            elif isinstance(resource, EndpointSlice):
                owner = (resource.meta.namespace, resource.service_name)
                self.slices.setdefault(owner, []).append(resource)
            elif isinstance(resource, Node):
                self.nodes.extend(a for a in resource.addresses if a not in self.nodes)

    def check_namespace(self, ref: ServiceRef) -> None:
        """BuildError for a reference into another namespace unless allowCrossNamespace."""
        if ref.cross_namespace and not self.options.allow_cross_namespace:
            raise BuildError(
                f"{ref.namespace}/{ref.name} is in another namespace: cross-namespace"
                " references need providers.kubernetesCRD.allowCrossNamespace"
            )

    def tls_options_problem(self, tls: Optional[RouteTLS], namespace: str) -> Optional[str]:
        """Why a route of ``namespace`` may not use its ``spec.tls.options`` (a TLSOption of
        another namespace without allowCrossNamespace, as Traefik refuses it), or None."""
        options = tls.options if tls is not None else None
        if options is None or options.namespace in ("", namespace):
            return None
        if self.options.allow_cross_namespace:
            return None
        return (
            f"spec.tls.options: TLSOption {options.namespace}/{options.name} is in another"
            " namespace: cross-namespace references need"
            " providers.kubernetesCRD.allowCrossNamespace"
        )

    def servers(self, ref: ServiceRef, transport: TransportSettings) -> Tuple[Server, ...]:
        """The servers behind ``ref``, in endpoint order without duplicates; BuildError when
        the Service, its port or any endpoint is missing."""
        service_port, pairs = self.addresses(ref)
        scheme = parse_service_protocol(ref.scheme, service_port.name, service_port.port)
        return tuple(Server.at(scheme, address, port, transport) for address, port in pairs)

    def addresses(self, ref: ServiceRef) -> Tuple[ServicePort, Tuple[Tuple[str, int], ...]]:
        """The Service port ``ref`` names and the (address, port) pairs behind it, in endpoint
        order without duplicates (an ExternalName Service gives its host name)."""
        label = f"{ref.namespace}/{ref.name}"
        self.check_namespace(ref)
        service = self.services.get(ref.key)
        if service is None:
            raise BuildError(f"service {label} not found")
        service_port = get_service_port(service, ref.port)
        if service.type == "ExternalName":
            if not self.options.allow_external_name_services:
                raise BuildError(
                    f"service {label} is an ExternalName Service: those need"
                    " providers.kubernetesCRD.allowExternalNameServices"
                )
            return service_port, ((service.external_name, service_port.port),)
        if ref.node_port_lb and service.type == "NodePort":
            if not service_port.node_port:
                raise BuildError(f"nodePortLB: port {ref.port} of service {label} has no nodePort")
            if not self.nodes:
                raise BuildError(
                    "nodePortLB: no Node with an InternalIP address in the configuration"
                )
            return service_port, tuple((node, service_port.node_port) for node in self.nodes)
        native = ref.native_lb if ref.native_lb is not None else self.options.native_lb_by_default
        if native:
            if service.cluster_ip in ("", "None"):
                raise BuildError(f"nativeLB: service {label} has no clusterIP")
            return service_port, ((service.cluster_ip, service_port.port),)
        pairs = tuple(dict.fromkeys(self._addresses(ref.key, service_port.name)))
        if not pairs and not self.options.allow_empty_services:
            raise BuildError(f"no endpoints for service {label}")
        return service_port, pairs

    def _addresses(self, key: Tuple[str, str], port_name: str) -> List[Tuple[str, int]]:
        """(address, endpoint port) pairs whose endpoint port is named like the Service port."""
        pairs: List[Tuple[str, int]] = []
        slices = self.slices.get(key)
        if slices:
            for endpoint_slice in slices:
                port = _named_port(endpoint_slice.ports, port_name)
                if port is None:
                    continue
                for endpoint in endpoint_slice.endpoints:
                    if endpoint.ready:
                        pairs.extend((address, port) for address in endpoint.addresses)
            return pairs
        endpoints = self.endpoints.get(key)
        for subset in endpoints.subsets if endpoints is not None else ():
            port = _named_port(subset.ports, port_name)
            if port is not None:
                pairs.extend((address, port) for address in subset.addresses)
        return pairs


def _named_port(ports: Sequence[EndpointPort], name: str) -> Optional[int]:
    for port in ports:
        if port.name == name:
            return port.port
    return None
