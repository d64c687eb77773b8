"""Reading the named entries of the file provider's ``http``, ``tcp`` and ``udp`` sections
(a router, a service, a serversTransport, a middleware) into the values of
tsproxy/config/fileformat_values.py. ``SECTIONS_OF`` says, per section and key, what an entry
is called in errors and which reader reads it; tsproxy/config/fileformat.py walks the
documents through it. Pure.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Optional, Tuple

import attrs

from tsproxy.config.errors import Location
from tsproxy.config.fileformat_values import (
    FileAddress,
    FileChild,
    FileFailover,
    FileL4Service,
    FileLoadBalancer,
    FileMiddleware,
    FileMirroring,
    FileRouter,
    FileServer,
    FileService,
    FileTransport,
    FileWeighted,
)
from tsproxy.config.kinds_services import (
    _health_check,
    _passive_health_check,
    _propagation,
    read_sticky,
    read_strategy,
    read_transport,
)
from tsproxy.config.resources import MiddlewareRef, ObjectRef, RouteTLS, TLSDomain
from tsproxy.config.schema import Fields
from tsproxy.config.transports_tcp import read_proxy_protocol
from tsproxy.config.yamlio import YAMLMap

__all__ = ["SECTIONS_OF"]

_NOT_YET = "not supported yet, ignored"
_MAX_PRIORITY = 2**63 - 1 - 1000


#: A URL path as Go sends it unchanged: unreserved and sub-delim characters, ``:@/``, escapes.
_URL_PATH = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*")


def _server(fields: Fields) -> FileServer:
    url = fields.string("url", required=True)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https", "h2c") or not rest:
        raise fields.fail("url", "must be an http, https or h2c URL (like http://10.0.0.1:80)")
    slash = rest.find("/")
    hostport, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    if any(mark in rest for mark in "?#") or "@" in hostport:
        raise fields.fail("url", "a query, fragment or user in a server URL is not supported")
    if not _URL_PATH.fullmatch(path):
        raise fields.fail("url", f"the path {path!r} is not a valid URL path (escape it)")
    weight = fields.integer("weight", 1, minimum=0) if fields.has("weight") else None
    preserve = fields.boolean("preservePath", False)
    server = FileServer(url, fields.line, fields.path, weight, preserve)
    fields.done()
    return server


def _load_balancer(fields: Fields) -> FileLoadBalancer:
    servers = tuple(_server(item) for item in fields.mappings("servers"))
    strategy = read_strategy(fields)
    balancer = FileLoadBalancer(
        servers=servers,
        pass_host_header=fields.boolean("passHostHeader", True),
        sticky=read_sticky(fields),
        servers_transport=fields.string("serversTransport"),
        health_check=_health_check(fields),
        passive=_passive_health_check(fields),
        strategy=strategy,
    )
    fields.done({"responseForwarding": _NOT_YET})
    return balancer


def _child(fields: Fields, amount_key: str, maximum: Optional[int]) -> FileChild:
    child = FileChild(
        fields.string("name", required=True),
        fields.integer(amount_key, 1 if amount_key == "weight" else 0, 0, maximum),
        fields.line,
        fields.path,
    )
    fields.done()
    return child


_SERVICE_KINDS = ("loadBalancer", "weighted", "mirroring", "failover", "highestRandomWeight")


def _service(name: str, fields: Fields, location: Location, own: str = "") -> FileService:
    kinds = [key for key in _SERVICE_KINDS if fields.has(key)]
    if len(kinds) != 1:
        raise fields.whole(
            "exactly one of loadBalancer, weighted, mirroring, failover or highestRandomWeight"
            " is required"
        )
    service = FileService(name, location)
    balancer_fields = fields.mapping("loadBalancer")
    if balancer_fields is not None:
        service = attrs.evolve(service, load_balancer=_load_balancer(balancer_fields))
    weighted_fields = fields.mapping("weighted")
    if weighted_fields is not None:
        children = tuple(_child(i, "weight", None) for i in weighted_fields.mappings("services"))
        sticky = read_sticky(weighted_fields)
        follow = _propagation(weighted_fields)
        weighted_fields.done()
        service = attrs.evolve(service, weighted=FileWeighted(children, sticky, follow))
    hrw_fields = fields.mapping("highestRandomWeight")
    if hrw_fields is not None:
        children = tuple(_child(i, "weight", None) for i in hrw_fields.mappings("services"))
        follow = _propagation(hrw_fields)
        hrw_fields.done()
        hrw = FileWeighted(children, None, follow)
        service = attrs.evolve(service, highest_random_weight=hrw)
    failover_fields = fields.mapping("failover")
    if failover_fields is not None:
        if failover_fields.has("errors"):
            raise failover_fields.fail("errors", "failover on error statuses is not supported")
        failover = FileFailover(
            failover_fields.string("service", required=True),
            failover_fields.string("fallback", required=True),
            failover_fields.line_of("service"),
            _propagation(failover_fields),
        )
        failover_fields.done()
        service = attrs.evolve(service, failover=failover)
    mirroring_fields = fields.mapping("mirroring")
    if mirroring_fields is not None:
        mirroring = FileMirroring(
            service=mirroring_fields.string("service", required=True),
            line=mirroring_fields.line_of("service"),
            mirrors=tuple(_child(i, "percent", 100) for i in mirroring_fields.mappings("mirrors")),
            max_body_size=mirroring_fields.integer("maxBodySize", -1, minimum=-1),
            mirror_body=mirroring_fields.boolean("mirrorBody", True),
            health_check=_propagation(mirroring_fields),
        )
        mirroring_fields.done()
        service = attrs.evolve(service, mirroring=mirroring)
    fields.done()
    return service


def _router_tls(fields: Fields, own: str = "file") -> RouteTLS:
    if fields.string("certResolver"):
        raise fields.fail("certResolver", "ACME certificate resolvers are not supported")
    written = fields.string("options")
    options = None
    if written not in ("", "default", "default@internal"):
        name, _, provider = written.partition("@")
        if provider not in ("", own):
            raise fields.fail("options", "TLS options of another provider are not supported yet")
        options = ObjectRef(f"{name}@{own}", "")
    domains = []
    for item in fields.mappings("domains"):
        domains.append(TLSDomain(item.string("main"), item.strings("sans")))
        item.done()
    fields.done()
    return RouteTLS(options=options, domains=tuple(domains))


def _router(name: str, fields: Fields, location: Location, own: str = "file") -> FileRouter:
    present, tls_fields = fields.section("tls")
    router = FileRouter(
        name=name,
        location=location,
        rule=fields.string("rule", required=True),
        service=fields.string("service", required=True),
        entry_points=fields.strings("entryPoints"),
        priority=fields.integer("priority", 0, maximum=_MAX_PRIORITY),
        syntax=fields.string("ruleSyntax", choices=("", "v2", "v3")),
        middlewares=fields.strings("middlewares"),
        tls=(RouteTLS() if tls_fields is None else _router_tls(tls_fields, own))
        if present
        else None,
    )
    fields.done({"observability": _NOT_YET})
    return router


def _transport(name: str, fields: Fields, location: Location, own: str = "") -> FileTransport:
    return FileTransport(name, location, read_transport(fields))


def _middleware(
    name: str, fields: Fields, location: Location, own: str = "", tcp: bool = False
) -> FileMiddleware:
    from tsproxy.middlewares.registry import http_kinds, tcp_kinds

    keys = [key for key in fields.data if isinstance(key, str)]
    if len(keys) != 1:
        example = "ipAllowList" if tcp else "stripPrefix"
        raise fields.whole(f"a middleware has exactly one kind (like {example})")
    if keys[0] == "chain" and not tcp:
        return FileMiddleware(name, location, "chain", _file_chain(fields, own or "file"))
    kinds = tcp_kinds() if tcp else http_kinds()
    kind = kinds.get(keys[0])
    if kind is None and getattr(fields.data, "caseless", False):
        # Keys of a key-value store are case-insensitive (``stripprefix``).
        kind = {k.lower(): v for k, v in kinds.items()}.get(keys[0].lower())
    if kind is None and tcp:
        known = ", ".join(sorted(kinds))
        raise fields.fail(keys[0], f"not a TCP middleware kind (one of: {known})")
    if kind is None:
        raise fields.fail(keys[0], "this middleware kind is not implemented yet")
    section = fields.mapping(keys[0])
    spec = kind.parse(section if section is not None else Fields(YAMLMap(), keys[0], []))
    fields.done()
    return FileMiddleware(name, location, kind.name, spec)


def _file_chain(fields: Fields, own: str = "file") -> Tuple[MiddlewareRef, ...]:
    """``chain: {middlewares: [a, b@kubernetescrd]}``: a bare name is one of this
    provider's (``a@file``, ``a@etcd``), as Traefik resolves it."""
    section = fields.mapping("chain")
    if section is None:
        raise fields.fail("chain", "must be a mapping")
    names = section.strings("middlewares")
    section.done()
    fields.done()
    path = f"{section.path}.middlewares" if section.path else "chain.middlewares"
    return tuple(
        MiddlewareRef(name if "@" in name else f"{name}@{own}", "", section.line, f"{path}[{i}]")
        for i, name in enumerate(names)
    )


def _address(fields: Fields, tcp: bool = False) -> FileAddress:
    """A TCP or UDP server; ``tls: true`` (dial it with TLS) is for TCP servers only."""
    address = fields.string("address", required=True)
    host, colon, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise fields.fail("address", "must be host:port (like 10.0.0.1:5432 or [fd00::1]:53)")
    tls = fields.boolean("tls", False)
    if tls and not tcp:
        raise fields.fail("tls", "UDP servers are not dialled with TLS")
    fields.done()
    return FileAddress(host, int(port), fields.line, fields.path, tls)


def _l4_service(name: str, fields: Fields, location: Location, tcp: bool) -> FileL4Service:
    kinds = [key for key in ("loadBalancer", "weighted") if fields.has(key)]
    if len(kinds) != 1:
        raise fields.whole("exactly one of loadBalancer or weighted is required")
    service = FileL4Service(name, location)
    balancer = fields.mapping("loadBalancer")
    if balancer is not None:
        servers = tuple(_address(item, tcp) for item in balancer.mappings("servers"))
        proxy_protocol, delay = 0, 100
        if tcp:
            proxy_protocol = read_proxy_protocol(balancer)
            delay = balancer.integer("terminationDelay", 100)
            transport = balancer.string("serversTransport")
            service = attrs.evolve(service, servers_transport=transport)
        balancer.done()
        service = attrs.evolve(
            service, servers=servers, proxy_protocol=proxy_protocol, termination_delay=delay
        )
    weighted = fields.mapping("weighted")
    if weighted is not None:
        children = tuple(_child(i, "weight", None) for i in weighted.mappings("services"))
        weighted.done()
        service = attrs.evolve(service, weighted=children)
    fields.done()
    return service


def _tcp_router(name: str, fields: Fields, location: Location, own: str = "file") -> FileRouter:
    present, tls_fields = fields.section("tls")
    tls = None
    if present:
        passthrough = tls_fields.boolean("passthrough", False) if tls_fields else False
        tls = RouteTLS() if tls_fields is None else _router_tls(tls_fields, own)
        tls = attrs.evolve(tls, passthrough=passthrough)
    router = FileRouter(
        name=name,
        location=location,
        rule=fields.string("rule", required=True),
        service=fields.string("service", required=True),
        entry_points=fields.strings("entryPoints"),
        priority=fields.integer("priority", 0, maximum=_MAX_PRIORITY),
        syntax=fields.string("ruleSyntax", choices=("", "v2", "v3")),
        middlewares=fields.strings("middlewares"),
        tls=tls,
    )
    fields.done()
    return router


def _udp_router(name: str, fields: Fields, location: Location, own: str = "") -> FileRouter:
    router = FileRouter(
        name=name,
        location=location,
        rule="",
        service=fields.string("service", required=True),
        entry_points=fields.strings("entryPoints"),
    )
    fields.done()
    return router


SECTIONS_OF: Dict[str, Tuple[Tuple[str, str, Callable[..., Any]], ...]] = {
    "http": (
        ("routers", "router", _router),
        ("services", "service", _service),
        ("serversTransports", "serversTransport", _transport),
        ("middlewares", "middleware", _middleware),
    ),
    "tcp": (
        ("routers", "TCP router", _tcp_router),
        ("services", "TCP service", lambda n, f, loc, own: _l4_service(n, f, loc, True)),
        ("middlewares", "TCP middleware", lambda n, f, loc, own: _middleware(n, f, loc, own, True)),
        # Read by the reader itself (_Reader._tcp_transport: its TLS files), as http's.
        ("serversTransports", "TCP serversTransport", _transport),
    ),
    "udp": (
        ("routers", "UDP router", _udp_router),
        ("services", "UDP service", lambda n, f, loc, own: _l4_service(n, f, loc, False)),
    ),
}
