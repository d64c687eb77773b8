"""Health checks through a running proxy: the seed's canary with health checks, a server
killed and brought back, failover, HRW, the API, the metrics and reloads.

The checks' schedule runs on a Clock the tests advance; the checks themselves are real HTTP
requests to backends on 127.0.0.1 that the tests start and stop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any, Callable, Dict, List, Optional, Tuple

import treq
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived as H2DataReceived
from h2.events import RequestReceived
from h2.events import StreamEnded as H2StreamEnded
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web import server
from twisted.web.resource import Resource

from tests.balance.test_balance_health import _GROUP
from tests.proxyfixture import CONF, ENDPOINTS, ProxyTestCase, free_port
from tests.service.test_service_reload import LogLines
from tsproxy.balance.health import HealthCheckSpec
from tsproxy.balance.hrw import hrw_choose
from tsproxy.config.resources import TransportSettings
from tsproxy.http.healthcheck import HealthMonitor
from tsproxy.logs import apply_log_level
from tsproxy.runtime.services import LoadBalancer, LoadBalancerDef, Server
from tsproxy.testing import app_site

STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
  traefik:
    address: "127.0.0.1:0"
api: {insecure: true}
metrics:
  prometheus: {}
log:
  level: ERROR
"""

TWO_ENDPOINTS = """\
apiVersion: v1
kind: Endpoints
metadata:
  name: {name}
subsets:
  - addresses: [{{ip: 127.0.0.1}}]
    ports: [{{name: http, port: {first}}}]
  - addresses: [{{ip: 127.0.0.1}}]
    ports: [{{name: http, port: {second}}}]
"""
WRR_HOST = "traefikservice-wrr.kubesre.lc"
HEALTH = "healthCheck: {path: /health, interval: 10s, timeout: 3s}"
V1, V2 = "default-app-v1-80", "default-app-v2-80"


class Backend:
    """An app backend that can be killed (listener closed, connections cut) and restarted on
    the same port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.listening: Any = None
        self.wrapper: Optional[WrappingFactory] = None

    def start(self) -> None:
        self.wrapper = WrappingFactory(app_site(self.name))
        self.listening = reactor.listenTCP(self.port, self.wrapper, interface="127.0.0.1")
        self.port = self.listening.getHost().port

    @property
    def requests(self) -> List[dict]:
        assert self.wrapper is not None
        return self.wrapper.wrappedFactory.resource.requests  # type: ignore[attr-defined]

    def stop(self) -> defer.Deferred[Any]:
        listening, self.listening = self.listening, None
        if listening is None:
            return defer.succeed(None)
        assert self.wrapper is not None
        for protocol in list(self.wrapper.protocols):
            protocol.transport.abortConnection()
        return defer.maybeDeferred(listening.stopListening)


def with_health(text: str) -> str:
    """A seed file with an active health check on every reference to port 80."""
    return re.sub(r"(?m)^(\s+)port: 80$", lambda m: m.group(0) + "\n" + m.group(1) + HEALTH, text)


@defer.inlineCallbacks
def until(condition: Callable[[], bool], seconds: float = 5.0) -> Any:
    """Wait (real time, polling the reactor) until ``condition()`` holds; fail after
    ``seconds``. The checks are real I/O: the clock only starts them."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        yield task.deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not met in %.1fs" % seconds)


class _HealthSetup(ProxyTestCase):
    """The seed's configuration, each reference to a Service health checked, the canary's
    weighted level following them; two app backends that can be killed."""

    def setUp(self) -> None:
        super().setUp()
        self.clock = task.Clock()
        self.backends: Dict[str, Backend] = {}
        for name in ("app-v1", "app-v2"):
            backend = self.backends[name] = Backend(name)
            backend.start()
            self.addCleanup(backend.stop)
        self.write("tsproxy.yaml", STATIC)
        shutil.copy(os.path.join(CONF, "app.yaml"), self.config_dir)
        for name in ("cookie.yaml", "mirror.yaml"):
            with open(os.path.join(CONF, name)) as f:
                self.write(name, with_health(f.read()))
        with open(os.path.join(CONF, "wrr.yaml")) as f:
            wrr = with_health(f.read())
        self.write("wrr.yaml", wrr.replace("  weighted:\n", "  weighted:\n    healthCheck: {}\n"))
        self.write_endpoints()

    def write_endpoints(self) -> None:
        docs = [ENDPOINTS.format(name=n, port=b.port) for n, b in self.backends.items()]
        self.write("endpoints.yaml", "---\n".join(docs))

    def node(self, name: str) -> Any:
        assert self.service is not None
        return self.service.table.services[name]

    @defer.inlineCallbacks
    def split(self, count: int) -> Any:
        """(answers by backend name, number of client errors) of ``count`` canary requests."""
        seen: Dict[str, int] = {}
        errors = 0
        for _ in range(count):
            response, body = yield self.get(WRR_HOST)
            if response.code != 200:
                errors += 1
                continue
            name = body.decode().split()[-1]
            seen[name] = seen.get(name, 0) + 1
        return seen, errors

    @defer.inlineCallbacks
    def api(self, path: str) -> Any:
        assert self.service is not None
        url = "http://127.0.0.1:%d%s" % (self.service.port_of("traefik"), path)
        response = yield treq.get(url, agent=self.agent)
        body = yield treq.content(response)
        return response.code, body

    @defer.inlineCallbacks
    def server_up_metric(self, service: str) -> Any:
        _, body = yield self.api("/metrics")
        pattern = r'traefik_service_server_up\{service="%s@kubernetescrd",url="[^"]+"\} (\S+)'
        found = re.findall(pattern % re.escape(service), body.decode())
        return [float(value) for value in found]


class HealthCheckProxyTests(_HealthSetup):
    """The seed's canary with health checks."""

    @defer.inlineCallbacks
    def test_killed_server_leaves_and_comes_back(self) -> None:
        """app-v2 killed: after one health interval no client error and all to app-v1, the
        API, stats and metrics say DOWN; back: UP again and the 1:2 split returns."""
        self.start_proxy(clock=self.clock)
        seen, errors = yield self.split(9)
        self.assertEqual((seen, errors), ({"app-v1": 3, "app-v2": 6}, 0))
        v2 = self.backends["app-v2"]
        v2_url = "http://127.0.0.1:%d" % (v2.port,)
        yield v2.stop()
        self.clock.advance(10)
        yield until(lambda: not self.node(V2).states.up(v2_url))
        seen, errors = yield self.split(9)
        self.assertEqual((seen, errors), ({"app-v1": 9}, 0))
        code, body = yield self.api("/api/http/services/%s@kubernetescrd" % V2)
        service = json.loads(body)
        self.assertEqual((code, service["serverStatus"]), (200, {v2_url: "DOWN"}))
        self.assertEqual(service["loadBalancer"]["healthCheck"]["path"], "/health")
        code, body = yield self.api("/api/tsproxy/stats")
        health = json.loads(body)["health"]
        self.assertEqual(health[V2 + "@kubernetescrd"], {"up": False, "servers": {v2_url: "DOWN"}})
        self.assertEqual(health["default-app-wrr@kubernetescrd"], {"up": True})
        self.assertEqual((yield self.server_up_metric(V2)), [0.0])
        self.assertEqual((yield self.server_up_metric(V1)), [1.0])

        v2.start()
        self.clock.advance(10)
        yield until(lambda: self.node(V2).states.up(v2_url))
        seen, errors = yield self.split(9)
        self.assertEqual(errors, 0)
        self.assertEqual(sorted(seen.items()), [("app-v1", 3), ("app-v2", 6)])
        code, body = yield self.api("/api/http/services")
        listed = {s["name"]: s for s in json.loads(body)}
        self.assertEqual(listed[V2 + "@kubernetescrd"]["serverStatus"], {v2_url: "UP"})
        self.assertEqual(listed["default-app-wrr@kubernetescrd"]["weighted"]["healthCheck"], {})
        self.assertEqual((yield self.server_up_metric(V2)), [1.0])

    @defer.inlineCallbacks
    def test_all_down_is_503(self) -> None:
        """Both versions down: the canary answers 503 no available server."""
        self.start_proxy(clock=self.clock)
        for backend in self.backends.values():
            yield backend.stop()
        self.clock.advance(10)
        yield until(lambda: not self.node(V1).states.any_up() and not self.node(V2).states.any_up())
        response, body = yield self.get(WRR_HOST)
        self.assertEqual((response.code, body), (503, b"no available server\n"))

    @defer.inlineCallbacks
    def test_first_check_after_one_interval(self) -> None:
        """No check before the first interval has passed; then each server once."""
        self.start_proxy(clock=self.clock)
        self.clock.advance(9.9)
        yield task.deferLater(reactor, 0.05, lambda: None)
        checks = lambda: [r for b in self.backends.values() for r in b.requests]  # noqa: E731
        self.assertEqual(checks(), [])
        self.clock.advance(0.1)
        yield until(lambda: len(checks()) == 2)
        self.assertEqual(
            sorted((r["method"], r["uri"]) for r in checks()), [("GET", "/health")] * 2
        )

    @defer.inlineCallbacks
    def test_reload_keeps_status_and_schedule(self) -> None:
        """A reload with the canary unchanged keeps app-v2 DOWN and checks nothing at once; one
        that adds a server to app-v2 keeps the DOWN one DOWN; one that removes the health
        checks stops their checkers and resets the status."""
        service = self.start_proxy(clock=self.clock)
        v2 = self.backends["app-v2"]
        v2_url = "http://127.0.0.1:%d" % (v2.port,)
        yield v2.stop()
        self.clock.advance(10)
        yield until(lambda: not self.node(V2).states.up(v2_url))
        checker_count = len(service.health.checkers)  # type: ignore[union-attr]
        before = len(self.backends["app-v1"].requests)
        # An unrelated change: a new IngressRoute for another host.
        self.write(
            "extra.yaml",
            "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {name: extra}\n"
            "spec:\n  routes:\n    - match: Host(`extra`)\n      services:\n"
            "        - {name: app-v1, port: 80}\n",
        )
        self.assertTrue(service.reload())
        self.assertFalse(self.node(V2).states.up(v2_url))
        self.clock.advance(5)
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(len(self.backends["app-v1"].requests), before)
        self.assertEqual(len(service.health.checkers), checker_count)  # type: ignore[union-attr]
        seen, errors = yield self.split(3)
        self.assertEqual((seen, errors), ({"app-v1": 3}, 0))
        # app-v2's Service changes (a second, live server): the DOWN one stays DOWN.
        extra = Backend("app-v2b")
        extra.start()
        self.addCleanup(extra.stop)
        extra_url = "http://127.0.0.1:%d" % (extra.port,)
        self.write(
            "endpoints.yaml",
            ENDPOINTS.format(name="app-v1", port=self.backends["app-v1"].port)
            + "---\n"
            + TWO_ENDPOINTS.format(name="app-v2", first=v2.port, second=extra.port),
        )
        self.assertTrue(service.reload())
        self.assertEqual(self.node(V2).states.status(), {v2_url: "DOWN", extra_url: "UP"})
        seen, errors = yield self.split(3)
        self.assertEqual((seen, errors), ({"app-v1": 1, "app-v2b": 2}, 0))
        # Health checks removed: their checkers stop, the new balancers start UP.
        for name in ("cookie.yaml", "mirror.yaml", "wrr.yaml"):
            shutil.copy(os.path.join(CONF, name), self.config_dir)
        self.assertTrue(service.reload())
        self.assertEqual(service.health.checkers, {})  # type: ignore[union-attr]
        self.assertTrue(self.node(V2).states.up(v2_url))


FAILOVER = """\
apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata: {name: app-failover}
spec:
  failover:
    healthCheck: {}
    service:
      name: app-v1
      port: 80
      %s
    fallback:
      name: app-v2
      port: 80
      %s
---
apiVersion: traefik.io/v1alpha1
kind: TraefikService
metadata: {name: app-hrw}
spec:
  highestRandomWeight:
    services:
      - {name: app-v1, port: 80, weight: 1}
      - {name: app-v2, port: 80, weight: 1}
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: balancers}
spec:
  routes:
    - match: Host(`failover`)
      services:
        - {name: app-failover, kind: TraefikService}
    - match: Host(`hrw`)
      services:
        - {name: app-hrw, kind: TraefikService}
"""


class FailoverProxyTests(_HealthSetup):
    """failover and highestRandomWeight TraefikServices through the proxy."""

    def setUp(self) -> None:
        super().setUp()
        for name in ("cookie.yaml", "mirror.yaml", "wrr.yaml"):
            os.remove(os.path.join(self.config_dir, name))
        self.write("failover.yaml", FAILOVER % (HEALTH, HEALTH))

    @defer.inlineCallbacks
    def answers(self, host: str, count: int) -> Any:
        names = []
        for _ in range(count):
            response, body = yield self.get(host)
            names.append(body.decode().split()[-1] if response.code == 200 else response.code)
        return names

    @defer.inlineCallbacks
    def test_failover_switches_and_back(self) -> None:
        """The failover serves app-v1; app-v1 down: app-v2; both down: 503; app-v1 back:
        app-v1 again. The API shows the failover's shape."""
        self.start_proxy(clock=self.clock)
        self.assertEqual((yield self.answers("failover", 3)), ["app-v1"] * 3)
        v1, v2 = self.backends["app-v1"], self.backends["app-v2"]
        yield v1.stop()
        self.clock.advance(10)
        yield until(lambda: not self.node(V1).states.any_up())
        self.assertEqual((yield self.answers("failover", 3)), ["app-v2"] * 3)
        yield v2.stop()
        self.clock.advance(10)
        yield until(lambda: not self.node(V2).states.any_up())
        self.assertEqual((yield self.answers("failover", 1)), [503])
        v1.start()
        self.clock.advance(10)
        yield until(lambda: self.node(V1).states.any_up())
        self.assertEqual((yield self.answers("failover", 3)), ["app-v1"] * 3)
        code, body = yield self.api("/api/http/services/default-app-failover@kubernetescrd")
        document = json.loads(body)
        self.assertEqual(
            (code, document["type"], document["failover"]),
            (200, "failover", {"service": V1, "fallback": V2, "healthCheck": {}}),
        )

    @defer.inlineCallbacks
    def test_hrw_sticks_to_client_ip(self) -> None:
        """highestRandomWeight sends one client IP to one child, every time."""
        self.start_proxy(clock=self.clock)
        names = yield self.answers("hrw", 5)
        self.assertEqual(len(set(names)), 1, names)
        self.assertIn(names[0], ("app-v1", "app-v2"))
        code, body = yield self.api("/api/http/services/default-app-hrw@kubernetescrd")
        document = json.loads(body)
        self.assertEqual(
            (code, document["type"], document["highestRandomWeight"]["services"]),
            (200, "highestrandomweight", [{"name": V1, "weight": 1}, {"name": V2, "weight": 1}]),
        )


FILE_FAILOVER = """\
http:
  routers:
    f: {rule: Host(`failover`), service: fo, entryPoints: [web]}
    h: {rule: Host(`hrw`), service: hrw, entryPoints: [web]}
  services:
    fo:
      failover: {service: main, fallback: spare, healthCheck: {}}
    hrw:
      highestRandomWeight:
        services: [{name: main}, {name: spare}]
    main:
      loadBalancer:
        healthCheck: {path: /health, interval: 10s, timeout: 3s}
        servers: [{url: "http://127.0.0.1:%d"}]
    spare:
      loadBalancer:
        healthCheck: {path: /health, interval: 10s, timeout: 3s}
        servers: [{url: "http://127.0.0.1:%d"}]
"""


class FileFailoverProxyTests(FailoverProxyTests):
    """The file provider's failover and highestRandomWeight services through the proxy."""

    def setUp(self) -> None:
        super().setUp()
        for name in os.listdir(self.config_dir):
            os.remove(os.path.join(self.config_dir, name))
        self.write("tsproxy.yaml", STATIC + "providers:\n  file: {filename: dyn.yml}\n")
        ports = (self.backends["app-v1"].port, self.backends["app-v2"].port)
        self.write("dyn.yml", FILE_FAILOVER % ports)

    @defer.inlineCallbacks
    def test_failover_switches_and_back(self) -> None:
        """The failover serves main; main's server DOWN by health check: the fallback; both
        down: 503; main back: main again. The API shows the failover as written."""
        self.start_proxy(clock=self.clock)
        self.assertEqual((yield self.answers("failover", 3)), ["app-v1"] * 3)
        v1, v2 = self.backends["app-v1"], self.backends["app-v2"]
        yield v1.stop()
        self.clock.advance(10)
        yield until(lambda: not self.node("main@file").states.any_up())
        self.assertEqual((yield self.answers("failover", 3)), ["app-v2"] * 3)
        yield v2.stop()
        self.clock.advance(10)
        yield until(lambda: not self.node("spare@file").states.any_up())
        self.assertEqual((yield self.answers("failover", 1)), [503])
        v1.start()
        self.clock.advance(10)
        yield until(lambda: self.node("main@file").states.any_up())
        self.assertEqual((yield self.answers("failover", 3)), ["app-v1"] * 3)
        code, body = yield self.api("/api/http/services/fo@file")
        document = json.loads(body)
        self.assertEqual(
            (code, document["type"], document["failover"]),
            (200, "failover", {"service": "main", "fallback": "spare", "healthCheck": {}}),
        )

    @defer.inlineCallbacks
    def test_hrw_sticks_to_client_ip(self) -> None:
        """highestRandomWeight sends client 127.0.0.1 to the child its rendezvous hash
        picks over the child names, every time."""
        self.start_proxy(clock=self.clock)
        names = yield self.answers("hrw", 5)
        expected = hrw_choose("127.0.0.1", ["main", "spare"], [1, 1])
        self.assertEqual(names, [["app-v1", "app-v2"][expected]] * 5)  # type: ignore[index]
        code, body = yield self.api("/api/http/services/hrw@file")
        document = json.loads(body)
        self.assertEqual(
            (code, document["type"], document["highestRandomWeight"]["services"]),
            (
                200,
                "highestrandomweight",
                [{"name": "main", "weight": 1}, {"name": "spare", "weight": 1}],
            ),
        )


class _CheckTarget(Resource):
    """A backend for checks: /ok 200, /bad 500, /missing 404, /redirect -> /ok,
    /redirect-bad -> /bad, /redirect-away -> http://localhost:<port>/ok, /slow never answers, /drip answers 200 and a first piece of a
    body that never ends; records (method, path, Host, X-Check)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: List[Tuple[str, str, str, str]] = []
        self.waiting: List[Any] = []

    def render(self, request: Any) -> Any:
        path = request.path.decode()
        self.seen.append(
            (
                request.method.decode(),
                path,
                (request.getHeader(b"host") or b"").decode(),
                (request.getHeader(b"x-check") or b"").decode(),
            )
        )
        if path in ("/slow", "/drip"):
            self.waiting.append(request)
            if path == "/drip":
                request.setHeader(b"Content-Length", b"1000000")
                request.write(b"x" * 100)
            return server.NOT_DONE_YET
        if path == "/redirect-away":
            request.setResponseCode(302)
            port = request.getHost().port
            request.setHeader(b"Location", b"http://localhost:%d/ok" % (port,))
            return b""
        if path.startswith("/redirect"):
            request.setResponseCode(302)
            request.setHeader(b"Location", b"/bad" if path == "/redirect-bad" else b"/ok")
            return b""
        request.setResponseCode({"/ok": 200, "/bad": 500}.get(path, 404))
        return b"x" * 10


class _Table:
    """What HealthMonitor reads of a routing table."""

    def __init__(self, *nodes: LoadBalancer) -> None:
        self.nodes = {node.definition: node for node in nodes}


class CheckerTests(TestCase):
    """HealthMonitor against a real backend, its schedule on a Clock."""

    def setUp(self) -> None:
        self.target = _CheckTarget()
        site = server.Site(self.target)
        site.noisy = False
        self.wrapper = WrappingFactory(site)
        self.listening = reactor.listenTCP(0, self.wrapper, interface="127.0.0.1")
        self.addCleanup(self.listening.stopListening)
        self.addCleanup(self._cut)
        self.port = self.listening.getHost().port
        self.clock = task.Clock()
        self.changes: List[Tuple[str, str, bool]] = []
        self.monitor = HealthMonitor(reactor, self.clock, lambda *c: self.changes.append(c))
        self.addCleanup(self.monitor.stop)

    def _cut(self) -> None:
        for request in self.target.waiting:
            if request.channel is not None:
                request.channel.transport.abortConnection()
        for protocol in list(self.wrapper.protocols):
            protocol.transport.abortConnection()

    def balancer(self, spec: HealthCheckSpec, *ports: int) -> LoadBalancer:
        servers = tuple(
            Server.at("http", "127.0.0.1", port, TransportSettings())
            for port in (ports or (self.port,))
        )
        return LoadBalancer.build(LoadBalancerDef("svc", servers, health_check=spec))

    @defer.inlineCallbacks
    def check_once(self, spec: HealthCheckSpec, port: int = 0) -> Any:
        """Run one scheduled check; (server UP afterwards, what the backend saw)."""
        self.target.seen = []
        node = self.balancer(spec, port or self.port)
        self.monitor.update(_Table(node))
        checker = self.monitor.checkers[node]
        self.clock.advance(spec.interval)
        yield until(lambda: not checker.in_flight)
        up = node.states.up(node.definition.servers[0].url)
        self.monitor.update(_Table())
        return up, list(self.target.seen)

    @defer.inlineCallbacks
    def test_options(self) -> None:
        """Path, status, hostname, headers, method, redirects and port as Traefik uses them."""
        host = "127.0.0.1:%d" % (self.port,)
        table = [
            (HealthCheckSpec("/ok"), True, [("GET", "/ok", host, "")]),
            (HealthCheckSpec("/bad"), False, [("GET", "/bad", host, "")]),
            (HealthCheckSpec("/missing"), False, [("GET", "/missing", host, "")]),
            (HealthCheckSpec("/missing", status=404), True, [("GET", "/missing", host, "")]),
            (HealthCheckSpec("/ok", status=204), False, [("GET", "/ok", host, "")]),
            (
                HealthCheckSpec(
                    "/ok", hostname="x.example", headers=(("X-Check", "1"),), method="HEAD"
                ),
                True,
                [("HEAD", "/ok", "x.example", "1")],
            ),
            # Values outside Latin-1 go as UTF-8 bytes, as Go sends a string.
            (
                HealthCheckSpec("/ok", headers=(("X-Check", "✓"),)),
                True,
                [("GET", "/ok", host, "✓")],
            ),
            (
                HealthCheckSpec("/redirect"),
                True,
                [("GET", "/redirect", host, ""), ("GET", "/ok", host, "")],
            ),
            (
                HealthCheckSpec("/redirect-bad"),
                False,
                [("GET", "/redirect-bad", host, ""), ("GET", "/bad", host, "")],
            ),
            (
                # A redirect to another host: the Host header is the new URL's (as in Go),
                # even when hostname is set; a relative one keeps it.
                HealthCheckSpec("/redirect-away", hostname="x.example"),
                True,
                [
                    ("GET", "/redirect-away", "x.example", ""),
                    ("GET", "/ok", "localhost:%d" % (self.port,), ""),
                ],
            ),
            (
                HealthCheckSpec("/redirect", hostname="x.example"),
                True,
                [("GET", "/redirect", "x.example", ""), ("GET", "/ok", "x.example", "")],
            ),
            (
                HealthCheckSpec("/redirect-bad", follow_redirects=False),
                True,
                [("GET", "/redirect-bad", host, "")],
            ),
        ]
        for spec, up, seen in table:
            result = yield self.check_once(spec)
            self.assertEqual(result, (up, seen), spec)

    @defer.inlineCallbacks
    def test_port_override_and_refused(self) -> None:
        """``port`` replaces the server's port; a refused connection is DOWN, with one log
        line (a warning) for the transition and none for the checks' connections."""
        apply_log_level("INFO")
        self.addCleanup(apply_log_level, "INFO")
        lines = LogLines(self)
        closed = free_port()
        up, seen = yield self.check_once(HealthCheckSpec("/ok", port=self.port), port=closed)
        self.assertEqual((up, len(seen)), (True, 1))
        up, seen = yield self.check_once(HealthCheckSpec("/ok"), port=closed)
        self.assertEqual((up, seen), (False, []))
        self.assertEqual(
            self.changes,
            [("svc", "http://127.0.0.1:%d" % (closed,), False)],
        )
        transitions = [line for line in lines.lines if " is DOWN " in line or " is UP " in line]
        self.assertEqual(len(transitions), 1, transitions)
        # No "Starting factory"/"Stopping factory" lines: two per check would flood the log.
        self.assertEqual([line for line in lines.lines if " factory " in line], [])
        self.assertTrue(
            transitions[0].startswith("svc: server http://127.0.0.1:%d is DOWN (" % (closed,)),
            transitions,
        )

    @defer.inlineCallbacks
    def test_timeout_and_unhealthy_interval(self) -> None:
        """A check that gets no answer within ``timeout`` is DOWN; DOWN servers are checked
        every ``unhealthyInterval``, UP ones every ``interval``."""
        spec = HealthCheckSpec("/slow", interval=10.0, unhealthy_interval=3.0, timeout=2.0)
        node = self.balancer(spec)
        url = node.definition.servers[0].url
        self.monitor.update(_Table(node))
        checker = self.monitor.checkers[node]
        self.clock.advance(9.0)  # the DOWN loop runs (at 3, 6, 9) with nothing to check
        self.assertEqual(self.target.seen, [])
        self.clock.advance(1.0)
        yield until(lambda: len(self.target.seen) == 1)
        self.clock.advance(1.9)
        self.assertTrue(node.states.up(url))
        self.clock.advance(0.1)
        yield until(lambda: not checker.in_flight)
        self.assertFalse(node.states.up(url))
        # Now DOWN (at 12): the DOWN loop's next turn (15) checks it again.
        self.target.seen = []
        self.clock.advance(2.9)
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(self.target.seen, [])
        self.clock.advance(0.1)
        yield until(lambda: len(self.target.seen) == 1)

    @defer.inlineCallbacks
    def test_timeout_closes_a_dripping_answer(self) -> None:
        """A check whose answer's body never ends is DOWN at ``timeout`` and its connection
        is closed then (one check per interval must not leave one connection each)."""
        spec = HealthCheckSpec("/drip", interval=10.0, timeout=2.0)
        node = self.balancer(spec)
        self.monitor.update(_Table(node))
        checker = self.monitor.checkers[node]
        self.clock.advance(10.0)
        yield until(lambda: len(self.target.seen) == 1 and len(self.wrapper.protocols) == 1)
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.clock.advance(2.0)
        yield until(lambda: not checker.in_flight)
        self.assertFalse(node.states.up(node.definition.servers[0].url))
        yield until(lambda: not self.wrapper.protocols)

    @defer.inlineCallbacks
    def test_concurrency_bound(self) -> None:
        """No more checks in flight than the bound, however many servers are due."""
        monitor = HealthMonitor(reactor, self.clock, concurrency=2)
        self.addCleanup(monitor.stop)
        ports = [self.port]
        for _ in range(4):
            listening = reactor.listenTCP(0, self.wrapper, interface="127.0.0.1")
            self.addCleanup(listening.stopListening)
            ports.append(listening.getHost().port)
        node = self.balancer(HealthCheckSpec("/slow", timeout=60.0), *ports)
        monitor.update(_Table(node))
        self.clock.advance(30.0)
        yield until(lambda: len(self.target.seen) == 2)
        yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(len(self.target.seen), 2)
        self.assertEqual(len(monitor.checkers[node].in_flight), 5)
        monitor.stop()
        self.assertEqual(monitor.checkers, {})


PASSIVE = """\
apiVersion: v1
kind: Service
metadata: {name: pair}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: pair}
subsets:
  - addresses: [{ip: 127.0.0.1}]
    ports: [{name: http, port: %d}]
  - addresses: [{ip: 127.0.0.1}]
    ports: [{name: http, port: %d}]
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: pair}
spec:
  routes:
    - match: Host(`pair`)
      services:
        - name: pair
          port: 80
          passiveHealthCheck: {failureWindow: 10s, maxFailedAttempts: 2}
"""


class _Failing(Resource):
    """Answers every request 500."""

    isLeaf = True

    def render(self, request: Any) -> bytes:
        request.setResponseCode(500)
        return b"broken\n"


class _CutAnswer(Protocol):
    """Answers 500 with a body shorter than its Content-Length, then closes."""

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\nabc")
            self.transport.loseConnection()


class PassiveProxyTests(ProxyTestCase):
    """passiveHealthCheck through the proxy: failures of proxied requests take a server out."""

    @defer.inlineCallbacks
    def test_one_request_counts_once(self) -> None:
        """A 500 whose body is then cut short is one failed request, not two: with
        maxFailedAttempts 2 the server stays in after it."""
        good = self.start_app("good")
        cutting = reactor.listenTCP(0, Factory.forProtocol(_CutAnswer), interface="127.0.0.1")
        self.addCleanup(cutting.stopListening)
        self.write("tsproxy.yaml", STATIC)
        self.write("pair.yaml", PASSIVE % (good, cutting.getHost().port))
        self.start_proxy(clock=task.Clock())
        for _ in range(2):
            try:
                yield self.get("pair")
            except Exception:
                pass  # the cut answer
        node = self.service.table.services[  # type: ignore[union-attr]
            self.service.table.routers[0].service.name  # type: ignore[union-attr]
        ]
        self.assertEqual(node.states.down_keys(), ())

    @defer.inlineCallbacks
    def test_failures_take_out_and_window_brings_back(self) -> None:
        """Two 500s within the window take the failing server out (clients then get only the
        good one); with no active check it comes back after the failure window; a refused
        connection counts as a failure too."""
        good = self.start_app("good")
        site = server.Site(_Failing())
        site.noisy = False
        wrapper = WrappingFactory(site)
        failing = reactor.listenTCP(0, wrapper, interface="127.0.0.1")
        self.addCleanup(failing.stopListening)
        bad = failing.getHost().port
        self.write("tsproxy.yaml", STATIC)
        self.write("pair.yaml", PASSIVE % (good, bad))
        clock = task.Clock()
        self.start_proxy(clock=clock)
        codes = []
        for _ in range(8):
            response, _ = yield self.get("pair")
            codes.append(response.code)
        self.assertEqual(codes, [200, 500, 200, 500] + [200] * 4)
        node = self.service.table.services[  # type: ignore[union-attr]
            self.service.table.routers[0].service.name  # type: ignore[union-attr]
        ]
        bad_url = "http://127.0.0.1:%d" % (bad,)
        self.assertEqual(node.states.down_keys(), (bad_url,))
        clock.advance(10)
        self.assertEqual(node.states.down_keys(), ())
        yield failing.stopListening()
        for protocol in list(wrapper.protocols):
            protocol.transport.abortConnection()
        codes = []
        for _ in range(6):
            response, _ = yield self.get("pair")
            codes.append(response.code)
        self.assertEqual(codes, [502, 200, 502] + [200] * 3)


class _GRPCHealth(Protocol):
    """A grpc.health.v1 server over h2c: each Check answers the factory's next status
    (1 SERVING, 2 NOT_SERVING); /bad answers 500; other methods answer grpc-status 12
    (unimplemented) with status 200."""

    def connectionMade(self) -> None:
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.h2.initiate_connection()
        self.paths: Dict[int, bytes] = {}
        self.transport.write(self.h2.data_to_send())  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            if isinstance(event, RequestReceived):
                self.paths[event.stream_id] = dict(event.headers)[b":path"]
                self.factory.calls.append(dict(event.headers))  # type: ignore[attr-defined]
            elif isinstance(event, H2DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, H2StreamEnded):
                self.answer(event.stream_id)
        self.transport.write(self.h2.data_to_send())  # type: ignore[union-attr]

    def answer(self, stream: int) -> None:
        h2 = self.h2
        if self.paths[stream] == b"/bad":
            h2.send_headers(stream, [(b":status", b"500")], end_stream=True)
            return
        if self.paths[stream] != b"/grpc.health.v1.Health/Check":
            headers = [(b":status", b"200"), (b"content-type", b"application/grpc")]
            h2.send_headers(stream, headers + [(b"grpc-status", b"12")], end_stream=True)
            return
        status = self.factory.statuses.pop(0)  # type: ignore[attr-defined]
        message = bytes([0x08, status])
        h2.send_headers(stream, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        h2.send_data(stream, b"\x00" + len(message).to_bytes(4, "big") + message)
        h2.send_headers(stream, [(b"grpc-status", b"0")], end_stream=True)


_GRPC_STATUS = {
    "healthpb.HealthCheckResponse_SERVING": 1,
    "healthpb.HealthCheckResponse_NOT_SERVING": 2,
}


class GRPCCheckerTests(TestCase):
    """mode: grpc against an HTTP/2 gRPC health server, Traefik's Launch vectors."""

    def setUp(self) -> None:
        self.factory = Factory.forProtocol(_GRPCHealth)
        self.factory.statuses = []  # type: ignore[attr-defined]
        self.factory.calls = []  # type: ignore[attr-defined]
        self.wrapper = WrappingFactory(self.factory)
        listening = reactor.listenTCP(0, self.wrapper, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.addCleanup(
            lambda: [p.transport.abortConnection() for p in list(self.wrapper.protocols)]
        )
        self.port = listening.getHost().port
        self.clock = task.Clock()
        self.monitor = HealthMonitor(reactor, self.clock)
        self.addCleanup(self.monitor.stop)

    @defer.inlineCallbacks
    def test_launch_vectors(self) -> None:
        """Each grpc case of TestServiceHealthChecker_Launch: one check per status sent,
        SERVING is UP, anything else DOWN."""
        grpc_cases = [c for c in _GROUP["cases"] if c["inputs"].get("mode") == "grpc"]
        self.assertEqual(len(grpc_cases), 3)
        for case in grpc_cases:
            expr = case["inputs"]["server"]["$expr"]
            statuses = [_GRPC_STATUS[s] for s in re.findall(r"healthpb\.\w+", expr)]
            self.factory.statuses = list(statuses)  # type: ignore[attr-defined]
            spec = HealthCheckSpec("", mode="grpc", interval=5.0)
            server_ = Server.at("http", "127.0.0.1", self.port, TransportSettings())
            node = LoadBalancer.build(LoadBalancerDef("svc", (server_,), health_check=spec))
            self.monitor.update(_Table(node))
            checker = self.monitor.checkers[node]
            verdicts = []
            for _ in statuses:
                self.clock.advance(5.0)
                yield until(lambda checker=checker: not checker.in_flight)  # type: ignore[misc]
                verdicts.append(node.states.up(server_.url))
            expected = case["expected"]
            self.assertEqual(
                (verdicts.count(False), verdicts.count(True), verdicts[-1]),
                (
                    expected["expNumRemovedServers"],
                    expected["expNumUpsertedServers"],
                    expected["targetStatus"] == "UP",
                ),
                case["description"],
            )
            self.monitor.update(_Table())
        call = self.factory.calls[0]  # type: ignore[attr-defined]
        self.assertEqual(
            (call[b":method"], call[b":path"], call[b"content-type"], call[b"te"]),
            (b"POST", b"/grpc.health.v1.Health/Check", b"application/grpc", b"trailers"),
        )

    @defer.inlineCallbacks
    def test_h2c_server(self) -> None:
        """mode: http on a server of scheme h2c speaks h2c, as Traefik's check does: the
        method, path and query, Host (as :authority) and headers; a 200 is UP, a 500 DOWN."""
        server_ = Server.at("h2c", "127.0.0.1", self.port, TransportSettings())
        table = [
            (HealthCheckSpec("/ok?x=1", hostname="h.example", headers=(("X-Check", "1"),)), True),
            (HealthCheckSpec("/bad"), False),
        ]
        for spec, up in table:
            node = LoadBalancer.build(LoadBalancerDef("svc", (server_,), health_check=spec))
            self.monitor.update(_Table(node))
            checker = self.monitor.checkers[node]
            self.clock.advance(spec.interval)
            yield until(lambda checker=checker: not checker.in_flight)  # type: ignore[misc]
            self.assertEqual(node.states.up(server_.url), up, spec)
            self.monitor.update(_Table())
        seen = [
            (call[b":method"], call[b":path"], call[b":authority"], call.get(b"x-check"))
            for call in self.factory.calls  # type: ignore[attr-defined]
        ]
        self.assertEqual(
            seen,
            [
                (b"GET", b"/ok?x=1", b"h.example", b"1"),
                (b"GET", b"/bad", b"127.0.0.1:%d" % (self.port,), None),
            ],
        )


class HealthPathProxyTests(ProxyTestCase):
    """The issue's case: a Service whose second server answers its health path with 500."""

    @defer.inlineCallbacks
    def test_failing_health_path_loses_its_share(self) -> None:
        """Before the first check both servers get requests; one interval later the server
        whose /health answers 500 gets none and the API shows it DOWN."""
        good = self.start_app("good")
        site = server.Site(_Failing())
        site.noisy = False
        failing = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(failing.stopListening)
        bad = failing.getHost().port
        self.write("tsproxy.yaml", STATIC)
        self.write(
            "pair.yaml",
            PASSIVE.replace(
                "passiveHealthCheck: {failureWindow: 10s, maxFailedAttempts: 2}",
                "healthCheck: {path: /health, interval: 5s}",
            )
            % (good, bad),
        )
        clock = task.Clock()
        service = self.start_proxy(clock=clock)
        codes = []
        for _ in range(4):
            response, _ = yield self.get("pair")
            codes.append(response.code)
        self.assertEqual(sorted(codes), [200, 200, 500, 500])
        clock.advance(5)
        node = service.table.routers[0].service
        yield until(lambda: node.states.down_keys() != ())
        codes = []
        for _ in range(4):
            response, _ = yield self.get("pair")
            codes.append(response.code)
        self.assertEqual(codes, [200] * 4)
        url = "http://127.0.0.1:%d/api/http/services" % (service.port_of("traefik"),)
        response = yield treq.get(url, agent=self.agent)
        listed = {s["name"]: s for s in json.loads((yield treq.content(response)))}
        self.assertEqual(
            listed[node.name + "@kubernetescrd"]["serverStatus"],
            {"http://127.0.0.1:%d" % good: "UP", "http://127.0.0.1:%d" % bad: "DOWN"},
        )
