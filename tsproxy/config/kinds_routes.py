"""Kinds reading, the routes: IngressRoute, IngressRouteTCP and IngressRouteUDP (routes, their
service references, TLS sections); ``kinds`` dispatches to them."""

from __future__ import annotations

from tsproxy.config.kinds_services import (
    _NOT_YET,
    _lb_modes,
    _refs,
    _spec,
    middleware_refs,
)
from tsproxy.config.resources import (
    HTTPRoute,
    IngressRoute,
    IngressRouteTCP,
    IngressRouteUDP,
    Meta,
    ObjectRef,
    RouteTLS,
    ServiceRef,
    TCPRoute,
    TCPServiceRef,
    TLSDomain,
    UDPRoute,
)
from tsproxy.config.schema import Fields
from tsproxy.config.transports_tcp import read_proxy_protocol

_MAX_PRIORITY = 2**63 - 1 - 1000  # Traefik reserves the top 1000 for its internal routers


def _object_ref(fields: Fields, namespace: str) -> ObjectRef:
    name = fields.string("name", required=True)
    # name@provider: another provider's object, which has no namespace.
    ref = ObjectRef(name, "" if "@" in name else fields.string("namespace") or namespace)
    fields.done()
    return ref


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


def parse_ingress_route(root: Fields, meta: Meta) -> IngressRoute:
    spec = _spec(root)
    entry_points = spec.strings("entryPoints")
    routes = tuple(_http_route(item, meta.namespace) for item in spec.mappings("routes", True))
    tls_fields = spec.mapping("tls")
    tls = None if tls_fields is None else _route_tls(tls_fields, meta.namespace)
    if tls is not None and tls.cert_resolver:
        # No ACME here: served with another certificate, the route would not be what was
        # asked for (fail closed, as the file provider does).
        raise tls_fields.fail(  # type: ignore[union-attr]
            "certResolver", "ACME certificate resolvers are not supported"
        )
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
    proxy_protocol = read_proxy_protocol(fields)
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
    # tls and serversTransport are resolved at build time (the ServersTransportTCP named, or
    # the static tcpServersTransport); what cannot be honoured there disables the route.
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
        # No ACME here: served with another certificate, the route would not be what was
        # asked for (fail closed, as the file provider does).
        raise tls_fields.fail(  # type: ignore[union-attr]
            "certResolver", "ACME certificate resolvers are not supported"
        )
    spec.done({"ingressClassName": _NOT_YET})
    return IngressRouteTCP(meta=meta, routes=routes, entry_points=entry_points, tls=tls)


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
