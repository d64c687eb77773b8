"""The API's entrypoint, middleware, overview, rawdata, version, health and stats documents
(pkg/api of Traefik v3). Pure."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from tsproxy.api.document import (
    DISABLED,
    ENABLED,
    PROVIDER,
    Document,
    Sorts,
    Stats,
    go_duration,
    qualified,
)
from tsproxy.api.routing import (
    _http_services,
    _router_infos,
    _status,
    _tcp_services,
    _udp_services,
    _with_status,
    http_routers,
    http_services,
    tcp_routers,
    tcp_services,
    udp_routers,
    udp_services,
)
from tsproxy.config.static import EntryPoint, StaticConfig
from tsproxy.runtime.services import (
    LoadBalancer,
    is_up,
)

# -- entrypoints, overview, rawdata, version, stats ---------------------------------------------


def _address(entrypoint: EntryPoint) -> str:
    host = f"[{entrypoint.host}]" if ":" in entrypoint.host else entrypoint.host
    suffix = "/udp" if entrypoint.protocol == "udp" else ""
    return f"{host}:{entrypoint.port}{suffix}"


def _entrypoint(entrypoint: EntryPoint) -> Document:
    """An entrypoint's static configuration, in Traefik's fields, and its name."""
    life_cycle: Document = {}
    if entrypoint.grace_timeout:
        life_cycle["graceTimeOut"] = go_duration(entrypoint.grace_timeout)
    responding: Document = {}
    for key, value in (
        ("readTimeout", entrypoint.read_timeout),
        ("writeTimeout", entrypoint.write_timeout),
        ("idleTimeout", entrypoint.idle_timeout),
    ):
        if value:
            responding[key] = go_duration(value)
    forwarded: Document = {}
    if entrypoint.insecure_forwarded:
        forwarded["insecure"] = True
    if entrypoint.trusted_ips:
        forwarded["trustedIPs"] = list(entrypoint.trusted_ips)
    document: Document = {
        "address": _address(entrypoint),
        "transport": {"lifeCycle": life_cycle, "respondingTimeouts": responding},
        "forwardedHeaders": forwarded,
        "udp": {
            "timeout": go_duration(entrypoint.udp_timeout),
            "maxSessions": entrypoint.udp_max_sessions,
        },
        "name": entrypoint.name,
    }
    accept = entrypoint.proxy_protocol
    if accept is not None:
        proxy: Document = {}
        if accept.insecure:
            proxy["insecure"] = True
        if accept.trusted_ips:
            proxy["trustedIPs"] = list(accept.trusted_ips)
        document["proxyProtocol"] = proxy
    return document


def entrypoints(static: StaticConfig) -> Dict[str, Document]:
    """Every entrypoint by name, as ``/api/entrypoints`` lists them."""
    return {entrypoint.name: _entrypoint(entrypoint) for entrypoint in static.entrypoints}


def _middleware_infos(table: Any, tcp: bool) -> Dict[str, Document]:
    """Qualified name -> Traefik's MiddlewareInfo: the kind's section under its key, errors,
    status, the routers using it."""
    infos: Dict[str, Document] = {}
    for middleware in getattr(table, "middlewares", ()):
        if middleware.tcp != tcp:
            continue
        info: Document = {}
        if middleware.kind:
            info[middleware.kind] = middleware.config if middleware.config is not None else {}
        _status(info, DISABLED if middleware.errors else ENABLED, middleware.errors)
        if middleware.used_by:
            info["usedBy"] = list(middleware.used_by)
        infos[middleware.name] = info
    return infos


def _middlewares(table: Any, tcp: bool) -> Dict[str, Document]:
    """Every middleware of ``table`` (HTTP, or TCP with ``tcp``) as the API lists them."""
    listed: Dict[str, Document] = {}
    for name, info in _middleware_infos(table, tcp).items():
        entry = dict(info)
        entry["name"] = name
        entry["provider"] = name.rsplit("@", 1)[1] if "@" in name else PROVIDER
        kinds = [key for key in info if key not in ("error", "status", "usedBy")]
        entry["type"] = kinds[0].lower() if kinds else ""
        listed[name] = entry
    return listed


def http_middlewares(table: Any) -> Dict[str, Document]:
    """Every HTTP middleware, by qualified name, as ``/api/http/middlewares`` lists them."""
    return _middlewares(table, False)


def tcp_middlewares(table: Any) -> Dict[str, Document]:
    """Every TCP middleware, by qualified name, as ``/api/tcp/middlewares`` lists them."""
    return _middlewares(table, True)


_MIDDLEWARE_SORTS: Sorts = {
    "type": lambda item: item.get("type", ""),
    "provider": lambda item: item["provider"],
    "status": lambda item: item.get("status", ""),
}


def _section(items: Mapping[str, Document]) -> Document:
    statuses = [item.get("status") for item in items.values()]
    return {
        "total": len(statuses),
        "warnings": statuses.count("warning"),
        "errors": statuses.count("disabled"),
    }


def overview(table: Any) -> Document:
    """``/api/overview``: counts per kind, the features in use, the providers."""
    static: StaticConfig = table.static
    return {
        "http": {
            "routers": _section(http_routers(table)),
            "services": _section(http_services(table)),
            "middlewares": _section(http_middlewares(table)),
        },
        "tcp": {
            "routers": _section(tcp_routers(table)),
            "services": _section(tcp_services(table)),
            "middlewares": _section(tcp_middlewares(table)),
        },
        "udp": {
            "routers": _section(udp_routers(table)),
            "services": _section(udp_services(table)),
        },
        "features": {
            "tracing": "",
            "metrics": "Prometheus" if static.prometheus is not None else "",
            "accessLog": static.access_log is not None,
        },
        "providers": list(getattr(table, "providers", None) or ["KubernetesCRD"]),
    }


def rawdata(table: Any) -> Document:
    """``/api/rawdata``: the runtime configuration, maps by qualified name (empty ones left
    out, as Go's omitempty does)."""
    document: Document = {}
    routers = _router_infos(table, "http")
    services = {n: _with_status(info, s) for n, (_, info, s) in _http_services(table).items()}
    tcp_routers_ = _router_infos(table, "tcp")
    tcp_services_ = {n: _with_status(info, s) for n, (_, info, s) in _tcp_services(table).items()}
    udp_routers_ = _router_infos(table, "udp")
    udp_services_ = {n: info for n, (_, info) in _udp_services(table).items()}
    for key, items in (
        ("routers", routers),
        ("middlewares", _middleware_infos(table, False)),
        ("services", services),
        ("tcpRouters", tcp_routers_),
        ("tcpMiddlewares", _middleware_infos(table, True)),
        ("tcpServices", tcp_services_),
        ("udpRouters", udp_routers_),
        ("udpServices", udp_services_),
    ):
        if items:
            document[key] = dict(sorted(items.items()))
    return document


def version_document(version: str, start_date: str) -> Document:
    """``/api/version``; Traefik capitalises the first two keys."""
    return {"Version": version, "Codename": "tsproxy", "startDate": start_date}


def health_document(table: Any) -> Document:
    """Every HTTP service's health, by qualified name: ``up`` (whether it can serve, as its
    parents see it) and, for a load balancer, ``servers`` {url: "UP" | "DOWN"}."""
    health: Document = {}
    for name, node in sorted(getattr(table, "services", {}).items()):
        entry: Document = {"up": is_up(node)}
        if isinstance(node, LoadBalancer):
            entry["servers"] = dict(sorted(node.states.status().items()))
        health[qualified(name)] = entry
    return health


def stats_document(stats: Optional[Stats], table: Any = None) -> Document:
    """``/api/tsproxy/stats`` (tsproxy's own, for the dashboard): since start, requests and
    5xx per service, per parent's child (``children``: what that parent sent it), mirrored
    copies, requests and unrouted ones per entrypoint, TCP connections and UDP sessions; by
    qualified name. ``metrics`` false when nothing counts them; ``health``: each service's
    health (see health_document)."""
    if stats is None:
        return {"metrics": False, "services": {}, "health": health_document(table)}
    services = {}
    for name, counts in sorted(stats.get("services", {}).items()):
        services[name] = {
            "requests": int(counts.get("requests", 0)),
            "errors": int(counts.get("errors", 0)),
        }
    document: Document = {"metrics": True, "services": services, "health": health_document(table)}
    for key in ("children", "mirrored", "entrypoints", "tcp", "udp"):
        if key in stats:
            document[key] = stats[key]
    return document
