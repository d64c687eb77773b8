"""`tsproxy route`: which router serves a request, a connection or a datagram, and the service
tree below it.

HTTP and HTTPS requests, TLS connections by SNI and plain connections on TCP entrypoints, and
UDP entrypoints, decided as the engines decide (EntryPointTCP for the connection, then the HTTP
routers). Pure formatting over a built RoutingTable: no I/O, no balancer state is touched (the
tree is drawn from the service definitions, so asking does not move a WRR position).
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from tsproxy.rules import HTTPRequestInfo, TCPConnectionInfo
from tsproxy.runtime.l4 import L4LoadBalancerDef, L4WeightedDef, host_port
from tsproxy.runtime.services import (
    FailoverDef,
    HighestRandomWeightDef,
    LoadBalancerDef,
    MirroringDef,
    WeightedDef,
)
from tsproxy.runtime.tcp import CLOSE, HTTP, TCP, TCP_TLS


def request_info(
    method: str, url: str, headers: Sequence[Tuple[str, str]], client_ip: str
) -> HTTPRequestInfo:
    """The request a client would send for `url`: its Host from the URL unless a Host
    header is given, its target the URL's path and query."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    pairs = list(headers)
    if not any(name.lower() == "host" for name, _ in pairs) and parts.netloc:
        pairs.insert(0, ("Host", parts.netloc))
    return HTTPRequestInfo.from_request(method.upper(), target, pairs, client_ip)


def service_tree(definition: Any, prefix: str = "") -> List[str]:
    """Lines drawing a service definition and everything below it."""
    lines: List[str] = []
    children: List[Tuple[str, Any]] = []
    if isinstance(definition, WeightedDef):
        sticky = " sticky cookie %r" % definition.sticky.name if definition.sticky else ""
        lines.append("%s (weighted%s)" % (definition.name, sticky))
        children = [("weight %d: " % c.weight, c.definition) for c in definition.children]
    elif isinstance(definition, MirroringDef):
        lines.append("%s (mirroring)" % (definition.name,))
        children = [("main: ", definition.main)] + [
            ("mirror %d%%: " % percent, mirror) for mirror, percent in definition.mirrors
        ]
    elif isinstance(definition, L4WeightedDef):
        lines.append("%s (weighted)" % (definition.name,))
        children = [("weight %d: " % c.weight, c.definition) for c in definition.children]
    elif isinstance(definition, L4LoadBalancerDef):
        lines.append("%s (load balancer)" % (definition.name,))
        children = [("", host_port(server.host, server.port)) for server in definition.servers]
    elif isinstance(definition, HighestRandomWeightDef):
        lines.append("%s (highest random weight on the client IP)" % (definition.name,))
        children = [("weight %d: " % c.weight, c.definition) for c in definition.children]
    elif isinstance(definition, FailoverDef):
        lines.append("%s (failover)" % (definition.name,))
        children = [("service: ", definition.main), ("fallback: ", definition.fallback)]
    elif isinstance(definition, LoadBalancerDef):
        sticky = " sticky cookie %r" % definition.sticky.name if definition.sticky else ""
        health = (
            " health check %s" % (definition.health_check.path or "/",)
            if (definition.health_check is not None)
            else ""
        )
        strategy = "" if definition.strategy == "wrr" else " " + definition.strategy
        lines.append("%s (load balancer%s%s%s)" % (definition.name, strategy, sticky, health))
        children = [("", server.url) for server in definition.servers]
    else:
        lines.append(str(definition))
    for index, (label, child) in enumerate(children):
        last = index == len(children) - 1
        branch, carry = ("└─ ", "   ") if last else ("├─ ", "│  ")
        below = service_tree(child, prefix + carry) if not isinstance(child, str) else [child]
        lines.append(prefix + branch + label + below[0])
        lines.extend(below[1:])
    return lines


def _entrypoint_line(table: Any, ep: Any) -> str:
    """``entrypoint web on 127.0.0.1:8000 (TCP): 3 HTTP routers`` and the like."""
    address = host_port(ep.host or "*", ep.port) + ("/udp" if ep.protocol == "udp" else "")
    if ep.protocol == "udp":
        served = "1 UDP router" if table.udp_router(ep.name) is not None else "no UDP router"
    else:
        routing = table.entrypoint_tcp(ep.name)
        counts = (
            (len(table.http_routers(ep.name)), "HTTP"),
            (len(table.http_routers(ep.name, tls=True)), "HTTPS"),
            (len(routing.plain), "plain TCP"),
            (len(routing.tls), "TLS TCP"),
        )
        parts = ["%d %s router%s" % (n, kind, "" if n == 1 else "s") for n, kind in counts if n]
        served = ", ".join(parts) or "no router"
        internal = table.static.internal_entrypoints().get(ep.name, ())
        if internal:
            served += "; answers %s itself before its routers" % (", ".join(internal),)
    return "entrypoint %s on %s (%s): %s" % (ep.name, address, ep.protocol.upper(), served)


def _router_lines(kind: str, router: Any, definition: Any) -> List[str]:
    source = router.source
    lines = [
        "router    %s (%s)" % (router.name, kind),
        "from      %s:%s (%s)" % (source.file, source.line, source.resource),
    ]
    if getattr(router, "rule", None) is not None:
        lines.append("rule      %s" % (router.rule,))
        lines.append("priority  %d" % (router.priority,))
    tls = getattr(router, "tls", None)
    if tls is not None and kind == "TCP":
        lines.append("tls       %s" % ("passthrough" if tls.passthrough else "ends here"))
    chain = getattr(router, "chain", ())
    if chain:
        lines.append("steps     " + ", ".join(name for name, _ in chain))
    lines.append("service   " + "\n          ".join(service_tree(definition)))
    return lines


def _verdicts(router_set: Any, subject: Any, chosen: Any) -> List[str]:
    out = []
    for name, rule, priority, router in router_set.ordered():
        verdict = "match   " if rule.match(subject) else "no match"
        marker = "*" if router is chosen else " "
        out.append("%s %s %6d  %s  %s" % (marker, verdict, priority, name, router.rule))
    return out


def _internal(serves: Sequence[str], req: HTTPRequestInfo) -> Optional[str]:
    """Which internal endpoint answers ``req`` first (tsproxy/api/internal.py's order)."""
    path = req.path
    for name, prefix in (("ping", "/ping"), ("metrics", "/metrics"), ("api", "/api")):
        if name in serves and path.startswith(prefix):
            return name
    if "dashboard" in serves and (path in ("/", "/dashboard") or path.startswith("/dashboard/")):
        return "dashboard"
    return None


def _explain_http(
    table: Any, entrypoint: str, req: HTTPRequestInfo, tls: bool, show_all: bool
) -> Tuple[int, List[str]]:
    kind = "HTTPS" if tls else "HTTP"
    internal = _internal(table.static.internal_entrypoints().get(entrypoint, ()), req)
    if internal is not None:
        return 0, [
            "%s: answered by the internal %s endpoint, before any router" % (req.path, internal)
        ]
    routers = table.http_routers(entrypoint, tls=tls)
    chosen = table.http_route(entrypoint, req, tls=tls)
    out: List[str] = []
    if show_all:
        out.append("%s routers of entrypoint %s, in evaluation order:" % (kind, entrypoint))
        for router in routers:
            verdict = "match   " if router.matcher.match(req) else "no match"
            marker = "*" if router is chosen else " "
            out.append(
                "%s %s %6d  %s  %s" % (marker, verdict, router.priority, router.name, router.rule)
            )
        out.append("")
    if chosen is None:
        out.append("no %s router of entrypoint %s matches: 404 page not found" % (kind, entrypoint))
        if table.http_routers(entrypoint, tls=not tls):
            other = "plain HTTP (http://)" if tls else "HTTPS (https:// or --sni)"
            out.append(
                "(the entrypoint has %s routers: ask over %s)" % ("HTTP" if tls else "HTTPS", other)
            )
        return 1, out
    return 0, out + _router_lines(kind, chosen, chosen.service.definition)


def explain(
    table: Any,
    entrypoint: str,
    req: Optional[HTTPRequestInfo],
    show_all: bool = False,
    tls: bool = False,
    sni: Optional[str] = None,
    client_ip: str = "127.0.0.1",
) -> Tuple[int, str]:
    """(exit status, text) for a request ``req`` (None: a connection or datagram that is not
    HTTP), over TLS with ``tls`` or an ``sni`` (default: the request's host): 0 when a router
    takes it, 1 when none does, 2 when the entrypoint does not exist or does not speak what
    is asked of it."""
    names = [ep.name for ep in table.static.entrypoints]
    if entrypoint not in names:
        described = ", ".join(
            "%s (%s)" % (ep.name, ep.protocol.upper()) for ep in table.static.entrypoints
        )
        return 2, "entrypoint %s does not exist; the entrypoints are: %s" % (entrypoint, described)
    ep = table.static.entrypoint(entrypoint)
    out = [_entrypoint_line(table, ep)]
    if ep.protocol == "udp":
        return _explain_udp(table, ep, out, asked=req is not None or tls or sni is not None)
    routing = table.entrypoint_tcp(entrypoint)
    if tls or sni is not None:
        server_name = sni if sni is not None else (req.host if req is not None else "")
        what = (
            "a TLS connection with SNI %r" % (server_name,)
            if server_name
            else ("a TLS connection without SNI")
        )
        if routing.mode == "http":
            out.append(
                "%s gets no handshake: the entrypoint has no HTTPS or TLS TCP router, so it"
                " reads HTTP from the first byte (400)" % (what,)
            )
            return 1, "\n".join(out)
        if routing.mode == "fast":
            out.append(
                "%s is relayed as it is, TLS included: the entrypoint has plain TCP routers"
                " only and routes each connection as it is accepted" % (what,)
            )
            tls, sni, req = False, None, None
    if tls or sni is not None:
        assert routing is not None
        conn = TCPConnectionInfo(server_name, (), client_ip)
        kind, target = routing.route_tls(conn)
        if show_all and len(routing.tls):
            out.append("TLS TCP routers of entrypoint %s, in evaluation order:" % (entrypoint,))
            out += _verdicts(routing.tls, conn, target if kind == TCP_TLS else None)
            out.append("")
        if kind == TCP_TLS:
            out.append("%s goes to a TLS TCP router" % (what,))
            out += _router_lines("TCP", target, target.service.definition)
            return 0, "\n".join(out)
        out.append("%s: TLS ends here, then the HTTPS routers" % (what,))
        if req is None:
            out.append("(give METHOD URL to see which HTTPS router takes the request)")
            return 0, "\n".join(out)
        status, lines = _explain_http(table, entrypoint, req, True, show_all)
        return status, "\n".join(out + lines)
    kind, router = routing.route_cleartext(client_ip)
    if kind == HTTP:
        if req is None:
            out.append(
                "it speaks HTTP to a connection that is not TLS: give METHOD URL (https:// or"
                " --sni for TLS)"
            )
            return 2, "\n".join(out)
        status, lines = _explain_http(table, entrypoint, req, False, show_all)
        return status, "\n".join(out + lines)
    conn = TCPConnectionInfo("", (), client_ip)
    if show_all:
        out.append("plain TCP routers of entrypoint %s, in evaluation order:" % (entrypoint,))
        out += _verdicts(routing.plain, conn, router)
        out.append("")
    if req is not None:
        out.append(
            "it has no HTTP router: a request is relayed as bytes like any connection that is"
            " not TLS"
        )
    if kind == CLOSE:
        out.append("no plain TCP router takes a connection from %s: it is closed" % (client_ip,))
        return 1, "\n".join(out)
    assert kind == TCP and router is not None
    when = "as it is accepted" if routing.mode == "fast" else "after its first bytes"
    out.append("the connection goes to a plain TCP router, %s" % (when,))
    out += _router_lines("TCP", router, router.service.definition)
    return 0, "\n".join(out)


def _explain_udp(table: Any, ep: Any, out: List[str], asked: bool) -> Tuple[int, str]:
    router = table.udp_router(ep.name)
    if asked:
        out.append(
            "it is a UDP entrypoint: no HTTP request or TLS connection reaches it (ask without"
            " METHOD URL and --sni)"
        )
    if router is None:
        out.append("no UDP router serves it: datagrams are dropped")
        return 2 if asked else 1, "\n".join(out)
    out.append("every datagram goes to its one UDP router (a session per client address)")
    out += _router_lines("UDP", router, router.service.definition)
    return 2 if asked else 0, "\n".join(out)
