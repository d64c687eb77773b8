"""The API's router and service documents: HTTP, TCP (duck-typed) and UDP, with statuses,
errors and \"usedBy\", as pkg/api of Traefik v3 answers them. Pure."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

from tsproxy import providers
from tsproxy.api.document import (
    DEFAULT_TLS_OPTIONS,
    DISABLED,
    ENABLED,
    WARNING,
    Document,
    go_duration,
    qualified,
)
from tsproxy.runtime.internal import InternalService
from tsproxy.runtime.services import (
    FailoverService,
    HighestRandomWeightService,
    LoadBalancer,
    MirroringService,
    Node,
    WeightedService,
)
from tsproxy.runtime.udp import UDPLoadBalancer, UDPNode

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
            servers: List[Document] = [{"url": server.url} for server in definition.servers]
            for shown, weight in zip(servers, definition.weights):
                if weight is not None:
                    shown["weight"] = weight
            for shown, server in zip(servers, definition.servers):
                if server.preserve_path:
                    shown["preservePath"] = True
            balancer["servers"] = servers
        balancer["strategy"] = definition.strategy
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
    servers: List[Document] = []
    for server in node.servers:
        servers.append({"address": server.address})
        if server.tls is not None:  # dialled with TLS: shown as Traefik shows it
            servers[-1]["tls"] = True
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
