"""Reading one YAML document into a resource value, through a table keyed by apiVersion and kind.

Traefik kinds are checked field by field (unknown fields are errors, known-but-unsupported
ones are notices); core Kubernetes kinds are read leniently, since we use a small part of them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Callable, Optional

import attrs

from tsproxy.config.errors import ConfigError, Location
from tsproxy.config.resources import (
    CookieSpec,
    EndpointPort,
    Endpoints,
    EndpointSlice,
    EndpointSubset,
    Failover,
    HealthCheckSpec,
    HighestRandomWeight,
    HTTPRoute,
    IngressRoute,
    IngressRouteTCP,
    IngressRouteUDP,
    Meta,
    Middleware,
    MiddlewareRef,
    MiddlewareTCP,
    Mirroring,
    MirrorRef,
    Node,
    ObjectRef,
    PassiveHealthSpec,
    Resource,
    RouteTLS,
    Secret,
    ServersTransport,
    Service,
    ServicePort,
    ServiceRef,
    SliceEndpoint,
    TCPRoute,
    TCPServiceRef,
    TLSDomain,
    TLSOption,
    TLSStore,
    TraefikService,
    TransportSettings,
    UDPRoute,
    Weighted,
)
from tsproxy.config.schema import FieldError, Fields
from tsproxy.config.yamlio import Document, YAMLList, YAMLMap
from tsproxy.middlewares import registry

__all__ = ["PARSERS", "ParsedDocument", "parse_document"]

Parser = Callable[[Fields, Meta], Resource]

_NOT_YET = "not supported yet, ignored"
_MAX_PRIORITY = 2**63 - 1 - 1000  # Traefik reserves the top 1000 for its internal routers
_SERVICE_LABEL = "kubernetes.io/service-name"
# Fields of Traefik's LoadBalancerSpec that we accept and do not act on yet.
_REF_IGNORED = {name: _NOT_YET for name in ("responseForwarding",)}


def _sticky(fields: Fields) -> Optional[CookieSpec]:
    sticky = fields.mapping("sticky")
    if sticky is None:
        return None
    cookie = sticky.mapping("cookie")
    sticky.done()
    if cookie is None:
        fields.note("sticky", "no cookie section: stickiness stays off")
        return None
    same_site = cookie.string("sameSite")
    if same_site.lower() not in ("", "none", "lax", "strict"):
        raise cookie.fail("sameSite", "must be one of: none, lax, strict")
    spec = CookieSpec(
        name=cookie.string("name"),
        secure=cookie.boolean("secure", False),
        http_only=cookie.boolean("httpOnly", False),
        same_site=same_site.lower(),
        max_age=cookie.integer("maxAge", 0),
        path=cookie.string("path", "/") or "/",
        domain=cookie.string("domain"),
    )
    cookie.done({"expires": _NOT_YET})
    return spec


_HEALTH_SCHEMES = ("", "http", "https", "h2c")


def _health_check(fields: Fields) -> Optional[HealthCheckSpec]:
    """A Service reference's active ``healthCheck``, Traefik's defaults applied."""
    present, section = fields.section("healthCheck")
    if not present:
        return None
    if section is None:
        return HealthCheckSpec(path="")
    mode = section.string("mode", "http", choices=("http", "grpc"))
    path = section.string("path")
    if "://" in path or path.startswith(":"):
        raise section.fail("path", "must be a path (with an optional query), not a URL")
    interval = section.duration("interval", 30.0) or 30.0
    headers = section.mapping("headers")
    header_items = []
    if headers is not None:
        for name in list(headers.data):
            header_items.append((str(name), headers.string(str(name))))
    method = section.string("method", "GET") or "GET"
    if not (method.isascii() and method.isalpha()):
        raise section.fail("method", "must be an HTTP method name")
    spec = HealthCheckSpec(
        path=path,
        interval=interval,
        unhealthy_interval=section.duration("unhealthyInterval", interval) or interval,
        timeout=section.duration("timeout", 5.0) or 5.0,
        scheme=section.string("scheme", choices=_HEALTH_SCHEMES),
        mode=mode,
        hostname=section.string("hostname"),
        port=section.integer("port", 0, minimum=0, maximum=65535),
        headers=tuple(header_items),
        follow_redirects=section.boolean("followRedirects", True),
        method=method,
        status=section.integer("status", 0, minimum=0, maximum=599),
    )
    section.done()
    if spec.scheme == "h2c" and mode != "grpc":
        raise section.fail("scheme", "h2c is for mode grpc only")
    return spec


def _passive_health_check(fields: Fields) -> Optional[PassiveHealthSpec]:
    present, section = fields.section("passiveHealthCheck")
    if not present:
        return None
    if section is None:
        return PassiveHealthSpec()
    window = section.duration("failureWindow", 10.0)
    if window <= 0:
        raise section.fail("failureWindow", "must be above 0")
    spec = PassiveHealthSpec(window, section.integer("maxFailedAttempts", 1, minimum=1))
    section.done()
    return spec


def _propagation(fields: Fields) -> bool:
    """A TraefikService level's ``healthCheck: {}``: it follows its children's status."""
    present, section = fields.section("healthCheck")
    if section is not None:
        section.done()
    return present


def _service_ref(fields: Fields, parent_namespace: str) -> ServiceRef:
    """The LoadBalancerSpec fields of ``fields``; the caller checks for leftovers."""
    name = fields.string("name", required=True)
    kind = fields.string("kind") or "Service"
    if kind not in ("Service", "TraefikService"):
        raise fields.fail("kind", "must be one of: Service, TraefikService")
    if "@" in name and kind == "Service":
        raise fields.fail("name", "name@provider references are for kind TraefikService")
    port = fields.port("port")
    if kind == "Service" and port is None:
        raise fields.fail("port", "is required for a Service reference")
    strategy = fields.string("strategy")
    if strategy not in ("", "RoundRobin", "wrr"):
        fields.note("strategy", f"{strategy} is not supported yet, using round robin")
    if kind == "Service":
        health_check = _health_check(fields)
        passive = _passive_health_check(fields)
    else:
        # A TraefikService reference: ``healthCheck: {}`` (status propagation) only.
        health_check, passive = None, None
        _propagation(fields)
        if fields.has("passiveHealthCheck"):
            raise fields.fail("passiveHealthCheck", "applies to Service references only")
    namespace = fields.string("namespace") or parent_namespace
    return ServiceRef(
        name=name,
        namespace=namespace,
        cross_namespace=namespace != parent_namespace,
        line=fields.line,
        path=fields.path,
        kind=kind,
        port=port if kind == "Service" else None,
        weight=fields.integer("weight", 1, minimum=0),
        scheme=fields.string("scheme", choices=("", "http", "https", "h2c")),
        pass_host_header=fields.boolean("passHostHeader", True),
        servers_transport=fields.string("serversTransport"),
        sticky=_sticky(fields),
        health_check=health_check,
        passive_health_check=passive,
        **_lb_modes(fields),
        middlewares=middleware_refs(fields, parent_namespace),
    )


def _lb_modes(fields: Fields) -> dict[str, Any]:
    """``nativeLB`` (None: the provider's nativeLBByDefault) and ``nodePortLB``."""
    native = fields.boolean("nativeLB", False) if fields.has("nativeLB") else None
    return {"native_lb": native, "node_port_lb": fields.boolean("nodePortLB", False)}


read_sticky = _sticky


def _refs(fields: Fields, key: str, namespace: str) -> tuple[ServiceRef, ...]:
    refs = []
    for item in fields.mappings(key):
        refs.append(_service_ref(item, namespace))
        item.done(_REF_IGNORED)
    return tuple(refs)


def _object_ref(fields: Fields, namespace: str) -> ObjectRef:
    name = fields.string("name", required=True)
    # name@provider: another provider's object, which has no namespace.
    ref = ObjectRef(name, "" if "@" in name else fields.string("namespace") or namespace)
    fields.done()
    return ref


def middleware_refs(fields: Fields, namespace: str) -> tuple[MiddlewareRef, ...]:
    """``middlewares: [{name, namespace}]`` of a route, a service or a chain."""
    refs = []
    for item in fields.mappings("middlewares"):
        name = item.string("name", required=True)
        refs.append(
            MiddlewareRef(
                name, item.string("namespace") or namespace, item.line, item.path, namespace
            )
        )
        item.done()
    return tuple(refs)


def _route_tls(fields: Fields, namespace: str, tcp: bool = False) -> RouteTLS:
    passthrough = fields.boolean("passthrough", False) if tcp else False
    options = fields.mapping("options")
    store = fields.mapping("store")
    domains = []
    for item in fields.mappings("domains"):
        domains.append(TLSDomain(item.string("main"), item.strings("sans")))
        item.done()
    tls = RouteTLS(
        secret_name=fields.string("secretName"),
        passthrough=passthrough,
        options=None if options is None else _object_ref(options, namespace),
        store=None if store is None else _object_ref(store, namespace),
        cert_resolver=fields.string("certResolver"),
        domains=tuple(domains),
    )
    fields.done()
    return tls


def _http_route(fields: Fields, namespace: str) -> HTTPRoute:
    match = fields.string("match", required=True)
    fields.string("kind", choices=("", "Rule"))
    middlewares = middleware_refs(fields, namespace)
    route = HTTPRoute(
        match=match,
        line=fields.line,
        path=fields.path,
        services=_refs(fields, "services", namespace),
        priority=fields.integer("priority", 0, maximum=_MAX_PRIORITY),
        syntax=fields.string("syntax", choices=("", "v2", "v3")),
        middlewares=middlewares,
    )
    fields.done({"observability": _NOT_YET})
    return route


def _spec(root: Fields) -> Fields:
    spec = root.mapping("spec", required=True)
    assert spec is not None
    return spec


def parse_ingress_route(root: Fields, meta: Meta) -> IngressRoute:
    spec = _spec(root)
    entry_points = spec.strings("entryPoints")
    routes = tuple(_http_route(item, meta.namespace) for item in spec.mappings("routes", True))
    tls_fields = spec.mapping("tls")
    tls = None if tls_fields is None else _route_tls(tls_fields, meta.namespace)
    if tls is not None and tls.cert_resolver:
        tls_fields.note("certResolver", "ACME resolvers are not supported; ignored")  # type: ignore[union-attr]
    if spec.has("parentRefs"):
        # A child route is only reachable through its parent (and the parent's middlewares):
        # served on its own it would skip them.
        raise spec.fail("parentRefs", "multi-layer routing is not supported yet")
    spec.done({"ingressClassName": _NOT_YET})
    return IngressRoute(meta=meta, routes=routes, entry_points=entry_points, tls=tls)


def _tcp_service_ref(fields: Fields, namespace: str) -> TCPServiceRef:
    """A service of a TCP route: a Kubernetes Service by name and (required) port."""
    name = fields.string("name", required=True)
    port = fields.port("port")
    if port is None:
        raise fields.fail("port", "is required")
    proxy_protocol = 0
    present, proxy = fields.section("proxyProtocol")
    if present:
        proxy_protocol = 2
        if proxy is not None:
            proxy_protocol = proxy.integer("version", 2, minimum=1, maximum=2)
            proxy.done()
    ref = TCPServiceRef(
        name=name,
        namespace=fields.string("namespace") or namespace,
        cross_namespace=fields.string("namespace") not in ("", namespace),
        line=fields.line,
        path=fields.path,
        port=port,
        weight=fields.integer("weight", 1, minimum=0),
        termination_delay=fields.integer("terminationDelay", 100),
        proxy_protocol=proxy_protocol,
        tls=fields.boolean("tls", False),
        servers_transport=fields.string("serversTransport"),
        **_lb_modes(fields),
    )
    # tls and serversTransport are kept: the route using them is disabled at build time
    # (dialling backends with TLS is not implemented for TCP), never served without them.
    fields.done()
    return ref


def _tcp_route(fields: Fields, namespace: str) -> TCPRoute:
    match = fields.string("match", required=True)
    route = TCPRoute(
        match=match,
        line=fields.line,
        path=fields.path,
        services=tuple(_tcp_service_ref(item, namespace) for item in fields.mappings("services")),
        priority=fields.integer("priority", 0, maximum=_MAX_PRIORITY),
        syntax=fields.string("syntax", choices=("", "v2", "v3")),
        middlewares=middleware_refs(fields, namespace),
    )
    fields.done()
    return route


def parse_ingress_route_tcp(root: Fields, meta: Meta) -> IngressRouteTCP:
    spec = _spec(root)
    entry_points = spec.strings("entryPoints")
    routes = tuple(_tcp_route(item, meta.namespace) for item in spec.mappings("routes", True))
    tls_fields = spec.mapping("tls")
    tls = None if tls_fields is None else _route_tls(tls_fields, meta.namespace, tcp=True)
    if tls is not None and tls.cert_resolver:
        tls_fields.note("certResolver", "ACME resolvers are not supported; ignored")  # type: ignore[union-attr]
    spec.done({"ingressClassName": _NOT_YET})
    return IngressRouteTCP(meta=meta, routes=routes, entry_points=entry_points, tls=tls)


_TLS_VERSIONS = ("VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13")
_CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)


def parse_tls_option(root: Fields, meta: Meta) -> TLSOption:
    return read_tls_option(_spec(root), meta)


def read_tls_option(spec: Fields, meta: Meta) -> TLSOption:
    """The fields of a TLSOption spec (or a file provider's ``tls.options`` entry)."""
    client_auth = spec.mapping("clientAuth")
    auth_type, auth_secrets = "", ()  # type: tuple[str, tuple[str, ...]]
    if client_auth is not None:
        auth_type = client_auth.string("clientAuthType", choices=("",) + _CLIENT_AUTH_TYPES)
        auth_secrets = client_auth.strings("secretNames")
        client_auth.done()
    alpn = spec.strings("alpnProtocols") if spec.has("alpnProtocols") else None
    option = TLSOption(
        meta=meta,
        min_version=spec.string("minVersion", choices=("",) + _TLS_VERSIONS),
        max_version=spec.string("maxVersion", choices=("",) + _TLS_VERSIONS),
        cipher_suites=spec.strings("cipherSuites"),
        curve_preferences=spec.strings("curvePreferences"),
        client_auth_type=auth_type,
        client_auth_secrets=auth_secrets,
        sni_strict=spec.boolean("sniStrict", False),
        alpn_protocols=alpn,
        disable_session_tickets=spec.boolean("disableSessionTickets", False),
    )
    spec.done({"preferServerCipherSuites": "deprecated in Traefik, ignored"})
    return option


def parse_tls_store(root: Fields, meta: Meta) -> TLSStore:
    spec = _spec(root)
    default = spec.mapping("defaultCertificate")
    secret = ""
    if default is not None:
        secret = default.string("secretName", required=True)
        default.done()
    certificates = []
    for item in spec.mappings("certificates"):
        certificates.append(item.string("secretName", required=True))
        item.done()
    spec.done({"defaultGeneratedCert": "ACME resolvers are not supported; ignored"})
    if meta.name != "default":
        root.note("metadata", "only the TLSStore named default takes effect, as in Traefik")
    return TLSStore(meta, secret, tuple(certificates))


def parse_secret(root: Fields, meta: Meta) -> Secret:
    """A Secret, leniently: ``data`` values are base64, ``stringData`` values plain text."""
    data: dict[str, bytes] = {}
    for key in ("data", "stringData"):
        section = root.mapping(key)
        if section is None:
            continue
        for name in list(section.data):
            value = section.string(str(name))
            if key == "stringData":
                data[str(name)] = value.encode("utf-8")
                continue
            try:
                # Go's decoder (and so Kubernetes) skips line breaks inside the value.
                packed = "".join(value.split("\r\n")).replace("\n", "").replace("\r", "")
                data[str(name)] = base64.b64decode(packed.encode("ascii"), validate=True)
            except (ValueError, binascii.Error):
                raise section.fail(str(name), "is not valid base64") from None
    secret_type = root.string("type", "Opaque")
    if secret_type == "kubernetes.io/basic-auth" and not ({"username", "password"} & set(data)):
        raise root.fail("type", "a kubernetes.io/basic-auth Secret needs username or password")
    return Secret(meta, secret_type, tuple(data.items()))


def _udp_service_ref(fields: Fields, namespace: str) -> ServiceRef:
    """A service of a UDP route: a Kubernetes Service by name and port, with a weight."""
    name = fields.string("name", required=True)
    port = fields.port("port")
    if port is None:
        raise fields.fail("port", "is required")
    ref = ServiceRef(
        name=name,
        namespace=fields.string("namespace") or namespace,
        cross_namespace=fields.string("namespace") not in ("", namespace),
        line=fields.line,
        path=fields.path,
        port=port,
        weight=fields.integer("weight", 1, minimum=0),
        **_lb_modes(fields),
    )
    fields.done()
    return ref


def parse_ingress_route_udp(root: Fields, meta: Meta) -> IngressRouteUDP:
    spec = _spec(root)
    entry_points = spec.strings("entryPoints")
    routes = []
    for item in spec.mappings("routes", True):
        services = tuple(_udp_service_ref(ref, meta.namespace) for ref in item.mappings("services"))
        routes.append(UDPRoute(item.line, item.path, services))
        item.done()
    spec.done({"ingressClassName": _NOT_YET})
    return IngressRouteUDP(meta=meta, routes=tuple(routes), entry_points=entry_points)


def _lone_ref(fields: Fields, key: str, namespace: str) -> ServiceRef:
    section = fields.mapping(key, required=True)
    assert section is not None
    ref = _service_ref(section, namespace)
    section.done(_REF_IGNORED)
    return ref


_TRAEFIK_SERVICE_TYPES = ("weighted", "mirroring", "highestRandomWeight", "failover")


def parse_traefik_service(root: Fields, meta: Meta) -> TraefikService:
    spec = _spec(root)
    present = [name for name in _TRAEFIK_SERVICE_TYPES if spec.has(name)]
    if len(present) != 1:
        raise spec.whole("exactly one of " + ", ".join(_TRAEFIK_SERVICE_TYPES) + " is required")
    weighted = mirroring = failover = hrw = None
    weighted_fields = spec.mapping("weighted")
    mirroring_fields = spec.mapping("mirroring")
    hrw_fields = spec.mapping("highestRandomWeight")
    failover_fields = spec.mapping("failover")
    if weighted_fields is not None:
        services = _refs(weighted_fields, "services", meta.namespace)
        weighted = Weighted(
            services, _sticky(weighted_fields), health_check=_propagation(weighted_fields)
        )
        weighted_fields.done()
    if hrw_fields is not None:
        services = _refs(hrw_fields, "services", meta.namespace)
        hrw = HighestRandomWeight(services, health_check=_propagation(hrw_fields))
        hrw_fields.done()
    if failover_fields is not None:
        if failover_fields.has("errors"):
            raise failover_fields.fail("errors", "failover on error statuses is not supported")
        failover = Failover(
            _lone_ref(failover_fields, "service", meta.namespace),
            _lone_ref(failover_fields, "fallback", meta.namespace),
            health_check=_propagation(failover_fields),
        )
        failover_fields.done()
    if mirroring_fields is not None:
        main = _service_ref(mirroring_fields, meta.namespace)
        mirrors = []
        for item in mirroring_fields.mappings("mirrors"):
            percent = item.integer("percent", 0, minimum=0, maximum=100)
            mirrors.append(MirrorRef(_service_ref(item, meta.namespace), percent))
            item.done(_REF_IGNORED)
        mirroring = Mirroring(
            service=main,
            mirrors=tuple(mirrors),
            max_body_size=mirroring_fields.integer("maxBodySize", -1, minimum=-1),
            mirror_body=mirroring_fields.boolean("mirrorBody", True),
        )
        mirroring_fields.done(_REF_IGNORED)
    if weighted is None and mirroring is None and failover is None and hrw is None:
        raise spec.fail(present[0], "must be a mapping")
    spec.done()
    return TraefikService(
        meta=meta,
        weighted=weighted,
        mirroring=mirroring,
        failover=failover,
        highest_random_weight=hrw,
    )


def parse_servers_transport(root: Fields, meta: Meta) -> ServersTransport:
    """A ServersTransport; its TLS fields are kept by name (``unsupported``) so that the
    services using it are disabled rather than served without them."""
    spec = _spec(root)
    unsupported = tuple(name for name in _TRANSPORT_TLS_FIELDS if spec.has(name))
    return ServersTransport(meta, read_transport(spec, tls_fields_allowed=True), unsupported)


#: ServersTransport fields about TLS towards the servers, which tsproxy does not implement.
_TRANSPORT_TLS_FIELDS = (
    "rootCAsSecrets",
    "rootCAs",
    "certificatesSecrets",
    "peerCertURI",
    "peerCertSANs",
    "spiffe",
    "cipherSuites",
    "minVersion",
    "maxVersion",
)


def read_transport(spec: Fields, tls_fields_allowed: bool = False) -> TransportSettings:
    """The fields of a ServersTransport spec (or a file provider's serversTransports entry).

    TLS fields are refused with a located error unless ``tls_fields_allowed`` (the caller
    then disables what uses the transport): they change what reaches a server."""
    timeouts = spec.mapping("forwardingTimeouts")
    dial, header, idle = 30.0, 0.0, 90.0
    if timeouts is not None:
        dial = timeouts.duration("dialTimeout", dial)
        header = timeouts.duration("responseHeaderTimeout", header)
        idle = timeouts.duration("idleConnTimeout", idle)
        timeouts.done({"readIdleTimeout": _NOT_YET, "pingTimeout": _NOT_YET})
    max_idle = spec.integer("maxIdleConnsPerHost", 0, minimum=-1)
    settings = TransportSettings(
        dial_timeout=dial,
        response_header_timeout=header,
        idle_conn_timeout=idle,
        max_idle_conns_per_host={0: 200, -1: 0}.get(max_idle, max_idle),
        disable_http2=spec.boolean("disableHTTP2", False),
        insecure_skip_verify=spec.boolean("insecureSkipVerify", False),
        server_name=spec.string("serverName"),
    )
    if not tls_fields_allowed:
        for name in _TRANSPORT_TLS_FIELDS:
            if spec.has(name):
                raise spec.fail(name, "TLS towards the servers is not supported yet")
    spec.done(_TRANSPORT_TLS_FIELDS)
    return settings


def _endpoint_ports(fields: Fields, key: str) -> tuple[EndpointPort, ...]:
    ports = []
    for item in fields.mappings(key):
        port = item.integer("port", 0, minimum=1, maximum=65535)
        if port:  # EndpointSlice ports may leave the number out: such a port is unusable
            ports.append(EndpointPort(port, item.string("name"), item.string("protocol", "TCP")))
    return tuple(ports)


def parse_service(root: Fields, meta: Meta) -> Service:
    spec = _spec(root)
    service_type = spec.string("type", "ClusterIP")
    ports = []
    for item in spec.mappings("ports"):
        if not item.has("port"):
            raise item.fail("port", "is required")
        ports.append(
            ServicePort(
                port=item.integer("port", 0, minimum=1, maximum=65535),
                name=item.string("name"),
                target_port=item.port("targetPort"),
                protocol=item.string("protocol", "TCP"),
                node_port=item.integer("nodePort", 0, minimum=0, maximum=65535),
            )
        )
    external_name = spec.string("externalName")
    if service_type == "ExternalName" and not external_name:
        raise spec.fail("externalName", "is required for type ExternalName")
    cluster_ip = spec.string("clusterIP")
    return Service(meta, tuple(ports), service_type, external_name, cluster_ip)


def parse_node(root: Fields, meta: Meta) -> Node:
    """A core v1 Node: its InternalIP addresses (what nodePortLB sends to)."""
    status = root.mapping("status")
    addresses = []
    for item in status.mappings("addresses") if status is not None else ():
        if item.string("type") == "InternalIP":
            addresses.append(item.string("address", required=True))
    return Node(meta, tuple(addresses))


def parse_endpoints(root: Fields, meta: Meta) -> Endpoints:
    subsets = []
    for subset in root.mappings("subsets"):
        addresses = tuple(item.string("ip", required=True) for item in subset.mappings("addresses"))
        subsets.append(EndpointSubset(addresses, _endpoint_ports(subset, "ports")))
    return Endpoints(meta, tuple(subsets))


def parse_endpoint_slice(root: Fields, meta: Meta) -> EndpointSlice:
    metadata = root.mapping("metadata")
    labels = metadata.mapping("labels") if metadata is not None else None
    service_name = labels.string(_SERVICE_LABEL) if labels is not None else ""
    if not service_name:
        line = labels.line if labels is not None else meta.location.line
        raise FieldError(line, f"metadata.labels.{_SERVICE_LABEL}", "is required")
    endpoints = []
    for item in root.mappings("endpoints"):
        conditions = item.mapping("conditions")
        ready = conditions.boolean("ready", True) if conditions is not None else True
        endpoints.append(SliceEndpoint(item.strings("addresses"), ready))
    return EndpointSlice(
        meta=meta,
        service_name=service_name,
        ports=_endpoint_ports(root, "ports"),
        endpoints=tuple(endpoints),
        address_type=root.string("addressType", "IPv4"),
    )


#: Every middleware kind of Traefik's Middleware and MiddlewareTCP CRDs, implemented or not.
HTTP_MIDDLEWARE_KINDS = (
    "addPrefix",
    "basicAuth",
    "buffering",
    "chain",
    "circuitBreaker",
    "compress",
    "contentType",
    "digestAuth",
    "errors",
    "forwardAuth",
    "grpcWeb",
    "headers",
    "inFlightReq",
    "ipAllowList",
    "ipWhiteList",
    "passTLSClientCert",
    "plugin",
    "rateLimit",
    "redirectRegex",
    "redirectScheme",
    "replacePath",
    "replacePathRegex",
    "retry",
    "stripPrefix",
    "stripPrefixRegex",
)
TCP_MIDDLEWARE_KINDS = ("inFlightConn", "ipAllowList", "ipWhiteList")


def plain(value: object) -> object:
    """A YAML value as plain dicts, lists and scalars (for the API)."""
    if isinstance(value, YAMLMap):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, YAMLList):
        return [plain(item) for item in value]
    return value


def _chain_spec(fields: Fields, namespace: str) -> tuple[MiddlewareRef, ...]:
    refs = middleware_refs(fields, namespace)
    fields.done()
    return refs


def _parse_any_middleware(root: Fields, meta: Meta, tcp: bool) -> Middleware:
    """The one kind a Middleware's spec names, parsed by that kind's reader; a problem with
    the kind or its section makes a failed Middleware (located), not a document error."""
    spec = _spec(root)
    made = MiddlewareTCP if tcp else Middleware
    known = TCP_MIDDLEWARE_KINDS if tcp else HTTP_MIDDLEWARE_KINDS
    named = [key for key in spec.data if isinstance(key, str) and key]
    if len(named) != len(spec.data):
        spec.done()  # a key that is not text: the usual "unknown field"
    if len(named) != 1:
        message = (
            "names no middleware kind"
            if not named
            else "names several kinds (%s): a middleware has exactly one, declare one"
            " middleware per kind" % ", ".join(named)
        )
        return made(meta, "", error=f"spec: {message}", line=spec.named_at)
    kind = named[0]
    line = spec.line_of(kind)
    config = plain(spec.data[kind])
    implemented = registry.tcp_kinds() if tcp else registry.http_kinds()
    if kind not in known and kind not in implemented:
        return made(meta, kind, None, config, f"spec.{kind}: unknown middleware kind", line)
    if kind == "chain" and not tcp:
        parse = lambda fields: _chain_spec(fields, meta.namespace)  # noqa: E731
    elif kind in implemented:
        parse = implemented[kind].parse
    else:
        message = f"spec.{kind}: the {kind} middleware is not implemented by tsproxy"
        return made(meta, kind, None, config, message, line)
    try:
        fields = spec.mapping(kind)
        if fields is None:  # ``headers:`` written empty: an empty section
            empty = YAMLMap()
            empty.line, empty.key_lines = line, {}
            fields = Fields(empty, spec.path_of(kind), spec.notices, line)
        parsed = parse(fields)
    except FieldError as exc:
        return made(meta, kind, None, config, str(exc), exc.line)
    except Exception as exc:  # a kind's reader failing is this middleware's problem only
        return made(meta, kind, None, config, f"spec.{kind}: cannot be read: {exc}", line)
    return made(meta, kind, parsed, config, "", line)


def parse_middleware(root: Fields, meta: Meta) -> Middleware:
    return _parse_any_middleware(root, meta, tcp=False)


def parse_middleware_tcp(root: Fields, meta: Meta) -> Middleware:
    return _parse_any_middleware(root, meta, tcp=True)


TRAEFIK_GROUPS = ("traefik.io/v1alpha1", "traefik.containo.us/v1alpha1")
PARSERS: dict[tuple[str, str], Parser] = {
    **{(group, "IngressRoute"): parse_ingress_route for group in TRAEFIK_GROUPS},
    **{(group, "IngressRouteTCP"): parse_ingress_route_tcp for group in TRAEFIK_GROUPS},
    **{(group, "TLSOption"): parse_tls_option for group in TRAEFIK_GROUPS},
    **{(group, "TLSStore"): parse_tls_store for group in TRAEFIK_GROUPS},
    ("v1", "Secret"): parse_secret,
    **{(group, "IngressRouteUDP"): parse_ingress_route_udp for group in TRAEFIK_GROUPS},
    **{(group, "TraefikService"): parse_traefik_service for group in TRAEFIK_GROUPS},
    **{(group, "ServersTransport"): parse_servers_transport for group in TRAEFIK_GROUPS},
    ("v1", "Service"): parse_service,
    ("v1", "Node"): parse_node,
    ("v1", "Endpoints"): parse_endpoints,
    ("discovery.k8s.io/v1", "EndpointSlice"): parse_endpoint_slice,
    **{(group, "Middleware"): parse_middleware for group in TRAEFIK_GROUPS},
    **{(group, "MiddlewareTCP"): parse_middleware_tcp for group in TRAEFIK_GROUPS},
}
_HANDLED_KINDS = {kind for _, kind in PARSERS}


@attrs.frozen
class ParsedDocument:
    """What became of one document: a resource, or an error, plus notices (full strings)."""

    resource: Optional[Resource] = None
    error: Optional[ConfigError] = None
    notices: tuple[str, ...] = ()


def _metadata(data: YAMLMap) -> tuple[str, str]:
    """Namespace and name for labels, tolerating documents that will be rejected."""
    metadata = data.get("metadata")
    if not isinstance(metadata, YAMLMap):
        return "default", ""
    namespace = metadata.get("namespace")
    name = metadata.get("name")
    return (
        namespace if isinstance(namespace, str) and namespace else "default",
        name if isinstance(name, str) else "",
    )


def _string_maps(metadata: Fields) -> tuple[tuple[tuple[str, str], ...], ...]:
    """``metadata.labels`` and ``metadata.annotations`` as (key, value) pairs, leniently."""
    found = []
    for key in ("labels", "annotations"):
        section = metadata.data.get(key)
        pairs = section.items() if isinstance(section, YAMLMap) else ()
        found.append(tuple((str(k), str(v)) for k, v in pairs if isinstance(v, str)))
    return found[0], found[1]


def parse_document(document: Document, file: str) -> ParsedDocument:
    """Turn one document into a resource, a skip notice, or a located error."""
    data = document.data
    if not isinstance(data, YAMLMap):
        return ParsedDocument(error=ConfigError(file, document.line, "", "not a mapping"))
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not kind:
        message = "apiVersion and kind are required (strings)"
        return ParsedDocument(error=ConfigError(file, document.line, "", message))
    namespace, name = _metadata(data)
    label = f"{kind} {namespace}/{name}" if name else kind
    parser = PARSERS.get((api_version, kind))
    if parser is None:
        reason = (
            f"apiVersion {api_version} not handled"
            if kind in _HANDLED_KINDS
            else "kind not handled"
        )
        return ParsedDocument(notices=(f"{file}:{document.line}: skipping {label} ({reason})",))
    notices: list[tuple[int, str]] = []
    try:
        root = Fields(data, "", notices)
        metadata = root.mapping("metadata", required=True)
        assert metadata is not None
        metadata.string("name", required=True)
        metadata.string("namespace")
        location = Location(file, document.line, label)
        labels, annotations = _string_maps(metadata)
        resource = parser(root, Meta(kind, namespace, name, location, labels, annotations))
    except FieldError as exc:
        return ParsedDocument(error=ConfigError(file, exc.line, label, str(exc)))
    texts = tuple(f"{file}:{line}: {label}: {text}" for line, text in notices)
    return ParsedDocument(resource=resource, notices=texts)
