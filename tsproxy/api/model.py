"""Traefik's API for a routing table: the JSON documents ``/api/...`` answers, with Traefik's
field names, filters, sorting, paging and error messages (pkg/api of Traefik v3).

Pure: reads a RoutingTable (its HTTP and UDP routers and services, and the TCP ones when the
table has ``tcp_routers`` and ``tcp_services``; the routers and TraefikServices that failed,
shown "disabled", and routers with warnings, when it has ``failed_routers``,
``failed_services`` and ``router_warnings``) and the static configuration. No I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import parse_qs, unquote_to_bytes

import attrs

from tsproxy import providers
from tsproxy.config.static import EntryPoint, StaticConfig
from tsproxy.runtime.internal import InternalService
from tsproxy.runtime.services import (
    FailoverService,
    HighestRandomWeightService,
    LoadBalancer,
    MirroringService,
    Node,
    WeightedService,
    is_up,
)
from tsproxy.runtime.udp import UDPLoadBalancer, UDPNode

__all__ = [
    "PROVIDER",
    "APIAnswer",
    "APIContext",
    "answer",
    "entrypoints",
    "go_duration",
    "go_json",
    "http_middlewares",
    "http_routers",
    "http_services",
    "not_found",
    "overview",
    "qualified",
    "rawdata",
    "stats_document",
    "tcp_middlewares",
    "tcp_routers",
    "tcp_services",
    "udp_routers",
    "udp_services",
    "version_document",
]

#: The provider every router and service of tsproxy comes from, as Traefik names it.
PROVIDER = "kubernetescrd"
DEFAULT_PER_PAGE = 100
NEXT_PAGE = "X-Next-Page"
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
ENABLED = "enabled"
DISABLED = "disabled"
WARNING = "warning"
#: What Traefik's API uses for a router TLS section without options.
DEFAULT_TLS_OPTIONS = "default"

Document = Dict[str, Any]
Stats = Mapping[str, Any]


def qualified(name: str) -> str:
    """``name@provider``: how Traefik's API and metrics name a router or service (a bare
    table name is the Kubernetes CRD provider's, see tsproxy.providers)."""
    return providers.qualified(name)


@attrs.frozen
class APIAnswer:
    """One API response: status, body bytes, Content-Type ("" for none), other headers."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: Tuple[Tuple[str, str], ...] = ()


# -- encoding ------------------------------------------------------------------------------

_HTML_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028"}
_HTML_UNSAFE["\u2029"] = "\\u2029"
_UNSAFE = re.compile("[<>&\u2028\u2029]")


def go_json(value: Any) -> bytes:
    """``value`` as Go's json.Encoder writes it: compact, HTML characters escaped, a newline."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # "replace": a lone surrogate from undecodable input becomes "?" rather than an error.
    return (_UNSAFE.sub(lambda m: _HTML_UNSAFE[m.group()], text) + "\n").encode("utf-8", "replace")


def _fraction(value: int, digits: int) -> str:
    """``value / 10**digits`` in decimal, without trailing zeros (Go's fmtFrac/fmtInt)."""
    whole, rest = divmod(value, 10**digits)
    decimals = str(rest).rjust(digits, "0").rstrip("0")
    return f"{whole}.{decimals}" if decimals else str(whole)


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration.String writes it: ``0s``, ``500ms``, ``1m0s``."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_fraction(ns, 6)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return f"{sign}{text}{_fraction(rest, 9)}s"


# -- HTTP ----------------------------------------------------------------------------------


def _configured_priority(router: Any) -> int:
    """The priority as written: Traefik shows 0 for a router using its default (rule length)."""
    default = getattr(getattr(router, "matcher", None), "default_priority", None)
    return 0 if router.priority == default else int(router.priority)


def _tls_options_name(tls: Any, router: str = "") -> str:
    """The TLSOption a route names, as Traefik's CRD provider writes it (``<ns>-<name>``)."""
    ref = tls.options
    if ref is None or not ref.name:
        return DEFAULT_TLS_OPTIONS
    if providers.provider_of(router) == providers.provider_of(ref.name) != providers.CRD:
        return providers.bare(ref.name)  # an option of the router's own provider, as written
    if "@" in ref.name or not ref.namespace:
        return str(ref.name)
    return f"{ref.namespace}-{ref.name}"


def _router_tls(tls: Any, tcp: bool, router: str = "") -> Document:
    section: Document = {"passthrough": bool(tls.passthrough)} if tcp else {}
    section["options"] = _tls_options_name(tls, router)
    if tls.cert_resolver:
        section["certResolver"] = tls.cert_resolver
    domains = []
    for domain in tls.domains:
        entry: Document = {}
        if domain.main:
            entry["main"] = domain.main
        if domain.sans:
            entry["sans"] = list(domain.sans)
        domains.append(entry)
    if domains:
        section["domains"] = domains
    return section


def _status(info: Document, status: str, errors: Sequence[str]) -> None:
    """Traefik's ``error`` (omitted when empty) and ``status`` fields, in its order."""
    if errors:
        info["error"] = list(errors)
    info["status"] = status


def _router_info(router: Any, tcp: bool = False, warning: Any = None) -> Document:
    """The runtime RouterInfo of an HTTP or TCP router (dynamic config, error, status,
    using); with a ``warning``, the entrypoints as listed and status "warning"."""
    listed = router.entrypoints if warning is None else warning.entrypoints
    info: Document = {"entryPoints": list(listed)}
    middlewares = getattr(router, "middlewares", ())
    if middlewares:
        info["middlewares"] = list(middlewares)
    info["service"] = _service_reference(router.name, router.service.name)
    info["rule"] = router.rule
    syntax = getattr(router, "syntax", "v3")
    if syntax and syntax != "v3":
        info["ruleSyntax"] = syntax
    priority = _configured_priority(router)
    if priority:
        info["priority"] = priority
    if router.tls is not None:
        info["tls"] = _router_tls(router.tls, tcp, router.name)
    if warning is None:
        _status(info, ENABLED, ())
    else:
        _status(info, WARNING, warning.errors)
    if router.entrypoints:
        info["using"] = sorted(set(router.entrypoints))
    return info


def _service_reference(router: str, service: str) -> str:
    """A router's service as written in its provider: bare in the same provider, else
    ``name@provider``."""
    if providers.provider_of(router) == providers.provider_of(service):
        return providers.bare(service)
    return providers.qualified(service)


def _failed_router_info(failed: Any) -> Document:
    """The RouterInfo of a route that failed to build: what it asked for, its errors and
    status "disabled"."""
    info: Document = {"entryPoints": list(failed.entrypoints)}
    if failed.middlewares:
        info["middlewares"] = list(failed.middlewares)
    if failed.service:
        info["service"] = _service_reference(failed.name, failed.service)
    if failed.protocol != "udp":
        info["rule"] = failed.rule
        if failed.syntax and failed.syntax != "v3":
            info["ruleSyntax"] = failed.syntax
        if failed.priority:
            info["priority"] = failed.priority
        if failed.tls is not None:
            info["tls"] = _router_tls(failed.tls, failed.protocol == "tcp", failed.name)
    _status(info, DISABLED, failed.errors)
    if failed.using:
        info["using"] = sorted(set(failed.using))
    return info


def _built_routers(table: Any, protocol: str) -> Tuple[Any, ...]:
    if protocol == "http":
        return tuple(table.routers)
    if protocol == "tcp":
        return tuple(getattr(table, "tcp_routers", ()))
    return tuple(table.udp_routers)


def _failed_routers(table: Any, protocol: str) -> List[Any]:
    return [r for r in getattr(table, "failed_routers", ()) if r.protocol == protocol]


def _router_infos(table: Any, protocol: str) -> Dict[str, Document]:
    """Qualified name -> RouterInfo of every router of ``protocol`` (``http``, ``tcp`` or
    ``udp``), the ones that failed to build included."""
    warnings = {w.name: w for w in getattr(table, "router_warnings", ()) if w.protocol == protocol}
    infos: Dict[str, Document] = {}
    for router in _built_routers(table, protocol):
        warning = warnings.get(router.name)
        if protocol == "udp":
            info = _udp_router_info(router, warning)
        else:
            info = _router_info(router, protocol == "tcp", warning)
        infos[qualified(router.name)] = info
    for failed in _failed_routers(table, protocol):
        infos.setdefault(qualified(failed.name), _failed_router_info(failed))
    return infos


def _representation(name: str, info: Document, **extra: Any) -> Document:
    """A list or single-item entry: the info plus ``name`` and ``provider`` (and ``extra``)."""
    entry = dict(info)
    entry.update(extra)
    entry["name"] = qualified(name)
    entry["provider"] = providers.provider_of(name)
    return entry


def http_routers(table: Any) -> Dict[str, Document]:
    """Every HTTP router, by qualified name, as ``/api/http/routers`` lists them."""
    return {
        name: _representation(
            name.rsplit("@", 1)[0], info, priorityStr=str(info.get("priority", 0))
        )
        for name, info in _router_infos(table, "http").items()
    }


def _used_by(table: Any, protocol: str) -> Dict[str, List[str]]:
    """Service name -> the qualified names of the routers whose service it is, sorted.

    As in Traefik, only routers count (the disabled ones too): a service used only inside a
    TraefikService has none.
    """
    used: Dict[str, List[str]] = {}
    for router in _built_routers(table, protocol):
        used.setdefault(router.service.name, []).append(qualified(router.name))
    for failed in _failed_routers(table, protocol):
        if failed.service:
            used.setdefault(failed.service, []).append(qualified(failed.name))
    return {name: sorted(names) for name, names in used.items()}


def _cookie(sticky: Any) -> Document:
    cookie: Document = {"name": sticky.name}
    if sticky.secure:
        cookie["secure"] = True
    if sticky.http_only:
        cookie["httpOnly"] = True
    if sticky.same_site:
        cookie["sameSite"] = sticky.same_site
    if sticky.max_age:
        cookie["maxAge"] = sticky.max_age
    if sticky.path:
        cookie["path"] = sticky.path
    if sticky.domain:
        cookie["domain"] = sticky.domain
    return {"cookie": cookie}


def _health_check(spec: Any) -> Document:
    """A load balancer's ``healthCheck`` as Traefik's API shows it (defaults filled in)."""
    check: Document = {}
    if spec.scheme:
        check["scheme"] = spec.scheme
    check["mode"] = spec.mode
    if spec.path:
        check["path"] = spec.path
    if spec.method != "GET":
        check["method"] = spec.method
    if spec.status:
        check["status"] = spec.status
    if spec.port:
        check["port"] = spec.port
    check["interval"] = go_duration(spec.interval)
    if spec.unhealthy_interval != spec.interval:
        check["unhealthyInterval"] = go_duration(spec.unhealthy_interval)
    check["timeout"] = go_duration(spec.timeout)
    if spec.hostname:
        check["hostname"] = spec.hostname
    check["followRedirects"] = spec.follow_redirects
    if spec.headers:
        check["headers"] = dict(spec.headers)
    return check


def _http_service_config(node: Node) -> Tuple[str, Document, Dict[str, str]]:
    """(type, the dynamic service section, serverStatus) of one service node."""
    if isinstance(node, InternalService):
        return "", {}, {}
    if isinstance(node, LoadBalancer):
        definition = node.definition
        balancer: Document = {}
        if definition.sticky is not None:
            balancer["sticky"] = _cookie(definition.sticky)
        if definition.servers:
            balancer["servers"] = [{"url": server.url} for server in definition.servers]
        balancer["strategy"] = "wrr"
        if definition.health_check is not None:
            balancer["healthCheck"] = _health_check(definition.health_check)
        if definition.passive is not None:
            balancer["passiveHealthCheck"] = {
                "failureWindow": go_duration(definition.passive.failure_window),
                "maxFailedAttempts": definition.passive.max_failed_attempts,
            }
        balancer["passHostHeader"] = definition.pass_host_header
        balancer["responseForwarding"] = {"flushInterval": "100ms"}
        return (
            "loadbalancer",
            {"loadBalancer": balancer},
            dict(sorted(node.states.status().items())),
        )
    if isinstance(node, WeightedService):
        weighted_def = node.definition
        weighted: Document = {
            "services": [{"name": c.name, "weight": c.weight} for c in weighted_def.children]
        }
        if weighted_def.sticky is not None:
            weighted["sticky"] = _cookie(weighted_def.sticky)
        if weighted_def.health_check:
            weighted["healthCheck"] = {}
        return "weighted", {"weighted": weighted}, {}
    if isinstance(node, HighestRandomWeightService):
        hrw_def = node.definition
        hrw: Document = {
            "services": [{"name": c.name, "weight": c.weight} for c in hrw_def.children]
        }
        if hrw_def.health_check:
            hrw["healthCheck"] = {}
        return "highestrandomweight", {"highestRandomWeight": hrw}, {}
    if isinstance(node, FailoverService):
        failover_def = node.definition
        failover: Document = {
            "service": failover_def.main_name,
            "fallback": failover_def.fallback_name,
        }
        if failover_def.health_check:
            failover["healthCheck"] = {}
        return "failover", {"failover": failover}, {}
    assert isinstance(node, MirroringService)
    mirroring_def = node.definition
    mirroring: Document = {
        "service": node.main.name,
        "mirrorBody": mirroring_def.mirror_body,
        "maxBodySize": mirroring_def.max_body_size,
        "mirrors": [
            {"name": mirror.name, "percent": percent}
            for mirror, (_, percent) in zip(node.mirrors, mirroring_def.mirrors)
        ],
    }
    return "mirroring", {"mirroring": mirroring}, {}


def _service_info(
    config: Document, used_by: Sequence[str], status: str = ENABLED, errors: Sequence[str] = ()
) -> Document:
    info = dict(config)
    _status(info, status, errors)
    if used_by:
        info["usedBy"] = list(used_by)
    return info


def _failed_service_config(failed: Any) -> Tuple[str, Document]:
    """(type, the dynamic service section) of a TraefikService that failed, as written."""
    if failed.kind in ("weighted", "highestrandomweight"):
        services = [{"name": name, "weight": weight} for name, weight in failed.children]
        key = "weighted" if failed.kind == "weighted" else "highestRandomWeight"
        return failed.kind, {key: {"services": services}}
    if failed.kind == "failover":
        return "failover", {"failover": {"service": failed.main, "fallback": failed.children[0][0]}}
    if failed.kind == "loadbalancer":
        return "loadbalancer", {"loadBalancer": {}}
    mirroring: Document = {
        "service": failed.main,
        "mirrorBody": failed.mirror_body,
        "maxBodySize": failed.max_body_size,
        "mirrors": [{"name": name, "percent": percent} for name, percent in failed.children],
    }
    return "mirroring", {"mirroring": mirroring}


def _http_services(table: Any) -> Dict[str, Tuple[str, Document, Dict[str, str]]]:
    """Qualified name -> (type, ServiceInfo, serverStatus) of every HTTP service, the
    TraefikServices that failed to build included (status "disabled")."""
    used = _used_by(table, "http")
    services = {}
    for name, node in table.services.items():
        kind, config, status = _http_service_config(node)
        services[qualified(name)] = (kind, _service_info(config, used.get(name, ())), status)
    for failed in getattr(table, "failed_services", ()):
        kind, config = _failed_service_config(failed)
        info = _service_info(config, used.get(failed.name, ()), DISABLED, failed.errors)
        services.setdefault(qualified(failed.name), (kind, info, {}))
    return services


def _with_status(info: Document, status: Mapping[str, str]) -> Document:
    entry = dict(info)
    if status:
        entry["serverStatus"] = dict(status)
    return entry


def http_services(table: Any) -> Dict[str, Document]:
    """Every HTTP service, by qualified name, as ``/api/http/services`` lists them."""
    return {
        name: _representation(name, _with_status(info, status), **({"type": kind} if kind else {}))
        for name, (kind, info, status) in _http_services(table).items()
    }


# -- TCP (duck-typed: tcp_routers and tcp_services, when the table has them) ------------------


def _tcp_service_config(node: Any) -> Tuple[str, Document, Dict[str, str]]:
    """A TCP service node: weighted when it has ``children`` ((node, weight) pairs), else a
    load balancer whose ``servers`` have an ``address``."""
    children = getattr(node, "children", None)
    if children is not None:
        services = [{"name": child.name, "weight": weight} for child, weight in children]
        return "weighted", {"weighted": {"services": services}}, {}
    servers = [{"address": server.address} for server in node.servers]
    balancer: Document = {"servers": servers} if servers else {}
    status = {server["address"]: "UP" for server in servers}
    return "loadbalancer", {"loadBalancer": balancer}, dict(sorted(status.items()))


def _tcp_services(table: Any) -> Dict[str, Tuple[str, Document, Dict[str, str]]]:
    used = _used_by(table, "tcp")
    services = {}
    for name, node in dict(getattr(table, "tcp_services", {})).items():
        kind, config, status = _tcp_service_config(node)
        services[qualified(name)] = (kind, _service_info(config, used.get(name, ())), status)
    return services


def tcp_routers(table: Any) -> Dict[str, Document]:
    """Every TCP router, by qualified name, as ``/api/tcp/routers`` lists them."""
    return {name: _representation(name, info) for name, info in _router_infos(table, "tcp").items()}


def tcp_services(table: Any) -> Dict[str, Document]:
    """Every TCP service, by qualified name, as ``/api/tcp/services`` lists them."""
    return {
        name: _representation(name, _with_status(info, status), type=kind)
        for name, (kind, info, status) in _tcp_services(table).items()
    }


# -- UDP -----------------------------------------------------------------------------------


def _udp_router_info(router: Any, warning: Any = None) -> Document:
    listed = router.entrypoints if warning is None else warning.entrypoints
    info: Document = {"entryPoints": list(listed), "service": router.service.name}
    if warning is None:
        _status(info, ENABLED, ())
    else:
        _status(info, WARNING, warning.errors)
    if router.entrypoints:
        info["using"] = sorted(set(router.entrypoints))
    return info


def _udp_service_config(node: UDPNode) -> Tuple[str, Document]:
    if isinstance(node, UDPLoadBalancer):
        servers = [{"address": server.address} for server in node.definition.servers]
        return "loadbalancer", {"loadBalancer": {"servers": servers} if servers else {}}
    services = [{"name": c.name, "weight": c.weight} for c in node.definition.children]
    return "weighted", {"weighted": {"services": services}}


def _udp_services(table: Any) -> Dict[str, Tuple[str, Document]]:
    used = _used_by(table, "udp")
    services = {}
    for node in table.udp_nodes.values():
        kind, config = _udp_service_config(node)
        services[qualified(node.name)] = (kind, _service_info(config, used.get(node.name, ())))
    return services


def udp_routers(table: Any) -> Dict[str, Document]:
    """Every UDP router, by qualified name, as ``/api/udp/routers`` lists them."""
    return {name: _representation(name, info) for name, info in _router_infos(table, "udp").items()}


def udp_services(table: Any) -> Dict[str, Document]:
    """Every UDP service, by qualified name, as ``/api/udp/services`` lists them."""
    return {
        name: _representation(name, info, type=kind)
        for name, (kind, info) in _udp_services(table).items()
    }


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
    return {
        "address": _address(entrypoint),
        "transport": {"lifeCycle": life_cycle, "respondingTimeouts": responding},
        "forwardedHeaders": forwarded,
        "udp": {
            "timeout": go_duration(entrypoint.udp_timeout),
            "maxSessions": entrypoint.udp_max_sessions,
        },
        "name": entrypoint.name,
    }


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


# -- requests: filters, sorting, paging ------------------------------------------------------


class _BadRequest(Exception):
    """A 400 with Traefik's message."""


def _first(query: Mapping[str, List[str]], key: str) -> str:
    values = query.get(key)
    return values[0] if values else ""


_INT = re.compile(r"[+-]?[0-9]+\Z")
_INT64 = 2**63 - 1


def _go_atoi(text: str) -> Tuple[int, bool]:
    """Go's strconv.Atoi: (value, ok); a syntax error gives 0, a range error the bound."""
    if not _INT.match(text):
        return 0, False
    value = int(text)
    if value > _INT64:
        return _INT64, False
    if value < -_INT64 - 1:
        return -_INT64 - 1, False
    return value, True


def _int_param(query: Mapping[str, List[str]], key: str, default: int) -> int:
    raw = _first(query, key)
    if raw == "":
        return default
    value, ok = _go_atoi(raw)
    if not ok or value <= 0:
        raise _BadRequest(f"invalid request: {key}: {value}")
    return value


def _page(query: Mapping[str, List[str]], total: int) -> Tuple[int, int, int]:
    """(start, end, next page) of the requested page; _BadRequest past the end."""
    per_page = _int_param(query, "per_page", DEFAULT_PER_PAGE)
    page = _int_param(query, "page", 1)
    start = (page - 1) * per_page
    if start != 0 and start >= total:
        raise _BadRequest(f"invalid request: page: {page}, per_page: {per_page}")
    end = min(start + per_page, total)
    return start, end, page + 1 if page * per_page < total else 1


@attrs.frozen
class _Criterion:
    """The list filters; an absent one keeps everything."""

    search: str
    status: str
    service_name: str
    middleware_name: str

    @classmethod
    def of(cls, query: Mapping[str, List[str]]) -> _Criterion:
        return cls(
            _first(query, "search"),
            _first(query, "status"),
            _first(query, "serviceName"),
            _first(query, "middlewareName"),
        )

    def with_status(self, status: str) -> bool:
        return not self.status or status.lower() == self.status.lower()

    def search_in(self, *values: str) -> bool:
        wanted = self.search.lower()
        return not wanted or any(wanted in value.lower() for value in values)

    def filter_service(self, name: str) -> bool:
        if not self.service_name:
            return True
        if "@" in name:
            return self.service_name == name
        return self.service_name.split("@", 1)[0] == name

    def filter_middleware(self, names: Sequence[str]) -> bool:
        return not self.middleware_name or self.middleware_name in names


def _keep_router(item: Document, criterion: _Criterion) -> bool:
    return (
        criterion.with_status(item.get("status", ""))
        and criterion.search_in(item.get("rule", ""), item["name"])
        and criterion.filter_service(item.get("service", ""))
        and criterion.filter_middleware(item.get("middlewares", ()))
    )


def _keep_udp_router(item: Document, criterion: _Criterion) -> bool:
    return (
        criterion.with_status(item.get("status", ""))
        and criterion.search_in(item["name"])
        and criterion.filter_service(item.get("service", ""))
    )


def _keep_named(item: Document, criterion: _Criterion) -> bool:
    return criterion.with_status(item.get("status", "")) and criterion.search_in(item["name"])


def _servers_count(item: Document) -> int:
    balancer = item.get("loadBalancer")
    return len(balancer.get("servers", ())) if balancer is not None else 0


Sorts = Mapping[str, Callable[[Document], Any]]


def _router_sorts(table: Any, protocol: str) -> Sorts:
    """Traefik sorts routers by their effective priority (the rule length when unset)."""
    effective = {
        qualified(r.name): int(getattr(r, "priority", 0)) for r in _built_routers(table, protocol)
    }
    for failed in _failed_routers(table, protocol):
        effective.setdefault(qualified(failed.name), failed.priority or len(failed.rule))
    return {
        "provider": lambda item: item["provider"],
        "priority": lambda item: effective.get(item["name"], 0),
        "status": lambda item: item.get("status", ""),
        "rule": lambda item: item.get("rule", ""),
        "service": lambda item: item.get("service", ""),
        "entryPoints": lambda item: len(item.get("entryPoints", ())),
    }


_SERVICE_SORTS: Sorts = {
    "type": lambda item: item.get("type", ""),
    "servers": _servers_count,
    "provider": lambda item: item["provider"],
    "status": lambda item: item.get("status", ""),
}


def _sorted(items: List[Document], query: Mapping[str, List[str]], sorts: Sorts) -> List[Document]:
    """Traefik's sortBy/direction: by name unless another known key is asked for (ties by
    name); any direction but ``asc`` (the default) is descending."""
    key = sorts.get(_first(query, "sortBy"))
    descending = (_first(query, "direction") or "asc") != "asc"
    if key is None:
        return sorted(items, key=lambda item: item["name"], reverse=descending)
    return sorted(items, key=lambda item: (key(item), item["name"]), reverse=descending)


def _json(document: Any, headers: Tuple[Tuple[str, str], ...] = ()) -> APIAnswer:
    return APIAnswer(200, go_json(document), JSON_TYPE, headers)


def _error(message: str, status: int) -> APIAnswer:
    """Traefik's writeError: the JSON message sent through Go's http.Error (text/plain)."""
    return APIAnswer(status, go_json({"message": message}), TEXT_TYPE, _NOSNIFF)


_NOSNIFF = (("X-Content-Type-Options", "nosniff"),)


def not_found() -> APIAnswer:
    """Go's http.NotFound, as gorilla/mux answers a path no API route has."""
    return APIAnswer(404, b"404 page not found\n", TEXT_TYPE, _NOSNIFF)


@attrs.frozen
class _Kind:
    """One listed kind: its items by name, what a missing one is called, the route variable,
    the filter (None: no filters, as for entrypoints) and the sort keys (None: by name)."""

    items: Callable[[Any], Dict[str, Document]]
    what: str
    variable: str
    keep: Optional[Callable[[Document, _Criterion], bool]]
    sorts: Optional[Callable[[Any], Sorts]]

    def listing(self, table: Any, query: Mapping[str, List[str]]) -> APIAnswer:
        criterion = _Criterion.of(query)
        keep = self.keep
        chosen = [
            item for item in self.items(table).values() if keep is None or keep(item, criterion)
        ]
        sorts = self.sorts(table) if self.sorts is not None else {}
        ordered = (
            _sorted(chosen, query, sorts)
            if self.sorts is not None
            else sorted(chosen, key=lambda item: item["name"])
        )
        try:
            start, end, next_page = _page(query, len(ordered))
        except _BadRequest as exc:
            return _error(str(exc), 400)
        return _json(ordered[start:end], ((NEXT_PAGE, str(next_page)),))

    def single(self, table: Any, name: str) -> APIAnswer:
        item = self.items(table).get(name)
        if item is None:
            return _error(f"{self.what} not found: {name}", 404)
        return _json(item)


_KINDS: Dict[str, _Kind] = {
    "entrypoints": _Kind(
        lambda t: entrypoints(t.static), "entry point", "entryPointID", None, None
    ),
    "http/routers": _Kind(
        http_routers, "router", "routerID", _keep_router, lambda t: _router_sorts(t, "http")
    ),
    "http/services": _Kind(
        http_services, "service", "serviceID", _keep_named, lambda t: _SERVICE_SORTS
    ),
    "http/middlewares": _Kind(
        http_middlewares, "middleware", "middlewareID", _keep_named, lambda t: _MIDDLEWARE_SORTS
    ),
    "tcp/routers": _Kind(
        tcp_routers,
        "router",
        "routerID",
        _keep_router,
        lambda t: _router_sorts(t, "tcp"),
    ),
    "tcp/services": _Kind(
        tcp_services, "service", "serviceID", _keep_named, lambda t: _SERVICE_SORTS
    ),
    "tcp/middlewares": _Kind(
        tcp_middlewares, "middleware", "middlewareID", _keep_named, lambda t: _MIDDLEWARE_SORTS
    ),
    "udp/routers": _Kind(
        udp_routers, "router", "routerID", _keep_udp_router, lambda t: _router_sorts(t, "udp")
    ),
    "udp/services": _Kind(
        udp_services, "service", "serviceID", _keep_named, lambda t: _SERVICE_SORTS
    ),
}

_ESCAPE_BAD = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _unescape(value: str) -> Optional[str]:
    """Go's url.PathUnescape; None for a malformed escape."""
    if _ESCAPE_BAD.search(value):
        return None
    # Go keeps the bytes and shows invalid UTF-8 as U+FFFD when encoding JSON.
    return unquote_to_bytes(value).decode("utf-8", "replace")


@attrs.frozen
class APIContext:
    """What the API answers from besides the table: the version, the start date (RFC 3339)
    and the request counts per service (None when nothing counts them)."""

    version: str
    start_date: str
    stats: Optional[Stats] = None


_DOCUMENTS: Dict[str, Callable[[Any, APIContext], Document]] = {
    "overview": lambda table, context: overview(table),
    "rawdata": lambda table, context: rawdata(table),
    "version": lambda table, context: version_document(context.version, context.start_date),
    "tsproxy/stats": lambda table, context: stats_document(context.stats, table),
}


def answer(method: str, path: str, query_string: str, table: Any, context: APIContext) -> APIAnswer:
    """The API's answer to ``method path?query_string`` (``path`` as sent, still escaped).

    GET only: another method on an API path is 405 with no body, as gorilla/mux answers;
    a path that is no API route is 404.
    """
    segments = path.split("/")
    if len(segments) < 3 or segments[0] != "" or segments[1] != "api":
        return not_found()
    rest = segments[2:]
    key = "/".join(rest)
    document = _DOCUMENTS.get(key)
    kind = _KINDS.get(key)
    single = _KINDS.get("/".join(rest[:-1])) if len(rest) >= 2 and rest[-1] else None
    if document is None and kind is None and single is None:
        return not_found()
    if method != "GET":
        return APIAnswer(405, b"", "")
    if document is not None:
        return _json(document(table, context))
    query = parse_qs(query_string, keep_blank_values=True)
    if kind is not None:
        return kind.listing(table, query)
    assert single is not None
    name = _unescape(rest[-1])
    if name is None:
        return _error(f"unable to decode {single.variable}: {rest[-1]}", 400)
    return single.single(table, name)
