"""Kinds reading, the services side: service references (sticky, health checks, load-balancer
modes), TraefikService and ServersTransport; ``kinds`` re-exports what others import."""

from __future__ import annotations

from typing import Any, Optional

import attrs

from tsproxy.balance.strategies import STRATEGIES
from tsproxy.config.resources import (
    CookieSpec,
    Failover,
    HealthCheckSpec,
    HighestRandomWeight,
    Meta,
    MiddlewareRef,
    Mirroring,
    MirrorRef,
    PassiveHealthSpec,
    ServersTransport,
    ServiceRef,
    TraefikService,
    TransportSettings,
    Weighted,
)
from tsproxy.config.schema import Fields

_NOT_YET = "not supported yet, ignored"
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
    strategy = read_strategy(fields)
    if kind == "Service":
        health_check = _health_check(fields)
        passive = _passive_health_check(fields)
    else:
        # A TraefikService reference: ``healthCheck: {}`` (status propagation) only.
        health_check, passive = None, None
        _propagation(fields)
        if fields.has("passiveHealthCheck"):
            raise fields.fail("passiveHealthCheck", "applies to Service references only")
        if strategy != "wrr":
            # Traefik ignores it there: the TraefikService balances its own children.
            raise fields.fail("strategy", "applies to Service references only")
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
        strategy=strategy,
        health_check=health_check,
        passive_health_check=passive,
        **_lb_modes(fields),
        middlewares=middleware_refs(fields, parent_namespace),
    )


def read_strategy(fields: Fields) -> str:
    """A load balancer's ``strategy``: one of Traefik 3.7's values (RoundRobin, v2's name,
    is wrr); any other is an error."""
    strategy = fields.string("strategy") or "wrr"
    if strategy == "RoundRobin":
        fields.note("strategy", "RoundRobin is deprecated: it is wrr")
        return "wrr"
    if strategy not in STRATEGIES:
        raise fields.fail(
            "strategy",
            f'unsupported load-balancer strategy "{strategy}" (one of: {", ".join(STRATEGIES)})',
        )
    return strategy


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


def _spec(root: Fields) -> Fields:
    spec = root.mapping("spec", required=True)
    assert spec is not None
    return spec


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
    """A ServersTransport. The Secrets it names (CA bundles, client certificates) are read
    when a service uses it; TLS fields tsproxy does not implement are kept by name
    (``unsupported``) so that the services using it are disabled rather than served without
    them."""
    spec = _spec(root)
    unsupported = tuple(name for name in _TRANSPORT_TLS_FIELDS if spec.has(name))
    roots, config_maps = read_root_ca_refs(spec)
    certificates = spec.strings("certificatesSecrets")
    settings = read_transport(spec, tls_fields_allowed=True)
    return ServersTransport(meta, settings, unsupported, roots, certificates, config_maps)


def read_root_ca_refs(spec: Fields) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The Secrets (``rootCAsSecrets``, ``rootCAs[].secret``) and ConfigMaps
    (``rootCAs[].configMap``) of a CRD transport's CA bundles."""
    roots, config_maps = list(spec.strings("rootCAsSecrets")), []  # type: list[str], list[str]
    for item in spec.mappings("rootCAs"):
        secret, config_map = item.string("secret"), item.string("configMap")
        item.done()
        if secret and config_map:
            raise item.whole("secret and configMap are mutually exclusive")
        if not (secret or config_map):
            raise item.whole("one of secret or configMap is required")
        (roots if secret else config_maps).append(secret or config_map)
    return tuple(roots), tuple(config_maps)


#: ServersTransport fields about TLS towards the servers, which tsproxy does not implement.
_TRANSPORT_TLS_FIELDS = (
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
    settings = attrs.evolve(
        read_transport_tuning(spec),
        disable_http2=spec.boolean("disableHTTP2", False),
        insecure_skip_verify=spec.boolean("insecureSkipVerify", False),
        server_name=spec.string("serverName"),
        peer_cert_uri=spec.string("peerCertURI"),
    )
    if not tls_fields_allowed:
        for name in _TRANSPORT_TLS_FIELDS:
            if spec.has(name):
                raise spec.fail(name, "TLS towards the servers is not supported yet")
    spec.done(_TRANSPORT_TLS_FIELDS)
    return settings


def read_transport_tuning(spec: Fields, h2_timeouts: bool = True) -> TransportSettings:
    """``forwardingTimeouts`` and ``maxIdleConnsPerHost``: what a ServersTransport shares with
    the static ``serversTransport`` section (Traefik's default transport), whose
    ``forwardingTimeouts`` has no HTTP/2 ping timeouts (``h2_timeouts`` False: unknown)."""
    timeouts = spec.mapping("forwardingTimeouts")
    dial, header, idle = 30.0, 0.0, 90.0
    if timeouts is not None:
        dial = timeouts.duration("dialTimeout", dial)
        header = timeouts.duration("responseHeaderTimeout", header)
        idle = timeouts.duration("idleConnTimeout", idle)
        h2 = ("readIdleTimeout", "pingTimeout") if h2_timeouts else ()
        timeouts.done({name: _NOT_YET for name in h2})
    max_idle = spec.integer("maxIdleConnsPerHost", 0, minimum=-1)
    return TransportSettings(
        dial_timeout=dial,
        response_header_timeout=header,
        idle_conn_timeout=idle,
        max_idle_conns_per_host={0: 200, -1: 0}.get(max_idle, max_idle),
    )
