"""Metrics and access log through a running proxy with the seed's configuration."""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, FrozenSet, Tuple

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater

from tests.proxyfixture import ENDPOINTS, ProxyTestCase, RawClient, free_port, raw_exchange
from tests.udpfixture import UDPTestMixin

WRR = "traefikservice-wrr.kubesre.lc"
COPY = "traefikservice-copy.kubesre.lc"
COOKIE = "traefikservice-cokie.kubesre.lc"
ROUTER_WRR = "default-app-wrr-846b2c19626676e0a8ba@kubernetescrd"
V1 = "default-app-v1-80@kubernetescrd"
V2 = "default-app-v2-80@kubernetescrd"
MIRROR = "default-app-mirror@kubernetescrd"

STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
  websecure:
    address: "127.0.0.1:0"
  tcp:
    address: "127.0.0.1:0"
  udp:
    address: "127.0.0.1:0/udp"
    transport: {{lifeCycle: {{graceTimeOut: 0s}}}}
  traefik:
    address: "127.0.0.1:0"
log:
  level: ERROR
metrics:
  prometheus:
    addRoutersLabels: true
accessLog:
  filePath: "{path}"
  format: {format}
"""

#: Traefik's common format, field by field.
COMMON = re.compile(
    r'^(?P<client>\S+) - (?P<user>\S+) \[(?P<time>[^]]+)\] "(?P<method>\S+) (?P<path>\S+)'
    r' (?P<proto>\S+)" (?P<status>\d{3}) (?P<size>\d+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"'
    r' (?P<count>\d+) "(?P<router>[^"]*)" "(?P<url>[^"]*)" (?P<ms>\d+)ms$'
)

Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]


class ObservedProxyTests(ProxyTestCase, UDPTestMixin):
    """The seed scenarios counted and logged as Traefik would."""

    def start(self, log_format: str = "common", broken: bool = False) -> None:
        """The seed configuration, observed; ``broken``: app-v1 never answers and nothing
        listens for app-v2."""
        self.use_seed_config()
        if broken:
            silent, self.silent_received = self.start_silent()
            self.write(
                "endpoints.yaml",
                ENDPOINTS.format(name="app-v1", port=silent)
                + "---\n"
                + ENDPOINTS.format(name="app-v2", port=free_port()),
            )
        self.log_path = os.path.join(os.path.abspath(self.mktemp()), "access.log")
        self.write("tsproxy.yaml", STATIC.format(path=self.log_path, format=log_format))
        self.start_proxy()

    def samples(self) -> Samples:
        assert self.service is not None and self.service.metrics is not None
        _, body = self.service.metrics.exposition()
        found: Samples = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                found[sample.name, frozenset(sample.labels.items())] = sample.value
        return found

    def lines(self) -> list:
        assert self.service is not None and self.service.access_log is not None
        self.service.access_log.sync()
        with open(self.log_path) as f:
            return f.read().splitlines()

    @defer.inlineCallbacks
    def wait_for(self, condition: Any, what: str) -> Any:
        """Poll a condition on real sockets, at most 100 times 20 ms."""
        for _ in range(100):
            if condition():
                return
            yield deferLater(reactor, 0.02, lambda: None)
        self.fail("timed out waiting for " + what)

    def open_connections(self, entrypoint: str, protocol: str) -> float:
        labels = frozenset({"entrypoint": entrypoint, "protocol": protocol}.items())
        return self.samples().get(("traefik_open_connections", labels), 0.0)

    @defer.inlineCallbacks
    def test_weightedServicesCountedApart(self) -> None:
        """30 requests to the 1:2 canary: app-v1 10 and app-v2 20, the WRR service 30."""
        self.start()
        for _ in range(30):
            response, _ = yield self.get(WRR)
            self.assertEqual(response.code, 200)
        found = self.samples()
        get = {"code": "200", "method": "GET", "protocol": "http"}

        def count(name: str, **labels: str) -> float:
            return found.get((name, frozenset(dict(get, **labels).items())), 0.0)

        service = "traefik_service_requests_total"
        self.assertEqual(count(service, service=V1), 10.0)
        self.assertEqual(count(service, service=V2), 20.0)
        self.assertEqual(count(service, service="default-app-wrr@kubernetescrd"), 30.0)
        self.assertEqual(count("traefik_entrypoint_requests_total", entrypoint="web"), 30.0)
        self.assertEqual(
            count(
                "traefik_router_requests_total",
                router=ROUTER_WRR,
                service="default-app-wrr@kubernetescrd",
            ),
            30.0,
        )
        self.assertEqual(count("traefik_service_responses_bytes_total", service=V2), 20.0 * 13)
        self.assertEqual(
            found[
                "traefik_service_server_up",
                frozenset({"service": V1, "url": self.url("app-v1")}.items()),
            ],
            1.0,
        )
        self.assertEqual(found["traefik_config_reloads_total", frozenset()], 1.0)
        stats = self.service.metrics.service_stats()  # type: ignore[union-attr]
        self.assertEqual(stats[V1], {"requests": 10, "errors": 0})
        self.assertEqual(stats[V2], {"requests": 20, "errors": 0})

    @defer.inlineCallbacks
    def test_metricsEndpoint(self) -> None:
        """GET /metrics on the traefik entrypoint, with a real client: the canary's 1:2 split
        as Prometheus scrapes it, in the text format Prometheus reads."""
        import treq

        self.start()
        for _ in range(30):
            response, _ = yield self.get(WRR)
            self.assertEqual(response.code, 200)
        assert self.service is not None
        url = "http://127.0.0.1:%d/metrics" % (self.service.port_of("traefik"),)
        response = yield treq.get(url, agent=self.agent)
        body = yield treq.content(response)
        self.assertEqual(response.code, 200)
        content_type = response.headers.getRawHeaders("content-type")[0]
        self.assertTrue(content_type.startswith("text/plain; version="), content_type)
        counts = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == "traefik_service_requests_total":
                    counts[sample.labels["service"]] = sample.value
        self.assertEqual((counts[V1], counts[V2]), (10.0, 20.0))
        # The scrape itself is not counted: Traefik leaves its internal routers out.
        self.assertEqual(set(counts), {V1, V2, "default-app-wrr@kubernetescrd"})

    @defer.inlineCallbacks
    def test_tlsRequestsCounted(self) -> None:
        """HTTPS requests (conf/websecure.yaml) count in *_requests_tls_total with Traefik's
        tls_version and Go's cipher name."""
        from twisted.internet import threads

        from tests.tcp.test_tcp_tls import tls_session

        self.start()
        assert self.service is not None
        port = self.service.port_of("websecure")
        request = b"GET / HTTP/1.1\r\nHost: " + WRR.encode() + b"\r\nConnection: close\r\n\r\n"
        for _ in range(2):
            yield threads.deferToThread(tls_session, port, WRR, request)
        found = {
            (name, dict(labels).get("entrypoint"), dict(labels).get("service")): (
                dict(labels)["tls_version"],
                dict(labels)["tls_cipher"],
                value,
            )
            for (name, labels), value in self.samples().items()
            if name.endswith("_requests_tls_total")
        }
        version, cipher, count = found["traefik_entrypoint_requests_tls_total", "websecure", None]
        self.assertEqual((version, count), ("1.3", 2.0))
        self.assertTrue(cipher.startswith("TLS_"), cipher)
        self.assertEqual(
            found["traefik_service_requests_tls_total", None, "default-app-wrr@kubernetescrd"],
            (version, cipher, 2.0),
        )

    def url(self, app: str) -> str:
        return "http://127.0.0.1:%d" % (self.app_ports[app],)

    def start_app(self, name: str) -> int:
        port = super().start_app(name)
        self.app_ports = getattr(self, "app_ports", {})
        self.app_ports[name] = port
        return port

    @defer.inlineCallbacks
    def test_mirrorCopiesCountedApart(self) -> None:
        """10% mirroring: 2 copies of 20 in tsproxy_mirror_requests_total, none as app-v2."""
        self.start()
        for i in range(20):
            yield self.get(COPY, path="/req/%d" % (i,))
        yield self.service.mirrors.idle()  # type: ignore[union-attr]
        found = self.samples()
        copies = frozenset({"code": "200", "mirror_of": MIRROR, "service": V2}.items())
        self.assertEqual(found["tsproxy_mirror_requests_total", copies], 2.0)
        by_service = {
            dict(labels)["service"]: value
            for (name, labels), value in found.items()
            if name == "traefik_service_requests_total"
        }
        self.assertEqual(by_service, {MIRROR: 20.0, V1: 20.0})
        self.assertNotIn(V2, self.service.metrics.service_stats())  # type: ignore[union-attr]

    @defer.inlineCallbacks
    def test_dashboardCountsPerParent(self) -> None:
        """The dashboard's counts: a child shared by the canary and the cookie service is
        counted under each parent for what that parent sent it (10:20 and 3:6), mirrored
        copies apart, unrouted requests per entrypoint, TCP connections and UDP sessions per
        service and per parent's child."""
        self.start()
        for _ in range(30):
            yield self.get(WRR)
        for _ in range(9):
            yield self.get(COOKIE)
        for i in range(20):
            yield self.get(COPY, path="/req/%d" % (i,))
        yield self.service.mirrors.idle()  # type: ignore[union-attr]
        response, _ = yield self.get("nowhere.test")
        self.assertEqual(response.code, 404)
        tcp = self.service.port_of("tcp")  # type: ignore[union-attr]
        for _ in range(3):
            greeting = yield raw_exchange(tcp, b"")
            self.assertTrue(greeting.startswith(b"HELLO greeter-"), greeting)
        reply = yield self.udp_client().exchange(self.service.port_of("udp"), b"hi")  # type: ignore[union-attr]
        self.assertEqual(reply, b"echo-1 hi")
        stats = self.service.metrics.dashboard_stats()  # type: ignore[union-attr]
        children = stats["children"]

        def split(parent: str) -> Dict[str, Dict[str, int]]:
            return children["default-%s@kubernetescrd" % (parent,)]

        self.assertEqual(
            split("app-wrr"),
            {V1: {"requests": 10, "errors": 0}, V2: {"requests": 20, "errors": 0}},
        )
        self.assertEqual(
            split("app-cookie"),
            {V1: {"requests": 3, "errors": 0}, V2: {"requests": 6, "errors": 0}},
        )
        self.assertEqual(stats["services"][V1], {"requests": 10 + 3 + 20, "errors": 0})
        self.assertEqual(stats["mirrored"], {MIRROR: {"copies": 2, "errors": 0}})
        self.assertEqual(stats["entrypoints"]["web"], {"requests": 60, "notFound": 1})
        (tcp_parent,) = stats["tcp"]["children"].values()
        self.assertEqual(sorted(tcp_parent.values()), [1, 2])
        self.assertEqual(
            stats["udp"]["children"],
            {"default-echo-0@kubernetescrd": {"default-echo-0-echo-1-53@kubernetescrd": 1}},
        )

    @defer.inlineCallbacks
    def test_reloadDropsGoneSeries(self) -> None:
        """A rule edit renames the router and a deleted file takes its services away: their
        series show in one more scrape, then go; the dashboard's counts go at once."""
        self.start()
        yield self.get(WRR)
        for i in range(10):
            yield self.get(COPY, path="/req/%d" % (i,))
        yield self.service.mirrors.idle()  # type: ignore[union-attr]
        metrics = self.service.metrics  # type: ignore[union-attr]

        def shown() -> Dict[str, set]:
            found: Dict[str, set] = {"router": set(), "service": set(), "mirror_of": set()}
            for name, labels in self.samples():
                pairs = dict(labels)
                if name == "traefik_router_requests_total":
                    found["router"].add(pairs["router"])
                elif name == "traefik_service_requests_total":
                    found["service"].add(pairs["service"])
                elif name == "tsproxy_mirror_requests_total":
                    found["mirror_of"].add(pairs["mirror_of"])
            return found

        before = shown()
        self.assertIn(ROUTER_WRR, before["router"])
        self.assertEqual(before["mirror_of"], {MIRROR})
        self.assertIn(MIRROR, metrics.service_stats())
        with open(os.path.join(self.config_dir, "wrr.yaml")) as f:
            text = f.read()
        self.write("wrr.yaml", text.replace(WRR, "edited-" + WRR))
        os.remove(os.path.join(self.config_dir, "mirror.yaml"))
        self.assertTrue(self.service.reload())  # type: ignore[union-attr]
        self.assertNotIn(MIRROR, metrics.service_stats())
        self.assertEqual(shown(), before)
        after = shown()
        self.assertNotIn(ROUTER_WRR, after["router"])
        self.assertNotIn(MIRROR, after["service"])
        self.assertEqual(after["mirror_of"], set())
        self.assertIn(V1, after["service"])
        yield self.get("edited-" + WRR)
        renamed = shown()["router"] - after["router"]
        self.assertEqual(len(renamed), 1)
        self.assertTrue(renamed.pop().startswith("default-app-wrr-"))

    @defer.inlineCallbacks
    def test_commonLog(self) -> None:
        """Common lines name the router, the server URL and the status; 404 has none."""
        self.start()
        yield self.get(WRR, headers={"User-Agent": ["probe"]})
        yield self.get("nowhere.example")
        first, second = [COMMON.match(line) for line in self.lines()]
        assert first is not None and second is not None, self.lines()
        self.assertEqual(
            (first["client"], first["method"], first["path"], first["proto"], first["status"]),
            ("127.0.0.1", "GET", "/", "HTTP/1.1", "200"),
        )
        self.assertEqual((first["router"], first["url"]), (ROUTER_WRR, self.url("app-v2")))
        self.assertEqual((first["size"], first["agent"]), ("13", "-"))
        self.assertEqual((second["status"], second["router"], second["url"]), ("404", "-", "-"))
        self.assertEqual(int(second["count"]), int(first["count"]) + 1)

    @defer.inlineCallbacks
    def test_jsonLog(self) -> None:
        """JSON lines carry Traefik's field names and values."""
        self.start("json")
        yield self.get(WRR)
        yield self.get(WRR)
        entries = [json.loads(line) for line in self.lines()]
        self.assertEqual(
            [(e["RouterName"], e["ServiceName"], e["DownstreamStatus"]) for e in entries],
            [(ROUTER_WRR, V2, 200), (ROUTER_WRR, V1, 200)],
        )
        self.assertEqual(entries[0]["RequestHost"], WRR)
        self.assertEqual(entries[0]["entryPointName"], "web")
        self.assertEqual(entries[0]["OriginContentSize"], 13)

    @defer.inlineCallbacks
    def test_reopenAfterRotation(self) -> None:
        """SIGUSR1's reopen after a rename: later lines go to a new file at the path."""
        self.start()
        yield self.get(WRR)
        self.lines()
        os.rename(self.log_path, self.log_path + ".1")
        self.service._reopen_logs()  # type: ignore[union-attr]
        yield self.get("nowhere.example")
        self.assertEqual([COMMON.match(line)["status"] for line in self.lines()], ["404"])
        with open(self.log_path + ".1") as f:
            self.assertEqual([COMMON.match(line)["status"] for line in f], ["200"])

    @defer.inlineCallbacks
    def test_openConnectionsHTTP(self) -> None:
        """A client connection counts while open, on its entrypoint, as TCP."""
        self.start()
        port = self.service.port_of("web")  # type: ignore[union-attr]
        client = RawClient()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        yield self.wait_for(lambda: self.open_connections("web", "TCP") == 1, "connection")
        client.transport.loseConnection()
        yield client.closed
        yield self.wait_for(lambda: self.open_connections("web", "TCP") == 0, "close")

    @defer.inlineCallbacks
    def test_openConnectionsUDP(self) -> None:
        """A UDP session counts while it lives, as UDP."""
        self.start()
        port = self.service.port_of("udp")  # type: ignore[union-attr]
        reply = yield self.udp_client().exchange(port, b"hello")
        self.assertEqual(reply, b"echo-1 hello")
        self.assertEqual(self.open_connections("udp", "UDP"), 1)
        self.service.udp["udp"].sessions.close_all()  # type: ignore[union-attr]
        self.assertEqual(self.open_connections("udp", "UDP"), 0)

    @defer.inlineCallbacks
    def test_cutAtShutdownIsLogged(self) -> None:
        """An exchange cut because the grace time is over still gets its access log line
        (the connection is lost a turn after the cut, before the log closes)."""
        self.start(broken=True)
        yield self.get(WRR)  # app-v2 first: 502
        client = RawClient()
        assert self.service is not None
        port = self.service.port_of("web")
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        client.transport.write(b"GET /hangs HTTP/1.1\r\nHost: %s\r\n\r\n" % WRR.encode())
        yield self.wait_for(lambda: self.silent_received, "the request at app-v1")
        self.service._cut = True  # as a second SIGTERM does: no grace time
        yield self.service.stopService()
        yield client.closed
        with open(self.log_path) as f:
            lines = f.read().splitlines()
        self.assertEqual([line.split()[6] for line in lines], ["/", "/hangs"])
        self.assertEqual(lines[1].split()[8], "499")

    @defer.inlineCallbacks
    def test_failedAndAbandonedExchanges(self) -> None:
        """A refused server is a 502 answer; a client leaving before the answer is a 499."""
        self.start("json", broken=True)
        response, _ = yield self.get(WRR)  # app-v2 first: nothing listens
        self.assertEqual(response.code, 502)
        client = RawClient()
        port = self.service.port_of("web")  # type: ignore[union-attr]
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        client.transport.write(b"GET /gone HTTP/1.1\r\nHost: %s\r\n\r\n" % WRR.encode())
        yield self.wait_for(lambda: self.silent_received, "the request at app-v1")
        client.transport.abortConnection()  # a reset: a half-close would still get the answer
        yield client.closed
        yield self.wait_for(lambda: len(self.lines()) == 2, "two log lines")
        failed, gone = [json.loads(line) for line in self.lines()]
        self.assertEqual(
            (failed["DownstreamStatus"], failed["OriginStatus"], failed["ServiceName"]),
            (502, 502, V2),
        )
        self.assertEqual(
            (gone["DownstreamStatus"], gone["RequestPath"], gone["ServiceName"]),
            (499, "/gone", V1),
        )
        stats = self.service.metrics.service_stats()  # type: ignore[union-attr]
        self.assertEqual(stats[V2], {"requests": 1, "errors": 1})
        self.assertEqual(stats[V1], {"requests": 1, "errors": 0})
