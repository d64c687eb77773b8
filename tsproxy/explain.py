"""`tsproxy route`: which router serves a request, and the service tree below it.

Pure formatting over a built RoutingTable: no I/O, no balancer state is touched (the tree is
drawn from the service definitions, so asking does not move a WRR position).
"""

from __future__ import annotations

from typing import Any, List, Sequence, Tuple
from urllib.parse import urlsplit

from tsproxy.rules import HTTPRequestInfo
from tsproxy.runtime.services import (
    FailoverDef,
    HighestRandomWeightDef,
    LoadBalancerDef,
    MirroringDef,
    WeightedDef,
)


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
        lines.append("%s (load balancer%s%s)" % (definition.name, sticky, health))
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


def explain(table: Any, entrypoint: str, req: HTTPRequestInfo, show_all: bool) -> Tuple[int, str]:
    """(exit status, text): 0 when a router takes the request, 1 when none does."""
    routers = table.http_routers(entrypoint)
    chosen = table.http_route(entrypoint, req)
    out: List[str] = []
    if show_all:
        out.append("routers of entrypoint %s, in evaluation order:" % (entrypoint,))
        for router in routers:
            verdict = "match   " if router.matcher.match(req) else "no match"
            marker = "*" if router is chosen else " "
            out.append(
                "%s %s %6d  %s  %s" % (marker, verdict, router.priority, router.name, router.rule)
            )
        out.append("")
    if chosen is None:
        out.append("no router of entrypoint %s matches: 404 page not found" % (entrypoint,))
        return 1, "\n".join(out)
    source = chosen.source
    out += [
        "router    %s" % (chosen.name,),
        "from      %s:%s (%s)" % (source.file, source.line, source.resource),
        "rule      %s" % (chosen.rule,),
        "priority  %d" % (chosen.priority,),
    ]
    if chosen.chain:
        out.append("steps     " + ", ".join(name for name, _ in chosen.chain))
    out.append("service   " + "\n          ".join(service_tree(chosen.service.definition)))
    return 0, "\n".join(out)
