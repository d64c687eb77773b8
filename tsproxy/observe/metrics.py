"""Prometheus metrics under Traefik's names, and the per-service counts the dashboard polls.

Counting is plain dict and list arithmetic in the reactor thread; the prometheus_client
families are built from those counts only when scraped (a custom collector on a registry of
our own), so a request costs a few dictionary look-ups, not a lock per series.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
)

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from tsproxy import providers
from tsproxy.observe.counts import DashboardCounts
from tsproxy.observe.record import grpc_code, method_label, request_protocol

if TYPE_CHECKING:
    from tsproxy.config.static import PrometheusConfig
    from tsproxy.observe.record import Exchange

__all__ = ["PROVIDER", "Metrics", "qualified"]

#: The provider suffix Traefik shows after every router and service name.
PROVIDER = "@kubernetescrd"

# A series: [requests, duration sum, request bytes, response bytes, bucket counts...].
Series = List[Any]

_CODES: Dict[int, str] = {}


def qualified(name: str) -> str:
    """``default-app-v1-80`` → ``default-app-v1-80@kubernetescrd``; ``web@file`` stays."""
    return providers.qualified(name)


def _code(status: int) -> str:
    code = _CODES.get(status)
    if code is None:
        code = _CODES[status] = str(status)
    return code


class Metrics:
    """Counts client-facing exchanges, open connections, reloads and servers.

    With ``config`` None (the dashboard wants counts but Prometheus is off) only the per-service
    request and 5xx counts are kept, and ``exposition`` has nothing to show.
    """

    def __init__(self, config: Optional[PrometheusConfig], clock: Any) -> None:
        self.config = config
        self.clock = clock
        self.counts = DashboardCounts()
        self._qualified: Dict[str, str] = {}
        self.registry: Optional[CollectorRegistry] = None
        self._bounds: Tuple[float, ...] = ()
        self._entrypoints: Dict[Tuple[str, ...], Series] = {}
        self._routers: Dict[Tuple[str, ...], Series] = {}
        self._services: Dict[Tuple[str, ...], Series] = {}
        self._open: Dict[Tuple[str, str], int] = {}
        # requests_tls_total per level: (entrypoint | router, service | service, cipher, version)
        self._tls: Dict[str, Dict[Tuple[str, ...], int]] = {
            "entrypoint": {},
            "router": {},
            "service": {},
        }
        self._servers: Dict[Tuple[str, str], int] = {}
        # What the configuration in force has (qualified names; None before the first):
        # series of anything else are dropped once a scrape has shown them.
        self._known_routers: Optional[Set[str]] = None
        self._known_services: Set[str] = set()
        self._known_servers: Set[Tuple[str, str]] = set()
        self._mirrors: Dict[Tuple[str, str, str], int] = {}
        self.reloads = 0
        self.last_reload_success = 0.0
        self.reload_failures = 0
        self.last_reload_failure = 0.0
        if config is None:
            return
        self._bounds = tuple(sorted(set(config.buckets)))
        self._by_entrypoint = config.add_entrypoints_labels
        self._by_router = config.add_routers_labels
        self._by_service = config.add_services_labels
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))  # type: ignore[arg-type]

    def _name(self, name: str) -> str:
        full = self._qualified.get(name)
        if full is None:
            full = self._qualified[name] = qualified(name)
        return full

    # -- counting ------------------------------------------------------------------------

    def exchange(self, rec: Exchange) -> None:
        """Count one finished client-facing exchange under its entrypoint, router and every
        service it went through."""
        status = rec.status
        self.counts.exchange(rec.entrypoint, bool(rec.router), rec.services, status)
        if self.registry is None:
            return
        method = method_label(rec.method)
        protocol = request_protocol(rec.headers)
        if protocol == "grpc" or protocol == "grpc-web":
            code = grpc_code(rec.response_headers)
        else:
            code = _code(status)
        duration = rec.duration
        values = (
            duration,
            rec.request_bytes,
            rec.response_bytes,
            bisect_left(self._bounds, duration),
        )
        tls = (rec.tls_cipher, rec.tls_version) if rec.tls else None
        if self._by_entrypoint:
            self._observe(self._entrypoints, (code, rec.entrypoint, method, protocol), values)
            if tls is not None:
                self._count_tls("entrypoint", (rec.entrypoint,) + tls)
        services = rec.services
        if self._by_router and rec.router:
            first = self._name(services[0]) if services else ""
            key = (code, method, protocol, self._name(rec.router), first)
            self._observe(self._routers, key, values)
            if tls is not None:
                self._count_tls("router", (self._name(rec.router), first) + tls)
        if self._by_service:
            table = self._services
            for service in services:
                self._observe(table, (code, method, protocol, self._name(service)), values)
                if tls is not None:
                    self._count_tls("service", (self._name(service),) + tls)

    def _count_tls(self, level: str, key: Tuple[str, ...]) -> None:
        table = self._tls[level]
        table[key] = table.get(key, 0) + 1

    def _observe(
        self, table: Dict[Tuple[str, ...], Series], key: Tuple[str, ...], values: Tuple[Any, ...]
    ) -> None:
        duration, request_bytes, response_bytes, bucket = values
        series = table.get(key)
        if series is None:
            series = table[key] = [0, 0.0, 0, 0] + [0] * (len(self._bounds) + 1)
        series[0] += 1
        series[1] += duration
        series[2] += request_bytes
        series[3] += response_bytes
        series[4 + bucket] += 1

    def mirror_copy(self, service: str, mirror_of: str, status: int) -> None:
        """A mirrored copy's answer arrived (``status`` 0: the copy failed, no answer).
        Counted apart from client-facing traffic, under tsproxy_mirror_requests_total."""
        self.counts.mirror_copy(mirror_of, status)
        if self.registry is None:
            return
        key = (_code(status), self._name(mirror_of), self._name(service))
        self._mirrors[key] = self._mirrors.get(key, 0) + 1

    def connection_opened(self, entrypoint: str, protocol: str) -> None:
        """A TCP connection or UDP session opened on ``entrypoint`` (``protocol`` TCP, UDP)."""
        if self.registry is not None:
            key = (entrypoint, protocol)
            self._open[key] = self._open.get(key, 0) + 1

    def connection_closed(self, entrypoint: str, protocol: str) -> None:
        if self.registry is not None:
            key = (entrypoint, protocol)
            self._open[key] = self._open.get(key, 0) - 1

    def config_reload(self, success: bool) -> None:
        """A configuration was applied (``success``) or refused."""
        now = self.clock.seconds()
        if success:
            self.reloads += 1
            self.last_reload_success = now
        else:
            self.reload_failures += 1
            self.last_reload_failure = now

    def set_servers(self, table: Any) -> None:
        """Take in the configuration ``table`` now in force (at start and on every applied
        reload): every server of every load balancer with its UP (1) or DOWN (0) state, and
        the HTTP routers and services it has are recorded.

        As Traefik's promState does, series of a router, service or server that the table no
        longer has are kept for one more scrape, then dropped (a router's name carries its
        rule's hash, so each rule edit would otherwise leave dead series forever). The
        dashboard's per-service counts of services that are gone are dropped now.
        """
        from tsproxy.runtime.services import LoadBalancer

        self._qualified = {}
        names = table.services
        self._known_routers = {self._name(router.name) for router in table.routers}
        self._known_services = {self._name(name) for name in names}
        servers: Dict[Tuple[str, str], int] = {}
        for node in table.nodes.values():
            if isinstance(node, LoadBalancer):
                name = self._name(node.definition.name)
                for server in node.definition.servers:
                    servers[name, server.url] = 1 if node.states.up(server.url) else 0
        self._known_servers = set(servers)
        self._servers.update(servers)
        self.counts.keep_only(
            names, table.tcp_services, [node.name for node in table.udp_nodes.values()]
        )

    def server_status(self, service: str, url: str, up: bool) -> None:
        """A health check moved ``url`` of ``service`` UP or DOWN."""
        key = (self._name(service), url)
        if key in self._known_servers:
            self._servers[key] = 1 if up else 0

    def _prune(self) -> None:
        """Drop the series of routers, services and servers the configuration no longer has
        (after a scrape: each was shown once more). A series goes when its router is gone or
        its service label (any service-like label) names a service that is gone, as Traefik's
        DeletePartialMatch does; entrypoints cannot go away on a reload."""
        routers = self._known_routers
        if routers is None:
            return
        services = self._known_services

        def gone(service: str) -> bool:
            return bool(service) and service not in services

        # Keys: router series (code, method, protocol, router, service), router TLS
        # (router, service, cipher, version), service series (code, method, protocol,
        # service), service TLS (service, cipher, version), mirrors (code, mirror_of, service).
        _drop(self._routers, lambda k: k[3] not in routers or gone(k[4]))
        _drop(self._tls["router"], lambda k: k[0] not in routers or gone(k[1]))
        _drop(self._services, lambda k: gone(k[3]))
        _drop(self._tls["service"], lambda k: gone(k[0]))
        _drop(self._mirrors, lambda k: gone(k[1]) or gone(k[2]))
        known = self._known_servers
        _drop(self._servers, lambda k: k not in known)

    # -- reading -------------------------------------------------------------------------

    def l4_session(self, protocol: str, services: Sequence[str]) -> None:
        """A TCP connection (``protocol`` "tcp") or UDP session ("udp") went to ``services``,
        outermost first (for the dashboard)."""
        self.counts.session(protocol, services)

    def service_stats(self) -> Dict[str, Dict[str, int]]:
        """``{"name@kubernetescrd": {"requests": n, "errors": n_5xx}}`` since start."""
        return {
            self._name(name): {"requests": counts[0], "errors": counts[1]}
            for name, counts in self.counts.services.items()
        }

    def dashboard_stats(self) -> Dict[str, Any]:
        """What the dashboard shows live, by qualified name: per service and per parent's
        child (what that parent sent it), mirrored copies, per entrypoint requests and
        unrouted ones, TCP connections and UDP sessions per service and per parent's child."""
        name = self._name
        counts = self.counts
        children: Dict[str, Dict[str, Dict[str, int]]] = {}
        for (parent, child), (requests, errors) in counts.edges.items():
            children.setdefault(name(parent), {})[name(child)] = {
                "requests": requests,
                "errors": errors,
            }
        layer4: Dict[str, Any] = {}
        for protocol in ("tcp", "udp"):
            edges: Dict[str, Dict[str, int]] = {}
            for (parent, child), sessions in counts.session_edges[protocol].items():
                edges.setdefault(name(parent), {})[name(child)] = sessions
            layer4[protocol] = {
                "services": {name(s): n for s, n in counts.sessions[protocol].items()},
                "children": edges,
            }
        return {
            "services": self.service_stats(),
            "children": children,
            "mirrored": {
                name(s): {"copies": c[0], "errors": c[1]} for s, c in counts.mirrored.items()
            },
            "entrypoints": {
                ep: {"requests": c[0], "notFound": c[1]} for ep, c in counts.entrypoints.items()
            },
            "tcp": layer4["tcp"],
            "udp": layer4["udp"],
        }

    def exposition(self) -> Tuple[str, bytes]:
        """(content type, body) of the Prometheus text format; empty when not configured."""
        if self.registry is None:
            return CONTENT_TYPE_LATEST, b""
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)

    def families(self) -> Iterator[Metric]:
        """The metric families as they stand (the collector's answer to a scrape); series
        the configuration no longer has are dropped once they are in this answer."""
        found = list(self._families())
        self._prune()
        return iter(found)

    def _families(self) -> Iterator[Metric]:
        yield _counter("traefik_config_reloads", "Config reloads", self.reloads)
        yield _gauge(
            "traefik_config_last_reload_success",
            "Last config reload success",
            self.last_reload_success,
        )
        yield _counter(
            "traefik_config_reloads_failure", "Config reload failures", self.reload_failures
        )
        yield _gauge(
            "traefik_config_last_reload_failure",
            "Last config reload failure",
            self.last_reload_failure,
        )
        opened = GaugeMetricFamily(
            "traefik_open_connections",
            "How many open connections exist, by entryPoint and protocol",
            labels=["entrypoint", "protocol"],
        )
        for key, count in sorted(self._open.items()):
            opened.add_metric(key, count)
        yield opened
        if self._by_entrypoint:
            yield from self._request_families(
                "entrypoint", "entry point", ["code", "entrypoint", "method", "protocol"]
            )
            yield self._tls_family("entrypoint", "entry point", ["entrypoint"])
        if self._by_router:
            yield from self._request_families(
                "router", "router", ["code", "method", "protocol", "router", "service"]
            )
            yield self._tls_family("router", "router", ["router", "service"])
        if self._by_service:
            yield from self._request_families(
                "service", "service", ["code", "method", "protocol", "service"]
            )
            yield self._tls_family("service", "service", ["service"])
        up = GaugeMetricFamily(
            "traefik_service_server_up",
            "service server is up, described by gauge value of 0 or 1.",
            labels=["service", "url"],
        )
        for key, value in sorted(self._servers.items()):
            up.add_metric(key, value)
        yield up
        mirrors = CounterMetricFamily(
            "tsproxy_mirror_requests",
            "Mirrored copies of requests, by answer code (0: no answer), mirror and mirroring"
            " service; not counted in traefik_service_*",
            labels=["code", "mirror_of", "service"],
        )
        for labels, count in sorted(self._mirrors.items()):
            mirrors.add_metric(labels, count)
        yield mirrors

    def _tls_family(self, level: str, what: str, labels: List[str]) -> Metric:
        family = CounterMetricFamily(
            "traefik_%s_requests_tls" % level,
            "How many HTTP requests with TLS processed on a %s, partitioned by TLS Version and"
            " TLS cipher Used." % what,
            labels=labels + ["tls_cipher", "tls_version"],
        )
        for key, count in sorted(self._tls[level].items()):
            family.add_metric(key, count)
        return family

    def _request_families(self, level: str, what: str, labels: List[str]) -> Iterator[Metric]:
        table = {
            "entrypoint": self._entrypoints,
            "router": self._routers,
            "service": self._services,
        }[level]
        prefix = "traefik_%s_" % level
        requests = CounterMetricFamily(
            prefix + "requests", "How many HTTP requests processed on a %s." % what, labels=labels
        )
        durations = HistogramMetricFamily(
            prefix + "request_duration_seconds",
            "How long it took to process the request on a %s, partitioned by status code,"
            " protocol, and method." % what,
            labels=labels,
        )
        received = CounterMetricFamily(
            prefix + "requests_bytes",
            "The total size of requests in bytes handled by a %s." % what,
            labels=labels,
        )
        sent = CounterMetricFamily(
            prefix + "responses_bytes",
            "The total size of responses in bytes handled by a %s." % what,
            labels=labels,
        )
        bounds = [_go_float(b) for b in self._bounds] + ["+Inf"]
        for key, series in sorted(table.items()):
            requests.add_metric(key, series[0])
            cumulative = 0
            buckets = []
            for bound, count in zip(bounds, series[4:]):
                cumulative += count
                buckets.append((bound, cumulative))
            durations.add_metric(key, buckets, series[1])
            received.add_metric(key, series[2])
            sent.add_metric(key, series[3])
        yield requests
        yield durations
        yield received
        yield sent


def _drop(table: Dict[Any, Any], dead: Callable[[Any], bool]) -> None:
    """Remove the entries of ``table`` whose key is ``dead``."""
    for key in [key for key in table if dead(key)]:
        del table[key]


def _go_float(value: float) -> str:
    """A bucket bound as Go's client writes it (strconv 'g', shortest): 5 → "5", 0.1 → "0.1"
    (Python's client would write "5.0", which selectors like le="5" do not match)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class _Collector:
    """Hands the registry the families of one Metrics at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self.metrics.families()
