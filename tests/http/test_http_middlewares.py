"""End-to-end tests of the middleware machinery through a running proxy with raw-socket
clients: fail-closed routers (404, API, check, reload), chains, entrypoint middlewares and
redirections, steps that answer later, response hooks, observation, TCP middlewares."""

from __future__ import annotations

import io
import json
import os
from typing import Any, List

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from tests import middlewarekinds, proxyfixture
from tests.proxyfixture import ProxyTestCase, RawClient, free_port
from tsproxy.check import check_directory
from tsproxy.testing import listen_tcp_greeter

STATIC = """\
entryPoints:
  web:
    address: "127.0.0.1:0"
  guarded:
    address: "127.0.0.1:0"
    http:
      middlewares: [default-tag-a@kubernetescrd]
  redir:
    address: "127.0.0.1:0"
    http:
      redirections:
        entryPoint: {to: ":8443"}
  tcp:
    address: "127.0.0.1:0"
    transport: {lifeCycle: {graceTimeOut: 0s}}
  traefik:
    address: "127.0.0.1:0"
api: {insecure: true}
metrics:
  prometheus: {addRoutersLabels: true}
log:
  level: ERROR
"""

BACKEND = """\
apiVersion: v1
kind: Service
metadata: {name: app}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: app}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{name: http, port: %d}]}]
---
apiVersion: v1
kind: Service
metadata: {name: down}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: down}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{name: http, port: %d}]}]
"""

MIDDLEWARES = """\
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: tag-a}
spec: {testTag: {name: X-Step-A, value: a}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: tag-b}
spec: {testTag: {name: X-Step-B, value: b}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: strip}
spec: {testPath: {prefix: /api, host: inner.example}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: deny}
spec: {testDeny: {status: 403}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: later-no}
spec: {testLater: {after: 20ms, allow: false}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: later-yes}
spec: {testLater: {after: 20ms}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: forever}
spec: {testLater: {after: 1h}}
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: all}
spec:
  chain:
    middlewares: [{name: tag-a}, {name: inner}]
---
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: inner}
spec:
  chain:
    middlewares: [{name: tag-b}, {name: strip}]
"""


def ingress(
    name: str, host: str, middlewares: str, service: str = "app", eps: str = "[web]"
) -> str:
    return f"""\
---
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {{name: {name}}}
spec:
  entryPoints: {eps}
  routes:
    - match: Host(`{host}`)
      middlewares: [{middlewares}]
      services: [{{name: {service}, port: 80}}]
"""


ROUTES = (
    ingress("plain", "plain.example", "")
    + ingress("chained", "chain.example", "{name: all}")
    + ingress("denied", "deny.example", "{name: tag-a}, {name: deny}, {name: tag-b}")
    + ingress("lateno", "lateno.example", "{name: later-no}")
    + ingress("lateyes", "lateyes.example", "{name: tag-a}, {name: later-yes}, {name: tag-b}")
    + ingress("forever", "forever.example", "{name: forever}")
    + ingress("down", "down.example", "{name: tag-a}", service="down")
    + ingress("guarded", "guarded.example", "{name: tag-b}", eps="[guarded]")
    + ingress("split", "split.example", "{name: tag-a}").replace(
        "services: [{name: app, port: 80}]",
        "services: [{name: app, port: 80}, {name: app, port: 80, middlewares: [{name: later-yes},"
        " {name: tag-b}]}]",
    )
)


def raw_exchange(port: int, payload: bytes, half_close: bool = False) -> Any:
    """Send ``payload`` and read until the proxy closes (each payload ends with a request
    that says Connection: close); no half-close, which the engine takes as a client gone."""
    return proxyfixture.raw_exchange(port, payload, half_close)


def request(host: str, path: str = "/", method: str = "GET", close: bool = True) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return b"%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
        method.encode(),
        path.encode(),
        host.encode(),
        extra,
    )


@defer.inlineCallbacks
def wait_until(condition: Any, seconds: float = 5.0) -> Any:
    """Poll ``condition`` every 10 ms until it holds (False after ``seconds``)."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        yield task.deferLater(reactor, 0.01, lambda: None)
    return bool(condition())


def head_of(response: bytes) -> List[str]:
    return response.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")


def header(response: bytes, name: str) -> List[str]:
    prefix = name.lower() + ": "
    return [line[len(prefix) :] for line in head_of(response) if line.lower().startswith(prefix)]


class MiddlewareProxyTests(ProxyTestCase):
    """A proxy serving routes with middlewares made of the test kinds."""

    def setUp(self) -> None:
        super().setUp()
        middlewarekinds.register(self)
        self.write("tsproxy.yaml", STATIC)
        self.write("backend.yaml", BACKEND % (self.start_app("app"), free_port()))
        self.write("middlewares.yaml", MIDDLEWARES)
        self.write("routes.yaml", ROUTES)
        self.start_proxy()

    def exchange(self, payload: bytes, entrypoint: str = "web") -> Any:
        assert self.service is not None
        return raw_exchange(self.service.port_of(entrypoint), payload)

    def seen(self) -> List[dict]:
        return self.apps["app"].requests  # type: ignore[no-any-return]

    @defer.inlineCallbacks
    def api(self, path: str) -> Any:
        assert self.service is not None
        port = self.service.port_of("traefik")
        raw = yield raw_exchange(port, request("api", path))
        return json.loads(raw.split(b"\r\n\r\n", 1)[1])

    @defer.inlineCallbacks
    def test_noMiddlewaresUnchanged(self) -> None:
        """A route without middlewares is served as before (no hook headers)."""
        response = yield self.exchange(request("plain.example"))
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "))
        self.assertEqual(header(response, "X-Hooks"), [])

    @defer.inlineCallbacks
    def test_chain(self) -> None:
        """chain(tag-a, chain(tag-b, strip)): the backend sees both headers, the stripped
        path and the new Host; hooks run innermost first."""
        response = yield self.exchange(request("chain.example", "/api/x?q=1"))
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response)
        self.assertEqual(header(response, "X-Hooks"), ["b,a"])
        (seen,) = self.seen()
        self.assertEqual(seen["uri"], "/x?q=1")
        self.assertEqual(seen["headers"]["host"], ["inner.example"])
        self.assertEqual(seen["headers"]["x-step-a"], ["a"])
        self.assertEqual(seen["headers"]["x-step-b"], ["b"])
        self.assertEqual(seen["headers"]["x-forwarded-host"], ["inner.example"])

    @defer.inlineCallbacks
    def test_answerKeepAlive(self) -> None:
        """A step's answer: earlier steps' hooks apply, later steps never run, the backend is
        not asked; the connection stays usable; HEAD gets the head only."""
        payload = (
            request("deny.example", close=False)
            + request("deny.example", method="HEAD", close=False)
            + request("plain.example")
        )
        response = yield self.exchange(payload)
        first, rest = response.split(b"denied\n", 1)
        self.assertTrue(first.startswith(b"HTTP/1.1 403 Forbidden\r\n"), first)
        self.assertEqual(header(first, "X-Hooks"), ["a"])
        self.assertEqual(header(first, "X-Denied-By"), ["default-deny@kubernetescrd"])
        self.assertEqual(header(first, "Content-Length"), ["7"])
        self.assertTrue(rest.startswith(b"HTTP/1.1 403 Forbidden\r\n"), rest)
        head_answer, last = rest.split(b"\r\n\r\n", 1)
        self.assertIn(b"Content-Length: 7", head_answer)
        self.assertTrue(last.startswith(b"HTTP/1.1 200 "), last)
        self.assertEqual([r["headers"]["host"] for r in self.seen()], [["plain.example"]])

    @defer.inlineCallbacks
    def test_answerWithUnreadBodyCloses(self) -> None:
        """An answer before the request body was read closes the connection (the body would
        be taken for the next request)."""
        payload = (
            b"POST / HTTP/1.1\r\nHost: deny.example\r\nContent-Length: 5\r\n\r\nhello"
            + request("plain.example")
        )
        response = yield self.exchange(payload)
        self.assertTrue(response.startswith(b"HTTP/1.1 403 "))
        self.assertEqual(header(response, "Connection"), ["close"])
        self.assertEqual(response.count(b"HTTP/1.1"), 1)

    @defer.inlineCallbacks
    def test_deferredSteps(self) -> None:
        """Steps that answer later: a refusal arrives as the answer, an approval lets the
        later steps run and the request reach the backend."""
        response = yield self.exchange(request("lateno.example"))
        self.assertTrue(response.startswith(b"HTTP/1.1 401 "), response)
        self.assertTrue(response.endswith(b"later no\n"))
        assert self.service is not None
        response = yield raw_exchange(
            self.service.port_of("web"),
            b"POST / HTTP/1.1\r\nHost: lateyes.example\r\nContent-Length: 5\r\n"
            b"Connection: close\r\n\r\nhello",
            half_close=False,
        )
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response)
        self.assertEqual(header(response, "X-Hooks"), ["b,a"])
        (seen,) = self.seen()
        self.assertEqual((seen["method"], seen["headers"]["x-step-b"]), ("POST", ["b"]))

    @defer.inlineCallbacks
    def test_largeBodyWhileStepPending(self) -> None:
        """A body larger than what is buffered while a step is pending (reading pauses at
        64 KiB) still goes through once the step lets the request on: reading resumes."""
        assert self.service is not None
        body = b"x" * (1024 * 1024)
        client = RawClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.service.port_of("web"))
        yield connectProtocol(endpoint, client)
        self.addCleanup(lambda: client.transport.abortConnection())
        client.transport.write(
            b"POST /echo HTTP/1.1\r\nHost: lateyes.example\r\nContent-Length: %d\r\n\r\n"
            % len(body)
            + body
        )
        echoed = yield wait_until(lambda: client.received.endswith(body), 20.0)
        self.assertTrue(echoed, client.received[:200])
        self.assertTrue(client.received.startswith(b"HTTP/1.1 200 "))

    @defer.inlineCallbacks
    def test_clientLeavingCancels(self) -> None:
        """A client that leaves while a step has not answered cancels the step."""
        assert self.service is not None
        (router,) = [r for r in self.service.table.routers if r.rule == "Host(`forever.example`)"]
        step = router.chain[0][1]
        client = RawClient()
        yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", self.service.port_of("web")), client
        )
        client.transport.write(request("forever.example"))
        yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(step.cancelled, 0)
        client.transport.abortConnection()
        yield client.closed
        cancelled = yield wait_until(lambda: step.cancelled == 1)
        self.assertTrue(cancelled)

    @defer.inlineCallbacks
    def test_weightedChildMiddlewares(self) -> None:
        """A weighted child's middlewares (a later step among them) run when it is picked,
        after the router's."""
        hooks = []
        for _ in range(2):
            response = yield self.exchange(request("split.example"))
            self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response)
            hooks.append(header(response, "X-Hooks"))
        self.assertEqual(hooks, [["a"], ["b,a"]])
        self.assertEqual([r["headers"].get("x-step-b") for r in self.seen()], [None, ["b"]])

    @defer.inlineCallbacks
    def test_hooksOnLocalAnswers(self) -> None:
        """A 502 the proxy gives itself goes through the hooks too."""
        response = yield self.exchange(request("down.example"))
        self.assertTrue(response.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), response)
        self.assertEqual(header(response, "X-Hooks"), ["a"])
        self.assertTrue(response.endswith(b"\r\n\r\nBad Gateway"), response)

    @defer.inlineCallbacks
    def test_entrypointMiddlewares(self) -> None:
        """The entrypoint's middlewares run before the router's."""
        response = yield self.exchange(request("guarded.example"), "guarded")
        self.assertEqual(header(response, "X-Hooks"), ["b,a"])
        (seen,) = self.seen()
        self.assertEqual(seen["headers"]["x-step-a"], ["a"])

    @defer.inlineCallbacks
    def test_redirection(self) -> None:
        """http.redirections: GET 301, POST 308, to https and the target port; no Host: 404."""
        response = yield self.exchange(request("site.example:81", "/p?q"), "redir")
        self.assertTrue(response.startswith(b"HTTP/1.1 301 Moved Permanently\r\n"), response)
        self.assertEqual(header(response, "Location"), ["https://site.example:8443/p?q"])
        response = yield self.exchange(request("site.example", "/", "POST"), "redir")
        self.assertTrue(response.startswith(b"HTTP/1.1 308 "), response)
        response = yield self.exchange(b"GET / HTTP/1.0\r\n\r\n", "redir")
        self.assertTrue(response.startswith(b"HTTP/1.1 404 "), response)

    @defer.inlineCallbacks
    def test_observed(self) -> None:
        """Answers from steps are counted under the router with the status the client got."""
        yield self.exchange(request("deny.example"))
        yield self.exchange(request("lateno.example"))
        assert self.service is not None
        raw = yield raw_exchange(self.service.port_of("traefik"), request("x", "/metrics"))
        lines = [
            line
            for line in raw.decode().splitlines()
            if line.startswith("traefik_router_requests_total")
        ]
        self.assertTrue(
            any('code="403"' in line and "default-denied-" in line for line in lines), lines
        )
        self.assertTrue(
            any('code="401"' in line and "default-lateno-" in line for line in lines), lines
        )

    @defer.inlineCallbacks
    def test_api(self) -> None:
        """The API lists middlewares in Traefik's shape and routers with theirs."""
        item = yield self.api("/api/http/middlewares/default-deny@kubernetescrd")
        self.assertEqual(
            item,
            {
                "testDeny": {"status": 403},
                "status": "enabled",
                "usedBy": [item["usedBy"][0]],
                "name": "default-deny@kubernetescrd",
                "provider": "kubernetescrd",
                "type": "testdeny",
            },
        )
        self.assertTrue(item["usedBy"][0].startswith("default-denied-"))
        routers = yield self.api("/api/http/routers?middlewareName=default-deny@kubernetescrd")
        self.assertEqual(
            [r["middlewares"] for r in routers],
            [
                [
                    "default-tag-a@kubernetescrd",
                    "default-deny@kubernetescrd",
                    "default-tag-b@kubernetescrd",
                ]
            ],
        )
        overview = yield self.api("/api/overview")
        self.assertEqual(overview["http"]["middlewares"], {"total": 10, "warnings": 0, "errors": 0})


class FailClosedTests(ProxyTestCase):
    """A router naming a middleware that cannot be used is disabled, never served bare."""

    def setUp(self) -> None:
        super().setUp()
        middlewarekinds.register(self)
        self.write(
            "tsproxy.yaml",
            STATIC.replace(
                "      middlewares: [default-tag-a@kubernetescrd]\n", "      middlewares: []\n"
            ),
        )
        self.write("backend.yaml", BACKEND % (self.start_app("app"), free_port()))
        self.write("middlewares.yaml", MIDDLEWARES)

    @defer.inlineCallbacks
    def test_missingMiddleware(self) -> None:
        """Missing or unimplemented: 404, disabled in the API with the error, check exits 1."""
        self.write(
            "routes.yaml",
            ingress("gone", "gone.example", "{name: nope}")
            + ingress("rl", "rl.example", "{name: rl}")
            + "---\napiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata: {name: rl}\n"
            "spec: {plugin: {demo: {}}}\n",
        )
        service = self.start_proxy()
        for host in ("gone.example", "rl.example"):
            response = yield raw_exchange(service.port_of("web"), request(host))
            self.assertTrue(response.startswith(b"HTTP/1.1 404 "), response)
        self.assertEqual(self.apps["app"].requests, [])
        raw = yield raw_exchange(service.port_of("traefik"), request("api", "/api/http/routers"))
        routers = json.loads(raw.split(b"\r\n\r\n", 1)[1])
        disabled = {r["rule"]: (r["status"], r.get("error")) for r in routers}
        self.assertEqual(
            disabled["Host(`gone.example`)"],
            (
                "disabled",
                [
                    'spec.routes[0].middlewares[0]: middleware "default-nope@kubernetescrd"'
                    " does not exist"
                ],
            ),
        )
        self.assertEqual(disabled["Host(`rl.example`)"][0], "disabled")
        raw = yield raw_exchange(
            service.port_of("traefik"),
            request("api", "/api/http/middlewares/default-rl@kubernetescrd"),
        )
        item = json.loads(raw.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(
            (item["status"], item["type"], item["error"]),
            (
                "disabled",
                "plugin",
                ["spec.plugin: the plugin middleware is not implemented by tsproxy"],
            ),
        )
        out = io.StringIO()
        self.assertEqual(check_directory(self.config_dir, "text", out), 1)
        self.assertIn('middleware "default-nope@kubernetescrd" does not exist', out.getvalue())

    @defer.inlineCallbacks
    def test_reloadRefused(self) -> None:
        """A reload that would disable a router for its middleware is refused; the running
        table keeps serving."""
        self.write("routes.yaml", ingress("r", "r.example", "{name: tag-a}"))
        service = self.start_proxy()
        self.write("routes.yaml", ingress("r", "r.example", "{name: tag-a}, {name: nope}"))
        self.assertFalse(service.reload())
        response = yield raw_exchange(service.port_of("web"), request("r.example"))
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response)
        self.assertEqual(header(response, "X-Hooks"), ["a"])


TCP_ROUTE = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRouteTCP
metadata: {name: t}
spec:
  entryPoints: [tcp]
  routes:
    - match: HostSNI(`*`)
      middlewares: [{name: %s}]
      services: [{name: greeter, port: 7000}]
---
apiVersion: v1
kind: Service
metadata: {name: greeter}
spec: {ports: [{name: greet, port: 7000}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: greeter}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{name: greet, port: %d}]}]
---
apiVersion: traefik.io/v1alpha1
kind: MiddlewareTCP
metadata: {name: local}
spec: {ipAllowList: {sourceRange: ["127.0.0.0/8"]}}
---
apiVersion: traefik.io/v1alpha1
kind: MiddlewareTCP
metadata: {name: elsewhere}
spec: {ipAllowList: {sourceRange: ["10.0.0.0/8", "::1"]}}
---
apiVersion: traefik.io/v1alpha1
kind: MiddlewareTCP
metadata: {name: one}
spec: {inFlightConn: {amount: 1}}
"""


class _Client(RawClient):
    def __init__(self) -> None:
        super().__init__()
        self.first: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        if not self.first.called:
            self.first.callback(data)


class TCPMiddlewareTests(ProxyTestCase):
    """MiddlewareTCPs with real connections (the backend greets first)."""

    def start(self, middleware: str) -> None:
        port = listen_tcp_greeter(reactor, "greeter")
        self.addCleanup(port.stopListening)
        self.write("tsproxy.yaml", STATIC)
        self.write("tcp.yaml", TCP_ROUTE % (middleware, port.getHost().port))
        self.start_proxy()

    @defer.inlineCallbacks
    def connect(self) -> Any:
        assert self.service is not None
        client = _Client()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.service.port_of("tcp"))
        yield connectProtocol(endpoint, client)
        self.addCleanup(lambda: client.transport.abortConnection())
        return client

    @defer.inlineCallbacks
    def test_ipAllowList(self) -> None:
        """An allowed address reaches the backend; another is closed without a byte."""
        self.start("local")
        client = yield self.connect()
        greeting = yield client.first
        self.assertTrue(greeting)
        client.transport.loseConnection()
        yield client.closed
        assert self.service is not None
        self.write(
            "tcp.yaml",
            open(os.path.join(self.config_dir, "tcp.yaml"))
            .read()
            .replace("[{name: local}]", "[{name: elsewhere}]"),
        )
        self.assertTrue(self.service.reload())
        client = yield self.connect()
        received = yield client.closed
        self.assertEqual(received, b"")

    @defer.inlineCallbacks
    def test_inFlightConn(self) -> None:
        """amount 1: a second connection from the same IP is closed at once, without a byte;
        once the first ends, a new one goes through."""
        self.start("one")
        first = yield self.connect()
        yield first.first
        second = yield self.connect()
        received = yield second.closed
        self.assertEqual(received, b"")
        first.transport.loseConnection()
        yield first.closed
        assert self.service is not None
        step = self.service.table.tcp_routers[0].chain[0][1]
        released = yield wait_until(lambda: not step.open)
        self.assertTrue(released)
        third = yield self.connect()
        greeting = yield third.first
        self.assertTrue(greeting)


FILE_TCP = """\
tcp:
  routers:
    r: {entryPoints: [tcp], rule: "HostSNI(`*`)", service: greeter, middlewares: %s}
  services:
    greeter: {loadBalancer: {servers: [{address: "127.0.0.1:%d"}]}}
  middlewares:
    local: {ipAllowList: {sourceRange: ["127.0.0.0/8"]}}
    elsewhere: {ipAllowList: {sourceRange: ["10.0.0.0/8", "::1"]}}
    one: {inFlightConn: {amount: 1}}
"""


class FileTCPMiddlewareTests(TCPMiddlewareTests):
    """The file provider's tcp.middlewares on its TCP routers, with real connections."""

    def start(self, middlewares: str) -> None:
        self.greeter = listen_tcp_greeter(reactor, "greeter")
        self.addCleanup(self.greeter.stopListening)
        self.write("tsproxy.yaml", STATIC + "providers:\n  file: {filename: dyn.yml}\n")
        self.write("dyn.yml", FILE_TCP % (middlewares, self.greeter.getHost().port))
        self.start_proxy()

    @defer.inlineCallbacks
    def test_ipAllowList(self) -> None:
        """127.0.0.1 in the list (``local``, ``local@file``): it reaches the backend; a list
        without it (``elsewhere``): closed without a byte."""
        self.start("[local]")
        client = yield self.connect()
        self.assertTrue((yield client.first))
        client.transport.loseConnection()
        yield client.closed
        assert self.service is not None
        self.assertEqual(self.service.table.tcp_routers[0].middlewares, ("local@file",))
        port = self.greeter.getHost().port
        for written, allowed in (("[elsewhere]", False), ("[local@file]", True)):
            self.write("dyn.yml", FILE_TCP % (written, port))
            self.assertTrue(self.service.reload())
            client = yield self.connect()
            if allowed:
                self.assertTrue((yield client.first), written)
                client.transport.loseConnection()
            received = yield client.closed
            if not allowed:
                self.assertEqual(received, b"", written)

    @defer.inlineCallbacks
    def test_inFlightConn(self) -> None:
        """After ``local``, inFlightConn amount 1: a second connection from 127.0.0.1 is
        closed without a byte; once the first ends, a new one goes through."""
        self.start("[local, one]")
        first = yield self.connect()
        yield first.first
        second = yield self.connect()
        self.assertEqual((yield second.closed), b"")
        first.transport.loseConnection()
        yield first.closed
        assert self.service is not None
        step = self.service.table.tcp_routers[0].chain[1][1]
        self.assertTrue((yield wait_until(lambda: not step.open)))
        third = yield self.connect()
        self.assertTrue((yield third.first))
