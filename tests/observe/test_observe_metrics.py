"""Metrics: Traefik's families and label sets, counted from exchange records."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.observefixture import exchange
from tsproxy.config.static import PrometheusConfig
from tsproxy.observe.metrics import Metrics
from tsproxy.runtime.services import LoadBalancer, LoadBalancerDef, Server, TransportSettings

Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]


def samples(metrics: Metrics) -> Samples:
    """Every sample of the exposition, keyed by (name, label set)."""
    content_type, body = metrics.exposition()
    assert content_type.startswith("text/plain"), content_type
    found: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def named(found: Samples, name: str) -> Dict[FrozenSet[Tuple[str, str]], float]:
    return {labels: value for (n, labels), value in found.items() if n == name}


def labels(**pairs: str) -> FrozenSet[Tuple[str, str]]:
    return frozenset(pairs.items())


def make(config: Optional[PrometheusConfig] = PrometheusConfig()) -> Metrics:
    return Metrics(config, Clock())


WRR = "default-app-wrr@kubernetescrd"
V1 = "default-app-v1-80@kubernetescrd"
ROUTER = "default-app-wrr-846b2c19626676e0a8ba@kubernetescrd"


def fake_table(routers: Sequence[str], services: Dict[str, Sequence[int]]) -> Any:
    """What Metrics.set_servers reads of a routing table: HTTP routers (by name), services
    by name and their nodes; each service a load balancer with servers 10.0.0.1:<port>."""
    nodes = {}
    for name, ports in services.items():
        servers = tuple(Server.at("http", "10.0.0.1", port, TransportSettings()) for port in ports)
        definition = LoadBalancerDef(name, servers)
        nodes[definition] = LoadBalancer.build(definition)
    return SimpleNamespace(
        routers=[SimpleNamespace(name=name) for name in routers],
        services={node.name: node for node in nodes.values()},
        nodes=nodes,
        tcp_services={},
        udp_nodes={},
    )


class LabelSetTests(SynchronousTestCase):
    """Which families and label sets one exchange lands in, per configuration."""

    def test_table(self) -> None:
        """Entrypoint, router and service series follow the add*Labels switches."""
        base = {"code": "200", "method": "GET", "protocol": "http"}
        entry = labels(entrypoint="web", **base)
        router = labels(router=ROUTER, service=WRR, **base)
        services = {labels(service=WRR, **base), labels(service=V1, **base)}
        cases = [
            (PrometheusConfig(), {entry}, set(), services),
            (PrometheusConfig(add_routers_labels=True), {entry}, {router}, services),
            (PrometheusConfig(add_entrypoints_labels=False), set(), set(), services),
            (PrometheusConfig(add_services_labels=False), {entry}, set(), set()),
        ]
        for config, entrypoints, routers, by_service in cases:
            metrics = make(config)
            metrics.exchange(exchange())
            found = samples(metrics)
            for level, expected in (
                ("entrypoint", entrypoints),
                ("router", routers),
                ("service", by_service),
            ):
                for suffix, value in (
                    ("requests_total", 1.0),
                    ("requests_bytes_total", 0.0),
                    ("responses_bytes_total", 13.0),
                    ("request_duration_seconds_count", 1.0),
                ):
                    got = named(found, "traefik_%s_%s" % (level, suffix))
                    self.assertEqual(got, {k: value for k in expected}, (config, level, suffix))

    def test_values(self) -> None:
        """Code, method and protocol labels come from the record as Traefik derives them."""
        cases = [
            (exchange(status=503, method=b"PURGE"), ("503", "EXTENSION_METHOD", "http")),
            (
                exchange(
                    status=101,
                    upgrade=b"websocket",
                    headers=[(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")],
                ),
                ("101", "GET", "websocket"),
            ),
            # gRPC over HTTP/1.1 too: the code is the Grpc-Status, Unknown (2) without one.
            (
                exchange(
                    headers=[(b"Content-Type", b"application/grpc")],
                    response_headers=[(b"Grpc-Status", b"5")],
                    method=b"POST",
                ),
                ("5", "POST", "grpc"),
            ),
            (
                exchange(
                    status=404,
                    headers=[(b"Content-Type", b"application/grpc-web+proto")],
                    response_headers=[],
                ),
                ("2", "GET", "grpc-web"),
            ),
            (
                exchange(headers=[(b"Accept", b"text/event-stream")], method=b"\xff"),
                ("200", "NON_UTF8_HTTP_METHOD", "sse"),
            ),
        ]
        for rec, (code, method, protocol) in cases:
            metrics = make()
            metrics.exchange(rec)
            got = named(samples(metrics), "traefik_entrypoint_requests_total")
            expected = labels(code=code, method=method, protocol=protocol, entrypoint="web")
            self.assertEqual(got, {expected: 1.0})

    def test_noRouter(self) -> None:
        """A 404 with no router counts on the entrypoint only."""
        metrics = make(PrometheusConfig(add_routers_labels=True))
        metrics.exchange(exchange(router="", services=(), server_url="", status=404))
        found = samples(metrics)
        self.assertEqual(len(named(found, "traefik_entrypoint_requests_total")), 1)
        self.assertEqual(named(found, "traefik_router_requests_total"), {})
        self.assertEqual(named(found, "traefik_service_requests_total"), {})


class HistogramTests(SynchronousTestCase):
    """request_duration_seconds uses the configured buckets, cumulative."""

    def test_buckets(self) -> None:
        """Durations fall in the first bucket whose bound they do not exceed."""
        metrics = make(PrometheusConfig(buckets=(0.1, 0.3, 1.2, 5.0)))
        for duration in (0.05, 0.1, 0.2, 1.0, 7.0):
            metrics.exchange(exchange(duration=duration))
        found = named(samples(metrics), "traefik_entrypoint_request_duration_seconds_bucket")
        by_bound = {dict(k)["le"]: v for k, v in found.items()}
        self.assertEqual(by_bound, {"0.1": 2.0, "0.3": 3.0, "1.2": 4.0, "5": 4.0, "+Inf": 5.0})
        total = named(samples(metrics), "traefik_entrypoint_request_duration_seconds_sum")
        self.assertAlmostEqual(list(total.values())[0], 8.35)


class ServiceStatsTests(SynchronousTestCase):
    """The dashboard's per-service request and 5xx counts."""

    def test_counts(self) -> None:
        """Every service on the path counts; 5xx are errors; kept without Prometheus."""
        for config in (None, PrometheusConfig()):
            metrics = make(config)
            metrics.exchange(exchange())
            metrics.exchange(exchange(status=502))
            metrics.exchange(exchange(services=("default-app-wrr", "default-app-v2-80")))
            metrics.exchange(exchange(status=404, services=()))
            self.assertEqual(
                metrics.service_stats(),
                {
                    WRR: {"requests": 3, "errors": 1},
                    V1: {"requests": 2, "errors": 1},
                    "default-app-v2-80@kubernetescrd": {"requests": 1, "errors": 0},
                },
            )

    def test_noPrometheus(self) -> None:
        """Without Prometheus there is nothing to expose and no registry."""
        metrics = make(None)
        metrics.exchange(exchange())
        metrics.connection_opened("web", "TCP")
        metrics.mirror_copy("a", "b", 200)
        self.assertIsNone(metrics.registry)
        self.assertEqual(metrics.exposition()[1], b"")


class GaugeTests(SynchronousTestCase):
    """Open connections, server up, reloads and mirror copies."""

    def test_openConnections(self) -> None:
        """The gauge goes up and down per entrypoint and protocol."""
        metrics = make()
        metrics.connection_opened("web", "TCP")
        metrics.connection_opened("web", "TCP")
        metrics.connection_opened("udp", "UDP")
        metrics.connection_closed("web", "TCP")
        got = named(samples(metrics), "traefik_open_connections")
        self.assertEqual(
            got,
            {
                labels(entrypoint="web", protocol="TCP"): 1.0,
                labels(entrypoint="udp", protocol="UDP"): 1.0,
            },
        )

    def test_serversUp(self) -> None:
        """Every server of every load balancer is up; a server gone loses its series after
        one more scrape."""
        metrics = make()
        metrics.set_servers(fake_table([], {"default-app-v1-80": (80, 81)}))
        both = {
            labels(service=V1, url="http://10.0.0.1:80"): 1.0,
            labels(service=V1, url="http://10.0.0.1:81"): 1.0,
        }
        self.assertEqual(named(samples(metrics), "traefik_service_server_up"), both)
        metrics.set_servers(fake_table([], {"default-app-v1-80": (81,)}))
        self.assertEqual(named(samples(metrics), "traefik_service_server_up"), both)
        self.assertEqual(
            named(samples(metrics), "traefik_service_server_up"),
            {labels(service=V1, url="http://10.0.0.1:81"): 1.0},
        )

    def test_reloads(self) -> None:
        """Successful reloads count and stamp the clock's time; failures apart."""
        metrics = make()
        metrics.clock.advance(1000)
        metrics.config_reload(True)
        metrics.clock.advance(5)
        metrics.config_reload(False)
        found = samples(metrics)
        self.assertEqual(found["traefik_config_reloads_total", frozenset()], 1.0)
        self.assertEqual(found["traefik_config_last_reload_success", frozenset()], 1000.0)
        self.assertEqual(found["traefik_config_reloads_failure_total", frozenset()], 1.0)
        self.assertEqual(found["traefik_config_last_reload_failure", frozenset()], 1005.0)

    def test_mirrorCopies(self) -> None:
        """Copies count under tsproxy_mirror_requests_total, never under the service."""
        metrics = make()
        metrics.mirror_copy("default-app-v2-80", "default-app-mirror", 200)
        metrics.mirror_copy("default-app-v2-80", "default-app-mirror", 0)
        metrics.mirror_copy("default-app-v2-80", "default-app-mirror", 200)
        found = samples(metrics)
        mirror = "default-app-mirror@kubernetescrd"
        v2 = "default-app-v2-80@kubernetescrd"
        self.assertEqual(
            named(found, "tsproxy_mirror_requests_total"),
            {
                labels(code="200", mirror_of=mirror, service=v2): 2.0,
                labels(code="0", mirror_of=mirror, service=v2): 1.0,
            },
        )
        self.assertEqual(named(found, "traefik_service_requests_total"), {})
        self.assertEqual(metrics.service_stats(), {})


R1 = "default-app-wrr-846b2c19626676e0a8ba"
R2 = "default-app-wrr-0123456789abcdef0123"
FULL = {"default-app-wrr": (), "default-app-v1-80": (80,), "default-app-v2-80": (81,)}


def present(metrics: Metrics) -> FrozenSet[str]:
    """Which router, service, server and mirror series a scrape shows (short names), and
    which services the dashboard's counts have."""
    found = samples(metrics)
    out: List[str] = []

    def short(name: str) -> str:
        return name.replace("@kubernetescrd", "").replace("default-app-", "")

    for level in ("router", "service"):
        for key in named(found, "traefik_%s_requests_total" % level):
            pairs = dict(key)
            router = short(pairs["router"]) + ">" if level == "router" else ""
            out.append("%s:%s%s" % (level, router, short(pairs["service"])))
        for key in named(found, "traefik_%s_requests_tls_total" % level):
            pairs = dict(key)
            router = short(pairs["router"]) + ">" if level == "router" else ""
            out.append("%s-tls:%s%s" % (level, router, short(pairs["service"])))
    for key in named(found, "tsproxy_mirror_requests_total"):
        pairs = dict(key)
        out.append("mirror:%s<%s" % (short(pairs["service"]), short(pairs["mirror_of"])))
    for key in named(found, "traefik_service_server_up"):
        pairs = dict(key)
        out.append("up:%s:%s" % (short(pairs["service"]), pairs["url"].rsplit(":", 1)[1]))
    for name in metrics.service_stats():
        out.append("stats:" + short(name))
    return frozenset(out)


class PruneTests(SynchronousTestCase):
    """Series of routers and services the configuration no longer has are dropped after
    one more scrape (Traefik's promState); the dashboard's counts at once."""

    def test_table(self) -> None:
        wrr_r1 = {"router:wrr-846b2c19626676e0a8ba>wrr", "router-tls:wrr-846b2c19626676e0a8ba>wrr"}
        wrr = {"service:wrr", "service-tls:wrr", "stats:wrr"}
        v1 = {"service:v1-80", "service-tls:v1-80", "stats:v1-80", "up:v1-80:80"}
        v2 = {"up:v2-80:81", "mirror:v2-80<wrr"}
        everything = wrr_r1 | wrr | v1 | v2
        no_stats = {"stats:v1-80", "stats:wrr"}
        # (what: routers and services of the reloaded table, or None: no reload;
        #  shown by the first scrape after it, then by the second)
        cases = [
            ("same configuration", ([R1], FULL), everything, everything),
            (
                "rule edited: the router's name changes",
                ([R2], FULL),
                everything,
                everything - wrr_r1,
            ),
            (
                "a service gone: its series, router series naming it, its servers",
                ([R1], {"default-app-wrr": (), "default-app-v2-80": (81,)}),
                everything - {"stats:v1-80"},
                everything - v1,
            ),
            (
                "the router and its service gone: mirror copies of it too",
                ([], {"default-app-v1-80": (80,), "default-app-v2-80": (81,)}),
                everything - {"stats:wrr"},
                v1 | {"up:v2-80:81"},
            ),
            ("everything gone", ([], {}), everything - no_stats, set()),
            ("no reload", None, everything, everything),
        ]
        for what, reload, first, second in cases:
            metrics = make(PrometheusConfig(add_routers_labels=True))
            metrics.set_servers(fake_table([R1], FULL))
            metrics.exchange(exchange(tls=True, tls_version="1.3", tls_cipher="TLS_AES"))
            metrics.mirror_copy("default-app-v2-80", "default-app-wrr", 200)
            if reload is not None:
                metrics.set_servers(fake_table(*reload))
            self.assertEqual(present(metrics), frozenset(first), what)
            self.assertEqual(present(metrics), frozenset(second), what)

    def test_backBeforeScrape(self) -> None:
        """A router that goes and comes back before a scrape keeps its series."""
        metrics = make(PrometheusConfig(add_routers_labels=True))
        metrics.set_servers(fake_table([R1], FULL))
        metrics.exchange(exchange())
        metrics.set_servers(fake_table([R2], FULL))
        metrics.set_servers(fake_table([R1], FULL))
        samples(metrics)
        self.assertIn("router:wrr-846b2c19626676e0a8ba>wrr", present(metrics))

    def test_lateExchange(self) -> None:
        """An exchange of a router already gone (routed on the old table, finished after the
        reload and the scrape) shows once, then goes."""
        metrics = make(PrometheusConfig(add_routers_labels=True))
        metrics.set_servers(fake_table([R1], FULL))
        metrics.set_servers(fake_table([R2], FULL))
        samples(metrics)
        metrics.exchange(exchange())
        self.assertIn("router:wrr-846b2c19626676e0a8ba>wrr", present(metrics))
        self.assertNotIn("router:wrr-846b2c19626676e0a8ba>wrr", present(metrics))

    def test_noConfigurationYet(self) -> None:
        """Before any configuration is known nothing is dropped; entrypoint series never are."""
        metrics = make(PrometheusConfig(add_routers_labels=True))
        metrics.exchange(exchange())
        samples(metrics)
        self.assertIn("router:wrr-846b2c19626676e0a8ba>wrr", present(metrics))
        metrics.set_servers(fake_table([], {}))
        samples(metrics)
        found = samples(metrics)
        self.assertEqual(named(found, "traefik_router_requests_total"), {})
        self.assertEqual(len(named(found, "traefik_entrypoint_requests_total")), 1)

    def test_withoutPrometheus(self) -> None:
        """Without Prometheus the dashboard's counts are pruned all the same."""
        metrics = make(None)
        metrics.set_servers(fake_table([R1], FULL))
        metrics.exchange(exchange())
        metrics.set_servers(fake_table([R1], {"default-app-v1-80": (80,)}))
        self.assertEqual(list(metrics.service_stats()), [V1])
