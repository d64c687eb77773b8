"""Frozen values for the Kubernetes and Traefik resources tsproxy reads, one class per kind.

These are the validated YAML, nothing resolved: references are names, defaults are applied.
"""

from __future__ import annotations

from typing import Optional, Union

import attrs

from tsproxy.balance.health import HealthCheckSpec, PassiveHealthSpec
from tsproxy.balance.sticky import StickyCookie
from tsproxy.config.errors import Location

__all__ = [
    "CookieSpec",
    "EndpointPort",
    "EndpointSlice",
    "EndpointSubset",
    "Endpoints",
    "Failover",
    "HealthCheckSpec",
    "HighestRandomWeight",
    "HTTPRoute",
    "IngressRoute",
    "IngressRouteTCP",
    "IngressRouteUDP",
    "PassiveHealthSpec",
    "Secret",
    "TCPRoute",
    "TCPServiceRef",
    "TLSOption",
    "TLSStore",
    "Meta",
    "Middleware",
    "MiddlewareRef",
    "MiddlewareTCP",
    "MirrorRef",
    "Mirroring",
    "Node",
    "ObjectRef",
    "Resource",
    "RouteTLS",
    "ServersTransport",
    "Service",
    "ServicePort",
    "ServiceRef",
    "SliceEndpoint",
    "TLSDomain",
    "TraefikService",
    "TransportSettings",
    "UDPRoute",
    "Weighted",
]

PortRef = Union[int, str]


@attrs.frozen
class Meta:
    """Kind, namespace, name and where the document starts."""

    kind: str
    namespace: str
    name: str
    location: Location
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """``"<Kind> <namespace>/<name>"``, the resource part of error messages."""
        return f"{self.kind} {self.namespace}/{self.name}"


# ``sticky.cookie`` is read straight into the balancer's cookie value; an empty name stands for
# the generated default name until the build knows the service it belongs to.
CookieSpec = StickyCookie


@attrs.frozen
class ServiceRef:
    """A reference to a Kubernetes Service or a TraefikService (Traefik's LoadBalancerSpec).

    ``namespace`` is already defaulted to the referencing object's namespace; ``port`` is a
    number or a port name (None for TraefikService references); ``line``/``path`` locate it.
    """

    name: str
    namespace: str
    line: int
    path: str
    kind: str = "Service"
    port: Optional[PortRef] = None
    weight: int = 1
    scheme: str = ""
    pass_host_header: bool = True
    servers_transport: str = ""
    sticky: Optional[CookieSpec] = None
    #: The servers' load-balancing strategy: wrr, p2c, hrw or leasttime.
    strategy: str = "wrr"
    health_check: Optional[HealthCheckSpec] = None
    passive_health_check: Optional[PassiveHealthSpec] = None
    #: nativeLB (the Service's ClusterIP instead of its endpoints; None: the provider's
    #: default) and nodePortLB (the nodes' addresses and the node port).
    native_lb: Optional[bool] = None
    node_port_lb: bool = False
    #: The reference names a namespace other than its resource's (allowCrossNamespace).
    cross_namespace: bool = False
    #: Middlewares in front of this service (Traefik's LoadBalancerSpec.middlewares).
    middlewares: tuple[MiddlewareRef, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@attrs.frozen
class MirrorRef:
    """One entry of ``mirroring.mirrors``: a service and the percentage of requests it gets."""

    service: ServiceRef
    percent: int = 0


@attrs.frozen
class ObjectRef:
    """A ``{name, namespace}`` reference (middlewares, TLS options and stores)."""

    name: str
    namespace: str


@attrs.frozen
class MiddlewareRef:
    """A reference to a Middleware (or MiddlewareTCP): ``{name, namespace}`` with the
    namespace defaulted to the referencing object's, or ``name@provider`` in ``name`` (then
    ``namespace`` is ignored, as Traefik ignores it); ``line``/``path`` locate it."""

    name: str
    namespace: str
    line: int = 0
    path: str = ""
    #: The namespace of the resource that holds the reference (allowCrossNamespace); None
    #: for references from the static configuration or another provider.
    parent: Optional[str] = None


@attrs.frozen
class TLSDomain:
    main: str
    sans: tuple[str, ...] = ()


@attrs.frozen
class RouteTLS:
    """``spec.tls`` of an IngressRoute or IngressRouteTCP (``passthrough`` is TCP only)."""

    secret_name: str = ""
    passthrough: bool = False
    options: Optional[ObjectRef] = None
    store: Optional[ObjectRef] = None
    cert_resolver: str = ""
    domains: tuple[TLSDomain, ...] = ()


@attrs.frozen
class HTTPRoute:
    """One entry of ``spec.routes`` of an IngressRoute."""

    match: str
    line: int
    path: str
    services: tuple[ServiceRef, ...] = ()
    priority: int = 0
    syntax: str = ""
    middlewares: tuple[MiddlewareRef, ...] = ()


@attrs.frozen
class IngressRoute:
    """HTTP routes; no entryPoints means every TCP entrypoint."""

    meta: Meta
    routes: tuple[HTTPRoute, ...]
    entry_points: tuple[str, ...] = ()
    tls: Optional[RouteTLS] = None


@attrs.frozen
class TCPServiceRef:
    """A service of a TCP route: a Kubernetes Service by name and port.

    ``termination_delay`` is in milliseconds (negative: wait forever); ``proxy_protocol`` is
    the PROXY protocol version sent to the backend, 0 for none.
    """

    name: str
    namespace: str
    line: int
    path: str
    port: PortRef
    weight: int = 1
    termination_delay: int = 100
    proxy_protocol: int = 0
    tls: bool = False
    servers_transport: str = ""
    native_lb: Optional[bool] = None
    node_port_lb: bool = False
    #: The reference names a namespace other than its resource's (allowCrossNamespace).
    cross_namespace: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@attrs.frozen
class TCPRoute:
    """One entry of ``spec.routes`` of an IngressRouteTCP."""

    match: str
    line: int
    path: str
    services: tuple[TCPServiceRef, ...] = ()
    priority: int = 0
    syntax: str = ""
    middlewares: tuple[MiddlewareRef, ...] = ()


@attrs.frozen
class IngressRouteTCP:
    """TCP routes; no entryPoints means every TCP entrypoint."""

    meta: Meta
    routes: tuple[TCPRoute, ...]
    entry_points: tuple[str, ...] = ()
    tls: Optional[RouteTLS] = None


@attrs.frozen
class TLSOption:
    """A TLSOption. Versions are Traefik's names (``VersionTLS12``), "" when unset;
    ``alpn_protocols`` None means Traefik's default list."""

    meta: Meta
    min_version: str = ""
    max_version: str = ""
    cipher_suites: tuple[str, ...] = ()
    curve_preferences: tuple[str, ...] = ()
    client_auth_type: str = ""
    client_auth_secrets: tuple[str, ...] = ()
    sni_strict: bool = False
    alpn_protocols: Optional[tuple[str, ...]] = None
    disable_session_tickets: bool = False


@attrs.frozen
class TLSStore:
    """A TLSStore (only the one named ``default`` takes effect, as in Traefik)."""

    meta: Meta
    default_certificate: str = ""
    certificates: tuple[str, ...] = ()


@attrs.frozen
class Secret:
    """A core v1 Secret: its type and decoded ``data`` (``stringData`` merged in)."""

    meta: Meta
    type: str = "Opaque"
    data: tuple[tuple[str, bytes], ...] = ()

    def get(self, key: str) -> Optional[bytes]:
        for name, value in self.data:
            if name == key:
                return value
        return None


@attrs.frozen
class UDPRoute:
    """One entry of ``spec.routes`` of an IngressRouteUDP: services only, UDP has no rules.

    The references are to Kubernetes Services (``kind`` is always "Service", ``port`` set).
    """

    line: int
    path: str
    services: tuple[ServiceRef, ...] = ()


@attrs.frozen
class IngressRouteUDP:
    """UDP routes; no entryPoints means every UDP entrypoint."""

    meta: Meta
    routes: tuple[UDPRoute, ...]
    entry_points: tuple[str, ...] = ()


@attrs.frozen
class Weighted:
    """``health_check``: ``healthCheck: {}`` is set (children that are down are skipped and
    the service's own status follows theirs)."""

    services: tuple[ServiceRef, ...]
    sticky: Optional[CookieSpec] = None
    health_check: bool = False


@attrs.frozen
class Mirroring:
    """The main service (given inline, as in Traefik), its mirrors and the body policy."""

    service: ServiceRef
    mirrors: tuple[MirrorRef, ...] = ()
    max_body_size: int = -1
    mirror_body: bool = True
    health_check: bool = False


@attrs.frozen
class Failover:
    """Requests go to ``service`` while it is up, else to ``fallback``."""

    service: ServiceRef
    fallback: ServiceRef
    health_check: bool = False


@attrs.frozen
class HighestRandomWeight:
    """Rendezvous hashing of the client IP over ``services`` (their weights count)."""

    services: tuple[ServiceRef, ...]
    health_check: bool = False


@attrs.frozen
class TraefikService:
    """Exactly one of ``weighted``, ``mirroring``, ``failover``, ``highest_random_weight``
    is set."""

    meta: Meta
    weighted: Optional[Weighted] = None
    mirroring: Optional[Mirroring] = None
    failover: Optional[Failover] = None
    highest_random_weight: Optional[HighestRandomWeight] = None


@attrs.frozen
class TransportSettings:
    """How to reach servers. Seconds; 0 means no timeout. The TLS fields shape the TLS to
    ``https`` servers (tsproxy.http.backend_tls).

    ``max_idle_conns_per_host`` 0 means connections are not reused (``-1`` in the YAML). When
    the YAML leaves it out or says 0 it is 200: Traefik gives user-defined transports Go's
    default of 2 there, which defeats keep-alive, and its own default transport 200.
    """

    dial_timeout: float = 30.0
    response_header_timeout: float = 0.0
    idle_conn_timeout: float = 90.0
    max_idle_conns_per_host: int = 200
    disable_http2: bool = False
    insecure_skip_verify: bool = False
    server_name: str = ""
    #: PEM bundles of the CAs a server's certificate must chain to (none: the system's).
    root_cas: tuple[bytes, ...] = ()
    #: (certificate chain PEM, key PEM) of the client certificates (the first is presented).
    certificates: tuple[tuple[bytes, bytes], ...] = ()
    #: A URI the server's certificate must carry as a SAN (Traefik's peerCertURI).
    peer_cert_uri: str = ""


@attrs.frozen
class ServersTransport:
    """A named TransportSettings, referenced from service references."""

    meta: Meta
    settings: TransportSettings = TransportSettings()
    #: TLS settings it has that tsproxy cannot honour (they would make backend TLS weaker
    #: if ignored): a service using this transport is disabled.
    unsupported: tuple[str, ...] = ()
    #: Secrets of CA bundles and of client certificates, read when a service uses it.
    root_ca_secrets: tuple[str, ...] = ()
    certificate_secrets: tuple[str, ...] = ()
    root_ca_config_maps: tuple[str, ...] = ()


@attrs.frozen
class ServicePort:
    port: int
    name: str = ""
    target_port: Optional[PortRef] = None
    protocol: str = "TCP"
    node_port: int = 0


@attrs.frozen
class Service:
    """A core v1 Service: its ports, and for ``type: ExternalName`` the external host."""

    meta: Meta
    ports: tuple[ServicePort, ...] = ()
    type: str = "ClusterIP"
    external_name: str = ""
    cluster_ip: str = ""


@attrs.frozen
class Node:
    """A core v1 Node: its InternalIP addresses."""

    meta: Meta
    addresses: tuple[str, ...] = ()


@attrs.frozen
class EndpointPort:
    port: int
    name: str = ""
    protocol: str = "TCP"


@attrs.frozen
class EndpointSubset:
    """Ready addresses only: ``notReadyAddresses`` are dropped when reading."""

    addresses: tuple[str, ...]
    ports: tuple[EndpointPort, ...]


@attrs.frozen
class Endpoints:
    meta: Meta
    subsets: tuple[EndpointSubset, ...] = ()


@attrs.frozen
class SliceEndpoint:
    """``ready`` is False only when ``conditions.ready`` says false (absent counts as ready)."""

    addresses: tuple[str, ...]
    ready: bool = True


@attrs.frozen
class EndpointSlice:
    """A discovery.k8s.io/v1 EndpointSlice, tied to its Service by a label."""

    meta: Meta
    service_name: str
    ports: tuple[EndpointPort, ...] = ()
    endpoints: tuple[SliceEndpoint, ...] = ()
    address_type: str = "IPv4"


@attrs.frozen
class Middleware:
    """A Middleware or MiddlewareTCP: the one kind its spec names (``kind``, Traefik's key
    such as ``stripPrefix``), the spec that kind's parser made, and the section as written
    (``config``, plain values, for the API).

    ``error`` is not empty when the middleware cannot be used (no kind, an unimplemented
    kind, a section that does not parse): it is still a resource, listed with its error,
    and every router naming it is disabled. ``line`` locates the error.
    """

    meta: Meta
    kind: str
    spec: object = None
    config: object = None
    error: str = ""
    line: int = 0


@attrs.frozen
class MiddlewareTCP(Middleware):
    """A MiddlewareTCP (same shape as Middleware, its own kinds)."""


Resource = Union[
    IngressRoute,
    IngressRouteTCP,
    IngressRouteUDP,
    TLSOption,
    TLSStore,
    Secret,
    TraefikService,
    ServersTransport,
    Service,
    Endpoints,
    EndpointSlice,
    Node,
    Middleware,
]
